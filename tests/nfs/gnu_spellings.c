/*
 * gnu_spellings: a forwarder written with GNU C's spellings of C keywords (__inline__, __restrict,
 * __volatile__, __const, __signed__, __alignof__), as code written for -std=c99 or copied from
 * system headers has them. Frames whose length, as a signed char, is negative are dropped; the
 * others are forwarded when the length plus uint64_t's alignment (8) is odd.
 */
#include "nf.h"

static __inline__ int odd_sum(const uint8_t *__restrict bytes, __volatile__ int k) {
  return (bytes[0] + k) & 1;
}

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)now;
  __const __signed__ char low = (signed char)len;
  uint8_t align[1] = {(uint8_t)__alignof__(uint64_t)};
  if (low < 0) {
    return NF_DROP;
  }
  return odd_sum(align, len) ? 1 - device : NF_DROP;
}
