/*
 * cl: a connection limiter. Each (WAN source, LAN destination) address pair may open at most
 * CL_MAX_CONNECTIONS new connections (TCP or UDP flows) per sketch window; established flows
 * are never cut.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for CL_EXPIRATION_NS, and zero every sketch counter not
 *      incremented for CL_SKETCH_EXPIRATION_NS;
 *   2. LAN -> WAN: forward, untouched;
 *   3. WAN, not TCP or UDP over IPv4 (or a fragment): drop;
 *   4. WAN, a known flow (5-tuple as received): refresh it and forward to the LAN;
 *   5. WAN, a new flow: if the sketch's estimate of connections opened by its (source IP,
 *      destination IP) pair is below CL_MAX_CONNECTIONS, record the flow, count it in the sketch
 *      and forward to the LAN; otherwise (or when the flow table is full) drop.
 * A count-min sketch never under-estimates, so a pair is never allowed more than the limit; a
 * collision with another pair in every row can only make it stricter.
 *
 * State:
 *   flows        map    struct flow_key (5-tuple, fields as on the wire) -> index
 *   keys         vector struct flow_key, per index (so that expiry can erase it from flows)
 *   chain        dchain of indices, stamped with the time of the flow's last packet
 *   connections  sketch of struct pair_key (source IP, destination IP): connections opened
 *
 * Configuration (override with --define NAME=VALUE):
 *   CL_MAX_CONNECTIONS       new connections allowed per address pair and window
 *   CL_CAPACITY              how many flows are tracked at once
 *   CL_EXPIRATION_NS         how long an idle flow is kept
 *   CL_SKETCH_WIDTH          counters per sketch row
 *   CL_SKETCH_EXPIRATION_NS  how long a counter keeps its count without a new connection
 */
#include "nf.h"

#ifndef CL_MAX_CONNECTIONS
#define CL_MAX_CONNECTIONS 100
#endif
#ifndef CL_CAPACITY
#define CL_CAPACITY 65536
#endif
#ifndef CL_EXPIRATION_NS
#define CL_EXPIRATION_NS (60 * NF_NS_PER_SEC)
#endif
#ifndef CL_SKETCH_WIDTH
#define CL_SKETCH_WIDTH 4096
#endif
#ifndef CL_SKETCH_EXPIRATION_NS
#define CL_SKETCH_EXPIRATION_NS (600 * NF_NS_PER_SEC)
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

struct pair_key {
  uint32_t src_ip;
  uint32_t dst_ip;
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;
static struct nf_sketch *connections;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct flow_key), CL_CAPACITY, &flows)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow_key), CL_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_dchain_allocate(CL_CAPACITY, &chain)) {
    return false;
  }
  if (!nf_sketch_allocate(sizeof(struct pair_key), CL_SKETCH_WIDTH, &connections)) {
    return false;
  }
  return true;
}

/* Items last used strictly before now - age are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now, nf_time_t age) {
  return now > age ? now - age : 0;
}

static int from_wan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
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
    return LAN;
  }

  struct pair_key pair;
  pair.src_ip = ip->src_addr;
  pair.dst_ip = ip->dst_addr;
  if (nf_sketch_estimate(connections, &pair) >= CL_MAX_CONNECTIONS) {
    return NF_DROP;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) {
    return NF_DROP;
  }
  nf_map_put(flows, &key, index);
  struct flow_key *cell = nf_vector_borrow(keys, index);
  memcpy(cell, &key, sizeof key);
  nf_vector_return(keys, index, cell);
  nf_sketch_touch(connections, &pair, now);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, expiry_threshold(now, CL_EXPIRATION_NS));
  nf_sketch_expire(connections, expiry_threshold(now, CL_SKETCH_EXPIRATION_NS));

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
  return from_wan(ip, l4, now);
}
