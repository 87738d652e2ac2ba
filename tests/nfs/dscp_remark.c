/*
 * dscp_remark: re-marks the DSCP of IPv4 frames from a 2-D const table ACTION[class][direction],
 * where the class is PHB[dscp] (a 64-entry table indexed by the top six TOS bits); per-source
 * frame counters in a map keyed by a compound literal; a do { } while (0) block with break for
 * the early exits, an enum for the classes and a loop bounded by sizeof over a port list.
 */
#include "nf.h"

#ifndef DR_SOURCES
#define DR_SOURCES 256
#endif

enum phb { BE = 0, AF = 1, EF = 2, CS = 3 };

static const uint8_t PHB[64] = {
  [10] = AF, [12] = AF, [14] = AF, [18] = AF, [20] = AF, [22] = AF,
  [26] = AF, [28] = AF, [30] = AF, [34] = AF, [36] = AF, [38] = AF,
  [46] = EF, [48] = CS, [56] = CS,
};

/* new DSCP per class and direction (0: LAN -> WAN, 1: WAN -> LAN); 255 keeps the mark */
static const uint8_t ACTION[4][2] = {
  [BE] = {0, 0},
  [AF] = {255, 10},
  [EF] = {46, 0},
  [CS] = {255, 255},
};

static const uint16_t TRUSTED_PORTS[] = {5060, 5061, 3478};

struct src_key {
  uint32_t addr;
  uint16_t device;
  uint16_t pad;
};

static struct nf_map *sources;
static struct nf_vector *frames;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct src_key), DR_SOURCES, &sources) &&
         nf_vector_allocate(sizeof(uint64_t), DR_SOURCES, &frames) &&
         nf_dchain_allocate(DR_SOURCES, &chain);
}

static bool trusted(uint16_t port) {
  for (unsigned i = 0; i < sizeof(TRUSTED_PORTS) / sizeof(TRUSTED_PORTS[0]); i++) {
    if (nf_ntohs(port) == TRUSTED_PORTS[i]) {
      return true;
    }
  }
  return false;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int out = 1 - device;
  do {
    struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
    if (ip == NULL) {
      break;
    }
    struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
    if (l4 != NULL && trusted(l4->dst_port)) {
      break; /* trusted signalling keeps its mark */
    }
    enum phb class = (enum phb)PHB[ip->tos >> 2];
    uint8_t mark = ACTION[class][device];
    if (mark != 255) {
      uint8_t tos = (uint8_t)((mark << 2) | (ip->tos & 3));
      ip->tos = tos;
      nf_update_checksums(packet, len);
    }
    int index;
    if (!nf_map_get(sources, &(struct src_key){ip->src_addr, device, 0}, &index)) {
      if (!nf_dchain_allocate_new_index(chain, &index, now)) {
        break;
      }
      nf_map_put(sources, &(struct src_key){ip->src_addr, device, 0}, index);
    }
    uint64_t *n = nf_vector_borrow(frames, index);
    *n += 1;
    nf_vector_return(frames, index, n);
  } while (0);
  return out;
}
