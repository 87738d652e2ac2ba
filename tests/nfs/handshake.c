/* handshake: a LAN -> WAN TCP tracker whose paths need state that earlier packets build. A SYN
 * of a new flow (addresses and ports) opens it; the flow's first ACK completes the handshake; a
 * data segment (PSH) of a completed flow counts towards HS_SEGMENTS, past which the flow's
 * segments are dropped. Segments of flows never opened are dropped; other frames pass.
 *
 * Expected: every path reachable from packets: a SYN, then an ACK, then data, then data past the
 * limit (tests/test_check.py, the witness search).
 */
#include "nf.h"

#ifndef HS_CAP
#define HS_CAP 64
#endif
#ifndef HS_SEGMENTS
#define HS_SEGMENTS 3
#endif

#define OPENING 1
#define OPEN 2

struct hs_key {
  uint32_t src, dst;
  uint16_t sport, dport;
};

struct hs_flow {
  uint32_t stage;
  uint32_t segments;
};

static struct nf_map *flows;
static struct nf_vector *state;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct hs_key), HS_CAP, &flows)
      && nf_vector_allocate(sizeof(struct hs_flow), HS_CAP, &state)
      && nf_dchain_allocate(HS_CAP, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device != 0) return 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
  if (ip == NULL || l4 == NULL || tcp == NULL) return 1;
  struct hs_key key = {ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port};
  int index;
  if (!nf_map_get(flows, &key, &index)) {
    if ((tcp->flags & (NF_TCP_SYN | NF_TCP_ACK)) != NF_TCP_SYN) return NF_DROP;
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(flows, &key, index);
    struct hs_flow *fresh = nf_vector_borrow(state, index);
    fresh->stage = OPENING;
    fresh->segments = 0;
    nf_vector_return(state, index, fresh);
    return 1;
  }
  int verdict = 1;
  struct hs_flow *f = nf_vector_borrow(state, index);
  if (f->stage == OPENING) {
    if (tcp->flags & NF_TCP_ACK) f->stage = OPEN;
  } else if (tcp->flags & NF_TCP_PSH) {
    if (f->segments >= HS_SEGMENTS) verdict = NF_DROP;
    else f->segments++;
  }
  nf_vector_return(state, index, f);
  return verdict;
}
