/*
 * fw: a stateful firewall. Hosts on the LAN may open TCP or UDP flows to the WAN; the WAN may only
 * answer them.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for FW_EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4 (or a fragment): drop;
 *   3. LAN -> WAN: record the flow's 5-tuple (or refresh it when already known) and forward to
 *      the WAN; when the table is full the frame still goes out, unrecorded;
 *   4. WAN -> LAN: forward only if the reversed 5-tuple (a reply) is a recorded flow, refreshing
 *      it; drop anything else.
 *
 * State:
 *   flows  map    struct flow_key (LAN-side 5-tuple, fields as on the wire) -> index
 *   keys   vector struct flow_key, per index (so that expiry can erase it from flows)
 *   chain  dchain of indices, stamped with the time of the flow's last packet
 *
 * Configuration (override with --define NAME=VALUE):
 *   FW_CAPACITY       how many flows are tracked at once
 *   FW_EXPIRATION_NS  how long an idle flow is kept
 */
#include "nf.h"

#ifndef FW_CAPACITY
#define FW_CAPACITY 65536
#endif
#ifndef FW_EXPIRATION_NS
#define FW_EXPIRATION_NS (60 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

/* A flow as its LAN host sends it. The explicit pad keeps the struct free of implicit padding. */
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
  if (!nf_map_allocate(sizeof(struct flow_key), FW_CAPACITY, &flows)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow_key), FW_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_dchain_allocate(FW_CAPACITY, &chain)) {
    return false;
  }
  return true;
}

/* Entries last used strictly before this time are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now) {
  return now > FW_EXPIRATION_NS ? now - FW_EXPIRATION_NS : 0;
}

static int from_lan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
  struct flow_key key;
  memset(&key, 0, sizeof key);
  key.src_ip = ip->src_addr;
  key.dst_ip = ip->dst_addr;
  key.src_port = l4->src_port;
  key.dst_port = l4->dst_port;
  key.protocol = ip->protocol;

  int index;
  if (nf_map_get(flows, &key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return WAN;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) {
    return WAN; /* table full: let the LAN's traffic out anyway */
  }
  nf_map_put(flows, &key, index);
  struct flow_key *cell = nf_vector_borrow(keys, index);
  memcpy(cell, &key, sizeof key);
  nf_vector_return(keys, index, cell);
  return WAN;
}

static int from_wan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
  /* A reply travels the LAN flow backwards: swap both addresses and both ports. */
  struct flow_key key;
  memset(&key, 0, sizeof key);
  key.src_ip = ip->dst_addr;
  key.dst_ip = ip->src_addr;
  key.src_port = l4->dst_port;
  key.dst_port = l4->src_port;
  key.protocol = ip->protocol;

  int index;
  if (!nf_map_get(flows, &key, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, expiry_threshold(now));

  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  if (device == LAN) {
    return from_lan(ip, l4, now);
  }
  return from_wan(ip, l4, now);
}
