/*
 * dns_limit: DNS query budget per (LAN client, resolver) pair. A LAN query (UDP to port 53) counts
 * against its pair; once a pair has made RL_LIMIT queries its further queries are dropped. A WAN
 * answer (UDP from port 53) passes only when its pair has asked (and refreshes it). Anything else
 * crosses untouched. A pair idle for a second is forgotten.
 *
 * Expected: shared-nothing; both devices hash the two addresses (LAN src, dst ~ WAN dst, src); the
 * dchain is rejuvenated with the index it has just handed out, which must not read as following itself.
 */
#include "nf.h"

#ifndef RL_CAPACITY
#define RL_CAPACITY 1024
#endif
#ifndef RL_LIMIT
#define RL_LIMIT 5
#endif
#define LAN 0
#define WAN 1

struct pair { uint32_t client; uint32_t resolver; };
struct count { uint32_t n; };

static struct nf_map *pairs;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct pair), RL_CAPACITY, &pairs) &&
         nf_vector_allocate(sizeof(struct pair), RL_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct count), RL_CAPACITY, &counts) &&
         nf_dchain_allocate(RL_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, pairs, now > NF_NS_PER_SEC ? now - NF_NS_PER_SEC : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) return device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!l4 || ip->protocol != NF_IP_PROTO_UDP) return device == LAN ? WAN : LAN;
  struct pair key;
  if (device == LAN) {
    if (l4->dst_port != nf_htons(53)) return WAN;
    key.client = ip->src_addr; key.resolver = ip->dst_addr;
  } else {
    if (l4->src_port != nf_htons(53)) return LAN;
    key.client = ip->dst_addr; key.resolver = ip->src_addr;
  }
  int index;
  if (!nf_map_get(pairs, &key, &index)) {
    if (device == WAN) return NF_DROP; /* an answer nobody asked for */
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(pairs, &key, index);
    struct pair *k = nf_vector_borrow(keys, index);
    *k = key;
    nf_vector_return(keys, index, k);
    struct count *c0 = nf_vector_borrow(counts, index);
    c0->n = 0;
    nf_vector_return(counts, index, c0);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  if (device == WAN) return LAN;
  struct count *c = nf_vector_borrow(counts, index);
  int over = c->n >= RL_LIMIT;
  if (!over) c->n++;
  nf_vector_return(counts, index, c);
  return over ? NF_DROP : WAN;
}
