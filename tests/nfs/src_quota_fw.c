/* src_quota_fw: stateful firewall where each LAN host may hold at most QUOTA open flows. Flows by
 * 5-tuple, hosts by LAN address; replies from the WAN pass for open flows only. */
#include "nf.h"
#define CAP 4096
#ifndef QUOTA
#define QUOTA 3
#endif
struct flow { uint32_t lan; uint32_t wan; uint16_t lport; uint16_t wport; uint8_t proto; uint8_t pad[3]; };
struct host { uint32_t addr; };
static struct nf_map *flows, *hosts;
static struct nf_vector *flow_keys, *host_keys, *open_count;
static struct nf_dchain *flow_chain, *host_chain;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct flow), CAP, &flows) && nf_vector_allocate(sizeof(struct flow), CAP, &flow_keys) &&
         nf_dchain_allocate(CAP, &flow_chain) && nf_map_allocate(sizeof(struct host), CAP, &hosts) &&
         nf_vector_allocate(sizeof(struct host), CAP, &host_keys) && nf_vector_allocate(sizeof(uint32_t), CAP, &open_count) &&
         nf_dchain_allocate(CAP, &host_chain);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_time_t old = now > 30 * NF_NS_PER_SEC ? now - 30 * NF_NS_PER_SEC : 0;
  nf_expire_items(flow_chain, flow_keys, flows, old);
  nf_expire_items(host_chain, host_keys, hosts, old);
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) return NF_DROP;
  struct flow f;
  memset(&f, 0, sizeof f);
  f.proto = ip->protocol;
  if (device == 0) { f.lan = ip->src_addr; f.wan = ip->dst_addr; f.lport = l4->src_port; f.wport = l4->dst_port; }
  else { f.lan = ip->dst_addr; f.wan = ip->src_addr; f.lport = l4->dst_port; f.wport = l4->src_port; }
  int fi;
  if (nf_map_get(flows, &f, &fi)) { nf_dchain_rejuvenate_index(flow_chain, fi, now); return device == 0 ? 1 : 0; }
  if (device != 0) return NF_DROP;
  struct host h = { f.lan };
  int hi;
  if (!nf_map_get(hosts, &h, &hi)) {
    if (!nf_dchain_allocate_new_index(host_chain, &hi, now)) return NF_DROP;
    struct host *hk = nf_vector_borrow(host_keys, hi); *hk = h; nf_vector_return(host_keys, hi, hk);
    nf_map_put(hosts, &h, hi);
    uint32_t *c0 = nf_vector_borrow(open_count, hi); *c0 = 0; nf_vector_return(open_count, hi, c0);
  } else {
    nf_dchain_rejuvenate_index(host_chain, hi, now);
  }
  uint32_t *c = nf_vector_borrow(open_count, hi);
  if (*c >= QUOTA) { nf_vector_return(open_count, hi, c); return NF_DROP; }
  *c = *c + 1;
  nf_vector_return(open_count, hi, c);
  if (!nf_dchain_allocate_new_index(flow_chain, &fi, now)) return NF_DROP;
  struct flow *k = nf_vector_borrow(flow_keys, fi); *k = f; nf_vector_return(flow_keys, fi, k);
  nf_map_put(flows, &f, fi);
  return 1;
}
