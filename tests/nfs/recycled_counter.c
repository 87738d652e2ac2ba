/*
 * recycled_counter: frame budget per LAN (source, destination) address pair, RC_BUDGET frames, the
 * count in a vector at the pair's dchain index. A new pair's counter is NOT reset: it adds to what
 * the index's last holder left there (an expired pair), as an NF that forgets to clear a recycled
 * cell does.
 *
 * Sharded, each core hands out its own indices, so a new pair inherits another pair's count than
 * it does sequentially: sn was NOT equivalent (626 of 20000 bidir packets at 3 cores with a 1 ms
 * age). nfx locks the dchain and what follows it (explorer/sharding/recycling.py). With
 * -D RC_RESET the new pair's counter starts at 1 and the table shards; with -D RC_HITS_ONLY a new
 * pair's first frame is not counted, so only later frames read the cell its index's last holder left
 * (locked as well: the path that hands the index out does not write the cell). With -D RC_UNREAD
 * the count decides nothing (every LAN frame goes out), so the table shards.
 */
#include "nf.h"

#ifndef RC_CAPACITY
#define RC_CAPACITY 1024
#endif
#ifndef RC_EXPIRATION_NS
#define RC_EXPIRATION_NS 1000000
#endif
#ifndef RC_BUDGET
#define RC_BUDGET 5
#endif

#define LAN 0
#define WAN 1

struct pair {
  uint32_t src;
  uint32_t dst;
};

static struct nf_map *pairs;
static struct nf_vector *keys;
static struct nf_dchain *chain;
static struct nf_vector *counts;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct pair), RC_CAPACITY, &pairs) &&
         nf_vector_allocate(sizeof(struct pair), RC_CAPACITY, &keys) && nf_dchain_allocate(RC_CAPACITY, &chain) &&
         nf_vector_allocate(sizeof(uint32_t), RC_CAPACITY, &counts);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, pairs, now > RC_EXPIRATION_NS ? now - RC_EXPIRATION_NS : 0);
  if (device != LAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct pair key = {ip->src_addr, ip->dst_addr};
  int index;
  if (nf_map_get(pairs, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(pairs, &key, index);
    struct pair *cell = nf_vector_borrow(keys, index);
    *cell = key;
    nf_vector_return(keys, index, cell);
#ifdef RC_RESET
    uint32_t *fresh = nf_vector_borrow(counts, index);
    *fresh = 0;
    nf_vector_return(counts, index, fresh);
#endif
#ifdef RC_HITS_ONLY
    return WAN;
#endif
  }
  uint32_t *count = nf_vector_borrow(counts, index);
  uint32_t frames = *count + 1;
  *count = frames;
  nf_vector_return(counts, index, count);
#ifdef RC_UNREAD
  (void)frames; /* counted, never looked at: what a new pair inherits decides nothing */
  return WAN;
#else
  return frames > RC_BUDGET ? NF_DROP : WAN;
#endif
}
