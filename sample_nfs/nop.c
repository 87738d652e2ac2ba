/*
 * nop: the smallest NF. Every packet received on the LAN (device 0) leaves on the WAN (device 1)
 * and every packet received on the WAN leaves on the LAN, untouched.
 *
 * State: none.
 * Configuration: none.
 */
#include "nf.h"

#define LAN 0
#define WAN 1

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)len;
  (void)now;
  if (device == LAN) {
    return WAN;
  }
  return LAN;
}
