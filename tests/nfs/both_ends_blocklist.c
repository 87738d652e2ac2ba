/*
 * both_ends_blocklist: a blocklist a frame meets at either end. LAN control frames (UDP to
 * BE_CTL_PORT) list their destination address, and those to BE_CTL_PORT + 1 unlist it; a data
 * frame whose source or destination address is listed is dropped, on either device. LAN data frames
 * that pass count against their source host, which is dropped past BE_BUDGET frames.
 *
 * Expected: shared-nothing. Listed addresses are met at both ends, so the packets that share an
 * entry of `blocked` agree on no one RSS field (one packet's source is another's destination) and
 * no key shards it; but only the control frames write it, so it is replicated with its keys and
 * chain, and the host counters shard on the LAN source address. It was locks: an object that no key
 * shards was never tried as a replica (only locked objects were), so the whole NF ran under locks.
 */
#include "nf.h"

#ifndef BE_CTL_PORT
#define BE_CTL_PORT 9999
#endif
#ifndef BE_LISTED
#define BE_LISTED 256
#endif
#ifndef BE_HOSTS
#define BE_HOSTS 4096
#endif
#ifndef BE_BUDGET
#define BE_BUDGET 1000
#endif
#define LAN 0
#define WAN 1

struct addr { uint32_t a; };
struct frames { uint32_t n; };

static struct nf_map *blocked;
static struct nf_vector *blocked_keys;
static struct nf_dchain *blocked_chain;
static struct nf_map *hosts;
static struct nf_vector *host_frames;
static struct nf_dchain *host_chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct addr), BE_LISTED, &blocked)
      && nf_vector_allocate(sizeof(struct addr), BE_LISTED, &blocked_keys)
      && nf_dchain_allocate(BE_LISTED, &blocked_chain)
      && nf_map_allocate(sizeof(struct addr), BE_HOSTS, &hosts)
      && nf_vector_allocate(sizeof(struct frames), BE_HOSTS, &host_frames)
      && nf_dchain_allocate(BE_HOSTS, &host_chain);
}

static bool listed(const struct nf_ipv4_hdr *ip) {
  uint32_t ends[2] = {ip->src_addr, ip->dst_addr};
  for (int i = 0; i < 2; i++) {
    struct addr k = {ends[i]};
    int index;
    if (nf_map_get(blocked, &k, &index)) return true;
  }
  return false;
}

static void control(uint32_t address, bool list, nf_time_t now) {
  struct addr k = {address};
  int index;
  bool present = nf_map_get(blocked, &k, &index);
  if (list && !present) {
    if (!nf_dchain_allocate_new_index(blocked_chain, &index, now)) return;
    nf_map_put(blocked, &k, index);
    struct addr *cell = nf_vector_borrow(blocked_keys, index);
    *cell = k;
    nf_vector_return(blocked_keys, index, cell);
  } else if (!list && present) {
    nf_map_erase(blocked, &k);
    nf_dchain_free_index(blocked_chain, index);
  }
}

static bool within_budget(uint32_t host, nf_time_t now) {
  struct addr k = {host};
  int index;
  if (!nf_map_get(hosts, &k, &index)) {
    if (!nf_dchain_allocate_new_index(host_chain, &index, now)) return false;
    nf_map_put(hosts, &k, index);
  }
  struct frames *f = nf_vector_borrow(host_frames, index);
  bool ok = f->n < BE_BUDGET;
  if (ok) f->n++;
  nf_vector_return(host_frames, index, f);
  return ok;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return device == LAN ? WAN : LAN;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (device == LAN && l4 != NULL && ip->protocol == NF_IP_PROTO_UDP) {
    uint16_t port = nf_ntohs(l4->dst_port);
    if (port == BE_CTL_PORT || port == BE_CTL_PORT + 1) {
      control(ip->dst_addr, port == BE_CTL_PORT, now);
      return NF_DROP;
    }
  }
  if (listed(ip)) return NF_DROP;
  if (device == WAN) return LAN;
  return within_budget(ip->src_addr, now) ? WAN : NF_DROP;
}
