/*
 * agg_policer: one token bucket of AP_BURST bytes, refilled at AP_RATE_BPS bytes per second, for
 * all WAN -> LAN traffic. A WAN frame is forwarded when the bucket holds its length, which it then
 * takes, and dropped otherwise. A LAN -> WAN frame only looks at the bucket: it is forwarded while
 * the bucket is at least half full, and dropped when the LAN side is congested.
 *
 * Expected: locks. The bucket's index is a constant, so every frame of both devices uses it. Under
 * locks, WAN frames change the bucket's cell in reader passes (cell locks), and LAN frames only
 * read it. That tests the cell locks' rules: a refill never runs back in time, where `now - time`
 * would wrap, and a LAN frame that saw the bucket before a WAN frame's write is ordered before it.
 */
#include "nf.h"

#ifndef AP_RATE_BPS
#define AP_RATE_BPS 2000000ULL
#endif
#ifndef AP_BURST
#define AP_BURST 20000ULL
#endif

#define LAN 0
#define WAN 1

struct bucket {
  uint64_t tokens; /* bytes */
  uint64_t time;   /* ns, last refill */
};

static struct nf_vector *bucket;

bool nf_init(void) {
  if (!nf_vector_allocate(sizeof(struct bucket), 1, &bucket)) {
    return false;
  }
  struct bucket *b = nf_vector_borrow(bucket, 0);
  b->tokens = AP_BURST;
  b->time = 0;
  nf_vector_return(bucket, 0, b);
  return true;
}

/* The bucket's bytes at `now`: what it held, plus the refill since, capped at AP_BURST. */
static uint64_t refilled(const struct bucket *b, nf_time_t now) {
  uint64_t tokens = b->tokens + (now - b->time) * AP_RATE_BPS / NF_NS_PER_SEC;
  return tokens > AP_BURST ? AP_BURST : tokens;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  struct bucket *b = nf_vector_borrow(bucket, 0);
  uint64_t tokens = refilled(b, now);
  int verdict;
  if (device == LAN) {
    verdict = tokens >= AP_BURST / 2 ? WAN : NF_DROP;
  } else {
    verdict = NF_DROP;
    if (len <= tokens) {
      tokens -= len;
      verdict = LAN;
    }
    b->tokens = tokens;
    b->time = now;
  }
  nf_vector_return(bucket, 0, b);
  return verdict;
}
