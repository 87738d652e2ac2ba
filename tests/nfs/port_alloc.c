/*
 * port_alloc: a UDP/TCP port translator for one LAN host group, keeping addresses: each LAN flow
 * gets an even source port from a pool, PORT_BASE + 2 * index (odd ports are left to another box).
 * Replies from the WAN are found by their destination port alone and get the flow's original
 * source port back.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for PA_EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4 (or a fragment): drop;
 *   3. LAN -> WAN: a known flow (by its 5-tuple) keeps its port, a new one gets the lowest free index
 *      (drop when the pool is empty); the source port becomes PORT_BASE + 2 * index; forward to the WAN;
 *   4. WAN -> LAN: a destination port in the pool that belongs to a live flow gets the flow's
 *      original source port as its destination port; anything else is dropped.
 *
 * State:
 *   flows   map    struct flow_key (LAN 5-tuple) -> index
 *   ports   map    the translated port (2 bytes, network order) -> index
 *   origin  vector struct origin (the flow's key and its original source port), per index
 *   pool    dchain of indices
 */
#include "nf.h"

#ifndef PA_CAPACITY
#define PA_CAPACITY 8192
#endif
#ifndef PORT_BASE
#define PORT_BASE 40000
#endif
#define PA_EXPIRATION_NS (120 * NF_NS_PER_SEC)
#define LAN 0
#define WAN 1

#if PORT_BASE + 2 * PA_CAPACITY > 65536
#error "the port pool PORT_BASE .. PORT_BASE + 2 * PA_CAPACITY must fit in 16 bits"
#endif

struct flow_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct port_key {
  uint16_t port;
};

static struct nf_map *flows;
static struct nf_map *ports;
static struct nf_vector *keys;
static struct nf_vector *port_keys;
static struct nf_dchain *pool;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow_key), PA_CAPACITY, &flows) &&
         nf_map_allocate(sizeof(struct port_key), PA_CAPACITY, &ports) &&
         nf_vector_allocate(sizeof(struct flow_key), PA_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct port_key), PA_CAPACITY, &port_keys) &&
         nf_dchain_allocate(PA_CAPACITY, &pool);
}

/* The translated port of flow `index`, in network byte order. */
static uint16_t pool_port(int index) {
  return nf_htons((uint16_t)(PORT_BASE + (index << 1)));
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items2(pool, keys, flows, port_keys, ports, now > PA_EXPIRATION_NS ? now - PA_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  int index;
  if (device == LAN) {
    struct flow_key key;
    memset(&key, 0, sizeof key);
    key.src_ip = ip->src_addr;
    key.dst_ip = ip->dst_addr;
    key.src_port = l4->src_port;
    key.dst_port = l4->dst_port;
    key.protocol = ip->protocol;
    if (nf_map_get(flows, &key, &index)) {
      nf_dchain_rejuvenate_index(pool, index, now);
    } else {
      if (!nf_dchain_allocate_new_index(pool, &index, now)) {
        return NF_DROP;
      }
      struct port_key pkey = {pool_port(index)};
      nf_map_put(flows, &key, index);
      nf_map_put(ports, &pkey, index);
      struct flow_key *cell = nf_vector_borrow(keys, index);
      memcpy(cell, &key, sizeof key);
      nf_vector_return(keys, index, cell);
      struct port_key *pcell = nf_vector_borrow(port_keys, index);
      *pcell = pkey;
      nf_vector_return(port_keys, index, pcell);
    }
    l4->src_port = pool_port(index);
    nf_update_checksums(packet, len);
    return WAN;
  }
  struct port_key pkey = {l4->dst_port};
  if (!nf_map_get(ports, &pkey, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(pool, index, now);
  struct flow_key *cell = nf_vector_borrow(keys, index);
  uint16_t original = cell->src_port;
  nf_vector_return(keys, index, cell);
  l4->dst_port = original;
  nf_update_checksums(packet, len);
  return LAN;
}
