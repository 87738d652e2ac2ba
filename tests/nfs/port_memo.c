/*
 * port_memo: each LAN host is pinned to the service (destination port) of its first frame, kept in a
 * map host -> port; the NF reads the pinned port back from the map and counts frames per service in
 * a 65536-cell vector indexed by it; a service passes PM_LIMIT frames, then drops.
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#define PM_CAP 65536
#ifndef PM_LIMIT
#define PM_LIMIT 6u
#endif
static struct nf_map *pinned;
static struct nf_vector *per_service;
bool nf_init(void) { return nf_map_allocate(4, PM_CAP, &pinned) && nf_vector_allocate(4, 65536, &per_service); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device == WAN) return LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) return WAN;
  uint32_t host = ip->src_addr;
  int port;
  if (!nf_map_get(pinned, &host, &port)) {
    nf_map_put(pinned, &host, nf_ntohs(l4->dst_port));
    if (!nf_map_get(pinned, &host, &port)) return NF_DROP;
  }
  if (port < 0 || port > 65535) return NF_DROP;
  uint32_t *n = nf_vector_borrow(per_service, port);
  int out = *n < PM_LIMIT ? WAN : NF_DROP;
  (*n)++;
  nf_vector_return(per_service, port, n);
  return out;
}
