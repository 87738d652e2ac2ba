/*
 * host_union: at most HU_MAX frames per LAN source host (until the host is idle for
 * HU_EXPIRATION_NS); WAN frames pass. The table's key is a union of the address and its bytes.
 *
 * State:
 *   hosts  map union host_key -> index
 *   chain  dchain handing out indices, with expiry
 *   keys   vector union host_key (for expiry)
 *   used   vector uint32_t, frames per host
 *
 * Expected: sn, the LAN hashing src_ip. A key over the union reads {addr: p.ipv4.src} once (it
 * repeated the same bytes for each member), and the raw uint32_t cell reads as used.cell#n, not
 * bswap32(used.cell#n).
 *
 * Configuration (override with --define NAME=VALUE):
 *   HU_MAX            frames per host
 *   HU_CAPACITY       hosts
 *   HU_EXPIRATION_NS  idle time after which a host is forgotten
 */
#include "nf.h"

#ifndef HU_MAX
#define HU_MAX 100
#endif
#ifndef HU_CAPACITY
#define HU_CAPACITY 1024
#endif
#ifndef HU_EXPIRATION_NS
#define HU_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

union host_key {
  uint32_t addr;
  uint8_t bytes[4];
};

static struct nf_map *hosts;
static struct nf_dchain *chain;
static struct nf_vector *keys;
static struct nf_vector *used;

bool nf_init(void) {
  return nf_map_allocate(sizeof(union host_key), HU_CAPACITY, &hosts) &&
         nf_dchain_allocate(HU_CAPACITY, &chain) &&
         nf_vector_allocate(sizeof(union host_key), HU_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(uint32_t), HU_CAPACITY, &used);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, now > HU_EXPIRATION_NS ? now - HU_EXPIRATION_NS : 0);
  if (device != LAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return WAN;
  }
  union host_key key;
  key.addr = ip->src_addr;
  int index;
  if (nf_map_get(hosts, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    union host_key *stored = nf_vector_borrow(keys, index);
    *stored = key;
    nf_vector_return(keys, index, stored);
    nf_map_put(hosts, &key, index);
    uint32_t *fresh = nf_vector_borrow(used, index);
    *fresh = 0;
    nf_vector_return(used, index, fresh);
  }
  uint32_t *count = nf_vector_borrow(used, index);
  bool over = *count >= HU_MAX;
  if (!over) {
    *count += 1;
  }
  nf_vector_return(used, index, count);
  return over ? NF_DROP : WAN;
}
