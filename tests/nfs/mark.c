/*
 * mark: a test NF that writes into every frame and relies on seeing it unwritten: byte 14 must be
 * 0 on arrival (else the frame is answered with device 7, which the NF does not have); it is set
 * to 1 and the frame goes back out of its device. Replaying frames without restoring them fails.
 */
#include "nf.h"

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (len < 15) return NF_DROP;
  if (packet[14] != 0) return 7;
  packet[14] = 1;
  return device;
}
