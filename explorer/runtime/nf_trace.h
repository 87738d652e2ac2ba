/*
 * nf_trace.h: the binary trace file (docs/design.md, "The sequential harness") that explorer.run
 * writes and both the sequential harness and the generated replay harness read: "NFXTRACE", then
 * per packet u64 timestamp_ns, u16 device, u16 len and len bytes, little endian.
 */
#ifndef NF_TRACE_H
#define NF_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The whole trace in memory: packet i's bytes are bytes[offset[i] .. offset[i] + len[i]). */
struct nf_trace {
  size_t count;
  uint64_t *time;
  uint16_t *device;
  uint16_t *len;
  size_t *offset;
  uint8_t *bytes; /* the whole file */
  size_t size;
};

/* The span of one lap of `trace` replayed over and over: its last time less its first plus one mean
 * gap (at least 1 ns), so that time never goes backwards between laps; at most UINT64_MAX. */
static inline uint64_t nf_trace_lap_span(const struct nf_trace *trace) {
  if (trace->count == 0) return 1;
  uint64_t span = trace->time[trace->count - 1] - trace->time[0];
  uint64_t gap = trace->count > 1 ? span / (trace->count - 1) : 0;
  uint64_t lap;
  return __builtin_add_overflow(span, gap ? gap : 1, &lap) ? UINT64_MAX : lap;
}

/* A packet's time `time` in lap `lap` (from 0) of laps `span` apart. A capture whose stamps span
 * centuries passes 2**64 ns within a few laps: time then stays at UINT64_MAX, never wraps back. */
static inline uint64_t nf_trace_lap_time(uint64_t time, uint64_t lap, uint64_t span) {
  uint64_t shift, out;
  if (__builtin_mul_overflow(lap, span, &shift) || __builtin_add_overflow(time, shift, &out)) return UINT64_MAX;
  return out;
}

/* Read and check `path` (every record whole, no frame longer than NF_MAX_FRAME, every device below
 * `devices`). On failure returns false with a one-line reason in `error`. */
bool nf_trace_load(const char *path, uint16_t devices, struct nf_trace *trace, char *error, size_t error_size);

#endif /* NF_TRACE_H */
