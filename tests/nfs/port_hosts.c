/*
 * port_hosts: frame budget per (input port, source host). The key starts with the device the frame
 * came in on, so a host seen on both ports has two independent counters. Over DK_LIMIT frames in a
 * second, a host is dropped on that port.
 *
 * Expected: sn, each device hashes src_ip, and no constraint between the devices (keys with
 * different device numbers are never equal).
 */
#include "nf.h"
#ifndef DK_LIMIT
#define DK_LIMIT 5
#endif
struct dev_key { uint16_t device; uint16_t pad; uint32_t src; };
static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct dev_key), 256, &hosts) && nf_vector_allocate(sizeof(struct dev_key), 256, &keys) &&
         nf_vector_allocate(sizeof(uint32_t), 256, &counts) && nf_dchain_allocate(256, &chain);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, now > NF_NS_PER_SEC ? now - NF_NS_PER_SEC : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct dev_key key = {.device = device, .pad = 0, .src = ip->src_addr};
  int index;
  if (!nf_map_get(hosts, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(hosts, &key, index);
    struct dev_key *k = nf_vector_borrow(keys, index);
    *k = key;
    nf_vector_return(keys, index, k);
    uint32_t *z = nf_vector_borrow(counts, index);
    *z = 0;
    nf_vector_return(counts, index, z);
  } else {
    nf_dchain_rejuvenate_index(chain, index, now);
  }
  uint32_t *c = nf_vector_borrow(counts, index);
  bool over = *c >= DK_LIMIT;
  if (!over) *c += 1;
  nf_vector_return(counts, index, c);
  return over ? NF_DROP : 1 - device;
}
