/* nf_trace.c: reading the binary trace file (see nf_trace.h). */
#include "nf_trace.h"

#include "nf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char trace_magic[8] = {'N', 'F', 'X', 'T', 'R', 'A', 'C', 'E'};

static uint64_t load_le(const uint8_t *at, unsigned size) {
  uint64_t value = 0;
  while (size-- > 0) value = value << 8 | at[size];
  return value;
}

static bool refuse(char *error, size_t error_size, const char *format, ...) __attribute__((format(printf, 3, 4)));

static bool refuse(char *error, size_t error_size, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error, error_size, format, args);
  va_end(args);
  return false;
}

/* The file's bytes, or NULL with the reason in `error`. */
static uint8_t *read_file(const char *path, size_t *size_out, char *error, size_t error_size) {
  FILE *file = fopen(path, "rb");
  if (file == NULL) {
    refuse(error, error_size, "cannot open %s: %s", path, strerror(errno));
    return NULL;
  }
  size_t capacity = 1 << 20, size = 0;
  uint8_t *data = malloc(capacity);
  for (;;) {
    if (data == NULL) {
      fclose(file);
      refuse(error, error_size, "out of memory reading %s", path);
      return NULL;
    }
    size += fread(data + size, 1, capacity - size, file);
    if (size < capacity) break;
    capacity *= 2;
    uint8_t *bigger = realloc(data, capacity);
    if (bigger == NULL) free(data);
    data = bigger;
  }
  bool failed = ferror(file);
  fclose(file);
  if (failed) {
    free(data);
    refuse(error, error_size, "cannot read %s", path);
    return NULL;
  }
  *size_out = size;
  return data;
}

bool nf_trace_load(const char *path, uint16_t devices, struct nf_trace *trace, char *error, size_t error_size) {
  uint8_t *data = read_file(path, &trace->size, error, error_size);
  if (data == NULL) return false;
  size_t size = trace->size;
  if (size < sizeof trace_magic || memcmp(data, trace_magic, sizeof trace_magic) != 0)
    return refuse(error, error_size, "%s is not an NFXTRACE file", path);
  size_t count = 0;
  for (size_t at = sizeof trace_magic; at < size; count++) {
    if (size - at < 12) return refuse(error, error_size, "%s: truncated record header of packet %zu", path, count);
    size_t len = load_le(data + at + 10, 2);
    if (size - at - 12 < len) return refuse(error, error_size, "%s: packet %zu is truncated", path, count);
    if (len > NF_MAX_FRAME)
      return refuse(error, error_size, "%s: packet %zu has %zu bytes, more than the %d the runtime takes (NF_MAX_FRAME)",
                    path, count, len, NF_MAX_FRAME);
    at += 12 + len;
  }
  trace->count = count;
  trace->time = malloc((count + 1) * sizeof *trace->time);
  trace->device = malloc((count + 1) * sizeof *trace->device);
  trace->len = malloc((count + 1) * sizeof *trace->len);
  trace->offset = malloc((count + 1) * sizeof *trace->offset);
  if (!trace->time || !trace->device || !trace->len || !trace->offset) return refuse(error, error_size, "out of memory");
  trace->bytes = data;
  size_t at = sizeof trace_magic;
  for (size_t i = 0; i < count; i++) {
    trace->time[i] = load_le(data + at, 8);
    trace->device[i] = (uint16_t)load_le(data + at + 8, 2);
    trace->len[i] = (uint16_t)load_le(data + at + 10, 2);
    trace->offset[i] = at + 12;
    if (trace->device[i] >= devices)
      return refuse(error, error_size, "packet %zu arrives on device %u, but the NF has %u devices", i,
                    trace->device[i], devices);
    at += 12 + trace->len[i];
  }
  return true;
}
