/*
 * replay.c: this project's NF, built exactly as the DPDK program runs it (same nf.c, same
 * runtime, same strategy), driven by a deterministic replay of a trace instead of NICs.
 *
 *   nfx-replay [EAL options] -- [--log FILE] TRACE OUTPUT
 *   nfx-replay [EAL options] -- --bench N TRACE
 *   nfx-replay --info
 *
 * Every packet is steered to a core as the NIC would steer it (software Toeplitz over the
 * device's fields, the device's key and RETA: nf_rss_core), each core runs in its own lcore and
 * processes its own queue in trace order, and the outcome of every packet is written in trace
 * order. No NIC and no huge pages are needed, e.g.
 *   --no-huge --no-pci --no-shconf --no-telemetry --lcores '(0-3)@(0-1)'
 * for 4 cores on 2 CPUs; EAL must be given exactly NF_CORES lcores.
 *
 * TRACE: "NFXTRACE", then per packet u64 timestamp_ns, u16 device, u16 len, len bytes.
 * OUTPUT: per packet u32 packet#, i32 verdict, u16 len, len bytes (dropped packets have len 0).
 * --log FILE: "NFXRLOG2", u32 cores, then per packet u16 core, u8 ran (NF_RAN_*), u8 capacity
 *   hit, u32 RSS hash, u32 aborting object, u64 ticket in, u64 ticket out, u64 the time the NF
 *   ran it at (little endian); with --log the critical sections of locks and tm take tickets
 *   (nf_par_schedule_log).
 * --replica-log FILE: see write_replica_log (sn builds with replicated objects).
 * --paced: packets run one at a time in trace order (see await_turn), each on its own core.
 * --bench N: each core's packets copied to memory of its own (fill_lane), one untimed warm-up lap of
 *   the trace, every packet in trace order on its own core;
 *   then every core processes its queue over and over (times shifted by one trace span per lap,
 *   never past UINT64_MAX ns: nf_trace_lap_time)
 *   until N packets are processed in all. Printed: "bench: N packets in T s: R Mpps (strategy, C
 *   cores)", "lock: <how cores synchronise>", then per core "core C: packets P, busy S, cpu S,
 *   waited S, writes W, cells V, forwarded F, dropped D, flooded L, runts R" over the timed laps: busy is
 *   the core's wall time less its waits for slower cores, cpu its thread's CPU time less those
 *   waits (less than busy when the machine ran something else on that CPU), writes the packets
 *   that took the write lock (locks, tm), cells those whose reader pass wrote vector cells under cell
 *   locks.
 * Frames shorter than an Ethernet header are dropped without calling the NF; the trace may hold
 * none longer than NF_MAX_FRAME (nf.h).
 *
 * Exit status: 0 success, 1 bad usage, input or set-up, 2 nf_init failed, 3 a contract of nf.h
 * was broken (NF_EXIT_CONTRACT), 4 nf_process returned a device the NF does not have.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "nf_parallel.h"
#include "nf_pool.h"
#include "nf_runtime.h"
#include "nf_trace.h"

#define MIN_FRAME 14
#define BURST 32 /* packets between two nf_par_quiesce calls */
/* A core whose next packet comes this long after its previous one (trace time) ends its burst
 * first: on a NIC the queue ran dry in between, and the lcore's empty polls quiesced. Without it a
 * burst of a replay could span an hour of trace time, and a core would lag behind a replicated
 * write for an hour. */
#define IDLE_GAP_NS 1000000u
#define EXIT_INPUT 1
#define EXIT_INIT 2
#define EXIT_VERDICT 4

/* Exit with `status` after one line "nfx-replay: <message>" on stderr. */
#define fail(status, ...) nf_program_exit("nfx-replay", status, __VA_ARGS__)

/* ---- the trace ------------------------------------------------------------------------------ */

/* Read the trace or exit with its reason. */
static void load_trace(const char *path, struct nf_trace *trace) {
  char error[512];
  if (!nf_trace_load(path, NF_DEVICES, trace, error, sizeof error)) fail(EXIT_INPUT, "%s", error);
}

/* ---- the replay ----------------------------------------------------------------------------- */

/* --bench: one core's packets copied in its queue's order into memory of its own, frames on
 * cache-line boundaries, as a NIC fills each core's receive ring: reading them costs a core the
 * same whatever the core count (from the shared trace, each core's packets are scattered over it,
 * and every one of them cost the core its own cache lines of times, lengths and offsets). */
struct lane_packet {
  uint64_t time;
  uint32_t offset; /* in the lane's bytes */
  uint16_t device, len;
};

struct core_run {
  size_t *queue; /* packet numbers, in trace order */
  size_t length;
  struct lane_packet *lane; /* --bench: the queue's packets, in its order */
  uint8_t *lane_bytes;
  uint64_t started, finished; /* TSC */
  uint64_t waited;            /* TSC cycles spent waiting for slower cores (--bench) */
  uint64_t cpu_ns;            /* the thread's CPU time over the timed laps, less its waits (--bench) */
  uint64_t processed;
  uint64_t writes, cells, forwarded, dropped, flooded, runts; /* --bench: how the timed packets ran */
  size_t bad_packet; /* first packet with an invalid verdict, or SIZE_MAX */
  int bad_verdict;
} __attribute__((aligned(64)));

static struct {
  const struct nf_trace *trace;
  uint8_t *bytes;               /* the frames as processed (a copy of the trace's) */
  struct nf_outcome *outcome;   /* per packet */
  uint64_t bench_laps;          /* 0: replay once */
  bool paced;                   /* --paced: one packet at a time, in trace order */
  struct core_run core[NF_CORES];
} replay;

/* Hand-offs between the main lcore and the workers, in the order they happen. */
static unsigned go;        /* the trace, queues and shared state are ready */
static unsigned init_turn; /* the core whose nf_par_init_core runs now; NF_CORES when all did */
static unsigned init_failed;
static unsigned lanes_filled, lane_failed; /* --bench: cores that filled their lane; one could not */
static unsigned done;

static void wait_until(const unsigned *flag, unsigned value) {
  unsigned spins = 0;
  while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value) {
    if (++spins < 1024) {
      rte_pause();
    } else {
      spins = 0;
      sched_yield();
    }
  }
}

static bool valid_verdict(int verdict) {
  return verdict == NF_DROP || verdict == NF_FLOOD || (verdict >= 0 && verdict < NF_DEVICES);
}

/* nf.h's headers hold 32-bit fields: the NF gets every frame two bytes past a 4-byte boundary,
 * so that its IPv4 header (after 14 bytes of Ethernet) is aligned, as NET_IP_ALIGN does in
 * kernels. Under AddressSanitizer each frame gets a buffer of exactly its length (plus those two
 * bytes before it), so reading past the frame is reported. */
#define IP_ALIGN 2
#if defined(__SANITIZE_ADDRESS__)
#define EXACT_BUFFERS 1
#else
#define EXACT_BUFFERS 0
#endif

static uint8_t work[NF_CORES][IP_ALIGN + NF_MAX_FRAME] __attribute__((aligned(64)));

/* --paced: the trace packet whose turn it is. Packets still run on the cores RSS picks, each core
 * in its bursts, but one at a time in trace order, as if each arrived after the previous one was
 * done: a packet then sees every write an earlier packet completed, unless its core has not yet
 * applied it (replication lag, nf_replica.h). */
static size_t next_turn __attribute__((aligned(64)));

static void await_turn(size_t i) {
  unsigned spins = 0;
  while (__atomic_load_n(&next_turn, __ATOMIC_ACQUIRE) != i) {
    nf_par_wait();
    if (++spins < 1024) {
      rte_pause();
    } else {
      spins = 0;
      sched_yield();
    }
  }
}

static void run_once(struct core_run *run, unsigned core) {
  const struct nf_trace *trace = replay.trace;
  unsigned in_burst = 0;
  uint64_t last = 0;
  for (size_t k = 0; k < run->length; k++) {
    size_t i = run->queue[k];
    struct nf_outcome *outcome = &replay.outcome[i];
    uint16_t len = trace->len[i];
    if (replay.paced) await_turn(i);
    if (in_burst > 0 && trace->time[i] > last + IDLE_GAP_NS) {
      nf_par_quiesce(); /* idle in between: the burst ended (paced: after every earlier packet's write) */
      in_burst = 0;
    }
    last = trace->time[i];
    in_burst++;
    if (len < MIN_FRAME) {
      outcome->verdict = NF_DROP;
      if (replay.paced) __atomic_store_n(&next_turn, i + 1, __ATOMIC_RELEASE);
      continue;
    }
    uint8_t *frame = replay.bytes + trace->offset[i];
    uint8_t *buffer = EXACT_BUFFERS ? malloc(IP_ALIGN + (size_t)len) : work[core];
    if (buffer == NULL) fail(EXIT_INPUT, "out of memory");
    uint8_t *packet = buffer + IP_ALIGN;
    memcpy(packet, frame, len);
    nf_par_process(trace->device[i], packet, len, trace->time[i], outcome);
    memcpy(frame, packet, len);
    if (EXACT_BUFFERS) free(buffer);
    if (!valid_verdict(outcome->verdict) && run->bad_packet == SIZE_MAX) {
      run->bad_packet = i;
      run->bad_verdict = outcome->verdict;
    }
    run->processed++;
    if (replay.paced) __atomic_store_n(&next_turn, i + 1, __ATOMIC_RELEASE);
    if (in_burst == BURST) { /* as a DPDK lcore does after every burst */
      nf_par_quiesce();
      in_burst = 0;
    }
  }
  nf_par_quiesce();
}

/* Laps each core has finished. A core starts lap L only once every core has finished lap L - 2:
 * each core's `now` is its own trace time plus its laps, and a core far ahead would see the state
 * other cores keep fresh (say a load balancer's backends, refreshed by heartbeats on one core) as
 * expired, which no NIC-fed run does (there, time is one clock). The wait costs the measurement
 * nothing: its rate is bounded by the slowest core anyway. */
static struct {
  uint64_t laps;
} __attribute__((aligned(64))) laps_done[NF_CORES];

/* The warm-up lap's turnstile: the trace index of the next packet to process. */
static size_t warm_next __attribute__((aligned(64)));

static void relax(unsigned *spins) {
  if (++*spins < 1024) {
    rte_pause();
  } else {
    *spins = 0;
    sched_yield();
  }
}

static uint64_t thread_cpu_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void wait_for_laps(struct core_run *run, uint64_t lap) {
  if (lap < 2) return;
  uint64_t began = rte_get_tsc_cycles(), cpu = thread_cpu_ns();
  nf_par_quiesce(); /* never keep writers waiting while waiting */
  for (unsigned c = 0; c < NF_CORES; c++) {
    unsigned spins = 0;
    while (__atomic_load_n(&laps_done[c].laps, __ATOMIC_ACQUIRE) < lap - 1) {
      nf_par_quiesce(); /* sn with replicated objects: keep applying other cores' writes */
      relax(&spins);
    }
  }
  run->waited += rte_get_tsc_cycles() - began;
  run->cpu_ns -= thread_cpu_ns() - cpu; /* time spent waiting is not the core's work */
}

/* Fill `run`'s lane from its queue; run on the core itself, so that its pages are its own. */
static bool fill_lane(struct core_run *run) {
  const struct nf_trace *trace = replay.trace;
  size_t size = 0;
  for (size_t k = 0; k < run->length; k++) size += (trace->len[run->queue[k]] + 63u) & ~(size_t)63;
  if (size > UINT32_MAX) return false;
  run->lane = malloc((run->length + 1) * sizeof *run->lane);
  run->lane_bytes = aligned_alloc(64, size + 64);
  if (run->lane == NULL || run->lane_bytes == NULL) return false;
  size_t at = 0;
  for (size_t k = 0; k < run->length; k++) {
    size_t i = run->queue[k];
    run->lane[k] = (struct lane_packet){trace->time[i], (uint32_t)at, trace->device[i], trace->len[i]};
    memcpy(run->lane_bytes + at, trace->bytes + trace->offset[i], trace->len[i]);
    at += (trace->len[i] + 63u) & ~(size_t)63;
  }
  return true;
}

/* The k-th packet of `core`'s lane (packet i of the trace). */
static void bench_packet(struct core_run *run, unsigned core, size_t k, uint64_t lap, uint64_t span, bool count) {
  const struct lane_packet *lane = &run->lane[k];
  uint16_t len = lane->len;
  struct nf_outcome outcome;
  if (len < MIN_FRAME) {
    run->runts += count;
    return;
  }
  uint8_t *packet = work[core] + IP_ALIGN;
  memcpy(packet, run->lane_bytes + lane->offset, len);
  nf_par_process(lane->device, packet, len, nf_trace_lap_time(lane->time, lap, span), &outcome);
  if (!valid_verdict(outcome.verdict) && run->bad_packet == SIZE_MAX) {
    run->bad_packet = run->queue[k];
    run->bad_verdict = outcome.verdict;
  }
  if (!count) return;
  run->writes += outcome.ran == NF_RAN_WRITE;
  run->cells += outcome.ran == NF_RAN_CELLS;
  run->dropped += outcome.verdict == NF_DROP;
  run->flooded += outcome.verdict == NF_FLOOD;
  run->forwarded += outcome.verdict >= 0;
}

/* The untimed first lap: every packet on its own core, all of them in trace order (a core waits
 * for the packet before its next one to be done), so that the state the timed laps start from is
 * the one a sequential run of the trace leaves (locks, tm, seq) or each core's sequential share of
 * it (sn), whatever the interleaving: traffic that answers what a run emitted (a NAT's replies)
 * then finds the flows it was made for. */
static void warm_up(struct core_run *run, unsigned core) {
  for (size_t k = 0; k < run->length; k++) {
    size_t i = run->queue[k];
    unsigned spins = 0;
    while (__atomic_load_n(&warm_next, __ATOMIC_ACQUIRE) != i) {
      nf_par_wait(); /* sn with replicated objects: apply other cores' writes meanwhile */
      relax(&spins);
    }
    bench_packet(run, core, k, 0, 0, false);
    nf_par_quiesce(); /* the next packet may need the write lock on another core */
    __atomic_store_n(&warm_next, i + 1, __ATOMIC_RELEASE);
  }
  unsigned spins = 0;
  while (__atomic_load_n(&warm_next, __ATOMIC_ACQUIRE) != replay.trace->count) {
    nf_par_wait();
    relax(&spins);
  }
  __atomic_store_n(&laps_done[core].laps, 1, __ATOMIC_RELEASE);
}

/* --bench: the warm-up lap, then bench_laps timed laps (times shifted by one trace span each). */
static void run_bench(struct core_run *run, unsigned core) {
  uint64_t span = nf_trace_lap_span(replay.trace);
  warm_up(run, core);
  run->started = rte_get_tsc_cycles();
  run->cpu_ns = 0;
  uint64_t cpu_start = thread_cpu_ns();
  for (uint64_t lap = 1; lap <= replay.bench_laps; lap++) {
    wait_for_laps(run, lap);
    for (size_t k = 0; k < run->length; k++) {
      bench_packet(run, core, k, lap, span, true);
      run->processed++;
      if (k % BURST == BURST - 1) nf_par_quiesce();
    }
    __atomic_store_n(&laps_done[core].laps, lap + 1, __ATOMIC_RELEASE);
  }
  nf_par_quiesce();
  run->finished = rte_get_tsc_cycles();
  run->cpu_ns += thread_cpu_ns() - cpu_start;
}

static int worker(void *unused) {
  (void)unused;
  int index = rte_lcore_index((int)rte_lcore_id());
  if (index < 0 || index >= NF_CORES) return -1; /* main checked the lcore count */
  unsigned core = (unsigned)index;
  wait_until(&go, 1);
  /* One core after the other: sn's nf_init allocates from shared EAL heaps. */
  wait_until(&init_turn, core);
  if (!nf_par_init_core(core)) __atomic_store_n(&init_failed, core + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&init_turn, core + 1, __ATOMIC_RELEASE);
  wait_until(&init_turn, NF_CORES);
  struct core_run *run = &replay.core[core];
  if (replay.bench_laps && !fill_lane(run)) __atomic_store_n(&lane_failed, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&lanes_filled, 1, __ATOMIC_RELEASE);
  wait_until(&lanes_filled, NF_CORES);
  if (__atomic_load_n(&init_failed, __ATOMIC_RELAXED) == 0 && __atomic_load_n(&lane_failed, __ATOMIC_RELAXED) == 0) {
    if (replay.bench_laps)
      run_bench(run, core);
    else
      run_once(run, core);
  }
  __atomic_fetch_add(&done, 1, __ATOMIC_RELEASE);
  return 0;
}

/* ---- output --------------------------------------------------------------------------------- */

static void put_le(FILE *out, uint64_t value, unsigned size) {
  uint8_t bytes[8];
  for (unsigned i = 0; i < size; i++) bytes[i] = (uint8_t)(value >> (8 * i));
  fwrite(bytes, 1, size, out);
}

static FILE *create(const char *path) {
  FILE *out = fopen(path, "wb");
  if (out == NULL) fail(EXIT_INPUT, "cannot create %s: %s", path, strerror(errno));
  setvbuf(out, NULL, _IOFBF, 1 << 20);
  return out;
}

static void finish(FILE *out, const char *path) {
  if (fclose(out) != 0) fail(EXIT_INPUT, "cannot write %s", path);
}

static void write_output(const char *path) {
  const struct nf_trace *trace = replay.trace;
  FILE *out = create(path);
  for (size_t i = 0; i < trace->count; i++) {
    int verdict = replay.outcome[i].verdict;
    uint16_t len = verdict == NF_DROP ? 0 : trace->len[i];
    put_le(out, (uint32_t)i, 4);
    put_le(out, (uint32_t)verdict, 4);
    put_le(out, len, 2);
    if (len) fwrite(replay.bytes + trace->offset[i], 1, len, out);
  }
  finish(out, path);
}

/* --replica-log FILE: "NFXREPL1", then per packet u64 TSC when it started and when it finished
 * (sn with replicated objects; 0 otherwise): when writes completed and packets began. */
static void write_replica_log(const char *path) {
  const struct nf_trace *trace = replay.trace;
  FILE *out = create(path);
  fwrite("NFXREPL1", 1, 8, out);
  put_le(out, rte_get_tsc_hz(), 8);
  for (size_t i = 0; i < trace->count; i++) {
    put_le(out, replay.outcome[i].started, 8);
    put_le(out, replay.outcome[i].finished, 8);
  }
  finish(out, path);
}

static void write_log(const char *path, const uint16_t *cores, const uint32_t *hashes) {
  const struct nf_trace *trace = replay.trace;
  FILE *out = create(path);
  fwrite("NFXRLOG2", 1, 8, out);
  put_le(out, NF_CORES, 4);
  for (size_t i = 0; i < trace->count; i++) {
    const struct nf_outcome *o = &replay.outcome[i];
    put_le(out, cores[i], 2);
    put_le(out, o->ran, 1);
    put_le(out, o->capacity_hit, 1);
    put_le(out, hashes[i], 4);
    put_le(out, o->abort_object, 4);
    put_le(out, o->ticket_begin, 8);
    put_le(out, o->ticket_end, 8);
    put_le(out, o->now, 8);
  }
  finish(out, path);
}

/* ---- main ----------------------------------------------------------------------------------- */

static const char *strategy_name(void) {
  switch (NF_STRATEGY) {
    case NF_STRATEGY_SEQ: return "seq";
    case NF_STRATEGY_SN: return "sn";
    case NF_STRATEGY_LOCKS: return "locks";
    default: return "tm";
  }
}

static void usage(void) {
  fail(EXIT_INPUT, "usage: nfx-replay [EAL options] -- [--log FILE] TRACE OUTPUT | "
                   "nfx-replay [EAL options] -- --bench N TRACE | nfx-replay --info");
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--info") == 0) {
    printf("NF_DEVICES=%d\nNF_CORES=%d\nNF_STRATEGY=%s\n", NF_DEVICES, NF_CORES, strategy_name());
    return 0;
  }
  int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) fail(EXIT_INPUT, "cannot initialise DPDK's EAL (%s)", rte_strerror(rte_errno));
  nf_program_remove_runtime_dir_at_exit();
  const char *log_path = NULL, *replica_log_path = NULL, *paths[2] = {NULL, NULL};
  uint64_t bench_packets = 0;
  int npaths = 0;
  for (int a = eal_args + 1; a < argc; a++) {
    if (strcmp(argv[a], "--log") == 0 && a + 1 < argc) {
      log_path = argv[++a];
    } else if (strcmp(argv[a], "--replica-log") == 0 && a + 1 < argc) {
      replica_log_path = argv[++a];
    } else if (strcmp(argv[a], "--paced") == 0) {
      replay.paced = true;
    } else if (strcmp(argv[a], "--bench") == 0 && a + 1 < argc) {
      char *end;
      errno = 0;
      bench_packets = strtoull(argv[++a], &end, 10);
      if (errno != 0 || *end != '\0' || bench_packets == 0 || argv[a][0] == '-')
        fail(EXIT_INPUT, "--bench wants a positive packet count, not '%s'", argv[a]);
    } else if (argv[a][0] == '-' || npaths == 2) {
      usage();
    } else {
      paths[npaths++] = argv[a];
    }
  }
  if (bench_packets ? (npaths != 1 || log_path != NULL || replica_log_path != NULL || replay.paced) : npaths != 2) usage();

  char why[160];
  if (nf_rss_self_test(why, sizeof why) != 0) fail(EXIT_INPUT, "software Toeplitz self-test failed: %s", why);
  if (rte_lcore_count() != NF_CORES)
    fail(EXIT_INPUT, "this build runs %d cores but EAL has %u lcores (give e.g. --lcores '(0-%d)@(0-1)')",
         NF_CORES, rte_lcore_count(), NF_CORES - 1);

  struct nf_trace trace;
  load_trace(paths[0], &trace);
  replay.trace = &trace;
  replay.bytes = malloc(trace.size ? trace.size : 1);
  replay.outcome = calloc(trace.count + 1, sizeof *replay.outcome);
  uint16_t *cores = malloc((trace.count + 1) * sizeof *cores);
  uint32_t *hashes = malloc((trace.count + 1) * sizeof *hashes);
  if (!replay.bytes || !replay.outcome || !cores || !hashes) fail(EXIT_INPUT, "out of memory");
  memcpy(replay.bytes, trace.bytes, trace.size);
  for (size_t i = 0; i < trace.count; i++) {
    uint8_t *aligned = work[0] + IP_ALIGN; /* the header accessors want an aligned IPv4 header */
    memcpy(aligned, trace.bytes + trace.offset[i], trace.len[i]);
    unsigned core = nf_rss_core(trace.device[i], aligned, trace.len[i], &hashes[i]);
    if (core >= NF_CORES) fail(EXIT_INPUT, "the RETA of device %u names core %u of %d", trace.device[i], core, NF_CORES);
    cores[i] = (uint16_t)core;
    replay.core[core].length++;
  }
  for (unsigned c = 0; c < NF_CORES; c++) {
    replay.core[c].queue = malloc((replay.core[c].length + 1) * sizeof(size_t));
    if (replay.core[c].queue == NULL) fail(EXIT_INPUT, "out of memory");
    replay.core[c].length = 0;
    replay.core[c].bad_packet = SIZE_MAX;
  }
  for (size_t i = 0; i < trace.count; i++) {
    struct core_run *run = &replay.core[cores[i]];
    run->queue[run->length++] = i;
  }
  if (bench_packets) {
    if (trace.count == 0) fail(EXIT_INPUT, "--bench needs a trace with at least one packet");
    replay.bench_laps = (bench_packets + trace.count - 1) / trace.count;
  }

  char pools_why[512]; /* sharding by allocation: the pools of the plan's keys and RETAs */
  if (nf_pools_from_plan(pools_why, sizeof pools_why) != 0) fail(EXIT_INPUT, "%s", pools_why);
  if (!nf_par_init()) {
    const char *refusal = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false)%s%s", refusal ? ": " : "", refusal ? refusal : "");
  }
  nf_par_schedule_log = log_path != NULL;
  __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
  if (rte_eal_mp_remote_launch(worker, NULL, CALL_MAIN) != 0) fail(EXIT_INPUT, "cannot launch the lcores");
  rte_eal_mp_wait_lcore();
  wait_until(&done, NF_CORES);

  unsigned failed = __atomic_load_n(&init_failed, __ATOMIC_RELAXED);
  if (failed) {
    const char *refusal = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false) on core %u%s%s", failed - 1, refusal ? ": " : "",
         refusal ? refusal : "");
  }
  if (__atomic_load_n(&lane_failed, __ATOMIC_RELAXED)) fail(EXIT_INPUT, "cannot copy each core's packets (out of memory, or over 4 GiB for one core)");
  for (unsigned c = 0; c < NF_CORES; c++)
    if (replay.core[c].bad_packet != SIZE_MAX)
      fail(EXIT_VERDICT, "nf_process returned %d for packet %zu on core %u: not a device of this NF (0..%d), "
           "NF_DROP or NF_FLOOD", replay.core[c].bad_verdict, replay.core[c].bad_packet, c, NF_DEVICES - 1);

  if (bench_packets) {
    uint64_t first = UINT64_MAX, last = 0, total = 0;
    for (unsigned c = 0; c < NF_CORES; c++) {
      const struct core_run *run = &replay.core[c];
      total += run->processed;
      if (run->length == 0) continue; /* an idle core does not bound the run */
      if (run->started < first) first = run->started;
      if (run->finished > last) last = run->finished;
    }
    double seconds = last > first ? (double)(last - first) / (double)rte_get_tsc_hz() : 0.0;
    printf("bench: %" PRIu64 " packets in %.6f s: %.3f Mpps (%s, %d cores)\n", total, seconds,
           seconds > 0 ? (double)total / seconds / 1e6 : 0.0, strategy_name(), NF_CORES);
    printf("lock: %s\n", nf_par_lock_name());
    double hz = (double)rte_get_tsc_hz();
    for (unsigned c = 0; c < NF_CORES; c++) {
      const struct core_run *run = &replay.core[c];
      double busy = run->finished > run->started ? (double)(run->finished - run->started - run->waited) / hz : 0.0;
      printf("core %u: packets %" PRIu64 ", busy %.6f, cpu %.6f, waited %.6f, writes %" PRIu64 ", cells %" PRIu64
             ", forwarded %" PRIu64 ", dropped %" PRIu64 ", flooded %" PRIu64 ", runts %" PRIu64 "\n",
             c, run->processed, busy, (double)run->cpu_ns / 1e9, (double)run->waited / hz, run->writes, run->cells,
             run->forwarded, run->dropped, run->flooded, run->runts);
    }
  } else {
    write_output(paths[1]);
    if (log_path != NULL) write_log(log_path, cores, hashes);
    if (replica_log_path != NULL) write_replica_log(replica_log_path);
  }
  rte_eal_cleanup();
  for (unsigned c = 0; c < NF_CORES; c++) {
    free(replay.core[c].queue);
    free(replay.core[c].lane);
    free(replay.core[c].lane_bytes);
  }
  free(cores);
  free(hashes);
  free(replay.outcome);
  free(replay.bytes);
  free(trace.time);
  free(trace.device);
  free(trace.len);
  free(trace.offset);
  free(trace.bytes);
  return 0;
}
