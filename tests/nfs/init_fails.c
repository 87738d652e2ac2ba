/* init_fails: a test NF whose nf_init asks for an impossible map (key size 0) and fails. */
#include "nf.h"
static struct nf_map *map;
bool nf_init(void) { return nf_map_allocate(0, 16, &map); }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet; (void)len; (void)now;
  return device;
}
