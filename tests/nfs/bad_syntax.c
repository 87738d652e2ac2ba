/* bad_syntax: a test NF that is not valid C (a missing expression on line 6). */
#include "nf.h"
bool nf_init(void) { return true; }
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet; (void)len; (void)now;
  int x = ;
  return device;
}
