/*
 * byte_quota: a byte quota per LAN source host, counted from the IPv4 total length (not the
 * frame's). A host whose bytes pass BQ_QUOTA has its frames dropped until its entry expires.
 * WAN frames pass.
 *
 * Expected: sn, the LAN hashes src_ip; `nfx traffic paths` builds frames whose total_length the
 * path's condition constrains (the over-quota path needs large ones).
 */
#include "nf.h"

#ifndef BQ_CAPACITY
#define BQ_CAPACITY 1024
#endif
#ifndef BQ_QUOTA
#define BQ_QUOTA 3000u
#endif
#ifndef BQ_EXPIRATION_NS
#define BQ_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct host {
  uint32_t addr;
};

struct usage {
  uint32_t bytes;
};

static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_vector *usage;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), BQ_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host), BQ_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct usage), BQ_CAPACITY, &usage) &&
         nf_dchain_allocate(BQ_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, now > BQ_EXPIRATION_NS ? now - BQ_EXPIRATION_NS : 0);
  if (device != LAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return WAN;
  }
  struct host key = {ip->src_addr};
  int index;
  if (nf_map_get(hosts, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &key, index);
    struct host *cell = nf_vector_borrow(keys, index);
    *cell = key;
    nf_vector_return(keys, index, cell);
  }
  struct usage *u = nf_vector_borrow(usage, index);
  u->bytes += nf_ntohs(ip->total_length);
  bool over = u->bytes > BQ_QUOTA;
  nf_vector_return(usage, index, u);
  return over ? NF_DROP : WAN;
}
