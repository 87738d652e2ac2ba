/*
 * dport_counters: a budget per WAN destination port. A vector of 65,536 counters is indexed
 * directly by the destination port of WAN TCP/UDP frames; a port that received DC_BUDGET frames
 * drops the rest. Other WAN frames are dropped; LAN frames go to the WAN.
 *
 * Expected: shared-nothing; the WAN hashes the destination port. Each core needs the whole vector
 * (its index is a packet field, not an index a per-core allocator hands out), so its capacity
 * must not be divided by the cores (issue 10 item 2).
 */
#include "nf.h"

#ifndef DC_BUDGET
#define DC_BUDGET 20
#endif

#define LAN 0
#define WAN 1

struct budget {
  uint32_t frames;
};

static struct nf_vector *ports;

bool nf_init(void) { return nf_vector_allocate(sizeof(struct budget), 65536, &ports); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device == LAN) {
    return WAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  int port = nf_ntohs(l4->dst_port);
  struct budget *b = nf_vector_borrow(ports, port);
  bool spent = b->frames >= DC_BUDGET;
  if (!spent) {
    b->frames += 1;
  }
  nf_vector_return(ports, port, b);
  return spent ? NF_DROP : LAN;
}
