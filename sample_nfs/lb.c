/*
 * lb: a Maglev-like load balancer. Backend servers on the LAN announce themselves with heartbeats;
 * clients on the WAN talk to one virtual IP, and each client flow is sent to one live backend and
 * stays there while that backend lives.
 *
 * Behaviour, per frame:
 *   1. forget every client flow idle for LB_FLOW_EXPIRATION_NS and every backend whose last
 *      heartbeat is older than LB_BACKEND_EXPIRATION_NS;
 *   2. LAN, UDP to port LB_HEARTBEAT_PORT: a heartbeat. Register the sender (its source IP and
 *      MAC) as a backend, or refresh it; the heartbeat is consumed (dropped). When the backend
 *      table is full the heartbeat is ignored;
 *   3. LAN, anything else: forward to the WAN, untouched (backends answer clients directly);
 *   4. WAN, not TCP or UDP over IPv4 (or a fragment), or not addressed to LB_VIRTUAL_IP: drop;
 *   5. WAN, a known flow whose backend is alive: refresh the flow and keep its backend;
 *   6. WAN, a new flow, or one whose backend died: the consistent-hash table picks a live backend
 *      from the hash of the flow's 5-tuple (drop when no backend is alive); the flow is recorded
 *      (or moved) and refreshed. When the flow table is full the frame is still balanced;
 *   7. the chosen backend's IP becomes the destination address and its MAC the destination MAC,
 *      the checksums are recomputed, and the frame goes to the LAN.
 *
 * State:
 *   backends      map    struct backend_key (backend IP, as on the wire) -> backend index
 *   backend_keys  vector struct backend_key, per backend index (expiry erases it from backends)
 *   backend_info  vector struct backend, per backend index: its IP and MAC
 *   active        dchain of backend indices, stamped with the backend's last heartbeat
 *   cht           Maglev consistent-hash table over LB_BACKEND_CAPACITY backends
 *   flows         map    struct flow_key (client 5-tuple, as on the wire) -> flow index
 *   flow_keys     vector struct flow_key, per flow index (expiry erases it from flows)
 *   flow_backend  vector struct flow_backend, per flow index: the flow's backend index
 *   flow_chain    dchain of flow indices, stamped with the flow's last packet
 *
 * Configuration (override with --define NAME=VALUE):
 *   LB_VIRTUAL_IP             the service's address, host order (e.g. NF_IPV4(203, 0, 113, 1))
 *   LB_HEARTBEAT_PORT         UDP port backends send their heartbeats to
 *   LB_BACKEND_CAPACITY       how many backends at once
 *   LB_BACKEND_EXPIRATION_NS  a backend without a heartbeat for this long is dead
 *   LB_CHT_HEIGHT             rows of the consistent-hash table (a prime)
 *   LB_FLOW_CAPACITY          how many client flows are remembered at once
 *   LB_FLOW_EXPIRATION_NS     how long an idle client flow is remembered
 */
#include "nf.h"

#ifndef LB_VIRTUAL_IP
#define LB_VIRTUAL_IP NF_IPV4(203, 0, 113, 1)
#endif
#ifndef LB_HEARTBEAT_PORT
#define LB_HEARTBEAT_PORT 9999
#endif
#ifndef LB_BACKEND_CAPACITY
#define LB_BACKEND_CAPACITY 32
#endif
#ifndef LB_BACKEND_EXPIRATION_NS
#define LB_BACKEND_EXPIRATION_NS (3 * NF_NS_PER_SEC)
#endif
#ifndef LB_CHT_HEIGHT
#define LB_CHT_HEIGHT 4099
#endif
#ifndef LB_FLOW_CAPACITY
#define LB_FLOW_CAPACITY 65536
#endif
#ifndef LB_FLOW_EXPIRATION_NS
#define LB_FLOW_EXPIRATION_NS (60 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct backend_key {
  uint32_t ip;
};

struct backend {
  uint32_t ip;
  uint8_t mac[6];
  uint8_t pad[2];
};

struct flow_key {
  uint32_t src_ip;
  uint32_t dst_ip;
  uint16_t src_port;
  uint16_t dst_port;
  uint8_t protocol;
  uint8_t pad[3];
};

struct flow_backend {
  uint32_t backend;
};

static struct nf_map *backends;
static struct nf_vector *backend_keys;
static struct nf_vector *backend_info;
static struct nf_dchain *active;
static struct nf_cht *cht;
static struct nf_map *flows;
static struct nf_vector *flow_keys;
static struct nf_vector *flow_backend;
static struct nf_dchain *flow_chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct backend_key), LB_BACKEND_CAPACITY, &backends)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct backend_key), LB_BACKEND_CAPACITY, &backend_keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct backend), LB_BACKEND_CAPACITY, &backend_info)) {
    return false;
  }
  if (!nf_dchain_allocate(LB_BACKEND_CAPACITY, &active)) {
    return false;
  }
  if (!nf_cht_allocate(LB_CHT_HEIGHT, LB_BACKEND_CAPACITY, &cht)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct flow_key), LB_FLOW_CAPACITY, &flows)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow_key), LB_FLOW_CAPACITY, &flow_keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct flow_backend), LB_FLOW_CAPACITY, &flow_backend)) {
    return false;
  }
  if (!nf_dchain_allocate(LB_FLOW_CAPACITY, &flow_chain)) {
    return false;
  }
  return true;
}

/* Items last used strictly before now - age are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now, nf_time_t age) {
  return now > age ? now - age : 0;
}

/* A heartbeat from a backend: register or refresh it. */
static void heartbeat(const struct nf_ether_hdr *ether, const struct nf_ipv4_hdr *ip, nf_time_t now) {
  struct backend_key key;
  key.ip = ip->src_addr;
  int index;
  if (nf_map_get(backends, &key, &index)) {
    nf_dchain_rejuvenate_index(active, index, now);
    return;
  }
  if (!nf_dchain_allocate_new_index(active, &index, now)) {
    return; /* no room for another backend */
  }
  nf_map_put(backends, &key, index);
  struct backend_key *key_cell = nf_vector_borrow(backend_keys, index);
  key_cell->ip = key.ip;
  nf_vector_return(backend_keys, index, key_cell);
  struct backend *info = nf_vector_borrow(backend_info, index);
  info->ip = ip->src_addr;
  memcpy(info->mac, ether->src, sizeof info->mac);
  info->pad[0] = 0;
  info->pad[1] = 0;
  nf_vector_return(backend_info, index, info);
}

static int from_lan(uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return WAN;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return WAN;
  }
  if (ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(LB_HEARTBEAT_PORT)) {
    heartbeat(nf_ether_header(packet), ip, now);
    return NF_DROP;
  }
  return WAN;
}

/* The backend for a client flow, recording or moving the flow; false when no backend is alive. */
static bool flow_to_backend(const struct flow_key *key, nf_time_t now, int *backend_out) {
  int index;
  if (nf_map_get(flows, key, &index)) {
    struct flow_backend *cell = nf_vector_borrow(flow_backend, index);
    int current = (int)cell->backend;
    nf_vector_return(flow_backend, index, cell);
    if (nf_dchain_is_index_allocated(active, current)) {
      nf_dchain_rejuvenate_index(flow_chain, index, now);
      *backend_out = current;
      return true;
    }
    /* Its backend died: move the flow to a live one. */
    int replacement;
    if (!nf_cht_find_backend(cht, nf_hash(key, sizeof *key), active, &replacement)) {
      return false;
    }
    nf_dchain_rejuvenate_index(flow_chain, index, now);
    cell = nf_vector_borrow(flow_backend, index);
    cell->backend = (uint32_t)replacement;
    nf_vector_return(flow_backend, index, cell);
    *backend_out = replacement;
    return true;
  }

  int backend;
  if (!nf_cht_find_backend(cht, nf_hash(key, sizeof *key), active, &backend)) {
    return false;
  }
  *backend_out = backend;
  if (!nf_dchain_allocate_new_index(flow_chain, &index, now)) {
    return true; /* flow table full: balance without remembering */
  }
  nf_map_put(flows, key, index);
  struct flow_key *key_cell = nf_vector_borrow(flow_keys, index);
  memcpy(key_cell, key, sizeof *key);
  nf_vector_return(flow_keys, index, key_cell);
  struct flow_backend *cell = nf_vector_borrow(flow_backend, index);
  cell->backend = (uint32_t)backend;
  nf_vector_return(flow_backend, index, cell);
  return true;
}

static int from_wan(uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  if (ip->dst_addr != nf_htonl(LB_VIRTUAL_IP)) {
    return NF_DROP;
  }

  struct flow_key key;
  memset(&key, 0, sizeof key);
  key.src_ip = ip->src_addr;
  key.dst_ip = ip->dst_addr;
  key.src_port = l4->src_port;
  key.dst_port = l4->dst_port;
  key.protocol = ip->protocol;
  int backend;
  if (!flow_to_backend(&key, now, &backend)) {
    return NF_DROP;
  }

  struct backend *info = nf_vector_borrow(backend_info, backend);
  uint32_t backend_ip = info->ip;
  struct nf_ether_hdr *ether = nf_ether_header(packet);
  memcpy(ether->dst, info->mac, sizeof ether->dst);
  nf_vector_return(backend_info, backend, info);
  ip->dst_addr = backend_ip;
  nf_update_checksums(packet, len);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(flow_chain, flow_keys, flows, expiry_threshold(now, LB_FLOW_EXPIRATION_NS));
  nf_expire_items(active, backend_keys, backends, expiry_threshold(now, LB_BACKEND_EXPIRATION_NS));

  if (device == LAN) {
    return from_lan(packet, len, now);
  }
  return from_wan(packet, len, now);
}
