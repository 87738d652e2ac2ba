/* echo_responder: answers UDP echo (port 7) requests from the WAN itself: the addresses and
 * ports are swapped in place and the frame goes back out of the WAN, at most ER_LIMIT answers per
 * client in a count-min sketch (older than ER_WINDOW forgotten); the rest passes to the LAN.
 * Written with a parse step that fills a struct of header pointers through an out-parameter and
 * helpers that take those pointers (swap in place, a verdict through an int *).
 *
 * Expected: sn, the sketch sharded on the WAN src_ip; the answers' swapped MACs, addresses and ports
 * compared exactly.
 */
#include "nf.h"

#ifndef ER_LIMIT
#define ER_LIMIT 5
#endif
#ifndef ER_WINDOW
#define ER_WINDOW (2 * NF_NS_PER_SEC)
#endif
#define ECHO_PORT 7

struct parsed {
  struct nf_ether_hdr *eth;
  struct nf_ipv4_hdr *ip;
  struct nf_tcpudp_hdr *l4;
};

static struct nf_sketch *clients;

bool nf_init(void) { return nf_sketch_allocate(sizeof(uint32_t), 1024, &clients); }

/* Fills *out; returns how many layers were found (1 Ethernet, 2 IPv4, 3 TCP/UDP). */
static int parse(uint8_t *packet, uint16_t len, struct parsed *out) {
  out->eth = nf_ether_header(packet);
  out->ip = nf_ipv4_header(packet, len);
  out->l4 = NULL;
  if (out->ip == NULL) return 1;
  out->l4 = nf_tcpudp_header(packet, len);
  return out->l4 == NULL ? 2 : 3;
}

static void swap_u32(uint32_t *a, uint32_t *b) { uint32_t t = *a; *a = *b; *b = t; }
static void swap_u16(uint16_t *a, uint16_t *b) { uint16_t t = *a; *a = *b; *b = t; }
static void swap_mac(uint8_t *a, uint8_t *b) {
  for (int i = 0; i < 6; i++) { uint8_t t = a[i]; a[i] = b[i]; b[i] = t; }
}

/* Turns the request around in place. */
static void reflect(struct parsed *p) {
  swap_mac(p->eth->src, p->eth->dst);
  swap_u32(&p->ip->src_addr, &p->ip->dst_addr);
  swap_u16(&p->l4->src_port, &p->l4->dst_port);
  p->ip->ttl = 64;
}

/* Sets *verdict when the frame is an echo request to answer; returns whether it decided. */
static bool echo(struct parsed *p, nf_time_t now, int *verdict) {
  if (p->ip->protocol != NF_IP_PROTO_UDP || p->l4->dst_port != nf_htons(ECHO_PORT)) return false;
  uint32_t client = p->ip->src_addr;
  if (nf_sketch_estimate(clients, &client) >= ER_LIMIT) {
    *verdict = NF_DROP;
    return true;
  }
  nf_sketch_touch(clients, &client, now);
  reflect(p);
  *verdict = 1;
  return true;
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  nf_sketch_expire(clients, now > ER_WINDOW ? now - ER_WINDOW : 0);
  struct parsed p;
  int layers = parse(packet, len, &p);
  if (device == 0) return 1;
  int verdict = 0;
  if (layers == 3 && echo(&p, now, &verdict)) {
    if (verdict != NF_DROP) nf_update_checksums(packet, len);
    return verdict;
  }
  return 0;
}
