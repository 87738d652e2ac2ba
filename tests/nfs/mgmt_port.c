/*
 * mgmt_port: a LAN/WAN forwarder with a management port whose author forgot to define NF_DEVICES 3
 * before including nf.h: the NF has the default two devices, so the test for MGMT never holds.
 * Legal C, and every stage runs; the analysis warns at the `case MGMT:` line (and at nothing
 * else: `device == WAN` after `device == LAN` failed is decided by the path, `device > WAN` is a
 * guard, not a port).
 */
#include "nf.h"

#define LAN 0
#define WAN 1
#define MGMT 2

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  switch (device) {
    case MGMT:
      return NF_FLOOD;
    default:
      break;
  }
  if (device == LAN) return WAN;
  if (device == WAN) return LAN;
  if (device > WAN) return NF_DROP;
  return NF_DROP;
}
