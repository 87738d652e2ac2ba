/*
 * index_pairs: flows get a dchain index; counters are kept per PAIR of indices (index / 2, a "bucket"
 * to halve memory), so two flows share a counter; a bucket passes 5 frames, then drops.
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#ifndef ID_CAP
#define ID_CAP 1024
#endif
#define ID_LIMIT 5u
struct fk { uint32_t s, d; uint16_t sp, dp; };
static struct nf_map *flows; static struct nf_dchain *chain; static struct nf_vector *buckets;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct fk), ID_CAP, &flows) && nf_dchain_allocate(ID_CAP, &chain) &&
         nf_vector_allocate(4, ID_CAP / 2, &buckets);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) return LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) return WAN;
  struct fk k = { ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port };
  int i;
  if (!nf_map_get(flows, &k, &i)) {
    if (!nf_dchain_allocate_new_index(chain, &i, now)) return NF_DROP;
    nf_map_put(flows, &k, i);
  }
  int b = i / 2;
  uint32_t *c = nf_vector_borrow(buckets, b);
  int out = *c < ID_LIMIT ? WAN : NF_DROP;
  (*c)++;
  nf_vector_return(buckets, b, c);
  return out;
}
