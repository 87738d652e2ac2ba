/*
 * nat: a network address and port translator in the style of Vigor's VigNAT. LAN hosts share one
 * external IPv4 address; each LAN flow gets its own external port.
 *
 * Behaviour, per frame:
 *   1. forget every flow idle for NAT_EXPIRATION_NS (from both tables);
 *   2. not TCP or UDP over IPv4 (or a fragment): drop;
 *   3. LAN -> WAN: look the flow up by its 5-tuple; a new flow gets the lowest free index i (drop
 *      when the table is full) and the external port NAT_START_PORT + i. The source address
 *      becomes NAT_EXTERNAL_IP and the source port the flow's external port, the checksums are
 *      recomputed and the frame forwarded to the WAN;
 *   4. WAN -> LAN: a frame addressed to NAT_EXTERNAL_IP and to the external port of a live flow,
 *      sent by that flow's remote endpoint with the same protocol, gets the LAN host's address
 *      and port as destination, checksums recomputed, and goes to the LAN (refreshing the flow);
 *      anything else is dropped.
 *
 * State (one index per flow, shared by the two maps):
 *   internal  map    struct internal_key (LAN 5-tuple) -> index
 *   external  map    struct external_key (remote IP, remote port, external port, protocol) -> index
 *   int_keys  vector struct internal_key, per index (expiry erases it from internal; the WAN side
 *             reads the LAN host's address and port from it)
 *   ext_keys  vector struct external_key, per index (expiry erases it from external)
 *   chain     dchain of indices, stamped with the time of the flow's last packet
 * Addresses and ports are stored as on the wire (network byte order).
 *
 * Configuration (override with --define NAME=VALUE):
 *   NAT_EXTERNAL_IP    the shared external address, host order (e.g. NF_IPV4(192, 0, 2, 1))
 *   NAT_START_PORT     the first external port
 *   NAT_CAPACITY       how many flows at once (external ports NAT_START_PORT .. + NAT_CAPACITY - 1)
 *   NAT_EXPIRATION_NS  how long an idle flow is kept
 */
#include "nf.h"

#ifndef NAT_EXTERNAL_IP
#define NAT_EXTERNAL_IP NF_IPV4(192, 0, 2, 1)
#endif
#ifndef NAT_START_PORT
#define NAT_START_PORT 1024
#endif
#ifndef NAT_CAPACITY
#define NAT_CAPACITY 16384
#endif
#ifndef NAT_EXPIRATION_NS
#define NAT_EXPIRATION_NS (60 * NF_NS_PER_SEC)
#endif

#if NAT_START_PORT < 0 || NAT_CAPACITY < 1 || NAT_START_PORT + NAT_CAPACITY > 65536
#error "external ports NAT_START_PORT .. NAT_START_PORT + NAT_CAPACITY - 1 must fit in 16 bits"
#endif

#define LAN 0
#define WAN 1

/* A flow as its LAN host sends it. */
struct internal_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

/* A flow as the WAN sees it, from the remote end: the remote endpoint and our external port. */
struct external_key {
  uint32_t remote_ip;
  uint16_t remote_port;
  uint16_t external_port;
  uint8_t protocol;
  uint8_t pad[3];
};

static struct nf_map *internal;
static struct nf_map *external;
static struct nf_vector *int_keys;
static struct nf_vector *ext_keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct internal_key), NAT_CAPACITY, &internal)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct external_key), NAT_CAPACITY, &external)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct internal_key), NAT_CAPACITY, &int_keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct external_key), NAT_CAPACITY, &ext_keys)) {
    return false;
  }
  if (!nf_dchain_allocate(NAT_CAPACITY, &chain)) {
    return false;
  }
  return true;
}

/* Entries last used strictly before this time are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now) {
  return now > NAT_EXPIRATION_NS ? now - NAT_EXPIRATION_NS : 0;
}

/* The external port of flow `index`, in network byte order. */
static uint16_t external_port(int index) {
  return nf_htons((uint16_t)(NAT_START_PORT + index));
}

static int from_lan(uint8_t *packet, uint16_t len, struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4,
                    nf_time_t now) {
  struct internal_key ikey;
  memset(&ikey, 0, sizeof ikey);
  ikey.src_ip = ip->src_addr;
  ikey.dst_ip = ip->dst_addr;
  ikey.src_port = l4->src_port;
  ikey.dst_port = l4->dst_port;
  ikey.protocol = ip->protocol;

  int index;
  if (nf_map_get(internal, &ikey, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
  } else {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP; /* no external port left */
    }
    struct external_key ekey;
    memset(&ekey, 0, sizeof ekey);
    ekey.remote_ip = ip->dst_addr;
    ekey.remote_port = l4->dst_port;
    ekey.external_port = external_port(index);
    ekey.protocol = ip->protocol;

    nf_map_put(internal, &ikey, index);
    nf_map_put(external, &ekey, index);
    struct internal_key *icell = nf_vector_borrow(int_keys, index);
    memcpy(icell, &ikey, sizeof ikey);
    nf_vector_return(int_keys, index, icell);
    struct external_key *ecell = nf_vector_borrow(ext_keys, index);
    memcpy(ecell, &ekey, sizeof ekey);
    nf_vector_return(ext_keys, index, ecell);
  }

  ip->src_addr = nf_htonl(NAT_EXTERNAL_IP);
  l4->src_port = external_port(index);
  nf_update_checksums(packet, len);
  return WAN;
}

static int from_wan(uint8_t *packet, uint16_t len, struct nf_ipv4_hdr *ip, struct nf_tcpudp_hdr *l4,
                    nf_time_t now) {
  if (ip->dst_addr != nf_htonl(NAT_EXTERNAL_IP)) {
    return NF_DROP;
  }
  struct external_key ekey;
  memset(&ekey, 0, sizeof ekey);
  ekey.remote_ip = ip->src_addr;
  ekey.remote_port = l4->src_port;
  ekey.external_port = l4->dst_port;
  ekey.protocol = ip->protocol;

  int index;
  if (!nf_map_get(external, &ekey, &index)) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  struct internal_key *icell = nf_vector_borrow(int_keys, index);
  uint32_t host_ip = icell->src_ip;
  uint16_t host_port = icell->src_port;
  nf_vector_return(int_keys, index, icell);

  ip->dst_addr = host_ip;
  l4->dst_port = host_port;
  nf_update_checksums(packet, len);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items2(chain, int_keys, internal, ext_keys, external, expiry_threshold(now));

  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  if (device == LAN) {
    return from_lan(packet, len, ip, l4, now);
  }
  return from_wan(packet, len, ip, l4, now);
}
