/* port_scan_loops: a WAN port filter and TTL normaliser written with while and do-while loops of
 * constant bounds and `continue`:
 *   - a while loop walks BLOCKED (a const table of port ranges), skipping ranges of other
 *     protocols with `continue`;
 *   - a do-while counts the set bits of the TOS byte (8 rounds), and frames with more than
 *     PSL_MAX_BITS of them are dropped as "christmas tree" markings;
 *   - per WAN source address, a map with a vector of hit counts remembers how many blocked
 *     frames it sent; a source past PSL_MAX_HITS is dropped whatever it sends.
 *
 * Expected: sn, the offenders sharded on the WAN src_ip; 23 paths, every one followed by its paths
 * traffic.
 */
#include "nf.h"

#ifndef PSL_MAX_HITS
#define PSL_MAX_HITS 8
#endif
#ifndef PSL_MAX_BITS
#define PSL_MAX_BITS 6
#endif
#ifndef PSL_CAP
#define PSL_CAP 512
#endif

struct range {
  uint8_t proto;
  uint16_t lo, hi;
};

static const struct range BLOCKED[] = {
  {NF_IP_PROTO_TCP, 135, 139},
  {NF_IP_PROTO_UDP, 137, 138},
  {NF_IP_PROTO_TCP, 445, 445},
  {NF_IP_PROTO_UDP, 1900, 1900},
  {NF_IP_PROTO_TCP, 3389, 3389},
};
#define N_BLOCKED (sizeof BLOCKED / sizeof BLOCKED[0])

static struct nf_map *offenders;
static struct nf_vector *addrs;
static struct nf_vector *hits;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(uint32_t), PSL_CAP, &offenders)) return false;
  if (!nf_vector_allocate(sizeof(uint32_t), PSL_CAP, &addrs)) return false;
  if (!nf_vector_allocate(sizeof(uint16_t), PSL_CAP, &hits)) return false;
  return nf_dchain_allocate(PSL_CAP, &chain);
}

static bool blocked(uint8_t proto, uint16_t port) {
  unsigned i = 0;
  while (i < N_BLOCKED) {
    const struct range *r = &BLOCKED[i];
    i++;
    if (r->proto != proto) {
      continue;
    }
    if (port >= r->lo && port <= r->hi) {
      return true;
    }
  }
  return false;
}

static unsigned bits_set(uint8_t b) {
  unsigned n = 0, k = 0;
  do {
    n += (b >> k) & 1u;
    k++;
  } while (k < 8);
  return n;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, addrs, offenders, now > 60 * NF_NS_PER_SEC ? now - 60 * NF_NS_PER_SEC : 0);
  if (device == 0) {
    return 1;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return 0;
  }
  if (bits_set(ip->tos) > PSL_MAX_BITS) {
    return NF_DROP;
  }
  uint32_t src = ip->src_addr;
  int index;
  bool known = nf_map_get(offenders, &src, &index);
  if (known) {
    uint16_t *h = nf_vector_borrow(hits, index);
    uint16_t count = *h;
    nf_vector_return(hits, index, h);
    if (count >= PSL_MAX_HITS) {
      return NF_DROP;
    }
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL || !blocked(ip->protocol, nf_ntohs(l4->dst_port))) {
    return 0;
  }
  if (!known) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(offenders, &src, index);
    uint32_t *a = nf_vector_borrow(addrs, index);
    *a = src;
    nf_vector_return(addrs, index, a);
    uint16_t *z = nf_vector_borrow(hits, index);
    *z = 0;
    nf_vector_return(hits, index, z);
  } else {
    nf_dchain_rejuvenate_index(chain, index, now);
  }
  uint16_t *h = nf_vector_borrow(hits, index);
  *h += 1;
  nf_vector_return(hits, index, h);
  return NF_DROP;
}
