/*
 * acl_count: a stateful firewall with an access-control list on each side that counts its hits. A
 * frame is matched against its side's ACL_RULES rules in order (first match wins); the rule's hit
 * counter goes up, and the rule allows, denies or marks (rewrites the IPv4 TOS) the frame. LAN
 * frames that are allowed or marked open (or refresh) a flow; WAN frames need a recorded flow.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for ACL_EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4 (or a fragment), or TTL 0: drop;
 *   3. match the side's rules (source prefix, protocol with 0 for any, destination port range);
 *      count the hit in `hits` (LAN rules are cells 0..7, WAN rules 8..15, a miss on either side
 *      cell 16); a denied frame is dropped, a marked one gets TOS 0x20;
 *   4. LAN -> WAN: record or refresh the 5-tuple (a full table still lets the frame out);
 *      WAN -> LAN: forward only replies to recorded flows, refreshing them.
 *
 * Every rule leads to its own counter cell, so unlike acl_fw's rules, each one is a distinct path
 * (39 in all). The side's rules are picked with `device == LAN ? LAN : WAN`, so the counter index
 * is a term of p.device until the path condition fixes the device.
 *
 * State:
 *   flows  map    struct flow_key (LAN-side 5-tuple) -> index
 *   keys   vector struct flow_key, per index (for expiry)
 *   chain  dchain of indices
 *   hits   vector of uint64_t hit counters, one per rule and one for misses (filled by nf_process)
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
#define MISS_CELL (2 * ACL_RULES)
#define ALLOW 0
#define DENY 1
#define MARK 2

struct rule {
  uint32_t prefix; /* host order */
  uint32_t mask;   /* host order */
  uint8_t protocol; /* 0: any */
  uint8_t action;
  uint16_t port_lo; /* destination port range, host order */
  uint16_t port_hi;
};

static const struct rule RULES[2][ACL_RULES] = {
  { /* LAN: by source host, to the outside */
    {NF_IPV4(10, 0, 0, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, DENY, 23, 23},
    {NF_IPV4(10, 0, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 80, 80},
    {NF_IPV4(10, 0, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, MARK, 443, 443},
    {NF_IPV4(10, 0, 1, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 53, 53},
    {NF_IPV4(10, 0, 2, 0), 0xFFFFFF00u, 0, DENY, 0, 1023},
    {NF_IPV4(10, 1, 0, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, MARK, 1024, 65535},
    {NF_IPV4(10, 2, 0, 0), 0xFFFF0000u, 0, DENY, 0, 65535},
    {NF_IPV4(192, 168, 0, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 0, 65535},
  },
  { /* WAN: by remote source, to our hosts */
    {NF_IPV4(203, 0, 113, 0), 0xFFFFFF00u, 0, DENY, 0, 65535},
    {NF_IPV4(198, 51, 100, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, MARK, 0, 1023},
    {NF_IPV4(198, 51, 100, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 53, 53},
    {NF_IPV4(192, 0, 2, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, ALLOW, 22, 22},
    {NF_IPV4(192, 0, 2, 0), 0xFFFFFF00u, 0, DENY, 0, 65535},
    {NF_IPV4(100, 64, 0, 0), 0xFFC00000u, 0, DENY, 0, 65535},
    {NF_IPV4(0, 0, 0, 0), 0x00000000u, NF_IP_PROTO_UDP, MARK, 5000, 5999},
    {NF_IPV4(0, 0, 0, 0), 0x00000000u, NF_IP_PROTO_TCP, ALLOW, 443, 443},
  },
};

struct flow_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct counter {
  uint64_t hits;
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;
static struct nf_vector *hits;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), ACL_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), ACL_CAPACITY, &keys) &&
         nf_dchain_allocate(ACL_CAPACITY, &chain) &&
         nf_vector_allocate(sizeof(struct counter), MISS_CELL + 1, &hits);
}

/* The action of the first matching rule of `side` (ALLOW when none matches), counting the hit. */
static int acl(int side, const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4) {
  uint32_t src = nf_ntohl(ip->src_addr);
  uint16_t dport = nf_ntohs(l4->dst_port);
  int cell = MISS_CELL;
  int action = ALLOW;
  for (int i = 0; i < ACL_RULES; i++) {
    const struct rule *r = &RULES[side][i];
    if ((src & r->mask) == r->prefix && (r->protocol == 0 || ip->protocol == r->protocol) &&
        dport >= r->port_lo && dport <= r->port_hi) {
      cell = side * ACL_RULES + i;
      action = r->action;
      break;
    }
  }
  struct counter *c = nf_vector_borrow(hits, cell);
  c->hits++;
  nf_vector_return(hits, cell, c);
  return action;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, now > ACL_EXPIRATION_NS ? now - ACL_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL || ip->ttl == 0) {
    return NF_DROP;
  }
  int action = acl(device == LAN ? LAN : WAN, ip, l4);
  if (action == DENY) {
    return NF_DROP;
  }
  if (action == MARK) {
    ip->tos = 0x20;
    nf_update_checksums(packet, len);
  }
  struct flow_key key;
  memset(&key, 0, sizeof key);
  int index;
  if (device == LAN) {
    key.src_ip = ip->src_addr;
    key.dst_ip = ip->dst_addr;
    key.src_port = l4->src_port;
    key.dst_port = l4->dst_port;
    key.protocol = ip->protocol;
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
  key.src_ip = ip->dst_addr;
  key.dst_ip = ip->src_addr;
  key.src_port = l4->dst_port;
  key.dst_port = l4->src_port;
  key.protocol = ip->protocol;
  if (!nf_map_get(flows, &key, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  return LAN;
}
