/*
 * dst_src: LAN frames count per destination host (a map with expiry) and remember, per source host,
 * the last destination it talked to (a second map with expiry). A LAN frame to a destination that
 * already got DS_MAX frames is dropped. WAN frames pass only when their destination (a LAN host) is
 * in the source table and talked last to the WAN frame's source.
 * Expected: both tables locked: LAN frames use a dst_ip key and a src_ip key together. `nfx traffic
 * paths` follows all 12 paths: a fill of dst_chain needs frames to new destinations (the fill's
 * first choice, new sources to one destination, stops at its DS_MAX-th frame), a fill of
 * src_chain new sources and destinations both.
 */
#include "nf.h"

#ifndef DS_MAX
#define DS_MAX 5
#endif
#ifndef DS_CAP
#define DS_CAP 256
#endif
#ifndef DS_AGE
#define DS_AGE (3 * NF_NS_PER_SEC)
#endif

struct host {
  uint32_t addr;
};

static struct nf_map *dsts;
static struct nf_vector *dst_keys;
static struct nf_vector *dst_count;
static struct nf_dchain *dst_chain;
static struct nf_map *srcs;
static struct nf_vector *src_keys;
static struct nf_vector *src_last;
static struct nf_dchain *src_chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), DS_CAP, &dsts) &&
         nf_vector_allocate(sizeof(struct host), DS_CAP, &dst_keys) &&
         nf_vector_allocate(sizeof(uint32_t), DS_CAP, &dst_count) &&
         nf_dchain_allocate(DS_CAP, &dst_chain) &&
         nf_map_allocate(sizeof(struct host), DS_CAP, &srcs) &&
         nf_vector_allocate(sizeof(struct host), DS_CAP, &src_keys) &&
         nf_vector_allocate(sizeof(uint32_t), DS_CAP, &src_last) &&
         nf_dchain_allocate(DS_CAP, &src_chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t old = now > DS_AGE ? now - DS_AGE : 0;
  nf_expire_items(dst_chain, dst_keys, dsts, old);
  nf_expire_items(src_chain, src_keys, srcs, old);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  if (device == 0) {
    struct host d = {.addr = ip->dst_addr};
    int di;
    if (nf_map_get(dsts, &d, &di)) {
      uint32_t *c = nf_vector_borrow(dst_count, di);
      if (*c >= DS_MAX) {
        nf_vector_return(dst_count, di, c);
        return NF_DROP;
      }
      *c += 1;
      nf_vector_return(dst_count, di, c);
      nf_dchain_rejuvenate_index(dst_chain, di, now);
    } else {
      if (!nf_dchain_allocate_new_index(dst_chain, &di, now)) {
        return NF_DROP;
      }
      nf_map_put(dsts, &d, di);
      struct host *k = nf_vector_borrow(dst_keys, di);
      k->addr = d.addr;
      nf_vector_return(dst_keys, di, k);
      uint32_t *c = nf_vector_borrow(dst_count, di);
      *c = 1;
      nf_vector_return(dst_count, di, c);
    }
    struct host s = {.addr = ip->src_addr};
    int si;
    if (!nf_map_get(srcs, &s, &si)) {
      if (!nf_dchain_allocate_new_index(src_chain, &si, now)) {
        return 1;
      }
      nf_map_put(srcs, &s, si);
      struct host *k = nf_vector_borrow(src_keys, si);
      k->addr = s.addr;
      nf_vector_return(src_keys, si, k);
    } else {
      nf_dchain_rejuvenate_index(src_chain, si, now);
    }
    uint32_t *last = nf_vector_borrow(src_last, si);
    *last = ip->dst_addr;
    nf_vector_return(src_last, si, last);
    return 1;
  }
  struct host s = {.addr = ip->dst_addr};
  int si;
  if (!nf_map_get(srcs, &s, &si)) {
    return NF_DROP;
  }
  uint32_t *last = nf_vector_borrow(src_last, si);
  bool ok = *last == ip->src_addr;
  nf_vector_return(src_last, si, last);
  return ok ? 0 : NF_DROP;
}
