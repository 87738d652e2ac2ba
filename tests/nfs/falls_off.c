/*
 * falls_off: a forwarder whose WAN branch returns only for IPv4 frames: a WAN frame that is not
 * IPv4 runs off the end of nf_process (gcc warns, and the caller reads whatever the register
 * held as the verdict).
 *
 * Expected: refused by the analysis, saying that a path reaches the closing brace and on which
 * device (tests/test_symbex_unsupported.py); it said only "must return a device, NF_DROP or
 * NF_FLOOD" at the function's name.
 */
#include "nf.h"

#define LAN 0
#define WAN 1

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device == LAN) {
    return WAN;
  }
  if (nf_ipv4_header(packet, len) != NULL) {
    return LAN;
  }
}
