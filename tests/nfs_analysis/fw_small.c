/* A small firewall: LAN (device 0) flows are recorded; WAN (device 1) packets pass only for known flows. */
#include "nf.h"

#ifndef CAPACITY
#define CAPACITY 1024
#endif
#define EXPIRY_NS (10 * NF_NS_PER_SEC)

struct flow_key {
  uint32_t src_addr;
  uint32_t dst_addr;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct nf_map *flows;
struct nf_vector *keys;
struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), CAPACITY, &keys) &&
         nf_dchain_allocate(CAPACITY, &chain);
}

static void make_key(struct flow_key *key, struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4, bool reverse) {
  memset(key, 0, sizeof *key);
  key->src_addr = reverse ? ip->dst_addr : ip->src_addr;
  key->dst_addr = reverse ? ip->src_addr : ip->dst_addr;
  key->src_port = reverse ? l4->dst_port : l4->src_port;
  key->dst_port = reverse ? l4->src_port : l4->dst_port;
  key->protocol = ip->protocol;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, now - EXPIRY_NS);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
  struct flow_key key;
  int index;
  if (device == 0) {
    make_key(&key, ip, l4, false);
    if (nf_map_get(flows, &key, &index)) {
      nf_dchain_rejuvenate_index(chain, index, now);
    } else if (nf_dchain_allocate_new_index(chain, &index, now)) {
      struct flow_key *cell = nf_vector_borrow(keys, index);
      *cell = key;
      nf_map_put(flows, cell, index);
      nf_vector_return(keys, index, cell);
    }
    return 1;
  }
  make_key(&key, ip, l4, true);
  if (!nf_map_get(flows, &key, &index)) return NF_DROP;
  nf_dchain_rejuvenate_index(chain, index, now);
  return 0;
}
