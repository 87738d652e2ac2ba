/*
 * nf_replica.h: replicated objects in a shared-nothing build (nf_replica.c).
 *
 * Every core runs nf_init and keeps its own copy (replica) of every object. Sharded objects are
 * kept apart by RSS, as in any sn build; a *replicated* object is one that packets of every core
 * read and that only rare packets write (a load balancer's heartbeats). A change to a replicated
 * object is a *write*; writes are sequenced and broadcast:
 *
 *   - a packet first runs as a reader on its core's replicas; the first change it would make to a
 *     replicated object (a put, a changed cell, an index allocated, refreshed or freed, an expiry
 *     that frees something) aborts the pass before anything changes (NF_WRITE_HOOK);
 *   - the packet then reruns as the writer: it takes the one writer lock, applies every write
 *     published before (its replicas are then current), runs from its original bytes, and records
 *     each change it makes to a replicated object (the call and its arguments: the delta);
 *   - the delta goes to every other core through that core's rte_ring; a core applies the deltas
 *     in its ring, in order, before its next burst (nf_par_quiesce, and the first packet of a
 *     burst), with no output. Deltas replay the same calls with the same times, so every replica
 *     makes the same changes: the same index allocated, the same entries expired;
 *   - NF_REPLICATION_STRICT: the writer keeps the lock until every core has applied its delta or
 *     is between bursts (it then applies it before its next packet). A packet that starts after a
 *     write completed sees it, on any core: the run equals a sequential run in the order writes
 *     completed.
 *   - NF_REPLICATION_LAGGED (the default): the writer does not wait. A core applies a write at its
 *     next burst boundary, so it may process up to one burst of packets without it (replication
 *     lag); every run still equals a sequential run in the order each core saw the writes.
 *
 * Objects are named by their allocation order in nf_init (the ordinal, StateObject.alloc_index),
 * which is the same on every core.
 */
#ifndef NF_REPLICA_H
#define NF_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nf.h"

#define NF_REPLICATION_LAGGED 0
#define NF_REPLICATION_STRICT 1

struct nf_outcome;

/* On the main lcore before the workers start: the rings and the writer lock. */
void nf_rep_init(void);
/* On each worker, before its nf_init: this core's object registry. */
void nf_rep_init_core(unsigned core);
/* One packet (see above). Sets verdict, ran (NF_RAN_ALONE, or NF_RAN_WRITE when it ran as the
 * writer), abort_object (the ordinal of the replicated object whose change made it a writer),
 * ticket_begin (the writes this core had applied when the packet ran: its epoch) and ticket_end
 * (the sequence number of the write it published, 0 when none). */
void nf_rep_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now, struct nf_outcome *out);
/* Between bursts: apply the writes other cores published, then mark this core as between bursts. */
void nf_rep_quiesce(void);
/* Waiting between two packets of a burst (a paced replay): strict applies writes, lagged does not. */
void nf_rep_wait(void);

/* Counters for the driver's statistics. */
struct nf_rep_stats {
  uint64_t writes;      /* writes this core published */
  uint64_t applied;     /* writes of other cores this core applied */
  uint64_t waited_ns;   /* strict: time spent waiting for the other cores */
};
void nf_rep_stats(unsigned core, struct nf_rep_stats *out);

/* The pass this core is in. The wrappers below are inline so that a reader pass, the common case,
 * costs the NF no more than its plain calls: only a writer pass records what it changes. */
enum nf_rep_mode { NF_REP_OFF, NF_REP_READ, NF_REP_WRITE, NF_REP_APPLY };
extern _Thread_local enum nf_rep_mode nf_rep_mode;
/* Replicated objects of this core, as bit (object id - nf_rep_first_id): what aborts a reader pass. */
extern _Thread_local uint64_t nf_rep_replicated;
extern _Thread_local uint32_t nf_rep_first_id;

/* Allocations register the object (the calls a replicated build rewrites the NF to make have the
 * meaning of nf.h's). */
bool nf_rep_map_allocate(size_t key_size, uint32_t capacity, struct nf_map **map_out);
bool nf_rep_vector_allocate(size_t elem_size, uint32_t capacity, struct nf_vector **vector_out);
bool nf_rep_dchain_allocate(uint32_t index_range, struct nf_dchain **chain_out);
bool nf_rep_sketch_allocate(size_t key_size, uint32_t width, struct nf_sketch **sketch_out);
bool nf_rep_cht_allocate(uint32_t height, uint32_t backend_capacity, struct nf_cht **cht_out);

/* A writer pass's record of one change (nf_replica.c): a no-op for an object that is not replicated. */
void nf_rep_record_map_put(struct nf_map *map, const void *key, int value);
void nf_rep_record_map_erase(struct nf_map *map, const void *key);
void nf_rep_record_vector_set(struct nf_vector *vector, int index, const void *cell);
void nf_rep_record_allocate(struct nf_dchain *chain, bool ok, int index, nf_time_t now);
void nf_rep_record_rejuvenate(struct nf_dchain *chain, int index, nf_time_t now);
void nf_rep_record_free(struct nf_dchain *chain, int index);
void nf_rep_record_expire(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                          struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time, int count);
void nf_rep_record_sketch_touch(struct nf_sketch *sketch, const void *key, nf_time_t now);
void nf_rep_record_sketch_expire(struct nf_sketch *sketch, nf_time_t time);

#define NF_REP_WRITING (__builtin_expect(nf_rep_mode == NF_REP_WRITE, 0))

static inline void nf_rep_map_put(struct nf_map *map, const void *key, int value) {
  nf_map_put(map, key, value);
  if (NF_REP_WRITING) nf_rep_record_map_put(map, key, value);
}

static inline void nf_rep_map_erase(struct nf_map *map, const void *key) {
  nf_map_erase(map, key);
  if (NF_REP_WRITING) nf_rep_record_map_erase(map, key);
}

/* A borrowed cell is the library's private copy: an aborted pass gives its cells back uncommitted. */
static inline void *nf_rep_vector_borrow(struct nf_vector *vector, int index) {
  return nf_vector_borrow(vector, index);
}

static inline void nf_rep_vector_return(struct nf_vector *vector, int index, void *cell) {
  if (NF_REP_WRITING) nf_rep_record_vector_set(vector, index, cell); /* applied, a write only if it changed */
  nf_vector_return(vector, index, cell);
}

static inline bool nf_rep_dchain_allocate_new_index(struct nf_dchain *chain, int *index_out, nf_time_t now) {
  int index = -1;
  bool ok = nf_sn_allocate_new_index(chain, &index, now);
  if (NF_REP_WRITING) nf_rep_record_allocate(chain, ok, index, now);
  if (ok) *index_out = index;
  return ok;
}

static inline bool nf_rep_dchain_rejuvenate_index(struct nf_dchain *chain, int index, nf_time_t now) {
  bool ok = nf_dchain_rejuvenate_index(chain, index, now);
  if (ok && NF_REP_WRITING) nf_rep_record_rejuvenate(chain, index, now);
  return ok;
}

static inline bool nf_rep_dchain_free_index(struct nf_dchain *chain, int index) {
  bool ok = nf_dchain_free_index(chain, index);
  if (ok && NF_REP_WRITING) nf_rep_record_free(chain, index);
  return ok;
}

static inline int nf_rep_expire_items(struct nf_dchain *chain, struct nf_vector *keys, struct nf_map *map,
                                      nf_time_t time) {
  int count = nf_expire_items(chain, keys, map, time);
  if (count > 0 && NF_REP_WRITING) nf_rep_record_expire(chain, keys, map, NULL, NULL, time, count);
  return count;
}

static inline int nf_rep_expire_items2(struct nf_dchain *chain, struct nf_vector *keys_a, struct nf_map *map_a,
                                       struct nf_vector *keys_b, struct nf_map *map_b, nf_time_t time) {
  int count = nf_expire_items2(chain, keys_a, map_a, keys_b, map_b, time);
  if (count > 0 && NF_REP_WRITING) nf_rep_record_expire(chain, keys_a, map_a, keys_b, map_b, time, count);
  return count;
}

static inline void nf_rep_sketch_touch(struct nf_sketch *sketch, const void *key, nf_time_t now) {
  nf_sketch_touch(sketch, key, now);
  if (NF_REP_WRITING) nf_rep_record_sketch_touch(sketch, key, now);
}

static inline void nf_rep_sketch_expire(struct nf_sketch *sketch, nf_time_t time) {
  nf_sketch_expire(sketch, time);
  if (NF_REP_WRITING) nf_rep_record_sketch_expire(sketch, time);
}

/* Called by every mutator of the state library before it changes an object (nf_state.c): in a
 * reader pass, a change to a replicated object aborts the pass (nf_rep_abort does not return). */
void nf_rep_abort(uint32_t ordinal) __attribute__((noreturn));
static inline void nf_rep_write_hook(uint32_t object_id) {
  uint32_t k = object_id - nf_rep_first_id;
  if (nf_rep_mode == NF_REP_READ && k < 64 && (nf_rep_replicated >> k & 1)) nf_rep_abort(k);
}
#define NF_WRITE_HOOK(object) nf_rep_write_hook((object)->id)

#endif /* NF_REPLICA_H */
