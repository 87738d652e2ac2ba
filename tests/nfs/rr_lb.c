/*
 * rr_lb: round-robin load balancer. New LAN->WAN flows get the next of 4 backends (a global
 * counter), and keep it (a flow table); the backend is written into the destination address.
 *
 * Expected: locks (the counter's index is a constant and every new flow writes it); the flow
 * table alone would shard on the LAN 5-tuple.
 */
#include "nf.h"
#define CAP 1024
struct flow { uint32_t src; uint32_t dst; uint16_t sport; uint16_t dport; uint8_t proto; uint8_t pad[3]; };
static struct nf_map *flows;
static struct nf_vector *keys, *backend_of, *next;
static struct nf_dchain *chain;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), CAP, &flows) && nf_vector_allocate(sizeof(struct flow), CAP, &keys) &&
         nf_vector_allocate(sizeof(uint32_t), CAP, &backend_of) && nf_vector_allocate(sizeof(uint32_t), 1, &next) &&
         nf_dchain_allocate(CAP, &chain);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, now > 10 * NF_NS_PER_SEC ? now - 10 * NF_NS_PER_SEC : 0);
  if (device != 0) return 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) return NF_DROP;
  struct flow f;
  memset(&f, 0, sizeof f);
  f.src = ip->src_addr; f.dst = ip->dst_addr; f.sport = l4->src_port; f.dport = l4->dst_port; f.proto = ip->protocol;
  int index;
  uint32_t backend;
  if (nf_map_get(flows, &f, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    uint32_t *b = nf_vector_borrow(backend_of, index);
    backend = *b;
    nf_vector_return(backend_of, index, b);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    uint32_t *n = nf_vector_borrow(next, 0);
    backend = *n % 4;
    *n = *n + 1;
    nf_vector_return(next, 0, n);
    struct flow *k = nf_vector_borrow(keys, index);
    *k = f;
    nf_vector_return(keys, index, k);
    nf_map_put(flows, &f, index);
    uint32_t *b = nf_vector_borrow(backend_of, index);
    *b = backend;
    nf_vector_return(backend_of, index, b);
  }
  ip->dst_addr = nf_htonl(NF_IPV4(10, 9, 0, 1) + backend);
  nf_update_checksums(packet, len);
  return 1;
}
