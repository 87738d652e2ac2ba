/*
 * host_bytes: byte counters per LAN host, both directions, with a quota. A LAN host is known by
 * its address: its source address on frames from the LAN, its destination address on frames from
 * the WAN. Every IPv4 frame adds its length to its host's counter; a host over HB_QUOTA bytes has
 * its frames dropped (both ways) until it has been idle for HB_EXPIRATION_NS.
 *
 * Expected: shared-nothing; the LAN hashes the source address, the WAN the destination address.
 *
 * State: hosts map (LAN address -> index), addrs vector (address per index, for expiry),
 * bytes vector (u64 counter per index), chain (dchain, last activity).
 */
#include "nf.h"

#ifndef HB_CAPACITY
#define HB_CAPACITY 4096
#endif
#ifndef HB_QUOTA
#define HB_QUOTA 100000
#endif
#ifndef HB_EXPIRATION_NS
#define HB_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct host_key {
  uint32_t addr;
};

struct counter {
  uint64_t bytes;
};

static struct nf_map *hosts;
static struct nf_vector *addrs;
static struct nf_vector *bytes;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host_key), HB_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host_key), HB_CAPACITY, &addrs) &&
         nf_vector_allocate(sizeof(struct counter), HB_CAPACITY, &bytes) &&
         nf_dchain_allocate(HB_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, hosts, now > HB_EXPIRATION_NS ? now - HB_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct host_key key;
  if (device == LAN) {
    key.addr = ip->src_addr;
  } else {
    key.addr = ip->dst_addr;
  }
  int index;
  if (!nf_map_get(hosts, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP; /* too many hosts at once */
    }
    nf_map_put(hosts, &key, index);
    struct host_key *cell = nf_vector_borrow(addrs, index);
    cell->addr = key.addr;
    nf_vector_return(addrs, index, cell);
    struct counter *fresh = nf_vector_borrow(bytes, index); /* a reused index keeps its old count */
    fresh->bytes = 0;
    nf_vector_return(bytes, index, fresh);
  }
  struct counter *counter = nf_vector_borrow(bytes, index);
  if (counter->bytes > HB_QUOTA) {
    nf_vector_return(bytes, index, counter);
    return NF_DROP; /* over quota: no refresh, so that the host recovers once idle */
  }
  counter->bytes += len;
  nf_vector_return(bytes, index, counter);
  nf_dchain_rejuvenate_index(chain, index, now);
  return device == LAN ? WAN : LAN;
}
