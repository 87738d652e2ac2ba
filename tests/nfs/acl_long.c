/*
 * acl_long: acl_fw (see tests/nfs/acl_fw.c) with 64 ACL rules instead of 8: random prefixes
 * (/8, /16, /24), protocols and destination port ranges, drawn once with a fixed seed. Many /8
 * rules can never match (their prefix has bits below the mask), so only some rules fork.
 *
 * The analysis' stress test for constant-bound loops: the rule loop's ways out end in two states
 * (allowed or denied), whatever rule decided; tests/test_symbex_merging.py checks that the merged
 * paths describe the same behaviour as the unmerged ones, and benchmarks/bench_analysis.py times it.
 *
 * Expected: shared-nothing, as acl_fw (the LAN 5-tuple, the WAN side reversed).
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
#define ACL_RULES 64
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
  {NF_IPV4(10, 83, 242, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 148, 2342},
  {NF_IPV4(10, 25, 93, 0), 0xFF000000u, NF_IP_PROTO_TCP, ALLOW, 76, 428},
  {NF_IPV4(10, 112, 107, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, ALLOW, 1128, 2866},
  {NF_IPV4(10, 16, 211, 0), 0xFF000000u, NF_IP_PROTO_TCP, ALLOW, 1291, 3860},
  {NF_IPV4(10, 150, 242, 0), 0xFFFFFF00u, 0, DENY, 101, 1006},
  {NF_IPV4(10, 12, 142, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, DENY, 295, 2509},
  {NF_IPV4(10, 31, 146, 0), 0xFFFF0000u, 0, ALLOW, 211, 2593},
  {NF_IPV4(10, 147, 163, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 1121, 4037},
  {NF_IPV4(10, 17, 144, 0), 0xFFFFFF00u, 0, ALLOW, 1016, 3802},
  {NF_IPV4(10, 137, 109, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, DENY, 740, 1967},
  {NF_IPV4(10, 64, 203, 0), 0xFFFFFF00u, 0, ALLOW, 167, 2519},
  {NF_IPV4(10, 77, 134, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, DENY, 589, 3083},
  {NF_IPV4(10, 19, 30, 0), 0xFF000000u, NF_IP_PROTO_UDP, ALLOW, 1550, 2951},
  {NF_IPV4(10, 39, 238, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, ALLOW, 1970, 4707},
  {NF_IPV4(10, 20, 195, 0), 0xFF000000u, 0, DENY, 696, 3543},
  {NF_IPV4(10, 90, 152, 0), 0xFFFF0000u, 0, DENY, 140, 523},
  {NF_IPV4(10, 242, 69, 0), 0xFFFF0000u, 0, ALLOW, 124, 3118},
  {NF_IPV4(10, 180, 79, 0), 0xFF000000u, 0, DENY, 582, 3517},
  {NF_IPV4(10, 99, 227, 0), 0xFF000000u, NF_IP_PROTO_UDP, ALLOW, 1926, 3817},
  {NF_IPV4(10, 91, 43, 0), 0xFF000000u, NF_IP_PROTO_TCP, DENY, 120, 1013},
  {NF_IPV4(10, 197, 73, 0), 0xFFFFFF00u, 0, ALLOW, 814, 2415},
  {NF_IPV4(10, 235, 223, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 919, 2564},
  {NF_IPV4(10, 141, 71, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, DENY, 1446, 3147},
  {NF_IPV4(10, 92, 174, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 169, 890},
  {NF_IPV4(10, 39, 59, 0), 0xFF000000u, NF_IP_PROTO_TCP, ALLOW, 993, 3406},
  {NF_IPV4(10, 47, 67, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 858, 3047},
  {NF_IPV4(10, 95, 156, 0), 0xFF000000u, NF_IP_PROTO_UDP, ALLOW, 1414, 3525},
  {NF_IPV4(10, 244, 158, 0), 0xFF000000u, 0, ALLOW, 935, 3722},
  {NF_IPV4(10, 205, 143, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, DENY, 807, 1231},
  {NF_IPV4(10, 124, 162, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 137, 992},
  {NF_IPV4(10, 113, 41, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 209, 209},
  {NF_IPV4(10, 146, 38, 0), 0xFF000000u, NF_IP_PROTO_TCP, DENY, 1256, 1360},
  {NF_IPV4(10, 19, 223, 0), 0xFFFFFF00u, 0, DENY, 304, 2902},
  {NF_IPV4(10, 65, 244, 0), 0xFFFF0000u, 0, DENY, 971, 1474},
  {NF_IPV4(10, 30, 217, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, DENY, 990, 2267},
  {NF_IPV4(10, 22, 36, 0), 0xFFFFFF00u, 0, DENY, 1516, 2600},
  {NF_IPV4(10, 123, 212, 0), 0xFF000000u, NF_IP_PROTO_TCP, ALLOW, 420, 2583},
  {NF_IPV4(10, 93, 37, 0), 0xFF000000u, 0, ALLOW, 1552, 3715},
  {NF_IPV4(10, 77, 164, 0), 0xFFFFFF00u, 0, DENY, 1061, 2563},
  {NF_IPV4(10, 233, 42, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, DENY, 1303, 2216},
  {NF_IPV4(10, 157, 207, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, DENY, 1515, 2443},
  {NF_IPV4(10, 52, 132, 0), 0xFFFF0000u, NF_IP_PROTO_UDP, ALLOW, 57, 1201},
  {NF_IPV4(10, 121, 66, 0), 0xFFFFFF00u, 0, DENY, 915, 3876},
  {NF_IPV4(10, 90, 244, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 209, 1138},
  {NF_IPV4(10, 121, 50, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, DENY, 1278, 3777},
  {NF_IPV4(10, 216, 0, 0), 0xFFFF0000u, 0, DENY, 1637, 4271},
  {NF_IPV4(10, 22, 213, 0), 0xFF000000u, NF_IP_PROTO_TCP, DENY, 1602, 4516},
  {NF_IPV4(10, 193, 51, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, DENY, 1616, 4220},
  {NF_IPV4(10, 86, 22, 0), 0xFF000000u, NF_IP_PROTO_UDP, DENY, 822, 1169},
  {NF_IPV4(10, 186, 40, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, ALLOW, 309, 2728},
  {NF_IPV4(10, 232, 119, 0), 0xFF000000u, NF_IP_PROTO_TCP, DENY, 1346, 2781},
  {NF_IPV4(10, 40, 140, 0), 0xFF000000u, NF_IP_PROTO_TCP, ALLOW, 29, 3004},
  {NF_IPV4(10, 167, 26, 0), 0xFF000000u, 0, ALLOW, 888, 1685},
  {NF_IPV4(10, 212, 223, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, DENY, 435, 1634},
  {NF_IPV4(10, 129, 61, 0), 0xFF000000u, NF_IP_PROTO_UDP, DENY, 1114, 2830},
  {NF_IPV4(10, 214, 33, 0), 0xFFFFFF00u, 0, DENY, 1838, 3714},
  {NF_IPV4(10, 170, 149, 0), 0xFF000000u, NF_IP_PROTO_UDP, ALLOW, 1089, 1710},
  {NF_IPV4(10, 135, 130, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, ALLOW, 1246, 1262},
  {NF_IPV4(10, 199, 204, 0), 0xFFFFFF00u, NF_IP_PROTO_TCP, ALLOW, 969, 3504},
  {NF_IPV4(10, 186, 30, 0), 0xFF000000u, NF_IP_PROTO_TCP, DENY, 1397, 3520},
  {NF_IPV4(10, 136, 142, 0), 0xFFFF0000u, NF_IP_PROTO_TCP, ALLOW, 508, 1291},
  {NF_IPV4(10, 71, 10, 0), 0xFFFFFF00u, 0, DENY, 1150, 1264},
  {NF_IPV4(10, 195, 228, 0), 0xFFFFFF00u, NF_IP_PROTO_UDP, DENY, 1254, 3324},
  {NF_IPV4(10, 156, 131, 0), 0xFFFFFF00u, 0, DENY, 926, 3007},
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
