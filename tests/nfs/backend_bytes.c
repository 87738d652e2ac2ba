/*
 * backend_bytes: a consistent-hash load balancer that keeps no flow table: every LAN frame to the
 * virtual service is sent to the backend that a Maglev table picks for the hash of its 5-tuple,
 * and the bytes sent to each backend are counted in a vector indexed by that backend.
 *
 * State:
 *   cht      consistent-hash table over BB_BACKENDS backends, filled by nf_init, read only
 *   live     dchain of the live backends (all of them, allocated by nf_init), read only
 *   sent     vector uint64_t, bytes per backend, indexed by the backend the table picked
 *
 * Expected: locks. The counter a frame adds to is named by the backend the table picked from a
 * hash of the whole 5-tuple: frames of unrelated flows share it, so no RSS key keeps the frames
 * of one backend on one core. The reason names the table's pick and its line, as the NF wrote
 * it, never the engine's symbol for it.
 */
#include "nf.h"

#ifndef BB_BACKENDS
#define BB_BACKENDS 8
#endif
#ifndef BB_CHT_HEIGHT
#define BB_CHT_HEIGHT 97
#endif

#define LAN 0
#define WAN 1

struct five_tuple {
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
  uint8_t proto;
  uint8_t pad[3];
};

static struct nf_cht *cht;
static struct nf_dchain *live;
static struct nf_vector *sent;

bool nf_init(void) {
  if (!nf_cht_allocate(BB_CHT_HEIGHT, BB_BACKENDS, &cht) || !nf_dchain_allocate(BB_BACKENDS, &live) ||
      !nf_vector_allocate(sizeof(uint64_t), BB_BACKENDS, &sent)) {
    return false;
  }
  for (int i = 0; i < BB_BACKENDS; i++) {
    int index;
    if (!nf_dchain_allocate_new_index(live, &index, 0)) {
      return false;
    }
  }
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (device != LAN || ip == NULL || l4 == NULL) {
    return device == LAN ? WAN : LAN;
  }
  struct five_tuple key = {ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port, ip->protocol, {0, 0, 0}};
  int backend;
  if (!nf_cht_find_backend(cht, nf_hash(&key, sizeof key), live, &backend)) {
    return NF_DROP;
  }
  uint64_t *bytes = nf_vector_borrow(sent, backend);
  *bytes += len;
  nf_vector_return(sent, backend, bytes);
  return WAN;
}
