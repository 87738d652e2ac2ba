/*
 * inline_key: a stateful firewall whose flow key comes back by value from a `static inline
 * __attribute__((always_inline))` helper filled with a designated initializer and `?:` per
 * direction; `now` is marked `__attribute__((unused))` through a macro although the NF uses it
 * (gcc accepts that), and the verdicts are `!device` and early returns.
 *
 * Expected: analysed, solved and generated like fw_ifelse.c (sn, the flow table sharded on the
 * 5-tuple both ways); equivalent under `check` at 2 and 3 cores. Attributes that change no layout
 * or meaning (unused, always_inline, noinline, cold, hot, ...) are read past; `packed` and
 * `aligned` are still refused at their line (the analysis refused every `__attribute__`;
 * `tests/test_frontend.py`).
 */
#include "nf.h"

#ifndef IK_CAPACITY
#define IK_CAPACITY 4096
#endif
#define IK_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#define UNUSED __attribute__((unused))

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

static inline __attribute__((always_inline)) struct flow_key key_of(const struct nf_ipv4_hdr *ip,
                                                                    const struct nf_tcpudp_hdr *l4, bool reply) {
  struct flow_key key = {
    .local_ip = reply ? ip->dst_addr : ip->src_addr,
    .remote_ip = reply ? ip->src_addr : ip->dst_addr,
    .local_port = reply ? l4->dst_port : l4->src_port,
    .remote_port = reply ? l4->src_port : l4->dst_port,
    .protocol = ip->protocol,
  };
  return key;
}

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), IK_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), IK_CAPACITY, &keys) &&
         nf_dchain_allocate(IK_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now UNUSED) {
  nf_expire_items(chain, keys, flows, now > IK_EXPIRATION_NS ? now - IK_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) {
    return NF_DROP;
  }
  struct flow_key key = key_of(ip, l4, device != 0);
  int index;
  if (nf_map_get(flows, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return !device;
  }
  if (device) {
    return NF_DROP;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) {
    return NF_DROP;
  }
  nf_map_put(flows, &key, index);
  struct flow_key *cell = nf_vector_borrow(keys, index);
  *cell = key;
  nf_vector_return(keys, index, cell);
  return 1;
}
