/*
 * prefix_counters: frames per LAN source prefix, the prefixes (a /24 and a /16) in a const table
 * of rules walked by a constant-bound loop; the first rule whose prefix holds the source address
 * names the counter: the address masked with the rule's mask, converted to network order
 * (`ip->src_addr & nf_htonl(rules[i].mask)`). Frames of no listed prefix, and WAN frames, pass
 * uncounted; a prefix's frames past PC_MAX_FRAMES are dropped.
 *
 * Expected: the keys read `{net: p.ipv4.src & 0xffffff00}` and `{net: p.ipv4.src & 0xffff0000}`
 * (they read `bswap32(bswap32(p.ipv4.src) & 0xffffff)`: a mask on the address as it is on the
 * wire); sn, the LAN hashing src_ip (the top 16 bits); equivalent under `check` at 2 and 3 cores
 * (`tests/test_symbex_keys.py`).
 */
#include "nf.h"

#ifndef PC_CAPACITY
#define PC_CAPACITY 64
#endif
#define PC_MAX_FRAMES 1000
#define PC_RULES 2
#define LAN 0
#define WAN 1

struct prefix_rule {
  uint32_t prefix; /* host order */
  uint32_t mask;
};

static const struct prefix_rule rules[PC_RULES] = {
  { 0x0a000100u, 0xffffff00u }, /* 10.0.1.0/24 */
  { 0x0a000000u, 0xffff0000u }, /* 10.0.0.0/16 */
};

struct net_key {
  uint32_t net; /* network order */
};

static struct nf_map *nets;
static struct nf_vector *frames;
static struct nf_dchain *slots;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct net_key), PC_CAPACITY, &nets) &&
         nf_vector_allocate(sizeof(uint32_t), PC_CAPACITY, &frames) &&
         nf_dchain_allocate(PC_CAPACITY, &slots);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  int rule = -1;
  for (int i = 0; i < PC_RULES; i++) {
    if ((nf_ntohl(ip->src_addr) & rules[i].mask) == rules[i].prefix) {
      rule = i;
      break;
    }
  }
  if (rule < 0) {
    return WAN;
  }
  struct net_key key = { .net = ip->src_addr & nf_htonl(rules[rule].mask) };
  int index;
  if (!nf_map_get(nets, &key, &index)) {
    if (!nf_dchain_allocate_new_index(slots, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(nets, &key, index);
    uint32_t *fresh = nf_vector_borrow(frames, index);
    *fresh = 0;
    nf_vector_return(frames, index, fresh);
  }
  uint32_t *count = nf_vector_borrow(frames, index);
  uint32_t seen = ++*count;
  nf_vector_return(frames, index, count);
  return seen > PC_MAX_FRAMES ? NF_DROP : WAN;
}
