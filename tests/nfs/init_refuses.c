/* init_refuses: a test NF whose nf_init fails at run time when MAP_CAPACITY is more than the state
 * library takes (rte_hash tops out at 2^29 entries for a map; the analyzer assumes every allocation
 * succeeds). Packets cross between the two devices untouched. Used to check every driver's nf_init
 * failure path, e.g. with --define MAP_CAPACITY=1073741824. */
#include "nf.h"

#ifndef MAP_CAPACITY
#define MAP_CAPACITY 16
#endif

static struct nf_map *map;

bool nf_init(void) { return nf_map_allocate(4, MAP_CAPACITY, &map); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)len;
  (void)now;
  return device == 0 ? 1 : 0;
}
