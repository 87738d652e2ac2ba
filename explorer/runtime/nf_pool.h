/*
 * nf_pool.h: per-core pools for sharding by allocation (sn builds of NFs whose state is keyed by a
 * value they allocate and packets carry back, e.g. a NAT's external port NAT_START_PORT + index).
 *
 * Index i of a pooled dchain is named by packets on the pool's device through one header field,
 * `offset + stride * i` (mod the field's width). The NIC sends such a packet to the core
 * RETA[toeplitz(key, field) & (RETA size - 1)]: that core owns i, and only it allocates i. So the
 * pools follow from the key and the RETA the port really uses. At start-up the program reads them
 * back from the port (nf_pools_from_port; the replay harness takes the plan's, nf_pools_from_plan),
 * recomputes every index's owner with the software Toeplitz (rte_softrss) and refuses to start
 * when the pools differ from the plan's (nf_plan.c: per-core sizes and a digest of the owners):
 * replies would then reach cores that do not hold their flows. A new RETA (rebalancing) means new
 * pools: compute them again before any core allocates.
 *
 * Each core's dchain keeps the whole index range (indices are the values packets carry) and
 * withholds the indices of the other cores' pools (nf_pool_dchain_allocate), so it hands out its
 * own, lowest first, and its capacity is its pool.
 */
#ifndef NF_POOL_H
#define NF_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf_parallel.h"

#ifndef NF_POOLS
#define NF_POOLS 0
#endif

/* One pooled dchain, as the plan computed it. */
struct nf_pool_plan {
  const char *allocator; /* the NF's handle, for messages */
  uint32_t capacity;     /* indices 0 .. capacity - 1 */
  uint16_t device;       /* whose steering decides who owns an index */
  uint32_t field;        /* NF_FIELD_*: the header field packets carry the value in */
  uint32_t offset, stride;
  uint32_t sizes[NF_CORES]; /* indices per core */
  uint64_t digest;          /* sum over i of mix64(i << 16 | owner(i)), see nf_pool.c */
};

#if NF_POOLS > 0
extern const struct nf_pool_plan nf_pool_plans[NF_POOLS];
#endif

/* Compute the pools of every pool steered by `device` from a key (NF_KEY_BYTES) and a RETA of
 * `reta_size` entries (a power of two), and compare them with the plan. 0 when they agree, else -1
 * with the difference in `why`. */
int nf_pools_compute(uint16_t device, const uint8_t *key, const uint16_t *reta, unsigned reta_size, char *why,
                     size_t size);

/* The replay harness: every pool from the plan's own keys and RETAs. */
int nf_pools_from_plan(char *why, size_t size);

/* The DPDK program, after the port of `device` is set up: its pools from the key and RETA read
 * back from `port` when the port steers (`steered`: RSS programmed on several queues). Otherwise,
 * or where the driver cannot report them, the plan's: the input then arrives split per queue as
 * the plan's key and RETA would split it (one rx_pcap per queue). */
int nf_pools_from_port(uint16_t port, uint16_t device, bool steered, char *why, size_t size);

/* nf_init of an sn core, instead of nf_dchain_allocate for pooled dchain number `pool`: the whole
 * range, with the indices of other cores' pools withheld. */
bool nf_pool_dchain_allocate(unsigned pool, uint32_t index_range, struct nf_dchain **chain_out);

/* A map's capacity on this core in a build with pools: its share (capacity / cores) or, when
 * larger, this core's largest pool (a map that holds one entry per allocated index must fit it),
 * never more than `capacity`. */
uint32_t nf_pool_capacity(uint32_t capacity);

#endif /* NF_POOL_H */
