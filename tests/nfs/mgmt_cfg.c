/*
 * mgmt_cfg: a three-port forwarder with a management port. Every IPv4 TCP/UDP frame on device 2
 * (management) sets the config slot (destination port % 16) to its TOS byte and is dropped. Data
 * frames between devices 0 and 1 look up the slot of their destination port: 0 drops the frame,
 * anything else is written into the frame's TOS (checksum updated) and the frame forwarded.
 *
 * State:
 *   cfg  vector uint8_t, 16 cells, indexed by the destination port % 16; written only by device 2
 *
 * Expected: the paths that forward (a cell != 0) run only after a management frame of the same
 * slot stored a TOS other than 0. `nfx traffic paths` reaches them with a device-2 frame solved to
 * store the value the data frame then reads (it left them unreached: every packet it solved saw
 * the cells at 0 or wrote them with the template's TOS 0).
 */
#define NF_DEVICES 3
#include "nf.h"

static struct nf_vector *cfg;

bool nf_init(void) {
  return nf_vector_allocate(sizeof(uint8_t), 16, &cfg);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)now;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (ip == NULL || l4 == NULL) {
    return NF_DROP;
  }
  uint32_t slot = nf_ntohs(l4->dst_port) % 16;
  uint8_t *c = nf_vector_borrow(cfg, slot);
  if (device == 2) {
    *c = ip->tos;
    nf_vector_return(cfg, slot, c);
    return NF_DROP;
  }
  uint8_t mark = *c;
  nf_vector_return(cfg, slot, c);
  if (mark == 0) {
    return NF_DROP;
  }
  ip->tos = mark;
  nf_update_checksums(packet, len);
  return device == 0 ? 1 : 0;
}
