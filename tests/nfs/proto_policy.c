/*
 * proto_policy: per-LAN-host frame budget whose size and verdict come from a 256-entry const table
 * of structs indexed by the IPv4 protocol (designated initializers; unlisted protocols are 0:
 * dropped). The key is built by a helper that returns a struct by value and the budget is charged
 * by one that takes it by value; the TCP/UDP ports are read in a switch whose TCP case falls
 * through to UDP's; the verdict is a nested ternary.
 */
#include "nf.h"

#ifndef PP_CAPACITY
#define PP_CAPACITY 1024
#endif
#ifndef PP_UNIT
#define PP_UNIT 10 /* budgets are in units of PP_UNIT weight */
#endif

#define LAN 0
#define WAN 1

struct policy {
  uint8_t allow;
  uint8_t weight;
  uint16_t budget;
};

static const struct policy POLICY[256] = {
  [1] = {1, 4, 5 * PP_UNIT},    /* ICMP */
  [6] = {1, 2, 100 * PP_UNIT},  /* TCP */
  [17] = {1, 2, 50 * PP_UNIT},  /* UDP */
  [47] = {1, 8, 10 * PP_UNIT},  /* GRE */
  [50] = {1, 8, 10 * PP_UNIT},  /* ESP */
};

struct host {
  uint32_t addr;
};

struct charge {
  uint32_t index;
  uint16_t weight;
  uint16_t budget;
};

static struct nf_map *hosts;
static struct nf_vector *addrs;
static struct nf_vector *used;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), PP_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host), PP_CAPACITY, &addrs) &&
         nf_vector_allocate(sizeof(uint32_t), PP_CAPACITY, &used) &&
         nf_dchain_allocate(PP_CAPACITY, &chain);
}

static struct host host_of(uint16_t device, const struct nf_ipv4_hdr *ip) {
  struct host h = {device == LAN ? ip->src_addr : ip->dst_addr};
  return h;
}

/* true when the frame fits in what is left of the host's budget */
static bool charge(struct charge c) {
  uint32_t *u = nf_vector_borrow(used, c.index);
  bool fits = *u + c.weight <= c.budget;
  if (fits) {
    *u += c.weight;
  }
  nf_vector_return(used, c.index, u);
  return fits;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct policy pol = POLICY[ip->protocol];
  if (!pol.allow) {
    return NF_DROP;
  }
  uint16_t weight = pol.weight;
  switch (ip->protocol) {
  case 6:
    weight += 1; /* TCP pays for its handshake, then as UDP */
    /* fallthrough */
  case 17: {
    struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
    if (l4 != NULL && l4->dst_port == nf_htons(53)) {
      weight = 1; /* DNS costs one unit */
    }
    break;
  }
  default:
    break;
  }
  struct host h = host_of(device, ip);
  int index;
  if (!nf_map_get(hosts, &h, &index)) {
    if (device == WAN || !nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &h, index);
    struct host *a = nf_vector_borrow(addrs, index);
    *a = h;
    nf_vector_return(addrs, index, a);
    uint32_t *u = nf_vector_borrow(used, index);
    *u = 0;
    nf_vector_return(used, index, u);
  }
  struct charge c = {(uint32_t)index, weight, pol.budget};
  bool fits = charge(c);
  return !fits ? NF_DROP : device == LAN ? WAN : device == WAN ? LAN : NF_DROP;
}
