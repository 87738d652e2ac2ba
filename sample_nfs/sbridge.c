/*
 * sbridge: a static Ethernet bridge. A fixed table maps destination MAC addresses to output
 * devices; it is filled once in nf_init from the configuration and only read afterwards.
 *
 * Behaviour, per frame:
 *   - destination MAC in the table, on another device than the input one: forward there;
 *   - destination MAC in the table, on the input device: drop (the destination already has it);
 *   - destination MAC not in the table (including broadcast): flood.
 *
 * State (read-only after nf_init):
 *   macs   map    struct mac_key (destination MAC) -> entry index
 *   ports  vector struct port_cell, per entry index: the device of that MAC
 *
 * Configuration (override with --define NAME=VALUE):
 *   SBRIDGE_MAC0 .. SBRIDGE_MAC3    the table's MACs, as 48-bit numbers (first wire byte most
 *                                   significant: 0x020000000001 is 02:00:00:00:00:01)
 *   SBRIDGE_PORT0 .. SBRIDGE_PORT3  the device of each MAC (0 = LAN, 1 = WAN)
 */
#include "nf.h"

#ifndef SBRIDGE_MAC0
#define SBRIDGE_MAC0 0x020000000001ULL
#endif
#ifndef SBRIDGE_PORT0
#define SBRIDGE_PORT0 0
#endif
#ifndef SBRIDGE_MAC1
#define SBRIDGE_MAC1 0x020000000002ULL
#endif
#ifndef SBRIDGE_PORT1
#define SBRIDGE_PORT1 0
#endif
#ifndef SBRIDGE_MAC2
#define SBRIDGE_MAC2 0x020000000003ULL
#endif
#ifndef SBRIDGE_PORT2
#define SBRIDGE_PORT2 1
#endif
#ifndef SBRIDGE_MAC3
#define SBRIDGE_MAC3 0x020000000004ULL
#endif
#ifndef SBRIDGE_PORT3
#define SBRIDGE_PORT3 1
#endif

#define SBRIDGE_ENTRIES 4

#if SBRIDGE_PORT0 >= NF_DEVICES || SBRIDGE_PORT1 >= NF_DEVICES || SBRIDGE_PORT2 >= NF_DEVICES || \
    SBRIDGE_PORT3 >= NF_DEVICES || SBRIDGE_PORT0 < 0 || SBRIDGE_PORT1 < 0 || SBRIDGE_PORT2 < 0 || \
    SBRIDGE_PORT3 < 0
#error "every SBRIDGE_PORTn must be a device number in [0, NF_DEVICES)"
#endif

struct mac_key {
  uint8_t addr[6];
};

struct port_cell {
  uint16_t port;
};

static struct nf_map *macs;
static struct nf_vector *ports;

/* Adds the table entry `index`: MAC `mac` (48-bit number, first wire byte most significant). */
static void add_entry(int index, uint64_t mac, uint16_t port) {
  struct mac_key key;
  for (int i = 0; i < 6; i++) {
    key.addr[i] = (uint8_t)(mac >> (40 - 8 * i));
  }
  nf_map_put(macs, &key, index);
  struct port_cell *cell = nf_vector_borrow(ports, index);
  cell->port = port;
  nf_vector_return(ports, index, cell);
}

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct mac_key), SBRIDGE_ENTRIES, &macs)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct port_cell), SBRIDGE_ENTRIES, &ports)) {
    return false;
  }
  add_entry(0, SBRIDGE_MAC0, SBRIDGE_PORT0);
  add_entry(1, SBRIDGE_MAC1, SBRIDGE_PORT1);
  add_entry(2, SBRIDGE_MAC2, SBRIDGE_PORT2);
  add_entry(3, SBRIDGE_MAC3, SBRIDGE_PORT3);
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)len;
  (void)now;
  struct nf_ether_hdr *ether = nf_ether_header(packet);

  struct mac_key key;
  memcpy(key.addr, ether->dst, sizeof key.addr);
  int index;
  if (!nf_map_get(macs, &key, &index)) {
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
