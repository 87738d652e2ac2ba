/* burst_gate: a per-source frame budget on the LAN side. A source's first frame takes an entry;
 * each frame after it counts, and past BG_LIMIT frames the source is cut off until its entry
 * expires (BG_AGE of silence). The "over the limit" path needs BG_LIMIT frames of one source
 * first, and the "table full" path BG_CAP sources.
 *
 * Expected: every path reachable from packets (tests/test_check.py, the witness search).
 */
#include "nf.h"

#ifndef BG_CAP
#define BG_CAP 32
#endif
#ifndef BG_LIMIT
#define BG_LIMIT 6
#endif
#define BG_AGE (5 * NF_NS_PER_SEC)

static struct nf_map *sources;
static struct nf_vector *addrs, *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(uint32_t), BG_CAP, &sources)
      && nf_vector_allocate(sizeof(uint32_t), BG_CAP, &addrs)
      && nf_vector_allocate(sizeof(uint32_t), BG_CAP, &counts)
      && nf_dchain_allocate(BG_CAP, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, sources, now > BG_AGE ? now - BG_AGE : 0);
  if (device != 0) return 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return 1;
  uint32_t src = ip->src_addr;
  int index;
  if (!nf_map_get(sources, &src, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(sources, &src, index);
    uint32_t *a = nf_vector_borrow(addrs, index);
    *a = src;
    nf_vector_return(addrs, index, a);
    uint32_t *fresh = nf_vector_borrow(counts, index);
    *fresh = 1;
    nf_vector_return(counts, index, fresh);
    return 1;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  uint32_t *c = nf_vector_borrow(counts, index);
  int verdict = 1;
  if (*c >= BG_LIMIT) verdict = NF_DROP;
  else *c += 1;
  nf_vector_return(counts, index, c);
  return verdict;
}
