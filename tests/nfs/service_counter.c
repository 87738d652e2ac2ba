/*
 * service_counter: counts the TCP frames LAN hosts send to one service (SC_SERVICE_IP, port
 * SC_SERVICE_PORT) in a table keyed by that service's address and port, then forwards them.
 * Other frames pass uncounted.
 *
 * State:
 *   hits   map struct service -> index, one entry (the service), built from constants
 *   chain  dchain handing out the entry's index
 *
 * Expected: locks. The key is the configured service, the same for every counted frame whatever
 * its flow, so no RSS key sends the frames that share it to one core. The key reads as the C
 * wrote it: {addr: 192.0.2.1, port: 49152, pad: 0} (its memory read as a number showed
 * 16908480 for the address and 192 for the port).
 *
 * Configuration (override with --define NAME=VALUE):
 *   SC_SERVICE_IP    the service's address (host order)
 *   SC_SERVICE_PORT  its TCP port (host order)
 */
#include "nf.h"

#ifndef SC_SERVICE_IP
#define SC_SERVICE_IP NF_IPV4(192, 0, 2, 1)
#endif
#ifndef SC_SERVICE_PORT
#define SC_SERVICE_PORT 49152
#endif

#define LAN 0
#define WAN 1

struct service {
  uint32_t addr;  /* network order */
  uint16_t port;  /* network order */
  uint16_t pad;
};

static struct nf_map *hits;
static struct nf_dchain *chain;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct service), 4, &hits) && nf_dchain_allocate(4, &chain);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int out = device == LAN ? WAN : LAN;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (device != LAN || ip == NULL || l4 == NULL || ip->protocol != NF_IP_PROTO_TCP ||
      ip->dst_addr != nf_htonl(SC_SERVICE_IP) || l4->dst_port != nf_htons(SC_SERVICE_PORT)) {
    return out;
  }
  struct service key;
  key.addr = nf_htonl(SC_SERVICE_IP);
  key.port = nf_htons(SC_SERVICE_PORT);
  key.pad = 0;
  int index;
  if (!nf_map_get(hits, &key, &index) && nf_dchain_allocate_new_index(chain, &index, now)) {
    nf_map_put(hits, &key, index);
  }
  return out;
}
