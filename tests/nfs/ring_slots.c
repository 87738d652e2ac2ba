/*
 * ring_slots: a flow meter whose LAN flows get an index from a dchain (a ring of RS_FLOWS tickets
 * handed out in turn) and count their frames in a ring of RS_SLOTS counters, the slot being the
 * low bits of the ticket (ticket & (RS_SLOTS - 1)); a slot passes RS_LIMIT frames, then drops.
 * WAN frames pass uncounted.
 *
 * State:
 *   flows  map LAN 5-tuple -> ticket
 *   ring   dchain of RS_FLOWS tickets
 *   slots  vector uint32_t, RS_SLOTS counters, at the ticket's low bits
 *
 * Expected: locks. RS_FLOWS / RS_SLOTS tickets share a slot, and which flows share one depends on
 * the order the ring handed tickets out, which a ring per core changes. The reason names the ring's
 * ticket and the line that takes it, never the engine's symbol for it or a bit slice.
 */
#include "nf.h"

#ifndef RS_FLOWS
#define RS_FLOWS 1024
#endif
#ifndef RS_SLOTS
#define RS_SLOTS 64
#endif
#define RS_LIMIT 100u

#define LAN 0
#define WAN 1

struct flow {
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
};

static struct nf_map *flows;
static struct nf_dchain *ring;
static struct nf_vector *slots;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), RS_FLOWS, &flows) && nf_dchain_allocate(RS_FLOWS, &ring) &&
         nf_vector_allocate(sizeof(uint32_t), RS_SLOTS, &slots);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return WAN;
  }
  struct flow key = {ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port};
  int ticket;
  if (!nf_map_get(flows, &key, &ticket)) {
    if (!nf_dchain_allocate_new_index(ring, &ticket, now)) {
      return NF_DROP;
    }
    nf_map_put(flows, &key, ticket);
  }
  int slot = ticket & (RS_SLOTS - 1);
  uint32_t *count = nf_vector_borrow(slots, slot);
  int out = *count < RS_LIMIT ? WAN : NF_DROP;
  (*count)++;
  nf_vector_return(slots, slot, count);
  return out;
}
