/* Per-service TCP connection limit: a SYN from the LAN (device 0) to a service (dst_ip, dst_port)
 * that already has SCL_MAX_CONN open connections is dropped; FIN or RST from either side closes the
 * connection and frees its slot. Non-TCP traffic passes.
 * svc_open is indexed by a service slot that conn_svc's cell at a connection slot holds: a recycled
 * connection slot does not hand a new connection svc_open's cell (tests/test_recycling.py).
 * SCL_STALE_SERVICE: a connection to a known service keeps the service slot its connection slot's
 * last holder stored, and closing it decrements that service's count (a cell a new entry inherits).
 * SCL_OPEN_BY_CONN: conn_svc keeps the connection slot itself, so closing decrements svc_open at the
 * connection slot, a cell no new connection writes (svc_open then follows conn_slots through conn_svc). */
#include "nf.h"

#ifndef SCL_CONNS
#define SCL_CONNS 4096
#endif
#ifndef SCL_SERVICES
#define SCL_SERVICES 256
#endif
#ifndef SCL_MAX_CONN
#define SCL_MAX_CONN 3
#endif

struct conn { uint32_t lan_ip, svc_ip; uint16_t lan_port, svc_port; };
struct svc { uint32_t ip; uint16_t port; uint16_t pad; };

static struct nf_map *conns;      /* conn -> slot */
static struct nf_vector *conn_keys;
static struct nf_vector *conn_svc; /* slot -> service slot */
static struct nf_dchain *conn_slots;
static struct nf_map *svcs;       /* svc -> service slot */
static struct nf_vector *svc_keys;
static struct nf_vector *svc_open; /* open connections per service */
static struct nf_dchain *svc_slots;

bool nf_init(void) {
  return nf_map_allocate(sizeof(struct conn), SCL_CONNS, &conns) &&
         nf_vector_allocate(sizeof(struct conn), SCL_CONNS, &conn_keys) &&
         nf_vector_allocate(sizeof(int), SCL_CONNS, &conn_svc) &&
         nf_dchain_allocate(SCL_CONNS, &conn_slots) &&
         nf_map_allocate(sizeof(struct svc), SCL_SERVICES, &svcs) &&
         nf_vector_allocate(sizeof(struct svc), SCL_SERVICES, &svc_keys) &&
         nf_vector_allocate(sizeof(uint32_t), SCL_SERVICES, &svc_open) &&
         nf_dchain_allocate(SCL_SERVICES, &svc_slots);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  int out = 1 - device;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  struct nf_tcp_fields *tcp = nf_tcp_fields(packet, len);
  if (ip == NULL || l4 == NULL || tcp == NULL) return out;
  struct conn c;
  struct svc s = {0};
  if (device == 0) {
    c = (struct conn){ip->src_addr, ip->dst_addr, l4->src_port, l4->dst_port};
  } else {
    c = (struct conn){ip->dst_addr, ip->src_addr, l4->dst_port, l4->src_port};
  }
  s.ip = c.svc_ip;
  s.port = c.svc_port;
  int slot;
  bool known = nf_map_get(conns, &c, &slot);
  if (tcp->flags & (NF_TCP_FIN | NF_TCP_RST)) {
    if (known) {
      int *sv = nf_vector_borrow(conn_svc, slot);
      int si = *sv;
      nf_vector_return(conn_svc, slot, sv);
      uint32_t *open = nf_vector_borrow(svc_open, si);
      if (*open > 0) *open -= 1;
      nf_vector_return(svc_open, si, open);
      nf_map_erase(conns, &c);
      nf_dchain_free_index(conn_slots, slot);
    }
    return out;
  }
  if (known || device != 0 || !(tcp->flags & NF_TCP_SYN)) return out;
  int si;
  if (!nf_map_get(svcs, &s, &si)) {
    if (!nf_dchain_allocate_new_index(svc_slots, &si, now)) return NF_DROP;
    struct svc *sk = nf_vector_borrow(svc_keys, si);
    *sk = s;
    nf_map_put(svcs, sk, si);
    nf_vector_return(svc_keys, si, sk);
  }
  uint32_t *open = nf_vector_borrow(svc_open, si);
  if (*open >= SCL_MAX_CONN || !nf_dchain_allocate_new_index(conn_slots, &slot, now)) {
    nf_vector_return(svc_open, si, open);
    return NF_DROP;
  }
  *open += 1;
  nf_vector_return(svc_open, si, open);
  struct conn *ck = nf_vector_borrow(conn_keys, slot);
  *ck = c;
  nf_map_put(conns, ck, slot);
  nf_vector_return(conn_keys, slot, ck);
  int *sv = nf_vector_borrow(conn_svc, slot);
#if defined(SCL_STALE_SERVICE)
  if (*sv == 0) *sv = si;
#elif defined(SCL_OPEN_BY_CONN)
  *sv = slot;
#else
  *sv = si;
#endif
  nf_vector_return(conn_svc, slot, sv);
  return out;
}
