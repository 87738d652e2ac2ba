/*
 * xor_pairs: a frame budget per host pair on one port (NF_DEVICES 1), both directions alike: the
 * key is the XOR of the two addresses, so A->B and B->A share one counter (as does any pair with
 * the same XOR, by the NF's own choice). A pair over XP_MAX frames in XP_WINDOW_NS is dropped;
 * other IPv4 TCP/UDP frames go back out of the port; anything else is dropped.
 *   -D XP_PORTS  the key also holds the XOR of the two ports (a conversation, both directions)
 *   -D XP_MASK   the address XOR keeps only its top 24 bits (pairs of /24s)
 *   -D XP_SUM    the key is the sum of the two addresses instead (not linear over GF(2))
 *
 * Expected: shared-nothing for the XOR keys: RSS hashes src_ip, dst_ip (and the ports with
 * XP_PORTS) with a key whose windows for the two addresses (and the two ports) are equal, since
 * Toeplitz is linear: hash(s, d) = M(s) ^ M(d) = M(s ^ d) (tests/test_xor_keys.py). XP_SUM locks:
 * equal sums need not be equal XORs (1 + 4 == 2 + 3), and no Toeplitz key follows a sum.
 */
#define NF_DEVICES 1
#include "nf.h"

#ifndef XP_MAX
#define XP_MAX 20
#endif
#ifndef XP_CAPACITY
#define XP_CAPACITY 1024
#endif
#define XP_WINDOW_NS (5 * NF_NS_PER_SEC)

struct pair_key {
  uint32_t addresses;
#ifdef XP_PORTS
  uint16_t ports;
  uint16_t pad;
#endif
};

struct count {
  nf_time_t since;
  uint32_t frames;
  uint32_t pad;
};

static struct nf_map *pairs;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct pair_key), XP_CAPACITY, &pairs) &&
         nf_vector_allocate(sizeof(struct pair_key), XP_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct count), XP_CAPACITY, &counts) && nf_dchain_allocate(XP_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, pairs, now > 4 * XP_WINDOW_NS ? now - 4 * XP_WINDOW_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  struct pair_key key;
#ifdef XP_SUM
  key.addresses = nf_ntohl(ip->src_addr) + nf_ntohl(ip->dst_addr);
#elif defined(XP_MASK)
  key.addresses = (nf_ntohl(ip->src_addr) ^ nf_ntohl(ip->dst_addr)) & 0xffffff00u;
#else
  key.addresses = ip->src_addr ^ ip->dst_addr;
#endif
#ifdef XP_PORTS
  key.ports = nf_ntohs(l4->src_port) ^ nf_ntohs(l4->dst_port);
  key.pad = 0;
#endif
  int index;
  if (!nf_map_get(pairs, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(pairs, &key, index);
    struct pair_key *cell = nf_vector_borrow(keys, index);
    *cell = key;
    nf_vector_return(keys, index, cell);
    struct count *fresh = nf_vector_borrow(counts, index);
    fresh->since = now;
    fresh->frames = 0;
    nf_vector_return(counts, index, fresh);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct count *c = nf_vector_borrow(counts, index);
  if (now - c->since >= XP_WINDOW_NS) {
    c->since = now;
    c->frames = 0;
  }
  bool pass = c->frames < XP_MAX;
  c->frames += pass;
  nf_vector_return(counts, index, c);
  return pass ? device : NF_DROP;
}
