/*
 * tos_classes: a stateless LAN/WAN forwarder written with the habits of configurable C: a feature
 * mask macro that is 0 by default (`(ip->tos & TC_ECN_MASK) == 0` always holds), a `static inline`
 * protocol test followed by a second test it already decides (`is_udp(ip) && ip->protocol !=
 * IPPROTO_TCP`), a `switch` on the protocol and an enum of verdicts.
 *
 * Expected: the path texts leave out what the tests before them decide: no `(p.ipv4.tos & 0) ==
 * 0`, no `p.ipv4.proto != 6` after `p.ipv4.proto == 17`, and the paths of frames the first test
 * turns away read `p.ipv4.ttl <= 1` (the path conditions themselves keep every test;
 * `tests/test_conjuncts.py`). `-D TC_ECN_MASK=3` makes the mask test real.
 */
#include "nf.h"

#ifndef TC_ECN_MASK
#define TC_ECN_MASK 0
#endif
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

enum verdict { TO_LAN = 0, TO_WAN = 1, DROP = NF_DROP };

static inline bool is_udp(const struct nf_ipv4_hdr *ip) {
  return ip->protocol == IPPROTO_UDP;
}

static inline enum verdict onward(uint16_t device) {
  return device == 0 ? TO_WAN : TO_LAN;
}

bool nf_init(void) {
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return DROP;
  }
  if ((ip->tos & TC_ECN_MASK) != 0 || ip->ttl <= 1) {
    return DROP;
  }
  if (is_udp(ip) && ip->protocol != IPPROTO_TCP) {
    return onward(device);
  }
  switch (ip->protocol) {
  case IPPROTO_TCP:
    return onward(device);
  case 1: /* ICMP: LAN only */
    return device == 0 ? TO_WAN : DROP;
  default:
    return DROP;
  }
}
