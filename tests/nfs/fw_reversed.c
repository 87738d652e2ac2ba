/*
 * fw_reversed: the firewall of fw_ternary.c with its key filled by a helper that takes
 * `bool reversed` (true for WAN frames, whose remote end is the source): the usual way to share
 * one key-building function between the two directions.
 *
 * State:
 *   flows  map    struct flow_key (local ip, remote ip, local port, remote port, protocol) -> index
 *   keys   vector struct flow_key, per index (for expiry)
 *   chain  dchain of indices
 */
#include "nf.h"

#ifndef FW_CAPACITY
#define FW_CAPACITY 4096
#endif
#define FW_EXPIRATION_NS (60 * NF_NS_PER_SEC)
#define LAN 0
#define WAN 1

struct flow_key {
  uint32_t local_ip;
  uint32_t remote_ip;
  uint16_t local_port;
  uint16_t remote_port;
  uint8_t protocol;
  uint8_t pad[3];
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), FW_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), FW_CAPACITY, &keys) &&
         nf_dchain_allocate(FW_CAPACITY, &chain);
}

static void fill_key(struct flow_key *key, const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4,
                     bool reversed) {
  memset(key, 0, sizeof *key);
  key->local_ip = reversed ? ip->dst_addr : ip->src_addr;
  key->remote_ip = reversed ? ip->src_addr : ip->dst_addr;
  key->local_port = reversed ? l4->dst_port : l4->src_port;
  key->remote_port = reversed ? l4->src_port : l4->dst_port;
  key->protocol = ip->protocol;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, now > FW_EXPIRATION_NS ? now - FW_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  struct flow_key key;
  fill_key(&key, ip, l4, device == WAN);

  int index;
  if (nf_map_get(flows, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return device == LAN ? WAN : LAN;
  }
  if (device != LAN) {
    return NF_DROP;
  }
  if (nf_dchain_allocate_new_index(chain, &index, now)) {
    nf_map_put(flows, &key, index);
    struct flow_key *cell = nf_vector_borrow(keys, index);
    memcpy(cell, &key, sizeof key);
    nf_vector_return(keys, index, cell);
  }
  return WAN;
}
