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

/* Read and check `path` (every record whole, no frame longer than NF_MAX_FRAME, every device below
 * `devices`). On failure returns false with a one-line reason in `error`. */
bool nf_trace_load(const char *path, uint16_t devices, struct nf_trace *trace, char *error, size_t error_size);

#endif /* NF_TRACE_H */
