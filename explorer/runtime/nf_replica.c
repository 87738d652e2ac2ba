/*
 * nf_replica.c: sequenced, broadcast writes to replicated objects (see nf_replica.h).
 *
 * Compiled into every generated project; it does something only in shared-nothing builds with
 * replicated objects that packets write (NF_REPLICAS > 0 in nf_plan.h).
 *
 * Why the replicas stay equal. Every change to a replicated object happens in a writer pass,
 * under one lock, and is recorded as the state-library call that made it (a delta). Writers take
 * the lock one at a time and number their deltas 1, 2, 3, ...; each core applies the deltas in
 * that order and a writer first applies every earlier one, so before delta n every replica is
 * in the same state, and replaying the same calls (with the same times) gives the same result:
 * the same index allocated, the same entries expired. Applying checks that (an allocated index,
 * an expired count); a difference stops the program instead of letting replicas drift apart.
 *
 * Why a pass may abort. A reader pass may change sharded objects (its core owns them) but not a
 * replicated one: the state library calls nf_rep_write_hook before every change, which aborts
 * the pass for a replicated object (longjmp, before the change). The analysis only replicates
 * objects of NFs where nothing but expiry changes a sharded object before a replicated one, so
 * running the packet again from its original bytes repeats nothing (expiry at the same time
 * finds nothing left to expire).
 *
 * Why a pass may run later than its packet's time. The sequential NF assumes time never goes back
 * (a policer's `now - last`, a dchain's age order), but a core that is behind may apply a write of
 * a core that is ahead. Each core keeps the latest time its state holds (its own passes and the
 * deltas it applied) and runs a pass at that time when the packet's own is earlier; a writer,
 * having applied every earlier delta, so never writes at a time before an earlier write's.
 */
/* rte_ring with C11 acquire/release (x86 defaults to plain stores and compiler barriers, which are
 * correct there but invisible to ThreadSanitizer): a delta's bytes happen before its dequeue. */
#define RTE_USE_C11_MEM_MODEL 1

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "nf_parallel.h"
#include "nf_runtime.h"

#if NF_STRATEGY == NF_STRATEGY_SN && NF_REPLICAS > 0

#define NF_REP_MAX_OBJECTS 64
#define NF_REP_RING_SIZE 1024        /* deltas in flight to one core */
#define NF_REP_DELTA_BYTES 65536     /* the largest delta one packet may write */

static const unsigned replicated_ordinals[] = NF_REPLICATED_ORDINALS;

enum kind { KIND_MAP, KIND_VECTOR, KIND_DCHAIN, KIND_SKETCH, KIND_CHT };
enum op {
  OP_MAP_PUT = 1, OP_MAP_ERASE, OP_VECTOR_SET, OP_DCHAIN_ALLOCATE, OP_DCHAIN_REJUVENATE, OP_DCHAIN_FREE,
  OP_EXPIRE, OP_EXPIRE2, OP_SKETCH_TOUCH, OP_SKETCH_EXPIRE
};

struct object {
  void *handle;
  enum kind kind;
  size_t size; /* key size (map, sketch) or cell size (vector) */
  bool replicated;
};

/* ---- this core's objects --------------------------------------------------------------------- */

static _Thread_local struct object objects[NF_REP_MAX_OBJECTS];
static _Thread_local unsigned object_count;
_Thread_local uint32_t nf_rep_first_id; /* state-library number of this core's object 0 */
_Thread_local uint64_t nf_rep_replicated;
_Thread_local enum nf_rep_mode nf_rep_mode;
/* GCC's own setjmp: it saves a frame, a stack pointer and a label (the function that calls it saves
 * every callee-saved register), a fraction of glibc's setjmp, which every packet pays for. */
static _Thread_local void *abort_point[5];
static _Thread_local uint32_t abort_ordinal;
static _Thread_local nf_time_t core_clock; /* the latest time this core's state holds */

static inline nf_time_t not_before_clock(nf_time_t now) { return now < core_clock ? core_clock : now; }

/* An object's ordinal: its allocation order in this core's nf_init (the library numbers objects in
 * allocation order over the whole process, and cores run nf_init one after the other). */
static unsigned ordinal_of(const void *handle) {
  uint32_t k = nf_object_id(handle) - nf_rep_first_id;
  if (k >= object_count || objects[k].handle != handle)
    nf_runtime_fatal("a state object that this core's nf_init did not allocate");
  return k;
}

static void add_object(void *handle, enum kind kind, size_t size) {
  uint32_t k = nf_object_id(handle) - nf_rep_first_id;
  if (k >= NF_REP_MAX_OBJECTS) nf_runtime_fatal("more than %d state objects", NF_REP_MAX_OBJECTS);
  if (k + 1 > object_count) object_count = k + 1; /* objects other runtimes allocate leave gaps */
  bool replicated = false;
  for (size_t i = 0; i < sizeof replicated_ordinals / sizeof replicated_ordinals[0]; i++)
    replicated |= replicated_ordinals[i] == k;
  objects[k] = (struct object){handle, kind, size, replicated};
  if (replicated) nf_rep_replicated |= UINT64_C(1) << k;
}

bool nf_rep_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out) {
  if (!nf_map_allocate(key_size, capacity, map_out)) return false;
  add_object(*map_out, KIND_MAP, key_size);
  return true;
}

bool nf_rep_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out) {
  if (!nf_vector_allocate(elem_size, capacity, vector_out)) return false;
  add_object(*vector_out, KIND_VECTOR, elem_size);
  return true;
}

bool nf_rep_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out) {
  if (!nf_dchain_allocate(index_range, chain_out)) return false;
  add_object(*chain_out, KIND_DCHAIN, 0);
  return true;
}

bool nf_rep_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out) {
  if (!nf_sketch_allocate(key_size, width, sketch_out)) return false;
  add_object(*sketch_out, KIND_SKETCH, key_size);
  return true;
}

bool nf_rep_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out) {
  if (!nf_cht_allocate(height, backend_capacity, cht_out)) return false;
  add_object(*cht_out, KIND_CHT, 0);
  return true;
}

/* ---- the delta a writer pass records ----------------------------------------------------------- */

struct delta {
  uint64_t seq;
  nf_time_t time; /* its writer pass ran at */
  uint32_t refs; /* cores that have not applied it yet */
  uint32_t size;
  uint8_t bytes[];
};

static _Thread_local uint8_t recording[NF_REP_DELTA_BYTES];
static _Thread_local uint32_t recorded;

static bool recorded_object(const void *handle, unsigned *ordinal) {
  if (nf_rep_mode != NF_REP_WRITE) return false;
  *ordinal = ordinal_of(handle);
  return objects[*ordinal].replicated;
}

static void put(const void *data, size_t size) {
  if (recorded + size > NF_REP_DELTA_BYTES)
    nf_runtime_fatal("one packet changed replicated objects by more than %d bytes", NF_REP_DELTA_BYTES);
  memcpy(recording + recorded, data, size);
  recorded += (uint32_t)size;
}

static void put_u8(uint8_t v) { put(&v, 1); }
static void put_u16(uint16_t v) { put(&v, 2); }
static void put_i32(int32_t v) { put(&v, 4); }
static void put_u64(uint64_t v) { put(&v, 8); }

static void begin_op(enum op op, unsigned ordinal) {
  put_u8((uint8_t)op);
  put_u16((uint16_t)ordinal);
}

void nf_rep_record_map_put(struct nf_map *map, const void *key, int value) {
  unsigned k;
  if (recorded_object(map, &k)) {
    begin_op(OP_MAP_PUT, k);
    put(key, objects[k].size);
    put_i32(value);
  }
}

void nf_rep_record_map_erase(struct nf_map *map, const void *key) {
  unsigned k;
  if (recorded_object(map, &k)) {
    begin_op(OP_MAP_ERASE, k);
    put(key, objects[k].size);
  }
}

void nf_rep_record_vector_set(struct nf_vector *vector, int index, const void *cell) {
  unsigned k;
  if (recorded_object(vector, &k)) {
    begin_op(OP_VECTOR_SET, k);
    put_i32(index);
    put(cell, objects[k].size);
  }
}

void nf_rep_record_allocate(struct nf_dchain *chain, bool ok, int index, nf_time_t now) {
  unsigned k;
  if (recorded_object(chain, &k)) {
    begin_op(OP_DCHAIN_ALLOCATE, k);
    put_u64(now);
    put_u8(ok);
    put_i32(ok ? index : -1);
  }
}

void nf_rep_record_rejuvenate(struct nf_dchain *chain, int index, nf_time_t now) {
  unsigned k;
  if (recorded_object(chain, &k)) {
    begin_op(OP_DCHAIN_REJUVENATE, k);
    put_i32(index);
    put_u64(now);
  }
}

void nf_rep_record_free(struct nf_dchain *chain, int index) {
  unsigned k;
  if (recorded_object(chain, &k)) {
    begin_op(OP_DCHAIN_FREE, k);
    put_i32(index);
  }
}

void nf_rep_record_expire(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                          struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time, int count) {
  unsigned k;
  if (!recorded_object(chain, &k)) return;
  begin_op(keys_b == NULL ? OP_EXPIRE : OP_EXPIRE2, k);
  put_u16((uint16_t)ordinal_of(keys_a));
  put_u16((uint16_t)ordinal_of(map_a));
  if (keys_b != NULL) {
    put_u16((uint16_t)ordinal_of(keys_b));
    put_u16((uint16_t)ordinal_of(map_b));
  }
  put_u64(time);
  put_i32(count);
}

void nf_rep_record_sketch_touch(struct nf_sketch *sketch, const void *key, nf_time_t now) {
  unsigned k;
  if (recorded_object(sketch, &k)) {
    begin_op(OP_SKETCH_TOUCH, k);
    put(key, objects[k].size);
    put_u64(now);
  }
}

void nf_rep_record_sketch_expire(struct nf_sketch *sketch, nf_time_t time) {
  unsigned k;
  if (recorded_object(sketch, &k)) {
    begin_op(OP_SKETCH_EXPIRE, k);
    put_u64(time);
  }
}

/* ---- applying a delta ------------------------------------------------------------------------ */

struct reader {
  const uint8_t *at, *end;
  uint64_t seq;
};

static const void *take(struct reader *r, size_t size) {
  if ((size_t)(r->end - r->at) < size) nf_runtime_fatal("write #%" PRIu64 ": a truncated delta", r->seq);
  const void *p = r->at;
  r->at += size;
  return p;
}

static uint8_t take_u8(struct reader *r) { return *(const uint8_t *)take(r, 1); }
static uint16_t take_u16(struct reader *r) { uint16_t v; memcpy(&v, take(r, 2), 2); return v; }
static int32_t take_i32(struct reader *r) { int32_t v; memcpy(&v, take(r, 4), 4); return v; }
static uint64_t take_u64(struct reader *r) { uint64_t v; memcpy(&v, take(r, 8), 8); return v; }

static struct object *object_at(struct reader *r, uint16_t ordinal, enum kind kind) {
  if (ordinal >= object_count || objects[ordinal].handle == NULL || objects[ordinal].kind != kind)
    nf_runtime_fatal("write #%" PRIu64 ": object #%u is not what the delta says", r->seq, ordinal);
  return &objects[ordinal];
}

static void diverged(struct reader *r, const char *what, long long want, long long got) {
  nf_runtime_fatal("write #%" PRIu64 ": core %u's replica diverged: %s gave %lld, the writer's %lld", r->seq,
                   nf_core, what, got, want);
}

static void apply(const struct delta *d) {
  struct reader r = {d->bytes, d->bytes + d->size, d->seq};
  while (r.at < r.end) {
    enum op op = (enum op)take_u8(&r);
    uint16_t ordinal = take_u16(&r);
    switch (op) {
      case OP_MAP_PUT: {
        struct object *o = object_at(&r, ordinal, KIND_MAP);
        const void *key = take(&r, o->size);
        nf_map_put(o->handle, key, take_i32(&r));
        break;
      }
      case OP_MAP_ERASE: {
        struct object *o = object_at(&r, ordinal, KIND_MAP);
        nf_map_erase(o->handle, take(&r, o->size));
        break;
      }
      case OP_VECTOR_SET: {
        struct object *o = object_at(&r, ordinal, KIND_VECTOR);
        int index = take_i32(&r);
        const void *content = take(&r, o->size);
        void *cell = nf_vector_borrow(o->handle, index);
        memcpy(cell, content, o->size);
        nf_vector_return(o->handle, index, cell);
        break;
      }
      case OP_DCHAIN_ALLOCATE: {
        struct object *o = object_at(&r, ordinal, KIND_DCHAIN);
        nf_time_t now = take_u64(&r);
        bool ok = take_u8(&r);
        int want = take_i32(&r), got = -1;
        bool done = nf_dchain_allocate_new_index(o->handle, &got, now);
        if (done != ok || (ok && got != want)) diverged(&r, "nf_dchain_allocate_new_index", want, done ? got : -1);
        break;
      }
      case OP_DCHAIN_REJUVENATE: {
        struct object *o = object_at(&r, ordinal, KIND_DCHAIN);
        int index = take_i32(&r);
        if (!nf_dchain_rejuvenate_index(o->handle, index, take_u64(&r)))
          diverged(&r, "nf_dchain_rejuvenate_index", 1, 0);
        break;
      }
      case OP_DCHAIN_FREE: {
        struct object *o = object_at(&r, ordinal, KIND_DCHAIN);
        if (!nf_dchain_free_index(o->handle, take_i32(&r))) diverged(&r, "nf_dchain_free_index", 1, 0);
        break;
      }
      case OP_EXPIRE: {
        struct object *chain = object_at(&r, ordinal, KIND_DCHAIN);
        struct object *keys = object_at(&r, take_u16(&r), KIND_VECTOR);
        struct object *map = object_at(&r, take_u16(&r), KIND_MAP);
        nf_time_t time = take_u64(&r);
        int want = take_i32(&r);
        int got = nf_expire_items(chain->handle, keys->handle, map->handle, time);
        if (got != want) diverged(&r, "nf_expire_items", want, got);
        break;
      }
      case OP_EXPIRE2: {
        struct object *chain = object_at(&r, ordinal, KIND_DCHAIN);
        struct object *keys_a = object_at(&r, take_u16(&r), KIND_VECTOR);
        struct object *map_a = object_at(&r, take_u16(&r), KIND_MAP);
        struct object *keys_b = object_at(&r, take_u16(&r), KIND_VECTOR);
        struct object *map_b = object_at(&r, take_u16(&r), KIND_MAP);
        nf_time_t time = take_u64(&r);
        int want = take_i32(&r);
        int got = nf_expire_items2(chain->handle, keys_a->handle, map_a->handle, keys_b->handle, map_b->handle, time);
        if (got != want) diverged(&r, "nf_expire_items2", want, got);
        break;
      }
      case OP_SKETCH_TOUCH: {
        struct object *o = object_at(&r, ordinal, KIND_SKETCH);
        const void *key = take(&r, o->size);
        nf_sketch_touch(o->handle, key, take_u64(&r));
        break;
      }
      case OP_SKETCH_EXPIRE: {
        struct object *o = object_at(&r, ordinal, KIND_SKETCH);
        nf_sketch_expire(o->handle, take_u64(&r));
        break;
      }
      default:
        nf_runtime_fatal("write #%" PRIu64 ": unknown operation %d in a delta", d->seq, (int)op);
    }
  }
}

/* ---- the cores ---------------------------------------------------------------------------------- */

struct core_state {
  struct rte_ring *ring;  /* deltas for this core, in sequence order */
  uint64_t applied;       /* the last delta this core applied (atomic) */
  uint32_t in_burst;      /* processing a burst (atomic): a strict writer waits for it */
  struct nf_rep_stats stats;
} __attribute__((aligned(64)));

static struct core_state cores[NF_CORES];
static uint32_t writer_lock __attribute__((aligned(64)));
static uint64_t last_seq; /* under writer_lock */
/* The last write handed to the rings. With in_burst it forms Dekker's pattern (each side stores,
 * then loads the other's variable, all sequentially consistent): a strict writer that finds a core
 * between bursts can leave it, since that core then sees the write at its next burst. */
static uint64_t published __attribute__((aligned(64)));
static _Thread_local bool bursting;

void nf_rep_init(void) {
  for (unsigned c = 0; c < NF_CORES && NF_CORES > 1; c++) {
    char name[32];
    snprintf(name, sizeof name, "nfx_rep_%u", c);
    cores[c].ring = rte_ring_create(name, NF_REP_RING_SIZE, SOCKET_ID_ANY, RING_F_SC_DEQ);
    if (cores[c].ring == NULL) nf_runtime_fatal("cannot create the write ring of core %u", c);
  }
}

void nf_rep_init_core(unsigned core) {
  (void)core;
  object_count = 0;
  nf_rep_first_id = nf_next_object_id(); /* this core's nf_init allocates from here */
  nf_rep_replicated = 0;
  nf_rep_mode = NF_REP_OFF;
}

void nf_rep_stats(unsigned core, struct nf_rep_stats *out) {
  out->writes = __atomic_load_n(&cores[core].stats.writes, __ATOMIC_RELAXED);
  out->applied = __atomic_load_n(&cores[core].stats.applied, __ATOMIC_RELAXED);
  out->waited_ns = __atomic_load_n(&cores[core].stats.waited_ns, __ATOMIC_RELAXED);
}

static void relax(unsigned *spins) {
  if (++*spins < 1024) {
    rte_pause();
  } else {
    *spins = 0;
    sched_yield();
  }
}

/* Apply every delta in this core's ring, in order. */
static void drain(void) {
  if (NF_CORES == 1) return;
  struct core_state *me = &cores[nf_core];
  void *item;
  while (rte_ring_dequeue(me->ring, &item) == 0) {
    struct delta *d = item;
    enum nf_rep_mode was = nf_rep_mode;
    nf_rep_mode = NF_REP_APPLY;
    apply(d);
    nf_rep_mode = was;
    core_clock = not_before_clock(d->time);
    __atomic_store_n(&me->applied, d->seq, __ATOMIC_RELEASE);
    __atomic_store_n(&me->stats.applied, me->stats.applied + 1, __ATOMIC_RELAXED);
    if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) free(d);
  }
}

static void lock_writers(void) {
  unsigned spins = 0;
  while (__atomic_exchange_n(&writer_lock, 1, __ATOMIC_ACQUIRE)) {
    drain(); /* a strict writer may be waiting for this core */
    relax(&spins);
  }
}

static void unlock_writers(void) { __atomic_store_n(&writer_lock, 0, __ATOMIC_RELEASE); }

/* Under writer_lock: number the recorded delta and hand it to every other core. */
static uint64_t publish(nf_time_t time) {
  uint64_t seq = ++last_seq;
  if (NF_CORES == 1) { /* no other core to hand it to; the writer's copy holds it, as below */
    __atomic_store_n(&cores[nf_core].applied, seq, __ATOMIC_RELEASE);
    __atomic_store_n(&published, seq, __ATOMIC_SEQ_CST);
    return seq;
  }
  struct delta *d = malloc(sizeof *d + recorded);
  if (d == NULL) nf_runtime_fatal("out of memory for a write's delta");
  d->seq = seq;
  d->time = time;
  d->refs = NF_CORES - 1;
  d->size = recorded;
  memcpy(d->bytes, recording, recorded);
  for (unsigned c = 0; c < NF_CORES; c++) {
    if (c == nf_core) continue;
#ifdef NF_TEST_FAULT_LOSE_WRITES /* tests: the checker must notice replicas that miss writes */
    if (seq % 2 == 0) {
      if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) free(d);
      continue;
    }
#endif
    unsigned spins = 0;
    while (rte_ring_enqueue(cores[c].ring, d) != 0) relax(&spins); /* full: core c drains at its next burst */
  }
  __atomic_store_n(&cores[nf_core].applied, seq, __ATOMIC_RELEASE);
  __atomic_store_n(&published, seq, __ATOMIC_SEQ_CST);
  return seq;
}

/* Strict: until every other core applied `seq` or is between bursts (then it applies it before its
 * next packet: it marks itself in a burst, then drains; we published, then look). */
static void wait_for_replicas(uint64_t seq) {
  uint64_t start = rte_get_tsc_cycles();
  for (unsigned c = 0; c < NF_CORES; c++) {
    if (c == nf_core) continue;
    unsigned spins = 0;
    while (__atomic_load_n(&cores[c].applied, __ATOMIC_ACQUIRE) < seq &&
           __atomic_load_n(&cores[c].in_burst, __ATOMIC_SEQ_CST))
      relax(&spins);
  }
  uint64_t waited = (rte_get_tsc_cycles() - start) * 1000000000ull / rte_get_tsc_hz();
  __atomic_store_n(&cores[nf_core].stats.waited_ns, cores[nf_core].stats.waited_ns + waited, __ATOMIC_RELAXED);
}

static void start_burst(void) {
  if (bursting) return;
  bursting = true;
  __atomic_store_n(&cores[nf_core].in_burst, 1, __ATOMIC_SEQ_CST);
  (void)__atomic_load_n(&published, __ATOMIC_SEQ_CST); /* every write published so far is in the ring */
  drain();
}

void nf_rep_quiesce(void) {
  if (nf_core >= NF_CORES || object_count == 0) return; /* not a worker, or before nf_init */
  drain();
  bursting = false;
  __atomic_store_n(&cores[nf_core].in_burst, 0, __ATOMIC_SEQ_CST);
}

void nf_rep_wait(void) {
#ifndef NF_TEST_FAULT_STRICT_NO_WAIT
  if (NF_REPLICATION == NF_REPLICATION_STRICT && nf_core < NF_CORES && object_count > 0) drain();
#endif
}

/* ---- passes -------------------------------------------------------------------------------------- */

void nf_rep_abort(uint32_t ordinal) {
  abort_ordinal = ordinal;
  __builtin_longjmp(abort_point, 1);
}

/* An aborted pass's borrowed cells go back uncommitted (the library hands out per-lcore slots). */
static void release_borrows(void) {
  for (unsigned k = 0; k < object_count; k++)
    if (objects[k].handle != NULL && objects[k].kind == KIND_VECTOR) nf_vector_release_all(objects[k].handle);
}

/* 1 when the reader pass completed with *verdict, 0 when it aborted. Nothing here is modified
 * between setjmp and the longjmp that returns to it. */
static int reader_pass(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, int *verdict) {
  if (__builtin_setjmp(abort_point) != 0) return 0;
  *verdict = nf_process(device, packet, len, now);
  return 1;
}

static _Thread_local uint8_t pristine[UINT16_MAX + 1];

void nf_rep_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out) {
  struct core_state *me = &cores[nf_core];
  if (nf_par_schedule_log) out->started = rte_get_tsc_cycles(); /* a replay's log: when writes complete */
  start_burst();
  nf_copy_frame(pristine, packet, len);
  out->ticket_begin = __atomic_load_n(&me->applied, __ATOMIC_RELAXED);
  out->ticket_end = 0;
  now = core_clock = not_before_clock(now);
  out->now = now;
  nf_rep_mode = NF_REP_READ;
  int verdict;
  if (reader_pass(device, packet, len, now, &verdict)) {
    nf_rep_mode = NF_REP_OFF;
    out->verdict = verdict;
    out->ran = NF_RAN_ALONE;
    if (nf_par_schedule_log) out->finished = rte_get_tsc_cycles();
    return;
  }
  nf_rep_mode = NF_REP_OFF;
  out->abort_object = abort_ordinal;
  release_borrows();
  memcpy(packet, pristine, len);
  lock_writers();
  drain();
  now = core_clock = not_before_clock(now); /* not before any earlier write */
  out->now = now;
  recorded = 0;
  nf_rep_mode = NF_REP_WRITE;
  out->verdict = nf_process(device, packet, len, now);
  nf_rep_mode = NF_REP_OFF;
  if (recorded > 0) {
    uint64_t seq = publish(now);
    __atomic_store_n(&me->stats.writes, me->stats.writes + 1, __ATOMIC_RELAXED);
    out->ticket_end = seq;
#ifdef NF_TEST_FAULT_STRICT_NO_WAIT /* tests: a strict build that does not wait must be caught */
    if (NF_REPLICATION == NF_REPLICATION_STRICT && seq == 0) wait_for_replicas(seq);
#else
    if (NF_REPLICATION == NF_REPLICATION_STRICT) wait_for_replicas(seq);
#endif
  }
  out->ticket_begin = __atomic_load_n(&me->applied, __ATOMIC_RELAXED);
  unlock_writers();
  out->ran = NF_RAN_WRITE;
  if (nf_par_schedule_log) out->finished = rte_get_tsc_cycles();
}

#endif /* NF_STRATEGY == NF_STRATEGY_SN && NF_REPLICAS > 0 */
