/* nested_key: a flow meter whose key is a nested struct with a union (the address pair as two
 * words or as 8 bytes), filled with memcpy at offsetof() positions and sized with sizeof
 * arithmetic. Each LAN -> WAN flow (address pair + ports) counts frames; WAN frames of a metered
 * flow get the count in their TOS byte's low bits; others pass untouched.
 *
 * Expected: sn, the flows sharded on the 4-tuple both ways; the key reads
 * {addrs: concat(p.ipv4.src, p.ipv4.dst), ports: concat(p.l4.sport, p.l4.dport)} on the LAN.
 */
#include "nf.h"

#ifndef NK_CAP
#define NK_CAP 128
#endif

struct addr_pair {
  uint32_t inner;
  uint32_t outer;
};

struct flow_id {
  union {
    struct addr_pair words;
    uint8_t bytes[sizeof(struct addr_pair)];
  } addrs;
  struct {
    uint16_t inner;
    uint16_t outer;
  } ports;
};

struct meter {
  struct flow_id id;
  struct {
    uint32_t frames;
    uint32_t bytes;
  } totals;
};

#define KEY_SIZE (offsetof(struct flow_id, ports) + sizeof(((struct flow_id *)0)->ports))

static struct nf_map *flows;
static struct nf_vector *meters;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(KEY_SIZE, NK_CAP, &flows)) return false;
  if (!nf_vector_allocate(sizeof(struct meter), NK_CAP, &meters)) return false;
  return nf_dchain_allocate(NK_CAP, &chain);
}

static void fill(struct flow_id *id, const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4,
                 bool outbound) {
  uint8_t *raw = (uint8_t *)id;
  memcpy(raw + offsetof(struct flow_id, addrs), outbound ? &ip->src_addr : &ip->dst_addr, sizeof(uint32_t));
  memcpy(id->addrs.bytes + sizeof(uint32_t), outbound ? &ip->dst_addr : &ip->src_addr, sizeof(uint32_t));
  id->ports.inner = outbound ? l4->src_port : l4->dst_port;
  id->ports.outer = outbound ? l4->dst_port : l4->src_port;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  int out = 1 - device;
  if (ip == NULL || l4 == NULL) {
    return out;
  }
  struct flow_id id;
  fill(&id, ip, l4, device == 0);
  int index;
  bool found = nf_map_get(flows, &id, &index);
  if (device == 0) {
    if (!found) {
      if (!nf_dchain_allocate_new_index(chain, &index, now)) {
        return out;
      }
      nf_map_put(flows, &id, index);
      struct meter *m = nf_vector_borrow(meters, index);
      memset(m, 0, sizeof *m);
      m->id = id;
      nf_vector_return(meters, index, m);
    }
    nf_dchain_rejuvenate_index(chain, index, now);
    struct meter *m = nf_vector_borrow(meters, index);
    m->totals.frames++;
    m->totals.bytes += len;
    nf_vector_return(meters, index, m);
    return out;
  }
  if (found) {
    struct meter *m = nf_vector_borrow(meters, index);
    uint8_t mark = (uint8_t)(m->totals.frames & 3);
    nf_vector_return(meters, index, m);
    ip->tos = (uint8_t)((ip->tos & 0xfc) | mark);
    nf_update_checksums(packet, len);
  }
  return out;
}
