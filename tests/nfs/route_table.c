/*
 * route_table: a routing table of 8 /16 prefixes (10.i.0.0/16 -> port i % 2) filled in nf_init by a
 * constant-bound loop and only read in nf_process (first match wins); a global scalar configuration
 * (the default route, a management network whose frames are dropped) is set in nf_init too.
 */
#include "nf.h"
#define LAN 0
#define WAN 1
#define N_ROUTES 8

struct route { uint32_t prefix; uint32_t mask; uint8_t out; uint8_t pad[3]; };

static struct nf_vector *routes;
static int default_out;
static uint32_t mgmt_net;

bool nf_init(void) {
  default_out = WAN;
  mgmt_net = NF_IPV4(10, 99, 0, 0);
  if (!nf_vector_allocate(sizeof(struct route), N_ROUTES, &routes)) return false;
  for (int i = 0; i < N_ROUTES; i++) {
    struct route *r = nf_vector_borrow(routes, i);
    r->prefix = nf_htonl(NF_IPV4(10, (uint32_t)i, 0, 0));
    r->mask = nf_htonl(0xffff0000u);
    r->out = (uint8_t)(i % 2);
    nf_vector_return(routes, i, r);
  }
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now; (void)device;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (!ip) return NF_DROP;
  if ((nf_ntohl(ip->src_addr) & 0xffff0000u) == mgmt_net) return NF_DROP;
  int out = default_out;
  for (int i = 0; i < N_ROUTES; i++) {
    struct route *r = nf_vector_borrow(routes, i);
    bool hit = (ip->dst_addr & r->mask) == r->prefix;
    uint8_t o = r->out;
    nf_vector_return(routes, i, r);
    if (hit) { out = o; break; }
  }
  return out;
}
