/*
 * conn_track: connection tracking with a packet budget per connection. A LAN TCP/UDP frame opens
 * (or refreshes) its connection, keyed by its 5-tuple, and counts against the connection's budget
 * of CT_BUDGET frames (both directions together); a WAN frame is let in only as a reply to an open
 * connection (its 5-tuple reversed) and counts too. Frames past the budget, replies to unknown
 * connections and non-TCP/UDP frames are dropped. Idle connections close after CT_EXPIRATION_NS.
 *
 * Expected: shared-nothing with symmetric keys: LAN (src, dst, sport, dport) ~ WAN (dst, src,
 * dport, sport).
 */
#include "nf.h"

#ifndef CT_CAPACITY
#define CT_CAPACITY 4096
#endif
#ifndef CT_BUDGET
#define CT_BUDGET 40
#endif
#ifndef CT_EXPIRATION_NS
#define CT_EXPIRATION_NS (30 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct conn_key {
  uint32_t lan_addr;
  uint32_t wan_addr;
  uint16_t lan_port;
  uint16_t wan_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct usage {
  uint32_t frames;
};

static struct nf_map *conns;
static struct nf_vector *keys;
static struct nf_vector *usage;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct conn_key), CT_CAPACITY, &conns) &&
         nf_vector_allocate(sizeof(struct conn_key), CT_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct usage), CT_CAPACITY, &usage) &&
         nf_dchain_allocate(CT_CAPACITY, &chain);
}

/* Counts one frame against the connection's budget: whether it may pass. */
static bool spend(int index, nf_time_t now) {
  struct usage *u = nf_vector_borrow(usage, index);
  bool ok = u->frames < CT_BUDGET;
  if (ok) {
    u->frames += 1;
  }
  nf_vector_return(usage, index, u);
  nf_dchain_rejuvenate_index(chain, index, now);
  return ok;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, conns, now > CT_EXPIRATION_NS ? now - CT_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  struct conn_key key;
  memset(&key, 0, sizeof key);
  key.protocol = ip->protocol;
  int index;
  if (device == LAN) {
    key.lan_addr = ip->src_addr;
    key.wan_addr = ip->dst_addr;
    key.lan_port = l4->src_port;
    key.wan_port = l4->dst_port;
    if (!nf_map_get(conns, &key, &index)) {
      if (!nf_dchain_allocate_new_index(chain, &index, now)) {
        return NF_DROP;
      }
      nf_map_put(conns, &key, index);
      struct conn_key *cell = nf_vector_borrow(keys, index);
      *cell = key;
      nf_vector_return(keys, index, cell);
      struct usage *u = nf_vector_borrow(usage, index);
      u->frames = 0;
      nf_vector_return(usage, index, u);
    }
    return spend(index, now) ? WAN : NF_DROP;
  }
  key.lan_addr = ip->dst_addr;
  key.wan_addr = ip->src_addr;
  key.lan_port = l4->dst_port;
  key.wan_port = l4->src_port;
  if (!nf_map_get(conns, &key, &index)) {
    return NF_DROP;
  }
  return spend(index, now) ? LAN : NF_DROP;
}
