/*
 * state_ops: a test NF that runs the state-library operation each frame names, so that tests can
 * drive every object of the runtime and read the results from the call log and the frame.
 *
 * Frame layout (at least 64 bytes): Ethernet header, then
 *   byte 14       operation (below)
 *   bytes 15..30  arguments: a 4-byte key as is (memory order), u32/u64 numbers little endian
 *   byte 31       verdict to return, as int8 (0 forwards to device 0, -1 drops, -2 floods)
 *   bytes 32..63  results, written by the NF (little endian)
 *
 * State, in allocation order (the call log's object numbers):
 *   0 map     4-byte key -> int, MAP_CAPACITY entries (nf_init puts de ad be ef -> 7)
 *   1 cells   vector of 8-byte cells, VECTOR_CAPACITY cells (nf_init sets cell 0 to 1..8)
 *   2 chain   dchain of CHAIN_RANGE indices
 *   3 keys    vector of 4-byte flow keys per chain index
 *   4 flows   map flow key -> chain index
 *   5 keys_b  vector of 4-byte keys per chain index (the flow key with every bit flipped)
 *   6 flows_b map flipped flow key -> chain index
 *   7 sketch  count-min sketch of 4-byte keys, SKETCH_WIDTH columns
 *   8 cht     Maglev table of CHT_HEIGHT rows over CHT_BACKENDS backends
 *   9 active  dchain of CHT_BACKENDS backend indices
 */
#include "nf.h"

#ifndef MAP_CAPACITY
#define MAP_CAPACITY 16
#endif
#ifndef VECTOR_CAPACITY
#define VECTOR_CAPACITY 4
#endif
#ifndef CHAIN_RANGE
#define CHAIN_RANGE 4
#endif
#ifndef SKETCH_WIDTH
#define SKETCH_WIDTH 64
#endif
#ifndef CHT_HEIGHT
#define CHT_HEIGHT 13
#endif
#ifndef CHT_BACKENDS
#define CHT_BACKENDS 4
#endif

enum op {
  MAP_GET = 0x01, MAP_PUT = 0x02, MAP_ERASE = 0x03,
  VEC_GET = 0x10,         /* borrow cell arg0, return it unchanged; result: the cell */
  VEC_SET = 0x11,         /* borrow cell arg0, set it to bytes 19..26, return it */
  VEC_HOLD = 0x12,        /* borrow cell arg0 arg1 times without returning (contract breach) */
  CHAIN_ALLOC = 0x20, CHAIN_REJUVENATE = 0x21, CHAIN_IS_ALLOCATED = 0x22, CHAIN_FREE = 0x23,
  CHAIN_ALLOC_MANY = 0x24, /* allocate arg0 times; result: how many succeeded, last index */
  FLOW = 0x30,            /* key: refresh its chain index, or allocate one and record it in both maps */
  EXPIRE = 0x31,          /* nf_expire_items(chain, keys, flows, arg u64) */
  EXPIRE2 = 0x32,         /* nf_expire_items2(chain, keys, flows, keys_b, flows_b, arg u64) */
  FLOWS_GET = 0x33,       /* nf_map_get(flows, key); result: found, value */
  FLOWS_B_GET = 0x34,     /* nf_map_get(flows_b, key) */
  SKETCH_TOUCH = 0x40, SKETCH_ESTIMATE = 0x41, SKETCH_EXPIRE = 0x42,
  BACKEND_ALLOC = 0x50, BACKEND_FREE = 0x51,
  CHT_FIND = 0x52,        /* nf_cht_find_backend(arg0 hash); result: found, backend */
  HASH = 0x60,            /* nf_hash of bytes 16 .. 16 + byte 15; result: the hash */
};

static struct nf_map *map, *flows, *flows_b;
static struct nf_vector *cells, *keys, *keys_b;
static struct nf_dchain *chain, *active;
static struct nf_sketch *sketch;
static struct nf_cht *cht;

bool nf_init(void) {
  if (!nf_map_allocate(4, MAP_CAPACITY, &map) || !nf_vector_allocate(8, VECTOR_CAPACITY, &cells) ||
      !nf_dchain_allocate(CHAIN_RANGE, &chain) || !nf_vector_allocate(4, CHAIN_RANGE, &keys) ||
      !nf_map_allocate(4, CHAIN_RANGE, &flows) || !nf_vector_allocate(4, CHAIN_RANGE, &keys_b) ||
      !nf_map_allocate(4, CHAIN_RANGE, &flows_b) || !nf_sketch_allocate(4, SKETCH_WIDTH, &sketch) ||
      !nf_cht_allocate(CHT_HEIGHT, CHT_BACKENDS, &cht) || !nf_dchain_allocate(CHT_BACKENDS, &active))
    return false;
  uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  nf_map_put(map, key, 7);
  uint8_t *cell = nf_vector_borrow(cells, 0);
  for (int i = 0; i < 8; i++) cell[i] = (uint8_t)(i + 1);
  nf_vector_return(cells, 0, cell);
  return true;
}

static uint32_t arg32(const uint8_t *packet, int at) {
  return (uint32_t)packet[at] | (uint32_t)packet[at + 1] << 8 | (uint32_t)packet[at + 2] << 16 |
         (uint32_t)packet[at + 3] << 24;
}

static uint64_t arg64(const uint8_t *packet, int at) {
  return (uint64_t)arg32(packet, at) | (uint64_t)arg32(packet, at + 4) << 32;
}

static void put32(uint8_t *packet, int at, uint32_t value) {
  for (int i = 0; i < 4; i++) packet[at + i] = (uint8_t)(value >> (8 * i));
}

static void flow(const uint8_t *key, nf_time_t now) {
  int index;
  if (nf_map_get(flows, key, &index)) {
    nf_dchain_rejuvenate_index(chain, index, now);
    return;
  }
  if (!nf_dchain_allocate_new_index(chain, &index, now)) return;
  uint8_t *stored = nf_vector_borrow(keys, index);
  memcpy(stored, key, 4);
  nf_vector_return(keys, index, stored);
  nf_map_put(flows, key, index);
  uint8_t flipped[4];
  for (int i = 0; i < 4; i++) flipped[i] = (uint8_t)~key[i];
  stored = nf_vector_borrow(keys_b, index);
  memcpy(stored, flipped, 4);
  nf_vector_return(keys_b, index, stored);
  nf_map_put(flows_b, flipped, index);
}

int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {
  (void)device;
  if (len < 64) return NF_DROP;
  const uint8_t *key = packet + 15;
  uint8_t *result = packet + 32;
  int value = 0, index = 0;
  bool ok = false;
  switch (packet[14]) {
  case MAP_GET:
    ok = nf_map_get(map, key, &value);
    result[0] = ok;
    put32(result, 1, (uint32_t)value);
    break;
  case MAP_PUT:
    nf_map_put(map, key, (int)arg32(packet, 19));
    break;
  case MAP_ERASE:
    nf_map_erase(map, key);
    break;
  case VEC_GET:
  case VEC_SET: {
    int at = (int)arg32(packet, 15);
    uint8_t *cell = nf_vector_borrow(cells, at);
    memcpy(result, cell, 8);
    if (packet[14] == VEC_SET) memcpy(cell, packet + 19, 8);
    nf_vector_return(cells, at, cell);
    break;
  }
  case VEC_HOLD:
    for (uint32_t i = 0; i < arg32(packet, 19); i++) nf_vector_borrow(cells, (int)arg32(packet, 15));
    break;
  case CHAIN_ALLOC:
    ok = nf_dchain_allocate_new_index(chain, &index, now);
    result[0] = ok;
    put32(result, 1, (uint32_t)index);
    break;
  case CHAIN_REJUVENATE:
    result[0] = nf_dchain_rejuvenate_index(chain, (int)arg32(packet, 15), now);
    break;
  case CHAIN_IS_ALLOCATED:
    result[0] = nf_dchain_is_index_allocated(chain, (int)arg32(packet, 15));
    break;
  case CHAIN_FREE:
    result[0] = nf_dchain_free_index(chain, (int)arg32(packet, 15));
    break;
  case CHAIN_ALLOC_MANY: {
    uint32_t done = 0;
    for (uint32_t i = 0; i < arg32(packet, 15); i++)
      if (nf_dchain_allocate_new_index(chain, &index, now)) done++;
    put32(result, 0, done);
    put32(result, 4, (uint32_t)index);
    break;
  }
  case FLOW:
    flow(key, now);
    break;
  case EXPIRE:
    put32(result, 0, (uint32_t)nf_expire_items(chain, keys, flows, arg64(packet, 15)));
    break;
  case EXPIRE2:
    put32(result, 0, (uint32_t)nf_expire_items2(chain, keys, flows, keys_b, flows_b, arg64(packet, 15)));
    break;
  case FLOWS_GET:
  case FLOWS_B_GET:
    ok = nf_map_get(packet[14] == FLOWS_GET ? flows : flows_b, key, &value);
    result[0] = ok;
    put32(result, 1, (uint32_t)value);
    break;
  case SKETCH_TOUCH:
    nf_sketch_touch(sketch, key, now);
    break;
  case SKETCH_ESTIMATE:
    put32(result, 0, nf_sketch_estimate(sketch, key));
    break;
  case SKETCH_EXPIRE:
    nf_sketch_expire(sketch, arg64(packet, 15));
    break;
  case BACKEND_ALLOC:
    ok = nf_dchain_allocate_new_index(active, &index, now);
    result[0] = ok;
    put32(result, 1, (uint32_t)index);
    break;
  case BACKEND_FREE:
    result[0] = nf_dchain_free_index(active, (int)arg32(packet, 15));
    break;
  case CHT_FIND:
    ok = nf_cht_find_backend(cht, arg32(packet, 15), active, &index);
    result[0] = ok;
    put32(result, 1, (uint32_t)index);
    break;
  case HASH:
    put32(result, 0, nf_hash(packet + 16, packet[15]));
    break;
  default:
    break;
  }
  return (int8_t)packet[31];
}
