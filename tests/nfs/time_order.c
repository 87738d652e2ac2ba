/*
 * time_order: every frame goes back out of its device, except one whose time is before the time
 * of the frame before it: that one is answered with device 7, which the NF does not have, so the
 * harness stops naming it. A bench whose laps shift time past 2**64 ns and wrap stops here.
 */
#include "nf.h"

static nf_time_t last;

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)len;
  if (now < last) return 7;
  last = now;
  return device;
}
