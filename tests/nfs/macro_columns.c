/*
 * macro_columns: a LAN host allow-list written the way C programmers write it, with macros and
 * aligned blanks ahead of the state calls on their lines (`device == LAN && nf_map_get(...)`,
 * `COPY4(...)`), so that the preprocessed line is shorter than the source line. LAN frames from
 * a known host go to the WAN (and refresh it); unknown LAN hosts are learned; WAN frames pass.
 *
 * Expected: every location the analysis gives is the column of the source token (the call's
 * name), not that of the preprocessed line (tests/test_frontend.py).
 */
#include "nf.h"

#define LAN 0
#define WAN 1
#define MC_CAPACITY 256
#define MC_AGE_NS (10 * NF_NS_PER_SEC)
#define COPY4(dst, src) memcpy((dst), (src), 4)

struct host {
  uint32_t addr;
};

static struct nf_map *hosts;
static struct nf_vector *keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), MC_CAPACITY, &hosts) &&
         nf_vector_allocate(sizeof(struct host), MC_CAPACITY, &keys) && nf_dchain_allocate(MC_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t   since   =   now > MC_AGE_NS ? now - MC_AGE_NS : 0;   nf_expire_items(chain, keys, hosts, since);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL || device != LAN) return device == LAN ? WAN : LAN;
  struct host key;
  COPY4(&key.addr, &ip->src_addr);
  int index;
  if (device == LAN && nf_map_get(hosts, &key, &index)) return nf_dchain_rejuvenate_index(chain, index, now) ? WAN : NF_DROP;
  if (!nf_dchain_allocate_new_index(chain, &index, now)) return NF_DROP;
  nf_map_put(hosts, &key, index);
  struct host *cell = nf_vector_borrow(keys, index);
  *cell = key;
  nf_vector_return(keys, index, cell);
  return WAN;
}
