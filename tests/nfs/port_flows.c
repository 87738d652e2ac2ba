/*
 * port_flows: a firewall (LAN-initiated flows only, as fw.c) that also caps how many frames each
 * LAN service port sends out: per LAN destination port, at most PORT_BUDGET frames leave to the WAN.
 * Two kinds of state side by side: a flow table whose entries a dchain allocates, and a vector
 * indexed directly by a port number.
 *
 * Behaviour, per frame:
 *   1. forget flows idle for EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4: drop;
 *   3. LAN -> WAN: the destination port's budget is spent: drop; otherwise count the frame, record
 *      (or refresh) the flow and forward (a full flow table still forwards, unrecorded);
 *   4. WAN -> LAN: forward only replies to recorded flows (refreshing them).
 *
 * State:
 *   flows  map    struct flow_key (LAN 5-tuple) -> index, FLOW_CAPACITY entries
 *   keys   vector struct flow_key per index
 *   chain  dchain of FLOW_CAPACITY indices
 *   ports  vector struct port_use, indexed by the LAN frame's destination port (65536 cells)
 *
 * Sharding: flows pairs LAN (s, d, sp, dp) with WAN (d, s, dp, sp); ports needs the LAN's dst_port:
 * hash dst_port on the LAN and src_port on the WAN. The flow table's share per core is
 * FLOW_CAPACITY / cores (its indices come from each core's own dchain); ports stays whole.
 */
#include "nf.h"

#ifndef FLOW_CAPACITY
#define FLOW_CAPACITY 4096
#endif
#ifndef EXPIRATION_NS
#define EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif
#ifndef PORT_BUDGET
#define PORT_BUDGET 16
#endif

#define LAN 0
#define WAN 1

struct flow_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct port_use {
  uint32_t frames;
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;
static struct nf_vector *ports;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), FLOW_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow_key), FLOW_CAPACITY, &keys) &&
         nf_dchain_allocate(FLOW_CAPACITY, &chain) &&
         nf_vector_allocate(sizeof(struct port_use), 65536, &ports);
}

static nf_time_t expiry_threshold(nf_time_t now) {
  return now > EXPIRATION_NS ? now - EXPIRATION_NS : 0;
}

static int from_lan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
  int port = nf_ntohs(l4->dst_port);
  struct port_use *use = nf_vector_borrow(ports, port);
  bool spent = use->frames >= PORT_BUDGET;
  if (!spent) {
    use->frames += 1;
  }
  nf_vector_return(ports, port, use);
  if (spent) {
    return NF_DROP;
  }

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
    return WAN; /* table full: out anyway, unrecorded */
  }
  nf_map_put(flows, &key, index);
  struct flow_key *cell = nf_vector_borrow(keys, index);
  memcpy(cell, &key, sizeof key);
  nf_vector_return(keys, index, cell);
  return WAN;
}

static int from_wan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
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
