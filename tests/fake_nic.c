/*
 * fake_nic.c: a NIC's control plane for the generated DPDK program, over net_pcap ports.
 *
 * The tests link nfx-nf with -Wl,--wrap for the ethdev and rte_flow calls below, so that its
 * decisions about a port (key length, RETA size, hash types, queues, read-back, link, socket) meet
 * a device that answers as configured here, while net_pcap still carries the frames (split per
 * queue as the test chooses). Every call goes to the real function first where one exists; the
 * fake then changes what the program sees. Settings, from the environment (unset: as shown):
 *
 *   FAKE_DRIVER=net_ice      dev_info.driver_name
 *   FAKE_KEY_BYTES=52        dev_info.hash_key_size; rss_hash_update takes keys of exactly this length
 *   FAKE_RETA_SIZE=512       dev_info.reta_size; reta_update/query take exactly this size
 *   FAKE_RSS_OFFLOADS=hex    dev_info.flow_type_rss_offloads (default: IPv4 types and every *_ONLY flag)
 *   FAKE_QUEUES=n            dev_info.max_rx_queues and max_tx_queues (default: net_pcap's)
 *   FAKE_KEY_BACK=flip       the key reads back with byte 3 changed
 *   FAKE_RETA_BACK=flip      RETA entry 5 reads back changed; =none: the RETA cannot be read (-ENOTSUP)
 *   FAKE_LINK=down           the link stays down
 *   FAKE_SOCKET=n            rte_eth_dev_socket_id
 *   FAKE_HASH=hex            every frame received carries this RSS hash (RTE_MBUF_F_RX_RSS_HASH), as a
 *                            port whose hash is not the plan's Toeplitz would deliver it
 *   FAKE_RX_OFFLOADS=hex     dev_info.rx_offload_capa (default: net_pcap's, SCATTER and RSS_HASH)
 *   FAKE_MAX_MTU=n           dev_info.max_mtu (default: net_pcap's)
 *   FAKE_MAX_RX_PKTLEN=n     dev_info.max_rx_pktlen (default: net_pcap's)
 *   FAKE_DESC_MIN=n          rte_eth_dev_adjust_nb_rx_tx_desc raises both counts to at least n
 *
 * As drivers do, configure refuses an MTU over max_mtu or whose frame (MTU + the overhead that
 * max_rx_pktlen - max_mtu gives, else 18 bytes) is over max_rx_pktlen, and rx_queue_setup one
 * whose frame is over the pool's mbuf data room unless the port was configured with
 * RTE_ETH_RX_OFFLOAD_SCATTER. rx_queue_setup also takes nb_rx_desc mbufs from the pool and holds
 * them, as a NIC's filled rx ring does, and fails (-ENOMEM) when the pool has not that many.
 *
 * rss_hash_conf_get writes the whole key whatever rss_key_len says (as ice does) and aborts the
 * program when the caller's buffer is shorter: a read-back that would overflow.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_flow.h>

#define FAKE_PORTS 8
#define FAKE_MAX_RETA 8192

int __real_rte_eth_dev_info_get(uint16_t port, struct rte_eth_dev_info *info);
int __real_rte_eth_dev_configure(uint16_t port, uint16_t rx, uint16_t tx, const struct rte_eth_conf *conf);
int __real_rte_eth_link_get_nowait(uint16_t port, struct rte_eth_link *link);
int __real_rte_eth_dev_socket_id(uint16_t port);
int __real_rte_eth_dev_start(uint16_t port);
int __real_rte_eth_dev_adjust_nb_rx_tx_desc(uint16_t port, uint16_t *rx, uint16_t *tx);
int __real_rte_eth_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors, unsigned socket,
                                  const struct rte_eth_rxconf *conf, struct rte_mempool *pool);

static struct {
  uint8_t key[256];
  uint16_t reta[FAKE_MAX_RETA];
  uint32_t frame; /* the largest frame the configured MTU lets in */
  int scatter;    /* configured with RTE_ETH_RX_OFFLOAD_SCATTER */
} fake[FAKE_PORTS];

static unsigned long setting(const char *name, unsigned long otherwise) {
  const char *text = getenv(name);
  return text && *text ? strtoul(text, NULL, 0) : otherwise;
}

static int flipped(const char *name) {
  const char *text = getenv(name);
  return text && strcmp(text, "flip") == 0;
}

static unsigned key_bytes(void) { return (unsigned)setting("FAKE_KEY_BYTES", 52); }
static unsigned reta_size(void) { return (unsigned)setting("FAKE_RETA_SIZE", 512); }

int __wrap_rte_eth_dev_info_get(uint16_t port, struct rte_eth_dev_info *info) {
  int status = __real_rte_eth_dev_info_get(port, info);
  if (status != 0) return status;
  static char driver[64];
  snprintf(driver, sizeof driver, "%s", getenv("FAKE_DRIVER") ? getenv("FAKE_DRIVER") : "net_ice");
  info->driver_name = driver;
  info->hash_key_size = (uint8_t)key_bytes();
  info->reta_size = (uint16_t)reta_size();
  info->flow_type_rss_offloads = setting(
      "FAKE_RSS_OFFLOADS", RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
                               RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_L3_SRC_ONLY |
                               RTE_ETH_RSS_L3_DST_ONLY | RTE_ETH_RSS_L4_SRC_ONLY | RTE_ETH_RSS_L4_DST_ONLY);
  if (getenv("FAKE_QUEUES")) info->max_rx_queues = info->max_tx_queues = (uint16_t)setting("FAKE_QUEUES", 1);
  info->rx_offload_capa = setting("FAKE_RX_OFFLOADS", info->rx_offload_capa | RTE_ETH_RX_OFFLOAD_SCATTER |
                                                         RTE_ETH_RX_OFFLOAD_RSS_HASH);
  info->max_mtu = (uint16_t)setting("FAKE_MAX_MTU", info->max_mtu);
  info->max_rx_pktlen = (uint32_t)setting("FAKE_MAX_RX_PKTLEN", info->max_rx_pktlen);
  return 0;
}

static uint32_t overhead(const struct rte_eth_dev_info *info) {
  return info->max_mtu != UINT16_MAX && info->max_rx_pktlen > info->max_mtu ? info->max_rx_pktlen - info->max_mtu
                                                                            : RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
}

/* net_pcap refuses RSS and scattered rx: configure it without, as a port that hashes in "hardware"
 * (and scatters) we fake. */
int __wrap_rte_eth_dev_configure(uint16_t port, uint16_t rx, uint16_t tx, const struct rte_eth_conf *conf) {
  struct rte_eth_dev_info info;
  if (port >= FAKE_PORTS || __wrap_rte_eth_dev_info_get(port, &info) != 0) return -EINVAL;
  uint32_t mtu = conf->rxmode.mtu ? conf->rxmode.mtu : RTE_ETHER_MTU;
  if (mtu > info.max_mtu || mtu + overhead(&info) > info.max_rx_pktlen) return -EINVAL;
  fake[port].frame = mtu + overhead(&info);
  fake[port].scatter = (conf->rxmode.offloads & RTE_ETH_RX_OFFLOAD_SCATTER) != 0;
  struct rte_eth_conf plain = *conf;
  plain.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
  plain.rxmode.offloads &= ~(RTE_ETH_RX_OFFLOAD_RSS_HASH | RTE_ETH_RX_OFFLOAD_SCATTER); /* net_pcap chains anyway */
  memset(&plain.rx_adv_conf.rss_conf, 0, sizeof plain.rx_adv_conf.rss_conf);
  return __real_rte_eth_dev_configure(port, rx, tx, &plain);
}

int __wrap_rte_eth_dev_adjust_nb_rx_tx_desc(uint16_t port, uint16_t *rx, uint16_t *tx) {
  int status = __real_rte_eth_dev_adjust_nb_rx_tx_desc(port, rx, tx);
  uint16_t least = (uint16_t)setting("FAKE_DESC_MIN", 0);
  if (status == 0) *rx = RTE_MAX(*rx, least), *tx = RTE_MAX(*tx, least);
  return status;
}

int __wrap_rte_eth_rx_queue_setup(uint16_t port, uint16_t queue, uint16_t descriptors, unsigned socket,
                                  const struct rte_eth_rxconf *conf, struct rte_mempool *pool) {
  if (port >= FAKE_PORTS) return -EINVAL;
  if (!fake[port].scatter && fake[port].frame > (uint32_t)rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM)
    return -EINVAL;
  struct rte_mbuf **ring = calloc(descriptors, sizeof *ring); /* held until the process ends */
  if (ring == NULL || rte_pktmbuf_alloc_bulk(pool, ring, descriptors) != 0) return -ENOMEM;
  return __real_rte_eth_rx_queue_setup(port, queue, descriptors, socket, conf, pool);
}

int __wrap_rte_eth_dev_rss_hash_update(uint16_t port, struct rte_eth_rss_conf *conf) {
  struct rte_eth_dev_info info;
  __wrap_rte_eth_dev_info_get(port, &info);
  if (port >= FAKE_PORTS || (conf->rss_hf & ~info.flow_type_rss_offloads)) return -EINVAL;
  if (conf->rss_key != NULL) {
    if (conf->rss_key_len != key_bytes()) return -EINVAL;
    memcpy(fake[port].key, conf->rss_key, key_bytes());
  }
  return 0;
}

int __wrap_rte_eth_dev_rss_hash_conf_get(uint16_t port, struct rte_eth_rss_conf *conf) {
  if (port >= FAKE_PORTS) return -EINVAL;
  if (conf->rss_key != NULL) {
    if (conf->rss_key_len < key_bytes()) {
      fprintf(stderr, "fake_nic: rss_hash_conf_get into %u bytes; this port writes its %u-byte key\n",
              conf->rss_key_len, key_bytes());
      abort();
    }
    memcpy(conf->rss_key, fake[port].key, key_bytes());
    if (flipped("FAKE_KEY_BACK")) conf->rss_key[3] ^= 0x10;
  }
  conf->rss_key_len = (uint8_t)key_bytes();
  return 0;
}

int __wrap_rte_eth_dev_rss_reta_update(uint16_t port, struct rte_eth_rss_reta_entry64 *reta, uint16_t size) {
  if (port >= FAKE_PORTS || size != reta_size() || size > FAKE_MAX_RETA) return -EINVAL;
  for (unsigned b = 0; b < size; b++)
    if (reta[b / RTE_ETH_RETA_GROUP_SIZE].mask >> (b % RTE_ETH_RETA_GROUP_SIZE) & 1)
      fake[port].reta[b] = reta[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE];
  return 0;
}

int __wrap_rte_eth_dev_rss_reta_query(uint16_t port, struct rte_eth_rss_reta_entry64 *reta, uint16_t size) {
  if (port >= FAKE_PORTS || size != reta_size() || size > FAKE_MAX_RETA) return -EINVAL;
  if (getenv("FAKE_RETA_BACK") && strcmp(getenv("FAKE_RETA_BACK"), "none") == 0) return -ENOTSUP;
  for (unsigned b = 0; b < size; b++)
    if (reta[b / RTE_ETH_RETA_GROUP_SIZE].mask >> (b % RTE_ETH_RETA_GROUP_SIZE) & 1)
      reta[b / RTE_ETH_RETA_GROUP_SIZE].reta[b % RTE_ETH_RETA_GROUP_SIZE] =
          (uint16_t)(fake[port].reta[b] ^ (b == 5 && flipped("FAKE_RETA_BACK")));
  return 0;
}

struct rte_flow *__wrap_rte_flow_create(uint16_t port, const struct rte_flow_attr *attr,
                                        const struct rte_flow_item pattern[], const struct rte_flow_action actions[],
                                        struct rte_flow_error *error) {
  (void)port, (void)attr, (void)pattern, (void)actions, (void)error;
  static char rule;
  return (struct rte_flow *)&rule;
}

int __wrap_rte_eth_link_get_nowait(uint16_t port, struct rte_eth_link *link) {
  int status = __real_rte_eth_link_get_nowait(port, link);
  const char *wanted = getenv("FAKE_LINK");
  if (status == 0 && wanted && strcmp(wanted, "down") == 0) link->link_status = RTE_ETH_LINK_DOWN;
  return status;
}

int __wrap_rte_eth_dev_socket_id(uint16_t port) {
  return getenv("FAKE_SOCKET") ? (int)setting("FAKE_SOCKET", 0) : __real_rte_eth_dev_socket_id(port);
}

/* FAKE_HASH: net_pcap's receive function, then the hash written into every mbuf. */
static eth_rx_burst_t pcap_rx;

static uint16_t rx_with_hash(void *queue, struct rte_mbuf **frames, uint16_t count) {
  uint16_t got = pcap_rx(queue, frames, count);
  for (uint16_t i = 0; i < got; i++) {
    frames[i]->hash.rss = (uint32_t)setting("FAKE_HASH", 0);
    frames[i]->ol_flags |= RTE_MBUF_F_RX_RSS_HASH;
  }
  return got;
}

int __wrap_rte_eth_dev_start(uint16_t port) {
  int status = __real_rte_eth_dev_start(port);
  if (status == 0 && getenv("FAKE_HASH")) {
    if (pcap_rx == NULL) pcap_rx = rte_eth_fp_ops[port].rx_pkt_burst;
    if (rte_eth_fp_ops[port].rx_pkt_burst != pcap_rx) {
      fprintf(stderr, "fake_nic: ports with different receive functions\n");
      abort();
    }
    rte_eth_fp_ops[port].rx_pkt_burst = rx_with_hash;
  }
  return status;
}
