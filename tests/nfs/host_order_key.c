/* host_order_key: a map keyed by host numbers (a port converted with nf_ntohs, the device, a
 * constant) next to a wire field: key texts show each as the code wrote it, none byte-swapped. */
#include "nf.h"

struct port_key {
  uint16_t port;   /* host order: nf_ntohs of the wire field */
  uint16_t dev;    /* the device, a host number */
  uint16_t zone;   /* a constant the code assigns */
  uint16_t wire;   /* the source port as on the wire */
};

static struct nf_map *ports;
static struct nf_dchain *chain;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct port_key), 64, &ports)) return false;
  return nf_dchain_allocate(64, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  struct port_key key;
  key.port = nf_ntohs(l4->dst_port) + 1;
  key.dev = device;
  key.zone = 3;
  key.wire = l4->src_port;
  int index;
  if (!nf_map_get(ports, &key, &index)) {
    if (!nf_dchain_allocate_new_index(chain, &index, now)) {
      return NF_DROP;
    }
    nf_map_put(ports, &key, index);
  }
  return device == 0 ? 1 : 0;
}
