/*
 * acl_rules: a stateless access list. WAN frames are checked against ACL_RULES rules in order
 * (a loop with a constant bound); the first rule whose source prefix and destination port range
 * match decides (forward to the LAN or drop); no match drops. Non-TCP/UDP WAN frames are dropped;
 * LAN frames go to the WAN.
 *
 * Expected: shared-nothing with any key: no state.
 */
#include "nf.h"

#define ACL_RULES 4
#define LAN 0
#define WAN 1

struct acl_rule {
  uint32_t prefix;
  uint32_t mask;
  uint16_t low_port;
  uint16_t high_port;
  bool allow;
};

static const struct acl_rule acl[ACL_RULES] = {
    {NF_IPV4(192, 0, 2, 0), 0xFFFFFF00u, 0, 65535, false},      /* a blocked /24 */
    {NF_IPV4(0, 0, 0, 0), 0x00000000u, 80, 80, true},          /* web */
    {NF_IPV4(0, 0, 0, 0), 0x00000000u, 443, 443, true},        /* web over TLS */
    {NF_IPV4(203, 0, 113, 0), 0xFFFFFF00u, 1024, 65535, true}, /* a partner's high ports */
};

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device == LAN) {
    return WAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  uint32_t source = nf_ntohl(ip->src_addr);
  uint16_t port = nf_ntohs(l4->dst_port);
  for (int i = 0; i < ACL_RULES; i++) {
    if ((source & acl[i].mask) == acl[i].prefix && port >= acl[i].low_port && port <= acl[i].high_port) {
      return acl[i].allow ? LAN : NF_DROP;
    }
  }
  return NF_DROP;
}
