/*
 * port_budget: a per-destination-port frame budget. Every TCP or UDP frame, from either side, is
 * counted against its destination port; a port that has used up PORT_BUDGET frames gets no more
 * through (its frames are dropped). Anything else passes.
 *
 * State:
 *   used  vector struct port_use, indexed by the destination port itself (no allocator: every
 *         port has its cell), PORT_CELLS cells
 *
 * Sharding: the cell a frame touches is named by its destination port alone, so RSS must send
 * every frame to one port to one core: hash the destination port. Shared nothing must keep every
 * cell on every core (a port number is not an index a core allocates), so the vector keeps its
 * full size per core.
 *
 * Configuration (override with --define NAME=VALUE):
 *   PORT_BUDGET  frames each destination port may send
 */
#include "nf.h"

#ifndef PORT_BUDGET
#define PORT_BUDGET 8
#endif
#define PORT_CELLS 65536

#define LAN 0
#define WAN 1

struct port_use {
  uint32_t frames;
};

static struct nf_vector *used;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(struct port_use), PORT_CELLS, &used);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return out;
  }
  int port = nf_ntohs(l4->dst_port);
  struct port_use *use = nf_vector_borrow(used, port);
  bool allowed = use->frames < PORT_BUDGET;
  if (allowed) {
    use->frames += 1;
  }
  nf_vector_return(used, port, use);
  return allowed ? out : NF_DROP;
}
