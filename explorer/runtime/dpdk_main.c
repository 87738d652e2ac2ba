/*
 * dpdk_main.c: the NF as a DPDK 22.11 program. Every port gets one rx and one tx queue; the main
 * lcore receives a burst from each port in turn, passes every frame through nf_process and sends it
 * out of the verdict's port (NF_FLOOD: every port but the input one). NF device d is the d-th
 * available port, so there must be exactly NF_DEVICES of them.
 *
 *   nfx-dpdk [EAL options] -- [--packets N] [--idle-ms MS] [--calls FILE]
 *
 * --packets N   stop after receiving N packets;
 * --idle-ms MS  stop after MS milliseconds without receiving anything (a test feeding pcap files
 *               through net_pcap ends this way once the files are read);
 * --calls FILE  write the state-call log, numbering packets in the order they were received.
 * SIGINT and SIGTERM stop the loop too; ports are then stopped and closed, which makes net_pcap
 * flush its output files. `now` is the time since start-up in nanoseconds (TSC).
 *
 * Exit status: 0 success, 1 bad usage or set-up, 2 nf_init failed, 3 a contract of nf.h was broken,
 * 4 nf_process returned a device the NF does not have.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "nf.h"
#include "nf_runtime.h"

#define BURST 32
#define RX_DESCRIPTORS 1024
#define TX_DESCRIPTORS 1024
#define MBUFS_PER_PORT 8191
#define MBUF_CACHE 256
#define MIN_FRAME 14
#define TX_RETRIES 64

#define EXIT_SETUP 1
#define EXIT_INIT 2
#define EXIT_VERDICT 4

static volatile sig_atomic_t force_quit;

static void on_signal(int signum) {
  (void)signum;
  force_quit = 1;
}

/* Exit with `status` after one line "nfx-dpdk: <message>" on stderr. */
#define fail(status, ...) nf_program_exit("nfx-dpdk", status, __VA_ARGS__)

struct options {
  uint64_t packets;  /* 0: no limit */
  uint64_t idle_ms;  /* 0: never stop when idle */
  const char *calls; /* NULL: no call log */
};

static uint64_t parse_count(const char *option, const char *text) {
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-' || text[0] == '\0')
    fail(EXIT_SETUP, "%s wants a non-negative number, not '%s'", option, text);
  return value;
}

static struct options parse_options(int argc, char **argv) {
  struct options options = {0, 0, NULL};
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--packets") == 0 && a + 1 < argc)
      options.packets = parse_count("--packets", argv[++a]);
    else if (strcmp(argv[a], "--idle-ms") == 0 && a + 1 < argc)
      options.idle_ms = parse_count("--idle-ms", argv[++a]);
    else if (strcmp(argv[a], "--calls") == 0 && a + 1 < argc)
      options.calls = argv[++a];
    else
      fail(EXIT_SETUP, "unknown option '%s' (after --: --packets N, --idle-ms MS, --calls FILE)", argv[a]);
  }
  return options;
}

static void setup_port(uint16_t port, struct rte_mempool *pool) {
  struct rte_eth_conf conf;
  struct rte_eth_dev_info info;
  uint16_t rx_descriptors = RX_DESCRIPTORS, tx_descriptors = TX_DESCRIPTORS;
  memset(&conf, 0, sizeof conf);
  int status = rte_eth_dev_info_get(port, &info);
  if (status != 0) fail(EXIT_SETUP, "port %u: cannot read device info (%s)", port, rte_strerror(-status));
  if ((status = rte_eth_dev_configure(port, 1, 1, &conf)) != 0 ||
      (status = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_descriptors, &tx_descriptors)) != 0 ||
      (status = rte_eth_rx_queue_setup(port, 0, rx_descriptors, rte_eth_dev_socket_id(port), NULL, pool)) != 0 ||
      (status = rte_eth_tx_queue_setup(port, 0, tx_descriptors, rte_eth_dev_socket_id(port), NULL)) != 0 ||
      (status = rte_eth_dev_start(port)) != 0)
    fail(EXIT_SETUP, "port %u: cannot set up (%s)", port, rte_strerror(status < 0 ? -status : status));
  rte_eth_promiscuous_enable(port); /* not every driver can; forwarding works either way */
}

/* Frames waiting for one port's tx queue during a burst. A flood adds one reference per extra
 * port; each transmit or free drops one. */
struct tx_queue {
  uint16_t count;
  struct rte_mbuf *frames[BURST]; /* flushed after every received burst */
};

struct stats {
  uint64_t received, sent, dropped, runts, tx_failed;
};

static void flush(uint16_t port, struct tx_queue *queue, struct stats *stats) {
  uint16_t sent = 0;
  for (int tries = 0; sent < queue->count && tries < TX_RETRIES; tries++)
    sent += rte_eth_tx_burst(port, 0, queue->frames + sent, queue->count - sent);
  stats->sent += sent;
  stats->tx_failed += queue->count - sent;
  for (uint16_t i = sent; i < queue->count; i++) rte_pktmbuf_free(queue->frames[i]);
  queue->count = 0;
}

static uint64_t nanoseconds_since(uint64_t start, uint64_t hz) {
  return (uint64_t)((unsigned __int128)(rte_get_tsc_cycles() - start) * 1000000000u / hz);
}

static void forward(const uint16_t *ports, const struct options *options, struct stats *stats) {
  static struct tx_queue queues[NF_DEVICES];
  struct rte_mbuf *burst[BURST];
  uint64_t hz = rte_get_tsc_hz(), start = rte_get_tsc_cycles(), last_rx = start;
  uint64_t idle_cycles = options->idle_ms * (hz / 1000);
  while (!force_quit) {
    uint16_t received_now = 0;
    for (uint16_t device = 0; device < NF_DEVICES && !force_quit; device++) {
      uint16_t count = rte_eth_rx_burst(ports[device], 0, burst, BURST);
      received_now += count;
      for (uint16_t i = 0; i < count; i++) {
        struct rte_mbuf *m = burst[i];
        if (options->packets && stats->received >= options->packets) { /* over the limit: unseen */
          rte_pktmbuf_free(m);
          continue;
        }
        uint64_t packet = stats->received++;
        if (m->nb_segs != 1 || m->data_len < MIN_FRAME) { /* runts, and frames the NF cannot see whole */
          stats->runts++;
          rte_pktmbuf_free(m);
          continue;
        }
        nf_log_packet_begin(packet);
        int verdict = nf_process(device, rte_pktmbuf_mtod(m, uint8_t *), m->data_len,
                                 nanoseconds_since(start, hz));
        nf_log_packet_end();
        if (verdict == NF_DROP) {
          stats->dropped++;
          rte_pktmbuf_free(m);
        } else if (verdict == NF_FLOOD) {
          if (NF_DEVICES == 1) {
            rte_pktmbuf_free(m);
            continue;
          }
          rte_mbuf_refcnt_update(m, (int16_t)(NF_DEVICES - 2));
          for (uint16_t out = 0; out < NF_DEVICES; out++)
            if (out != device) queues[out].frames[queues[out].count++] = m;
        } else if (verdict >= 0 && verdict < NF_DEVICES) {
          queues[verdict].frames[queues[verdict].count++] = m;
        } else {
          fail(EXIT_VERDICT, "nf_process returned %d for packet %" PRIu64
               ": not a device of this NF (0..%d), NF_DROP or NF_FLOOD", verdict, packet, NF_DEVICES - 1);
        }
      }
      if (options->packets && stats->received >= options->packets) force_quit = 1;
      for (uint16_t out = 0; out < NF_DEVICES; out++)
        if (queues[out].count) flush(ports[out], &queues[out], stats);
    }
    uint64_t now = rte_get_tsc_cycles();
    if (received_now) last_rx = now;
    else if (idle_cycles && now - last_rx >= idle_cycles) break;
  }
}

int main(int argc, char **argv) {
  int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) fail(EXIT_SETUP, "cannot initialise DPDK's EAL (%s)", rte_strerror(rte_errno));
  nf_program_remove_runtime_dir_at_exit();
  struct options options = parse_options(argc - eal_args, argv + eal_args);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  uint16_t ports[NF_DEVICES], count = 0, port;
  RTE_ETH_FOREACH_DEV(port) {
    if (count < NF_DEVICES) ports[count] = port;
    count++;
  }
  if (count != NF_DEVICES)
    fail(EXIT_SETUP, "the NF has %d devices but DPDK found %u ports (give one per device, e.g. --vdev)",
         NF_DEVICES, count);
  struct rte_mempool *pool = rte_pktmbuf_pool_create("nfx_mbufs", MBUFS_PER_PORT * NF_DEVICES, MBUF_CACHE, 0,
                                                     RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == NULL) fail(EXIT_SETUP, "cannot create the mbuf pool (%s)", rte_strerror(rte_errno));
  for (uint16_t d = 0; d < NF_DEVICES; d++) setup_port(ports[d], pool);

  FILE *calls = NULL;
  if (options.calls != NULL) {
    calls = fopen(options.calls, "w");
    if (calls == NULL) fail(EXIT_SETUP, "cannot create %s: %s", options.calls, strerror(errno));
    nf_log_open(calls);
  }
  if (!nf_init()) {
    const char *why = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false)%s%s", why ? ": " : "", why ? why : "");
  }

  struct stats stats = {0, 0, 0, 0, 0};
  forward(ports, &options, &stats);

  for (uint16_t d = 0; d < NF_DEVICES; d++) {
    rte_eth_dev_stop(ports[d]);
    rte_eth_dev_close(ports[d]);
  }
  printf("nfx-dpdk: received %" PRIu64 ", sent %" PRIu64 ", dropped %" PRIu64 ", runts %" PRIu64
         ", tx failures %" PRIu64 "\n",
         stats.received, stats.sent, stats.dropped, stats.runts, stats.tx_failed);
  if (calls != NULL && (nf_log_close() != 0 || fclose(calls) != 0)) fail(EXIT_SETUP, "cannot write %s", options.calls);
  rte_eal_cleanup();
  return 0;
}
