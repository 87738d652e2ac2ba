/*
 * one_port: a one-port reflector (NF_DEVICES 1). IPv4 TCP/UDP frames go back out of the port they
 * came in on, at most OP_MAX per source address and OP_WINDOW_NS window; other frames are dropped.
 *
 * Expected: shared-nothing, device 0 hashing the source address. `nfx solve` measures no balance
 * (its traffic arrives on two devices) and generated traffic is refused with what to give instead.
 */
#define NF_DEVICES 1
#include "nf.h"

#ifndef OP_MAX
#define OP_MAX 20
#endif
#ifndef OP_CAPACITY
#define OP_CAPACITY 1024
#endif
#define OP_WINDOW_NS (5 * NF_NS_PER_SEC)

struct count {
  nf_time_t since;
  uint32_t frames;
  uint32_t pad;
};

static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(uint32_t), OP_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(uint32_t), OP_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct count), OP_CAPACITY, &counts) && nf_dchain_allocate(OP_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, now > 4 * OP_WINDOW_NS ? now - 4 * OP_WINDOW_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL || nf_tcpudp_header(packet, len) == NULL) {
    return NF_DROP;
  }
  uint32_t source = ip->src_addr;
  int index;
  if (!nf_map_get(hosts, &source, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &source, index);
    uint32_t *key = nf_vector_borrow(keys, index);
    *key = source;
    nf_vector_return(keys, index, key);
    struct count *fresh = nf_vector_borrow(counts, index);
    fresh->since = now;
    fresh->frames = 0;
    nf_vector_return(counts, index, fresh);
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct count *c = nf_vector_borrow(counts, index);
  if (now - c->since >= OP_WINDOW_NS) {
    c->since = now;
    c->frames = 0;
  }
  bool pass = c->frames < OP_MAX;
  c->frames += pass;
  nf_vector_return(counts, index, c);
  return pass ? device : NF_DROP;
}
