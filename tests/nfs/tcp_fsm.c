/* tcp_fsm: a TCP connection tracker for LAN-initiated connections, written as an enum-indexed
 * state machine over a struct-of-arrays state (one vector per attribute: the state, the segment
 * count). The transition is a const 2-D table NEXT[state][event]; WAN segments pass only
 * for tracked connections past CLOSED, and a RST from either side closes the connection.
 *
 * Expected: sn, the connections sharded on the 4-tuple both ways (LAN as sent, WAN reversed). A new
 * connection resets its state cell: without that, a recycled index starts from what its last holder
 * left, and nfx solve locks the chain and says why (the path, the line, the cell read).
 */
#include "nf.h"

#ifndef TF_CAP
#define TF_CAP 1024
#endif
#ifndef TF_AGE_NS
#define TF_AGE_NS (30 * NF_NS_PER_SEC)
#endif

enum conn_state { ST_CLOSED, ST_SYN_SENT, ST_ESTABLISHED, ST_FIN_WAIT, ST_COUNT };
enum tcp_event { EV_SYN, EV_SYNACK, EV_ACK, EV_FIN, EV_RST, EV_OTHER, EV_COUNT };

static const uint8_t NEXT[ST_COUNT][EV_COUNT] = {
  [ST_CLOSED] =      { [EV_SYN] = ST_SYN_SENT, [EV_SYNACK] = ST_CLOSED, [EV_ACK] = ST_CLOSED,
                       [EV_FIN] = ST_CLOSED, [EV_RST] = ST_CLOSED, [EV_OTHER] = ST_CLOSED },
  [ST_SYN_SENT] =    { [EV_SYN] = ST_SYN_SENT, [EV_SYNACK] = ST_ESTABLISHED, [EV_ACK] = ST_SYN_SENT,
                       [EV_FIN] = ST_CLOSED, [EV_RST] = ST_CLOSED, [EV_OTHER] = ST_SYN_SENT },
  [ST_ESTABLISHED] = { [EV_SYN] = ST_ESTABLISHED, [EV_SYNACK] = ST_ESTABLISHED, [EV_ACK] = ST_ESTABLISHED,
                       [EV_FIN] = ST_FIN_WAIT, [EV_RST] = ST_CLOSED, [EV_OTHER] = ST_ESTABLISHED },
  [ST_FIN_WAIT] =    { [EV_SYN] = ST_FIN_WAIT, [EV_SYNACK] = ST_FIN_WAIT, [EV_ACK] = ST_CLOSED,
                       [EV_FIN] = ST_CLOSED, [EV_RST] = ST_CLOSED, [EV_OTHER] = ST_FIN_WAIT },
};

struct conn_key {
  uint32_t lan_ip;
  uint32_t wan_ip;
  uint16_t lan_port;
  uint16_t wan_port;
};

/* struct of arrays: each attribute of a connection in its own vector */
static struct nf_map *conns;
static struct nf_vector *keys;
static struct nf_vector *states;   /* uint8_t per connection */
static struct nf_vector *segments; /* uint32_t per connection */
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct conn_key), TF_CAP, &conns)) return false;
  if (!nf_vector_allocate(sizeof(struct conn_key), TF_CAP, &keys)) return false;
  if (!nf_vector_allocate(sizeof(uint8_t), TF_CAP, &states)) return false;
  if (!nf_vector_allocate(sizeof(uint32_t), TF_CAP, &segments)) return false;
  return nf_dchain_allocate(TF_CAP, &chain);
}

static enum tcp_event event_of(uint8_t flags) {
  if (flags & NF_TCP_RST) return EV_RST;
  if ((flags & (NF_TCP_SYN | NF_TCP_ACK)) == (NF_TCP_SYN | NF_TCP_ACK)) return EV_SYNACK;
  if (flags & NF_TCP_SYN) return EV_SYN;
  if (flags & NF_TCP_FIN) return EV_FIN;
  if (flags & NF_TCP_ACK) return EV_ACK;
  return EV_OTHER;
}

static uint8_t step(int index, enum tcp_event ev) {
  uint8_t *st = nf_vector_borrow(states, index);
  uint8_t next = NEXT[*st % ST_COUNT][ev];
  *st = next;
  nf_vector_return(states, index, st);
  uint32_t *n = nf_vector_borrow(segments, index);
  *n += 1;
  nf_vector_return(segments, index, n);
  return next;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, conns, now > TF_AGE_NS ? now - TF_AGE_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
  if (l4 == NULL || tcp == NULL) return device == 0 ? 1 : 0; /* non-TCP passes */

  struct conn_key key;
  memset(&key, 0, sizeof key);
  if (device == 0) {
    key.lan_ip = ip->src_addr; key.wan_ip = ip->dst_addr;
    key.lan_port = l4->src_port; key.wan_port = l4->dst_port;
  } else {
    key.lan_ip = ip->dst_addr; key.wan_ip = ip->src_addr;
    key.lan_port = l4->dst_port; key.wan_port = l4->src_port;
  }
  enum tcp_event ev = event_of(tcp->flags);
  int index;
  if (!nf_map_get(conns, &key, &index)) {
    if (device != 0 || ev != EV_SYN) return NF_DROP;
    if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
    nf_map_put(conns, &key, index);
    struct conn_key *k = nf_vector_borrow(keys, index);
    *k = key;
    nf_vector_return(keys, index, k);
    uint8_t *fresh = nf_vector_borrow(states, index);
    *fresh = ST_CLOSED;
    nf_vector_return(states, index, fresh);
    uint32_t *count = nf_vector_borrow(segments, index);
    *count = 0;
    nf_vector_return(segments, index, count);
  } else {
    nf_dchain_rejuvenate_index(chain, index, now);
  }
  uint8_t st = step(index, ev);
  if (device == 1 && st == ST_CLOSED && ev != EV_RST && ev != EV_ACK) return NF_DROP;
  return device == 0 ? 1 : 0;
}
