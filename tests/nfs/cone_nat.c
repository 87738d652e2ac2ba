/*
 * cone_nat: a port-mapping NAT whose WAN side finds a flow by the port alone (endpoint-independent
 * mapping, RFC 4787), the way port-forwarding and connection-tracking boxes that hand out ids
 * carried in packets do. A test NF for sharding by allocation: there is no WAN-side map; the
 * external port IS the index, so the WAN side reads state at `ntohs(dst_port) - CONE_BASE_PORT`.
 *
 * Behaviour, per frame:
 *   1. forget every mapping idle for CONE_EXPIRATION_NS;
 *   2. not TCP or UDP over IPv4: drop;
 *   3. LAN -> WAN: find the flow by its 5-tuple; a new flow gets the lowest free index i (drop when
 *      none is left) and external port CONE_BASE_PORT + i. The source becomes CONE_EXTERNAL_IP and
 *      that port; checksums recomputed; forwarded to the WAN;
 *   4. WAN -> LAN: a frame to CONE_EXTERNAL_IP whose destination port is a live mapping's, from
 *      the host the mapping's flow went to (any port of it: address-dependent filtering), goes to
 *      the LAN host's address and port (refreshing the mapping); anything else is dropped.
 *
 * State:
 *   flows    map    LAN 5-tuple -> index
 *   keys     vector the LAN 5-tuple, per index (expiry erases it from flows)
 *   mappings vector struct mapping (LAN host, remote host), per index
 *   ports    dchain of indices, stamped with the mapping's last use
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

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_vector *mappings;
static struct nf_dchain *ports;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), CONE_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow), CONE_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(struct mapping), CONE_CAPACITY, &mappings) &&
         nf_dchain_allocate(CONE_CAPACITY, &ports);
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
  if (nf_map_get(flows, &key, &index)) {
    nf_dchain_rejuvenate_index(ports, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(ports, &index, now)) return NF_DROP;
    nf_map_put(flows, &key, index);
    struct flow *stored = nf_vector_borrow(keys, index);
    memcpy(stored, &key, sizeof key);
    nf_vector_return(keys, index, stored);
    struct mapping *m = nf_vector_borrow(mappings, index);
    m->host_ip = ip->src_addr;
    m->host_port = l4->src_port;
    m->protocol = ip->protocol;
    m->pad = 0;
    m->remote_ip = ip->dst_addr;
    nf_vector_return(mappings, index, m);
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
  if (!nf_dchain_is_index_allocated(ports, index)) return NF_DROP;
  struct mapping *m = nf_vector_borrow(mappings, index);
  uint32_t host_ip = m->host_ip;
  uint16_t host_port = m->host_port;
  bool allowed = m->remote_ip == ip->src_addr && m->protocol == ip->protocol;
  nf_vector_return(mappings, index, m);
  if (!allowed) return NF_DROP;
  nf_dchain_rejuvenate_index(ports, index, now);
  ip->dst_addr = host_ip;
  l4->dst_port = host_port;
  nf_update_checksums(packet, len);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(ports, keys, flows, now > CONE_EXPIRATION_NS ? now - CONE_EXPIRATION_NS : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
  if (device == LAN) return outbound(packet, len, ip, l4, now);
  return inbound(packet, len, ip, l4, now);
}
