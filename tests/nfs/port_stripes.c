/*
 * port_stripes: frame counters in 64 stripes by client port, the way a statistics table spreads
 * its writers: a LAN frame (TCP/UDP) counts in stripe nf_ntohs(src_port) % 64, its reply from the
 * WAN in stripe nf_ntohs(dst_port) & 63. Every PS_PERIOD-th frame of a stripe is dropped (a
 * sampler's cut); other frames cross untouched.
 *
 * Expected: sn, LAN hashing src_port and WAN dst_port, bits 10-15 only (the port's low six bits):
 * the low bits already feed the RETA index's low bits, so the round-robin RETA stays
 * (tests/test_port_spread.py).
 */
#include "nf.h"

#ifndef PS_PERIOD
#define PS_PERIOD 7
#endif
#define PS_STRIPES 64

#define LAN 0
#define WAN 1

struct stripe {
  uint32_t frames;
};

static struct nf_vector *stripes;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(struct stripe), PS_STRIPES, &stripes);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return out;
  }
  int which = device == LAN ? nf_ntohs(l4->src_port) % PS_STRIPES : nf_ntohs(l4->dst_port) & (PS_STRIPES - 1);
  struct stripe *s = nf_vector_borrow(stripes, which);
  s->frames += 1;
  bool cut = s->frames % PS_PERIOD == 0;
  nf_vector_return(stripes, which, s);
  return cut ? NF_DROP : out;
}
