/*
 * main.c: this project's NF as a DPDK 22.11 program on NF_CORES lcores.
 *
 *   nfx-nf [EAL options] -- [--packets N] [--idle-ms MS] [--rx-time] [--ordered]
 *
 * NF device d is the d-th port DPDK finds, so there must be exactly NF_DEVICES of them, and EAL
 * must be given exactly NF_CORES lcores. Every port gets one rx and one tx queue per lcore: lcore
 * number c (its rte_lcore_index) receives from queue c of every port and sends on queue c. Each
 * port is programmed with its solved RSS key (NF_KEY_BYTES long), rss_hf masked by what the
 * device offers (a loud warning when bits are dropped), the RETA of the plan (entry -> queue),
 * and, on NICs that select hashed fields through flow rules (ice, i40e), one RSS flow rule per
 * packet type; the key and RETA are read back and checked.
 *
 * --packets N  stop after N packets in all;
 * --idle-ms MS stop after MS milliseconds in which no lcore received anything;
 * --rx-time    take `now` from the rx timestamp (microseconds) that drivers such as net_pcap put
 *              in the mbuf, instead of the TSC: a pcap replay then sees the capture's times;
 * --ordered    with --rx-time: each lcore processes its ports' packets in timestamp order (ties
 *              by port), reading a port until it runs dry. For pcap files pre-split per queue,
 *              this processes every core's packets in the order a trace replay does.
 * SIGINT and SIGTERM stop the lcores; ports are then stopped and closed (net_pcap then flushes
 * its files) and per-lcore statistics printed.
 *
 * Exit status: 0 success, 1 bad usage or set-up, 2 nf_init failed, 3 a contract of nf.h was
 * broken, 4 nf_process returned a device the NF does not have.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>

#include "nf_parallel.h"
#include "nf_pool.h"
#include "nf_runtime.h"

#define BURST 32
#define RX_DESCRIPTORS 1024
#define TX_DESCRIPTORS 1024
#define MBUFS_PER_QUEUE 4095
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

/* Exit with `status` after one line "nfx-nf: <message>" on stderr. */
#define fail(status, ...) nf_program_exit("nfx-nf", status, __VA_ARGS__)

static void warn(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void warn(const char *format, ...) {
  va_list args;
  fputs("nfx-nf: WARNING: ", stderr);
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
}

struct options {
  uint64_t packets; /* 0: no limit */
  uint64_t idle_ms; /* 0: never stop when idle */
  bool rx_time;
  bool ordered;
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
  struct options options = {0, 0, false, false};
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--packets") == 0 && a + 1 < argc)
      options.packets = parse_count("--packets", argv[++a]);
    else if (strcmp(argv[a], "--idle-ms") == 0 && a + 1 < argc)
      options.idle_ms = parse_count("--idle-ms", argv[++a]);
    else if (strcmp(argv[a], "--rx-time") == 0)
      options.rx_time = true;
    else if (strcmp(argv[a], "--ordered") == 0)
      options.ordered = true;
    else
      fail(EXIT_SETUP, "unknown option '%s' (after --: --packets N, --idle-ms MS, --rx-time, --ordered)", argv[a]);
  }
  if (options.ordered && !options.rx_time) fail(EXIT_SETUP, "--ordered needs --rx-time");
  return options;
}

/* ---- ports -------------------------------------------------------------------------------- */

static uint16_t ports[NF_DEVICES];

/* Field selection through flow rules: one RSS action per packet type, keeping the port's RETA. */
static void add_flow_rules(uint16_t port, const struct nf_device_plan *plan) {
  for (unsigned r = 0; r < plan->flow_rules; r++) {
    struct rte_flow_attr attr = {.ingress = 1};
    struct rte_flow_item pattern[4] = {{.type = RTE_FLOW_ITEM_TYPE_ETH}, {.type = RTE_FLOW_ITEM_TYPE_IPV4}};
    int items = 2;
    if (plan->flow_rule[r].pattern == NF_PATTERN_IPV4_TCP) pattern[items++].type = RTE_FLOW_ITEM_TYPE_TCP;
    if (plan->flow_rule[r].pattern == NF_PATTERN_IPV4_UDP) pattern[items++].type = RTE_FLOW_ITEM_TYPE_UDP;
    pattern[items].type = RTE_FLOW_ITEM_TYPE_END;
    struct rte_flow_action_rss rss = {
        .func = RTE_ETH_HASH_FUNCTION_TOEPLITZ,
        .level = 0,
        .types = plan->flow_rule[r].types,
        .key_len = NF_KEY_BYTES,
        .queue_num = 0,
        .key = plan->key,
        .queue = NULL,
    };
    struct rte_flow_action actions[2] = {{.type = RTE_FLOW_ACTION_TYPE_RSS, .conf = &rss},
                                         {.type = RTE_FLOW_ACTION_TYPE_END}};
    struct rte_flow_error error;
    if (rte_flow_create(port, &attr, pattern, actions, &error) == NULL)
      warn("port %u: cannot add the RSS flow rule for packet type %d (%s): the NIC may hash fields the "
           "plan does not, and packets that share state may land on different cores",
           port, plan->flow_rule[r].pattern, error.message ? error.message : "no reason given");
  }
}

/* Program the RETA (device entry b -> plan entry b modulo the plan's size: related packets agree
 * on the plan's index bits, hence on the device's) and read it back. */
static void program_reta(uint16_t port, const struct nf_device_plan *plan, uint16_t size) {
  struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 * 4 / RTE_ETH_RETA_GROUP_SIZE];
  if (size == 0 || size > RTE_DIM(reta) * RTE_ETH_RETA_GROUP_SIZE) {
    warn("port %u: no RETA to program (size %u): packets must arrive pre-split per queue, as net_pcap's rx_pcap "
         "files are", port, size);
    return;
  }
  memset(reta, 0, sizeof reta);
  for (uint16_t b = 0; b < size; b++) {
    reta[b / RTE_ETH_RETA_GROUP_SIZE].mask |= UINT64_C(1) << (b % RTE_ETH_RETA_GROUP_SIZE);
    reta[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE] = plan->reta[b % NF_RETA_SIZE];
  }
  int status = rte_eth_dev_rss_reta_update(port, reta, size);
  if (status == -ENOTSUP) {
    warn("port %u: the device cannot program a RETA: packets must arrive pre-split per queue", port);
    return;
  }
  if (status != 0) fail(EXIT_SETUP, "port %u: cannot program the RETA (%s)", port, rte_strerror(-status));
  struct rte_eth_rss_reta_entry64 back[RTE_DIM(reta)];
  memset(back, 0, sizeof back);
  for (uint16_t g = 0; g < (size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE; g++) back[g].mask = reta[g].mask;
  if (rte_eth_dev_rss_reta_query(port, back, size) == 0)
    for (uint16_t b = 0; b < size; b++)
      if (back[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE] != plan->reta[b % NF_RETA_SIZE])
        fail(EXIT_SETUP, "port %u: RETA entry %u reads back as %u, not %u", port, b,
             back[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE], plan->reta[b % NF_RETA_SIZE]);
}

static void check_key(uint16_t port, const struct nf_device_plan *plan) {
  uint8_t key[NF_KEY_BYTES];
  struct rte_eth_rss_conf conf = {.rss_key = key, .rss_key_len = NF_KEY_BYTES};
  int status = rte_eth_dev_rss_hash_conf_get(port, &conf);
  if (status == -ENOTSUP) {
    warn("port %u: the key cannot be read back; the plan assumes the NIC uses it", port);
    return;
  }
  if (status != 0) fail(EXIT_SETUP, "port %u: cannot read the RSS key back (%s)", port, rte_strerror(-status));
  if (memcmp(key, plan->key, NF_KEY_BYTES) != 0)
    fail(EXIT_SETUP, "port %u: the NIC's RSS key is not the solved key (it would place packets that share state "
         "on different cores)", port);
}

static void setup_port(uint16_t port, uint16_t device, struct rte_mempool *pool) {
  const struct nf_device_plan *plan = &nf_device_plans[device];
  struct rte_eth_dev_info info;
  int status = rte_eth_dev_info_get(port, &info);
  if (status != 0) fail(EXIT_SETUP, "port %u: cannot read device info (%s)", port, rte_strerror(-status));
  if (info.max_rx_queues < NF_CORES || info.max_tx_queues < NF_CORES)
    fail(EXIT_SETUP, "port %u (%s) offers %u rx and %u tx queues; this build needs %d of each (one per lcore)",
         port, info.driver_name, info.max_rx_queues, info.max_tx_queues, NF_CORES);

  uint64_t rss_hf = plan->rss_hf & info.flow_type_rss_offloads;
  if (rss_hf != plan->rss_hf)
    warn("port %u (%s): ******** the device cannot hash as planned: rss_hf 0x%" PRIx64 " (%s) masked to 0x%" PRIx64
         " by its offloads 0x%" PRIx64 ". Unless the input is pre-split per queue in software, packets that share "
         "state may land on different cores. ********",
         port, info.driver_name, plan->rss_hf, plan->rss_hf_names, rss_hf, info.flow_type_rss_offloads);
  struct rte_eth_conf conf;
  memset(&conf, 0, sizeof conf);
  if (rss_hf != 0 && NF_CORES > 1) {
    if (info.hash_key_size != 0 && info.hash_key_size != NF_KEY_BYTES)
      fail(EXIT_SETUP, "port %u (%s) takes %u-byte RSS keys; this plan was solved for %d-byte keys (choose the "
           "NIC profile of this NIC with nfx generate --nic)", port, info.driver_name, info.hash_key_size, NF_KEY_BYTES);
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_key = (uint8_t *)(uintptr_t)plan->key;
    conf.rx_adv_conf.rss_conf.rss_key_len = NF_KEY_BYTES;
    conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
  }
  uint16_t rx_descriptors = RX_DESCRIPTORS, tx_descriptors = TX_DESCRIPTORS;
  if ((status = rte_eth_dev_configure(port, NF_CORES, NF_CORES, &conf)) != 0 ||
      (status = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_descriptors, &tx_descriptors)) != 0)
    fail(EXIT_SETUP, "port %u: cannot configure %d queues (%s)", port, NF_CORES, rte_strerror(-status));
  for (uint16_t q = 0; q < NF_CORES; q++)
    if ((status = rte_eth_rx_queue_setup(port, q, rx_descriptors, rte_eth_dev_socket_id(port), NULL, pool)) != 0 ||
        (status = rte_eth_tx_queue_setup(port, q, tx_descriptors, rte_eth_dev_socket_id(port), NULL)) != 0)
      fail(EXIT_SETUP, "port %u: cannot set up queue %u (%s)", port, q, rte_strerror(-status));
  if ((status = rte_eth_dev_start(port)) != 0) fail(EXIT_SETUP, "port %u: cannot start (%s)", port, rte_strerror(-status));
  rte_eth_promiscuous_enable(port); /* not every driver can; forwarding works either way */
  if (rss_hf != 0 && NF_CORES > 1) {
    program_reta(port, plan, info.reta_size);
    check_key(port, plan);
    add_flow_rules(port, plan);
  } else if (NF_CORES > 1) {
    warn("port %u (%s): RSS is off: packets must arrive pre-split per queue (as with one rx_pcap per queue)",
         port, info.driver_name);
  }
  char pools_why[512]; /* sharding by allocation: the pools this port's key and RETA give must be the plan's */
  if (nf_pools_from_port(port, device, rss_hf != 0 && NF_CORES > 1, pools_why, sizeof pools_why) != 0)
    fail(EXIT_SETUP, "port %u: %s", port, pools_why);
}

/* ---- per-lcore forwarding ------------------------------------------------------------------- */

struct lcore_stats {
  uint64_t received, sent, dropped, flooded, runts, tx_failed, writes, capacity_full;
} __rte_cache_aligned;

struct tx_queue {
  uint16_t count;
  struct rte_mbuf *frames[BURST]; /* flushed after every burst */
};

/* Per-lcore state, indexed by rte_lcore_id(). */
static struct lcore_state {
  struct lcore_stats stats;
  struct tx_queue tx[NF_DEVICES];
} __rte_cache_aligned lcores[RTE_MAX_LCORE];

static struct options options;
static uint64_t received_total __rte_cache_aligned; /* for --packets */
static uint64_t last_rx_tsc __rte_cache_aligned;    /* for --idle-ms */
static int timestamp_offset = -1;
static uint64_t timestamp_flag;
static unsigned init_turn, init_failed, ready, bad_verdict_lcore;
static int bad_verdict;

static void flush(uint16_t port, uint16_t queue, struct tx_queue *tx, struct lcore_stats *stats) {
  uint16_t sent = 0;
  for (int tries = 0; sent < tx->count && tries < TX_RETRIES; tries++)
    sent += rte_eth_tx_burst(port, queue, tx->frames + sent, tx->count - sent);
  stats->sent += sent;
  stats->tx_failed += tx->count - sent;
  for (uint16_t i = sent; i < tx->count; i++) rte_pktmbuf_free(tx->frames[i]);
  tx->count = 0;
}

static uint64_t now_ns(const struct rte_mbuf *m, uint64_t start, uint64_t hz) {
  if (options.rx_time && timestamp_offset >= 0 && (m->ol_flags & timestamp_flag))
    return *RTE_MBUF_DYNFIELD(m, timestamp_offset, const rte_mbuf_timestamp_t *) * 1000u;
  return (uint64_t)((unsigned __int128)(rte_get_tsc_cycles() - start) * 1000000000u / hz);
}

static void handle(struct lcore_state *me, uint16_t device, struct rte_mbuf *m, uint64_t start, uint64_t hz) {
  struct lcore_stats *stats = &me->stats;
  stats->received++;
  if (m->nb_segs != 1 || m->data_len < MIN_FRAME) { /* runts, and frames the NF cannot see whole */
    stats->runts++;
    rte_pktmbuf_free(m);
    return;
  }
  struct nf_outcome outcome;
  nf_par_process(device, rte_pktmbuf_mtod(m, uint8_t *), m->data_len, now_ns(m, start, hz), &outcome);
  stats->writes += outcome.ran == NF_RAN_WRITE;
  stats->capacity_full += outcome.capacity_hit;
  int verdict = outcome.verdict;
  if (verdict == NF_DROP) {
    stats->dropped++;
    rte_pktmbuf_free(m);
  } else if (verdict == NF_FLOOD) {
    stats->flooded++;
    if (NF_DEVICES == 1) {
      rte_pktmbuf_free(m);
      return;
    }
    rte_mbuf_refcnt_update(m, (int16_t)(NF_DEVICES - 2));
    for (uint16_t out = 0; out < NF_DEVICES; out++)
      if (out != device) me->tx[out].frames[me->tx[out].count++] = m;
  } else if (verdict >= 0 && verdict < NF_DEVICES) {
    me->tx[verdict].frames[me->tx[verdict].count++] = m;
  } else {
    rte_pktmbuf_free(m);
    __atomic_store_n(&bad_verdict, verdict, __ATOMIC_RELAXED);
    __atomic_store_n(&bad_verdict_lcore, rte_lcore_id() + 1, __ATOMIC_RELAXED);
    force_quit = 1;
  }
}

static void flush_all(struct lcore_state *me, uint16_t queue) {
  for (uint16_t out = 0; out < NF_DEVICES; out++)
    if (me->tx[out].count) flush(ports[out], queue, &me->tx[out], &me->stats);
}

static void count_received(uint16_t count) {
  if (options.packets && count && __atomic_add_fetch(&received_total, count, __ATOMIC_RELAXED) >= options.packets)
    force_quit = 1;
}

/* The usual loop: a burst from every port in turn. */
static void forward(struct lcore_state *me, uint16_t queue, uint64_t start, uint64_t hz) {
  struct rte_mbuf *burst[BURST];
  uint64_t idle = options.idle_ms * (hz / 1000);
  while (!force_quit) {
    uint16_t got = 0;
    for (uint16_t device = 0; device < NF_DEVICES; device++) {
      uint16_t count = rte_eth_rx_burst(ports[device], queue, burst, BURST);
      got += count;
      for (uint16_t i = 0; i < count; i++) handle(me, device, burst[i], start, hz);
      nf_par_quiesce(); /* locks: give the reader token back between bursts */
      flush_all(me, queue);
      count_received(count);
    }
    uint64_t now = rte_get_tsc_cycles();
    if (got)
      __atomic_store_n(&last_rx_tsc, now, __ATOMIC_RELAXED);
    else if (idle && now - __atomic_load_n(&last_rx_tsc, __ATOMIC_RELAXED) >= idle)
      break;
  }
}

/* --ordered: the packets of all ports in timestamp order (ties: lower port first); a port that
 * returns nothing is done. */
static void forward_ordered(struct lcore_state *me, uint16_t queue, uint64_t start, uint64_t hz) {
  struct rte_mbuf *pending[NF_DEVICES][BURST];
  uint16_t head[NF_DEVICES] = {0}, count[NF_DEVICES] = {0};
  bool dry[NF_DEVICES] = {false};
  while (!force_quit) {
    int best = -1;
    uint64_t best_time = 0;
    for (uint16_t d = 0; d < NF_DEVICES; d++) {
      if (head[d] == count[d] && !dry[d]) {
        head[d] = 0;
        count[d] = rte_eth_rx_burst(ports[d], queue, pending[d], BURST);
        count_received(count[d]);
        if (count[d] == 0) dry[d] = true;
      }
      if (head[d] < count[d]) {
        uint64_t t = now_ns(pending[d][head[d]], start, hz);
        if (best < 0 || t < best_time) {
          best = d;
          best_time = t;
        }
      }
    }
    if (best < 0) break;
    handle(me, (uint16_t)best, pending[best][head[best]++], start, hz);
    nf_par_quiesce();
    flush_all(me, queue);
  }
  nf_par_quiesce();
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    while (head[d] < count[d]) rte_pktmbuf_free(pending[d][head[d]++]);
}

static void wait_until(const unsigned *flag, unsigned value) {
  while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value) rte_pause();
}

static int lcore_main(void *unused) {
  (void)unused;
  int index = rte_lcore_index((int)rte_lcore_id());
  if (index < 0 || index >= NF_CORES) return -1;
  uint16_t queue = (uint16_t)index;
  /* sn: every core initialises its own state, one after the other (shared EAL heaps). */
  wait_until(&init_turn, queue);
  if (!nf_par_init_core(queue)) __atomic_store_n(&init_failed, queue + 1u, __ATOMIC_RELAXED);
  __atomic_store_n(&init_turn, queue + 1u, __ATOMIC_RELEASE);
  wait_until(&init_turn, NF_CORES);
  struct lcore_state *me = &lcores[rte_lcore_id()];
  uint64_t hz = rte_get_tsc_hz(), start = rte_get_tsc_cycles();
  __atomic_store_n(&last_rx_tsc, start, __ATOMIC_RELAXED);
  __atomic_fetch_add(&ready, 1, __ATOMIC_RELEASE);
  wait_until(&ready, NF_CORES);
  if (__atomic_load_n(&init_failed, __ATOMIC_RELAXED) == 0) {
    if (options.ordered)
      forward_ordered(me, queue, start, hz);
    else
      forward(me, queue, start, hz);
  }
  return 0;
}

int main(int argc, char **argv) {
  int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) fail(EXIT_SETUP, "cannot initialise DPDK's EAL (%s)", rte_strerror(rte_errno));
  options = parse_options(argc - eal_args, argv + eal_args);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  char why[160];
  if (nf_rss_self_test(why, sizeof why) != 0) fail(EXIT_SETUP, "software Toeplitz self-test failed: %s", why);
  if (rte_lcore_count() != NF_CORES)
    fail(EXIT_SETUP, "this build runs %d cores but EAL has %u lcores (give e.g. -l 0-%d)", NF_CORES,
         rte_lcore_count(), NF_CORES - 1);
  uint16_t count = 0, port;
  RTE_ETH_FOREACH_DEV(port) {
    if (count < NF_DEVICES) ports[count] = port;
    count++;
  }
  if (count != NF_DEVICES)
    fail(EXIT_SETUP, "the NF has %d devices but DPDK found %u ports (give one per device, e.g. --vdev)", NF_DEVICES,
         count);
  if (options.rx_time) {
    timestamp_offset = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, NULL);
    int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, NULL);
    if (timestamp_offset < 0 || bit < 0)
      warn("--rx-time: no driver registered rx timestamps; using the TSC");
    else
      timestamp_flag = UINT64_C(1) << bit;
  }
  struct rte_mempool *pool = rte_pktmbuf_pool_create("nfx_mbufs", MBUFS_PER_QUEUE * NF_DEVICES * NF_CORES, MBUF_CACHE,
                                                     0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == NULL) fail(EXIT_SETUP, "cannot create the mbuf pool (%s)", rte_strerror(rte_errno));
  for (uint16_t d = 0; d < NF_DEVICES; d++) setup_port(ports[d], d, pool);

  if (!nf_par_init()) fail(EXIT_INIT, "nf_init failed (returned false)");
  printf("nfx-nf: %s on %d cores, %d devices\n", NF_STRATEGY_NAME, NF_CORES, NF_DEVICES);
  fflush(stdout);
  rte_eal_mp_remote_launch(lcore_main, NULL, CALL_MAIN);
  rte_eal_mp_wait_lcore();

  for (uint16_t d = 0; d < NF_DEVICES; d++) {
    rte_eth_dev_stop(ports[d]);
    rte_eth_dev_close(ports[d]);
  }
  unsigned failed = __atomic_load_n(&init_failed, __ATOMIC_ACQUIRE);
  if (failed) fail(EXIT_INIT, "nf_init failed (returned false) on core %u", failed - 1);
  unsigned lcore_id;
  struct lcore_stats total;
  memset(&total, 0, sizeof total);
  RTE_LCORE_FOREACH(lcore_id) {
    const struct lcore_stats *s = &lcores[lcore_id].stats;
    printf("nfx-nf: lcore %u: received %" PRIu64 ", sent %" PRIu64 ", dropped %" PRIu64 ", flooded %" PRIu64
           ", runts %" PRIu64 ", tx failures %" PRIu64 ", write passes %" PRIu64 ", index allocations refused %" PRIu64
           "\n", lcore_id, s->received, s->sent, s->dropped, s->flooded, s->runts, s->tx_failed, s->writes,
           s->capacity_full);
    total.received += s->received;
    total.sent += s->sent;
    total.dropped += s->dropped;
    total.runts += s->runts;
    total.tx_failed += s->tx_failed;
  }
  printf("nfx-nf: received %" PRIu64 ", sent %" PRIu64 ", dropped %" PRIu64 ", runts %" PRIu64 ", tx failures %" PRIu64
         "\n", total.received, total.sent, total.dropped, total.runts, total.tx_failed);
  unsigned bad = __atomic_load_n(&bad_verdict_lcore, __ATOMIC_RELAXED);
  if (bad)
    fail(EXIT_VERDICT, "nf_process returned %d on lcore %u: not a device of this NF (0..%d), NF_DROP or NF_FLOOD",
         __atomic_load_n(&bad_verdict, __ATOMIC_RELAXED), bad - 1, NF_DEVICES - 1);
  rte_eal_cleanup();
  return 0;
}
