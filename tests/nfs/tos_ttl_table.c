/*
 * tos_ttl_table: a router's hop-limit step that also keeps the (TOS, TTL) pairs it saw, in a table of
 * TT_CAP entries. IPv4 frames with TTL 0 or 1 are dropped; a frame whose pair is new when the table
 * is full is dropped too; the others get TTL - 1 (checksum updated) and go to the other device.
 *
 * Expected: locks (the key is made of fields RSS cannot hash). `nfx traffic paths` follows all 8
 * paths: the "table full" ones need TT_CAP frames that differ only in their TOS or TTL, which the
 * fill branch makes by varying the TOS byte (it varied only addresses, ports and MACs).
 */
#include "nf.h"

#ifndef TT_CAP
#define TT_CAP 64
#endif

struct pair {
  uint8_t tos;
  uint8_t ttl;
};

static struct nf_map *pairs;
static struct nf_vector *pair_keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct pair), TT_CAP, &pairs) &&
         nf_vector_allocate(sizeof(struct pair), TT_CAP, &pair_keys) && nf_dchain_allocate(TT_CAP, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int out = device == 0 ? 1 : 0;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return out;
  }
  if (ip->ttl <= 1) {
    return NF_DROP;
  }
  struct pair key = {.tos = ip->tos, .ttl = ip->ttl};
  int index;
  if (!nf_map_get(pairs, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(pairs, &key, index);
    struct pair *k = nf_vector_borrow(pair_keys, index);
    *k = key;
    nf_vector_return(pair_keys, index, k);
  }
  ip->ttl = (uint8_t)(ip->ttl - 1);
  nf_update_checksums(packet, len);
  return out;
}
