/*
 * dst_sketch: a per-destination packet limiter. LAN frames to a destination address that has
 * received DS_LIMIT frames in the current window (a count-min sketch of destinations, counters
 * zeroed DS_WINDOW_NS after their last increment) are dropped; the others are counted and go to
 * the WAN. WAN frames go to the LAN untouched.
 *
 * Expected: shared-nothing; the LAN hashes the destination address (the sketch is written only by
 * LAN frames, keyed by it); the WAN has no state, any key.
 */
#include "nf.h"

#ifndef DS_LIMIT
#define DS_LIMIT 50
#endif
#ifndef DS_WIDTH
#define DS_WIDTH 1024
#endif
#ifndef DS_WINDOW_NS
#define DS_WINDOW_NS (NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct destination {
  uint32_t addr;
};

static struct nf_sketch *destinations;

bool nf_init(void) { return nf_sketch_allocate(sizeof(struct destination), DS_WIDTH, &destinations); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_sketch_expire(destinations, now > DS_WINDOW_NS ? now - DS_WINDOW_NS : 0);
  if (device != LAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return WAN;
  }
  struct destination key = {.addr = ip->dst_addr};
  if (nf_sketch_estimate(destinations, &key) >= DS_LIMIT) {
    return NF_DROP;
  }
  nf_sketch_touch(destinations, &key, now);
  return WAN;
}
