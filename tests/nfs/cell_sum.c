/*
 * cell_sum: a load meter over 16 per-class counters. LAN control frames (UDP to CS_CTL_PORT) add
 * one to the counter of their TTL's class (TTL % 16); every other
 * frame passes while the counters, read CS_ROUNDS times over in a constant-bound loop, sum to at
 * most CS_LIMIT, and is dropped once they do not.
 *
 * Expected: sn, the counters replicated (only control frames write them: rare writers). The
 * analysis: 8 paths, the data paths' verdicts a comparison of a sum of 16 x CS_ROUNDS cells.
 * With 4 rounds (64 reads) Z3 gave up on it after 20 s, 2 rounds took 10 s and 12 rounds
 * minutes: the sum is a heavy term now, tried on candidate values first, then on an incremental
 * solver of its own within a resource budget, then on a fresh solver that preprocesses
 * (explorer/symbex/path_solver.py); 2-4 s at 4 rounds.
 */
#include "nf.h"

#ifndef CS_CTL_PORT
#define CS_CTL_PORT 7777
#endif
#ifndef CS_ROUNDS
#define CS_ROUNDS 4
#endif
#ifndef CS_LIMIT
#define CS_LIMIT 1000
#endif

static struct nf_vector *counters;

bool nf_init(void) { return nf_vector_allocate(sizeof(uint32_t), 16, &counters); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == 0 ? 1 : 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) return out;
  if (device == 0 && ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(CS_CTL_PORT)) {
    int k = ip->ttl % 16;
    uint32_t *c = nf_vector_borrow(counters, k);
    *c = *c + 1;
    nf_vector_return(counters, k, c);
    return NF_DROP;
  }
  uint32_t sum = 0;
  for (int i = 0; i < 16 * CS_ROUNDS; i++) {
    uint32_t *c = nf_vector_borrow(counters, i % 16);
    sum += *c;
    nf_vector_return(counters, i % 16, c);
  }
  return sum <= CS_LIMIT ? out : NF_DROP;
}
