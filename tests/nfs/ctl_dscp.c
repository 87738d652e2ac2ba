/*
 * ctl_dscp: a DSCP marker whose mark is set by control packets that are themselves rewritten and
 * forwarded (a test NF for replicated state: a control packet changes its own bytes, and holds a
 * borrowed cell, before it writes the replicated mark, so that a replicated build must rerun it
 * from its original bytes and give the cell back).
 *
 * Behaviour, per frame:
 *   1. not IPv4 TCP/UDP: dropped;
 *   2. LAN, UDP to port DSCP_CONTROL_PORT: a control packet. Its TTL is decremented and its
 *      checksum recomputed, then the mark becomes the low 6 bits of its source port; it goes to
 *      the WAN;
 *   3. otherwise: the frame's source host is counted (frames per source address); its DSCP field
 *      becomes the current mark (0 until a control packet set one), the checksums are recomputed
 *      and the frame goes out of the other device.
 *
 * State:
 *   mark   vector of one struct mark: read by every data frame, written only by control packets
 *   hosts  map source address -> host index
 *   counts vector struct count, per host index: frames seen
 *   slots  dchain of host indices (never expired: a full table stops counting new hosts)
 */
#include "nf.h"

#ifndef DSCP_CONTROL_PORT
#define DSCP_CONTROL_PORT 7777
#endif
#ifndef DSCP_HOSTS
#define DSCP_HOSTS 4096
#endif

#define LAN 0
#define WAN 1

struct mark {
  uint32_t dscp;
};

struct host {
  uint32_t ip;
};

struct count {
  uint64_t frames;
};

static struct nf_vector *mark;
static struct nf_map *hosts;
static struct nf_vector *host_keys;
static struct nf_vector *counts;
static struct nf_dchain *slots;

bool nf_init(void) {
  if (!nf_vector_allocate(sizeof(struct mark), 1, &mark)) {
    return false;
  }
  if (!nf_map_allocate(sizeof(struct host), DSCP_HOSTS, &hosts)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct host), DSCP_HOSTS, &host_keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct count), DSCP_HOSTS, &counts)) {
    return false;
  }
  if (!nf_dchain_allocate(DSCP_HOSTS, &slots)) {
    return false;
  }
  return true;
}

static void count_host(uint32_t ip, nf_time_t now) {
  struct host key;
  key.ip = ip;
  int index;
  if (!nf_map_get(hosts, &key, &index)) {
    if (!nf_dchain_allocate_new_index(slots, &index, now)) {
      return;
    }
    nf_map_put(hosts, &key, index);
    struct host *cell = nf_vector_borrow(host_keys, index);
    cell->ip = ip;
    nf_vector_return(host_keys, index, cell);
  }
  struct count *c = nf_vector_borrow(counts, index);
  c->frames++;
  nf_vector_return(counts, index, c);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  if (device == LAN && ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(DSCP_CONTROL_PORT)) {
    ip->ttl = (uint8_t)(ip->ttl - 1);
    nf_update_checksums(packet, len);
    struct mark *m = nf_vector_borrow(mark, 0);
    m->dscp = nf_ntohs(l4->src_port) & 0x3f;
    nf_vector_return(mark, 0, m);
    return WAN;
  }
  count_host(ip->src_addr, now);
  struct mark *m = nf_vector_borrow(mark, 0);
  uint8_t dscp = (uint8_t)m->dscp;
  nf_vector_return(mark, 0, m);
  ip->tos = (uint8_t)((dscp << 2) | (ip->tos & 3));
  nf_update_checksums(packet, len);
  return device == LAN ? WAN : LAN;
}
