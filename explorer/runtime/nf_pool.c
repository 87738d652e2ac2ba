/*
 * nf_pool.c: per-core pools of pooled dchains (see nf_pool.h), recomputed at start-up from the
 * key and RETA a port really uses, with the software Toeplitz, and checked against the plan.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_thash.h>

#include "nf_pool.h"
#include "nf_runtime.h"

#if NF_POOLS > 0

static uint16_t *owner[NF_POOLS]; /* per pool: the core of every index, once computed */
static uint32_t computed_sizes[NF_POOLS][NF_CORES];

/* splitmix64's finaliser; the digest is the sum (mod 2^64) over i of mix(i << 16 | owner(i)),
 * as explorer/sharding/pools.py computes it. */
static uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
  return x ^ (x >> 31);
}

static unsigned append(uint8_t *input, unsigned at, uint32_t value, unsigned size) {
  for (unsigned b = 0; b < size; b++) input[at + b] = (uint8_t)(value >> (8 * (size - 1 - b)));
  return at + size;
}

/* The hash of a TCP/UDP packet whose `field` holds `value` and whose other hashed fields are 0
 * (the plan's key zeroes their part of the RETA index): the input nf_rss_hash builds. */
static uint32_t value_hash(uint32_t fields, const uint8_t *key, uint32_t field, uint32_t value) {
  uint8_t input[12] = {0};
  unsigned size = 0;
  if (fields & NF_FIELD_SRC_IP) size = append(input, size, field == NF_FIELD_SRC_IP ? value : 0, 4);
  if (fields & NF_FIELD_DST_IP) size = append(input, size, field == NF_FIELD_DST_IP ? value : 0, 4);
  if (fields & NF_FIELD_SRC_PORT) size = append(input, size, field == NF_FIELD_SRC_PORT ? value : 0, 2);
  if (fields & NF_FIELD_DST_PORT) size = append(input, size, field == NF_FIELD_DST_PORT ? value : 0, 2);
  uint32_t words[3];
  unsigned count = (size + 3) / 4;
  for (unsigned i = 0; i < count; i++)
    words[i] = (uint32_t)input[4 * i] << 24 | (uint32_t)input[4 * i + 1] << 16 | (uint32_t)input[4 * i + 2] << 8 |
               input[4 * i + 3];
  return count ? rte_softrss(words, count, key) : 0;
}

static const char *field_name(uint32_t field) {
  switch (field) {
    case NF_FIELD_SRC_IP: return "src_ip";
    case NF_FIELD_DST_IP: return "dst_ip";
    case NF_FIELD_SRC_PORT: return "src_port";
    default: return "dst_port";
  }
}

int nf_pools_compute(uint16_t device, const uint8_t *key, const uint16_t *reta, unsigned reta_size, char *why,
                     size_t size) {
  uint8_t aligned[NF_KEY_BYTES] __attribute__((aligned(8))); /* rte_softrss reads 32-bit words */
  memcpy(aligned, key, NF_KEY_BYTES);
  if (reta_size == 0 || (reta_size & (reta_size - 1)) != 0) {
    snprintf(why, size, "device %u: a RETA of %u entries is not a power of two", device, reta_size);
    return -1;
  }
  for (unsigned p = 0; p < NF_POOLS; p++) {
    const struct nf_pool_plan *plan = &nf_pool_plans[p];
    if (plan->device != device) continue;
    if (owner[p] == NULL && (owner[p] = calloc(plan->capacity, sizeof *owner[p])) == NULL) {
      snprintf(why, size, "pool of %s: out of memory for %" PRIu32 " owners", plan->allocator, plan->capacity);
      return -1;
    }
    uint32_t width = plan->field & (NF_FIELD_SRC_IP | NF_FIELD_DST_IP) ? 32 : 16;
    uint32_t mask = width == 32 ? UINT32_MAX : (1u << width) - 1;
    uint32_t fields = nf_device_plans[device].fields;
    uint64_t digest = 0;
    memset(computed_sizes[p], 0, sizeof computed_sizes[p]);
    for (uint32_t i = 0; i < plan->capacity; i++) {
      uint32_t value = (plan->offset + plan->stride * i) & mask;
      uint16_t core = reta[value_hash(fields, aligned, plan->field, value) & (reta_size - 1)];
      if (core >= NF_CORES) {
        snprintf(why, size, "device %u: RETA names queue %u, this build has %d cores", device, core, NF_CORES);
        return -1;
      }
      owner[p][i] = core;
      computed_sizes[p][core]++;
      digest += mix((uint64_t)i << 16 | core);
    }
    for (unsigned c = 0; c < NF_CORES; c++)
      if (computed_sizes[p][c] != plan->sizes[c]) {
        snprintf(why, size, "the pools of %s differ from the plan: core %u would allocate %" PRIu32 " of its indices, "
                 "the plan %" PRIu32 " (device %u's key or RETA is not the plan's: replies to %s would reach cores "
                 "that do not hold their flows)", plan->allocator, c, computed_sizes[p][c], plan->sizes[c], device,
                 field_name(plan->field));
        return -1;
      }
    if (digest != plan->digest) {
      snprintf(why, size, "the pools of %s differ from the plan: same sizes, other indices (digest %016" PRIx64
               ", the plan %016" PRIx64 "; device %u's key or RETA is not the plan's)", plan->allocator, digest,
               plan->digest, device);
      return -1;
    }
  }
  return 0;
}

int nf_pools_from_plan(char *why, size_t size) {
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    if (nf_pools_compute(d, nf_device_plans[d].key, nf_device_plans[d].reta, NF_RETA_SIZE, why, size) != 0) return -1;
  return 0;
}

int nf_pools_from_port(uint16_t port, uint16_t device, bool steered, char *why, size_t size) {
  bool used = false;
  for (unsigned p = 0; p < NF_POOLS; p++) used |= nf_pool_plans[p].device == device;
  if (!used) return 0;
  const struct nf_device_plan *plan = &nf_device_plans[device];
  if (!steered) return nf_pools_compute(device, plan->key, plan->reta, NF_RETA_SIZE, why, size);
  /* The key as the port holds it, in a buffer that takes any key (some drivers, ice, write all of
   * theirs whatever rss_key_len says); a device with shorter keys than the plan's leaves zeros
   * after its own, which change no IPv4 hash (only the first 16 bytes do). */
  uint8_t held[UINT8_MAX + 1] = {0}, key[NF_KEY_BYTES] = {0};
  struct rte_eth_dev_info info;
  bool known = rte_eth_dev_info_get(port, &info) == 0;
  uint16_t reta_size = known ? info.reta_size : 0;
  uint8_t length = known && info.hash_key_size ? info.hash_key_size : NF_KEY_BYTES;
  struct rte_eth_rss_conf conf = {.rss_key = held, .rss_key_len = length};
  if (rte_eth_dev_rss_hash_conf_get(port, &conf) == 0)
    memcpy(key, held, conf.rss_key_len < NF_KEY_BYTES ? conf.rss_key_len : NF_KEY_BYTES);
  else
    memcpy(key, plan->key, NF_KEY_BYTES);
  static uint16_t reta[RTE_ETH_RSS_RETA_SIZE_512 * 4];
  struct rte_eth_rss_reta_entry64 back[RTE_ETH_RSS_RETA_SIZE_512 * 4 / RTE_ETH_RETA_GROUP_SIZE];
  bool read = false;
  if (reta_size != 0 && reta_size <= RTE_DIM(reta)) {
    memset(back, 0, sizeof back);
    for (uint16_t g = 0; g < (reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE; g++)
      back[g].mask = UINT64_MAX;
    if (rte_eth_dev_rss_reta_query(port, back, reta_size) == 0) {
      for (uint16_t b = 0; b < reta_size; b++) reta[b] = back[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE];
      read = true;
    }
  }
  if (!read) return nf_pools_compute(device, key, plan->reta, NF_RETA_SIZE, why, size);
  return nf_pools_compute(device, key, reta, reta_size, why, size);
}

bool nf_pool_dchain_allocate(unsigned pool, uint32_t index_range, struct nf_dchain **chain_out) {
  if (pool >= NF_POOLS || owner[pool] == NULL)
    nf_runtime_fatal("pool %u: its owners are not computed (call nf_pools_from_plan or nf_pools_from_port first)", pool);
  const struct nf_pool_plan *plan = &nf_pool_plans[pool];
  if (index_range != plan->capacity)
    nf_runtime_fatal("%s: nf_init allocates %" PRIu32 " indices, the pools were planned for %" PRIu32, plan->allocator,
                     index_range, plan->capacity);
  if (!nf_dchain_allocate(index_range, chain_out)) return false;
  for (uint32_t i = 0; i < index_range; i++)
    if (owner[pool][i] != nf_core) nf_dchain_withhold(*chain_out, (int)i);
  return true;
}

uint32_t nf_pool_capacity(uint32_t capacity) {
  uint32_t wanted = nf_sn_capacity(capacity);
  for (unsigned p = 0; p < NF_POOLS; p++)
    if (computed_sizes[p][nf_core] > wanted) wanted = computed_sizes[p][nf_core];
  return wanted < capacity ? wanted : capacity;
}

#else /* no pools in this build */

int nf_pools_compute(uint16_t device, const uint8_t *key, const uint16_t *reta, unsigned reta_size, char *why,
                     size_t size) {
  (void)device, (void)key, (void)reta, (void)reta_size, (void)why, (void)size;
  return 0;
}

int nf_pools_from_plan(char *why, size_t size) {
  (void)why, (void)size;
  return 0;
}

int nf_pools_from_port(uint16_t port, uint16_t device, bool steered, char *why, size_t size) {
  (void)port, (void)device, (void)steered, (void)why, (void)size;
  return 0;
}

bool nf_pool_dchain_allocate(unsigned pool, uint32_t index_range, struct nf_dchain **chain_out) {
  (void)pool, (void)index_range, (void)chain_out;
  nf_runtime_fatal("this build has no pools");
}

uint32_t nf_pool_capacity(uint32_t capacity) { return nf_sn_capacity(capacity); }

#endif
