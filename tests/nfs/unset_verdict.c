/*
 * unset_verdict: a three-port forwarder (LAN, WAN, DMZ) whose switch on the input device sets the
 * output port for LAN and WAN only; a DMZ frame returns `out` unset. gcc returns whatever the
 * stack held; the analysis took it as 0 (forward to the LAN) and every stage went on.
 *
 * Expected: refused by the analysis at `return out;`, naming the variable (tests/test_symbex_unsupported.py).
 */
#define NF_DEVICES 3
#include "nf.h"

#define LAN 0
#define WAN 1
#define DMZ 2

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)len;
  (void)now;
  int out;
  switch (device) {
  case LAN:
    out = WAN;
    break;
  case WAN:
    out = LAN;
    break;
  }
  return out;
}
