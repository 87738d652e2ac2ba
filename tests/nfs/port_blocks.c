/*
 * port_blocks: a frame budget per block of 256 server ports. LAN frames (TCP/UDP) count against the
 * block of their destination port, nf_ntohs(dst_port) / 256, and are dropped past PB_BUDGET; WAN
 * frames pass while the block of their source port, nf_ntohs(src_port) >> 8, is within budget.
 * Expected: sn, LAN hashing dst_port and WAN src_port (the top byte decides the block). C promotes
 * the 16-bit port to int, so the division and the shift are signed ones (bvsdiv, bvashr) of a
 * zero-extended value; the key analysis treated them as opaque and locked the counters.
 */
#include "nf.h"

#ifndef PB_BUDGET
#define PB_BUDGET 20
#endif

static struct nf_vector *blocks;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(uint32_t), 256, &blocks);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  if (device == 0) {
    uint32_t block = nf_ntohs(l4->dst_port) / 256;
    uint32_t *count = nf_vector_borrow(blocks, block);
    bool over = *count >= PB_BUDGET;
    if (!over) {
      *count += 1;
    }
    nf_vector_return(blocks, block, count);
    return over ? NF_DROP : 1;
  }
  uint32_t block = nf_ntohs(l4->src_port) >> 8;
  uint32_t *count = nf_vector_borrow(blocks, block);
  bool within = *count < PB_BUDGET;
  nf_vector_return(blocks, block, count);
  return within ? 0 : NF_DROP;
}
