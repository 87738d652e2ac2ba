/*
 * main.c: this project's NF as a DPDK 22.11 program on NF_CORES lcores.
 *
 *   nfx-nf [EAL options] -- [--packets N] [--idle-ms MS] [--rx-time] [--ordered] [--degraded-ok] [--dispatch]
 *
 * NF device d is the d-th port DPDK finds, so there must be exactly NF_DEVICES of them, and EAL
 * must be given exactly NF_CORES lcores. Every port gets one rx and one tx queue per lcore: lcore
 * number c (its rte_lcore_index) receives from queue c of every port and sends on queue c.
 *
 * Steering (see steer_port). Each port is programmed with its solved RSS key (set on the port
 * with rte_eth_dev_rss_hash_update; cut or followed by zeros to the port's key length, which
 * changes no IPv4 hash), the rss_hf of the plan, the RETA of the plan (entry -> queue, repeated or
 * cut to the port's RETA size) and, on NICs that select hashed fields through flow rules (ice,
 * i40e), one RSS flow rule per packet type that carries the types alone; the key and RETA are read
 * back. A port of another NIC than the plan's takes a plan that selects no fields (hashing whole
 * addresses and ports, as every Toeplitz RSS NIC does). When the plan's correctness depends on it
 * (shared nothing with sharded state on several cores) and a port cannot hash as planned, the
 * program stops and says what failed and what would work, unless --degraded-ok is given (it then
 * runs with a loud warning). A device that does not hash at all (net_pcap, net_ring) needs its
 * input split per queue as the plan steers it, or --dispatch, which steers in software. Then
 * every lcore checks that the frames it receives are the ones the port should give it (see
 * on_planned_core) and stops the run at the first that is not: the start-up self-test checks only
 * the software Toeplitz.
 *
 * Frames. Ports take frames of up to NF_MAX_FRAME bytes (nf.h): the MTU is set for them, with
 * scattered rx where the device offers it, or cut (loudly) to what the port and one mbuf take
 * where it does not (see port_mtu); a frame that arrives in several segments is gathered
 * into a buffer of the lcore's for the NF and written back before it is sent. Frames shorter than
 * an Ethernet header (runts) or longer than NF_MAX_FRAME (giants) are dropped before the NF.
 *
 * --packets N   stop after N packets in all;
 * --idle-ms MS  stop after MS milliseconds in which no lcore received anything;
 * --rx-time     take `now` from the rx timestamp (microseconds) that drivers such as net_pcap put
 *               in the mbuf, instead of the TSC: a pcap replay then sees the capture's times;
 * --ordered     with --rx-time: each lcore processes its ports' packets in timestamp order (ties
 *               by port), reading a port until it runs dry. For pcap files pre-split per queue,
 *               this processes every core's packets in the order a trace replay does;
 * --degraded-ok run even when a port cannot hash as the plan needs (packets that share state may
 *               then land on different cores);
 * --dispatch    steer in software, for ports with one rx queue or no RSS (net_pcap's single
 *               rx_pcap, a NIC without RSS): EAL gives NF_CORES + 1 lcores; the first (the main
 *               lcore) alone reads and writes every port (one rx and one tx queue each) and sends
 *               each frame to the rte_ring of the core the plan's key and RETA give it
 *               (nf_rss_core); lcore i + 1 runs core i from its ring and hands its output back
 *               through a ring per port. With --ordered the dispatcher takes the ports' frames in
 *               timestamp order, so each core processes its frames in trace order. The steering
 *               check (on_planned_core) checks every frame a core takes from its ring.
 * SIGINT and SIGTERM stop the lcores. On every way out (the end of the run, a set-up failure, a
 * failed nf_init, a broken contract of nf.h) the ports are stopped and closed, so that net_pcap
 * flushes its files; per-lcore statistics and the totals are printed at the end of a run.
 *
 * Exit status: 0 success, 1 bad usage or set-up (a port that cannot hash as planned included),
 * 2 nf_init failed, 3 a contract of nf.h was broken, 4 nf_process returned a device the NF does
 * not have.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
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
#include <rte_ring.h>

#include "nf_parallel.h"
#include "nf_pool.h"
#include "nf_rss.h"
#include "nf_runtime.h"

/* nf_plan.c spells the ports' hash types with nf_rss.h's names: they must be DPDK's values. */
#define NF_SAME_RSS(name) _Static_assert(NF_RSS_##name == RTE_ETH_RSS_##name, "nf_rss.h: NF_RSS_" #name " differs from DPDK's")
NF_SAME_RSS(IPV4);
NF_SAME_RSS(FRAG_IPV4);
NF_SAME_RSS(NONFRAG_IPV4_TCP);
NF_SAME_RSS(NONFRAG_IPV4_UDP);
NF_SAME_RSS(NONFRAG_IPV4_SCTP);
NF_SAME_RSS(NONFRAG_IPV4_OTHER);
NF_SAME_RSS(PORT);
NF_SAME_RSS(L4_DST_ONLY);
NF_SAME_RSS(L4_SRC_ONLY);
NF_SAME_RSS(L3_DST_ONLY);
NF_SAME_RSS(L3_SRC_ONLY);

#define BURST 32
#define RX_DESCRIPTORS 1024
#define TX_DESCRIPTORS 1024
/* mbufs of RTE_MBUF_DEFAULT_BUF_SIZE: RTE_MBUF_DEFAULT_DATAROOM (2,048) bytes of frame after the headroom */
#define MBUF_DATA_ROOM RTE_MBUF_DEFAULT_DATAROOM
#define MBUF_CACHE 256
#define MIN_FRAME 14
#define IP_ALIGN 2 /* gathered frames start 2 bytes past an aligned address: IPv4 headers are aligned */
#define TX_RETRIES 64
#define EXIT_WAIT_MS 1000 /* how long a failing lcore waits for the others to leave their loops */

#define EXIT_SETUP 1
#define EXIT_INIT 2
#define EXIT_VERDICT 4

#define ONLY_FLAGS \
  (RTE_ETH_RSS_L3_SRC_ONLY | RTE_ETH_RSS_L3_DST_ONLY | RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY)

static volatile sig_atomic_t force_quit;

static void on_signal(int signum) {
  (void)signum;
  force_quit = 1;
}

/* Exit with `status` after one line "nfx-nf: <message>" on stderr (the ports are stopped on the
 * way out: see stop_ports). */
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

/* ---- options ------------------------------------------------------------------------------- */

struct options {
  uint64_t packets; /* 0: no limit */
  uint64_t idle_ms; /* 0: never stop when idle */
  bool rx_time;
  bool ordered;
  bool degraded_ok;
  bool dispatch;
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
  struct options options = {0, 0, false, false, false, false};
  for (int a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--packets") == 0 && a + 1 < argc)
      options.packets = parse_count("--packets", argv[++a]);
    else if (strcmp(argv[a], "--idle-ms") == 0 && a + 1 < argc)
      options.idle_ms = parse_count("--idle-ms", argv[++a]);
    else if (strcmp(argv[a], "--rx-time") == 0)
      options.rx_time = true;
    else if (strcmp(argv[a], "--ordered") == 0)
      options.ordered = true;
    else if (strcmp(argv[a], "--degraded-ok") == 0)
      options.degraded_ok = true;
    else if (strcmp(argv[a], "--dispatch") == 0)
      options.dispatch = true;
    else
      fail(EXIT_SETUP, "unknown option '%s' (after --: --packets N, --idle-ms MS, --rx-time, --ordered, "
           "--degraded-ok, --dispatch)", argv[a]);
  }
  if (options.ordered && !options.rx_time) fail(EXIT_SETUP, "--ordered needs --rx-time");
  return options;
}

static struct options options;

/* ---- every way out stops the ports ---------------------------------------------------------- */

static uint16_t ports[NF_DEVICES];
static bool port_started[NF_DEVICES];
static unsigned ports_stopping;
/* Per lcore: 1 while it runs its forwarding loop (a failing lcore waits for the others to leave
 * theirs before the ports stop under them). */
static struct {
  unsigned busy;
} __rte_cache_aligned in_loop[RTE_MAX_LCORE];

/* Registered with atexit, and called at the end of a normal run: stop and close every started
 * port once (net_pcap writes its files out then). When an lcore exits the process (a broken
 * contract of nf.h), the other lcores are asked to stop and given EXIT_WAIT_MS to leave their
 * loops first. */
static void stop_ports(void) {
  if (__atomic_exchange_n(&ports_stopping, 1, __ATOMIC_ACQ_REL)) return;
  force_quit = 1;
  unsigned self = rte_lcore_id();
  uint64_t deadline = rte_get_tsc_cycles() + rte_get_tsc_hz() / 1000 * EXIT_WAIT_MS;
  for (unsigned lcore = 0; lcore < RTE_MAX_LCORE; lcore++)
    while (lcore != self && __atomic_load_n(&in_loop[lcore].busy, __ATOMIC_ACQUIRE) &&
           rte_get_tsc_cycles() < deadline)
      rte_pause();
  for (uint16_t d = 0; d < NF_DEVICES; d++) {
    if (!port_started[d]) continue;
    struct rte_eth_stats s;
    bool counted = rte_eth_stats_get(ports[d], &s) == 0;
    rte_eth_dev_stop(ports[d]);
    rte_eth_dev_close(ports[d]);
    port_started[d] = false;
    if (counted) /* the device's own counters: what it dropped before any lcore saw it */
      printf("nfx-nf: port %u stopped: received %" PRIu64 ", sent %" PRIu64 ", missed %" PRIu64 ", rx errors %" PRIu64
             ", tx errors %" PRIu64 ", no mbufs %" PRIu64 "\n", ports[d], s.ipackets, s.opackets, s.imissed, s.ierrors,
             s.oerrors, s.rx_nombuf);
    else
      printf("nfx-nf: port %u stopped\n", ports[d]);
  }
  fflush(stdout);
}

/* ---- ports: queues, frame sizes ------------------------------------------------------------- */

/* Bytes a port adds to the MTU to get its largest frame: what it says (max_rx_pktlen - max_mtu,
 * where it gives both), else an Ethernet header and its CRC, which is how ethdev reckons too. */
static uint32_t frame_overhead(const struct rte_eth_dev_info *info) {
  if (info->max_mtu != UINT16_MAX && info->max_rx_pktlen > info->max_mtu) return info->max_rx_pktlen - info->max_mtu;
  return RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
}

/* The MTU that lets NF_MAX_FRAME-byte frames in (the Ethernet header is not part of the MTU), cut
 * to what the port takes: its largest MTU, its largest rx frame (max_rx_pktlen) and, where it
 * cannot scatter a frame over several mbufs (no RTE_ETH_RX_OFFLOAD_SCATTER), one mbuf's data room:
 * asking more makes ethdev or the driver refuse the port. A cut is said loudly, since the NIC then
 * drops the longer frames that nfx run and nfx check process. */
static uint16_t port_mtu(uint16_t port, const struct rte_eth_dev_info *info) {
  uint32_t overhead = frame_overhead(info), mtu = NF_MAX_FRAME - MIN_FRAME;
  char why[200] = "";
  if (info->max_mtu < mtu) {
    mtu = info->max_mtu;
    snprintf(why, sizeof why, "its largest MTU is %u bytes", info->max_mtu);
  }
  if (info->max_rx_pktlen < mtu + overhead) {
    mtu = info->max_rx_pktlen > overhead ? info->max_rx_pktlen - overhead : 0;
    snprintf(why, sizeof why, "its largest rx frame (max_rx_pktlen) is %u bytes, %u of them Ethernet overhead",
             info->max_rx_pktlen, overhead);
  }
  if (!(info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) && MBUF_DATA_ROOM < mtu + overhead) {
    mtu = MBUF_DATA_ROOM - overhead;
    snprintf(why, sizeof why, "it cannot scatter a frame over several mbufs (no RTE_ETH_RX_OFFLOAD_SCATTER) and an "
             "mbuf holds %u bytes, %u of them needed for Ethernet overhead", MBUF_DATA_ROOM, overhead);
  }
  if (mtu < info->min_mtu)
    fail(EXIT_SETUP, "port %u (%s): %s, which leaves an MTU of %u bytes, under its smallest (%u)", port,
         info->driver_name, why, mtu, info->min_mtu);
  /* Virtual devices whose receive path ignores the MTU: net_pcap gathers a frame longer than an
   * mbuf into a chain whatever its offloads say (measured: 9,018-byte frames arrive whole under an
   * MTU of 2,030), net_null makes its own frames, net_ring passes mbufs along. */
  static const char *const mtu_ignored[] = {"net_pcap", "net_null", "net_ring"};
  bool ignored = false;
  for (size_t i = 0; i < RTE_DIM(mtu_ignored); i++) ignored |= strcmp(info->driver_name, mtu_ignored[i]) == 0;
  if (why[0] && ignored)
    printf("nfx-nf: port %u (%s): %s, so its MTU is set to %u bytes, which this virtual device does not enforce\n",
           port, info->driver_name, why, mtu);
  else if (why[0])
    warn("port %u (%s): %s, so its MTU is set to %u bytes and the NIC drops frames over %u bytes (as captured, "
         "without VLAN tags); nfx run and nfx check process frames of up to %d bytes", port, info->driver_name, why,
         mtu, mtu + MIN_FRAME, NF_MAX_FRAME);
  return (uint16_t)mtu;
}

/* Per NF device: what its port said of itself and the ring sizes its driver settled on. */
struct port_setup {
  struct rte_eth_dev_info info;
  uint16_t rx_descriptors, tx_descriptors;
};

/* Configure the port's queues and take the descriptor counts its driver adjusts ours to (rounded
 * to its alignment, raised to its minimum, cut to its maximum), which the mbuf pool is sized for. */
static void configure_port(uint16_t port, struct port_setup *setup, const struct rte_eth_conf *steering) {
  const struct rte_eth_dev_info *info = &setup->info;
  unsigned queues = RTE_MIN(info->max_rx_queues, info->max_tx_queues);
  uint16_t wanted = options.dispatch ? 1 : NF_CORES; /* --dispatch: the dispatcher's queue alone */
  if (queues < wanted) {
    /* A device that does not hash (net_pcap: one queue per rx_pcap/tx_pcap) can be given more
     * queues; a NIC cannot, so the plan must have fewer cores. */
    char more[200] = "";
    if (info->flow_type_rss_offloads == 0)
      snprintf(more, sizeof more, ", or give the device %d queues (net_pcap: one rx_pcap and one tx_pcap per core, "
               "the input split as the plan steers it)", NF_CORES);
    fail(EXIT_SETUP, "port %u (%s) offers %u rx and %u tx queues; this build needs %d of each (one per lcore). To "
         "fix: generate for at most %u core%s (nfx generate --cores %u)%s; or steer in software (--dispatch, with "
         "%d lcores)", port, info->driver_name, info->max_rx_queues, info->max_tx_queues, NF_CORES,
         RTE_MAX(queues, 1u), queues > 1 ? "s" : "", RTE_MAX(queues, 1u), more, NF_CORES + 1);
  }
  struct rte_eth_conf conf = *steering;
  conf.rxmode.mtu = port_mtu(port, info);
  /* Frames bigger than an mbuf: scattered into segment chains where the device can. */
  conf.rxmode.offloads |= info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER;
  conf.txmode.offloads |= info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  setup->rx_descriptors = RX_DESCRIPTORS, setup->tx_descriptors = TX_DESCRIPTORS;
  int status;
  if ((status = rte_eth_dev_configure(port, wanted, wanted, &conf)) != 0 ||
      (status = rte_eth_dev_adjust_nb_rx_tx_desc(port, &setup->rx_descriptors, &setup->tx_descriptors)) != 0)
    fail(EXIT_SETUP, "port %u (%s): cannot configure %u queues (%s)", port, info->driver_name, wanted,
         rte_strerror(-status));
}

static void setup_queues(uint16_t port, const struct port_setup *setup, struct rte_mempool *pool) {
  int status;
  for (uint16_t q = 0; q < (options.dispatch ? 1 : NF_CORES); q++)
    if ((status = rte_eth_rx_queue_setup(port, q, setup->rx_descriptors, rte_eth_dev_socket_id(port), NULL, pool)) !=
            0 ||
        (status = rte_eth_tx_queue_setup(port, q, setup->tx_descriptors, rte_eth_dev_socket_id(port), NULL)) != 0)
      fail(EXIT_SETUP, "port %u: cannot set up queue %u (%s)", port, q, rte_strerror(-status));
}

/* The mbufs a run can hold at once: every rx ring full (a driver refills a descriptor as it hands
 * a frame over), every tx ring full (a frame stays there until the NIC has sent it), each lcore's
 * mempool cache at its flush threshold (1.5 times its size) and each lcore's frames in hand (a
 * received burst, or --ordered's burst per port, and a tx burst per port), each of up to
 * MAX_SEGMENTS mbufs. A pool short of that starves the rx rings (the device counts rx_nombuf). */
#define MAX_SEGMENTS ((NF_MAX_FRAME + MBUF_DATA_ROOM - 1) / MBUF_DATA_ROOM)
#define CORE_RING 1024 /* --dispatch: rte_ring slots (1023 usable) to each core and back from it per port */
static unsigned mbufs_needed(const struct port_setup setups[NF_DEVICES]) {
  unsigned queues = options.dispatch ? 1 : NF_CORES, lcores = NF_CORES + options.dispatch, rings = 0;
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    rings += queues * ((unsigned)setups[d].rx_descriptors + setups[d].tx_descriptors);
  unsigned in_hand = 2 * NF_DEVICES * BURST * MAX_SEGMENTS;
  if (options.dispatch) /* the core rings, and the dispatcher's frames sorted per core */
    rings += NF_CORES * (1 + NF_DEVICES) * CORE_RING + NF_CORES * BURST * MAX_SEGMENTS;
  return rings + lcores * (MBUF_CACHE * 3 / 2 + in_hand);
}

/* ---- steering: key, RETA, flow rules ------------------------------------------------------- */

/* Why a port cannot hash as planned. With NF_STEERING_MATTERS (shared nothing with sharded state)
 * that is fatal unless --degraded-ok; otherwise (seq, locks, tm, or nothing sharded) any steering
 * is correct and it only costs balance. */
static void steering_failed(uint16_t port, const char *driver, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Per port: whether it hashes at all (flow_type_rss_offloads), and its driver, kept for messages
 * after the ports are closed. */
static bool port_hashes[RTE_MAX_ETHPORTS];
static char port_driver[RTE_MAX_ETHPORTS][RTE_ETH_NAME_MAX_LEN];
/* Per NF device: whether the steering check (on_planned_core) looks at every frame, not a sample:
 * ports of another NIC than the plan's, and ports that do not hash (input split per queue by hand). */
static bool check_every_frame[NF_DEVICES];

static void steering_failed(uint16_t port, const char *driver, const char *format, ...) {
  char what[640];
  va_list args;
  va_start(args, format);
  vsnprintf(what, sizeof what, format, args);
  va_end(args);
  static const struct {
    const char *profile, *driver;
  } profiles[] = {NF_NIC_PROFILES};
  const char *fits = NULL;
  char names[160] = "";
  for (size_t i = 0, at = 0; i < RTE_DIM(profiles); i++) {
    if (strcmp(profiles[i].driver, driver) == 0) fits = profiles[i].profile;
    if (at < sizeof names)
      at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "", profiles[i].profile);
  }
  char remedy[400];
  if (port < RTE_MAX_ETHPORTS && !port_hashes[port])
    snprintf(remedy, sizeof remedy, "the port does not hash, so split its input per queue as the plan steers it "
             "(python -m explorer.verify.split), or steer in software (--dispatch), or generate with --strategy "
             "locks, which needs no steering");
  else if (fits == NULL)
    snprintf(remedy, sizeof remedy, "nfx has no NIC profile for %s (nfx generate --nic takes %s): generate with "
             "--strategy locks, which is correct whatever the NIC hashes", driver, names);
  else if (strcmp(fits, NF_NIC) != 0)
    snprintf(remedy, sizeof remedy, "this plan was solved for NIC profile %s (%s), but the port is %s: generate "
             "for profile %s (nfx generate --nic %s), or with --strategy locks, which needs no steering",
             NF_NIC, NF_NIC_DRIVER, driver, fits, fits);
  else
    snprintf(remedy, sizeof remedy, "the port is of the plan's NIC profile %s, whose driver should take this: check "
             "its driver and firmware, or generate with --strategy locks, which needs no steering", NF_NIC);
  if (!NF_STEERING_MATTERS) {
    warn("port %u (%s): %s. The %s strategy is correct with any steering, so the run goes on; only the balance "
         "across cores may suffer", port, driver, what, NF_STRATEGY_NAME);
  } else if (options.degraded_ok) {
    warn("******** DEGRADED: port %u (%s): %s. Packets that share state may land on different cores, so this run "
         "may differ from the sequential NF (--degraded-ok). To fix: %s. ********", port, driver, what, remedy);
  } else {
    fail(EXIT_SETUP, "port %u (%s) cannot hash as this plan needs: %s. Packets that share state would land on "
         "different cores. To fix: %s; or run with --degraded-ok to go on anyway", port, driver, what, remedy);
  }
}

/* The RETA sizes nfx can program (RTE_ETH_RSS_RETA_SIZE_512 * 4: E810's largest). */
#define MAX_RETA 2048

/* Per NF device: the RETA its port was programmed with and read back (the plan's, cut or repeated
 * to the port's size), which the steering check expects frames to follow; size 0: the plan's own
 * (ports that do not hash, or did not take it). */
static uint16_t steer_reta[NF_DEVICES][MAX_RETA];
static uint16_t steer_reta_size[NF_DEVICES];

/* Program the RETA and read it back. Device entry b gets plan entry b modulo the plan's size. A
 * larger device table then sends every packet where the plan does (its index has the plan's bits
 * and more). A smaller one keeps packets that share state together (the keys give them the same
 * plan index, hence the same low bits) but sends a packet where the plan's first entries say,
 * which differs from the plan unless its table repeats with the device's period: said, since the
 * load then differs from what nfx simulate showed and cores may get nothing. */
static void program_reta(uint16_t port, const struct rte_eth_dev_info *info, const struct nf_device_plan *plan) {
  static struct rte_eth_rss_reta_entry64 reta[MAX_RETA / RTE_ETH_RETA_GROUP_SIZE];
  uint16_t size = info->reta_size;
  if (size == 0 || size > MAX_RETA || (size & (size - 1)) != 0) {
    steering_failed(port, info->driver_name, "its RETA has %u entries; nfx programs RETAs of a power of two up to "
                    "%d entries (the plan's has %d)", size, MAX_RETA, NF_RETA_SIZE);
    return;
  }
  memset(reta, 0, sizeof reta);
  for (uint16_t b = 0; b < size; b++) {
    reta[b / RTE_ETH_RETA_GROUP_SIZE].mask |= UINT64_C(1) << (b % RTE_ETH_RETA_GROUP_SIZE);
    reta[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE] = plan->reta[b % NF_RETA_SIZE];
  }
  int status = rte_eth_dev_rss_reta_update(port, reta, size);
  if (status != 0) {
    steering_failed(port, info->driver_name, "it refused the plan's RETA of %u entries (%s)", size,
                    rte_strerror(-status));
    return;
  }
  if (size < NF_RETA_SIZE) {
    bool periodic = true, named[NF_CORES] = {false};
    unsigned reached = 0;
    for (unsigned e = 0; e < NF_RETA_SIZE; e++) periodic &= plan->reta[e] == plan->reta[e % size];
    for (unsigned e = 0; e < size; e++)
      if (!named[plan->reta[e]]) named[plan->reta[e]] = true, reached++;
    if (!periodic)
      warn("port %u (%s): its RETA has %u entries, the plan's %d. Packets that share state still meet on one core "
           "(the keys give them the same index bits), but the device's table, the plan's first %u entries, names %u "
           "of the %d cores and spreads the load unlike plan.txt and nfx simulate, which assume the %d entries of NIC "
           "profile %s", port, info->driver_name, size, NF_RETA_SIZE, size, reached, NF_CORES, NF_RETA_SIZE, NF_NIC);
  }
  static struct rte_eth_rss_reta_entry64 back[RTE_DIM(reta)];
  memset(back, 0, sizeof back);
  for (uint16_t g = 0; g < (size + RTE_ETH_RETA_GROUP_SIZE - 1) / RTE_ETH_RETA_GROUP_SIZE; g++) back[g].mask = reta[g].mask;
  size_t device = (size_t)(plan - nf_device_plans);
  if ((status = rte_eth_dev_rss_reta_query(port, back, size)) != 0) {
    /* Nothing to compare with: the frames will tell (every one is checked). */
    printf("nfx-nf: port %u (%s): its RETA cannot be read back (%s); the core of every frame it delivers is checked "
           "against the plan's\n", port, info->driver_name, rte_strerror(-status));
    check_every_frame[device] = true;
  } else {
    for (uint16_t b = 0; b < size; b++)
      if (back[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE] != plan->reta[b % NF_RETA_SIZE]) {
        steering_failed(port, info->driver_name, "RETA entry %u reads back as %u, not %u", b,
                        back[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE],
                        plan->reta[b % NF_RETA_SIZE]);
        return;
      }
  }
  for (uint16_t b = 0; b < size; b++) steer_reta[device][b] = plan->reta[b % NF_RETA_SIZE];
  steer_reta_size[device] = size;
}

/* RSS key lengths. An IPv4 hash input is at most 12 bytes (addresses, then ports) and Toeplitz
 * reads key bits 0 .. input bits + 31, so only a key's first HASHED_KEY_BYTES decide the hash of
 * the packets nfx steers: a device with other key lengths gets the plan's key cut, or followed by
 * zeros, and hashes them exactly as planned (rss_hf names no IPv6 type). */
#define HASHED_KEY_BYTES 16
#define MAX_KEY_BYTES 255 /* rte_eth_rss_conf.rss_key_len is a uint8_t */

/* Set the solved key on the port (rss_hf at port level: without the *_ONLY flags where flow rules
 * select the fields) and read it back, into a buffer that holds any key: some drivers (ice) write
 * their whole key whatever rss_key_len says. */
static void program_key(uint16_t port, const struct rte_eth_dev_info *info, const struct nf_device_plan *plan,
                        uint64_t port_hf) {
  uint8_t key[MAX_KEY_BYTES + 1] = {0}, back[MAX_KEY_BYTES + 1] = {0};
  uint8_t size = (uint8_t)info->hash_key_size;
  memcpy(key, plan->key, RTE_MIN((unsigned)size, (unsigned)NF_KEY_BYTES));
  if (size != NF_KEY_BYTES)
    printf("nfx-nf: port %u (%s) takes %u-byte RSS keys, the plan has %d-byte ones: it gets the plan's key %s "
           "(IPv4 hashes read only the first %d bytes, so they are the plan's)\n", port, info->driver_name, size,
           NF_KEY_BYTES, size < NF_KEY_BYTES ? "cut short" : "followed by zeros", HASHED_KEY_BYTES);
  struct rte_eth_rss_conf conf = {.rss_key = key, .rss_key_len = size, .rss_hf = port_hf};
  int status = rte_eth_dev_rss_hash_update(port, &conf);
  if (status != 0) {
    steering_failed(port, info->driver_name, "it refused the solved RSS key and rss_hf 0x%" PRIx64 " (%s)", port_hf,
                    rte_strerror(-status));
    return;
  }
  struct rte_eth_rss_conf read = {.rss_key = back, .rss_key_len = size};
  status = rte_eth_dev_rss_hash_conf_get(port, &read);
  if (status != 0) {
    steering_failed(port, info->driver_name, "its RSS key cannot be read back (%s)", rte_strerror(-status));
    return;
  }
  for (unsigned b = 0; b < size; b++)
    if (back[b] != key[b]) {
      steering_failed(port, info->driver_name, "its RSS key reads back different from the solved key (byte %u is "
                      "0x%02x, not 0x%02x)", b, back[b], key[b]);
      return;
    }
}

/* "RTE_ETH_RSS_L3_DST_ONLY | ..." for the bits of `mask` a plan can use, else its hex value. */
static void rss_hf_text(uint64_t mask, char *text, size_t size) {
  static const struct {
    uint64_t bit;
    const char *name;
  } names[] = {{RTE_ETH_RSS_IPV4, "RTE_ETH_RSS_IPV4"},
               {RTE_ETH_RSS_FRAG_IPV4, "RTE_ETH_RSS_FRAG_IPV4"},
               {RTE_ETH_RSS_NONFRAG_IPV4_TCP, "RTE_ETH_RSS_NONFRAG_IPV4_TCP"},
               {RTE_ETH_RSS_NONFRAG_IPV4_UDP, "RTE_ETH_RSS_NONFRAG_IPV4_UDP"},
               {RTE_ETH_RSS_NONFRAG_IPV4_OTHER, "RTE_ETH_RSS_NONFRAG_IPV4_OTHER"},
               {RTE_ETH_RSS_L4_DST_ONLY, "RTE_ETH_RSS_L4_DST_ONLY"},
               {RTE_ETH_RSS_L4_SRC_ONLY, "RTE_ETH_RSS_L4_SRC_ONLY"},
               {RTE_ETH_RSS_L3_DST_ONLY, "RTE_ETH_RSS_L3_DST_ONLY"},
               {RTE_ETH_RSS_L3_SRC_ONLY, "RTE_ETH_RSS_L3_SRC_ONLY"}};
  size_t at = 0;
  text[0] = '\0';
  for (size_t i = 0; i < RTE_DIM(names); i++)
    if ((mask & names[i].bit) && at < size)
      at += (size_t)snprintf(text + at, size - at, "%s%s", at ? " | " : "", names[i].name);
  uint64_t rest = mask;
  for (size_t i = 0; i < RTE_DIM(names); i++) rest &= ~names[i].bit;
  if (rest && at < size) snprintf(text + at, size - at, "%s0x%" PRIx64, at ? " | " : "", rest);
}

/* Field selection through flow rules: one RSS action per packet type (nf_flow_rss_rule). */
static void add_flow_rules(uint16_t port, const struct rte_eth_dev_info *info, const struct nf_device_plan *plan) {
  static const char *const names[] = {[NF_PATTERN_IPV4_TCP] = "eth / ipv4 / tcp",
                                      [NF_PATTERN_IPV4_UDP] = "eth / ipv4 / udp", [NF_PATTERN_IPV4] = "eth / ipv4"};
  for (unsigned r = 0; r < plan->flow_rules; r++) {
    struct rte_flow_attr attr;
    struct rte_flow_item pattern[NF_FLOW_ITEMS];
    struct rte_flow_action actions[2];
    struct rte_flow_action_rss rss;
    nf_flow_rss_rule(&plan->flow_rule[r], &attr, pattern, actions, &rss);
    struct rte_flow_error error = {.message = NULL};
    if (rte_flow_create(port, &attr, pattern, actions, &error) == NULL)
      steering_failed(port, info->driver_name, "it refused the RSS flow rule for %s (types 0x%" PRIx64 "): %s, so it "
                      "would hash fields the plan does not (%s)", names[plan->flow_rule[r].pattern],
                      plan->flow_rule[r].types, error.message ? error.message : "no reason given", plan->rss_hf_names);
  }
}

/* The port-level rss_hf: on a port of the plan's NIC what explorer/rss/nic.py says its driver takes
 * (i40e has FRAG_IPV4 and NONFRAG_IPV4_OTHER for RTE_ETH_RSS_IPV4; no *_ONLY flag where flow rules
 * select fields); on another NIC, the plan's own types, which every Toeplitz RSS NIC names alike. */
static bool plans_nic(const struct rte_eth_dev_info *info) { return strcmp(info->driver_name, NF_NIC_DRIVER) == 0; }

static uint64_t port_rss_hf(const struct rte_eth_dev_info *info, const struct nf_device_plan *plan) {
  return plans_nic(info) ? plan->port_hf : plan->rss_hf & ~ONLY_FLAGS;
}

/* After the port started: make it hash as the plan says, or say why it cannot. */
static void steer_port(uint16_t port, const struct rte_eth_dev_info *info, const struct nf_device_plan *plan) {
  if (NF_CORES == 1 || plan->rss_hf == 0) return; /* one core, or RSS off: every packet to queue 0 */
  if (info->flow_type_rss_offloads == 0) {
    printf("nfx-nf: port %u (%s) does not hash: its input must be split per queue already (as net_pcap's rx_pcap "
           "files are)\n", port, info->driver_name);
    return;
  }
  /* Another NIC than the plan's: which fields its *_ONLY flags or flow rules select is the driver's
   * own (explorer/rss/nic.py), but a plan without them hashes what every Toeplitz RSS NIC hashes (the
   * addresses, and the ports of TCP/UDP): such a port gets the plan's key and RETA, adapted to its
   * sizes, and the steering check looks at every frame it delivers. */
  if (!plans_nic(info)) {
    if (plan->rss_hf & ONLY_FLAGS)
      steering_failed(port, info->driver_name, "it is not a port of NIC profile %s (%s), whose field selection "
                      "(%s) the plan needs", NF_NIC, NF_NIC_DRIVER, plan->rss_hf_names);
    else
      printf("nfx-nf: port %u (%s) is not of the plan's NIC profile %s (%s); the plan hashes whole address and port "
             "fields as any Toeplitz RSS NIC does, so the port gets its key and RETA, and the core of every frame it "
             "delivers is checked against the plan's\n", port, info->driver_name, NF_NIC, NF_NIC_DRIVER);
  }
  if (info->hash_key_size < HASHED_KEY_BYTES) { /* hash_key_size is a uint8_t: never over MAX_KEY_BYTES */
    steering_failed(port, info->driver_name, "it takes %u-byte RSS keys; the plan's hashes need at least the first %d "
                    "bytes of its %d-byte key", info->hash_key_size, HASHED_KEY_BYTES, NF_KEY_BYTES);
    return;
  }
  uint64_t port_hf = port_rss_hf(info, plan);
  if (port_hf & ~info->flow_type_rss_offloads) {
    char lacking[320];
    rss_hf_text(port_hf & ~info->flow_type_rss_offloads, lacking, sizeof lacking);
    steering_failed(port, info->driver_name, "it cannot hash %s, which the plan's rss_hf (%s) needs: its "
                    "flow_type_rss_offloads are 0x%" PRIx64, lacking, plan->rss_hf_names, info->flow_type_rss_offloads);
    port_hf &= info->flow_type_rss_offloads;
  }
  program_key(port, info, plan, port_hf);
  program_reta(port, info, plan);
  if (plans_nic(info)) add_flow_rules(port, info, plan);
}

/* ---- links and sockets ---------------------------------------------------------------------- */

#define LINK_WAIT_MS 3000 /* NICs take a second or two to bring a link up after rte_eth_dev_start */

/* Wait up to LINK_WAIT_MS for every port's link, then name those still down: the run goes on
 * (a cable may be plugged in later), but a port without a link receives nothing. */
static void wait_for_links(void) {
  bool down[NF_DEVICES];
  for (unsigned waited = 0;; waited += 100) {
    unsigned any = 0;
    for (uint16_t d = 0; d < NF_DEVICES; d++) {
      struct rte_eth_link link;
      memset(&link, 0, sizeof link);
      down[d] = rte_eth_link_get_nowait(ports[d], &link) == 0 && link.link_status == RTE_ETH_LINK_DOWN;
      any += down[d];
    }
    if (!any || waited >= LINK_WAIT_MS || force_quit) break;
    rte_delay_ms(100);
  }
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    if (down[d] && !force_quit)
      warn("port %u (NF device %u): its link is still down after %d ms; it receives nothing until the link comes up "
           "(check the cable and the peer)", ports[d], d, LINK_WAIT_MS);
}

/* Lcores on another NUMA socket than their port work, but every frame crosses the sockets. */
static void check_sockets(uint16_t port, const char *driver) {
  int socket = rte_eth_dev_socket_id(port);
  if (socket < 0) return; /* virtual devices: no socket */
  char remote[160] = "";
  size_t at = 0;
  unsigned lcore;
  RTE_LCORE_FOREACH(lcore) {
    if ((int)rte_lcore_to_socket_id(lcore) != socket && at < sizeof remote)
      at += (size_t)snprintf(remote + at, sizeof remote - at, "%s%u", at ? ", " : "", lcore);
  }
  if (at)
    warn("port %u (%s) is on NUMA socket %d, lcores %s are not: their frames cross sockets, which is correct but "
         "slower; give EAL lcores of socket %d (-l)", port, driver, socket, remote, socket);
}

/* Before the mbuf pool exists: read the port, configure it (RSS at configure time too: some
 * drivers only enable multi-queue hashing there) and take its descriptor counts. */
static void prepare_port(uint16_t device, struct port_setup *setup) {
  uint16_t port = ports[device];
  const struct nf_device_plan *plan = &nf_device_plans[device];
  const struct rte_eth_dev_info *info = &setup->info;
  int status = rte_eth_dev_info_get(port, &setup->info);
  if (status != 0) fail(EXIT_SETUP, "port %u: cannot read device info (%s)", port, rte_strerror(-status));
  port_hashes[port] = info->flow_type_rss_offloads != 0;
  check_every_frame[device] =
      options.dispatch || !port_hashes[port] || !plans_nic(info);
  snprintf(port_driver[port], sizeof port_driver[port], "%s", info->driver_name);
  struct rte_eth_conf steering;
  memset(&steering, 0, sizeof steering);
  uint64_t port_hf = port_rss_hf(info, plan) & info->flow_type_rss_offloads;
  if (NF_CORES > 1 && port_hf != 0 && !options.dispatch) {
    steering.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    if (info->hash_key_size == NF_KEY_BYTES) {
      steering.rx_adv_conf.rss_conf.rss_key = (uint8_t *)(uintptr_t)plan->key;
      steering.rx_adv_conf.rss_conf.rss_key_len = NF_KEY_BYTES;
    }
    steering.rx_adv_conf.rss_conf.rss_hf = port_hf;
    /* the port's hash in each mbuf, which the steering check compares with the plan's */
    steering.rxmode.offloads |= info->rx_offload_capa & RTE_ETH_RX_OFFLOAD_RSS_HASH;
  }
  configure_port(port, setup, &steering);
}

/* With the pool: queues, start, steering. */
static void setup_port(uint16_t device, const struct port_setup *setup, struct rte_mempool *pool) {
  uint16_t port = ports[device];
  const struct nf_device_plan *plan = &nf_device_plans[device];
  const struct rte_eth_dev_info *info = &setup->info;
  setup_queues(port, setup, pool);
  int status;
  if ((status = rte_eth_dev_start(port)) != 0)
    fail(EXIT_SETUP, "port %u: cannot start (%s)", port, rte_strerror(-status));
  port_started[device] = true;
  check_sockets(port, info->driver_name);
  rte_eth_promiscuous_enable(port); /* not every driver can; forwarding works either way */
  if (options.dispatch)
    printf("nfx-nf: port %u (%s): steered in software by the dispatcher (--dispatch) with the plan's key and RETA\n",
           port, info->driver_name);
  else
    steer_port(port, info, plan);
  /* sharding by allocation: the pools this port's key and RETA give must be the plan's */
  bool steered = NF_CORES > 1 && plan->rss_hf != 0 && info->flow_type_rss_offloads != 0 && !options.dispatch;
  char pools_why[512];
  if (nf_pools_from_port(port, device, steered, pools_why, sizeof pools_why) != 0)
    fail(EXIT_SETUP, "port %u: %s", port, pools_why);
}

/* ---- frames: one contiguous view of an mbuf chain ------------------------------------------- */

/* Per-lcore state, indexed by rte_lcore_id(). */
struct lcore_stats {
  uint64_t received, forwarded, dropped, flooded, runts, giants, sent, tx_failed, writes, cells, capacity_full;
  uint64_t misplaced;  /* --degraded-ok: frames that arrived on another core than the plan's */
  uint64_t dispatched; /* --dispatch: frames the dispatcher read and sent to a core's ring */
} __rte_cache_aligned;

struct tx_queue {
  uint16_t count;
  struct rte_mbuf *frames[BURST]; /* flushed after every burst */
};

static struct lcore_state {
  struct lcore_stats stats;
  struct tx_queue tx[NF_DEVICES];
  uint64_t steer_seen[NF_DEVICES]; /* frames from each port, for the steering check's sampling */
  uint8_t gathered[IP_ALIGN + NF_MAX_FRAME] __rte_cache_aligned; /* a segmented frame, whole */
} __rte_cache_aligned lcores[RTE_MAX_LCORE];

/* The frame's bytes in one piece: the mbuf's own data, or its segments gathered into `buffer`. */
static uint8_t *frame_bytes(struct rte_mbuf *m, uint8_t *buffer) {
  if (m->nb_segs == 1) return rte_pktmbuf_mtod(m, uint8_t *);
  uint8_t *at = buffer;
  for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
    memcpy(at, rte_pktmbuf_mtod(s, const uint8_t *), s->data_len);
    at += s->data_len;
  }
  return buffer;
}

/* Write a gathered frame (as the NF left it) back into its segments. */
static void scatter_back(struct rte_mbuf *m, const uint8_t *bytes) {
  if (m->nb_segs == 1) return;
  for (struct rte_mbuf *s = m; s != NULL; s = s->next) {
    memcpy(rte_pktmbuf_mtod(s, uint8_t *), bytes, s->data_len);
    bytes += s->data_len;
  }
}

/* ---- steering check: every frame on the core the plan gives it ------------------------------ */

/* nf_rss_self_test checks only the software Toeplitz against published vectors; what a port does
 * with the key, RETA and rules it accepted shows only in the frames it steers. When the plan's
 * correctness depends on steering, each lcore recomputes for the IPv4 frames it receives the core
 * the port should give them (the plan's key, the RETA the port took: steer_reta) and compares it
 * with the queue they came from, and the port's hash, where it reports one, with the plan's: every
 * frame of the first STEER_CHECK_ALL per lcore and port, then one in STEER_CHECK_EVERY (rte_softrss
 * costs about as much as a short frame's trip through the NF). A frame on another core would meet
 * state that core does not hold: the run stops before the NF sees it (exit 1, see steering_failed),
 * unless --degraded-ok, which counts such frames and says so once per port.
 *
 * What the port hashes (nf_rss_hash): the plan's fields of an unfragmented IPv4 TCP/UDP frame (its
 * NONFRAG_IPV4_TCP/UDP types); of any other IPv4 frame, a fragment (MF set or an offset: the ports
 * are not in every fragment, so NICs hash fragments on the addresses) or another protocol, the
 * plan's portless_fields, under the RTE_ETH_RSS_IPV4 type every plan that hashes carries, with the
 * same L3_*_ONLY flag (in rss_hf, or in the "eth / ipv4" flow rule): its address fields, or both
 * addresses on a plan that hashes ports alone (ice and i40e can select L4 fields only, and that
 * plan's rule names no L3 flag). nfx simulate and the per-queue split steer them the same way.
 * Non-IPv4 frames are not checked: no hash type of the plan covers them, and where a NIC puts
 * frames it does not hash is the driver's choice (queue 0, or the RETA entry of hash 0). */
#define STEER_CHECK_ALL 4096
#define STEER_CHECK_EVERY 64
#define STEERING_CHECKED (NF_STEERING_MATTERS && NF_CORES > 1)
#define IPV4_MF 0x2000u
#define IPV4_OFFSET 0x1fffu

static struct {
  unsigned set; /* the first misplaced frame, which stops the run */
  uint16_t device, queue, core;
  bool device_hashed, ports, fragment;
  uint8_t protocol;
  uint32_t hash, device_hash;
  uint32_t src, dst; /* host order */
  uint16_t sport, dport;
} misplaced;
static unsigned misplaced_said[NF_DEVICES]; /* --degraded-ok: said once per port */

static bool on_planned_core(struct lcore_state *me, uint16_t device, uint16_t queue, const struct rte_mbuf *m,
                            uint8_t *packet) {
  const struct nf_device_plan *plan = &nf_device_plans[device];
  if (!STEERING_CHECKED || plan->rss_hf == 0) return true;
  if (__atomic_load_n(&misplaced.set, __ATOMIC_RELAXED)) return false; /* stopping: the NF sees no more */
  uint64_t seen = me->steer_seen[device]++;
  if (!check_every_frame[device] && seen >= STEER_CHECK_ALL && seen % STEER_CHECK_EVERY != 0) return true;
  uint16_t len = (uint16_t)m->pkt_len;
  const struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return true;
  const struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  uint32_t hash = nf_rss_hash(plan, packet, len);
  unsigned size = steer_reta_size[device];
  unsigned core = size ? steer_reta[device][hash & (size - 1u)] : plan->reta[hash & (NF_RETA_SIZE - 1)];
  bool hashed = (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) != 0;
  if (core == queue && (!hashed || m->hash.rss == hash)) return true;
  if (options.degraded_ok) {
    me->stats.misplaced++;
    if (!__atomic_exchange_n(&misplaced_said[device], 1, __ATOMIC_RELAXED))
      warn("******** DEGRADED: port %u delivered a frame to core %u that the plan steers to core %u; such frames "
           "run on a core that may not hold their state (--degraded-ok) ********", ports[device], queue, core);
    return true;
  }
  if (__atomic_exchange_n(&misplaced.set, 1, __ATOMIC_ACQ_REL)) return false;
  misplaced.device = device, misplaced.queue = queue, misplaced.core = (uint16_t)core;
  misplaced.device_hashed = hashed, misplaced.hash = hash, misplaced.device_hash = m->hash.rss;
  misplaced.src = rte_be_to_cpu_32(ip->src_addr), misplaced.dst = rte_be_to_cpu_32(ip->dst_addr);
  misplaced.ports = l4 != NULL, misplaced.protocol = ip->protocol;
  misplaced.fragment = (rte_be_to_cpu_16(ip->frag_off) & (IPV4_MF | IPV4_OFFSET)) != 0;
  if (l4 != NULL) misplaced.sport = rte_be_to_cpu_16(l4->src_port), misplaced.dport = rte_be_to_cpu_16(l4->dst_port);
  force_quit = 1;
  return false;
}

/* After the lcores stopped: the first misplaced frame, if one stopped the run (exits). */
static void report_misplaced(void) {
  if (!__atomic_load_n(&misplaced.set, __ATOMIC_ACQUIRE)) return;
  uint16_t port = ports[misplaced.device];
  char frame[96], where[64] = "", hashes[96] = "";
#define NF_QUAD(a) (a) >> 24, (a) >> 16 & 0xff, (a) >> 8 & 0xff, (a) & 0xff
  if (misplaced.ports)
    snprintf(frame, sizeof frame, "%u.%u.%u.%u:%u -> %u.%u.%u.%u:%u", NF_QUAD(misplaced.src), misplaced.sport,
             NF_QUAD(misplaced.dst), misplaced.dport);
  else /* hashed on its addresses alone */
    snprintf(frame, sizeof frame, "%u.%u.%u.%u -> %u.%u.%u.%u, %s of IP protocol %u", NF_QUAD(misplaced.src),
             NF_QUAD(misplaced.dst), misplaced.fragment ? "a fragment" : "a packet", misplaced.protocol);
  if (misplaced.queue != misplaced.core)
    snprintf(where, sizeof where, " to core %u, which the plan steers to core %u", misplaced.queue, misplaced.core);
  if (misplaced.device_hashed && misplaced.device_hash != misplaced.hash)
    snprintf(hashes, sizeof hashes, "%s with hash 0x%08" PRIx32 " where the plan's key gives 0x%08" PRIx32,
             where[0] ? ";" : "", misplaced.device_hash, misplaced.hash);
  steering_failed(port, port_driver[port], "it delivered a frame (%s)%s%s", frame, where, hashes);
#undef NF_QUAD
}

/* ---- per-lcore forwarding ------------------------------------------------------------------- */

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

static void handle(struct lcore_state *me, uint16_t device, uint16_t queue, struct rte_mbuf *m, uint64_t start,
                   uint64_t hz) {
  struct lcore_stats *stats = &me->stats;
  if (m->pkt_len < MIN_FRAME || m->pkt_len > NF_MAX_FRAME) { /* the NF never sees these */
    stats->received++;
    stats->runts += m->pkt_len < MIN_FRAME;
    stats->giants += m->pkt_len > NF_MAX_FRAME;
    rte_pktmbuf_free(m);
    return;
  }
  uint8_t *packet = frame_bytes(m, me->gathered + IP_ALIGN);
  if (!on_planned_core(me, device, queue, m, packet)) { /* the run stops: not counted, never processed */
    rte_pktmbuf_free(m);
    return;
  }
  stats->received++;
  struct nf_outcome outcome;
  nf_par_process(device, packet, (uint16_t)m->pkt_len, now_ns(m, start, hz), &outcome);
  stats->writes += outcome.ran == NF_RAN_WRITE;
  stats->cells += outcome.ran == NF_RAN_CELLS;
  stats->capacity_full += outcome.capacity_hit;
  int verdict = outcome.verdict;
  if (verdict == NF_DROP) {
    stats->dropped++;
    rte_pktmbuf_free(m);
    return;
  }
  if (verdict != NF_FLOOD && (verdict < 0 || verdict >= NF_DEVICES)) {
    rte_pktmbuf_free(m);
    __atomic_store_n(&bad_verdict, verdict, __ATOMIC_RELAXED);
    __atomic_store_n(&bad_verdict_lcore, rte_lcore_id() + 1, __ATOMIC_RELAXED);
    force_quit = 1;
    return;
  }
  scatter_back(m, packet);
  if (verdict == NF_FLOOD) {
    stats->flooded++;
    if (NF_DEVICES == 1) {
      rte_pktmbuf_free(m);
      return;
    }
    rte_pktmbuf_refcnt_update(m, (int16_t)(NF_DEVICES - 2)); /* every segment: each send frees once */
    for (uint16_t out = 0; out < NF_DEVICES; out++)
      if (out != device) me->tx[out].frames[me->tx[out].count++] = m;
  } else {
    stats->forwarded++;
    me->tx[verdict].frames[me->tx[verdict].count++] = m;
  }
}

/* --dispatch: the rings to each core and, per core and port, back to the dispatcher, which alone
 * uses the ports; device_of[port] is the NF device of a port (the mbuf says its port). */
static struct rte_ring *to_core[NF_CORES], *from_core[NF_CORES][NF_DEVICES];
static uint16_t device_of[RTE_MAX_ETHPORTS];
static unsigned dispatch_done, workers_left;

/* A core's output, handed back to the dispatcher, which keeps emptying these rings until every
 * core has left its loop: a full ring is waited for, unless the run is being stopped. */
static void hand_back(uint16_t core, uint16_t out, struct tx_queue *tx, struct lcore_stats *stats) {
  unsigned handed = 0;
  while (handed < tx->count && !force_quit) {
    handed += rte_ring_sp_enqueue_burst(from_core[core][out], (void **)(tx->frames + handed), tx->count - handed, NULL);
    if (handed < tx->count) rte_pause();
  }
  stats->tx_failed += tx->count - handed;
  for (uint16_t i = (uint16_t)handed; i < tx->count; i++) rte_pktmbuf_free(tx->frames[i]);
  tx->count = 0;
}

static void flush_all(struct lcore_state *me, uint16_t queue) {
  for (uint16_t out = 0; out < NF_DEVICES; out++)
    if (me->tx[out].count) {
      if (options.dispatch)
        hand_back(queue, out, &me->tx[out], &me->stats);
      else
        flush(ports[out], queue, &me->tx[out], &me->stats);
    }
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
      for (uint16_t i = 0; i < count; i++) handle(me, device, queue, burst[i], start, hz);
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
    handle(me, (uint16_t)best, queue, pending[best][head[best]++], start, hz);
    nf_par_quiesce();
    flush_all(me, queue);
  }
  nf_par_quiesce();
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    while (head[d] < count[d]) rte_pktmbuf_free(pending[d][head[d]++]);
}

/* --dispatch, a core: its frames from its ring until the dispatcher is done and the ring empty.
 * When the run is stopped (a signal, a misplaced frame, a bad verdict) the frames still in the
 * ring are freed unprocessed, as those left in a NIC's rx ring are. */
static void forward_dispatched(struct lcore_state *me, uint16_t core, uint64_t start, uint64_t hz) {
  struct rte_mbuf *burst[BURST];
  for (;;) {
    bool done = __atomic_load_n(&dispatch_done, __ATOMIC_ACQUIRE); /* before the dequeue: see dispatch */
    unsigned count = rte_ring_sc_dequeue_burst(to_core[core], (void **)burst, BURST, NULL);
    for (unsigned i = 0; i < count; i++) {
      if (force_quit)
        rte_pktmbuf_free(burst[i]);
      else
        handle(me, device_of[burst[i]->port], core, burst[i], start, hz);
    }
    nf_par_quiesce();
    flush_all(me, core);
    if (count == 0 && done) break;
  }
  __atomic_fetch_add(&workers_left, 1, __ATOMIC_RELEASE);
}

/* The dispatcher's tx: a burst of every core's output per port, on the port's queue 0; how many
 * frames it took. */
static unsigned send_back(struct lcore_stats *stats) {
  struct tx_queue tx;
  unsigned taken = 0;
  for (uint16_t c = 0; c < NF_CORES; c++)
    for (uint16_t d = 0; d < NF_DEVICES; d++) {
      tx.count = (uint16_t)rte_ring_sc_dequeue_burst(from_core[c][d], (void **)tx.frames, BURST, NULL);
      taken += tx.count;
      if (tx.count) flush(ports[d], 0, &tx, stats);
    }
  return taken;
}

/* Frames sorted per core, then put on the cores' rings; a full ring is waited for (the cores keep
 * draining theirs, and the dispatcher sends their output meanwhile). */
struct sorted {
  uint16_t count[NF_CORES];
  struct rte_mbuf *frames[NF_CORES][BURST];
};

static void to_cores(struct sorted *sorted, struct lcore_stats *stats) {
  for (uint16_t c = 0; c < NF_CORES; c++) {
    unsigned put = 0;
    while (put < sorted->count[c]) {
      put += rte_ring_sp_enqueue_burst(to_core[c], (void **)(sorted->frames[c] + put), sorted->count[c] - put, NULL);
      if (put < sorted->count[c]) send_back(stats);
      if (force_quit) break;
    }
    for (unsigned i = put; i < sorted->count[c]; i++) rte_pktmbuf_free(sorted->frames[c][i]);
    sorted->count[c] = 0;
  }
}

/* The core the plan's key and RETA give a frame (its headers are in its first segment, whose
 * 2,048 bytes hold any Ethernet, IPv4 and L4 header); runts go to core 0, which counts them. */
static void steer_frame(struct sorted *sorted, uint16_t device, struct rte_mbuf *m, struct lcore_stats *stats) {
  unsigned core = m->pkt_len < MIN_FRAME ? 0 : nf_rss_core(device, rte_pktmbuf_mtod(m, uint8_t *), m->data_len, NULL);
  sorted->frames[core][sorted->count[core]++] = m;
  stats->dispatched++;
  if (sorted->count[core] == BURST) to_cores(sorted, stats);
}

/* --dispatch, the main lcore: read every port (queue 0), sort, send the cores' output. It stops
 * as the usual loops do (--packets, --idle-ms, --ordered's dry ports, a stop); then it tells the
 * cores (dispatch_done, after the last frame is on their rings) and sends their output until every
 * core has left its loop. */
static void dispatch(struct lcore_state *me, uint64_t hz) {
  static struct sorted sorted;
  struct rte_mbuf *pending[NF_DEVICES][BURST];
  uint16_t head[NF_DEVICES] = {0}, count[NF_DEVICES] = {0};
  bool dry[NF_DEVICES] = {false};
  uint64_t idle = options.idle_ms * (hz / 1000), start = rte_get_tsc_cycles();
  while (!force_quit && !(options.packets && me->stats.dispatched >= options.packets)) {
    if (options.ordered) { /* the ports' frames in timestamp order, ties by port; all dry: done */
      int best = -1;
      uint64_t best_time = 0;
      for (uint16_t d = 0; d < NF_DEVICES; d++) {
        if (head[d] == count[d] && !dry[d]) {
          head[d] = 0;
          count[d] = rte_eth_rx_burst(ports[d], 0, pending[d], BURST);
          dry[d] = count[d] == 0;
        }
        if (head[d] < count[d]) {
          uint64_t t = now_ns(pending[d][head[d]], start, hz);
          if (best < 0 || t < best_time) best = d, best_time = t;
        }
      }
      if (best < 0) break;
      steer_frame(&sorted, (uint16_t)best, pending[best][head[best]++], &me->stats);
    } else {
      uint16_t got = 0;
      for (uint16_t d = 0; d < NF_DEVICES; d++) {
        uint16_t n = rte_eth_rx_burst(ports[d], 0, pending[d], BURST);
        got += n;
        for (uint16_t i = 0; i < n; i++) steer_frame(&sorted, d, pending[d][i], &me->stats);
      }
      uint64_t now = rte_get_tsc_cycles();
      if (got)
        __atomic_store_n(&last_rx_tsc, now, __ATOMIC_RELAXED);
      else if (idle && now - __atomic_load_n(&last_rx_tsc, __ATOMIC_RELAXED) >= idle)
        break;
    }
    to_cores(&sorted, &me->stats);
    send_back(&me->stats);
  }
  to_cores(&sorted, &me->stats);
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    while (head[d] < count[d]) rte_pktmbuf_free(pending[d][head[d]++]);
  /* Release: a core that sees dispatch_done before its dequeue also sees every frame put before. */
  __atomic_store_n(&dispatch_done, 1, __ATOMIC_RELEASE);
  while (__atomic_load_n(&workers_left, __ATOMIC_ACQUIRE) < NF_CORES) send_back(&me->stats);
  while (send_back(&me->stats)) continue;
}

static void wait_until(const unsigned *flag, unsigned value) {
  while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) != value) rte_pause();
}

/* Lcore index i runs core i, or with --dispatch core i - 1, index 0 (the main lcore) dispatching. */
static int lcore_main(void *unused) {
  (void)unused;
  int index = rte_lcore_index((int)rte_lcore_id()) - options.dispatch, count = NF_CORES + options.dispatch;
  struct lcore_state *me = &lcores[rte_lcore_id()];
  if (index == -1) { /* the dispatcher: once every core is initialised */
    wait_until(&init_turn, NF_CORES);
    uint64_t hz = rte_get_tsc_hz();
    __atomic_store_n(&last_rx_tsc, rte_get_tsc_cycles(), __ATOMIC_RELAXED);
    __atomic_fetch_add(&ready, 1, __ATOMIC_RELEASE);
    wait_until(&ready, (unsigned)count);
    __atomic_store_n(&in_loop[rte_lcore_id()].busy, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&init_failed, __ATOMIC_RELAXED) == 0) dispatch(me, hz);
    __atomic_store_n(&in_loop[rte_lcore_id()].busy, 0, __ATOMIC_RELEASE);
    return 0;
  }
  if (index < 0 || index >= NF_CORES) return -1;
  uint16_t queue = (uint16_t)index;
  /* sn: every core initialises its own state, one after the other (shared EAL heaps). */
  wait_until(&init_turn, queue);
  if (!nf_par_init_core(queue)) __atomic_store_n(&init_failed, queue + 1u, __ATOMIC_RELAXED);
  __atomic_store_n(&init_turn, queue + 1u, __ATOMIC_RELEASE);
  wait_until(&init_turn, NF_CORES);
  uint64_t hz = rte_get_tsc_hz(), start = rte_get_tsc_cycles();
  __atomic_store_n(&last_rx_tsc, start, __ATOMIC_RELAXED);
  __atomic_fetch_add(&ready, 1, __ATOMIC_RELEASE);
  wait_until(&ready, (unsigned)count);
  if (__atomic_load_n(&init_failed, __ATOMIC_RELAXED) == 0) {
    __atomic_store_n(&in_loop[rte_lcore_id()].busy, 1, __ATOMIC_RELEASE);
    if (options.dispatch)
      forward_dispatched(me, queue, start, hz);
    else if (options.ordered)
      forward_ordered(me, queue, start, hz);
    else
      forward(me, queue, start, hz);
    __atomic_store_n(&in_loop[rte_lcore_id()].busy, 0, __ATOMIC_RELEASE);
  }
  return 0;
}

/* ---- statistics ----------------------------------------------------------------------------- */

static void print_stats(void) {
  unsigned lcore_id;
  struct lcore_stats total;
  memset(&total, 0, sizeof total);
  RTE_LCORE_FOREACH(lcore_id) {
    const struct lcore_stats *s = &lcores[lcore_id].stats;
    printf("nfx-nf: lcore %u: received %" PRIu64 ", forwarded %" PRIu64 ", flooded %" PRIu64 ", dropped %" PRIu64
           ", runts %" PRIu64 ", giants %" PRIu64 ", sent %" PRIu64 ", tx failures %" PRIu64 ", write passes %" PRIu64
           ", cell write passes %" PRIu64 ", index allocations refused %" PRIu64 "\n", lcore_id, s->received, s->forwarded,
           s->flooded, s->dropped, s->runts, s->giants, s->sent, s->tx_failed, s->writes, s->cells, s->capacity_full);
    total.received += s->received;
    total.forwarded += s->forwarded;
    total.flooded += s->flooded;
    total.dropped += s->dropped;
    total.runts += s->runts;
    total.giants += s->giants;
    total.sent += s->sent;
    total.tx_failed += s->tx_failed;
    total.misplaced += s->misplaced;
  }
  /* received = forwarded + flooded + dropped + runts + giants (sent counts frames: a flood is sent
   * on every device but its own) */
  printf("nfx-nf: received %" PRIu64 ", forwarded %" PRIu64 ", flooded %" PRIu64 ", dropped %" PRIu64 ", runts %" PRIu64
         ", giants %" PRIu64 ", sent %" PRIu64 ", tx failures %" PRIu64 "\n", total.received, total.forwarded,
         total.flooded, total.dropped, total.runts, total.giants, total.sent, total.tx_failed);
  if (options.dispatch)
    printf("nfx-nf: dispatched %" PRIu64 "\n", lcores[rte_get_main_lcore()].stats.dispatched);
  if (total.misplaced)
    printf("nfx-nf: DEGRADED: %" PRIu64 " of the frames checked ran on another core than the plan's\n",
           total.misplaced);
}

int main(int argc, char **argv) {
  int eal_args = rte_eal_init(argc, argv);
  if (eal_args < 0) fail(EXIT_SETUP, "cannot initialise DPDK's EAL (%s)", rte_strerror(rte_errno));
  nf_program_remove_runtime_dir_at_exit();
  options = parse_options(argc - eal_args, argv + eal_args);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (atexit(stop_ports) != 0) fail(EXIT_SETUP, "cannot register the exit handler");

  char why[160];
  if (nf_rss_self_test(why, sizeof why) != 0) fail(EXIT_SETUP, "software Toeplitz self-test failed: %s", why);
  unsigned lcores = NF_CORES + options.dispatch;
  if (rte_lcore_count() != lcores)
    fail(EXIT_SETUP, "this build runs %d cores%s but EAL has %u lcores (give e.g. -l 0-%u)", NF_CORES,
         options.dispatch ? " and a dispatcher (--dispatch)" : "", rte_lcore_count(), lcores - 1);
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
  static struct port_setup setups[NF_DEVICES];
  for (uint16_t d = 0; d < NF_DEVICES; d++) prepare_port(d, &setups[d]);
  unsigned mbufs = mbufs_needed(setups);
  struct rte_mempool *pool =
      rte_pktmbuf_pool_create("nfx_mbufs", mbufs, MBUF_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
  if (pool == NULL)
    fail(EXIT_SETUP, "cannot create the mbuf pool: %u mbufs of %u bytes, about %u MB (%s); give EAL more memory "
         "(-m MB, or more huge pages on socket %d)", mbufs, RTE_MBUF_DEFAULT_BUF_SIZE,
         (unsigned)((uint64_t)mbufs * (RTE_MBUF_DEFAULT_BUF_SIZE + sizeof(struct rte_mbuf)) >> 20),
         rte_strerror(rte_errno), (int)rte_socket_id());
  for (uint16_t d = 0; d < NF_DEVICES; d++)
    printf("nfx-nf: port %u: %u rx and %u tx descriptors per queue\n", ports[d], setups[d].rx_descriptors,
           setups[d].tx_descriptors);
  printf("nfx-nf: mbuf pool: %u mbufs\n", mbufs);
  for (uint16_t d = 0; d < NF_DEVICES; d++) setup_port(d, &setups[d], pool);
  if (options.dispatch) {
    for (uint16_t d = 0; d < NF_DEVICES; d++) device_of[ports[d]] = d;
    for (uint16_t c = 0; c < NF_CORES; c++)
      for (int d = -1; d < NF_DEVICES; d++) {
        char name[RTE_RING_NAMESIZE];
        snprintf(name, sizeof name, d < 0 ? "nfx_to%u" : "nfx_from%u_%d", c, d);
        struct rte_ring *ring = rte_ring_create(name, CORE_RING, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (ring == NULL) fail(EXIT_SETUP, "cannot create ring %s (%s)", name, rte_strerror(rte_errno));
        *(d < 0 ? &to_core[c] : &from_core[c][d]) = ring;
      }
  }
  wait_for_links();

  if (!nf_par_init()) {
    const char *refusal = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false)%s%s", refusal ? ": " : "", refusal ? refusal : "");
  }
  printf("nfx-nf: %s on %d cores, %d devices, lock: %s%s\n", NF_STRATEGY_NAME, NF_CORES, NF_DEVICES,
         nf_par_lock_name(), options.dispatch ? ", steered in software by the main lcore (--dispatch)" : "");
  fflush(stdout);
  rte_eal_mp_remote_launch(lcore_main, NULL, CALL_MAIN);
  rte_eal_mp_wait_lcore();
  stop_ports();

  unsigned failed = __atomic_load_n(&init_failed, __ATOMIC_ACQUIRE);
  if (failed) {
    const char *refusal = nf_runtime_refusal();
    fail(EXIT_INIT, "nf_init failed (returned false) on core %u%s%s", failed - 1, refusal ? ": " : "",
         refusal ? refusal : "");
  }
  print_stats();
  report_misplaced();
  unsigned bad = __atomic_load_n(&bad_verdict_lcore, __ATOMIC_RELAXED);
  if (bad)
    fail(EXIT_VERDICT, "nf_process returned %d on lcore %u: not a device of this NF (0..%d), NF_DROP or NF_FLOOD",
         __atomic_load_n(&bad_verdict, __ATOMIC_RELAXED), bad - 1, NF_DEVICES - 1);
  rte_eal_cleanup();
  return 0;
}
