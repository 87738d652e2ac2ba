/*
 * nf_parallel.h: the runtime of a generated parallel project (nfx generate), shared by its DPDK
 * program (main.c) and its replay harness (replay.c).
 *
 * A generated project is configured by two generated headers: nf_config.h (NF_DEVICES and the
 * NF's configuration values) and nf_plan.h (strategy, cores, RSS keys and RETAs). The NF itself is
 * rewritten by nfx for its strategy:
 *
 *   seq    the original NF on one core;
 *   sn     shared nothing: the NF's globals are thread-local, every core runs nf_init, sharded
 *          objects get the core's share of the entries (nf_sn_capacity), replicated ones all;
 *   locks  one shared copy of the state behind a big-reader lock (a cache-line token per core,
 *          kept from packet to packet until a writer asks or the driver calls nf_par_quiesce):
 *          every packet first runs as a reader; its first state mutation aborts the pass
 *          (NF_WRITE_HOOK, or a changed vector cell at nf_par_vector_return) and the packet
 *          reruns from its pristine bytes under the write lock, run by whichever core holds it
 *          (flat combining: one core runs the reruns of all). Refreshing a dchain index is a
 *          read: the new time goes to a per-core table that the next writer merges before
 *          anything else (so expiry sees it). Changing a cell of a vector is a write the first
 *          time; from then on that vector's cells are written in reader passes under per-cell
 *          optimistic locks (a policer's bucket, a counter: see nf_parallel.c, "cell locks"), and
 *          such a packet ran NF_RAN_CELLS;
 *   tm     the same passes, each in a hardware transaction around DPDK's rte_rwlock_*_tm locks
 *          where the CPU has RTM; without RTM, on the big-reader lock of locks (DPDK's fallback,
 *          a plain reader-writer lock, makes every packet write one shared counter).
 */
#ifndef NF_PARALLEL_H
#define NF_PARALLEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nf_config.h"
#include "nf.h"

#define NF_STRATEGY_SEQ 0
#define NF_STRATEGY_SN 1
#define NF_STRATEGY_LOCKS 2
#define NF_STRATEGY_TM 3

/* The RSS fields a device hashes, in hash-input order. */
#define NF_FIELD_SRC_IP 1u
#define NF_FIELD_DST_IP 2u
#define NF_FIELD_SRC_PORT 4u
#define NF_FIELD_DST_PORT 8u

/* Flow rules that select the hashed fields on NICs whose port-level rss_hf ignores *_ONLY flags. */
#define NF_PATTERN_IPV4_TCP 1
#define NF_PATTERN_IPV4_UDP 2
#define NF_PATTERN_IPV4 3

#include "nf_plan.h"

#if NF_CORES < 1
#error "NF_CORES must be at least 1"
#endif
#if (NF_RETA_SIZE & (NF_RETA_SIZE - 1)) != 0
#error "NF_RETA_SIZE must be a power of two"
#endif

struct nf_flow_rule {
  int pattern;    /* NF_PATTERN_* */
  uint64_t types; /* RTE_ETH_RSS_* of the rule's RSS action */
};

/* How one input device's packets are steered: what the NIC is programmed with. */
struct nf_device_plan {
  uint8_t key[NF_KEY_BYTES] __attribute__((aligned(8))); /* rte_softrss reads it as 32-bit words */
  uint32_t fields;                                        /* NF_FIELD_* */
  uint32_t portless_fields; /* NF_FIELD_* hashed of IPv4 frames without TCP/UDP ports (fragments, ICMP, ...) */
  uint64_t rss_hf;
  uint64_t port_hf; /* rss_conf.rss_hf on a port of the plan's NIC (explorer/rss/nic.py port_rss_hf) */
  const char *rss_hf_names;
  uint16_t reta[NF_RETA_SIZE]; /* RETA entry -> core */
  unsigned flow_rules;
  struct nf_flow_rule flow_rule[3];
};

extern const struct nf_device_plan nf_device_plans[NF_DEVICES];

/* ---- RSS in software ---------------------------------------------------------------------- */

/* The NIC's RSS hash of a frame received on `plan`'s device: Toeplitz over the device's fields
 * for unfragmented IPv4 TCP/UDP (nf_tcpudp_header), over its portless_fields for other IPv4
 * (nf_ipv4_header), and 0 for anything else. */
uint32_t nf_rss_hash(const struct nf_device_plan *plan, uint8_t *packet, uint16_t len);

/* The core a frame received on `device` lands on: RETA[hash & (NF_RETA_SIZE - 1)]. */
unsigned nf_rss_core(uint16_t device, uint8_t *packet, uint16_t len, uint32_t *hash_out);

/* Check rte_softrss against Microsoft's published Toeplitz vectors; 0 when they agree, else -1
 * with the failing vector described in `why`. */
int nf_rss_self_test(char *why, size_t size);

/* The rte_flow rule that makes an ice or i40e port hash `rule`'s fields: the pattern (NF_FLOW_ITEMS
 * items, the last one END, none with spec, mask or last), ingress at priority 0, and one RSS
 * action (then END) that carries the types alone: Toeplitz, level 0, no key (the port's key is set
 * with rte_eth_dev_rss_hash_update) and no queue list (the port's RETA applies), which is all
 * ice_hash.c and i40e_hash.c accept (explorer/rss/nic.py records their limits). */
#define NF_FLOW_ITEMS 4
struct rte_flow_attr;
struct rte_flow_item;
struct rte_flow_action;
struct rte_flow_action_rss;
void nf_flow_rss_rule(const struct nf_flow_rule *rule, struct rte_flow_attr *attr, struct rte_flow_item *pattern,
                      struct rte_flow_action *actions, struct rte_flow_action_rss *rss);

/* ---- running the NF ----------------------------------------------------------------------- */

/* How a packet ran. */
#define NF_RAN_ALONE 0 /* seq and sn: no synchronisation needed */
#define NF_RAN_READ 1  /* locks/tm: the optimistic reader pass completed */
#define NF_RAN_WRITE 2 /* locks/tm: aborted as a reader, rerun under the write lock */
#define NF_RAN_CELLS 3 /* locks/tm: the reader pass completed, writing vector cells under their cell locks */

#define NF_NO_OBJECT UINT32_MAX

struct nf_outcome {
  int verdict;
  uint8_t ran;            /* NF_RAN_* */
  uint8_t capacity_hit;   /* sn: a dchain had no free index (its per-core share was full) */
  uint32_t abort_object;  /* locks/tm: the object whose mutation aborted the reader pass */
  uint64_t ticket_begin;  /* with nf_par_schedule_log: global order of entering ... */
  uint64_t ticket_end;    /* ... and of leaving the packet's critical section */
                          /* (sn with replicated objects: the writes its core had applied, and
                           * the write it published; see nf_replica.h) */
  nf_time_t now;          /* the time the NF ran the packet at: its own, except under locks and tm,
                           * where a pass never runs before a time the shared state already holds
                           * (nf_par_process) */
  uint64_t started;       /* sn with replicated objects: TSC when the packet started ... */
  uint64_t finished;      /* ... and when it finished (a strict writer: once every core has its write) */
};

/* Set before the workers start to have every packet's critical section stamped with tickets
 * (ticket_begin, ticket_end) from one global counter, so that a replay can prove the parallel
 * run equal to a sequential run in the order the locks allowed. Costs a shared atomic per packet. */
extern bool nf_par_schedule_log;

/* The calling thread's core, 0 .. NF_CORES - 1 (set by nf_par_init_core). */
extern _Thread_local unsigned nf_core;

/* On the main lcore before the workers start: for seq, locks and tm, runs nf_init once (shared
 * state). Returns false when nf_init does. */
bool nf_par_init(void);

/* On every worker, core numbers 0 .. NF_CORES - 1: for sn, runs nf_init for this core's own
 * state. The caller runs the cores' initialisations one after the other. */
bool nf_par_init_core(unsigned core);

/* Process one packet on the calling core. Under locks and tm, cores race, so a packet may reach
 * the shared state after a packet of another core with a later time (and under sn, a core may
 * apply a replicated object's write from a core that is ahead); the sequential NF assumes
 * that time never goes back (a policer's `now - last`, a dchain's age order), so a pass runs at the
 * latest time the state holds when its own is earlier (out->now says which time it ran at). */
void nf_par_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out);

/* How this build synchronises its cores (valid after nf_par_init): "none" (seq, sn), "big-reader
 * lock" (locks; tm without RTM) or "RTM elision over rte_rwlock" (tm). */
const char *nf_par_lock_name(void);

/* locks: a core keeps its reader token from one packet to the next; it must give it back after
 * every burst and whenever it has no packet to process, or writers on other cores wait. A no-op
 * for the other strategies. */
void nf_par_quiesce(void);

/* A driver that makes a core wait between two of its packets (a paced replay) calls this while it
 * waits: sn with strict replication then applies other cores' writes, since a writer waits for
 * every core that is in a burst; locks and tm give back the reader token and a writer flag kept to
 * the end of the burst, which the packet the core waits for may need on another core. A no-op
 * otherwise. */
void nf_par_wait(void);

/* ---- calls the strategies rewrite the NF to make ------------------------------------------- */

/* sn: a sharded object's capacity on the calling core (nf_core, set before its nf_init runs).
 * The shares add up to the capacity (64 on 3 cores: 22, 21, 21): rounding every share up (22 each)
 * made the parallel build hold more entries than the sequential NF is configured for, so a table
 * that refused a new flow sequentially still took it on some core. At least 1, as an allocation of
 * 0 fails (a capacity below the cores). Mirrored by explorer.codegen.planning.core_shares. */
static inline uint32_t nf_sn_capacity(uint32_t capacity) {
  uint32_t share = capacity / NF_CORES + (nf_core < capacity % NF_CORES ? 1u : 0u);
  return share ? share : 1;
}

/* sn: nf_dchain_allocate_new_index, noting when the core's share of indices is used up. */
bool nf_sn_allocate_new_index(struct nf_dchain *chain, int *index_out, nf_time_t now);

/* locks/tm: the state calls that need care in a reader pass, and allocations (which keep count
 * of objects, so that an abort can name the object that caused it by its allocation number). */
bool nf_par_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out);
bool nf_par_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out);
bool nf_par_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out);
bool nf_par_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out);
void *nf_par_vector_borrow(struct nf_vector *vector, int index);
void nf_par_vector_return(struct nf_vector *vector, int index, void *cell);
bool nf_par_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out);
bool nf_par_dchain_rejuvenate_index(struct nf_dchain *chain, int index, nf_time_t now);

/* locks/tm: called by every mutator of the state library before it changes anything (see
 * NF_WRITE_HOOK in nf_state.c): aborts a reader pass. */
void nf_par_write_hook(uint32_t object);
#if NF_STRATEGY == NF_STRATEGY_LOCKS || NF_STRATEGY == NF_STRATEGY_TM
#define NF_WRITE_HOOK(object) nf_par_write_hook((object)->id)

/* locks/tm: a vector cell's bytes in and out of the shared array (NF_CELL_COPY in nf_state.c). A
 * vector under cell locks (nf_parallel.c) is copied in atomic words: a reader pass may copy a cell
 * while another core's pass writes it under its cell lock, and it then retries
 * (nf_par_vector_borrow); plain copies would be a data race. Loads acquire and stores release, so
 * that a copy that saw part of a write also sees the cell's lock taken when it looks at the version
 * next (plain moves on x86). Other vectors change only under the write lock: memcpy. */
#define NF_CELL_OBJECTS 256 /* object ids whose vectors may go under cell locks */
extern bool nf_par_cell_locked[NF_CELL_OBJECTS]; /* changed by writers only (no reader inside) */

#define NF_CELL_COPY_WORDS(type)                                                                             \
  for (; i + sizeof(type) <= size; i += sizeof(type))                                                        \
  __atomic_store_n((type *)(t + i), __atomic_load_n((const type *)(f + i), __ATOMIC_ACQUIRE), __ATOMIC_RELEASE)

static inline void nf_cell_copy(void *to, const void *from, size_t size) {
  uint8_t *t = to;
  const uint8_t *f = from;
  uintptr_t align = (uintptr_t)t | (uintptr_t)f;
  size_t i = 0;
  if ((align & 7) == 0) NF_CELL_COPY_WORDS(uint64_t);
  if ((align & 3) == 0) NF_CELL_COPY_WORDS(uint32_t);
  if ((align & 1) == 0) NF_CELL_COPY_WORDS(uint16_t);
  NF_CELL_COPY_WORDS(uint8_t);
}

#define NF_CELL_COPY(object, to, from, size)                                                                 \
  (((object)->id < NF_CELL_OBJECTS && nf_par_cell_locked[(object)->id]) ? nf_cell_copy(to, from, size)        \
                                                                         : (void)memcpy(to, from, size))
#endif

/* A frame's bytes in 16-byte moves, the last one overlapping: the reader passes of locks, tm and
 * replicated builds copy every frame first, and for the short frames of most packets this costs
 * less than a call to memcpy, whose wide loads wait for the frame the driver has just written. */
static inline void nf_copy_frame(uint8_t *to, const uint8_t *from, uint16_t len) {
  if (len < 16) {
    memcpy(to, from, len);
    return;
  }
  size_t i = 0;
  for (; i + 16 <= len; i += 16) __builtin_memcpy(to + i, from + i, 16);
  if (i < len) __builtin_memcpy(to + len - 16, from + len - 16, 16);
}

#include "nf_pool.h" /* sn with sharding by allocation: per-core pools */

/* sn with replicated objects that packets write: broadcast writes (nf_replica.h). */
#ifndef NF_REPLICAS
#define NF_REPLICAS 0
#endif
#if NF_STRATEGY == NF_STRATEGY_SN && NF_REPLICAS > 0
#include "nf_replica.h"
#endif

#endif /* NF_PARALLEL_H */
