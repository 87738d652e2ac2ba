/*
 * cell_transfer: CT_ACCOUNTS accounts of units, indexed by a frame's ports. Each IPv4 TCP/UDP
 * frame moves one unit from the account of its source port (sport % CT_ACCOUNTS) to the account of
 * its destination port (dport % CT_ACCOUNTS) and is forwarded to the other device; a frame whose
 * source account is empty is dropped. Accounts start with CT_START units each. Other frames pass
 * untouched. The units only move, so their total never changes: a lost update would show.
 *
 * Expected: locks (each frame changes two cells, keyed by different fields). Under locks a frame
 * changes two cells of one vector in a reader pass: different cores lock them in either order (a
 * pass that holds one and finds the other taken reruns instead of waiting), and a pass that reruns
 * undoes both.
 */
#include "nf.h"

#ifndef CT_ACCOUNTS
#define CT_ACCOUNTS 8
#endif
#ifndef CT_START
#define CT_START 3
#endif

struct account {
  uint32_t units;
};

static struct nf_vector *accounts;

bool nf_init(void) {
  if (!nf_vector_allocate(sizeof(struct account), CT_ACCOUNTS, &accounts)) {
    return false;
  }
  for (int i = 0; i < CT_ACCOUNTS; i++) {
    struct account *a = nf_vector_borrow(accounts, i);
    a->units = CT_START;
    nf_vector_return(accounts, i, a);
  }
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == 0 ? 1 : 0;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return out;
  }
  int from = nf_ntohs(l4->src_port) % CT_ACCOUNTS;
  int to = nf_ntohs(l4->dst_port) % CT_ACCOUNTS;
  struct account *source = nf_vector_borrow(accounts, from);
  if (source->units == 0) {
    nf_vector_return(accounts, from, source);
    return NF_DROP;
  }
  source->units -= 1;
  nf_vector_return(accounts, from, source);
  struct account *target = nf_vector_borrow(accounts, to);
  target->units += 1;
  nf_vector_return(accounts, to, target);
  return out;
}
