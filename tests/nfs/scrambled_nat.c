/*
 * scrambled_nat: NAT with one external address and one shared dchain. A new LAN flow (TCP/UDP) takes
 * the lowest free index i, and its external port is NS_BASE + (i * 37) % 4096, a scrambled port, not
 * an affine function of the index. The LAN table maps the 5-tuple to i; the WAN table maps the
 * external port to i. WAN frames to NS_EXT_IP find their flow by destination port only, and must come
 * from the flow's remote host and port. Both tables expire together (nf_expire_items2).
 * Expected: locks. The WAN table is named on the LAN path by a value derived from the fresh index
 * (no packet field) and on the WAN by dst_port; the port is not offset + stride * i, so sharding
 * by allocation does not apply, and no pair constraint relates the two (before the fix: sn, and
 * replies met another core's mapping). Below NS_CAP 111, i * 37 never reaches 4096: the port is then
 * NS_BASE + 37 * i, and sharding by allocation rightly applies.
 */
#include "nf.h"

#ifndef NS_EXT_IP
#define NS_EXT_IP NF_IPV4(198, 51, 100, 7)
#endif
#ifndef NS_BASE
#define NS_BASE 20000
#endif
#ifndef NS_CAP
#define NS_CAP 512
#endif
#ifndef NS_AGE
#define NS_AGE (2 * NF_NS_PER_SEC)
#endif

struct flow {
  uint32_t src;
  uint32_t dst;
  uint16_t sport;
  uint16_t dport;
  uint8_t proto;
  uint8_t pad[3];
};

struct port_key {
  uint16_t port;
};

static struct nf_map *lan_map;
static struct nf_map *wan_map;
static struct nf_vector *lan_keys;
static struct nf_vector *wan_keys;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), NS_CAP, &lan_map) &&
         nf_map_allocate(sizeof(struct port_key), NS_CAP, &wan_map) &&
         nf_vector_allocate(sizeof(struct flow), NS_CAP, &lan_keys) &&
         nf_vector_allocate(sizeof(struct port_key), NS_CAP, &wan_keys) &&
         nf_dchain_allocate(NS_CAP, &chain);
}

static uint16_t port_of(int index) {
  return (uint16_t)(NS_BASE + ((uint32_t)index * 37u) % 4096u);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_expire_items2(chain, lan_keys, lan_map, wan_keys, wan_map, now > NS_AGE ? now - NS_AGE : 0);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  if (device == 0) {
    struct flow f;
    memset(&f, 0, sizeof f);
    f.src = ip->src_addr;
    f.dst = ip->dst_addr;
    f.sport = l4->src_port;
    f.dport = l4->dst_port;
    f.proto = ip->protocol;
    int index;
    if (nf_map_get(lan_map, &f, &index)) {
      nf_dchain_rejuvenate_index(chain, index, now);
    } else {
      if (!nf_dchain_allocate_new_index(chain, &index, now)) {
        return NF_DROP;
      }
      nf_map_put(lan_map, &f, index);
      struct flow *k = nf_vector_borrow(lan_keys, index);
      *k = f;
      nf_vector_return(lan_keys, index, k);
      struct port_key pk = {.port = nf_htons(port_of(index))};
      nf_map_put(wan_map, &pk, index);
      struct port_key *w = nf_vector_borrow(wan_keys, index);
      *w = pk;
      nf_vector_return(wan_keys, index, w);
    }
    ip->src_addr = nf_htonl(NS_EXT_IP);
    l4->src_port = nf_htons(port_of(index));
    nf_update_checksums(packet, len);
    return 1;
  }
  if (ip->dst_addr != nf_htonl(NS_EXT_IP)) {
    return NF_DROP;
  }
  struct port_key pk = {.port = l4->dst_port};
  int index;
  if (!nf_map_get(wan_map, &pk, &index)) {
    return NF_DROP;
  }
  struct flow *k = nf_vector_borrow(lan_keys, index);
  struct flow f = *k;
  nf_vector_return(lan_keys, index, k);
  if (f.dst != ip->src_addr || f.dport != l4->src_port || f.proto != ip->protocol) {
    return NF_DROP;
  }
  nf_dchain_rejuvenate_index(chain, index, now);
  ip->dst_addr = f.src;
  l4->dst_port = f.sport;
  nf_update_checksums(packet, len);
  return 0;
}
