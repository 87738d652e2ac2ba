/*
 * hash_buckets: per-bucket frame counter; the bucket is nf_hash of the (src, dst, proto) triple % 64;
 * a bucket past HC_MAX frames drops. Expected: locks: the key is a hash, no field of its own.
 */
#include "nf.h"

#ifndef HC_MAX
#define HC_MAX 100
#endif

struct triple {
  uint32_t src;
  uint32_t dst;
  uint8_t proto;
  uint8_t pad[3];
};

static struct nf_vector *buckets;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(uint32_t), 64, &buckets);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct triple t;
  memset(&t, 0, sizeof t);
  t.src = ip->src_addr;
  t.dst = ip->dst_addr;
  t.proto = ip->protocol;
  uint32_t b = nf_hash(&t, sizeof t) % 64;
  uint32_t *c = nf_vector_borrow(buckets, b);
  bool over = *c >= HC_MAX;
  if (!over) {
    *c += 1;
  }
  nf_vector_return(buckets, b, c);
  return over ? NF_DROP : 1 - device;
}
