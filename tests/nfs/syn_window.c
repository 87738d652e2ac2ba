/* syn_window: a SYN-flood guard for the servers behind device 0. SYNs from the outside (device 1) to
 * one server are counted per one-second window; past SYN_LIMIT in a window, further SYNs to it are
 * dropped until the window turns. Everything else passes. Written in a style the samples do not
 * use: a helper that returns a struct by value, a switch with a fallthrough, nested ternaries.
 *
 * Expected: shared-nothing, the servers sharded by p.ipv4.dst on device 1; the UDP case that falls
 * through to the default and the SYN test on device 0 add nothing to their paths' conditions. */
#include "nf.h"

#ifndef SYN_LIMIT
#define SYN_LIMIT 100
#endif
#define SERVERS 1024
#define WINDOW_NS NF_NS_PER_SEC

struct window {
  nf_time_t start;
  uint32_t syns;
  uint32_t pad;
};

struct verdict {
  int device;
  bool counted;
};

static struct nf_map *servers;
static struct nf_vector *windows;
static struct nf_vector *addrs;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(uint32_t), SERVERS, &servers) &&
         nf_vector_allocate(sizeof(struct window), SERVERS, &windows) &&
         nf_vector_allocate(sizeof(uint32_t), SERVERS, &addrs) &&
         nf_dchain_allocate(SERVERS, &chain);
}

static struct verdict syn_to(uint32_t server, nf_time_t now) {
  struct verdict v = {0, false};
  int index;
  if (!nf_map_get(servers, &server, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return v; /* table full: let it through, uncounted */
    }
    nf_map_put(servers, &server, index);
    uint32_t *a = nf_vector_borrow(addrs, index);
    *a = server;
    nf_vector_return(addrs, index, a);
    struct window *w = nf_vector_borrow(windows, index);
    w->start = now;
    w->syns = 0;
    nf_vector_return(windows, index, w);
  } else {
    nf_dchain_rejuvenate_index(chain, index, now);
  }
  struct window *w = nf_vector_borrow(windows, index);
  bool fresh = now - w->start >= WINDOW_NS;
  w->start = fresh ? now : w->start;
  w->syns = fresh ? 1 : w->syns + 1;
  v.counted = true;
  v.device = w->syns > SYN_LIMIT ? NF_DROP : 0;
  nf_vector_return(windows, index, w);
  return v;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, servers, now > 10 * WINDOW_NS ? now - 10 * WINDOW_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return device == 0 ? 1 : 0;
  }
  int out = device == 0 ? 1 : 0;
  switch (ip->protocol) {
  case NF_IP_PROTO_TCP: {
    struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
    if (device == 1 && tcp != NULL && (tcp->flags & (NF_TCP_SYN | NF_TCP_ACK)) == NF_TCP_SYN) {
      struct verdict v = syn_to(ip->dst_addr, now);
      out = v.counted ? v.device : out;
    }
    break;
  }
  case NF_IP_PROTO_UDP:
    /* fall through: UDP passes like anything else */
  default:
    break;
  }
  return out;
}
