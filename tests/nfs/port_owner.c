/*
 * port_owner: the first LAN host to send to a destination port owns that port; frames from other
 * LAN hosts to it are dropped. WAN frames pass. Owners are never forgotten.
 *
 * State:
 *   owners  map struct port_key (the destination port, as on the wire) -> the owner's address,
 *           OWNER_CAPACITY entries. No dchain hands out its entries: a frame to a new port adds
 *           one, so room is guaranteed only because there are at most 65536 ports.
 *
 * Sharding: entries are named by the LAN frame's destination port: hash dst_port on the LAN. Shared
 * nothing must keep the whole capacity on every core: one core may see every port.
 *
 * Configuration (override with --define NAME=VALUE):
 *   OWNER_CAPACITY  entries of the owner table (at least 65536: one per port)
 */
#include "nf.h"

#ifndef OWNER_CAPACITY
#define OWNER_CAPACITY 65536
#endif

#define LAN 0
#define WAN 1

struct port_key {
  uint16_t port;
  uint8_t pad[2];
};

static struct nf_map *owners;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct port_key), OWNER_CAPACITY, &owners);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  if (device != LAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return WAN;
  }
  struct port_key key;
  memset(&key, 0, sizeof key);
  key.port = l4->dst_port;
  int owner;
  if (!nf_map_get(owners, &key, &owner)) {
    nf_map_put(owners, &key, (int)ip->src_addr);
    return WAN;
  }
  return (uint32_t)owner == ip->src_addr ? WAN : NF_DROP;
}
