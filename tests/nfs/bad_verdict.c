/*
 * bad_verdict: returns device 7 for UDP frames from the WAN, though it has 2 devices (rule 7 of
 * sample_nfs/README.md). Analysis must reject it with the line of that return (issue 10 item 3).
 */
#include "nf.h"

bool nf_init(void) { return true; }

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (device == 1 && ip != NULL && ip->protocol == NF_IP_PROTO_UDP) {
    return 7;
  }
  return device == 0 ? 1 : 0;
}
