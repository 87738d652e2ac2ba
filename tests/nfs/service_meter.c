/*
 * service_meter: counts LAN frames per service (TCP or UDP destination port) and stops a service
 * after SM_BUDGET frames. LAN frames without ports (ICMP, IPv4 fragments, ARP and other non-IPv4
 * frames) and every WAN frame pass untouched.
 *
 * State:
 *   frames  vector struct service_use, indexed by the LAN destination port itself, SM_CELLS cells
 *
 * Sharding: the cell a frame touches is named by its destination port alone, so the LAN hashes
 * the destination port only (ice and i40e select it with an L4_DST_ONLY rule). Frames without
 * ports touch no state: where the NIC puts them (on those NICs, by their two addresses) is a
 * matter of load only.
 *
 * Configuration (override with --define NAME=VALUE):
 *   SM_BUDGET  frames each service may receive from the LAN
 */
#include "nf.h"

#ifndef SM_BUDGET
#define SM_BUDGET 1000
#endif
#define SM_CELLS 65536

#define LAN 0
#define WAN 1

struct service_use {
  uint32_t frames;
};

static struct nf_vector *frames;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(struct service_use), SM_CELLS, &frames);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device == WAN) {
    return LAN;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return WAN;
  }
  int service = nf_ntohs(l4->dst_port);
  struct service_use *use = nf_vector_borrow(frames, service);
  bool allowed = use->frames < SM_BUDGET;
  if (allowed) {
    use->frames += 1;
  }
  nf_vector_return(frames, service, use);
  return allowed ? WAN : NF_DROP;
}
