/*
 * pol: a policer. Traffic from the WAN to each LAN host (destination IPv4 address) is limited by a
 * token bucket of POL_BURST bytes refilled at POL_RATE_BPS bytes per second; traffic from the LAN
 * to the WAN is not limited.
 *
 * Behaviour, per frame:
 *   1. forget every bucket whose host received nothing for POL_EXPIRATION_NS;
 *   2. LAN -> WAN: forward, untouched;
 *   3. WAN, not IPv4: drop;
 *   4. WAN, IPv4 to a host with a bucket: refill the bucket for the time elapsed (capped at
 *      POL_BURST); if it holds at least the frame's length (all its bytes, Ethernet header
 *      included), take them and forward to the LAN, else drop;
 *   5. WAN, IPv4 to a new host: a frame longer than POL_BURST is dropped; otherwise a full bucket
 *      is created, the frame's length taken from it and the frame forwarded to the LAN. When the
 *      table is full the frame is dropped.
 *
 * State:
 *   hosts    map    struct host_key (LAN host's IPv4 address, as on the wire) -> index
 *   keys     vector struct host_key, per index (so that expiry can erase it from hosts)
 *   buckets  vector struct bucket, per index: tokens left and time of the last refill
 *   chain    dchain of indices, stamped with the time of the host's last packet
 *
 * Configuration (override with --define NAME=VALUE):
 *   POL_RATE_BPS       refill rate, bytes per second
 *   POL_BURST          bucket size, bytes
 *   POL_CAPACITY       how many hosts are policed at once
 *   POL_EXPIRATION_NS  how long an idle host's bucket is kept
 * A bucket lives at most POL_EXPIRATION_NS between two refills, so the refill product
 * POL_EXPIRATION_NS * POL_RATE_BPS must stay below 2^64 (it does by far with the defaults).
 */
#include "nf.h"

#ifndef POL_RATE_BPS
#define POL_RATE_BPS 1000000ULL
#endif
#ifndef POL_BURST
#define POL_BURST 100000ULL
#endif
#ifndef POL_CAPACITY
#define POL_CAPACITY 1024
#endif
#ifndef POL_EXPIRATION_NS
#define POL_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct host_key {
  uint32_t addr;
};

struct bucket {
  uint64_t tokens; /* bytes */
  uint64_t time;   /* ns, last refill */
};

static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_vector *buckets;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct host_key), POL_CAPACITY, &hosts)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct host_key), POL_CAPACITY, &keys)) {
    return false;
  }
  if (!nf_vector_allocate(sizeof(struct bucket), POL_CAPACITY, &buckets)) {
    return false;
  }
  if (!nf_dchain_allocate(POL_CAPACITY, &chain)) {
    return false;
  }
  return true;
}

/* Entries last used strictly before this time are expired; clamped at 0 early in a trace. */
static nf_time_t expiry_threshold(nf_time_t now) {
  return now > POL_EXPIRATION_NS ? now - POL_EXPIRATION_NS : 0;
}

/* Known host: refill, then try to take `bytes` (the frame length; 64-bit so that any POL_BURST compares). */
static int police_known(int index, uint64_t bytes, nf_time_t now) {
  nf_dchain_rejuvenate_index(chain, index, now);
  struct bucket *b = nf_vector_borrow(buckets, index);
  uint64_t tokens = b->tokens + (now - b->time) * POL_RATE_BPS / NF_NS_PER_SEC;
  if (tokens > POL_BURST) {
    tokens = POL_BURST;
  }
  int verdict = NF_DROP;
  if (bytes <= tokens) {
    tokens -= bytes;
    verdict = LAN;
  }
  b->tokens = tokens;
  b->time = now;
  nf_vector_return(buckets, index, b);
  return verdict;
}

/* New host: a full bucket minus this frame. */
static int police_new(const struct host_key *host, uint64_t bytes, nf_time_t now) {
  if (bytes > POL_BURST) {
    return NF_DROP;
  }
  int index;
  if (!nf_dchain_allocate_new_index(chain, &index, now)) {
    return NF_DROP;
  }
  nf_map_put(hosts, host, index);
  struct host_key *key = nf_vector_borrow(keys, index);
  key->addr = host->addr;
  nf_vector_return(keys, index, key);
  struct bucket *b = nf_vector_borrow(buckets, index);
  b->tokens = POL_BURST - bytes;
  b->time = now;
  nf_vector_return(buckets, index, b);
  return LAN;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(chain, keys, hosts, expiry_threshold(now));

  if (device == LAN) {
    return WAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct host_key host;
  host.addr = ip->dst_addr;
  int index;
  if (nf_map_get(hosts, &host, &index)) {
    return police_known(index, len, now);
  }
  return police_new(&host, len, now);
}
