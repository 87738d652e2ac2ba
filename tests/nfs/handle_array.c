/*
 * handle_array: a frame cap per host, one table for LAN sources and one for WAN destinations, kept
 * in arrays of handles (`tables[HOSTS_LAN]`, ...) that nf_init fills in a loop; nf_process picks
 * the table with `?:` and a helper indexes the arrays with it.
 *
 * Expected: six objects, tables[0] ... chains[1]; sn, the LAN hashing src_ip and the WAN dst_ip;
 * `generate` finds the loop's one allocation call of each kind by its location and divides its
 * capacity (it asked for `&<global handle>`); equivalent under `check` at 2 and 3 cores but for
 * per-core capacity drift. The analysis refused it ("pass &global").
 */
#include "nf.h"

#ifndef HA_CAPACITY
#define HA_CAPACITY 1024
#endif
#define HA_MAX_FRAMES 100
#define LAN 0
#define WAN 1

enum { HOSTS_LAN, HOSTS_WAN, TABLES };

struct host {
  uint32_t addr;
};

static struct nf_map *tables[TABLES];
static struct nf_vector *counts[TABLES];
static struct nf_dchain *chains[TABLES];

bool nf_init(void) {
  for (int t = 0; t < TABLES; t++) {
    if (!nf_map_allocate(sizeof(struct host), HA_CAPACITY, &tables[t]) ||
        !nf_vector_allocate(sizeof(uint32_t), HA_CAPACITY, &counts[t]) ||
        !nf_dchain_allocate(HA_CAPACITY, &chains[t])) {
      return false;
    }
  }
  return true;
}

/* The host's frame count after this frame, or -1 when its table is full. */
static int count(int t, uint32_t addr, nf_time_t now) {
  struct host key = { .addr = addr };
  int index;
  if (!nf_map_get(tables[t], &key, &index)) {
    if (!nf_dchain_allocate_new_index(chains[t], &index, now)) {
      return -1;
    }
    nf_map_put(tables[t], &key, index);
    uint32_t *fresh = nf_vector_borrow(counts[t], index);
    *fresh = 0;
    nf_vector_return(counts[t], index, fresh);
  }
  uint32_t *cell = nf_vector_borrow(counts[t], index);
  uint32_t n = ++*cell;
  nf_vector_return(counts[t], index, cell);
  return (int)n;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  int n = count(device == LAN ? HOSTS_LAN : HOSTS_WAN, device == LAN ? ip->src_addr : ip->dst_addr, now);
  if (n < 0 || n > HA_MAX_FRAMES) {
    return NF_DROP;
  }
  return device == LAN ? WAN : LAN;
}
