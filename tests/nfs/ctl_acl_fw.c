/*
 * ctl_acl_fw: a stateful firewall whose block list is updated by control packets (a test NF for
 * replicated state: every packet reads the block list, only control packets write it).
 *
 * Behaviour, per frame:
 *   1. LAN, UDP to port ACL_CONTROL_PORT: a control packet. It sets rule slot (source port modulo
 *      ACL_RULES) to block the WAN host at its destination address (0.0.0.0 clears the slot), and
 *      is consumed (dropped);
 *   2. LAN, other IPv4 TCP/UDP: dropped when its destination is blocked by a rule; otherwise its
 *      flow (the 5-tuple) is recorded or refreshed and it goes to the WAN;
 *   3. WAN, IPv4 TCP/UDP: dropped when its source is blocked; forwarded to the LAN only when it
 *      answers a recorded flow (the reversed 5-tuple), refreshing it;
 *   4. anything else: LAN frames go to the WAN, WAN frames are dropped.
 *   Flows idle for ACL_FLOW_EXPIRATION_NS are forgotten.
 *
 * State:
 *   rules  vector of ACL_RULES struct rule (the blocked address, 0 for none): read by every
 *          IPv4 TCP/UDP packet, written only by control packets
 *   flows  map struct flow (the LAN-side 5-tuple) -> flow index
 *   keys   vector struct flow, per flow index
 *   chain  dchain of flow indices
 */
#include "nf.h"

#ifndef ACL_RULES
#define ACL_RULES 4
#endif
#ifndef ACL_CONTROL_PORT
#define ACL_CONTROL_PORT 7777
#endif
#ifndef ACL_FLOW_CAPACITY
#define ACL_FLOW_CAPACITY 4096
#endif
#ifndef ACL_FLOW_EXPIRATION_NS
#define ACL_FLOW_EXPIRATION_NS (30 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct rule {
  uint32_t blocked; /* network order; 0: the slot is empty */
};

struct flow {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

static struct nf_vector *rules;
static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_vector_allocate(sizeof(struct rule), ACL_RULES, &rules)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct flow), ACL_FLOW_CAPACITY, &flows)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow), ACL_FLOW_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_dchain_allocate(ACL_FLOW_CAPACITY, &chain)) {
    return false;
  }
  return true;
}

static bool blocked(uint32_t address) {
  for (int i = 0; i < ACL_RULES; i++) {
    struct rule *r = nf_vector_borrow(rules, i);
    uint32_t b = r->blocked;
    nf_vector_return(rules, i, r);
    if (b != 0 && b == address) {
      return true;
    }
  }
  return false;
}

static void control(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4) {
  int slot = nf_ntohs(l4->src_port) % ACL_RULES;
  struct rule *r = nf_vector_borrow(rules, slot);
  r->blocked = ip->dst_addr;
  nf_vector_return(rules, slot, r);
}

static nf_time_t expiry_threshold(nf_time_t now) {
  return now > ACL_FLOW_EXPIRATION_NS ? now - ACL_FLOW_EXPIRATION_NS : 0;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, expiry_threshold(now));
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return device == LAN ? WAN : NF_DROP;
  }
  struct flow key;
  memset(&key, 0, sizeof key);
  key.protocol = ip->protocol;
  if (device == LAN) {
    if (ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(ACL_CONTROL_PORT)) {
      control(ip, l4);
      return NF_DROP;
    }
    if (blocked(ip->dst_addr)) {
      return NF_DROP;
    }
    key.src_ip = ip->src_addr;
    key.dst_ip = ip->dst_addr;
    key.src_port = l4->src_port;
    key.dst_port = l4->dst_port;
    int index;
    if (nf_map_get(flows, &key, &index)) {
      nf_dchain_rejuvenate_index(chain, index, now);
      return WAN;
    }
    if (nf_dchain_allocate_new_index(chain, &index, now)) {
      nf_map_put(flows, &key, index);
      struct flow *cell = nf_vector_borrow(keys, index);
      memcpy(cell, &key, sizeof key);
      nf_vector_return(keys, index, cell);
    }
    return WAN;
  }
  if (blocked(ip->src_addr)) {
    return NF_DROP;
  }
  key.src_ip = ip->dst_addr;
  key.dst_ip = ip->src_addr;
  key.src_port = l4->dst_port;
  key.dst_port = l4->src_port;
  int index;
  if (!nf_map_get(flows, &key, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  return LAN;
}
