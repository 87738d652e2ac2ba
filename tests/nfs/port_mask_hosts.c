/*
 * port_mask_hosts: two budgets that share no packets. LAN frames (TCP/UDP) count against the block
 * of 256 client ports their source port falls in, the key nf_ntohs(src_port) & 0xff00; WAN frames
 * (IPv4) count against their source host. A block or host past PMH_BUDGET frames drops the rest;
 * a new one that finds its table full is dropped too.
 *
 * Expected: sn; the LAN hashes src_port, bits 0-7 only (the top byte), the WAN src_ip; no constraint
 * relates the devices, yet they read one RETA. The LAN's key leaves the index's lowest bit 0 for every
 * LAN packet and the WAN's does not, so the round-robin RETA (which skipped only the low bits that no
 * device sets) put every LAN packet on core 0 of 2 (tests/test_port_spread.py).
 */
#include "nf.h"

#ifndef PMH_CAPACITY
#define PMH_CAPACITY 4096
#endif
#ifndef PMH_BUDGET
#define PMH_BUDGET 60
#endif

#define LAN 0
#define WAN 1

struct block_key {
  uint16_t block;
};

struct host_key {
  uint32_t addr;
};

struct budget {
  uint32_t frames;
};

static struct nf_map *blocks;
static struct nf_vector *block_frames;
static struct nf_dchain *block_chain;
static struct nf_map *hosts;
static struct nf_vector *host_frames;
static struct nf_dchain *host_chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct block_key), PMH_CAPACITY, &blocks) &&
         nf_vector_allocate(sizeof(struct budget), PMH_CAPACITY, &block_frames) &&
         nf_dchain_allocate(PMH_CAPACITY, &block_chain) &&
         nf_map_allocate(sizeof(struct host_key), PMH_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct budget), PMH_CAPACITY, &host_frames) &&
         nf_dchain_allocate(PMH_CAPACITY, &host_chain);
}

/* One frame against the budget at `index` of `frames`; false when the budget is used up. */
static bool spend(struct nf_vector *frames, int index) {
  struct budget *b = nf_vector_borrow(frames, index);
  bool within = b->frames < PMH_BUDGET;
  if (within) {
    b->frames += 1;
  }
  nf_vector_return(frames, index, b);
  return within;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int index;
  if (device == LAN) {
    struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
    if (l4 == NULL) {
      return WAN;
    }
    struct block_key key = {.block = nf_ntohs(l4->src_port) & 0xff00};
    if (!nf_map_get(blocks, &key, &index)) {
      if (!nf_dchain_allocate_new_index(block_chain, &index, now)) {
        return NF_DROP;
      }
      nf_map_put(blocks, &key, index);
    }
    return spend(block_frames, index) ? WAN : NF_DROP;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return LAN;
  }
  struct host_key key = {.addr = ip->src_addr};
  if (!nf_map_get(hosts, &key, &index)) {
    if (!nf_dchain_allocate_new_index(host_chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(hosts, &key, index);
  }
  return spend(host_frames, index) ? LAN : NF_DROP;
}
