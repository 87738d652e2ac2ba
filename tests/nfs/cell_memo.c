/*
 * cell_memo: a LAN flow table (map + dchain) keeps, per flow, the service port class of its first
 * frame (dst port % 64) in a vector cell; every frame of the flow then counts against that class's
 * budget, a 64-cell vector indexed by the stored class. Flows of a class share a budget cell.
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#define CM_CAP 65536
#define CM_LIMIT 7u
struct fk { uint32_t s, d; uint16_t sp, dp; };
struct info { uint32_t cls; };
static struct nf_map *flows; static struct nf_dchain *chain; static struct nf_vector *infos, *budget;
bool nf_init(void) {
  return nf_map_allocate(sizeof(struct fk), CM_CAP, &flows) && nf_dchain_allocate(CM_CAP, &chain) &&
         nf_vector_allocate(sizeof(struct info), CM_CAP, &infos) && nf_vector_allocate(4, 64, &budget);
}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  if (device == WAN) return LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (!ip || !l4) return WAN;
  struct fk k = { ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port };
  int i;
  if (!nf_map_get(flows, &k, &i)) {
    if (!nf_dchain_allocate_new_index(chain, &i, now)) return NF_DROP;
    nf_map_put(flows, &k, i);
    struct info *in = nf_vector_borrow(infos, i);
    in->cls = nf_ntohs(l4->dst_port) % 64u;
    nf_vector_return(infos, i, in);
  }
  struct info *in = nf_vector_borrow(infos, i);
  uint32_t cls = in->cls;
  nf_vector_return(infos, i, in);
  if (cls >= 64) return NF_DROP;
  uint32_t *b = nf_vector_borrow(budget, (int)cls);
  int out = *b < CM_LIMIT ? WAN : NF_DROP;
  (*b)++;
  nf_vector_return(budget, (int)cls, b);
  return out;
}
