/*
 * ctl_blocklist: a blocklist that control frames fill (LAN UDP to CB_CTL_PORT names the address to
 * block, in its destination) and that forgets an address CB_AGE_NS after its last control frame.
 * Only control frames expire the list; every other frame is dropped when its outside address
 * (destination from the LAN, source from the WAN) is on it.
 *
 * Expected: shared-nothing with the three objects replicated. Data frames only read the list and do
 * not expire it, so they see it as the last control frame left it, sequentially and, once that frame's
 * writes (its expiry included) are broadcast, on every core alike. Sharding them would not do:
 * a core would expire only on its own control frames (helper-found: shared-nothing sharded was NOT
 * equivalent).
 */
#include "nf.h"

#ifndef CB_CAPACITY
#define CB_CAPACITY 256
#endif
#ifndef CB_AGE_NS
#define CB_AGE_NS (5 * NF_NS_PER_SEC)
#endif
#define CB_CTL_PORT 9999

#define LAN 0
#define WAN 1

static struct nf_map *blocked;
static struct nf_vector *addresses;
static struct nf_dchain *ages;

bool nf_init(void) {
  return nf_map_allocate(sizeof(uint32_t), CB_CAPACITY, &blocked) &&
         nf_vector_allocate(sizeof(uint32_t), CB_CAPACITY, &addresses) && nf_dchain_allocate(CB_CAPACITY, &ages);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  int index;
  if (device == LAN && l4 != NULL && ip->protocol == NF_IP_PROTO_UDP && l4->dst_port == nf_htons(CB_CTL_PORT)) {
    nf_expire_items(ages, addresses, blocked, now > CB_AGE_NS ? now - CB_AGE_NS : 0);
    uint32_t address = ip->dst_addr;
    if (nf_map_get(blocked, &address, &index)) {
      nf_dchain_rejuvenate_index(ages, index, now);
    } else if (nf_dchain_allocate_new_index(ages, &index, now)) {
      nf_map_put(blocked, &address, index);
      uint32_t *cell = nf_vector_borrow(addresses, index);
      *cell = address;
      nf_vector_return(addresses, index, cell);
    }
    return NF_DROP;
  }
  uint32_t outside = device == LAN ? ip->dst_addr : ip->src_addr;
  if (nf_map_get(blocked, &outside, &index)) {
    return NF_DROP;
  }
  return device == LAN ? WAN : LAN;
}
