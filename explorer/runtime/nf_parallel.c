/*
 * nf_parallel.c: software RSS, and running the NF under its strategy (see nf_parallel.h).
 *
 * locks and tm, in short. Each packet first runs as a reader. A reader pass may only read the
 * shared state; the state library calls nf_par_write_hook before any change, which aborts the
 * pass (longjmp back to nf_par_process). Two things that are not changes to shared state happen
 * inside a reader pass, each on this core's own memory:
 *   - borrowed vector cells are this lcore's slots (nf_state.c keeps slots per lcore, and commits
 *     a slot at nf_vector_return only when it differs from the cell, through its write hook, so a
 *     cell written through its pointer aborts the pass there); the pass remembers its borrows so
 *     that their slots are released, uncommitted, when it aborts;
 *   - refreshing a dchain index (nf_par_dchain_rejuvenate_index) records the new time, first in
 *     the pass's pending list, then, when the pass completes, in this core's table for the chain.
 *     The next writer merges every core's table into the chains (the latest time of each index)
 *     before it runs anything, so expiry never forgets a refresh.
 * One change to shared state may happen in a reader pass: writing a cell of a vector that is under
 * cell locks (see "vector cells written by reader passes" below).
 * An aborted packet is restored from its pristine bytes and rerun under the write lock; its
 * verdict is the rerun's. Reruns are combined (see br_combine): the core that holds the writer
 * flag runs every packet other cores have posted for a rerun, so under write-heavy traffic the
 * writes run back to back on one core instead of handing the lock and the state's cache lines
 * from core to core for each packet; and a core whose recent packets mostly write keeps the
 * writer flag to the end of its burst (see write_held). (locks keeps a core's reader token from one
 * pass to the next until a writer raises its flag or the driver calls nf_par_quiesce, so a
 * read-only packet costs no atomic write; tm takes DPDK's elided lock around every pass.)
 *
 * Serial order. A writer's critical section excludes every other section, so the run equals a
 * sequential run that takes the writers in their order and, between two writers, the readers
 * that ran between them. Readers between two writers read shared state and write only cells under
 * cell locks, whose rules make their time order (ties by ticket) agree with every conflict; their
 * refreshes reach the chains at the next writer as the latest time per index, which is what a
 * sequential run of them in time order leaves. With nf_par_schedule_log set, every section takes a ticket
 * from one counter on entry and on exit, from which that order can be rebuilt and checked.
 */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_flow.h>
#include <rte_pause.h>
#include <rte_rwlock.h>
#include <rte_thash.h>

#include "nf_parallel.h"
#include "nf_runtime.h"

bool nf_par_schedule_log;
_Thread_local unsigned nf_core;

/* ---- software RSS ------------------------------------------------------------------------- */

static unsigned append(uint8_t *input, unsigned at, const void *field, unsigned size) {
  memcpy(input + at, field, size); /* header fields are big-endian, as the NIC hashes them */
  return at + size;
}

uint32_t nf_rss_hash(const struct nf_device_plan *plan, uint8_t *packet, uint16_t len) {
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return 0;
  uint32_t fields = plan->fields;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) fields = plan->portless_fields;
  uint8_t input[12] = {0};
  unsigned size = 0;
  if (fields & NF_FIELD_SRC_IP) size = append(input, size, &ip->src_addr, 4);
  if (fields & NF_FIELD_DST_IP) size = append(input, size, &ip->dst_addr, 4);
  if (fields & NF_FIELD_SRC_PORT) size = append(input, size, &l4->src_port, 2);
  if (fields & NF_FIELD_DST_PORT) size = append(input, size, &l4->dst_port, 2);
  if (size == 0) return 0;
  /* rte_softrss takes 32-bit words in host order, first input bit in bit 31 of word 0; the zero
   * padding of a last half word adds nothing to a Toeplitz hash. */
  uint32_t words[3];
  unsigned count = (size + 3) / 4;
  for (unsigned i = 0; i < count; i++)
    words[i] = (uint32_t)input[4 * i] << 24 | (uint32_t)input[4 * i + 1] << 16 | (uint32_t)input[4 * i + 2] << 8 |
               input[4 * i + 3];
  return rte_softrss(words, count, plan->key);
}

unsigned nf_rss_core(uint16_t device, uint8_t *packet, uint16_t len, uint32_t *hash_out) {
  const struct nf_device_plan *plan = &nf_device_plans[device];
  uint32_t hash = nf_rss_hash(plan, packet, len);
  if (hash_out != NULL) *hash_out = hash;
  return plan->reta[hash & (NF_RETA_SIZE - 1)];
}

/* Microsoft's "Verifying the RSS hash calculation" vectors (their key, IPv4 with and without
 * ports; the table lists the destination first, the hash input is still source first). */
static const uint8_t ms_key[40] __attribute__((aligned(8))) = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

static const struct {
  uint32_t src, dst;
  uint16_t sport, dport;
  uint32_t ipv4, ipv4_ports;
} ms_vectors[] = {
    {NF_IPV4(66, 9, 149, 187), NF_IPV4(161, 142, 100, 80), 2794, 1766, 0x323e8fc2u, 0x51ccc178u},
    {NF_IPV4(199, 92, 111, 2), NF_IPV4(65, 69, 140, 83), 14230, 4739, 0xd718262au, 0xc626b0eau},
};

int nf_rss_self_test(char *why, size_t size) {
  for (size_t i = 0; i < sizeof ms_vectors / sizeof ms_vectors[0]; i++) {
    uint32_t tuple[3] = {ms_vectors[i].src, ms_vectors[i].dst,
                         (uint32_t)ms_vectors[i].sport << 16 | ms_vectors[i].dport};
    uint32_t l3 = rte_softrss(tuple, 2, ms_key), l4 = rte_softrss(tuple, 3, ms_key);
    if (l3 != ms_vectors[i].ipv4 || l4 != ms_vectors[i].ipv4_ports) {
      snprintf(why, size, "vector %zu: IPv4 0x%08" PRIx32 " (expected 0x%08" PRIx32 "), with ports 0x%08" PRIx32
               " (expected 0x%08" PRIx32 ")", i, l3, ms_vectors[i].ipv4, l4, ms_vectors[i].ipv4_ports);
      return -1;
    }
  }
  return 0;
}

void nf_flow_rss_rule(const struct nf_flow_rule *rule, struct rte_flow_attr *attr, struct rte_flow_item *pattern,
                      struct rte_flow_action *actions, struct rte_flow_action_rss *rss) {
  memset(attr, 0, sizeof *attr);
  attr->ingress = 1;
  memset(pattern, 0, NF_FLOW_ITEMS * sizeof *pattern);
  unsigned items = 0;
  pattern[items++].type = RTE_FLOW_ITEM_TYPE_ETH;
  pattern[items++].type = RTE_FLOW_ITEM_TYPE_IPV4;
  if (rule->pattern == NF_PATTERN_IPV4_TCP) pattern[items++].type = RTE_FLOW_ITEM_TYPE_TCP;
  if (rule->pattern == NF_PATTERN_IPV4_UDP) pattern[items++].type = RTE_FLOW_ITEM_TYPE_UDP;
  pattern[items].type = RTE_FLOW_ITEM_TYPE_END;
  memset(rss, 0, sizeof *rss);
  rss->func = RTE_ETH_HASH_FUNCTION_TOEPLITZ;
  rss->level = 0;
  rss->types = rule->types;
#ifdef NF_TEST_FAULT_FLOW_KEY /* tests: the rule nfx used to build, with the key in the action */
  static const uint8_t fault_key[NF_KEY_BYTES];
  rss->key_len = NF_KEY_BYTES;
  rss->key = fault_key;
#endif
  memset(actions, 0, 2 * sizeof *actions);
  actions[0].type = RTE_FLOW_ACTION_TYPE_RSS;
  actions[0].conf = rss;
  actions[1].type = RTE_FLOW_ACTION_TYPE_END;
}

/* ---- seq and sn --------------------------------------------------------------------------- */

static _Thread_local bool capacity_hit;

bool nf_sn_allocate_new_index(struct nf_dchain *chain, int *index_out, nf_time_t now) {
  bool ok = nf_dchain_allocate_new_index(chain, index_out, now);
  if (!ok) capacity_hit = true;
  return ok;
}

#if NF_STRATEGY == NF_STRATEGY_LOCKS || NF_STRATEGY == NF_STRATEGY_TM
/* ---- locks and tm: objects the passes need to know ----------------------------------------- */

enum nf_mode { MODE_NONE, MODE_INIT, MODE_READ, MODE_CELL, MODE_WRITE }; /* MODE_CELL: a reader storing a cell it locked */

static _Thread_local enum nf_mode mode;
static bool cells_on; /* reader passes may write vector cells under cell locks (not under RTM) */
static _Thread_local void *abort_point[5]; /* GCC's setjmp (see nf_replica.c) */
static _Thread_local uint32_t abort_object;

#define NF_MAX_CHAINS 32
#define NF_PENDING_MAX 32 /* refreshes one reader pass may defer; more make it a writer */
#define NF_BORROW_MAX 32  /* cells one reader pass may hold at once */

/* One core's refreshes of one chain since the last writer: the latest time per index. */
struct fresh {
  nf_time_t *time;
  uint8_t *marked;
  uint32_t *dirty; /* the marked indices */
  uint32_t count;
} __attribute__((aligned(64)));

struct stamp {
  nf_time_t time;
  uint32_t index;
};

struct chain_entry {
  struct nf_dchain *chain;
  uint32_t id;
  uint32_t range;
  struct fresh core[NF_CORES];
  /* the writer's scratch space for merging */
  nf_time_t *merged;
  uint8_t *merged_mark;
  struct stamp *order;
};

static struct chain_entry chains[NF_MAX_CHAINS];
static unsigned chain_count;
static uint32_t objects_allocated; /* mirrors nf_state.c's allocation counter (object ids) */

static void *zeroed(size_t count, size_t size) {
  void *memory = calloc(count ? count : 1, size ? size : 1);
  if (memory == NULL) nf_runtime_fatal("out of memory for the per-core refresh tables");
  return memory;
}

/* The cell size of each vector by object id (0: not a vector). Vectors whose cells a pass could not
 * keep the old bytes of (NF_CELL_UNDO) never go under cell locks. */
static size_t vector_cells[NF_CELL_OBJECTS];

bool nf_par_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out) {
  if (!nf_vector_allocate(elem_size, capacity, vector_out)) return false;
  uint32_t id = nf_object_id(*vector_out);
  if (id < NF_CELL_OBJECTS) vector_cells[id] = elem_size;
  objects_allocated++;
  return true;
}

bool nf_par_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out) {
  if (!nf_dchain_allocate(index_range, chain_out)) return false;
  if (chain_count == NF_MAX_CHAINS) nf_runtime_fatal("more than %d dchains", NF_MAX_CHAINS);
  struct chain_entry *entry = &chains[chain_count++];
  entry->chain = *chain_out;
  entry->id = objects_allocated++;
  entry->range = index_range;
  for (unsigned c = 0; c < NF_CORES; c++) {
    entry->core[c].time = zeroed(index_range, sizeof(nf_time_t));
    entry->core[c].marked = zeroed(index_range, 1);
    entry->core[c].dirty = zeroed(index_range, sizeof(uint32_t));
  }
  entry->merged = zeroed(index_range, sizeof(nf_time_t));
  entry->merged_mark = zeroed(index_range, 1);
  entry->order = zeroed(index_range, sizeof(struct stamp));
  return true;
}

bool nf_par_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out) {
  if (!nf_map_allocate(key_size, capacity, map_out)) return false;
  objects_allocated++;
  return true;
}

bool nf_par_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out) {
  if (!nf_sketch_allocate(key_size, width, sketch_out)) return false;
  objects_allocated++;
  return true;
}

bool nf_par_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out) {
  if (!nf_cht_allocate(height, backend_capacity, cht_out)) return false;
  objects_allocated++;
  return true;
}

static struct chain_entry *chain_entry(const struct nf_dchain *chain) {
  for (unsigned i = 0; i < chain_count; i++)
    if (chains[i].chain == chain) return &chains[i];
  return NULL;
}

/* ---- locks and tm: this core's pass ------------------------------------------------------- */

struct borrow {
  struct nf_vector *vector;
  void *cell;
};

struct pending {
  struct chain_entry *entry;
  uint32_t index;
  nf_time_t time;
};

struct stripe;

/* A cell lock's version as a reader pass found it. */
struct cell_read {
  struct stripe *stripe;
  uint64_t version;
};

/* A cell a reader pass changed: its old bytes (at `undo` in the pass's undo buffer), and whether
 * this entry took the stripe's lock (from `version`), or the pass already held it. */
struct cell_write {
  struct stripe *stripe;
  uint64_t version;
  uint8_t *stored;
  uint32_t size, undo;
  bool locked_here;
};

#define NF_CELL_READS 64
#define NF_CELL_WRITES 16
#define NF_CELL_UNDO 4096 /* bytes of old cells one pass may keep; more make it a writer */

struct core_context {
  uint8_t pristine[NF_MAX_FRAME]; /* the packet before the reader pass */
  unsigned pending_count;
  struct pending pending[NF_PENDING_MAX];
  unsigned borrow_count;
  struct borrow borrow[NF_BORROW_MAX];
  unsigned read_count, write_count;
  uint32_t undo_used;
  uint32_t cell_request; /* a vector this core's pass tried to change a cell of (NF_NO_OBJECT: none) */
  struct cell_read reads[NF_CELL_READS];
  struct cell_write writes[NF_CELL_WRITES];
  uint8_t undo[NF_CELL_UNDO];
} __attribute__((aligned(64)));

static struct core_context contexts[NF_CORES];

static void abort_pass(uint32_t object) {
  abort_object = object;
  __builtin_longjmp(abort_point, 1);
}

void nf_par_write_hook(uint32_t object) {
  if (mode == MODE_READ) {
    if (cells_on && object < NF_CELL_OBJECTS && vector_cells[object] > 0 && vector_cells[object] <= NF_CELL_UNDO)
      __atomic_store_n(&contexts[nf_core].cell_request, object, __ATOMIC_RELAXED); /* a cell: for the next writer */
    abort_pass(object);
  }
  if (mode != MODE_WRITE && mode != MODE_INIT && mode != MODE_CELL)
    nf_runtime_fatal("object #%" PRIu32 " changed outside nf_init and nf_process", object);
}

bool nf_par_dchain_rejuvenate_index(struct nf_dchain *chain, int index, nf_time_t now) {
  if (mode != MODE_READ) return nf_dchain_rejuvenate_index(chain, index, now);
  if (!nf_dchain_is_index_allocated(chain, index)) return false;
  struct core_context *me = &contexts[nf_core];
  struct chain_entry *entry = chain_entry(chain);
  if (entry == NULL) nf_runtime_fatal("nf_dchain_rejuvenate_index: a dchain that nf_init did not allocate");
  if (me->pending_count == NF_PENDING_MAX) abort_pass(entry->id);
  me->pending[me->pending_count++] = (struct pending){entry, (uint32_t)index, now};
  return true;
}

static void begin_pass(struct core_context *me) {
  me->pending_count = 0;
  me->borrow_count = 0;
  me->read_count = me->write_count = 0;
  me->undo_used = 0;
}

/* A completed reader pass: its refreshes go to this core's tables. */
static void commit_pending(struct core_context *me) {
  for (unsigned i = 0; i < me->pending_count; i++) {
    struct pending *p = &me->pending[i];
    struct fresh *f = &p->entry->core[nf_core];
    f->time[p->index] = p->time;
    if (!f->marked[p->index]) {
      f->marked[p->index] = 1;
      f->dirty[f->count++] = p->index;
    }
  }
}

/* An aborted reader pass: give its slots back uncommitted (no write reaches the state). */
static void release_borrows(struct core_context *me) {
  while (me->borrow_count > 0) {
    struct borrow *b = &me->borrow[--me->borrow_count];
    nf_vector_release(b->vector, b->cell);
  }
}

static int by_time(const void *a, const void *b) {
  const struct stamp *x = a, *y = b;
  if (x->time != y->time) return x->time < y->time ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* locks and tm: the latest time the shared state holds (a writer's, or a refresh's merged by a
 * writer). Written under the write lock only; a pass reads it holding its lock (see
 * nf_par_process). */
static nf_time_t state_time __attribute__((aligned(64)));

static nf_time_t not_before_state(nf_time_t now) {
  nf_time_t held = __atomic_load_n(&state_time, __ATOMIC_RELAXED);
  return now < held ? held : now;
}

/* Under the write lock: apply every core's refreshes, the latest time per index, oldest first
 * (the age lists then insert at their end). */
static void merge_fresh_chains(void) {
  for (unsigned k = 0; k < chain_count; k++) {
    struct chain_entry *e = &chains[k];
    uint32_t n = 0;
    for (unsigned c = 0; c < NF_CORES; c++) {
      struct fresh *f = &e->core[c];
      for (uint32_t j = 0; j < f->count; j++) {
        uint32_t i = f->dirty[j];
        f->marked[i] = 0;
        if (!e->merged_mark[i]) {
          e->merged_mark[i] = 1;
          e->merged[i] = f->time[i];
          e->order[n++].index = i;
        } else if (f->time[i] > e->merged[i]) {
          e->merged[i] = f->time[i];
        }
      }
      f->count = 0;
    }
    for (uint32_t j = 0; j < n; j++) {
      e->order[j].time = e->merged[e->order[j].index];
      e->merged_mark[e->order[j].index] = 0;
    }
    qsort(e->order, n, sizeof e->order[0], by_time);
    for (uint32_t j = 0; j < n; j++) nf_dchain_rejuvenate_index(e->chain, (int)e->order[j].index, e->order[j].time);
    if (n > 0) __atomic_store_n(&state_time, not_before_state(e->order[n - 1].time), __ATOMIC_RELAXED);
  }
}

static void merge_fresh(void) {
  mode = MODE_WRITE; /* the chains change: a writer's doing */
  merge_fresh_chains();
  mode = MODE_NONE;
}

/* ---- locks and tm: the locks --------------------------------------------------------------- */

static uint64_t ticket_counter __attribute__((aligned(64)));

static uint64_t ticket(void) { return __atomic_fetch_add(&ticket_counter, 1, __ATOMIC_SEQ_CST); }

/* Spin politely: more lcores than CPUs (replays, tests) must not burn a whole time slice, and a
 * reader must not spin through the time slice of a writer preempted on its CPU. */
static void relax(unsigned *spins) {
  if (++*spins < 1024) {
    rte_pause();
  } else {
    *spins = 0;
    sched_yield();
  }
}

/* A big-reader lock: one cache line per core that only its reader writes, and a writer flag
 * that doubles as the writers' mutex. A reader announces itself, then checks for a writer
 * (Dekker's order: both sides store, then load, sequentially consistent); a writer takes the
 * flag, then waits until no reader is inside. Readers share no cache line that anyone writes
 * while no writer runs, so read-mostly traffic scales with the cores. */
struct token {
  uint32_t reading;
} __attribute__((aligned(64)));

static struct token tokens[NF_CORES];
static uint32_t writer __attribute__((aligned(64)));

static void br_read_lock(void) {
  struct token *me = &tokens[nf_core];
  unsigned spins = 0;
  for (;;) {
    __atomic_store_n(&me->reading, 1, __ATOMIC_SEQ_CST);
    if (!__atomic_load_n(&writer, __ATOMIC_SEQ_CST)) return;
    __atomic_store_n(&me->reading, 0, __ATOMIC_RELEASE);
    while (__atomic_load_n(&writer, __ATOMIC_ACQUIRE)) relax(&spins);
  }
}

static void br_read_unlock(void) { __atomic_store_n(&tokens[nf_core].reading, 0, __ATOMIC_RELEASE); }

static void br_write_unlock(void) { __atomic_store_n(&writer, 0, __ATOMIC_RELEASE); }

/* A core keeps its token from one reader pass to the next, so that a packet costs no atomic
 * store; it gives the token back when a writer has raised its flag (checked before every pass),
 * before its own write pass, and whenever the driver calls nf_par_quiesce (after every burst,
 * and when idle: a core that sits on its token would keep writers waiting). */
static _Thread_local bool token_held;

static void br_reader_enter(void) {
  if (token_held) {
    if (!__atomic_load_n(&writer, __ATOMIC_ACQUIRE)) return; /* no writer can have run meanwhile */
    br_read_unlock();
  }
  br_read_lock();
  token_held = true;
}

static void br_reader_leave(void) {
  if (token_held) br_read_unlock();
  token_held = false;
}

static void release_held(void); /* below: the writer flag a core kept to the end of its burst */

#if NF_STRATEGY == NF_STRATEGY_TM
/* tm: DPDK's lock elision where the CPU has RTM (rte_tm_supported()): every pass a hardware
 * transaction that takes the reader-writer lock only when transactions keep aborting, and one
 * transaction per pass (holding it across packets would make transactions long). Without RTM,
 * rte_rwlock_*_tm are a plain reader-writer lock whose shared counter every packet of every core
 * writes, which costs more on two cores than one core's whole work: tm then runs on the big-reader
 * lock, exactly as locks does (nf_par_init decides, once). DPDK's rte_rwlock_*_unlock_tm tell a
 * transaction from a held lock by reading the counter without an atomic load, which races with
 * readers' atomic updates (benign on x86, but a data race to ThreadSanitizer); the unlocks below
 * make the same decision with an atomic load. */
static rte_rwlock_t tm_lock = RTE_RWLOCK_INITIALIZER;
static bool elided; /* RTM: transactions around DPDK's rwlock; else the big-reader lock */

static bool tm_lock_taken(void) { return __atomic_load_n(&tm_lock.cnt, __ATOMIC_RELAXED) != 0; }

static void tm_end(bool write) {
  if (!tm_lock_taken())
    rte_xend();
  else if (write)
    rte_rwlock_write_unlock(&tm_lock);
  else
    rte_rwlock_read_unlock(&tm_lock);
}

static void choose_lock(void) {
  elided = rte_tm_supported();
  cells_on = !elided; /* a transaction covers the cells a pass writes */
}
static void reader_enter(void) { elided ? rte_rwlock_read_lock_tm(&tm_lock) : br_reader_enter(); }
static void pass_done(void) { if (elided) tm_end(false); }
static void reader_leave(void) { elided ? tm_end(false) : br_reader_leave(); }
void nf_par_quiesce(void) {
  if (!elided) {
    release_held();
    br_reader_leave();
  }
}
const char *nf_par_lock_name(void) { return elided ? "RTM elision over rte_rwlock" : "big-reader lock (no RTM)"; }
#else
static void choose_lock(void) { cells_on = true; }
static void reader_enter(void) { br_reader_enter(); }
static void pass_done(void) {}
static void reader_leave(void) { br_reader_leave(); }
void nf_par_quiesce(void) {
  release_held();
  br_reader_leave();
}
const char *nf_par_lock_name(void) { return "big-reader lock"; }
#endif

/* ---- locks and tm: vector cells written by reader passes ----------------------------------- */

/* Many NFs' commonest write changes one cell of a vector that the packet found (a policer's
 * bucket, a flow's counters), and such writes seldom meet: aborting each of them to the one write
 * lock made a write-heavy NF serial (pol on 2 cores ran at 0.8x its 1-core rate). So once a reader
 * pass has tried to change a cell of a vector, a writer puts that vector under cell locks
 * (optimistic, per stripe of cells): a reader pass notes the version of each such cell it borrows,
 * locks a cell it changes (keeping its old bytes), and at its end checks that nothing it read has
 * changed since; if something has, it undoes its writes and reruns. Everything else (maps,
 * allocation, expiry, other vectors) still takes the write lock.
 *
 * Time never goes back in the sequential NF, so a pass runs at or after the time of the last write
 * to each cell it uses (its stripe's stamp), and a pass that changes a cell runs at or after the
 * latest time another core's pass read it (that core's `seen` time); a pass that finds a later
 * time reruns at it. explorer.verify.equivalence orders the passes between two writers by time,
 * ties by ticket: with these rules that order agrees with every conflict. */
#define NF_STRIPE_BITS 12
#define NF_RERUNS 8         /* reruns before the write lock */
#define NF_RERUN (NF_NO_OBJECT - 1)
#ifdef NF_TEST_FAULT_NO_CELL_LOCK
#define CELL_LOCKS false /* a test build: cells written with no lock, no version check, no time rule */
#else
#define CELL_LOCKS true
#endif

struct stripe {
  uint64_t version; /* odd while a pass holds it */
  nf_time_t stamp;  /* the time of the last write to its cells */
} __attribute__((aligned(64)));

struct seen_time {
  nf_time_t time;
} __attribute__((aligned(64)));

static struct stripe stripes[1u << NF_STRIPE_BITS];
static struct seen_time seen[NF_CORES][1u << NF_STRIPE_BITS]; /* written by its core only */
static struct seen_time cell_time[NF_CORES];                    /* each core's latest cell write */
bool nf_par_cell_locked[NF_CELL_OBJECTS];
static _Thread_local nf_time_t pass_time; /* the time the current reader pass runs at */
static _Thread_local nf_time_t core_floor; /* no pass of this core runs before it */

static struct stripe *stripe_of(uint32_t object, int index) {
  uint64_t key = (uint64_t)object << 32 | (uint32_t)index;
  return &stripes[(key * 0x9E3779B97F4A7C15ull) >> (64 - NF_STRIPE_BITS)];
}

static void rerun(nf_time_t at) {
  if (at > core_floor) core_floor = at;
  abort_pass(NF_RERUN);
}

static bool holds(const struct core_context *me, const struct stripe *s) {
  for (unsigned i = 0; i < me->write_count; i++)
    if (me->writes[i].stripe == s && me->writes[i].locked_here) return true;
  return false;
}

/* The stripe's version once no other pass holds it. A pass that holds cells reruns instead of
 * waiting (two passes waiting for each other's cells would wait for ever). */
static uint64_t unlocked_version(const struct core_context *me, struct stripe *s) {
  unsigned spins = 0;
  for (;;) {
    uint64_t version = __atomic_load_n(&s->version, __ATOMIC_ACQUIRE);
    if (!(version & 1)) return version;
    if (me->write_count > 0) rerun(0);
    relax(&spins);
  }
}

static bool under_cell_locks(uint32_t object) { return object < NF_CELL_OBJECTS && nf_par_cell_locked[object]; }

void *nf_par_vector_borrow(struct nf_vector *vector, int index) {
  if (mode != MODE_READ) return nf_vector_borrow(vector, index); /* this lcore's slot: private even in a reader */
  struct core_context *me = &contexts[nf_core];
  if (me->borrow_count == NF_BORROW_MAX)
    nf_runtime_fatal("nf_vector_borrow: more than %d cells borrowed at once", NF_BORROW_MAX);
  uint32_t object = nf_object_id(vector);
  struct stripe *s = under_cell_locks(object) ? stripe_of(object, index) : NULL;
  uint64_t version = 0;
  if (s != NULL && (holds(me, s) || !CELL_LOCKS)) s = NULL; /* its cells are this pass's until it ends */
  if (s != NULL) {
    version = unlocked_version(me, s);
    nf_time_t stamp = __atomic_load_n(&s->stamp, __ATOMIC_RELAXED);
    if (stamp > pass_time) rerun(stamp);
  }
  void *cell = nf_vector_borrow(vector, index); /* its loads acquire: before the second look at the version */
  if (s != NULL) {
    bool torn = __atomic_load_n(&s->version, __ATOMIC_RELAXED) != version;
    if (torn || me->read_count == NF_CELL_READS) {
      nf_vector_release(vector, cell);
      if (torn) rerun(0);
      abort_pass(object);
    }
    me->reads[me->read_count++] = (struct cell_read){s, version};
  }
  me->borrow[me->borrow_count++] = (struct borrow){vector, cell};
  return cell;
}

/* Whether a cell's stored bytes equal `copy`: atomic loads, since another core's pass may be writing
 * them under the cell's lock (the caller then checks the version). */
static bool cell_equal(const uint8_t *stored, const uint8_t *copy, size_t size) {
  for (size_t i = 0; i < size; i++)
    if (__atomic_load_n(stored + i, __ATOMIC_ACQUIRE) != copy[i]) return false;
  return true;
}

/* A pass gives back a cell under cell locks. Unchanged, nothing happens (false). Changed, the pass
 * locks its stripe, unless it holds it already, from the version it read, and keeps the cell's old
 * bytes (true); a pass that would hold more than NF_CELL_WRITES cells or NF_CELL_UNDO bytes of
 * them goes to the write lock instead. */
static bool lock_cell(struct core_context *me, struct nf_vector *vector, uint32_t object, int index, const void *cell) {
  uint8_t *stored = nf_vector_cell(vector, index);
  for (unsigned i = 0; i < me->write_count; i++)
    if (me->writes[i].stored == stored) return true; /* its old bytes are kept already */
  struct stripe *s = stripe_of(object, index);
  size_t size = nf_vector_cell_size(vector);
  bool held = holds(me, s) || !CELL_LOCKS;
  uint64_t version = 0;
  if (!held) {
    bool found = false;
    for (unsigned i = 0; i < me->read_count; i++)
      if (me->reads[i].stripe == s) {
        if (found && me->reads[i].version != version) rerun(0); /* the pass saw two versions */
        version = me->reads[i].version;
        found = true;
      }
    if (!found) version = unlocked_version(me, s); /* a cell given back that was not borrowed here */
    bool same = cell_equal(stored, cell, size);
    if (__atomic_load_n(&s->version, __ATOMIC_RELAXED) != version) rerun(0);
    if (same) return false;
  } else if (memcmp(stored, cell, size) == 0) { /* this pass holds the stripe: no one else writes it */
    return false;
  }
  if (me->write_count == NF_CELL_WRITES || size > NF_CELL_UNDO - me->undo_used) abort_pass(object);
  if (!held) {
    uint64_t expected = version;
    if (!__atomic_compare_exchange_n(&s->version, &expected, version + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
      rerun(0);
  }
  memcpy(me->undo + me->undo_used, stored, size); /* as the version the pass read left it (locked now) */
  me->writes[me->write_count++] = (struct cell_write){s, version, stored, (uint32_t)size, me->undo_used, !held};
  me->undo_used += (uint32_t)size;
  if (!held) /* another core's pass read the cell at a later time: run after it */
    for (unsigned c = 0; c < NF_CORES; c++) {
      nf_time_t read = __atomic_load_n(&seen[c][s - stripes].time, __ATOMIC_SEQ_CST);
      if (c != nf_core && read > pass_time) rerun(read);
    }
  return true;
}

void nf_par_vector_return(struct nf_vector *vector, int index, void *cell) {
  if (mode != MODE_READ) {
    nf_vector_return(vector, index, cell);
    return;
  }
  struct core_context *me = &contexts[nf_core];
  uint32_t object = nf_object_id(vector);
  if (cells_on && under_cell_locks(object)) {
    if (lock_cell(me, vector, object, index, cell)) {
      mode = MODE_CELL;
      nf_vector_return(vector, index, cell);
      mode = MODE_READ;
    } else {
      nf_vector_release(vector, cell); /* unchanged (and another core may be writing the stored bytes) */
    }
  } else {
    nf_vector_return(vector, index, cell); /* a changed cell aborts the pass here (nf_par_write_hook) */
  }
  for (unsigned i = me->borrow_count; i-- > 0;)
    if (me->borrow[i].cell == cell && me->borrow[i].vector == vector) {
      me->borrow[i] = me->borrow[--me->borrow_count];
      break;
    }
}

/* The end of a reader pass: whether every cell it read still holds the version it read. */
static bool cells_valid(struct core_context *me) {
  if (!CELL_LOCKS) return true;
  /* First the time this pass read its cells at, for the passes that lock them later (lock_cell),
   * then their versions, both seq_cst: a pass that locks one of them after this check sees this
   * time, and one that locked it before makes the check fail. Cells this pass locked need neither. */
  for (unsigned i = 0; i < me->read_count; i++) {
    const struct cell_read *r = &me->reads[i];
    struct seen_time *mine = &seen[nf_core][r->stripe - stripes];
    if (!holds(me, r->stripe) && __atomic_load_n(&mine->time, __ATOMIC_RELAXED) < pass_time)
      __atomic_store_n(&mine->time, pass_time, __ATOMIC_SEQ_CST);
  }
  for (unsigned i = 0; i < me->read_count; i++) {
    const struct cell_read *r = &me->reads[i];
    if (!holds(me, r->stripe) && __atomic_load_n(&r->stripe->version, __ATOMIC_SEQ_CST) != r->version) return false;
  }
  return true;
}

static void commit_cells(struct core_context *me) {
  for (unsigned i = 0; i < me->write_count; i++) {
    struct cell_write *w = &me->writes[i];
    if (!w->locked_here) continue;
    if (__atomic_load_n(&w->stripe->stamp, __ATOMIC_RELAXED) < pass_time)
      __atomic_store_n(&w->stripe->stamp, pass_time, __ATOMIC_RELAXED);
    __atomic_store_n(&w->stripe->version, w->version + 2, __ATOMIC_RELEASE);
  }
  if (me->write_count > 0 && __atomic_load_n(&cell_time[nf_core].time, __ATOMIC_RELAXED) < pass_time)
    __atomic_store_n(&cell_time[nf_core].time, pass_time, __ATOMIC_RELEASE);
}

/* An aborted pass: the old bytes back, newest first, then the stripes unlocked (a version
 * further on, since a reader may have copied the cell while it was changed). */
static void undo_cells(struct core_context *me) {
  for (unsigned i = me->write_count; i-- > 0;) {
    struct cell_write *w = &me->writes[i];
    nf_cell_copy(w->stored, me->undo + w->undo, w->size);
  }
  for (unsigned i = 0; i < me->write_count; i++)
    if (me->writes[i].locked_here) __atomic_store_n(&me->writes[i].stripe->version, me->writes[i].version + 2, __ATOMIC_RELEASE);
  me->write_count = 0;
}

/* A writer (no reader inside): put the vectors whose cells passes tried to change under cell
 * locks, and run at or after every cell write. */
static nf_time_t writer_cells(nf_time_t now) {
  if (!cells_on) return now;
  for (unsigned c = 0; c < NF_CORES; c++) {
    uint32_t object = __atomic_exchange_n(&contexts[c].cell_request, NF_NO_OBJECT, __ATOMIC_RELAXED);
    if (object < NF_CELL_OBJECTS) nf_par_cell_locked[object] = true;
    nf_time_t t = __atomic_load_n(&cell_time[c].time, __ATOMIC_ACQUIRE);
    if (t > now) now = t;
  }
  return now;
}

/* 1 when the reader pass completed with *verdict, 0 when it aborted. Nothing here is modified
 * between setjmp and the longjmp that returns to it. */
static int reader_pass(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, int *verdict) {
  if (__builtin_setjmp(abort_point) != 0) return 0;
  *verdict = nf_process(device, packet, len, now);
  return 1;
}
#endif /* locks and tm */

#if NF_STRATEGY == NF_STRATEGY_LOCKS || NF_STRATEGY == NF_STRATEGY_TM
/* ---- locks and tm: writers ----------------------------------------------------------------- */

/* One packet under the write lock, on the calling core (the packet, its device and its time are
 * the requester's). */
static void write_section(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out) {
  if (nf_par_schedule_log) out->ticket_begin = ticket();
#ifdef NF_TEST_FAULT_NO_WRITE_LOCK
  rte_delay_us_block(20); /* stretch the unprotected section so that tests see the race it opens */
#endif
  now = writer_cells(not_before_state(now));
  __atomic_store_n(&state_time, now, __ATOMIC_RELAXED);
  out->now = now;
  mode = MODE_WRITE;
  out->verdict = nf_process(device, packet, len, now);
  mode = MODE_NONE;
  if (nf_par_schedule_log) out->ticket_end = ticket();
}

/* Flat combining on the big-reader lock. A writer posts its packet in its core's slot, then
 * either finds it served or takes the writer flag itself and serves every posted packet (its own
 * included) before it lets go: under write-heavy traffic one core runs the writes back to back
 * with the state in its cache, and the others hand over a packet instead of the lock. Each core
 * has at most one packet posted and waits for it, so every core's packets keep their order, and
 * the sections are serial (one writer flag), so the schedule stays a sequential one. */
#define SLOT_FREE 0
#define SLOT_POSTED 1
#define SLOT_SERVED 2
#define COMBINING_ROUNDS 4 /* scans for more posted packets before the combiner lets go */

struct slot {
  uint32_t state;
  uint16_t device, len;
  uint8_t *packet;
  nf_time_t now;
  struct nf_outcome *out;
} __attribute__((aligned(64)));

static struct slot slots[NF_CORES];

static void serve(struct slot *slot) {
  write_section(slot->device, slot->packet, slot->len, slot->now, slot->out);
  __atomic_store_n(&slot->state, SLOT_SERVED, __ATOMIC_RELEASE);
}

/* A core whose recent packets mostly write keeps the writer flag, once it has written, to the end
 * of its burst (nf_par_quiesce): its next packets run as writers at once, with no reader pass to
 * abort, and other cores' posted packets are served between them. Under write-heavy traffic the
 * flag then changes hands once per burst instead of once per packet; a read-mostly NF never reaches
 * the density (recent_writes), so its occasional write does not hold the other cores' readers. */
static _Thread_local bool write_held;
/* Whether each of this core's last 32 reader passes aborted to write or had to rerun (bit 0 the
 * latest). */
static _Thread_local uint32_t recent_writes;
#define HOLD_WHEN_WRITES 16 /* of the last 32 */

static void note_pass(bool wrote) { recent_writes = recent_writes << 1 | (wrote ? 1u : 0u); }

static void serve_posted(void) {
  for (unsigned c = 0; c < NF_CORES; c++)
    if (c != nf_core && __atomic_load_n(&slots[c].state, __ATOMIC_ACQUIRE) == SLOT_POSTED) serve(&slots[c]);
}

static void release_held(void) {
  if (!write_held) return;
  serve_posted();
  write_held = false;
  br_write_unlock();
}

static __rte_unused void br_combine(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now,
                                    struct nf_outcome *out) {
  struct slot *mine = &slots[nf_core];
  mine->device = device;
  mine->len = len;
  mine->packet = packet;
  mine->now = now;
  mine->out = out;
  __atomic_store_n(&mine->state, SLOT_POSTED, __ATOMIC_RELEASE);
  unsigned spins = 0;
  while (__atomic_load_n(&mine->state, __ATOMIC_ACQUIRE) != SLOT_SERVED) {
    if (__atomic_load_n(&writer, __ATOMIC_RELAXED) || __atomic_exchange_n(&writer, 1, __ATOMIC_SEQ_CST)) {
      relax(&spins);
      continue;
    }
    for (unsigned c = 0; c < NF_CORES; c++) /* the combiner: readers out first */
      while (__atomic_load_n(&tokens[c].reading, __ATOMIC_SEQ_CST)) relax(&spins);
    merge_fresh();
    for (unsigned round = 0; round < COMBINING_ROUNDS; round++) {
      bool served = false;
      for (unsigned c = 0; c < NF_CORES; c++)
        if (__atomic_load_n(&slots[c].state, __ATOMIC_ACQUIRE) == SLOT_POSTED) {
          serve(&slots[c]);
          served = true;
        }
      if (!served) break;
    }
    if (__builtin_popcount(recent_writes) >= HOLD_WHEN_WRITES)
      write_held = true; /* write-heavy: to the end of this burst (release_held) */
    else
      br_write_unlock();
  }
  __atomic_store_n(&mine->state, SLOT_FREE, __ATOMIC_RELAXED);
}

/* The write pass of one packet: combined on the big-reader lock, or in an RTM transaction (tm
 * with RTM), or, in the NF_TEST_FAULT_NO_WRITE_LOCK build, with no lock at all. */
static void run_writer(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out) {
#ifdef NF_TEST_FAULT_NO_WRITE_LOCK
  merge_fresh();
  write_section(device, packet, len, now, out);
#else
#if NF_STRATEGY == NF_STRATEGY_TM
  if (elided) {
    rte_rwlock_write_lock_tm(&tm_lock);
    merge_fresh();
    write_section(device, packet, len, now, out);
    tm_end(true);
    return;
  }
#endif
  br_combine(device, packet, len, now, out);
#endif
}
#endif /* locks and tm: writers */

/* ---- running packets ---------------------------------------------------------------------- */

#if NF_STRATEGY == NF_STRATEGY_SN && NF_REPLICAS > 0
void nf_par_quiesce(void) { nf_rep_quiesce(); } /* apply the writes other cores broadcast */
void nf_par_wait(void) { nf_rep_wait(); }
const char *nf_par_lock_name(void) { return "none (replicated objects: writes broadcast)"; }
#else
#if NF_STRATEGY == NF_STRATEGY_SEQ || NF_STRATEGY == NF_STRATEGY_SN
void nf_par_quiesce(void) {}
const char *nf_par_lock_name(void) { return "none"; }
void nf_par_wait(void) {}
#else
void nf_par_wait(void) { nf_par_quiesce(); } /* a waiting core must not hold what others wait for */
#endif
#endif

bool nf_par_init(void) {
#if NF_STRATEGY == NF_STRATEGY_SN
#if NF_REPLICAS > 0
  nf_rep_init();
#endif
  return true;
#elif NF_STRATEGY == NF_STRATEGY_SEQ
  nf_core = 0;
  return nf_init();
#else
  nf_core = 0;
  choose_lock();
  for (unsigned c = 0; c < NF_CORES; c++) contexts[c].cell_request = NF_NO_OBJECT;
  mode = MODE_INIT;
  bool ok = nf_init();
  mode = MODE_NONE;
  return ok;
#endif
}

bool nf_par_init_core(unsigned core) {
  if (core >= NF_CORES) nf_runtime_fatal("core %u: this build runs %d cores", core, NF_CORES);
  nf_core = core;
#if NF_STRATEGY == NF_STRATEGY_SN
#if NF_REPLICAS > 0
  nf_rep_init_core(core);
#endif
  return nf_init();
#else
  return true;
#endif
}

void nf_par_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out) {
  out->capacity_hit = 0;
  out->abort_object = NF_NO_OBJECT;
  out->ticket_begin = out->ticket_end = 0;
  out->started = out->finished = 0;
  out->now = now;
#if NF_STRATEGY == NF_STRATEGY_SN && NF_REPLICAS > 0
  capacity_hit = false;
  nf_rep_process(device, packet, len, now, out);
  out->capacity_hit = capacity_hit;
#elif NF_STRATEGY == NF_STRATEGY_SEQ || NF_STRATEGY == NF_STRATEGY_SN
  capacity_hit = false;
  out->verdict = nf_process(device, packet, len, now);
  out->capacity_hit = capacity_hit;
  out->ran = NF_RAN_ALONE;
#else
  if (write_held) { /* this core wrote earlier in this burst and kept the flag */
    serve_posted();
    write_section(device, packet, len, now, out);
    out->ran = NF_RAN_WRITE;
    return;
  }
  struct core_context *me = &contexts[nf_core];
  nf_copy_frame(me->pristine, packet, len);
  reader_enter();
  for (unsigned attempt = 0;; attempt++) {
    begin_pass(me);
    if (nf_par_schedule_log) out->ticket_begin = ticket();
    nf_time_t read_at = not_before_state(now); /* no writer runs while this core reads */
    pass_time = read_at > core_floor ? read_at : core_floor;
    out->now = pass_time;
    mode = MODE_READ;
    int verdict;
    if (reader_pass(device, packet, len, pass_time, &verdict)) {
      mode = MODE_NONE;
      if (nf_par_schedule_log) out->ticket_end = ticket(); /* the serial point: before the check */
      if (cells_valid(me)) {
        bool wrote = me->write_count > 0;
        commit_cells(me);
        note_pass(attempt > 0); /* a pass that had to rerun counts as a write (contention) */
        commit_pending(me);
        pass_done();
        out->verdict = verdict;
        out->ran = wrote ? NF_RAN_CELLS : NF_RAN_READ;
        return;
      }
      abort_object = NF_RERUN;
    }
    mode = MODE_NONE;
    undo_cells(me);
    release_borrows(me);
    memcpy(packet, me->pristine, len);
    /* Cells that the cores keep taking from each other (one counter for every packet) cost more
     * in reruns and moving cache lines than running the writes one after another: a core whose
     * recent passes mostly wrote or reran goes to the write lock at its first rerun, and keeps
     * the flag to the end of its burst (write_held). */
    if (abort_object != NF_RERUN || attempt == NF_RERUNS || __builtin_popcount(recent_writes) >= HOLD_WHEN_WRITES)
      break;
  }
  note_pass(true);
  out->abort_object = abort_object == NF_RERUN ? NF_NO_OBJECT : abort_object;
  reader_leave();
  run_writer(device, packet, len, now, out);
  out->ran = NF_RAN_WRITE;
#endif
}
