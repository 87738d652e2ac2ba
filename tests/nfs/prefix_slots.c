/*
 * prefix_slots: a LAN -> WAN policer with gcc's bit builtins. A frame whose source and destination
 * share at least PS_PREFIX leading bits (__builtin_clz of their XOR: the length of their common
 * prefix) stays inside the site and goes back to the LAN; a frame from a host to itself (a LAND
 * attack, XOR 0, where __builtin_clz is undefined) is dropped first. Other sources get a slot of a
 * 64-bit free-slot bitmap, the lowest free one (__builtin_ctzll of the inverted bitmap), and count
 * their frames in that slot's counter; a slot passes PS_LIMIT frames, then drops; with every slot
 * taken, new sources drop. PS_PREFIX comes from a netmask through a macro that folds it when
 * __builtin_constant_p says the mask is a constant. WAN frames pass.
 *
 * State:
 *   owners  map LAN source address -> slot
 *   used    vector uint64_t, 1 cell: the bitmap of taken slots
 *   counts  vector uint32_t, 64 counters, one per slot
 */
#include "nf.h"

#ifndef PS_NETMASK
#define PS_NETMASK 0xffffff00u
#endif
#define PS_SLOTS 64
#define PS_LIMIT 1000u

/* A netmask's prefix length: its trailing zeros counted at compile time when it is a constant,
 * its one bits otherwise (the same number for a contiguous mask). */
#define PREFIX_LEN(mask) (__builtin_constant_p(mask) ? 32 - __builtin_ctz(mask) : __builtin_popcount(mask))
#define PS_PREFIX PREFIX_LEN(PS_NETMASK)

#define LAN 0
#define WAN 1

static struct nf_map *owners;
static struct nf_vector *used;
static struct nf_vector *counts;

bool nf_init(void) {
  return nf_map_allocate(sizeof(uint32_t), PS_SLOTS, &owners) && nf_vector_allocate(sizeof(uint64_t), 1, &used) &&
         nf_vector_allocate(sizeof(uint32_t), PS_SLOTS, &counts);
}

/* The lowest free slot of the bitmap, taken; -1 when all are taken. */
static int take_slot(void) {
  uint64_t *bits = nf_vector_borrow(used, 0);
  uint64_t free_slots = ~*bits;
  int slot = -1;
  if (free_slots != 0) {
    slot = __builtin_ctzll(free_slots);
    *bits |= 1ull << slot;
  }
  nf_vector_return(used, 0, bits);
  return slot;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) {
    return LAN;
  }
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return WAN;
  }
  uint32_t src = nf_ntohl(ip->src_addr);
  uint32_t apart = src ^ nf_ntohl(ip->dst_addr);
  if (apart == 0) {
    return NF_DROP;
  }
  if (__builtin_clz(apart) >= PS_PREFIX) {
    return LAN;
  }
  int slot;
  if (!nf_map_get(owners, &src, &slot)) {
    slot = take_slot();
    if (slot < 0) {
      return NF_DROP;
    }
    nf_map_put(owners, &src, slot);
  }
  uint32_t *count = nf_vector_borrow(counts, slot);
  int out = *count < PS_LIMIT ? WAN : NF_DROP;
  (*count)++;
  nf_vector_return(counts, slot, count);
  return out;
}
