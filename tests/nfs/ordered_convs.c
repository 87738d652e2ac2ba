/*
 * ordered_convs: a frame budget per TCP/UDP conversation on one port (NF_DEVICES 1), both
 * directions alike: the key is the lower address with its port, then the higher address with its
 * port, so A:x->B:y and B:y->A:x share one counter. A conversation over OC_MAX frames in
 * OC_WINDOW_NS is dropped; other IPv4 TCP/UDP frames go back out of the port; anything else is
 * dropped.
 *   -D OC_PORT_ORDER  the ports are ordered on their own (the lower port first, whichever address
 *                     it belongs to), as NFs that key by {address pair, port pair} do
 *
 * Expected: shared-nothing, RSS hashing all four fields with a symmetric key (the two addresses'
 * windows equal, the two ports' windows equal): each way the key's ?: can go is related to each
 * other way (two ways, four with OC_PORT_ORDER), tests/test_xor_keys.py.
 */
#define NF_DEVICES 1
#include "nf.h"

#ifndef OC_MAX
#define OC_MAX 20
#endif
#ifndef OC_CAPACITY
#define OC_CAPACITY 1024
#endif
#define OC_WINDOW_NS (5 * NF_NS_PER_SEC)

struct conv_key {
  uint32_t low;
  uint32_t high;
  uint16_t low_port;
  uint16_t high_port;
};

struct count {
  nf_time_t since;
  uint32_t frames;
  uint32_t pad;
};

static struct nf_map *convs;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct conv_key), OC_CAPACITY, &convs) &&
         nf_vector_allocate(sizeof(struct conv_key), OC_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct count), OC_CAPACITY, &counts) && nf_dchain_allocate(OC_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, convs, now > 4 * OC_WINDOW_NS ? now - 4 * OC_WINDOW_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  uint32_t a = nf_ntohl(ip->src_addr);
  uint32_t b = nf_ntohl(ip->dst_addr);
  uint16_t x = nf_ntohs(l4->src_port);
  uint16_t y = nf_ntohs(l4->dst_port);
  struct conv_key key;
  key.low = a < b ? a : b;
  key.high = a < b ? b : a;
#ifdef OC_PORT_ORDER
  key.low_port = x < y ? x : y;
  key.high_port = x < y ? y : x;
#else
  key.low_port = a < b ? x : y;
  key.high_port = a < b ? y : x;
#endif
  int index;
  if (!nf_map_get(convs, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(convs, &key, index);
    struct conv_key *cell = nf_vector_borrow(keys, index);
    *cell = key;
    nf_vector_return(keys, index, cell);
    struct count *fresh = nf_vector_borrow(counts, index);
    fresh->since = now;
    fresh->frames = 0;
    nf_vector_return(counts, index, fresh);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct count *c = nf_vector_borrow(counts, index);
  if (now - c->since >= OC_WINDOW_NS) {
    c->since = now;
    c->frames = 0;
  }
  bool pass = c->frames < OC_MAX;
  c->frames += pass;
  nf_vector_return(counts, index, c);
  return pass ? device : NF_DROP;
}
