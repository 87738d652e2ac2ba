/* TCP connection tracker with explicit teardown: the LAN (device 0) opens connections with a SYN;
 * the WAN (device 1) gets through only on an open connection; a FIN or RST from either side erases
 * the connection and frees its slot at once (no idle expiry). Non-TCP traffic is dropped. */
#include "nf.h"

#ifndef CC_CONNS
#define CC_CONNS 4096
#endif

struct conn { uint32_t lan_ip, wan_ip; uint16_t lan_port, wan_port; };

static struct nf_map *conns;
static struct nf_vector *conn_keys;
static struct nf_vector *packets;   /* per connection: packets seen */
static struct nf_dchain *slots;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct conn), CC_CONNS, &conns) &&
         nf_vector_allocate(sizeof(struct conn), CC_CONNS, &conn_keys) &&
         nf_vector_allocate(sizeof(uint32_t), CC_CONNS, &packets) &&
         nf_dchain_allocate(CC_CONNS, &slots);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
  if (ip == NULL || l4 == NULL || tcp == NULL) return NF_DROP;
  struct conn c;
  if (device == 0) {
    c = (struct conn){ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port};
  } else {
    c = (struct conn){ip->dst_addr, ip->src_addr, l4->dst_port, l4->src_port};
  }
  int slot;
  if (nf_map_get(conns, &c, &slot)) {
    uint32_t *n = nf_vector_borrow(packets, slot);
    *n += 1;
    nf_vector_return(packets, slot, n);
    if (tcp->flags & (NF_TCP_FIN | NF_TCP_RST)) {
      nf_map_erase(conns, &c);
      nf_dchain_free_index(slots, slot);
    }
    return 1 - device;
  }
  if (device != 0 || !(tcp->flags & NF_TCP_SYN) || (tcp->flags & (NF_TCP_FIN | NF_TCP_RST))) return NF_DROP;
  if (!nf_dchain_allocate_new_index(slots, &slot, now)) return NF_DROP;
  struct conn *k = nf_vector_borrow(conn_keys, slot);
  *k = c;
  nf_map_put(conns, k, slot);
  nf_vector_return(conn_keys, slot, k);
  uint32_t *n = nf_vector_borrow(packets, slot);
  *n = 1;
  nf_vector_return(packets, slot, n);
  return 1;
}
