/*
 * knock: port knocking. A WAN host that sends UDP to KNOCK1, KNOCK2, KNOCK3 in that order, each
 * within KNOCK_WINDOW_NS of the previous, may then open TCP connections to SSH_PORT; everything
 * else from the WAN to the protected port is dropped. LAN traffic passes.
 * State: per WAN source, the knock stage and its time (map + vector + dchain with expiry).
 */
#include "nf.h"

#define LAN 0
#define WAN 1
#ifndef KNOCK1
#define KNOCK1 7001
#endif
#define KNOCK2 7002
#define KNOCK3 7003
#define SSH_PORT 22
#ifndef KNOCK_CAPACITY
#define KNOCK_CAPACITY 4096
#endif
#define KNOCK_WINDOW_NS (2 * NF_NS_PER_SEC)
#define KNOCK_OPEN_NS (30 * NF_NS_PER_SEC)

struct host_key { uint32_t addr; };
struct stage { uint8_t stage; uint8_t pad[7]; nf_time_t at; };

static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_vector *stages;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host_key), KNOCK_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host_key), KNOCK_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct stage), KNOCK_CAPACITY, &stages) &&
         nf_dchain_allocate(KNOCK_CAPACITY, &chain);
}

static int expected_port(uint8_t stage) {
  switch (stage) {
    case 0: return KNOCK1;
    case 1: return KNOCK2;
    case 2: return KNOCK3;
    default: return -1;
  }
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, now > KNOCK_OPEN_NS ? now - KNOCK_OPEN_NS : 0);
  if (device == LAN) return WAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) return LAN;
  struct host_key key = { ip->src_addr };
  int index;
  bool known = nf_map_get(hosts, &key, &index);
  uint16_t dport = nf_ntohs(l4->dst_port);
  if (ip->protocol == NF_IP_PROTO_UDP) {
    if (!known) {
      if (dport != KNOCK1) return LAN;
      if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
      struct host_key *k = nf_vector_borrow(keys, index);
      *k = key;
      nf_vector_return(keys, index, k);
      nf_map_put(hosts, &key, index);
      struct stage *s = nf_vector_borrow(stages, index);
      s->stage = 1;
      s->at = now;
      nf_vector_return(stages, index, s);
      return NF_DROP;
    }
    struct stage *s = nf_vector_borrow(stages, index);
    int want = expected_port(s->stage);
    if (want >= 0 && dport == want && now - s->at <= KNOCK_WINDOW_NS) {
      s->stage++;
      s->at = now;
      nf_dchain_rejuvenate_index(chain, index, now);
      nf_vector_return(stages, index, s);
      return NF_DROP;
    }
    nf_vector_return(stages, index, s);
    return LAN;
  }
  if (dport != SSH_PORT) return LAN;
  if (!known) return NF_DROP;
  struct stage *s = nf_vector_borrow(stages, index);
  uint8_t stage = s->stage;
  nf_vector_return(stages, index, s);
  return stage >= 3 ? LAN : NF_DROP;
}
