/*
 * lan_expiry_fw: a stateful firewall that expires idle flows only when a LAN frame arrives (a
 * common way to write it: the LAN side is the one that opens flows). A WAN frame passes as a reply
 * to an open LAN flow (its 5-tuple reversed), and does not expire anything itself, so a reply finds
 * its flow as the last LAN frame left the table: sequentially, a LAN frame of *any* flow removes
 * idle flows.
 *
 * Expected: locks. Sharded, a core expires only when one of its own LAN frames arrives, so a late
 * reply could pass on a core whose LAN side was quiet, where the sequential NF, having expired the
 * flow on another flow's frame, drops it (helper-found: shared-nothing was NOT equivalent).
 */
#include "nf.h"

#ifndef LE_CAPACITY
#define LE_CAPACITY 1024
#endif
#ifndef LE_EXPIRATION_NS
#define LE_EXPIRATION_NS (10 * NF_NS_PER_SEC)
#endif

#define LAN 0
#define WAN 1

struct flow {
  uint32_t lan_addr;
  uint32_t wan_addr;
  uint16_t lan_port;
  uint16_t wan_port;
  uint8_t protocol;
  uint8_t pad[3];
};

static struct nf_map *flows;
static struct nf_vector *keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), LE_CAPACITY, &flows) &&
         nf_vector_allocate(sizeof(struct flow), LE_CAPACITY, &keys) &&
         nf_dchain_allocate(LE_CAPACITY, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  struct flow f;
  memset(&f, 0, sizeof f);
  f.protocol = ip->protocol;
  int index;
  if (device == WAN) {
    f.lan_addr = ip->dst_addr;
    f.wan_addr = ip->src_addr;
    f.lan_port = l4->dst_port;
    f.wan_port = l4->src_port;
    if (!nf_map_get(flows, &f, &index)) {
      return NF_DROP;
    }
    nf_dchain_rejuvenate_index(chain, index, now);
    return LAN;
  }
  nf_expire_items(chain, keys, flows, now > LE_EXPIRATION_NS ? now - LE_EXPIRATION_NS : 0);
  f.lan_addr = ip->src_addr;
  f.wan_addr = ip->dst_addr;
  f.lan_port = l4->src_port;
  f.wan_port = l4->dst_port;
  if (nf_map_get(flows, &f, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return WAN;
  }
  if (nf_dchain_allocate_new_index(chain, &index, now)) {
    nf_map_put(flows, &f, index);
    struct flow *cell = nf_vector_borrow(keys, index);
    *cell = f;
    nf_vector_return(keys, index, cell);
  }
  return WAN;
}
