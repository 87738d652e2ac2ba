/* port_counter: counts UDP/TCP packets per destination port in a vector indexed by the port itself
 * (PORT_CAPACITY cells; a port at or past it breaks nf.h's contract: the analysis refuses a capacity
 * below 65536, and a program built with one anyway stops with a run error, by design of the test
 * that does so). Everything crosses between the two devices. */
#include "nf.h"

#ifndef PORT_CAPACITY
#define PORT_CAPACITY 65536
#endif

struct counter {
  uint32_t packets;
};

static struct nf_vector *counters;

bool nf_init(void) { return nf_vector_allocate(sizeof(struct counter), PORT_CAPACITY, &counters); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 != NULL) {
    int port = nf_ntohs(l4->dst_port);
    struct counter *cell = nf_vector_borrow(counters, port);
    cell->packets++;
    nf_vector_return(counters, port, cell);
  }
  return device == 0 ? 1 : 0;
}
