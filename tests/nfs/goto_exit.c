/*
 * goto_exit: a LAN host counter written in the kernel's cleanup style, every early exit a
 * `goto out` to one common return. Expected: refused by the analysis at the first goto, with advice
 * on writing the jump without goto (a helper returning the verdict, or do { ... } while (0) with
 * break); the explorer shows the whole advice beside that line (it was cut off at the pane's edge).
 */
#include "nf.h"

#define LAN 0
#define WAN 1

struct host { uint32_t addr; };

static struct nf_map *hosts;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct host), 1024, &hosts);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int verdict = device == LAN ? WAN : LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) goto out;
  if (device != LAN) goto out;
  struct host h = { .addr = ip->src_addr };
  int index;
  if (!nf_map_get(hosts, &h, &index)) nf_map_put(hosts, &h, 0);
out:
  return verdict;
}
