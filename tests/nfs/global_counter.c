/*
 * global_counter: a fault injector that drops every GC_EVERY-th IPv4 frame, counting frames of
 * both devices in one counter. Non-IPv4 frames pass uncounted.
 *
 * Expected: locks. The counter's index is a constant, not a packet field, so no RSS key can send
 * the frames that share it (all of them) to one core's copy.
 */
#include "nf.h"

#ifndef GC_EVERY
#define GC_EVERY 7
#endif

struct count {
  uint64_t frames;
};

static struct nf_vector *counter;

bool nf_init(void) { return nf_vector_allocate(sizeof(struct count), 1, &counter); }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  int out = device == 0 ? 1 : 0;
  if (nf_ipv4_header(packet, len) == NULL) {
    return out;
  }
  struct count *c = nf_vector_borrow(counter, 0);
  c->frames += 1;
  uint64_t frames = c->frames;
  nf_vector_return(counter, 0, c);
  return frames % GC_EVERY == 0 ? NF_DROP : out;
}
