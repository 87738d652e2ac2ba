/*
 * syn_guard: SYN-flood guard. Every WAN TCP SYN (SYN set, ACK clear) counts against its source
 * address; once a source has sent SG_MAX_SYNS of them, its further SYNs are dropped until it has
 * been quiet for SG_EXPIRATION_NS. Other WAN TCP segments pass with the URG flag cleared (and the
 * checksums recomputed); other WAN frames pass as they are. LAN -> WAN.
 * State: per WAN source, its SYN count (map + keys vector + counts vector + dchain with expiry).
 */
#include "nf.h"

#define LAN 0
#define WAN 1
#ifndef SG_MAX_SYNS
#define SG_MAX_SYNS 8
#endif
#ifndef SG_CAPACITY
#define SG_CAPACITY 4096
#endif
#ifndef SG_EXPIRATION_NS
#define SG_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

struct source_key { uint32_t addr; };

static struct nf_map *sources;
static struct nf_vector *keys;
static struct nf_vector *counts;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct source_key), SG_CAPACITY, &sources) &&
         nf_vector_allocate(sizeof(struct source_key), SG_CAPACITY, &keys) &&
         nf_vector_allocate(sizeof(uint32_t), SG_CAPACITY, &counts) &&
         nf_dchain_allocate(SG_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, sources, now > SG_EXPIRATION_NS ? now - SG_EXPIRATION_NS : 0);
  if (device == LAN) return WAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return LAN;
  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
  if (tcp == NULL) return LAN; /* not TCP, a fragment, or too short for a TCP header */
  if ((tcp->flags & (NF_TCP_SYN | NF_TCP_ACK)) != NF_TCP_SYN) {
    if (tcp->flags & NF_TCP_URG) {
      tcp->flags &= (uint8_t)~NF_TCP_URG;
      nf_update_checksums(packet, len);
    }
    return LAN;
  }
  struct source_key key = { ip->src_addr };
  int index;
  if (nf_map_get(sources, &key, &index)) {
    uint32_t *count = nf_vector_borrow(counts, index);
    bool over = *count >= SG_MAX_SYNS;
    if (!over) (*count)++;
    nf_vector_return(counts, index, count);
    nf_dchain_rejuvenate_index(chain, index, now);
    return over ? NF_DROP : LAN;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP; /* full: fail closed */
  struct source_key *k = nf_vector_borrow(keys, index);
  *k = key;
  nf_vector_return(keys, index, k);
  nf_map_put(sources, &key, index);
  uint32_t *count = nf_vector_borrow(counts, index);
  *count = 1;
  nf_vector_return(counts, index, count);
  return LAN;
}
