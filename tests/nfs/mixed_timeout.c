/*
 * mixed_timeout: one stateful-firewall flow table for TCP and UDP, but the idle timeout depends on
 * the protocol of the frame that triggers expiry: a TCP frame expires flows idle for 30 s, any
 * other frame flows idle for 2 s (a developer's "UDP is short-lived" shortcut on one table).
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#ifndef MT_CAP
#define MT_CAP 4096
#endif
#define TCP_AGE (30 * NF_NS_PER_SEC)
#define UDP_AGE (2 * NF_NS_PER_SEC)
struct fkey { uint32_t a, b; uint16_t pa, pb; uint8_t proto; uint8_t pad[3]; };
static struct nf_map *flows; static struct nf_vector *keys; static struct nf_dchain *chain;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct fkey), MT_CAP, &flows) && nf_vector_allocate(sizeof(struct fkey), MT_CAP, &keys) &&
         nf_dchain_allocate(MT_CAP, &chain);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) return NF_DROP;
#ifdef MT_BY_DEVICE
  if (device == LAN) {
    nf_expire_items(chain, keys, flows, now > TCP_AGE ? now - TCP_AGE : 0);
  } else {
    nf_expire_items(chain, keys, flows, now > UDP_AGE ? now - UDP_AGE : 0);
  }
#else
  nf_time_t age = ip->protocol == NF_IP_PROTO_TCP ? TCP_AGE : UDP_AGE;
  nf_expire_items(chain, keys, flows, now > age ? now - age : 0);
#endif
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!l4) return NF_DROP;
  struct fkey k;
  memset(&k, 0, sizeof k);
  k.proto = ip->protocol;
  if (device == LAN) {
    k.a = ip->src_addr; k.b = ip->dst_addr; k.pa = l4->src_port; k.pb = l4->dst_port;
  } else {
    k.a = ip->dst_addr; k.b = ip->src_addr; k.pa = l4->dst_port; k.pb = l4->src_port;
  }
  int i;
  if (nf_map_get(flows, &k, &i)) {
    nf_dchain_rejuvenate_index(chain, i, now);
    return device == LAN ? WAN : LAN;
  }
  if (device == WAN) return NF_DROP;
  if (nf_dchain_allocate_new_index(chain, &i, now)) {
    nf_map_put(flows, &k, i);
    struct fkey *c = nf_vector_borrow(keys, i);
    *c = k;
    nf_vector_return(keys, i, c);
  }
  return WAN;
}
