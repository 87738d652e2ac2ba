/*
 * reflect: a test NF that sends every frame back out of the device it came from, except that
 * frames whose byte 14 is 0xff are flooded and 0xdd dropped. Frames are not changed.
 */
#include "nf.h"

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (len > 14 && packet[14] == 0xff) return NF_FLOOD;
  if (len > 14 && packet[14] == 0xdd) return NF_DROP;
  return device;
}
