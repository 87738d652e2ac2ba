/*
 * ttl_guard: a router's hop-limit step. IPv4 frames with TTL 0 or 1 are dropped; the others get
 * TTL - 1 and a recomputed IPv4 checksum, and go to the other device. Non-IPv4 frames pass.
 *
 * Expected: shared-nothing with any key: no state (the rewritten field is not index-derived, so
 * check compares it exactly).
 */
#include "nf.h"

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == 0 ? 1 : 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return out;
  }
  if (ip->ttl <= 1) {
    return NF_DROP;
  }
  ip->ttl = (uint8_t)(ip->ttl - 1);
  nf_update_checksums(packet, len);
  return out;
}
