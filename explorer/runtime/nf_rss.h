/*
 * nf_rss.h: the RSS hash types (rss_hf bits) the plans use, by nfx's own names and DPDK 22.11's
 * values, so that nf_plan.c, which only holds the plan's tables, needs none of DPDK's headers
 * (rte_ethdev.h alone takes gcc 0.7 s). main.c, which configures the ports with them, checks each
 * against DPDK's RTE_ETH_RSS_* name at compile time.
 */
#ifndef NF_RSS_H
#define NF_RSS_H

#include <stdint.h>

#define NF_RSS_IPV4 (UINT64_C(1) << 2)
#define NF_RSS_FRAG_IPV4 (UINT64_C(1) << 3)
#define NF_RSS_NONFRAG_IPV4_TCP (UINT64_C(1) << 4)
#define NF_RSS_NONFRAG_IPV4_UDP (UINT64_C(1) << 5)
#define NF_RSS_NONFRAG_IPV4_SCTP (UINT64_C(1) << 6)
#define NF_RSS_NONFRAG_IPV4_OTHER (UINT64_C(1) << 7)
#define NF_RSS_PORT (UINT64_C(1) << 18)
#define NF_RSS_L4_DST_ONLY (UINT64_C(1) << 60)
#define NF_RSS_L4_SRC_ONLY (UINT64_C(1) << 61)
#define NF_RSS_L3_DST_ONLY (UINT64_C(1) << 62)
#define NF_RSS_L3_SRC_ONLY (UINT64_C(1) << 63)

#endif /* NF_RSS_H */
