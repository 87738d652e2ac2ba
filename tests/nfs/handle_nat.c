/*
 * handle_nat: cone_nat.c (a port-mapping NAT sharded by allocation: the external port is the
 * dchain's index) with its four handles in one global struct (`nat.flows`, ..., `nat.ports`) and
 * the dchain allocated by a helper handed `&nat.ports`.
 *
 * Expected: sharding exactly like cone_nat.c, the objects named nat.flows ... nat.ports; generate
 * finds the helper's nf_dchain_allocate by its location and makes it the per-core pool's
 * allocation; equivalent under `check` at 2 and 3 cores (`tests/test_handles.py`).
 */
#include "nf.h"

#ifndef CONE_EXTERNAL_IP
#define CONE_EXTERNAL_IP NF_IPV4(198, 51, 100, 7)
#endif
#ifndef CONE_BASE_PORT
#define CONE_BASE_PORT 20000
#endif
#ifndef CONE_CAPACITY
#define CONE_CAPACITY 4096
#endif
#ifndef CONE_EXPIRATION_NS
#define CONE_EXPIRATION_NS (30 * NF_NS_PER_SEC)
#endif

#if CONE_BASE_PORT + CONE_CAPACITY > 65536
#error "external ports CONE_BASE_PORT .. CONE_BASE_PORT + CONE_CAPACITY - 1 must fit in 16 bits"
#endif

#define LAN 0
#define WAN 1

struct flow {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct mapping {
  uint32_t host_ip;
  uint16_t host_port;
  uint8_t protocol;
  uint8_t pad;
  uint32_t remote_ip;
};

static struct {
  struct nf_map *flows;
  struct nf_vector *keys;
  struct nf_vector *mappings;
  struct nf_dchain *ports;
} nat;
static bool alloc_ports(struct nf_dchain **out) { return nf_dchain_allocate(CONE_CAPACITY, out); }

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), CONE_CAPACITY, &nat.flows) &&
         nf_vector_allocate(sizeof(struct flow), CONE_CAPACITY, &nat.keys) &&
         nf_vector_allocate(sizeof(struct mapping), CONE_CAPACITY, &nat.mappings) &&
         alloc_ports(&nat.ports);
}

static int outbound(uint8_t *packet, uint16_t len, struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4,
                    nf_time_t now) {
  struct flow key;
  memset(&key, 0, sizeof key);
  key.src_ip = ip->src_addr;
  key.dst_ip = ip->dst_addr;
  key.src_port = l4->src_port;
  key.dst_port = l4->dst_port;
  key.protocol = ip->protocol;
  int index;
  if (nf_map_get(nat.flows, &key, &index)) {
    nf_dchain_rejuvenate_index(nat.ports, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(nat.ports, &index, now)) return NF_DROP;
    nf_map_put(nat.flows, &key, index);
    struct flow *stored = nf_vector_borrow(nat.keys, index);
    memcpy(stored, &key, sizeof key);
    nf_vector_return(nat.keys, index, stored);
    struct mapping *m = nf_vector_borrow(nat.mappings, index);
    m->host_ip = ip->src_addr;
    m->host_port = l4->src_port;
    m->protocol = ip->protocol;
    m->pad = 0;
    m->remote_ip = ip->dst_addr;
    nf_vector_return(nat.mappings, index, m);
  }
  ip->src_addr = nf_htonl(CONE_EXTERNAL_IP);
  l4->src_port = nf_htons((uint16_t)(CONE_BASE_PORT + index));
  nf_update_checksums(packet, len);
  return WAN;
}

static int inbound(uint8_t *packet, uint16_t len, struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4,
                   nf_time_t now) {
  if (ip->dst_addr != nf_htonl(CONE_EXTERNAL_IP)) return NF_DROP;
  int index = (int)nf_ntohs(l4->dst_port) - CONE_BASE_PORT;
  if (index < 0 || index >= CONE_CAPACITY) return NF_DROP;
  if (!nf_dchain_is_index_allocated(nat.ports, index)) return NF_DROP;
  struct mapping *m = nf_vector_borrow(nat.mappings, index);
  uint32_t host_ip = m->host_ip;
  uint16_t host_port = m->host_port;
  bool allowed = m->remote_ip == ip->src_addr && m->protocol == ip->protocol;
  nf_vector_return(nat.mappings, index, m);
  if (!allowed) return NF_DROP;
  nf_dchain_rejuvenate_index(nat.ports, index, now);
  ip->dst_addr = host_ip;
  l4->dst_port = host_port;
  nf_update_checksums(packet, len);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(nat.ports, nat.keys, nat.flows, now > CONE_EXPIRATION_NS ? now - CONE_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
  if (device == LAN) return outbound(packet, len, ip, l4, now);
  return inbound(packet, len, ip, l4, now);
}
