/*
 * leaky_cell: a frame budget per LAN destination port whose over-budget branch returns NF_DROP
 * between nf_vector_borrow and nf_vector_return, the mistake an early return makes in C. The
 * runtime stops such an NF a few over-budget frames later ("more than 8 cells ... borrowed
 * without nf_vector_return").
 *
 * Expected: refused by the analysis at the early return, naming the vector and where the cell
 * was borrowed (tests/test_symbex_unsupported.py).
 */
#include "nf.h"

#define LAN 0
#define WAN 1
#define LC_BUDGET 3

struct budget {
  uint32_t frames;
};

static struct nf_vector *budgets;

bool nf_init(void) { return nf_vector_allocate(sizeof(struct budget), 65536, &budgets); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device != LAN) {
    return LAN;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return WAN;
  }
  int port = nf_ntohs(l4->dst_port);
  struct budget *b = nf_vector_borrow(budgets, port);
  if (b->frames >= LC_BUDGET) {
    return NF_DROP; /* the cell is never handed back */
  }
  b->frames += 1;
  nf_vector_return(budgets, port, b);
  return WAN;
}
