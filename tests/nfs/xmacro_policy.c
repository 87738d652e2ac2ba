/* xmacro_policy: a stateless edge policy whose rules are one X-macro list. Each rule names a
 * protocol, a destination port and an action macro; the list expands three times: into an enum
 * of rule ids, into a const table of (proto, port, action id), and into a switch whose cases
 * call the function-like action macros (PASS(dev), DROP(dev), BOUNCE(dev), MARK(dev)).
 * Unlisted traffic passes; LAN frames always pass.
 *
 * Expected: sn with any key (no state); 10 paths, one per action and the ways past the rules.
 */
#include "nf.h"

#define LAN 0
#define WAN 1

/* action macros: each turns the input device into a verdict */
#define PASS(dev)   ((dev) == LAN ? WAN : LAN)
#define DROP(dev)   NF_DROP
#define BOUNCE(dev) (dev)
#define MARK(dev)   PASS(dev)

#define RULES(X)                      \
  X(SSH,    NF_IP_PROTO_TCP, 22, DROP)  \
  X(TELNET, NF_IP_PROTO_TCP, 23, DROP)  \
  X(DNS,    NF_IP_PROTO_UDP, 53, PASS)  \
  X(NTP,    NF_IP_PROTO_UDP, 123, BOUNCE) \
  X(SNMP,   NF_IP_PROTO_UDP, 161, DROP) \
  X(HTTP,   NF_IP_PROTO_TCP, 80, MARK)  \
  X(HTTPS,  NF_IP_PROTO_TCP, 443, MARK)

enum action { A_PASS, A_DROP, A_BOUNCE, A_MARK };

#define AS_ENUM(name, proto, port, act) R_##name,
enum rule_id { RULES(AS_ENUM) R_COUNT };

#define AS_ROW(name, proto, port, act) [R_##name] = {proto, port, A_##act},
static const struct { uint8_t proto; uint16_t port; uint8_t action; } TABLE[R_COUNT] = { RULES(AS_ROW) };

#define AS_CASE(name, proto, port, act) \
  case R_##name:                        \
    if (A_##act == A_MARK) mark(ip, packet, len); \
    return act(dev);

static void mark(struct nf_ipv4_hdr *ip, uint8_t *packet, uint16_t len) {
  ip->tos = 0x28; /* AF11 */
  nf_update_checksums(packet, len);
}

/* The verdict of rule r: one case per rule, each the rule's action macro applied to the device. */
static int apply(enum rule_id r, uint16_t dev, struct nf_ipv4_hdr *ip, uint8_t *packet, uint16_t len) {
  switch (r) {
    RULES(AS_CASE)
    default:
      return PASS(dev);
  }
}

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (device == LAN || ip == NULL || l4 == NULL) {
    return PASS(device);
  }
  uint16_t port = nf_ntohs(l4->dst_port);
  for (int r = 0; r < R_COUNT; r++) {
    if (TABLE[r].proto == ip->protocol && TABLE[r].port == port) {
      return apply((enum rule_id)r, device, ip, packet, len);
    }
  }
  return PASS(device);
}
