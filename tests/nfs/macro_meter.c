/* macro_meter: a per-destination byte meter for LAN -> WAN traffic written the way many
 * DPDK-era NFs are: everything through macros and `static inline` helpers. A destination host
 * gets MM_BYTES bytes per MM_WINDOW; over that, frames are dropped (TCP) or re-marked to
 * best effort (anything else). WAN -> LAN passes untouched.
 *
 * Expected: sn, the LAN hashing dst_ip alone (an L3_DST_ONLY rule on e810).
 */
#include "nf.h"

#define MM_STR_(x) #x
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define CHECK(call) do { if (!(call)) return false; } while (0)
#define BORROW(vec, idx, type) ((type *)nf_vector_borrow((vec), (idx)))
#define GIVE_BACK(vec, idx, ptr) nf_vector_return((vec), (idx), (ptr))
#define IS_PROTO(ip, p) ((ip)->protocol == NF_IP_PROTO_##p)
#define FWD(dev) ((dev) == LAN ? WAN : LAN)
#define LAN 0
#define WAN 1

#ifndef MM_CAP
#define MM_CAP 256
#endif
#ifndef MM_BYTES
#define MM_BYTES 3000
#endif
#ifndef MM_WINDOW
#define MM_WINDOW (1 * NF_NS_PER_SEC)
#endif
#define MM_AGE (MM_WINDOW * 4)

typedef struct {
  nf_time_t since;
  uint32_t used;
  uint32_t pad_;
} bucket_t;

static struct nf_map *g_dsts;
static struct nf_vector *g_addrs;
static struct nf_vector *g_buckets;
static struct nf_dchain *g_chain;

bool nf_init(void) {
  CHECK(nf_map_allocate(sizeof(uint32_t), MM_CAP, &g_dsts));
  CHECK(nf_vector_allocate(sizeof(uint32_t), MM_CAP, &g_addrs));
  CHECK(nf_vector_allocate(sizeof(bucket_t), MM_CAP, &g_buckets));
  CHECK(nf_dchain_allocate(MM_CAP, &g_chain));
  return true;
}

static inline nf_time_t horizon(nf_time_t now) { return now > MM_AGE ? now - MM_AGE : 0; }

static inline uint16_t ip_len(const struct nf_ipv4_hdr *ip) { return nf_ntohs(ip->total_length); }

static inline __attribute__((always_inline)) int lookup_or_add(uint32_t dst, nf_time_t now) {
  int idx;
  if (likely(nf_map_get(g_dsts, &dst, &idx))) {
    nf_dchain_rejuvenate_index(g_chain, idx, now);
    return idx;
  }
  if (unlikely(!nf_dchain_allocate_new_index(g_chain, &idx, now))) {
    return -1;
  }
  nf_map_put(g_dsts, &dst, idx);
  uint32_t *a = BORROW(g_addrs, idx, uint32_t);
  *a = dst;
  GIVE_BACK(g_addrs, idx, a);
  bucket_t *b = BORROW(g_buckets, idx, bucket_t);
  b->since = now;
  b->used = 0;
  b->pad_ = 0;
  GIVE_BACK(g_buckets, idx, b);
  return idx;
}

static inline bool charge(int idx, uint32_t bytes, nf_time_t now) {
  bucket_t *b = BORROW(g_buckets, idx, bucket_t);
  if (now - b->since >= MM_WINDOW) {
    b->since = now;
    b->used = 0;
  }
  bool ok = b->used + bytes <= MM_BYTES;
  b->used = ok ? b->used + bytes : MIN(b->used, (uint32_t)MM_BYTES);
  GIVE_BACK(g_buckets, idx, b);
  return ok;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items(g_chain, g_addrs, g_dsts, horizon(now));
  if (device != LAN) return FWD(device);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (unlikely(ip == NULL)) return FWD(device);
  int idx = lookup_or_add(ip->dst_addr, now);
  if (idx < 0) return FWD(device);
  if (charge(idx, MAX(ip_len(ip), (uint16_t)20), now)) return FWD(device);
  if (IS_PROTO(ip, TCP)) return NF_DROP;
  ip->tos = 0;
  nf_update_checksums(packet, len);
  return FWD(device);
}
