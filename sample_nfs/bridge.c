/*
 * bridge: a MAC-learning Ethernet bridge.
 *
 * Behaviour, per frame:
 *   1. forget every MAC not seen as a source for BRIDGE_EXPIRATION_NS;
 *   2. learn: the source MAC is on the input device (a MAC that moved gets its new device and a
 *      fresh timestamp); when the table is full the MAC is simply not learned;
 *   3. forward: a known destination MAC on another device gets the frame, one on the input
 *      device means drop; an unknown destination (including broadcast) is flooded.
 *
 * State:
 *   macs   map    struct mac_key (MAC) -> index
 *   keys   vector struct mac_key, per index: the MAC (so that expiry can erase it from macs)
 *   ports  vector struct port_cell, per index: the device where the MAC was last seen
 *   chain  dchain of indices, stamped with the time the MAC was last seen as a source
 *
 * Configuration (override with --define NAME=VALUE):
 *   BRIDGE_CAPACITY        how many MACs the table holds
 *   BRIDGE_EXPIRATION_NS   how long a learned MAC lives without being seen as a source
 */
#include "nf.h"

#ifndef BRIDGE_CAPACITY
#define BRIDGE_CAPACITY 1024
#endif
#ifndef BRIDGE_EXPIRATION_NS
#define BRIDGE_EXPIRATION_NS (300 * NF_NS_PER_SEC)
#endif

struct mac_key {
  uint8_t addr[6];
};

struct port_cell {
  uint16_t port;
};

static struct nf_map *macs;
static struct nf_vector *keys;
static struct nf_vector *ports;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct mac_key), BRIDGE_CAPACITY, &macs)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct mac_key), BRIDGE_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct port_cell), BRIDGE_CAPACITY, &ports)) {
    return false;
  }
  if (!nf_dchain_allocate(BRIDGE_CAPACITY, &chain)) {
    return false;
  }
  return true;
}

/* Entries last used strictly before this time are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now) {
  return now > BRIDGE_EXPIRATION_NS ? now - BRIDGE_EXPIRATION_NS : 0;
}

static void learn(const struct nf_ether_hdr *ether, uint16_t device, nf_time_t now) {
  struct mac_key src;
  memcpy(src.addr, ether->src, sizeof src.addr);
  int index;
  if (nf_map_get(macs, &src, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    struct port_cell *cell = nf_vector_borrow(ports, index);
    cell->port = device;
    nf_vector_return(ports, index, cell);
    return;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) {
    return; /* table full: forward without learning */
  }
  nf_map_put(macs, &src, index);
  struct mac_key *key_cell = nf_vector_borrow(keys, index);
  memcpy(key_cell->addr, src.addr, sizeof src.addr);
  nf_vector_return(keys, index, key_cell);
  struct port_cell *cell = nf_vector_borrow(ports, index);
  cell->port = device;
  nf_vector_return(ports, index, cell);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)len;
  nf_expire_items(chain, keys, macs, expiry_threshold(now));

  struct nf_ether_hdr *ether = nf_ether_header(packet);
  learn(ether, device, now);

  struct mac_key dst;
  memcpy(dst.addr, ether->dst, sizeof dst.addr);
  int index;
  if (!nf_map_get(macs, &dst, &index)) {
    return NF_FLOOD;
  }
  struct port_cell *cell = nf_vector_borrow(ports, index);
  uint16_t port = cell->port;
  nf_vector_return(ports, index, cell);
  if (port == device) {
    return NF_DROP;
  }
  return port;
}
