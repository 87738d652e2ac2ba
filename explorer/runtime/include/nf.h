/*
 * nf.h: the NF language.
 *
 * A network function is plain sequential C99 that includes this header and nothing else
 * (besides <stdint.h>, <stdbool.h>, <stddef.h> and <string.h>). It defines two entry points:
 *
 *   bool nf_init(void);                 allocate and fill state, once, before any packet
 *   int  nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now);
 *                                       one packet; returns the output device, NF_DROP or NF_FLOOD
 *
 * All state that outlives a packet lives in the objects of the state library below; other globals
 * may only hold those objects' handles and are written only by nf_init. Headers are reached through
 * the nf_*_header() accessors, so that every header field read or written has a name
 * (p.ether.src, p.ipv4.dst, p.l4.dport, ...). Header fields are in network byte order, as on the
 * wire: use nf_ntohs/nf_ntohl to read numbers and nf_htons/nf_htonl to write them.
 *
 * The same header is read by the analyzer (explorer.frontend, with NF_ANALYSIS defined, against the
 * project's own minimal libc headers) and compiled by gcc into the C runtime (explorer/runtime).
 */
#ifndef NF_H
#define NF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- time, verdicts, devices ------------------------------------------------------------ */

typedef uint64_t nf_time_t; /* nanoseconds; the trace's packet timestamps */

#define NF_DROP (-1)
#define NF_FLOOD (-2) /* send on every device except the input one */

#ifndef NF_DEVICES
#define NF_DEVICES 2 /* device 0 is the LAN (internal) side, device 1 the WAN (external) side */
#endif

#define NF_NS_PER_SEC 1000000000ULL

bool nf_init(void);
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now);

/* ---- packet headers (network byte order) --------------------------------------------------- */

#define NF_ETHER_TYPE_IPV4 0x0800
#define NF_IP_PROTO_TCP 6
#define NF_IP_PROTO_UDP 17

/* A host-order IPv4 address from its dotted form: NF_IPV4(10, 0, 0, 1). */
#define NF_IPV4(a, b, c, d) \
  ((uint32_t)(((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d)))

struct nf_ether_hdr {
  uint8_t dst[6];      /* p.ether.dst */
  uint8_t src[6];      /* p.ether.src */
  uint16_t ether_type; /* p.ether.type */
};

struct nf_ipv4_hdr {
  uint8_t version_ihl;   /* p.ipv4.version_ihl */
  uint8_t tos;           /* p.ipv4.tos */
  uint16_t total_length; /* p.ipv4.total_length */
  uint16_t id;           /* p.ipv4.id */
  uint16_t frag_off;     /* p.ipv4.frag_off */
  uint8_t ttl;           /* p.ipv4.ttl */
  uint8_t protocol;      /* p.ipv4.proto */
  uint16_t checksum;     /* p.ipv4.checksum */
  uint32_t src_addr;     /* p.ipv4.src */
  uint32_t dst_addr;     /* p.ipv4.dst */
};

/* The first four bytes of a TCP or UDP header: what every NF here needs and RSS hashes. */
struct nf_tcpudp_hdr {
  uint16_t src_port; /* p.l4.sport */
  uint16_t dst_port; /* p.l4.dport */
};

/* The rest of a TCP header's 20 fixed bytes, after the ports: a struct of its own, so that the
 * ports stay in one place for TCP and UDP alike. Options (data_off > 5) are not modelled. */
struct nf_tcp_fields {
  uint32_t seq;      /* p.tcp.seq */
  uint32_t ack;      /* p.tcp.ack */
  uint8_t data_off;  /* p.tcp.data_off: header length in 32-bit words, in the high nibble */
  uint8_t flags;     /* p.tcp.flags: NF_TCP_FIN, NF_TCP_SYN, ... */
  uint16_t window;   /* p.tcp.window */
  uint16_t checksum; /* p.tcp.checksum */
  uint16_t urgent;   /* p.tcp.urgent */
};

#define NF_TCP_FIN 0x01
#define NF_TCP_SYN 0x02
#define NF_TCP_RST 0x04
#define NF_TCP_PSH 0x08
#define NF_TCP_ACK 0x10
#define NF_TCP_URG 0x20

/* The longest frame the runtime hands to nf_process, in bytes as captured (no FCS): a 9,000-byte
 * jumbo payload plus Ethernet and VLAN headers. Every driver (the sequential harness, the replay
 * harness, the generated DPDK program) drops longer frames, like runts, without calling the NF;
 * explorer/wire.py's MAX_FRAME is the same number for the commands. */
#define NF_MAX_FRAME 9018

/* Always valid: the runtime never passes a frame shorter than an Ethernet header (14 bytes), nor
 * longer than NF_MAX_FRAME. */
struct nf_ether_hdr *nf_ether_header(uint8_t *packet);

/* NULL unless the frame is IPv4 (ether_type 0x0800, version 4, IHL >= 5) and len holds the whole
 * IPv4 header (14 + 4 * IHL bytes). */
struct nf_ipv4_hdr *nf_ipv4_header(uint8_t *packet, uint16_t len);

/* NULL unless nf_ipv4_header() is not NULL, the packet is not a fragment (MF clear and offset 0:
 * NICs hash fragments on the IP pair only), protocol is TCP or UDP and len holds the L4 header
 * (20 bytes for TCP, 8 for UDP), which starts right after the IPv4 header and its options. */
struct nf_tcpudp_hdr *nf_tcpudp_header(uint8_t *packet, uint16_t len);

/* NULL unless nf_tcpudp_header() is not NULL and the protocol is TCP (len then holds the 20-byte
 * TCP header): the TCP header from byte 4, right after the ports. */
struct nf_tcp_fields *nf_tcp_fields(uint8_t *packet, uint16_t len);

/* Recompute the IPv4 header checksum and, for unfragmented TCP/UDP, the L4 checksum (a UDP
 * checksum of 0, "none", stays 0). Call after rewriting addresses, ports or TCP fields. */
void nf_update_checksums(uint8_t *packet, uint16_t len);

/* ---- byte order and hashing ---------------------------------------------------------------- */

#ifdef NF_ANALYSIS
uint16_t nf_ntohs(uint16_t x);
uint16_t nf_htons(uint16_t x);
uint32_t nf_ntohl(uint32_t x);
uint32_t nf_htonl(uint32_t x);
#else
static inline uint16_t nf_ntohs(uint16_t x) { return __builtin_bswap16(x); }
static inline uint16_t nf_htons(uint16_t x) { return __builtin_bswap16(x); }
static inline uint32_t nf_ntohl(uint32_t x) { return __builtin_bswap32(x); }
static inline uint32_t nf_htonl(uint32_t x) { return __builtin_bswap32(x); }
#endif

/* 32-bit FNV-1a of size bytes: a deterministic hash for NF logic (e.g. picking a backend). */
uint32_t nf_hash(const void *data, size_t size);

/* ---- the state library ---------------------------------------------------------------------
 * Capacities are fixed at allocation; nf_process never allocates. Every allocate function
 * returns false when memory is short (nf_init should then return false). Keys are compared and
 * hashed as raw bytes, so key structs must have no padding (the analyzer checks this).
 * Analysis operations, in the comments: READ, WRITE, CREATE, UPDATE, VERIFY, DESTROY, EXPIRE.
 */

/* map: fixed-size key -> int. */
struct nf_map;
bool nf_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out);
/* READ(key): true and *value_out set when key is present. */
bool nf_map_get(struct nf_map *map, const void *key, int *value_out);
/* WRITE(key): insert or overwrite; the caller guarantees room (capacity is typically enforced by
 * the dchain that allocates the value). */
void nf_map_put(struct nf_map *map, const void *key, int value);
/* WRITE(key): remove key if present. */
void nf_map_erase(struct nf_map *map, const void *key);

/* vector: capacity cells of elem_size bytes, zeroed at allocation. A cell is borrowed, read or
 * modified through the returned pointer, and handed back with nf_vector_return, which commits the
 * modification (WRITE only when the cell changed). The pointer is invalid after the return. */
struct nf_vector;
bool nf_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out);
void *nf_vector_borrow(struct nf_vector *vector, int index);       /* READ(index) */
void nf_vector_return(struct nf_vector *vector, int index, void *cell); /* WRITE(index) if changed */

/* dchain: allocator of indices in [0, index_range) with a last-use time per index. */
struct nf_dchain;
bool nf_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out);
/* CREATE: false when every index is in use; otherwise the lowest free index, stamped with now. */
bool nf_dchain_allocate_new_index(struct nf_dchain *chain, int *index_out, nf_time_t now);
/* UPDATE(index): stamp an allocated index with now (a time older than its stamp leaves it: an
 * index's time never runs backwards); false if it was not allocated. */
bool nf_dchain_rejuvenate_index(struct nf_dchain *chain, int index, nf_time_t now);
/* VERIFY(index) */
bool nf_dchain_is_index_allocated(struct nf_dchain *chain, int index);
/* DESTROY(index): false if it was not allocated. */
bool nf_dchain_free_index(struct nf_dchain *chain, int index);
/* EXPIRE: free every index whose last use is strictly before `time`, oldest first, erasing from
 * map the key stored in keys[index] (keys cells are map keys). Returns how many were freed. */
int nf_expire_items(struct nf_dchain *chain, struct nf_vector *keys, struct nf_map *map, nf_time_t time);
/* EXPIRE for two maps sharing one chain (e.g. a NAT's internal and external flow tables). */
int nf_expire_items2(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                     struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time);

/* count-min sketch of fixed-size keys: NF_SKETCH_DEPTH rows of `width` counters, each counter
 * with the time of its last increment. */
#define NF_SKETCH_DEPTH 4
struct nf_sketch;
bool nf_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out);
void nf_sketch_touch(struct nf_sketch *sketch, const void *key, nf_time_t now); /* WRITE(key): +1 */
uint32_t nf_sketch_estimate(struct nf_sketch *sketch, const void *key);         /* READ(key): min count */
void nf_sketch_expire(struct nf_sketch *sketch, nf_time_t time); /* EXPIRE: zero counters last touched before time */

/* cht: Maglev-style consistent-hash table of `height` rows (a prime) over backend_capacity
 * backends: each row lists backends in a row-specific permutation order. */
struct nf_cht;
bool nf_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out);
/* READ(cht, hash % height) and VERIFY of active_backends: the first backend of row hash % height
 * that is allocated in active_backends; false when none is. */
bool nf_cht_find_backend(struct nf_cht *cht, uint32_t hash, struct nf_dchain *active_backends,
                         int *backend_out);

#endif /* NF_H */
