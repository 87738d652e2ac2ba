/*
 * harness.c: runs an NF sequentially over a trace file (docs/design.md, "The sequential harness").
 *
 *   nfx-seq [--calls FILE] TRACE OUTPUT   run every packet once, write the output records
 *   nfx-seq --bench N TRACE               process N packets, cycling over the preloaded trace,
 *                                         and print the rate in Mpps
 *   nfx-seq --info                        print the NF's configuration (NF_DEVICES=n)
 *
 * Trace: "NFXTRACE", then per packet u64 timestamp_ns, u16 device, u16 len, len bytes.
 * Output: per packet u32 packet#, i32 verdict, u16 len, len bytes (little endian). Dropped
 * packets, runts included, are written with len 0: the verdict log still lists them.
 * Frames shorter than an Ethernet header are dropped without calling the NF; the trace may hold
 * none longer than NF_MAX_FRAME (nf.h).
 *
 * Exit status: 0 success, 1 bad usage or input, 2 nf_init failed, 3 a contract of nf.h was
 * broken at run time (NF_EXIT_CONTRACT), 4 nf_process returned a device the NF does not have.
 * Every failure prints one line starting with "nfx-seq: " (or "nfx runtime: ") on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include "nf.h"
#include "nf_runtime.h"
#include "nf_trace.h"

#define MIN_FRAME 14
#define MEMORY_MB "2048" /* EAL memory for the state library (reserved lazily under --no-huge) */
#define EXIT_INPUT 1
#define EXIT_INIT 2
#define EXIT_VERDICT 4


/* Exit with `status` after one line "nfx-seq: <message>" on stderr. */
#define fail(status, ...) nf_program_exit("nfx-seq", status, __VA_ARGS__)

/* Read the trace or exit with its reason. */
static void load_trace(const char *path, struct nf_trace *trace) {
  char error[512];
  if (!nf_trace_load(path, NF_DEVICES, trace, error, sizeof error)) fail(EXIT_INPUT, "%s", error);
}

static void check_verdict(int verdict, size_t packet) {
  if (verdict == NF_DROP || verdict == NF_FLOOD || (verdict >= 0 && verdict < NF_DEVICES)) return;
  fail(EXIT_VERDICT, "nf_process returned %d for packet %zu: not a device of this NF (0..%d), NF_DROP or NF_FLOOD",
       verdict, packet, NF_DEVICES - 1);
}

/* EAL's runtime folder is /var/run/dpdk/<prefix>: nfx names it (--eal-prefix) and removes it afterwards. */
static void start_eal(const char *program, const char *eal_prefix) {
  char prefix[128];
  if (eal_prefix != NULL)
    snprintf(prefix, sizeof prefix, "--file-prefix=%s", eal_prefix);
  else
    snprintf(prefix, sizeof prefix, "--file-prefix=nfx-seq-%ld", (long)getpid());
  char *args[] = {(char *)program, "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0",
                  "-m", MEMORY_MB, "--log-level=error", prefix, NULL};
  if (rte_eal_init((int)(sizeof args / sizeof args[0]) - 1, args) < 0)
    fail(EXIT_INPUT, "cannot initialise DPDK's EAL (%s)", rte_strerror(rte_errno));
  nf_program_remove_runtime_dir_at_exit();
}

static void put_le(FILE *out, uint64_t value, unsigned size) {
  uint8_t bytes[8];
  for (unsigned i = 0; i < size; i++) bytes[i] = (uint8_t)(value >> (8 * i));
  fwrite(bytes, 1, size, out);
}

static void write_record(FILE *out, size_t packet, int verdict, const uint8_t *bytes, uint16_t len) {
  put_le(out, (uint32_t)packet, 4);
  put_le(out, (uint32_t)verdict, 4);
  put_le(out, len, 2);
  if (len) fwrite(bytes, 1, len, out);
}

/* Under AddressSanitizer the NF gets a buffer of exactly len bytes, so reading past the frame
 * is reported; otherwise one reusable buffer. */
#if defined(__SANITIZE_ADDRESS__)
#define EXACT_BUFFERS 1
#else
#define EXACT_BUFFERS 0
#endif

static void run(const struct nf_trace *trace, const char *output_path) {
  FILE *out = fopen(output_path, "wb");
  if (out == NULL) fail(EXIT_INPUT, "cannot create %s: %s", output_path, strerror(errno));
  setvbuf(out, NULL, _IOFBF, 1 << 20);
  /* Frames start 2 bytes into an aligned buffer (Linux's NET_IP_ALIGN) so the IPv4 header that
   * follows the 14-byte Ethernet header is 4-byte aligned, as NFs' header structs assume. */
  static uint8_t shared[NF_MAX_FRAME + 2] __attribute__((aligned(64)));
  for (size_t i = 0; i < trace->count; i++) {
    uint16_t len = trace->len[i];
    if (len < MIN_FRAME) {
      write_record(out, i, NF_DROP, NULL, 0);
      continue;
    }
    uint8_t *block = EXACT_BUFFERS ? malloc((size_t)len + 2) : shared;
    if (block == NULL) fail(EXIT_INPUT, "out of memory");
    uint8_t *packet = block + 2;
    memcpy(packet, trace->bytes + trace->offset[i], len);
    nf_log_packet_begin(i);
    int verdict = nf_process(trace->device[i], packet, len, trace->time[i]);
    nf_log_packet_end();
    check_verdict(verdict, i);
    write_record(out, i, verdict, packet, verdict == NF_DROP ? 0 : len);
    if (EXACT_BUFFERS) free(block);
  }
  if (fclose(out) != 0) fail(EXIT_INPUT, "cannot write %s", output_path);
}

static double seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

/* Process `total` packets cycling over the trace. Each packet is copied from the pristine trace
 * into one reused buffer (as a NIC writes a fresh frame into a warm mbuf) and processed there, so
 * every reuse starts from the original bytes; state is never reset. Every lap shifts time forward
 * by the trace's span plus one mean gap (nf_trace_lap_time: never past UINT64_MAX), so `now` never goes backwards and expiry behaves as in a
 * longer capture of the same traffic. */
static void bench(const struct nf_trace *trace, uint64_t total) {
  if (trace->count == 0) fail(EXIT_INPUT, "--bench needs a trace with at least one packet");
  static uint8_t work_block[NF_MAX_FRAME + 2] __attribute__((aligned(64)));
  uint8_t *work = work_block + 2; /* IPv4 header 4-byte aligned, as in run() */
  uint64_t span = nf_trace_lap_span(trace);
  uint64_t processed = 0, lap = 0;
  size_t i = 0;
  double start = seconds();
  while (processed < total) {
    uint16_t len = trace->len[i];
    if (len >= MIN_FRAME) {
      memcpy(work, trace->bytes + trace->offset[i], len);
      int verdict = nf_process(trace->device[i], work, len, nf_trace_lap_time(trace->time[i], lap, span));
      check_verdict(verdict, i);
    }
    processed++;
    if (++i == trace->count) {
      i = 0;
      lap++;
    }
  }
  double elapsed = seconds() - start;
  printf("bench: %" PRIu64 " packets in %.6f s: %.3f Mpps\n", processed, elapsed,
         elapsed > 0 ? (double)processed / elapsed / 1e6 : 0.0);
}

static void usage(void) {
  fail(EXIT_INPUT, "usage: nfx-seq [--eal-prefix NAME] [--calls FILE] TRACE OUTPUT | nfx-seq [--eal-prefix NAME] "
                   "--bench N TRACE | nfx-seq --info");
}

int main(int argc, char **argv) {
  const char *calls_path = NULL, *eal_prefix = NULL, *paths[2] = {NULL, NULL};
  uint64_t bench_packets = 0;
  int npaths = 0;
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--info") == 0) {
      printf("NF_DEVICES=%d\n", NF_DEVICES);
      return 0;
    } else if (strcmp(argv[a], "--calls") == 0 && a + 1 < argc) {
      calls_path = argv[++a];
    } else if (strcmp(argv[a], "--eal-prefix") == 0 && a + 1 < argc && strlen(argv[a + 1]) < 100) {
      eal_prefix = argv[++a];
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
  if (bench_packets ? (npaths != 1 || calls_path != NULL) : npaths != 2) usage();

  struct nf_trace trace;
  load_trace(paths[0], &trace);
  FILE *calls = NULL;
  if (calls_path != NULL) {
    calls = fopen(calls_path, "w");
    if (calls == NULL) fail(EXIT_INPUT, "cannot create %s: %s", calls_path, strerror(errno));
    setvbuf(calls, NULL, _IOFBF, 1 << 20);
    nf_log_open(calls);
  }
  start_eal(argv[0], eal_prefix);
  if (!nf_init()) {
    const char *why = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false)%s%s%s", why ? ": " : "", why ? why : "",
         why && strstr(why, "out of memory") ? " (the harness has " MEMORY_MB " MB for state)" : "");
  }
  if (bench_packets)
    bench(&trace, bench_packets);
  else
    run(&trace, paths[1]);
  if (calls != NULL && (nf_log_close() != 0 || fclose(calls) != 0)) fail(EXIT_INPUT, "cannot write %s", calls_path);
  rte_eal_cleanup();
  free(trace.time);
  free(trace.device);
  free(trace.len);
  free(trace.offset);
  free(trace.bytes);
  return 0;
}
