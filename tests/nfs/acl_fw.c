/*
 * acl_fw: a stateful firewall with an access-control list in front of it. LAN frames are matched
 * against ACL_RULES rules in order (first match wins); a denied frame is dropped, an allowed one
 * opens (or refreshes) a flow that the WAN may answer.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for ACL_EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4 (or a fragment): drop;
 *   3. LAN -> WAN: the first rule whose source prefix, protocol (0: any) and destination port range
 *      all match decides; no match allows. Denied: drop. Allowed: record or refresh the 5-tuple and
 *      forward to the WAN (a full table still lets it out, unrecorded);
 *   4. WAN -> LAN: forward only replies to recorded flows, refreshing them; drop anything else.
 *
 * The rule loop tests one condition per `if` and leaves with `continue`, as hand-written ACL code
 * does, so each rule has several ways to fail that all reach the next rule in the same state.
 *
 * State:
 *   flows  map    struct flow_key (LAN-side 5-tuple) -> index
 *   keys   vector struct flow_key, per index (for expiry)
 *   chain  dchain of indices
 */
#include "nf.h"

#ifndef ACL_CAPACITY
#define ACL_CAPACITY 4096
#endif
#ifndef ACL_EXPIRATION_NS
#define ACL_EXPIRATION_NS (30 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1
#define ACL_RULES 8
#define ALLOW 1
#define DENY 0

struct rule {
  uint32_t prefix; /* host order */
  uint32_t mask;   /* host order */
  uint8_t protocol; /* 0: any */
  uint8_t action;
  uint16_t port_lo; /* destination port range, host order */
  uint16_t port_hi;
};

static const struct rule RULES[ACL_RULES] = {
  {NF_IPV4(10, 0, 0, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, DENY, 23, 23},
  {NF_IPV4(10, 0, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 80, 80},
  {NF_IPV4(10, 0, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 443, 443},
  {NF_IPV4(10, 0, 1, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 53, 53},
  {NF_IPV4(10, 0, 2, 0), 0xFFFFFF00u, 0, DENY, 0, 1023},
  {NF_IPV4(10, 1, 0, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, ALLOW, 1024, 65535},
  {NF_IPV4(10, 2, 0, 0), 0xFFFF0000u, 0, DENY, 0, 65535},
  {NF_IPV4(192, 168, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, DENY, 0, 65535},
};

struct flow_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), ACL_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), ACL_CAPACITY, &keys) &&
         nf_dchain_allocate(ACL_CAPACITY, &chain);
}

/* The action of the first matching rule, ALLOW when none matches. */
static int acl(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4) {
  uint32_t src = nf_ntohl(ip->src_addr);
  uint16_t dport = nf_ntohs(l4->dst_port);
  int action = ALLOW;
  for (int i = 0; i < ACL_RULES; i++) {
    if ((src & RULES[i].mask) != RULES[i].prefix) {
      continue;
    }
    if (RULES[i].protocol != 0 && ip->protocol != RULES[i].protocol) {
      continue;
    }
    if (dport < RULES[i].port_lo) {
      continue;
    }
    if (dport > RULES[i].port_hi) {
      continue;
    }
    action = RULES[i].action;
    break;
  }
  return action;
}

static void fill_key(struct flow_key *key, const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4,
                     bool reply) {
  memset(key, 0, sizeof *key);
  key->src_ip = reply ? ip->dst_addr : ip->src_addr;
  key->dst_ip = reply ? ip->src_addr : ip->dst_addr;
  key->src_port = reply ? l4->dst_port : l4->src_port;
  key->dst_port = reply ? l4->src_port : l4->dst_port;
  key->protocol = ip->protocol;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, now > ACL_EXPIRATION_NS ? now - ACL_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  struct flow_key key;
  int index;
  if (device == LAN) {
    if (acl(ip, l4) == DENY) {
      return NF_DROP;
    }
    fill_key(&key, ip, l4, false);
    if (nf_map_get(flows, &key, &index)) {
      nf_dchain_rejuvenate_index(chain, index, now);
    } else if (nf_dchain_allocate_new_index(chain, &index, now)) {
      nf_map_put(flows, &key, index);
      struct flow_key *cell = nf_vector_borrow(keys, index);
      memcpy(cell, &key, sizeof key);
      nf_vector_return(keys, index, cell);
    }
    return WAN;
  }
  fill_key(&key, ip, l4, true);
  if (!nf_map_get(flows, &key, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  return LAN;
}
