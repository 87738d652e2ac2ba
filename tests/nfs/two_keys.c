/* two_keys: two tables written by the same LAN packets, one keyed by the source address, one by the
 * destination address and port: each could shard alone, no RSS key shards both, so the NF runs under
 * locks (nfx solve says why, and lists both objects as locked). */
#include "nf.h"
#define LAN 0
#define WAN 1
struct sk { uint32_t src; };
struct dk { uint32_t dst; uint16_t dport; uint16_t pad; };
static struct nf_map *by_src;
static struct nf_map *by_dst;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct sk), 1024, &by_src) && nf_map_allocate(sizeof(struct dk), 1024, &by_dst);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
  struct sk s = {ip->src_addr};
  struct dk d;
  memset(&d, 0, sizeof d);
  d.dst = ip->dst_addr; d.dport = l4->dst_port;
  int v;
  if (device == LAN) {
    if (!nf_map_get(by_src, &s, &v)) nf_map_put(by_src, &s, 1);
    if (!nf_map_get(by_dst, &d, &v)) nf_map_put(by_dst, &d, 1);
    return WAN;
  }
  if (nf_map_get(by_src, &s, &v) || nf_map_get(by_dst, &d, &v)) return NF_DROP;
  return LAN;
}
