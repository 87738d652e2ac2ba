/*
 * dns_guard: a DNS rate guard. LAN clients' queries (UDP to port 53) are counted per client in a
 * flow table (map, key vector, counter vector, dchain) and dropped past DG_LIMIT per second; each
 * query passed is remembered per (client, resolver, client port) in a second table, and a WAN answer
 * (UDP from port 53) passes only when it answers a remembered query, which it then forgets. A
 * count-min sketch counts answers per resolver, and a resolver that sends more than DG_FLOOD answers
 * nobody asked for is dropped outright. Everything else crosses untouched.
 *
 * Expected: 19 paths, 8 state objects; locks on 16 cores (each object could shard alone, but no RSS
 * key spreads device 0: pending relates the LAN client to the WAN answer's destination while the
 * sketch is keyed by the WAN source alone). Written for the explorer's state-access graph, drawn
 * about 900 pt wide, whose labels Fit shrank to 8 px (tests/test_browser_user.py).
 */
#include "nf.h"

#ifndef DG_CAPACITY
#define DG_CAPACITY 4096
#endif
#ifndef DG_LIMIT
#define DG_LIMIT 20
#endif
#ifndef DG_FLOOD
#define DG_FLOOD 64
#endif
#define LAN 0
#define WAN 1

struct client { uint32_t addr; };
struct query { uint32_t client; uint32_t resolver; uint16_t port; uint16_t pad; };
struct budget { uint32_t used; };
struct resolver { uint32_t addr; };

static struct nf_map *clients;
static struct nf_vector *client_keys;
static struct nf_vector *budgets;
static struct nf_dchain *client_chain;
static struct nf_map *pending;
static struct nf_vector *pending_keys;
static struct nf_dchain *pending_chain;
static struct nf_sketch *unasked;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct client), DG_CAPACITY, &clients) &&
         nf_vector_allocate(sizeof(struct client), DG_CAPACITY, &client_keys) &&
         nf_vector_allocate(sizeof(struct budget), DG_CAPACITY, &budgets) &&
         nf_dchain_allocate(DG_CAPACITY, &client_chain) &&
         nf_map_allocate(sizeof(struct query), DG_CAPACITY, &pending) &&
         nf_vector_allocate(sizeof(struct query), DG_CAPACITY, &pending_keys) &&
         nf_dchain_allocate(DG_CAPACITY, &pending_chain) &&
         nf_sketch_allocate(sizeof(struct resolver), 1024, &unasked);
}

static int lan_query(struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4, nf_time_t now) {
  struct client who = { .addr = ip->src_addr };
  int index;
  if (!nf_map_get(clients, &who, &index)) {
    if (!nf_dchain_allocate_new_index(client_chain, &index, now)) return NF_DROP;
    nf_map_put(clients, &who, index);
    struct client *k = nf_vector_borrow(client_keys, index);
    *k = who;
    nf_vector_return(client_keys, index, k);
    struct budget *b0 = nf_vector_borrow(budgets, index);
    b0->used = 0;
    nf_vector_return(budgets, index, b0);
  }
  struct budget *b = nf_vector_borrow(budgets, index);
  int over = b->used >= DG_LIMIT;
  if (!over) b->used++;
  nf_vector_return(budgets, index, b);
  if (over) return NF_DROP;
  struct query q = { .client = ip->src_addr, .resolver = ip->dst_addr, .port = l4->src_port, .pad = 0 };
  int slot;
  if (nf_map_get(pending, &q, &slot)) {
    nf_dchain_rejuvenate_index(pending_chain, slot, now);
    return WAN;
  }
  if (!nf_dchain_allocate_new_index(pending_chain, &slot, now)) return NF_DROP;
  nf_map_put(pending, &q, slot);
  struct query *pk = nf_vector_borrow(pending_keys, slot);
  *pk = q;
  nf_vector_return(pending_keys, slot, pk);
  return WAN;
}

static int wan_answer(struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4, nf_time_t now) {
  struct resolver from = { .addr = ip->src_addr };
  if (nf_sketch_estimate(unasked, &from) > DG_FLOOD) return NF_DROP;
  struct query q = { .client = ip->dst_addr, .resolver = ip->src_addr, .port = l4->dst_port, .pad = 0 };
  int slot;
  if (!nf_map_get(pending, &q, &slot)) {
    nf_sketch_touch(unasked, &from, now);
    return NF_DROP;
  }
  nf_map_erase(pending, &q);
  nf_dchain_free_index(pending_chain, slot);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t since = now > NF_NS_PER_SEC ? now - NF_NS_PER_SEC : 0;
  nf_expire_items(client_chain, client_keys, clients, since);
  nf_expire_items(pending_chain, pending_keys, pending, since);
  nf_sketch_expire(unasked, since);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) return device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!l4 || ip->protocol != NF_IP_PROTO_UDP) return device == LAN ? WAN : LAN;
  if (device == LAN && l4->dst_port == nf_htons(53)) return lan_query(ip, l4, now);
  if (device == WAN && l4->src_port == nf_htons(53)) return wan_answer(ip, l4, now);
  return device == LAN ? WAN : LAN;
}
