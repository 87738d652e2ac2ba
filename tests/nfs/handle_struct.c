/*
 * handle_struct: the firewall of fw_ifelse.c written the way many C programmers keep their state:
 * the three handles in one global struct (`st.flows`, ...), set by nf_init through a pointer to
 * it, and the lookup and the insertion in helpers that take that pointer.
 *
 * Expected: the objects are named st.flows, st.keys and st.chain; sn exactly like fw_ifelse.c
 * (the flow table sharded on the 5-tuple both ways); equivalent under `check` at 2 and 3 cores.
 * The analysis refused it ("must store the handle in a global variable (pass &global)").
 */
#include "nf.h"

#ifndef HS_CAPACITY
#define HS_CAPACITY 4096
#endif
#define HS_EXPIRATION_NS (60 * NF_NS_PER_SEC)
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

struct tables {
  struct nf_map *flows;
  struct nf_vector *keys;
  struct nf_dchain *chain;
};

static struct tables st;

static bool tables_allocate(struct tables *t) {
  return nf_map_allocate(sizeof(struct flow_key), HS_CAPACITY, &t->flows) &&
         nf_vector_allocate(sizeof(struct flow_key), HS_CAPACITY, &t->keys) &&
         nf_dchain_allocate(HS_CAPACITY, &t->chain);
}

bool nf_init(void) {
  return tables_allocate(&st);
}

static bool flow_known(const struct tables *t, const struct flow_key *key, nf_time_t now) {
  int index;
  if (!nf_map_get(t->flows, key, &index)) {
    return false;
  }
  nf_dchain_rejuvenate_index(t->chain, index, now);
  return true;
}

static void flow_add(struct tables *t, const struct flow_key *key, nf_time_t now) {
  int index;
  if (nf_dchain_allocate_new_index(t->chain, &index, now)) {
    nf_map_put(t->flows, key, index);
    struct flow_key *cell = nf_vector_borrow(t->keys, index);
    memcpy(cell, key, sizeof *key);
    nf_vector_return(t->keys, index, cell);
  }
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(st.chain, st.keys, st.flows, now > HS_EXPIRATION_NS ? now - HS_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  struct flow_key key;
  memset(&key, 0, sizeof key);
  if (device == LAN) {
    key.local_ip = ip->src_addr;
    key.remote_ip = ip->dst_addr;
    key.local_port = l4->src_port;
    key.remote_port = l4->dst_port;
  } else {
    key.local_ip = ip->dst_addr;
    key.remote_ip = ip->src_addr;
    key.local_port = l4->dst_port;
    key.remote_port = l4->src_port;
  }
  key.protocol = ip->protocol;
  if (flow_known(&st, &key, now)) {
    return device == LAN ? WAN : LAN;
  }
  if (device != LAN) {
    return NF_DROP;
  }
  flow_add(&st, &key, now);
  return WAN;
}
