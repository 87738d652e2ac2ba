/*
 * psd: a port-scan detector. A WAN source that touches PSD_MAX_PORTS distinct destination ports
 * without pausing for PSD_EXPIRATION_NS is a scanner: its packets to further ports are dropped,
 * while the ports it already uses keep working.
 *
 * Behaviour, per frame:
 *   1. forget every source silent for PSD_EXPIRATION_NS (its count starts again from zero) and
 *      every (source, port) pair unused for PSD_EXPIRATION_NS;
 *   2. LAN -> WAN: forward, untouched;
 *   3. WAN, not TCP or UDP over IPv4 (or a fragment): drop;
 *   4. WAN: find or create the source's counter (drop when that table is full) and refresh it;
 *      a destination port this source already touched is refreshed and the frame forwarded to
 *      the LAN; a new port is dropped when the counter has reached PSD_MAX_PORTS (or the port
 *      table is full), else recorded, counted and forwarded.
 * A pair is refreshed no later than its source, so it never outlives the source's count.
 *
 * State:
 *   sources      map    struct source_key (source IP, as on the wire) -> index
 *   source_keys  vector struct source_key, per index (so that expiry can erase it from sources)
 *   counters     vector struct counter, per source index: distinct ports touched
 *   source_chain dchain of source indices, stamped with the source's last packet
 *   ports        map    struct port_key (source IP, destination port) -> index
 *   port_keys    vector struct port_key, per index (so that expiry can erase it from ports)
 *   port_chain   dchain of pair indices, stamped with the pair's last packet
 *
 * Configuration (override with --define NAME=VALUE):
 *   PSD_MAX_PORTS      distinct ports a source may touch before it is blocked
 *   PSD_CAPACITY       how many sources, and how many (source, port) pairs, are tracked at once
 *   PSD_EXPIRATION_NS  the window: idle time after which a source or a pair is forgotten
 */
#include "nf.h"

#ifndef PSD_MAX_PORTS
#define PSD_MAX_PORTS 64
#endif
#ifndef PSD_CAPACITY
#define PSD_CAPACITY 65536
#endif
#ifndef PSD_EXPIRATION_NS
#define PSD_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct source_key {
  uint32_t src_ip;
};

struct counter {
  uint32_t ports;
};

struct port_key {
  uint32_t src_ip;
  uint16_t dst_port;
  uint16_t pad;
};

static struct nf_map *sources;
static struct nf_vector *source_keys;
static struct nf_vector *counters;
static struct nf_dchain *source_chain;
static struct nf_map *ports;
static struct nf_vector *port_keys;
static struct nf_dchain *port_chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct source_key), PSD_CAPACITY, &sources)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct source_key), PSD_CAPACITY, &source_keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct counter), PSD_CAPACITY, &counters)) {
    return false;
  }
  if (!nf_dchain_allocate(PSD_CAPACITY, &source_chain)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct port_key), PSD_CAPACITY, &ports)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct port_key), PSD_CAPACITY, &port_keys)) {
    return false;
  }
  if (!nf_dchain_allocate(PSD_CAPACITY, &port_chain)) {
    return false;
  }
  return true;
}

/* Entries last used strictly before this time are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now) {
  return now > PSD_EXPIRATION_NS ? now - PSD_EXPIRATION_NS : 0;
}

/* The source's counter index, created with a zero count when new; false when the table is full. */
static bool source_index(const struct nf_ipv4_hdr *ip, nf_time_t now, int *index_out) {
  struct source_key key;
  key.src_ip = ip->src_addr;
  if (nf_map_get(sources, &key, index_out)) {
    nf_dchain_rejuvenate_index(source_chain, *index_out, now);
    return true;
  }
  if (!nf_dchain_allocate_new_index(source_chain, index_out, now)) {
    return false;
  }
  int index = *index_out;
  nf_map_put(sources, &key, index);
  struct source_key *key_cell = nf_vector_borrow(source_keys, index);
  key_cell->src_ip = key.src_ip;
  nf_vector_return(source_keys, index, key_cell);
  struct counter *count = nf_vector_borrow(counters, index); /* the index may be reused: reset */
  count->ports = 0;
  nf_vector_return(counters, index, count);
  return true;
}

static int from_wan(const struct nf_ipv4_hdr *ip, const struct nf_tcpudp_hdr *l4, nf_time_t now) {
  int source;
  if (!source_index(ip, now, &source)) {
    return NF_DROP;
  }

  struct port_key key;
  memset(&key, 0, sizeof key);
  key.src_ip = ip->src_addr;
  key.dst_port = l4->dst_port;
  int index;
  if (nf_map_get(ports, &key, &index)) {
    nf_dchain_rejuvenate_index(port_chain, index, now);
    return LAN;
  }

  struct counter *count = nf_vector_borrow(counters, source);
  int verdict = NF_DROP;
  if (count->ports < PSD_MAX_PORTS) {
    if (nf_dchain_allocate_new_index(port_chain, &index, now)) {
      nf_map_put(ports, &key, index);
      struct port_key *key_cell = nf_vector_borrow(port_keys, index);
      memcpy(key_cell, &key, sizeof key);
      nf_vector_return(port_keys, index, key_cell);
      count->ports++;
      verdict = LAN;
    }
  }
  nf_vector_return(counters, source, count);
  return verdict;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t threshold = expiry_threshold(now);
  nf_expire_items(source_chain, source_keys, sources, threshold);
  nf_expire_items(port_chain, port_keys, ports, threshold);

  if (device == LAN) {
    return WAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  return from_wan(ip, l4, now);
}
