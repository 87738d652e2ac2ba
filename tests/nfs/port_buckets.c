/*
 * port_buckets: a frame budget per bucket of 1024 client ports. LAN frames (TCP/UDP) count against
 * the bucket of their source port, nf_ntohs(src_port) >> 10; WAN frames, the replies, against the
 * bucket of their destination port. A bucket that has passed PBK_BUDGET frames drops the rest.
 * Other frames cross untouched.
 *
 * Expected: sn, LAN hashing src_port and WAN dst_port, bits 0-5 only (the port's top six bits).
 * Toeplitz gives a field's top bits to the RETA index's low bits, so a round-robin RETA split the
 * cores on the port's most significant bit, which every ephemeral port (32768-60999) has set: all
 * traffic on one core. The RETA deals cores out by bucket number instead (explorer/rss/reta.py);
 * every port below 1024 still shares bucket 0, and solve says so (tests/test_port_spread.py).
 */
#include "nf.h"

#ifndef PBK_BUDGET
#define PBK_BUDGET 400
#endif
#define PBK_BUCKETS 64

#define LAN 0
#define WAN 1

struct bucket {
  uint32_t frames;
};

static struct nf_vector *buckets;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(struct bucket), PBK_BUCKETS, &buckets);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return out;
  }
  int client = device == LAN ? nf_ntohs(l4->src_port) : nf_ntohs(l4->dst_port);
  int which = client >> 10;
  struct bucket *b = nf_vector_borrow(buckets, which);
  bool over = b->frames >= PBK_BUDGET;
  if (!over) {
    b->frames += 1;
  }
  nf_vector_return(buckets, which, b);
  return over ? NF_DROP : out;
}
