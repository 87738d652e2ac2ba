/*
 * vip_quota: per-host frame quota. nf_init pre-registers PF_VIP VIP hosts (10.0.0.1 ..) with a big
 * quota; other LAN hosts get the small quota when first seen. Every LAN frame spends one unit of its
 * host's quota; an exhausted host is dropped.
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#ifndef PF_CAP
#define PF_CAP 64
#endif
#ifndef PF_VIP
#define PF_VIP 24
#endif
#define VIP_QUOTA 1000u
#define STD_QUOTA 5u
static struct nf_map *hosts; static struct nf_vector *quota; static struct nf_dchain *chain;
bool nf_init(void) {
  if (!(nf_map_allocate(4, PF_CAP, &hosts) && nf_vector_allocate(4, PF_CAP, &quota) && nf_dchain_allocate(PF_CAP, &chain)))
    return false;
  for (uint32_t h = 1; h <= PF_VIP; h++) {
    uint32_t addr = nf_htonl(NF_IPV4(10, 0, 0, h));
    int i;
    if (!nf_dchain_allocate_new_index(chain, &i, 0)) return false;
    nf_map_put(hosts, &addr, i);
    uint32_t *q = nf_vector_borrow(quota, i);
    *q = VIP_QUOTA;
    nf_vector_return(quota, i, q);
  }
  return true;
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) return LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) return WAN;
  uint32_t addr = ip->src_addr;
  int i;
  if (!nf_map_get(hosts, &addr, &i)) {
    if (!nf_dchain_allocate_new_index(chain, &i, now)) return NF_DROP;
    nf_map_put(hosts, &addr, i);
    uint32_t *q0 = nf_vector_borrow(quota, i);
    *q0 = STD_QUOTA;
    nf_vector_return(quota, i, q0);
  }
  uint32_t *q = nf_vector_borrow(quota, i);
  int out = NF_DROP;
  if (*q > 0) { (*q)--; out = WAN; }
  nf_vector_return(quota, i, q);
  return out;
}
