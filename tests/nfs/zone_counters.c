/*
 * zone_counters: every input port belongs to a zone (a configuration table nf_init fills, one
 * cell per device); frames are counted per zone, then forwarded LAN -> WAN, WAN -> LAN.
 *
 * State:
 *   zone_of  vector struct port_zone, indexed by the input device, filled by nf_init, read only
 *   frames   vector struct zone_count, indexed by the zone of the frame's input port, ZC_ZONES cells
 *
 * Expected: locks. zone_of is only read (replicated); frames is written at the zone the input
 * port's configuration names: every frame of a device writes one cell, whatever its flow, and RSS
 * spreads each device's frames over every core. The reason names the device and the table read
 * at its index (it said the key "depends on no packet field").
 */
#include "nf.h"

#define ZC_ZONES 4
#define LAN 0
#define WAN 1

struct port_zone {
  uint32_t zone;
};

struct zone_count {
  uint64_t frames;
};

static struct nf_vector *zone_of;
static struct nf_vector *frames;

bool nf_init(void) {
  if (!nf_vector_allocate(sizeof(struct port_zone), NF_DEVICES, &zone_of) ||
      !nf_vector_allocate(sizeof(struct zone_count), ZC_ZONES, &frames)) {
    return false;
  }
  for (int device = 0; device < NF_DEVICES; device++) {
    struct port_zone *z = nf_vector_borrow(zone_of, device);
    z->zone = (uint32_t)(device == LAN ? 1 : 2);
    nf_vector_return(zone_of, device, z);
  }
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)packet;
  (void)len;
  (void)now;
  struct port_zone *z = nf_vector_borrow(zone_of, device);
  uint32_t zone = z->zone % ZC_ZONES;
  nf_vector_return(zone_of, device, z);
  struct zone_count *c = nf_vector_borrow(frames, zone);
  c->frames += 1;
  nf_vector_return(frames, zone, c);
  return device == LAN ? WAN : LAN;
}
