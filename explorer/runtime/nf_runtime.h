/*
 * nf_runtime.h: what the programs that drive an NF (the sequential harness, the DPDK forwarder)
 * need from the state library beyond nf.h. NFs never include this header.
 *
 * The only process-wide state of the library is the call log below (and the allocation counter
 * that numbers objects for it); everything else lives in the objects themselves.
 */
#ifndef NF_RUNTIME_H
#define NF_RUNTIME_H

#include <stdint.h>
#include <stdio.h>

#include "nf.h"

/* Start appending call-log lines (docs/design.md, "The runtime's call log") to `out`. Lines are
 * written only between nf_log_packet_begin and nf_log_packet_end, so nf_init never logs. */
void nf_log_open(FILE *out);

/* Mark the start and the end of one nf_process call for packet number `packet` (counting from 0
 * over the whole trace, runts included). The number also prefixes fatal runtime errors. */
void nf_log_packet_begin(uint64_t packet);
void nf_log_packet_end(void);

/* Flush the call log; returns 0, or -1 when writing it failed. */
int nf_log_close(void);

/* Give a borrowed vector cell back without committing it (the parallel runtime's aborted reader
 * passes: whatever the pass wrote into its slot is dropped). */
void nf_vector_release(struct nf_vector *vector, void *cell);
/* ... every cell this lcore has borrowed from `vector` (a replicated build's aborted passes). */
void nf_vector_release_all(struct nf_vector *vector);

/* A vector cell's stored bytes (not a borrowed copy) and the size of a cell: the parallel
 * runtime's cell locks read and restore them. */
uint8_t *nf_vector_cell(struct nf_vector *vector, int index);
size_t nf_vector_cell_size(const struct nf_vector *vector);

/* Why the most recent allocate function returned false ("nf_cht_allocate: height 12 is not a
 * prime"), or NULL: the detail behind "nf_init failed". */
const char *nf_runtime_refusal(void);

/* Take a free index out of `chain` for good: never allocated, never in use (a core's dchain
 * withholds the indices of other cores' pools, see nf_pool.h). False when it is not free. */
bool nf_dchain_withhold(struct nf_dchain *chain, int index);

/* The number of a state object (its allocation order in this process, as in the call log), and
 * the number the next allocated object will get. */
static inline uint32_t nf_object_id(const void *object) { return *(const uint32_t *)object; } /* its first field */
uint32_t nf_next_object_id(void);

/* Report a broken contract of nf.h (a full map, an index out of range, ...) and exit with
 * NF_EXIT_CONTRACT: continuing would silently diverge from what the analysis assumes. */
#define NF_EXIT_CONTRACT 3
void nf_runtime_fatal(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* After rte_eal_init, in the drivers (harness, forwarder, generated programs): remove EAL's runtime
 * folder (/var/run/dpdk/<file-prefix>, which EAL creates and leaves, empty under --no-shconf)
 * when the program exits, however it exits. A folder that is not empty is left alone. */
void nf_program_remove_runtime_dir_at_exit(void);

/* The drivers' (harness, forwarder, generated programs) way out: flush stdout, print
 * "<program>: <message>" on stderr and exit with `status`. */
void nf_program_exit(const char *program, int status, const char *format, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#endif /* NF_RUNTIME_H */
