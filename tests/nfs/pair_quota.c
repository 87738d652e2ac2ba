/*
 * pair_quota: a packet budget per unordered pair of IPv4 hosts. A frame A->B and a frame B->A
 * share one counter, whichever device they come from: the key is the two addresses in numeric
 * order. A pair over PQ_QUOTA frames is dropped until it has been idle for PQ_EXPIRATION_NS.
 * Both devices forward to the other.
 */
#include "nf.h"

#ifndef PQ_CAPACITY
#define PQ_CAPACITY 4096
#endif
#ifndef PQ_QUOTA
#define PQ_QUOTA 100
#endif
#ifndef PQ_EXPIRATION_NS
#define PQ_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

struct pair_key {
  uint32_t low;
  uint32_t high;
};

struct count {
  uint32_t frames;
};

static struct nf_map *pairs;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct pair_key), PQ_CAPACITY, &pairs) &&
         nf_vector_allocate(sizeof(struct pair_key), PQ_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct count), PQ_CAPACITY, &counts) &&
         nf_dchain_allocate(PQ_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, pairs, now > PQ_EXPIRATION_NS ? now - PQ_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  uint32_t a = nf_ntohl(ip->src_addr);
  uint32_t b = nf_ntohl(ip->dst_addr);
  struct pair_key key;
  key.low = a < b ? a : b;
  key.high = a < b ? b : a;
  int index;
  if (!nf_map_get(pairs, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(pairs, &key, index);
    struct pair_key *cell = nf_vector_borrow(keys, index);
    *cell = key;
    nf_vector_return(keys, index, cell);
    struct count *fresh = nf_vector_borrow(counts, index);
    fresh->frames = 0;
    nf_vector_return(counts, index, fresh);
  }
  struct count *c = nf_vector_borrow(counts, index);
  if (c->frames >= PQ_QUOTA) {
    nf_vector_return(counts, index, c);
    return NF_DROP;
  }
  c->frames += 1;
  nf_vector_return(counts, index, c);
  nf_dchain_rejuvenate_index(chain, index, now);
  return device == 0 ? 1 : 0;
}
