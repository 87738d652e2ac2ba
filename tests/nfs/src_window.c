/*
 * src_window: a fixed-window rate limit per WAN source. A WAN source may send SW_LIMIT IPv4 frames
 * per window of SW_WINDOW_NS; its window starts at its first frame after the previous window
 * ended, and further frames in the window are dropped. A source idle for SW_WINDOW_NS is
 * forgotten. LAN frames go to the WAN.
 *
 * Expected: shared-nothing; the WAN hashes the source address.
 */
#include "nf.h"

#ifndef SW_CAPACITY
#define SW_CAPACITY 4096
#endif
#ifndef SW_LIMIT
#define SW_LIMIT 5
#endif
#ifndef SW_WINDOW_NS
#define SW_WINDOW_NS (NF_NS_PER_SEC / 10)
#endif

#define LAN 0
#define WAN 1

struct source {
  uint32_t addr;
};

struct window {
  nf_time_t start;
  uint32_t frames;
  uint32_t pad;
};

static struct nf_map *sources;
static struct nf_vector *addrs;
static struct nf_vector *windows;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct source), SW_CAPACITY, &sources) &&
         nf_vector_allocate(sizeof(struct source), SW_CAPACITY, &addrs) &&
         nf_vector_allocate(sizeof(struct window), SW_CAPACITY, &windows) &&
         nf_dchain_allocate(SW_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, sources, now > SW_WINDOW_NS ? now - SW_WINDOW_NS : 0);
  if (device == LAN) {
    return WAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct source key = {.addr = ip->src_addr};
  int index;
  if (!nf_map_get(sources, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP; /* cannot track it: refuse */
    }
    nf_map_put(sources, &key, index);
    struct source *cell = nf_vector_borrow(addrs, index);
    cell->addr = key.addr;
    nf_vector_return(addrs, index, cell);
    struct window *fresh = nf_vector_borrow(windows, index);
    fresh->start = now;
    fresh->frames = 0;
    nf_vector_return(windows, index, fresh);
  }
  struct window *w = nf_vector_borrow(windows, index);
  if (now - w->start > SW_WINDOW_NS) {
    w->start = now;
    w->frames = 0;
  }
  bool over = w->frames >= SW_LIMIT;
  if (!over) {
    w->frames += 1;
  }
  nf_vector_return(windows, index, w);
  nf_dchain_rejuvenate_index(chain, index, now);
  return over ? NF_DROP : LAN;
}
