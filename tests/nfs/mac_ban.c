/*
 * mac_ban: frames from one banned MAC are dropped, found with `memcmp` against a `const` array;
 * LAN frames from other MACs pass, WAN frames pass only from MACs listed in `seen` (a map keyed by
 * the 6 address bytes, filled by nobody: a style test, not a useful NF).
 *
 * Expected: the path texts read `p.ether.src == 02:00:00:00:00:01` and `p.ether.src !=
 * 02:00:00:00:00:01` (they showed memcmp's ladder of byte tests, `(p.ether.src[47:40] == 2 ?
 * (p.ether.src[39:32] == 0 ? ... : (p.ether.src[15:8] < 0 ? -1 : 1)) ...) != 0`;
 * `tests/test_render_precedence.py`).
 */
#include "nf.h"

#define MB_CAPACITY 64

static const uint8_t banned[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static struct nf_map *seen;

bool nf_init(void) {
  return nf_map_allocate(6, MB_CAPACITY, &seen);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ether_hdr *eth = nf_ether_header(packet);
  if (memcmp(eth->src, banned, sizeof banned) == 0) {
    return NF_DROP;
  }
  int value;
  if (nf_map_get(seen, eth->src, &value)) {
    return !device;
  }
  return device == 0 ? 1 : NF_DROP;
}
