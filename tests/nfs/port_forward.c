/*
 * port_forward: static port forwarding with rewrite. Three rules (from the configuration) map an
 * external port of PF_EXTERNAL_IP to an internal server address and port. A WAN frame to a
 * forwarded port gets the server as destination; a LAN frame from a server's address and port gets
 * PF_EXTERNAL_IP and the external port as source; checksums are recomputed. Other TCP/UDP frames
 * from the LAN pass untouched; everything else is dropped.
 *
 * Expected: shared-nothing with any key: the two rule tables are filled by nf_init (a
 * constant-bound loop over the rules) and only read, so every core gets a copy.
 */
#include "nf.h"

#ifndef PF_EXTERNAL_IP
#define PF_EXTERNAL_IP NF_IPV4(198, 51, 100, 1)
#endif
#define PF_RULES 3

#define LAN 0
#define WAN 1

struct external_key {
  uint16_t port;
};

struct internal_key {
  uint32_t addr;
  uint16_t port;
  uint16_t pad;
};

struct rule {
  uint16_t external_port;
  uint32_t server;
  uint16_t server_port;
};

static const struct rule rules[PF_RULES] = {
    {8080, NF_IPV4(10, 0, 0, 10), 80},
    {2222, NF_IPV4(10, 0, 0, 11), 22},
    {5353, NF_IPV4(10, 0, 0, 12), 53},
};

static struct nf_map *by_external;
static struct nf_map *by_internal;
static struct nf_vector *targets;

bool nf_init(void) {
  if (!nf_map_allocate(sizeof(struct external_key), PF_RULES, &by_external) ||
      !nf_map_allocate(sizeof(struct internal_key), PF_RULES, &by_internal) ||
      !nf_vector_allocate(sizeof(struct rule), PF_RULES, &targets)) {
    return false;
  }
  for (int i = 0; i < PF_RULES; i++) {
    struct external_key ext = {.port = nf_htons(rules[i].external_port)};
    struct internal_key in;
    memset(&in, 0, sizeof in);
    in.addr = nf_htonl(rules[i].server);
    in.port = nf_htons(rules[i].server_port);
    nf_map_put(by_external, &ext, i);
    nf_map_put(by_internal, &in, i);
    struct rule *cell = nf_vector_borrow(targets, i);
    *cell = rules[i];
    nf_vector_return(targets, i, cell);
  }
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {
    return NF_DROP;
  }
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    return NF_DROP;
  }
  int index;
  if (device == WAN) {
    struct external_key ext = {.port = l4->dst_port};
    if (ip->dst_addr != nf_htonl(PF_EXTERNAL_IP) || !nf_map_get(by_external, &ext, &index)) {
      return NF_DROP;
    }
    struct rule *r = nf_vector_borrow(targets, index);
    uint32_t server = r->server;
    uint16_t server_port = r->server_port;
    nf_vector_return(targets, index, r);
    ip->dst_addr = nf_htonl(server);
    l4->dst_port = nf_htons(server_port);
    nf_update_checksums(packet, len);
    return LAN;
  }
  struct internal_key in;
  memset(&in, 0, sizeof in);
  in.addr = ip->src_addr;
  in.port = l4->src_port;
  if (nf_map_get(by_internal, &in, &index)) {
    struct rule *r = nf_vector_borrow(targets, index);
    uint16_t external_port = r->external_port;
    nf_vector_return(targets, index, r);
    ip->src_addr = nf_htonl(PF_EXTERNAL_IP);
    l4->src_port = nf_htons(external_port);
    nf_update_checksums(packet, len);
  }
  return WAN;
}
