/*
 * mac_counter: frames per source MAC address, with a cap: a station that sent MC_CAP frames
 * within MC_EXPIRATION_NS of its previous one is cut off (its frames dropped) until it is quiet
 * that long. Frames go to the other device.
 *
 * Expected: locks (or tm): the table is keyed by the Ethernet source, which RSS cannot hash.
 */
#include "nf.h"

#ifndef MC_CAPACITY
#define MC_CAPACITY 1024
#endif
#ifndef MC_CAP
#define MC_CAP 30
#endif
#ifndef MC_EXPIRATION_NS
#define MC_EXPIRATION_NS (5 * NF_NS_PER_SEC)
#endif

struct station {
  uint8_t addr[6];
  uint8_t pad[2];
};

struct frames {
  uint32_t count;
};

static struct nf_map *stations;
static struct nf_vector *addrs;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct station), MC_CAPACITY, &stations) &&
         nf_vector_allocate(sizeof(struct station), MC_CAPACITY, &addrs) &&
         nf_vector_allocate(sizeof(struct frames), MC_CAPACITY, &counts) &&
         nf_dchain_allocate(MC_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)len;
  nf_expire_items(chain, addrs, stations, now > MC_EXPIRATION_NS ? now - MC_EXPIRATION_NS : 0);
  struct nf_ether_hdr *ether = nf_ether_header(packet);
  struct station key;
  memset(&key, 0, sizeof key);
  memcpy(key.addr, ether->src, sizeof key.addr);
  int index;
  if (!nf_map_get(stations, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return device == 0 ? 1 : 0; /* table full: forward uncounted */
    }
    nf_map_put(stations, &key, index);
    struct station *cell = nf_vector_borrow(addrs, index);
    *cell = key;
    nf_vector_return(addrs, index, cell);
    struct frames *fresh = nf_vector_borrow(counts, index);
    fresh->count = 0;
    nf_vector_return(counts, index, fresh);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct frames *f = nf_vector_borrow(counts, index);
  bool over = f->count >= MC_CAP;
  if (!over) {
    f->count += 1;
  }
  nf_vector_return(counts, index, f);
  return over ? NF_DROP : (device == 0 ? 1 : 0);
}
