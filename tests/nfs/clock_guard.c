/*
 * clock_guard: a watchdog that trusts its clock. LAN tick frames (UDP to port CG_TICK_PORT)
 * record their time in one global cell; every other frame is forwarded when its time is not
 * before the last tick's, and dropped as "from the past" when it is (which, with a clock that
 * never goes back, never happens: the sequential NF on any trace in time order drops nothing).
 *
 * Expected: sn with the cell replicated (only ticks write it), or locks (the cell's index is a
 * constant). Cores run at their own pace: under locks a tick of a core that is ahead may reach
 * the cell before a frame of a core that is behind, under sn a core that is behind may apply a
 * tick broadcast by one that is ahead. A pass must never run before a time its state holds
 * (nf_par_process, nf_rep_process), so the parallel build drops nothing either
 * (tests/test_check_suite.py).
 */
#include "nf.h"

#ifndef CG_TICK_PORT
#define CG_TICK_PORT 7
#endif

struct tick {
  nf_time_t last;
};

static struct nf_vector *ticks;

bool nf_init(void) { return nf_vector_allocate(sizeof(struct tick), 1, &ticks); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int out = device == 0 ? 1 : 0;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (l4 == NULL || ip == NULL) {
    return out;
  }
  struct tick *t = nf_vector_borrow(ticks, 0);
  if (device == 0 && ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(CG_TICK_PORT)) {
    t->last = now;
    nf_vector_return(ticks, 0, t);
    return NF_DROP;
  }
  nf_time_t last = t->last;
  nf_vector_return(ticks, 0, t);
  if (now < last) {
    return NF_DROP; /* from the past */
  }
  return out;
}
