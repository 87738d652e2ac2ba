/*
 * nf_state.c: the state library of nf.h (maps, vectors, dchains, sketches, Maglev tables), the
 * packet accessors and the call log.
 *
 * Design rules, so that the parallel targets can reuse this file:
 *  - all state lives in the objects; the only globals are the call log's and its diagnostics
 *    (`nf_log`: the log file, the packet number, the allocation counter that numbers objects, the
 *    reason of the last refused allocation);
 *  - every change to an object's contents goes through one small "mutator" function per object
 *    kind (map_store/map_remove, vector_store, chain_take/chain_stamp/chain_release,
 *    sketch_bump/sketch_clear), and each mutator first calls NF_WRITE_HOOK(&object->hdr), so a
 *    target can take a write lock or abort an optimistic reader before anything changes;
 *  - nf_process never allocates: every array is sized at allocation time.
 * Memory comes from rte_zmalloc (hugepages in the DPDK forwarder, plain memory under --no-huge);
 * maps are rte_hash tables, which is why the library needs an initialised EAL.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "nf.h"
#include "nf_runtime.h"

#ifndef NF_WRITE_HOOK
#define NF_WRITE_HOOK(object) ((void)(object))
#endif
/* How a vector cell's bytes are copied in and out of the shared array: locks and tm builds copy a
 * vector under cell locks in atomic words, since a core may read a cell that another core's reader
 * pass writes (nf_parallel.h). */
#ifndef NF_CELL_COPY
#define NF_CELL_COPY(object, to, from, size) memcpy(to, from, size)
#endif

/* ---- objects and the call log ------------------------------------------------------------- */

enum nf_object_kind { NF_KIND_MAP, NF_KIND_VECTOR, NF_KIND_DCHAIN, NF_KIND_SKETCH, NF_KIND_CHT };

/* The common head of every state object: its number in allocation order (the call log's and
 * StateObject.alloc_index's) and its kind, for write hooks that need to tell objects apart. */
struct nf_object {
  uint32_t id;
  enum nf_object_kind kind;
};

static struct {
  FILE *out;          /* NULL: no call log */
  int active;         /* inside nf_process */
  uint64_t packet;    /* current packet number */
  int in_packet;      /* packet is meaningful (for fatal messages) */
  uint32_t next_id;   /* allocation counter */
  char refusal[200];  /* why the last allocation failed, for nf_init's failure message */
} nf_log;

const char *nf_runtime_refusal(void) { return nf_log.refusal[0] ? nf_log.refusal : NULL; }

/* Remember why an allocate function returns false (nf.h makes that the only signal). */
static bool refuse(const char *format, ...) __attribute__((format(printf, 1, 2)));

static bool refuse(const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(nf_log.refusal, sizeof nf_log.refusal, format, args);
  va_end(args);
  return false;
}

#define OUT_OF_MEMORY(call) refuse("%s: out of memory for object #%" PRIu32, call, nf_log.next_id)

void nf_log_open(FILE *out) { nf_log.out = out; }

void nf_log_packet_begin(uint64_t packet) {
  nf_log.packet = packet;
  nf_log.in_packet = 1;
  nf_log.active = nf_log.out != NULL;
}

void nf_log_packet_end(void) {
  nf_log.active = 0;
  nf_log.in_packet = 0;
}

int nf_log_close(void) {
  int status = 0;
  if (nf_log.out != NULL && (fflush(nf_log.out) != 0 || ferror(nf_log.out))) status = -1;
  nf_log.out = NULL;
  nf_log.active = 0;
  return status;
}

void nf_runtime_fatal(const char *format, ...) {
  va_list args;
  fflush(stdout);
  if (nf_log.in_packet)
    fprintf(stderr, "nfx runtime: packet %" PRIu64 ": ", nf_log.packet);
  else
    fprintf(stderr, "nfx runtime: ");
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
  if (nf_log.out != NULL) fflush(nf_log.out);
  exit(NF_EXIT_CONTRACT);
}

void nf_program_exit(const char *program, int status, const char *format, ...) {
  va_list args;
  fflush(stdout);
  fprintf(stderr, "%s: ", program);
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
  exit(status);
}

uint32_t nf_next_object_id(void) { return nf_log.next_id; }
static char runtime_dir[PATH_MAX];

static void remove_runtime_dir(void) {
  if (runtime_dir[0] != '\0') rmdir(runtime_dir); /* fails harmlessly unless empty */
}

void nf_program_remove_runtime_dir_at_exit(void) {
  const char *dir = rte_eal_get_runtime_dir();
  if (dir == NULL || strlen(dir) >= sizeof runtime_dir || runtime_dir[0] != '\0') return;
  strcpy(runtime_dir, dir);
  atexit(remove_runtime_dir);
}

static void object_init(struct nf_object *object, enum nf_object_kind kind) {
  object->id = nf_log.next_id++;
  object->kind = kind;
}

/* One call-log line is written in pieces: log_call, then keys and results, then log_end. Each
 * piece is cheap to skip, and every caller tests nf_log.active once. */
static void log_call(const struct nf_object *object, const char *call) {
  fprintf(nf_log.out, "%" PRIu64 " %" PRIu32 " %s", nf_log.packet, object->id, call);
}

static void log_hex(const void *bytes, size_t size) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *b = bytes;
  putc(' ', nf_log.out);
  for (size_t i = 0; i < size; i++) {
    putc(digits[b[i] >> 4], nf_log.out);
    putc(digits[b[i] & 15], nf_log.out);
  }
}

static void log_u32(uint32_t value) { fprintf(nf_log.out, " %08" PRIx32, value); }
static void log_bool(bool value) { fputs(value ? " 01" : " 00", nf_log.out); }
static void log_none(void) { fputs(" -", nf_log.out); }
static void log_end(void) { putc('\n', nf_log.out); }

/* Sizes are products of user numbers: refuse what does not fit instead of wrapping around. */
static void *zalloc(size_t count, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) return NULL;
  return rte_zmalloc("nf_state", bytes == 0 ? 1 : bytes, RTE_CACHE_LINE_SIZE);
}

/* ---- packets -------------------------------------------------------------------------------- */

#define ETHER_LEN 14

struct nf_ether_hdr *nf_ether_header(uint8_t *packet) { return (struct nf_ether_hdr *)packet; }

struct nf_ipv4_hdr *nf_ipv4_header(uint8_t *packet, uint16_t len) {
  if (len < ETHER_LEN + 20) return NULL;
  struct nf_ether_hdr *ether = (struct nf_ether_hdr *)packet;
  if (ether->ether_type != nf_htons(NF_ETHER_TYPE_IPV4)) return NULL;
  struct nf_ipv4_hdr *ip = (struct nf_ipv4_hdr *)(packet + ETHER_LEN);
  unsigned ihl = ip->version_ihl & 15u;
  if ((ip->version_ihl >> 4) != 4 || ihl < 5 || len < ETHER_LEN + 4 * ihl) return NULL;
  return ip;
}

struct nf_tcpudp_hdr *nf_tcpudp_header(uint8_t *packet, uint16_t len) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NULL;
  if ((nf_ntohs(ip->frag_off) & 0x3fffu) != 0) return NULL; /* MF set or a non-zero offset */
  unsigned l4_offset = ETHER_LEN + 4u * (ip->version_ihl & 15u);
  unsigned l4_min;
  if (ip->protocol == NF_IP_PROTO_TCP)
    l4_min = 20;
  else if (ip->protocol == NF_IP_PROTO_UDP)
    l4_min = 8;
  else
    return NULL;
  if (len < l4_offset + l4_min) return NULL;
  return (struct nf_tcpudp_hdr *)(packet + l4_offset);
}

/* The wire layout the analysis models (explorer/wire.py): 16 bytes, no padding. */
_Static_assert(sizeof(struct nf_tcp_fields) == 16 && offsetof(struct nf_tcp_fields, flags) == 9,
               "struct nf_tcp_fields is the TCP header's bytes 4..19");

struct nf_tcp_fields *nf_tcp_fields(uint8_t *packet, uint16_t len) {
  uint8_t *l4 = (uint8_t *)nf_tcpudp_header(packet, len);
  if (l4 == NULL || nf_ipv4_header(packet, len)->protocol != NF_IP_PROTO_TCP) return NULL;
  return (struct nf_tcp_fields *)(l4 + 4);
}

/* The one's-complement sum is byte-order independent (RFC 1071): summing the 16-bit words as
 * loaded in native order gives the byte-swapped sum, and storing its complement in native order
 * writes the right bytes. So the sum reads 8 bytes at a time in native order; numbers added to it
 * (the pseudo-header's protocol and length) are converted with nf_htons. An odd last byte is
 * padded with a zero byte after it. */
static uint64_t sum_native(const uint8_t *data, size_t size, uint64_t sum) {
  while (size >= 8) {
    uint64_t word;
    memcpy(&word, data, 8);
    sum += (word & 0xffffffffu) + (word >> 32);
    data += 8;
    size -= 8;
  }
  if (size >= 4) {
    uint32_t word;
    memcpy(&word, data, 4);
    sum += word;
    data += 4;
    size -= 4;
  }
  if (size >= 2) {
    uint16_t word;
    memcpy(&word, data, 2);
    sum += word;
    data += 2;
    size -= 2;
  }
  if (size) {
    uint8_t last[2] = {data[0], 0};
    uint16_t word;
    memcpy(&word, last, 2);
    sum += word;
  }
  return sum;
}

/* The checksum field's value, in native order, from a native-order sum. */
static uint16_t fold_checksum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

void nf_update_checksums(uint8_t *packet, uint16_t len) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return;
  unsigned ip_len = 4u * (ip->version_ihl & 15u);
  ip->checksum = 0;
  ip->checksum = fold_checksum(sum_native((const uint8_t *)ip, ip_len, 0));

  if (nf_tcpudp_header(packet, len) == NULL) return;
  /* The L4 length comes from the IP header, so Ethernet padding is left out; when the capture
   * is shorter than the IP header says, the checksum cannot be computed and stays as it is. */
  unsigned total = nf_ntohs(ip->total_length);
  if (total < ip_len) return;
  unsigned l4_len = total - ip_len;
  unsigned l4_offset = ETHER_LEN + ip_len;
  if (l4_offset + l4_len > len) return;
  uint8_t *l4 = packet + l4_offset;
  unsigned field;
  if (ip->protocol == NF_IP_PROTO_TCP) {
    if (l4_len < 20) return;
    field = 16;
  } else {
    if (l4_len < 8) return;
    field = 6;
    if (l4[6] == 0 && l4[7] == 0) return; /* UDP without a checksum stays without */
  }
  l4[field] = l4[field + 1] = 0;
  uint64_t sum = sum_native((const uint8_t *)&ip->src_addr, 8, 0); /* pseudo-header */
  sum += nf_htons(ip->protocol);
  sum += nf_htons((uint16_t)l4_len);
  uint16_t checksum = fold_checksum(sum_native(l4, l4_len, sum));
  if (checksum == 0 && ip->protocol == NF_IP_PROTO_UDP) checksum = 0xffff; /* 0 means "none" */
  memcpy(l4 + field, &checksum, 2);
}

/* ---- hashing -------------------------------------------------------------------------------- */

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static uint32_t fnv1a_continue(uint32_t hash, const void *data, size_t size) {
  const uint8_t *b = data;
  for (size_t i = 0; i < size; i++) hash = (hash ^ b[i]) * FNV_PRIME;
  return hash;
}

uint32_t nf_hash(const void *data, size_t size) { return fnv1a_continue(FNV_OFFSET, data, size); }

/* FNV-1a's low bits mix poorly for short keys; MurmurHash3's finaliser spreads them before a
 * modulo picks a column or a row. */
static uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* A seeded hash: FNV-1a started from the FNV-1a of the seed's 4 little-endian bytes, then mixed.
 * Rows of a sketch and the Maglev permutations use distinct seeds. */
static uint32_t seeded_basis(uint32_t seed) {
  uint8_t bytes[4] = {(uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(seed >> 16), (uint8_t)(seed >> 24)};
  return fnv1a_continue(FNV_OFFSET, bytes, sizeof bytes);
}

static uint32_t seeded_hash(uint32_t basis, const void *data, size_t size) {
  return mix32(fnv1a_continue(basis, data, size));
}

/* ---- map ------------------------------------------------------------------------------------ */

struct nf_map {
  struct nf_object hdr;
  struct rte_hash *table;
  size_t key_size;
  uint32_t capacity;
  uint32_t count;
};

bool nf_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out) {
  if (key_size == 0 || key_size > UINT32_MAX || capacity == 0 || capacity > RTE_HASH_ENTRIES_MAX / 2)
    return refuse("nf_map_allocate: key_size %zu or capacity %" PRIu32 " out of range", key_size, capacity);
  struct nf_map *map = zalloc(1, sizeof *map);
  if (map == NULL) return OUT_OF_MEMORY("nf_map_allocate");
  /* rte_hash wants a process-unique name; the object's address is one while it lives. */
  char name[RTE_HASH_NAMESIZE];
  snprintf(name, sizeof name, "nfmap%" PRIxPTR, (uintptr_t)map);
  /* Twice the entries and the extendable bucket table: a cuckoo insert then never fails before
   * the map holds `capacity` keys, which this file enforces itself. */
  uint32_t entries = capacity * 2 < 16 ? 16 : capacity * 2;
  struct rte_hash_parameters params = {
      .name = name,
      .entries = entries,
      .key_len = (uint32_t)key_size,
      .hash_func = rte_hash_crc,
      .hash_func_init_val = 0,
      .socket_id = SOCKET_ID_ANY,
      .extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
  };
  map->table = rte_hash_create(&params);
  if (map->table == NULL) {
    rte_free(map);
    /* The parameters were checked above, so memory is what rte_hash_create lacked. */
    return refuse("nf_map_allocate: out of memory for object #%" PRIu32 " (an rte_hash of %" PRIu32 " entries)",
                  nf_log.next_id, entries);
  }
  map->key_size = key_size;
  map->capacity = capacity;
  object_init(&map->hdr, NF_KIND_MAP);
  *map_out = map;
  return true;
}

/* Mutators: the only places that change a map. */
static void map_store(struct nf_map *map, const void *key, int value) {
  NF_WRITE_HOOK(&map->hdr);
  void *data = (void *)(uintptr_t)(uint32_t)value; /* the int itself is the data pointer */
  hash_sig_t sig = rte_hash_hash(map->table, key);
  if (rte_hash_lookup_with_hash(map->table, key, sig) < 0) {
    if (map->count == map->capacity)
      nf_runtime_fatal("nf_map_put: map #%" PRIu32 " is full (capacity %" PRIu32 ")", map->hdr.id,
                       map->capacity);
    map->count++;
  }
  int status = rte_hash_add_key_with_hash_data(map->table, key, sig, data);
  if (status != 0)
    nf_runtime_fatal("nf_map_put: rte_hash refused a key of map #%" PRIu32 " (%d)", map->hdr.id, status);
}

static void map_remove(struct nf_map *map, const void *key) {
  NF_WRITE_HOOK(&map->hdr);
  if (rte_hash_del_key(map->table, key) >= 0) map->count--;
}

static bool map_lookup(const struct nf_map *map, const void *key, int *value_out) {
  void *data;
  if (rte_hash_lookup_data(map->table, key, &data) < 0) return false;
  *value_out = (int)(uint32_t)(uintptr_t)data;
  return true;
}

bool nf_map_get(struct nf_map *map, const void *key, int *value_out) {
  int value = 0;
  bool found = map_lookup(map, key, &value);
  if (found) *value_out = value;
  if (nf_log.active) {
    log_call(&map->hdr, "nf_map_get");
    log_hex(key, map->key_size);
    log_bool(found);
    log_u32((uint32_t)value);
    log_end();
  }
  return found;
}

void nf_map_put(struct nf_map *map, const void *key, int value) {
  if (nf_log.active) {
    log_call(&map->hdr, "nf_map_put");
    log_hex(key, map->key_size);
    log_end();
  }
  map_store(map, key, value);
}

void nf_map_erase(struct nf_map *map, const void *key) {
  if (nf_log.active) {
    log_call(&map->hdr, "nf_map_erase");
    log_hex(key, map->key_size);
    log_end();
  }
  map_remove(map, key);
}

/* ---- vector --------------------------------------------------------------------------------- */

/* A borrowed cell is a private copy (a "slot"); nf_vector_return commits it. Nothing changes
 * the vector before the return, so a write hook sees every change before it happens. Each lcore
 * has its own NF_VECTOR_SLOTS slots, so that cores sharing a vector (under a lock, or read-only)
 * never hand out the same slot; one lcore may have that many cells of a vector borrowed at once. */
#define NF_VECTOR_SLOTS 8

struct borrowed {
  uint32_t in_use; /* bit i: slot i is borrowed */
} __rte_cache_aligned;

struct nf_vector {
  struct nf_object hdr;
  size_t elem_size;
  uint32_t capacity;
  uint8_t *cells;
  struct borrowed *borrowed; /* per lcore */
  uint8_t *slots;            /* per lcore, NF_VECTOR_SLOTS cells */
};

/* This thread's set of slots; threads that are not EAL lcores share set 0. */
static unsigned slot_set(void) {
  unsigned lcore = rte_lcore_id();
  return lcore < RTE_MAX_LCORE ? lcore : 0;
}

/* Bytes from one lcore's set of slots to the next: whole cache lines, so that lcores copying cells
 * into their own slots never write a cache line another lcore is writing too. */
static size_t slot_stride(size_t elem_size) {
  return RTE_ALIGN_CEIL(NF_VECTOR_SLOTS * elem_size, RTE_CACHE_LINE_SIZE);
}

static uint8_t *slot_base(const struct nf_vector *vector, unsigned set) {
  return vector->slots + (size_t)set * slot_stride(vector->elem_size);
}

bool nf_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out) {
  if (elem_size == 0 || capacity == 0)
    return refuse("nf_vector_allocate: elem_size %zu and capacity %" PRIu32 " must be positive", elem_size, capacity);
  struct nf_vector *vector = zalloc(1, sizeof *vector);
  if (vector == NULL) return OUT_OF_MEMORY("nf_vector_allocate");
  vector->cells = zalloc(capacity, elem_size);
  vector->borrowed = zalloc(RTE_MAX_LCORE, sizeof(struct borrowed));
  vector->slots = elem_size > SIZE_MAX / NF_VECTOR_SLOTS - RTE_CACHE_LINE_SIZE
                      ? NULL
                      : zalloc(RTE_MAX_LCORE, slot_stride(elem_size));
  if (vector->cells == NULL || vector->borrowed == NULL || vector->slots == NULL) {
    rte_free(vector->cells);
    rte_free(vector->borrowed);
    rte_free(vector->slots);
    rte_free(vector);
    return OUT_OF_MEMORY("nf_vector_allocate");
  }
  vector->elem_size = elem_size;
  vector->capacity = capacity;
  object_init(&vector->hdr, NF_KIND_VECTOR);
  *vector_out = vector;
  return true;
}

static uint8_t *vector_cell(const struct nf_vector *vector, int index, const char *call) {
  if (index < 0 || (uint32_t)index >= vector->capacity)
    nf_runtime_fatal("%s: index %d out of range for vector #%" PRIu32 " (capacity %" PRIu32 ")", call,
                     index, vector->hdr.id, vector->capacity);
  return vector->cells + (size_t)index * vector->elem_size;
}

/* Mutator: the only place that changes a vector. */
static void vector_store(struct nf_vector *vector, uint8_t *cell, const void *content) {
  NF_WRITE_HOOK(&vector->hdr);
  NF_CELL_COPY(&vector->hdr, cell, content, vector->elem_size);
}

void *nf_vector_borrow(struct nf_vector *vector, int index) {
  const uint8_t *cell = vector_cell(vector, index, "nf_vector_borrow");
  unsigned set = slot_set();
  struct borrowed *borrowed = &vector->borrowed[set];
  uint32_t free_slots = ~borrowed->in_use & ((1u << NF_VECTOR_SLOTS) - 1);
  if (free_slots == 0)
    nf_runtime_fatal("nf_vector_borrow: more than %d cells of vector #%" PRIu32
                     " borrowed without nf_vector_return",
                     NF_VECTOR_SLOTS, vector->hdr.id);
  unsigned slot = (unsigned)__builtin_ctz(free_slots); /* lowest free slot: deterministic */
  borrowed->in_use |= 1u << slot;
  uint8_t *copy = slot_base(vector, set) + (size_t)slot * vector->elem_size;
  NF_CELL_COPY(&vector->hdr, copy, cell, vector->elem_size);
  if (nf_log.active) {
    log_call(&vector->hdr, "nf_vector_borrow");
    log_u32((uint32_t)index);
    log_hex(cell, vector->elem_size);
    log_end();
  }
  return copy;
}

void nf_vector_return(struct nf_vector *vector, int index, void *cell) {
  uint8_t *stored = vector_cell(vector, index, "nf_vector_return");
  if (nf_log.active) {
    log_call(&vector->hdr, "nf_vector_return");
    log_u32((uint32_t)index);
    log_end();
  }
  if (memcmp(stored, cell, vector->elem_size) != 0) vector_store(vector, stored, cell);
  nf_vector_release(vector, cell);
}

uint8_t *nf_vector_cell(struct nf_vector *vector, int index) { return vector_cell(vector, index, "nf_vector_cell"); }
size_t nf_vector_cell_size(const struct nf_vector *vector) { return vector->elem_size; }

void nf_vector_release_all(struct nf_vector *vector) { vector->borrowed[slot_set()].in_use = 0; }

void nf_vector_release(struct nf_vector *vector, void *cell) {
  unsigned set = slot_set();
  uintptr_t first = (uintptr_t)slot_base(vector, set);
  uintptr_t offset = (uintptr_t)cell - first;
  if ((uintptr_t)cell >= first && offset < NF_VECTOR_SLOTS * vector->elem_size && offset % vector->elem_size == 0)
    vector->borrowed[set].in_use &= ~(1u << (offset / vector->elem_size));
}

/* ---- index sets and age lists (shared by dchains and sketches) ------------------------------ */

/* A set of indices in [0, n) as a bitmap with summary levels: bit j of a level-k+1 word says
 * whether word j of level k is non-zero, so the lowest member is found in one ctz per level
 * (at most 6 levels for 2^32 indices): O(1) "lowest free index" for any practical range. */
#define BITSET_MAX_LEVELS 6

struct bitset {
  unsigned levels;
  uint64_t *words[BITSET_MAX_LEVELS];
};

static bool bitset_allocate(struct bitset *set, uint32_t n) {
  uint64_t count = n;
  memset(set, 0, sizeof *set);
  do {
    count = (count + 63) / 64;
    set->words[set->levels] = zalloc(count, sizeof(uint64_t));
    if (set->words[set->levels++] == NULL) return false;
  } while (count > 1);
  return true;
}

static void bitset_release(struct bitset *set) {
  for (unsigned l = 0; l < set->levels; l++) rte_free(set->words[l]);
}

static bool bitset_test(const struct bitset *set, uint32_t i) { return (set->words[0][i / 64] >> (i % 64)) & 1; }

static void bitset_add(struct bitset *set, uint32_t i) {
  for (unsigned l = 0; l < set->levels; l++, i /= 64) {
    uint64_t was = set->words[l][i / 64];
    set->words[l][i / 64] = was | (1ull << (i % 64));
    if (was != 0) break; /* the upper levels already know this word is non-empty */
  }
}

static void bitset_remove(struct bitset *set, uint32_t i) {
  for (unsigned l = 0; l < set->levels; l++, i /= 64) {
    set->words[l][i / 64] &= ~(1ull << (i % 64));
    if (set->words[l][i / 64] != 0) break;
  }
}

/* The lowest member, or -1 when the set is empty. */
static int64_t bitset_first(const struct bitset *set) {
  if (set->words[set->levels - 1][0] == 0) return -1;
  uint64_t position = 0;
  for (unsigned l = set->levels; l-- > 0;) position = position * 64 + (uint64_t)__builtin_ctzll(set->words[l][position]);
  return (int64_t)position;
}

/* Indices in [0, n) ordered by time, oldest first. Most stamps are the newest yet (traces are
 * sorted, and a DPDK program's clock only moves forward), so the order is kept as a doubly linked
 * list with sentinel n, appended to at its end in O(1). A stamp older than the newest entry walks
 * back a few entries to its place; one that would walk further (cores whose clocks differ, as in
 * a replay where each core runs its own part of a trace, or a capture with out-of-order times)
 * goes to a binary min-heap of "late" entries instead, ordered by (time, index), so that no stamp
 * ever costs more than O(log n). The oldest entry is the older of the list's head and the heap's
 * top (the list's on a tie). An index in the heap has prev == AGE_IN_HEAP and next == its heap
 * position. */
#define AGE_UNLINKED UINT32_MAX
#define AGE_IN_HEAP (UINT32_MAX - 1)
#define AGE_WALK 16 /* entries a late stamp may walk back before it goes to the heap */

struct age_list {
  uint32_t n;
  uint32_t *prev, *next;
  nf_time_t *time;
  uint32_t *heap; /* late entries, a min-heap by (time, index) */
  uint32_t heap_size;
};

static bool age_allocate(struct age_list *list, uint32_t n) {
  list->n = n;
  list->heap_size = 0;
  list->prev = zalloc((size_t)n + 1, sizeof(uint32_t));
  list->next = zalloc((size_t)n + 1, sizeof(uint32_t));
  list->time = zalloc(n, sizeof(nf_time_t));
  list->heap = zalloc(n, sizeof(uint32_t));
  if (list->prev == NULL || list->next == NULL || list->time == NULL || list->heap == NULL) return false;
  for (uint32_t i = 0; i < n; i++) list->prev[i] = list->next[i] = AGE_UNLINKED;
  list->prev[n] = list->next[n] = n;
  return true;
}

static void age_release(struct age_list *list) {
  rte_free(list->prev);
  rte_free(list->next);
  rte_free(list->time);
  rte_free(list->heap);
}

static bool age_linked(const struct age_list *list, uint32_t i) { return list->prev[i] != AGE_UNLINKED; }

/* Whether heap entry a is older than b: by time, then by index. */
static bool heap_before(const struct age_list *list, uint32_t a, uint32_t b) {
  return list->time[a] != list->time[b] ? list->time[a] < list->time[b] : a < b;
}

static void heap_place(struct age_list *list, uint32_t position, uint32_t i) {
  list->heap[position] = i;
  list->next[i] = position;
}

static void heap_sift_up(struct age_list *list, uint32_t position) {
  uint32_t i = list->heap[position];
  while (position > 0) {
    uint32_t parent = (position - 1) / 2;
    if (!heap_before(list, i, list->heap[parent])) break;
    heap_place(list, position, list->heap[parent]);
    position = parent;
  }
  heap_place(list, position, i);
}

static void heap_sift_down(struct age_list *list, uint32_t position) {
  uint32_t i = list->heap[position];
  for (;;) {
    uint32_t child = 2 * position + 1;
    if (child >= list->heap_size) break;
    if (child + 1 < list->heap_size && heap_before(list, list->heap[child + 1], list->heap[child])) child++;
    if (!heap_before(list, list->heap[child], i)) break;
    heap_place(list, position, list->heap[child]);
    position = child;
  }
  heap_place(list, position, i);
}

static void age_unlink(struct age_list *list, uint32_t i) {
  if (list->prev[i] == AGE_IN_HEAP) {
    uint32_t position = list->next[i], last = list->heap[--list->heap_size];
    if (last != i) {
      heap_place(list, position, last);
      heap_sift_up(list, position);
      heap_sift_down(list, list->next[last]);
    }
  } else {
    list->next[list->prev[i]] = list->next[i];
    list->prev[list->next[i]] = list->prev[i];
  }
  list->prev[i] = list->next[i] = AGE_UNLINKED;
}

static void age_stamp(struct age_list *list, uint32_t i, nf_time_t now) {
  if (age_linked(list, i)) age_unlink(list, i);
  list->time[i] = now;
  uint32_t after = list->prev[list->n];
  for (unsigned walked = 0; after != list->n && list->time[after] > now; walked++) {
    if (walked == AGE_WALK) {
      list->prev[i] = AGE_IN_HEAP;
      heap_place(list, list->heap_size++, i);
      heap_sift_up(list, list->next[i]);
      return;
    }
    after = list->prev[after];
  }
  list->prev[i] = after;
  list->next[i] = list->next[after];
  list->prev[list->next[after]] = i;
  list->next[after] = i;
}

/* The oldest index stamped strictly before `time`, or AGE_UNLINKED. */
static uint32_t age_expired(const struct age_list *list, nf_time_t time) {
  uint32_t oldest = list->next[list->n];
  if (list->heap_size > 0 && (oldest == list->n || list->time[list->heap[0]] < list->time[oldest]))
    oldest = list->heap[0];
  return oldest != list->n && list->time[oldest] < time ? oldest : AGE_UNLINKED;
}

/* ---- dchain --------------------------------------------------------------------------------- */

struct nf_dchain {
  struct nf_object hdr;
  uint32_t range;
  struct bitset free;   /* indices not in use */
  struct age_list ages; /* indices in use, by last use */
};

static void dchain_release(struct nf_dchain *chain) {
  bitset_release(&chain->free);
  age_release(&chain->ages);
  rte_free(chain);
}

bool nf_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out) {
  if (index_range == 0 || index_range > (uint32_t)INT32_MAX) /* indices are ints */
    return refuse("nf_dchain_allocate: index_range %" PRIu32 " out of range", index_range);
  struct nf_dchain *chain = zalloc(1, sizeof *chain);
  if (chain == NULL) return OUT_OF_MEMORY("nf_dchain_allocate");
  if (!bitset_allocate(&chain->free, index_range) || !age_allocate(&chain->ages, index_range)) {
    dchain_release(chain);
    return OUT_OF_MEMORY("nf_dchain_allocate");
  }
  for (uint32_t i = 0; i < index_range; i++) bitset_add(&chain->free, i);
  chain->range = index_range;
  object_init(&chain->hdr, NF_KIND_DCHAIN);
  *chain_out = chain;
  return true;
}

/* In use: stamped and not released (a withheld index is neither free nor in use). */
static bool chain_has(const struct nf_dchain *chain, int index) {
  return index >= 0 && (uint32_t)index < chain->range && age_linked(&chain->ages, (uint32_t)index);
}

bool nf_dchain_withhold(struct nf_dchain *chain, int index) {
  if (index < 0 || (uint32_t)index >= chain->range || !bitset_test(&chain->free, (uint32_t)index)) return false;
  bitset_remove(&chain->free, (uint32_t)index);
  return true;
}

/* Mutators: the only places that change a dchain. */
static void chain_take(struct nf_dchain *chain, uint32_t index, nf_time_t now) {
  NF_WRITE_HOOK(&chain->hdr);
  bitset_remove(&chain->free, index);
  age_stamp(&chain->ages, index, now);
}

static void chain_stamp(struct nf_dchain *chain, uint32_t index, nf_time_t now) {
  NF_WRITE_HOOK(&chain->hdr);
  age_stamp(&chain->ages, index, now);
}

static void chain_release(struct nf_dchain *chain, uint32_t index) {
  NF_WRITE_HOOK(&chain->hdr);
  bitset_add(&chain->free, index);
  age_unlink(&chain->ages, index);
}

static void log_chain_result(struct nf_dchain *chain, const char *call, int index, bool ok) {
  log_call(&chain->hdr, call);
  log_u32((uint32_t)index);
  log_bool(ok);
  log_end();
}

bool nf_dchain_allocate_new_index(struct nf_dchain *chain, int *index_out, nf_time_t now) {
  int64_t index = bitset_first(&chain->free);
  bool ok = index >= 0;
  if (ok) {
    chain_take(chain, (uint32_t)index, now);
    *index_out = (int)index;
  }
  if (nf_log.active) {
    log_call(&chain->hdr, "nf_dchain_allocate_new_index");
    log_none();
    log_bool(ok);
    log_u32(ok ? (uint32_t)index : 0);
    log_end();
  }
  return ok;
}

bool nf_dchain_rejuvenate_index(struct nf_dchain *chain, int index, nf_time_t now) {
  bool ok = chain_has(chain, index);
  /* An index's time never runs backwards: the parallel runtimes take the latest refresh of an
   * index when cores with their own clocks refresh it (nf_parallel.c), and with non-decreasing
   * time, as nf_process gets it, a later refresh is never older. */
  if (ok && now >= chain->ages.time[index]) chain_stamp(chain, (uint32_t)index, now);
  if (nf_log.active) log_chain_result(chain, "nf_dchain_rejuvenate_index", index, ok);
  return ok;
}

bool nf_dchain_is_index_allocated(struct nf_dchain *chain, int index) {
  bool ok = chain_has(chain, index);
  if (nf_log.active) log_chain_result(chain, "nf_dchain_is_index_allocated", index, ok);
  return ok;
}

bool nf_dchain_free_index(struct nf_dchain *chain, int index) {
  bool ok = chain_has(chain, index);
  if (ok) chain_release(chain, (uint32_t)index);
  if (nf_log.active) log_chain_result(chain, "nf_dchain_free_index", index, ok);
  return ok;
}

static void check_keys(const struct nf_vector *keys, const struct nf_map *map, const struct nf_dchain *chain,
                       const char *call) {
  if (keys->elem_size != map->key_size)
    nf_runtime_fatal("%s: cells of vector #%" PRIu32 " (%zu bytes) are not keys of map #%" PRIu32 " (%zu bytes)",
                     call, keys->hdr.id, keys->elem_size, map->hdr.id, map->key_size);
  if (keys->capacity < chain->range)
    nf_runtime_fatal("%s: vector #%" PRIu32 " has %" PRIu32 " cells, fewer than the %" PRIu32
                     " indices of dchain #%" PRIu32,
                     call, keys->hdr.id, keys->capacity, chain->range, chain->hdr.id);
}

static int expire(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                  struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time, const char *call) {
  check_keys(keys_a, map_a, chain, call);
  if (keys_b != NULL) check_keys(keys_b, map_b, chain, call);
  int count = 0;
  uint32_t index;
  while ((index = age_expired(&chain->ages, time)) != AGE_UNLINKED) {
    map_remove(map_a, keys_a->cells + (size_t)index * keys_a->elem_size);
    if (keys_b != NULL) map_remove(map_b, keys_b->cells + (size_t)index * keys_b->elem_size);
    chain_release(chain, index);
    count++;
  }
  if (nf_log.active) {
    log_call(&chain->hdr, call);
    log_none();
    log_u32((uint32_t)count);
    log_end();
  }
  return count;
}

int nf_expire_items(struct nf_dchain *chain, struct nf_vector *keys, struct nf_map *map, nf_time_t time) {
  return expire(chain, keys, map, NULL, NULL, time, "nf_expire_items");
}

int nf_expire_items2(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                     struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time) {
  return expire(chain, keys_a, map_a, keys_b, map_b, time, "nf_expire_items2");
}

/* ---- count-min sketch ----------------------------------------------------------------------- */

/* Row r hashes with seed NF_SKETCH_SEED(r) (see seeded_hash); counter (r, c) is number
 * r * width + c of the age list, which keeps counters by last increment so that expiry visits
 * only the counters it zeroes. Increments saturate at UINT32_MAX. */
#define NF_SKETCH_SEED(row) (0x9e3779b9u * (uint32_t)((row) + 1))

struct nf_sketch {
  struct nf_object hdr;
  size_t key_size;
  uint32_t width;
  uint32_t basis[NF_SKETCH_DEPTH];
  uint32_t *counts;
  struct age_list ages; /* counters with a non-zero count */
};

bool nf_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out) {
  if (key_size == 0 || width == 0 || width > (UINT32_MAX - 1) / NF_SKETCH_DEPTH)
    return refuse("nf_sketch_allocate: key_size %zu or width %" PRIu32 " out of range", key_size, width);
  struct nf_sketch *sketch = zalloc(1, sizeof *sketch);
  if (sketch == NULL) return OUT_OF_MEMORY("nf_sketch_allocate");
  sketch->counts = zalloc((size_t)NF_SKETCH_DEPTH * width, sizeof(uint32_t));
  if (sketch->counts == NULL || !age_allocate(&sketch->ages, NF_SKETCH_DEPTH * width)) {
    rte_free(sketch->counts);
    age_release(&sketch->ages);
    rte_free(sketch);
    return OUT_OF_MEMORY("nf_sketch_allocate");
  }
  for (unsigned r = 0; r < NF_SKETCH_DEPTH; r++) sketch->basis[r] = seeded_basis(NF_SKETCH_SEED(r));
  sketch->key_size = key_size;
  sketch->width = width;
  object_init(&sketch->hdr, NF_KIND_SKETCH);
  *sketch_out = sketch;
  return true;
}

static uint32_t sketch_counter(const struct nf_sketch *sketch, unsigned row, const void *key) {
  return row * sketch->width + seeded_hash(sketch->basis[row], key, sketch->key_size) % sketch->width;
}

/* Mutators: the only places that change a sketch. */
static void sketch_bump(struct nf_sketch *sketch, uint32_t counter, nf_time_t now) {
  NF_WRITE_HOOK(&sketch->hdr);
  if (sketch->counts[counter] != UINT32_MAX) sketch->counts[counter]++;
  age_stamp(&sketch->ages, counter, now);
}

static void sketch_clear(struct nf_sketch *sketch, uint32_t counter) {
  NF_WRITE_HOOK(&sketch->hdr);
  sketch->counts[counter] = 0;
  age_unlink(&sketch->ages, counter);
}

void nf_sketch_touch(struct nf_sketch *sketch, const void *key, nf_time_t now) {
  if (nf_log.active) {
    log_call(&sketch->hdr, "nf_sketch_touch");
    log_hex(key, sketch->key_size);
    log_end();
  }
  for (unsigned r = 0; r < NF_SKETCH_DEPTH; r++) sketch_bump(sketch, sketch_counter(sketch, r, key), now);
}

uint32_t nf_sketch_estimate(struct nf_sketch *sketch, const void *key) {
  uint32_t estimate = UINT32_MAX;
  for (unsigned r = 0; r < NF_SKETCH_DEPTH; r++) {
    uint32_t count = sketch->counts[sketch_counter(sketch, r, key)];
    if (count < estimate) estimate = count;
  }
  if (nf_log.active) {
    log_call(&sketch->hdr, "nf_sketch_estimate");
    log_hex(key, sketch->key_size);
    log_u32(estimate);
    log_end();
  }
  return estimate;
}

void nf_sketch_expire(struct nf_sketch *sketch, nf_time_t time) {
  uint32_t counter;
  while ((counter = age_expired(&sketch->ages, time)) != AGE_UNLINKED) sketch_clear(sketch, counter);
  if (nf_log.active) {
    log_call(&sketch->hdr, "nf_sketch_expire");
    log_none();
    log_end();
  }
}

/* ---- Maglev consistent-hash table ----------------------------------------------------------- */

/* Backend b visits rows in the order (offset_b + j * skip_b) % height, j = 0, 1, ..., a
 * permutation of the rows because height is prime and 0 < skip_b < height. Each row's list of
 * all backends is filled one column per round, Maglev-style: in round k the backends take turns
 * (0, 1, ...), each claiming the next row on its permutation that has k entries and does not
 * list it yet, until every row has k + 1 entries. Each round thus gives every backend an even
 * share of the rows (one claim per turn), as Maglev does for its single column, and the lists
 * are deterministic. Building costs O(backends^2 * height) steps, once, in nf_init. */
#define NF_CHT_OFFSET_SEED 0x4d41474cu /* "MAGL" */
#define NF_CHT_SKIP_SEED 0x45563031u   /* "EV01" */

struct nf_cht {
  struct nf_object hdr;
  uint32_t height;
  uint32_t backends;
  uint32_t *rows; /* rows[r * backends + k]: the k-th preferred backend of row r */
};

static bool is_prime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
    if (n % d == 0) return false;
  return true;
}

static bool cht_fill(struct nf_cht *cht) {
  uint32_t height = cht->height, backends = cht->backends;
  uint32_t *offset = zalloc(backends, sizeof(uint32_t));
  uint32_t *skip = zalloc(backends, sizeof(uint32_t));
  uint32_t *filled = zalloc(height, sizeof(uint32_t)); /* entries of each row so far */
  uint32_t *next = zalloc(backends, sizeof(uint32_t));   /* position on each permutation */
  uint8_t *listed = zalloc(height, backends);            /* listed[r * backends + b] */
  bool ok = offset && skip && filled && next && listed;
  if (ok) {
    uint32_t offset_basis = seeded_basis(NF_CHT_OFFSET_SEED), skip_basis = seeded_basis(NF_CHT_SKIP_SEED);
    for (uint32_t b = 0; b < backends; b++) {
      uint8_t id[4] = {(uint8_t)b, (uint8_t)(b >> 8), (uint8_t)(b >> 16), (uint8_t)(b >> 24)};
      offset[b] = seeded_hash(offset_basis, id, sizeof id) % height;
      skip[b] = height == 2 ? 1 : seeded_hash(skip_basis, id, sizeof id) % (height - 1) + 1;
    }
    for (uint32_t round = 0; ok && round < backends; round++) {
      /* A backend whose permutation is used up has nothing left to claim: every row it passed
       * was full this round or listed it already. An unfilled row always lacks some backend
       * that has not passed it yet, so each turn claims something until every row is filled;
       * the check below only guards that argument. */
      memset(next, 0, backends * sizeof(uint32_t));
      uint32_t claimed = 0;
      while (claimed < height) {
        uint32_t claimed_before = claimed;
        for (uint32_t b = 0; b < backends && claimed < height; b++) {
          while (next[b] < height) {
            uint32_t r = (uint32_t)(((uint64_t)offset[b] + (uint64_t)next[b]++ * skip[b]) % height);
            if (filled[r] != round || listed[(size_t)r * backends + b]) continue;
            cht->rows[(size_t)r * backends + round] = b;
            listed[(size_t)r * backends + b] = 1;
            filled[r]++;
            claimed++;
            break;
          }
        }
        if (claimed == claimed_before) {
          ok = false;
          break;
        }
      }
    }
  }
  rte_free(offset);
  rte_free(skip);
  rte_free(filled);
  rte_free(next);
  rte_free(listed);
  return ok;
}

bool nf_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out) {
  if (!is_prime(height)) return refuse("nf_cht_allocate: height %" PRIu32 " is not a prime", height);
  if (backend_capacity == 0 || backend_capacity > (uint32_t)INT32_MAX)
    return refuse("nf_cht_allocate: backend_capacity %" PRIu32 " out of range", backend_capacity);
  struct nf_cht *cht = zalloc(1, sizeof *cht);
  if (cht == NULL) return OUT_OF_MEMORY("nf_cht_allocate");
  cht->height = height;
  cht->backends = backend_capacity;
  cht->rows = zalloc(height, (size_t)backend_capacity * sizeof(uint32_t));
  if (cht->rows == NULL || !cht_fill(cht)) {
    rte_free(cht->rows);
    rte_free(cht);
    return OUT_OF_MEMORY("nf_cht_allocate");
  }
  object_init(&cht->hdr, NF_KIND_CHT);
  *cht_out = cht;
  return true;
}

bool nf_cht_find_backend(struct nf_cht *cht, uint32_t hash, struct nf_dchain *active_backends, int *backend_out) {
  uint32_t row = hash % cht->height;
  const uint32_t *list = cht->rows + (size_t)row * cht->backends;
  bool found = false;
  int backend = 0;
  for (uint32_t k = 0; k < cht->backends; k++) {
    if (chain_has(active_backends, (int)list[k])) {
      found = true;
      backend = (int)list[k];
      *backend_out = backend;
      break;
    }
  }
  if (nf_log.active) {
    log_call(&cht->hdr, "nf_cht_find_backend");
    log_u32(row);
    log_bool(found);
    log_u32((uint32_t)backend);
    log_end();
  }
  return found;
}

/* nf_object_id (nf_runtime.h, inline) reads an object's first field. */
_Static_assert(offsetof(struct nf_object, id) == 0 && offsetof(struct nf_map, hdr) == 0 &&
                   offsetof(struct nf_vector, hdr) == 0 && offsetof(struct nf_dchain, hdr) == 0 &&
                   offsetof(struct nf_sketch, hdr) == 0 && offsetof(struct nf_cht, hdr) == 0,
               "every state object starts with its id");
