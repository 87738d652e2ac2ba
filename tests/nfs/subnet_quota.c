/*
 * subnet_quota: a quota per LAN /24 subnet. LAN packets are counted against their source subnet
 * (the address with its last byte cleared); once a subnet has sent SQ_QUOTA packets its further
 * packets are dropped. WAN packets pass untouched. No expiry: a test NF for keys made of part of
 * a field (the top 24 bits of src_ip).
 */
#include "nf.h"

#ifndef SQ_CAPACITY
#define SQ_CAPACITY 256
#endif
#ifndef SQ_QUOTA
#define SQ_QUOTA 3
#endif

#define LAN 0
#define WAN 1

struct subnet_key {
  uint32_t subnet; /* as on the wire, last byte cleared */
};

struct quota {
  uint32_t sent;
};

static struct nf_map *subnets;
static struct nf_vector *quotas;
static struct nf_dchain *indices;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct subnet_key), SQ_CAPACITY, &subnets)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct quota), SQ_CAPACITY, &quotas)) {
    return false;
  }
  return nf_dchain_allocate(SQ_CAPACITY, &indices);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct subnet_key key;
  key.subnet = ip->src_addr & nf_htonl(0xFFFFFF00u);
  int index;
  if (!nf_map_get(subnets, &key, &index)) {
    if (!nf_dchain_allocate_new_index(indices, &index, now)) {
      return NF_DROP; /* every subnet slot is taken */
    }
    nf_map_put(subnets, &key, index);
    struct quota *fresh = nf_vector_borrow(quotas, index);
    fresh->sent = 0;
    nf_vector_return(quotas, index, fresh);
  }
  struct quota *quota = nf_vector_borrow(quotas, index);
  int verdict = WAN;
  if (quota->sent >= SQ_QUOTA) {
    verdict = NF_DROP;
  } else {
    quota->sent++;
  }
  nf_vector_return(quotas, index, quota);
  return verdict;
}
