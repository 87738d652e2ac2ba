/*
 * host_flow_limit: a stateful firewall that lets each LAN host keep at most HFL_FLOWS_PER_HOST open
 * flows (a test NF: two tables with different keys, the flow's 5-tuple and the LAN host alone,
 * which one packet both touches, so that sharding needs the coarser of the two keys).
 *
 * Behaviour, per frame:
 *   1. not IPv4 TCP/UDP: LAN frames go to the WAN, WAN frames are dropped;
 *   2. LAN: a known flow is refreshed and goes to the WAN. A new flow is opened when its source
 *      host has fewer than HFL_FLOWS_PER_HOST open flows (the host's count goes up) and goes to the
 *      WAN; otherwise it is dropped. A full flow table drops new flows too;
 *   3. WAN: a reply to an open flow (the reversed 5-tuple) refreshes it and goes to the LAN;
 *      anything else is dropped.
 *   Flows idle for HFL_EXPIRATION_NS are closed; a host's count goes down as its flows close
 *   (counted lazily: each host remembers the flow indices it opened and when it last looked).
 *
 * State:
 *   flows    map struct flow (the LAN-side 5-tuple) -> flow index
 *   keys     vector struct flow, per flow index
 *   chain    dchain of flow indices
 *   hosts    map struct host (the LAN address) -> host index
 *   host_ips vector struct host, per host index
 *   opened   vector struct opened, per host index: the host's open flows (their indices)
 *   host_chain dchain of host indices, refreshed with the host's flows
 */
#include "nf.h"

#ifndef HFL_CAPACITY
#define HFL_CAPACITY 8192
#endif
#ifndef HFL_FLOWS_PER_HOST
#define HFL_FLOWS_PER_HOST 4
#endif
#ifndef HFL_EXPIRATION_NS
#define HFL_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct flow {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct host {
  uint32_t ip;
};

struct opened {
  int32_t flow[HFL_FLOWS_PER_HOST]; /* -1: a free slot */
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;
static struct nf_map *hosts;
static struct nf_vector *host_ips;
static struct nf_vector *opened;
static struct nf_dchain *host_chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct flow), HFL_CAPACITY, &flows)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow), HFL_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_dchain_allocate(HFL_CAPACITY, &chain)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct host), HFL_CAPACITY, &hosts)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct host), HFL_CAPACITY, &host_ips)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct opened), HFL_CAPACITY, &opened)) {
    return false;
  }
  if (!nf_dchain_allocate(HFL_CAPACITY, &host_chain)) {
    return false;
  }
  return true;
}

static nf_time_t threshold(nf_time_t now) {
  return now > HFL_EXPIRATION_NS ? now - HFL_EXPIRATION_NS : 0;
}

/* A free slot of the host's open flows (slots of closed flows are freed first), or -1. */
static int free_slot(struct opened *o) {
  int slot = -1;
  for (int i = 0; i < HFL_FLOWS_PER_HOST; i++) {
    if (o->flow[i] >= 0 && !nf_dchain_is_index_allocated(chain, o->flow[i])) {
      o->flow[i] = -1;
    }
    if (o->flow[i] < 0 && slot < 0) {
      slot = i;
    }
  }
  return slot;
}

static int from_lan(const struct flow *key, nf_time_t now) {
  int index;
  if (nf_map_get(flows, key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return WAN;
  }
  struct host host;
  host.ip = key->src_ip;
  int h;
  if (!nf_map_get(hosts, &host, &h)) {
    if (!nf_dchain_allocate_new_index(host_chain, &h, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &host, h);
    struct host *ip_cell = nf_vector_borrow(host_ips, h);
    ip_cell->ip = host.ip;
    nf_vector_return(host_ips, h, ip_cell);
    struct opened *fresh = nf_vector_borrow(opened, h);
    for (int i = 0; i < HFL_FLOWS_PER_HOST; i++) {
      fresh->flow[i] = -1;
    }
    nf_vector_return(opened, h, fresh);
  }
  nf_dchain_rejuvenate_index(host_chain, h, now);
  struct opened *o = nf_vector_borrow(opened, h);
  int slot = free_slot(o);
  if (slot < 0 || !nf_dchain_allocate_new_index(chain, &index, now)) {
    nf_vector_return(opened, h, o);
    return NF_DROP;
  }
  o->flow[slot] = index;
  nf_vector_return(opened, h, o);
  nf_map_put(flows, key, index);
  struct flow *cell = nf_vector_borrow(keys, index);
  memcpy(cell, key, sizeof *key);
  nf_vector_return(keys, index, cell);
  return WAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, flows, threshold(now));
  nf_expire_items(host_chain, host_ips, hosts, threshold(now));
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return device == LAN ? WAN : NF_DROP;
  }
  struct flow key;
  memset(&key, 0, sizeof key);
  key.protocol = ip->protocol;
  if (device == LAN) {
    key.src_ip = ip->src_addr;
    key.dst_ip = ip->dst_addr;
    key.src_port = l4->src_port;
    key.dst_port = l4->dst_port;
    return from_lan(&key, now);
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
