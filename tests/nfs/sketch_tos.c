/*
 * sketch_tos: marks each LAN frame's TOS with how many frames its source host sent recently, as a
 * count-min sketch estimates it (capped at 255); WAN frames pass unmarked.
 *
 * Expected: sn, the sketch sharded on the LAN source address. Each core's copy counts only its own
 * hosts, so its estimates collide less than the sequential sketch's: the TOS differs (documented
 * sketch drift), and in check's closed loop the replies to those frames differ between the runs
 * too, which is the same drift, not a failure (it was reported NOT equivalent).
 */
#include "nf.h"

#ifndef ST_WIDTH
#define ST_WIDTH 16
#endif
#ifndef ST_WINDOW_NS
#define ST_WINDOW_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct host {
  uint32_t addr;
};

static struct nf_sketch *recent;

bool nf_init(void) {
  return nf_sketch_allocate(sizeof(struct host), ST_WIDTH, &recent);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_sketch_expire(recent, now > ST_WINDOW_NS ? now - ST_WINDOW_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  if (device != LAN) {
    return LAN;
  }
  struct host key = {ip->src_addr};
  nf_sketch_touch(recent, &key, now);
  uint32_t seen = nf_sketch_estimate(recent, &key);
  ip->tos = seen > 255 ? 255 : (uint8_t)seen;
  nf_update_checksums(packet, len);
  return WAN;
}
