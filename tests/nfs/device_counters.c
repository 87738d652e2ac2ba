/*
 * device_counters: counts the frames and bytes each input port receives, in a vector with one
 * cell per device, and forwards LAN -> WAN, WAN -> LAN.
 *
 * State:
 *   per_port  vector struct port_count, indexed by the input device, NF_DEVICES cells
 *
 * Expected: locks. Every frame writes its device's cell, whatever its flow, and RSS spreads each
 * device's frames over every core; the reason names the input device (it said the index
 * "depends on no packet field", as if it were one constant cell).
 */
#include "nf.h"

#define LAN 0
#define WAN 1

struct port_count {
  uint64_t frames;
  uint64_t bytes;
};

static struct nf_vector *per_port;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(struct port_count), NF_DEVICES, &per_port);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)now;
  struct port_count *c = nf_vector_borrow(per_port, device);
  c->frames += 1;
  c->bytes += len;
  nf_vector_return(per_port, device, c);
  return device == LAN ? WAN : LAN;
}
