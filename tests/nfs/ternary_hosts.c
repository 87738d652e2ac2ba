/*
 * ternary_hosts: frames per LAN host in both directions, the host chosen with `?:` by device (its
 * source address from the LAN, its destination address from the WAN) through a helper with a
 * bool parameter. A host over TH_LIMIT frames is dropped until idle for TH_EXPIRATION_NS.
 *
 * Expected: shared-nothing, like the same NF written with if/else: the LAN hashes the source
 * address, the WAN the destination address (issue 10 item 1: the key depends on p.device only
 * through the path condition, which fixes it).
 */
#include "nf.h"

#ifndef TH_CAPACITY
#define TH_CAPACITY 4096
#endif
#ifndef TH_LIMIT
#define TH_LIMIT 100
#endif
#ifndef TH_EXPIRATION_NS
#define TH_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct host {
  uint32_t addr;
};

struct tally {
  uint32_t frames;
};

static struct nf_map *hosts;
static struct nf_vector *addrs;
static struct nf_vector *tallies;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), TH_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host), TH_CAPACITY, &addrs) &&
         nf_vector_allocate(sizeof(struct tally), TH_CAPACITY, &tallies) &&
         nf_dchain_allocate(TH_CAPACITY, &chain);
}

static void fill_key(struct host *key, const struct nf_ipv4_hdr *ip, bool from_wan) {
  key->addr = from_wan ? ip->dst_addr : ip->src_addr;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, hosts, now > TH_EXPIRATION_NS ? now - TH_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct host key;
  fill_key(&key, ip, device == WAN);
  int index;
  if (!nf_map_get(hosts, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &key, index);
    struct host *cell = nf_vector_borrow(addrs, index);
    cell->addr = key.addr;
    nf_vector_return(addrs, index, cell);
    struct tally *fresh = nf_vector_borrow(tallies, index);
    fresh->frames = 0;
    nf_vector_return(tallies, index, fresh);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct tally *t = nf_vector_borrow(tallies, index);
  bool over = t->frames >= TH_LIMIT;
  if (!over) {
    t->frames += 1;
  }
  nf_vector_return(tallies, index, t);
  return over ? NF_DROP : (device == LAN ? WAN : LAN);
}
