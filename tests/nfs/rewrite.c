/*
 * rewrite: a test NF for the packet accessors and nf_update_checksums. IPv4 TCP/UDP frames get
 * source 10.9.8.7:4242 and fresh checksums; the verdict says what the accessors saw:
 * device 0 not IPv4, 1 IPv4 but no TCP/UDP header, 2 TCP/UDP (NF_DEVICES is 3 here).
 * A header pointer at an unexpected offset drops the frame.
 */
#define NF_DEVICES 3
#include "nf.h"

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)device;
  (void)now;
  if ((uint8_t *)nf_ether_header(packet) != packet) return NF_DROP;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return 0;
  if ((uint8_t *)ip != packet + 14) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {
    nf_update_checksums(packet, len); /* the IPv4 checksum only */
    return 1;
  }
  if ((uint8_t *)l4 != packet + 14 + 4 * (ip->version_ihl & 15)) return NF_DROP;
  ip->src_addr = nf_htonl(NF_IPV4(10, 9, 8, 7));
  l4->src_port = nf_htons(4242);
  nf_update_checksums(packet, len);
  return 2;
}
