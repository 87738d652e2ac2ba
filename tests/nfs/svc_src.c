/* svc_src: per-service connection budget with a per-client fairness counter. A service is the
 * (destination address, destination port, protocol) of a LAN -> WAN frame; every service gets
 * SS_SVC_BUDGET frames per window, and each LAN client SS_SRC_BUDGET frames over all services.
 * Two tables with different keys written by the same frames: no RSS key can shard both.
 * Helpers take header pointers and return through out-parameters.
 *
 * Expected: locks; nfx solve says device 0 has no RSS field common to both tables (src_map needs
 * src_ip, svc_map dst_ip and dst_port), each of which could shard alone.
 */
#include "nf.h"

#ifndef SS_CAP
#define SS_CAP 256
#endif
#ifndef SS_SVC_BUDGET
#define SS_SVC_BUDGET 1000
#endif
#ifndef SS_SRC_BUDGET
#define SS_SRC_BUDGET 50
#endif
#define SS_AGE (10 * NF_NS_PER_SEC)

struct svc_key {
  uint32_t addr;
  uint16_t port;
  uint8_t proto;
  uint8_t zero;
};

struct src_key {
  uint32_t addr;
};

static struct nf_map *svc_map;
static struct nf_vector *svc_keys, *svc_count;
static struct nf_dchain *svc_chain;
static struct nf_map *src_map;
static struct nf_vector *src_keys, *src_count;
static struct nf_dchain *src_chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct svc_key), SS_CAP, &svc_map)
      && nf_vector_allocate(sizeof(struct svc_key), SS_CAP, &svc_keys)
      && nf_vector_allocate(sizeof(uint32_t), SS_CAP, &svc_count)
      && nf_dchain_allocate(SS_CAP, &svc_chain)
      && nf_map_allocate(sizeof(struct src_key), SS_CAP, &src_map)
      && nf_vector_allocate(sizeof(struct src_key), SS_CAP, &src_keys)
      && nf_vector_allocate(sizeof(uint32_t), SS_CAP, &src_count)
      && nf_dchain_allocate(SS_CAP, &src_chain);
}

/* Fills *svc and *src from the headers; false when the frame has no service. */
static bool keys_of(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4,
                    struct svc_key *svc, struct src_key *src) {
  if (ip == NULL || l4 == NULL) {
    return false;
  }
  svc->addr = ip->dst_addr;
  svc->port = l4->dst_port;
  svc->proto = ip->protocol;
  svc->zero = 0;
  src->addr = ip->src_addr;
  return true;
}

/* Counts one frame for key in (map, keys, counts, chain); *over set when the count passes limit. */
static void count_in(struct nf_map *map, struct nf_vector *keys, struct nf_vector *counts,
                     struct nf_dchain *chain, const void *key, size_t key_size, uint32_t limit,
                     nf_time_t now, bool *over) {
  int index;
  *over = false;
  if (!nf_map_get(map, key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      *over = true;
      return;
    }
    nf_map_put(map, key, index);
    void *cell = nf_vector_borrow(keys, index);
    memcpy(cell, key, key_size);
    nf_vector_return(keys, index, cell);
    uint32_t *fresh = nf_vector_borrow(counts, index);
    *fresh = 0;
    nf_vector_return(counts, index, fresh);
  } else {
    nf_dchain_rejuvenate_index(chain, index, now);
  }
  uint32_t *c = nf_vector_borrow(counts, index);
  if (*c >= limit) {
    *over = true;
  } else {
    *c += 1;
  }
  nf_vector_return(counts, index, c);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t old = now > SS_AGE ? now - SS_AGE : 0;
  nf_expire_items(svc_chain, svc_keys, svc_map, old);
  nf_expire_items(src_chain, src_keys, src_map, old);
  if (device != 0) {
    return 0;
  }
  struct svc_key svc;
  struct src_key src;
  if (!keys_of(nf_ipv4_header(packet, len), nf_tcpudp_header(packet, len), &svc, &src)) {
    return 1;
  }
  bool svc_over, src_over;
  count_in(src_map, src_keys, src_count, src_chain, &src, sizeof src, SS_SRC_BUDGET, now, &src_over);
  if (src_over) {
    return NF_DROP;
  }
  count_in(svc_map, svc_keys, svc_count, svc_chain, &svc, sizeof svc, SS_SVC_BUDGET, now, &svc_over);
  return svc_over ? NF_DROP : 1;
}
