/*
 * hash_lb: a stateless layer-4 load balancer. WAN TCP/UDP frames to HL_VIP go to the backend
 * 10.0.0.(1 + nf_hash(client address and port) % HL_BACKENDS): the destination address is
 * rewritten. LAN frames from a backend address (10.0.0.1 .. HL_BACKENDS) get HL_VIP as source.
 * Checksums are recomputed after a rewrite; other WAN frames are dropped, other LAN frames pass.
 *
 * Expected: shared-nothing with any key: the backend is a function of the frame, no state.
 */
#include "nf.h"

#ifndef HL_VIP
#define HL_VIP NF_IPV4(203, 0, 113, 80)
#endif
#ifndef HL_BACKENDS
#define HL_BACKENDS 4
#endif

#define LAN 0
#define WAN 1

struct client {
  uint32_t addr;
  uint16_t port;
  uint16_t pad;
};

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return device == LAN ? WAN : NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (device == LAN) {
    uint32_t source = nf_ntohl(ip->src_addr);
    if (l4 != NULL && source >= NF_IPV4(10, 0, 0, 1) && source <= NF_IPV4(10, 0, 0, HL_BACKENDS)) {
      ip->src_addr = nf_htonl(HL_VIP);
      nf_update_checksums(packet, len);
    }
    return WAN;
  }
  if (l4 == NULL || ip->dst_addr != nf_htonl(HL_VIP)) {
    return NF_DROP;
  }
  struct client c;
  memset(&c, 0, sizeof c);
  c.addr = ip->src_addr;
  c.port = l4->src_port;
  uint32_t backend = nf_hash(&c, sizeof c) % HL_BACKENDS;
  ip->dst_addr = nf_htonl(NF_IPV4(10, 0, 0, 1) + backend);
  nf_update_checksums(packet, len);
  return LAN;
}
