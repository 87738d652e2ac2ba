# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Pitfalls of running an NF on many cores with RSS
#
# The NIC spreads packets over cores by hashing header fields (RSS, a Toeplitz hash) and looking the
# hash up in a redirection table (RETA). Shared-nothing parallelism is correct only when **every
# packet that touches a state entry reaches the core that holds it**. Each section below shows one way
# this goes wrong, with a cell that *asserts* the failure, then the fix, asserted too, and pictures:
# the packets per core under the bad and the good key, and how the figure that matters grows with
# the number of cores.
#
# The simulator replays seeded traffic through the NIC model and counts **sharding violations**: state
# entries that packets on more than one core touched. Balance alone never shows them: a wrong key
# usually spreads packets as evenly as a right one.

# %%
from functools import cache
from pathlib import Path

import numpy as np

from explorer import pipeline
from explorer.traffic.generators import generate, generate_fields
from widgets.charts import bar_chart, line_chart

NFS = Path("../sample_nfs")  # relative: outputs name no machine-specific path
PACKETS, FLOWS = 20_000, 2_000
CORES = (2, 4, 8, 16, 32)
ALL_FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")


@cache
def analysed(name, **defines):
    """``sample_nfs/NAME.c`` analysed once (with ``defines``): every solve of it below, for another
    core count or other overrides, starts from that analysis instead of exploring the NF again."""
    return pipeline.analyze(NFS / f"{name}.c", defines)


def decision(solution, name):
    """One object's row of the sharding decisions."""
    return next(o for o in solution.to_dict()["objects"] if o["name"] == name)


def per_core(title, runs):
    """Packets per core under each labelled simulation, with each one's mean."""
    first = next(iter(runs.values()))
    return bar_chart(title, range(first.cores), {label: run.per_core for label, run in runs.items()})


def against_cores(title, figures, y_label, digits=2):
    """``figures``: label -> function of the core count giving the figure to plot."""
    return line_chart(title, CORES, {label: [f(c) for c in CORES] for label, f in figures.items()},
                      y_label=y_label, digits=digits)


fw = pipeline.solve(analysed("fw"), quality=False)
print(fw.to_dict()["strategy"])

# %% [markdown]
# ## 1. A flow table shared by both ports
#
# The firewall's `flows` map is written by LAN packets and read by the WAN replies. The analysis finds
# both: `flows` is sharded on fields of **both** devices, the reply's addresses and ports swapped.

# %%
flows = decision(fw, "flows")
print(flows["reason"])
assert flows["decision"] == "shard" and sorted(flows["fields"]) == ["0", "1"]

# %% [markdown]
# **Pitfall:** shard each port on its own idea of "the host", its source address. A LAN packet
# `(s, d)` lands on the core of `s`, its reply `(d, s)` on the core of `d`: the table is split. The
# solver says so and shows two such packets; the simulator finds the split entries.

# %%
SPLIT = {"flows": {0: ("src_ip",), 1: ("src_ip",)}}
split = pipeline.solve(analysed("fw"), quality=False, overrides=SPLIT)
words = pipeline.explain(split)  # the solver's finding in the NF's terms, with two packets from real traffic
print(words["objects"]["flows"]["broken"])
example = words["counterexample"]
for packet in example["packets"]:
    print(f"device {packet['device']}: {packet['src_ip']}:{packet['src_port']} -> {packet['dst_ip']}:"
          f"{packet['dst_port']} {packet['protocol']}, RETA entry {packet['reta_index']}, core {packet['core']}")
print(example["outcome"]["text"])
request, reply = example["packets"]
assert not split.valid and request["core"] != reply["core"]
assert request["src_ip"] == reply["dst_ip"]  # the reply travels the request backwards
assert example["outcome"]["sequential"] == 0 and example["outcome"]["parallel"] == -1  # forwarded, then dropped
broken = pipeline.simulate(split, "bidir", packets=PACKETS, flows=FLOWS)
print(broken.violation_count, "flow entries touched from two cores")
assert broken.violation_count > 0

# %% [markdown]
# **Fix:** let the solver choose both ports' keys together, from the constraints of every path.
# The two keys balance the cores equally well: only the violation count tells them apart, and with
# more cores a reply is ever more likely to land away from its request.

# %%
fixed = pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS)
assert fw.valid and fixed.violation_count == 0
print(f"imbalance: split key {broken.imbalance:.3f}, solved key {fixed.imbalance:.3f}")
assert abs(broken.imbalance - fixed.imbalance) < 0.2
per_core(f"fw, bidirectional traffic: split key {broken.violation_count:,} split entries, solved key none",
         {"split key (src_ip on both ports)": broken, "solved key": fixed})


# %%
def split_entries(cores):
    solution = pipeline.solve(analysed("fw"), quality=False, overrides=SPLIT, cores=cores)
    return pipeline.simulate(solution, "bidir", packets=PACKETS, flows=FLOWS).violation_count


split_by_cores = {cores: split_entries(cores) for cores in CORES}
print(split_by_cores)
assert split_by_cores[2] < split_by_cores[32]
against_cores("fw: flow entries split across cores by the src_ip key", {"split key": split_by_cores.get},
              "entries touched from two cores", digits=0)

# %% [markdown]
# ## 2. Asymmetric flows: a stock RSS key
#
# Most drivers program a well-known key (Microsoft's, below) on every port. Its hash of a request
# `(s, d, sp, dp)` and of the reply `(d, s, dp, sp)` differ, so the two halves of a connection usually
# land on different cores.

# %%
MICROSOFT_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                              "6a42b73bbeac01fa")
stock_key = MICROSOFT_KEY + bytes(12)  # the E810 takes 52-byte keys
STOCK = {0: stock_key, 1: stock_key}
stock = pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS, keys=STOCK)
print(stock.violation_count, "connections split by the stock key")
assert stock.violation_count > 0

# %% [markdown]
# **Fix:** the solved keys put a request on device 0 and its reply on device 1 in the same RETA bucket.

# %%
for device, plan in sorted(fw.to_dict()["devices"].items()):
    print(device, plan["key"])
assert pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS).violation_count == 0
per_core(f"fw, bidirectional traffic: stock key {stock.violation_count:,} split connections, solved key none",
         {"stock key (Microsoft)": stock, "solved key": fixed})

# %% [markdown]
# ## 3. A 5-tuple key for a per-host counter
#
# The policer keeps one token bucket per LAN host: its `hosts` map is keyed by the destination
# address of WAN packets, so device 1 needs to hash `dst_ip` only.

# %%
pol = pipeline.solve(analysed("pol"), quality=False)
hosts = decision(pol, "hosts")
print(hosts["reason"])
assert hosts["fields"]["1"] == ["dst_ip"]

# %% [markdown]
# **Pitfall:** hash the usual 5-tuple anyway. Flows from different WAN servers to the same LAN host
# now reach different cores, each with its own bucket for that host: the host gets N times its rate.
# It shows as soon as hosts have several flows (prefix-concentrated traffic).

# %%
five_tuple = pipeline.simulate(pol, "prefix", packets=PACKETS, flows=FLOWS, fields={1: ALL_FIELDS})
print(five_tuple.violation_count, "hosts policed on several cores")
assert five_tuple.violation_count > 0

# %% [markdown]
# **Fix:** hash only what the state is keyed by (NICs with field selection can). The price: fewer
# distinct values to spread, so the right key balances a little worse, and the gap grows with cores.

# %%
by_host = pipeline.simulate(pol, "prefix", packets=PACKETS, flows=FLOWS)
assert by_host.violation_count == 0
per_core(f"pol, prefix traffic: the 5-tuple polices {five_tuple.violation_count} hosts on several cores",
         {"5-tuple on the WAN": five_tuple, "dst_ip only (solved)": by_host})


# %%
def pol_imbalance(fields):
    def figure(cores):
        solution = pipeline.solve(analysed("pol"), quality=False, cores=cores)
        return pipeline.simulate(solution, "prefix", packets=PACKETS, flows=FLOWS, fields=fields).imbalance
    return figure


pol_curves = {"5-tuple (wrong)": pol_imbalance({1: ALL_FIELDS}), "dst_ip only (solved)": pol_imbalance(None)}
against_cores("pol, prefix traffic: balance of the wrong and the right key", pol_curves,
              "imbalance (busiest core / mean)")

# %% [markdown]
# ## 4. Capacity split across cores
#
# Each core gets its own table of `capacity / cores` entries. A table that holds every flow
# sequentially can overflow on the busiest core: hashing never splits flows perfectly evenly. The
# firewall then lets the LAN packet out unrecorded, and drops the reply.

# %%
CAPACITY, SIXTEEN = 4096, 16
sized = pipeline.solve(analysed("fw", FW_CAPACITY=str(CAPACITY)), cores=SIXTEEN, quality=False)
assert sized.analysis.object("flows").capacity == CAPACITY
lan = generate("uniform", packets=40_000, flows=CAPACITY, seed=1).for_device(0)  # LAN packets: one entry per flow
load = pipeline.simulate(sized, lan)
flows_seen, busiest = sum(load.flows_per_core), max(load.flows_per_core)
print(f"{flows_seen} flows fit the sequential table of {CAPACITY}; the busiest core needs {busiest} "
      f"entries of its {CAPACITY // SIXTEEN}")
assert flows_seen <= CAPACITY and busiest > CAPACITY // SIXTEEN
bar_chart(f"fw with FW_CAPACITY={CAPACITY}: flows per core against each core's {CAPACITY // SIXTEEN} entries",
          range(SIXTEEN), {"flows": load.flows_per_core}, y_label="flows")

# %% [markdown]
# **Fix:** give per-core tables headroom, e.g. a quarter more than the even share. The headroom needed
# grows with the number of cores: fewer flows per core means more relative noise.

# %%
ROOMY = CAPACITY * 5 // 4
assert max(load.flows_per_core) <= ROOMY // SIXTEEN
print(f"FW_CAPACITY={ROOMY}: {ROOMY // SIXTEEN} entries per core")


def busiest_over_share(cores):
    solution = pipeline.solve(analysed("fw", FW_CAPACITY=str(CAPACITY)), cores=cores, quality=False)
    return max(pipeline.simulate(solution, lan).flows_per_core) / (CAPACITY / cores)


headroom = {cores: busiest_over_share(cores) for cores in CORES}
print({cores: round(value, 3) for cores, value in headroom.items()})
assert headroom[32] > headroom[2] and headroom[16] <= 1.25
against_cores("fw: the busiest core's flows over its even share of the table",
              {"busiest core / share": headroom.get}, "entries needed / entries per core")

# %% [markdown]
# ## 5. Elephant flows
#
# With Zipf-distributed traffic a few flows carry most packets. A good key spreads *flows* evenly,
# not packets: the cores holding the elephants are overloaded.

# %%
zipf = pipeline.simulate(fw, "zipf", packets=50_000, flows=5_000, skew=1.2, rebalance=True)
fields, _ = generate_fields("zipf", packets=50_000, flows=5_000, skew=1.2)
_, per_flow = np.unique(np.stack([fields.src_ip, fields.dst_ip, fields.src_port, fields.dst_port]), axis=1,
                        return_counts=True)
print(f"imbalance {zipf.imbalance:.2f}; the biggest flow alone carries {per_flow.max() / 50_000:.0%} of the packets")
assert zipf.imbalance > 2 and per_flow.max() > 50_000 / 16

# %% [markdown]
# **Partial fix:** rebalance the RETA from the measured per-bucket load (RSS++). It moves whole
# buckets, so sharding stays correct, and it evens out the rest, but a bucket is never split: the
# busiest core still carries the heaviest bucket.

# %%
after = zipf.rebalanced
print(f"imbalance {zipf.imbalance:.2f} -> {after.imbalance:.2f}")
assert after.imbalance < zipf.imbalance and after.violations == 0
assert max(after.per_core) >= max(zipf.buckets)
bar_chart(f"fw, Zipf traffic (skew 1.2): imbalance {zipf.imbalance:.2f} with the solved RETA, "
          f"{after.imbalance:.2f} rebalanced", range(zipf.cores),
          {"solved RETA": zipf.per_core, "rebalanced RETA": after.per_core})


# %%
def zipf_imbalance(rebalanced):
    def figure(cores):
        solution = pipeline.solve(analysed("fw"), quality=False, cores=cores)
        run = pipeline.simulate(solution, "zipf", packets=50_000, flows=5_000, skew=1.2, rebalance=True)
        return run.rebalanced.imbalance if rebalanced else run.imbalance
    return figure


against_cores("fw, Zipf traffic: elephants weigh more as cores are added",
              {"solved RETA": zipf_imbalance(False), "rebalanced RETA": zipf_imbalance(True)},
              "imbalance (busiest core / mean)")

# %% [markdown]
# ## 6. Global state: locks, or a copy on every core
#
# The load balancer picks a backend by a hash of the flow (a Maglev table that scans the live
# backends), then reads that backend's entry. Which entry depends on a state value, not on a header
# field, so no RSS key can keep the backend table on one core. Maestro needs locks for it. But only
# heartbeats write that table (UDP to `LB_HEARTBEAT_PORT`, from the backend side): nfx finds that
# packet class in the analysis and keeps a copy of the table on every core instead. The rare packets
# that write it broadcast each write to the other cores through per-core rings; the packets that only
# read it may go to any core, so RSS keeps only the flow table's constraint (the client's 5-tuple).

# %%
lb = pipeline.solve(analysed("lb"), quality=False)
for name in ("backends", "active", "cht", "flows"):
    row = decision(lb, name)
    print(f"{name:<9} {row['decision']:<9} {row['write_class'] or '-'}")
print(lb.to_dict()["strategy"])
assert lb.to_dict()["strategy"] == "shared-nothing"
assert decision(lb, "active")["decision"] == "replicate" and "p.l4.dport == 9999" in decision(lb, "active")["write_class"]
assert decision(lb, "flows")["decision"] == "shard"
locked = pipeline.solve(analysed("lb"), quality=False, overrides={"active": "lock"})  # the user may choose locks
assert locked.strategy == "locks"

# %% [markdown]
# Replication pays only when writes are rare. The simulator measures the **write share** on the
# traffic: the share of packets whose headers let them take a path that writes the object. On a
# load balancer's traffic with a heartbeat per 1,000 packets it is 0.1%. The learning bridge is the
# opposite: every packet refreshes its source MAC's timestamp, and a new or moved MAC is learned by
# whatever packet brings it (decided by the table's content, not by a packet class), so its write
# share is 100% and it keeps its lock.

# %%
vip = pipeline.simulate(lb, "heartbeat", packets=PACKETS, flows=FLOWS, heartbeat_share=0.001)
bridge_share = pipeline.simulate(pipeline.solve(analysed("bridge"), quality=False), "mixed", packets=PACKETS,
                                 flows=FLOWS)
print("lb write share:", {k: f"{v:.2%}" for k, v in vip.write_shares})
print("bridge write share:", {k: f"{v:.0%}" for k, v in bridge_share.write_shares})
assert dict(vip.write_shares)["active"] == 0.001 and dict(bridge_share.write_shares)["chain"] == 1.0
per_core("lb (sn, backend table replicated): VIP clients and heartbeats per core", {"packets": vip})

# %% [markdown]
# **The cost of locks, and the replicated build's scaling**, measured with
# `benchmarks/bench_replication.py --packets 5000000 --repeat 3` (lb on VIP traffic with heartbeats at
# 1 per 1,000 packets, 64-byte frames, every build in one run; 99.4% of the packets are clients
# balanced to a backend). Rates are ratios to seq in the same run, medians of 3 rounds, on the 2-CPU
# machine this notebook was written on while it was quiet (load average about 1; under the load of
# other jobs the two lcores seldom run at the same time and the 2-core figures fall to 1.1x-1.4x):
#
# | build | 1 core | 2 cores |
# |---|---|---|
# | seq | 1.00x | |
# | sn, backend table replicated (lagged) | 0.86x | 1.73x |
# | sn, backend table replicated (strict) | | 1.64x |
# | locks (big-reader lock) | 0.87x | 1.70x |
#
# On one core both parallel builds pay about 14% for their bookkeeping: the packet's bytes kept for
# a second pass, the pass that finds out whether the packet writes. With heartbeats this rare, the
# big-reader lock costs little more than replication: a reader keeps its token from packet to packet.
# The difference is what a write costs: a heartbeat under locks waits for every core to leave the
# state, while the replicated build sends one write to each core, applied between two bursts.
#
# **What lag means.** With *lagged* replication (the default) another core applies a write before
# its next burst, so up to one burst of its packets may still see the old backend set. `nfx check`
# replays the trace one packet at a time in trace order and must find every difference explained by
# such lag; with *strict* replication (the writer waits until every core has the write) there is none.

# %%
trace = generate("heartbeat", packets=4000, flows=400, seed=3, heartbeat_share=0.01)
lb2 = pipeline.solve(analysed("lb"), cores=2, quality=False)
strict = pipeline.check(lb2, trace, cores=2, strategy="sn", replication="strict")
lagged = pipeline.check(lb2, trace, cores=2, strategy="sn", replication="lagged")
for report in (strict, lagged):
    lines = report.render().splitlines()
    print("\n".join([lines[0]] + [line for line in lines if "replication:" in line or "lag:" in line][:2]))
assert strict.equivalent and strict.lag_differences == 0 and not strict.missed
assert lagged.equivalent and lagged.lag_differences > 0 and max(m.core_lag for m in lagged.missed) <= 32

# %% [markdown]
# A packet that saw the old backend set: a new client flow that reached its core before that core
# applied the heartbeat registering a backend. The sequential NF, which had that backend, gave the
# flow to it; the replicated build gave it one of the backends its core knew. Both are correct load
# balancing, and the flow keeps its backend for its whole life (the flow table pins it): lag changes
# *which* backend a new flow gets, never sends a flow's packets to two backends.

# %%
def ip(raw):
    return ".".join(str(b) for b in raw)


def saw_old_backends(m):
    """The write registered the backend the sequential NF gave the lagging packet's flow."""
    return m.example and m.example[2] and m.example[3] and ip(m.example[2][30:34]) == dict(m.headers)["src"]


missed = next(m for m in lagged.missed if saw_old_backends(m))
packet, core, sequential_out, parallel_out = missed.example
registered = dict(missed.headers)["src"]
print(f"write #{missed.write}: the heartbeat of backend {registered} (packet {missed.packet}, device {missed.device})")
print(f"packet {packet} ran on core {core} before the write reached it: "
      f"sent to {ip(parallel_out[30:34])}; the sequential NF sent it to {ip(sequential_out[30:34])}")
assert ip(sequential_out[30:34]) == registered != ip(parallel_out[30:34])

# %% [markdown]
# ## 7. L2 keys RSS cannot hash
#
# RSS hashes IP addresses and ports, never MAC addresses. The learning bridge keys its table by the
# source MAC, so it cannot be sharded; the static bridge only *reads* its MAC table (filled in
# `nf_init`), so every core gets a copy and no lock is needed.

# %%
bridge = pipeline.solve(analysed("bridge"), quality=False)
macs = decision(bridge, "macs")
print(macs["decision"], "-", macs["reason"])
assert macs["decision"] == "lock" and "keyed by src_mac" in macs["reason"]
assert bridge.to_dict()["strategy"] == "locks"

sbridge = pipeline.solve(analysed("sbridge"), quality=False)
assert decision(sbridge, "macs")["decision"] == "replicate"
assert sbridge.to_dict()["strategy"] == "shared-nothing"
per_core("bridge (locks, one shared MAC table) and sbridge (a copy per core), uniform traffic",
         {"bridge": pipeline.simulate(bridge, "uniform", packets=PACKETS, flows=FLOWS),
          "sbridge": pipeline.simulate(sbridge, "uniform", packets=PACKETS, flows=FLOWS)})

# %% [markdown]
# ## 8. One server behind a NAT: the hot core of remote-endpoint sharding
#
# The NAT keeps a WAN-side table (`external`) keyed by the remote endpoint and the external port it
# gave the flow. Maestro shards it by the **remote endpoint**: a LAN packet's destination and the WAN
# reply's source must reach the same core. When every client talks to one server (a DNS resolver, a
# CDN node, one SaaS API), every packet of both directions carries that one endpoint: one core does
# all the work, however many there are.

# %%
ENDPOINT = {"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}}
ONE_SERVER = {"client_prefix": "10.1.0.0/16", "server_prefix": "172.16.0.10/32"}
NAT_PACKETS, NAT_FLOWS = 40_000, 8_000
nat_endpoint = pipeline.solve(analysed("nat"), quality=False, overrides=ENDPOINT)
hot = pipeline.simulate(nat_endpoint, "prefix", packets=NAT_PACKETS, flows=NAT_FLOWS, **ONE_SERVER)
print(f"remote-endpoint sharding, one server: imbalance {hot.imbalance:.2f}, "
      f"{sum(1 for load in hot.per_core if load)} of 16 cores busy")
assert hot.imbalance > 6 and hot.violation_count == 0

# %% [markdown]
# **Fix:** the NAT chooses the external port itself (`NAT_START_PORT + index`, the index from its
# `chain`). If each core allocates only ports whose WAN-side hash the NIC sends back to it (its
# **pool**), the WAN side hashes just the destination port, every reply reaches the core that created
# its mapping, and the LAN side is free to hash the full 4-tuple: clients spread evenly, whatever the
# server. The solver finds this by itself (*sharding by allocation*) and says why; the simulator
# addresses each reply to the port its flow's core allocated and checks that it comes back there.

# %%
nat = pipeline.solve(analysed("nat"), quality=False)
print(nat.to_dict()["allocation"])
balanced = pipeline.simulate(nat, "prefix", packets=NAT_PACKETS, flows=NAT_FLOWS, **ONE_SERVER)
(pools,) = balanced.pools
print(f"allocation: imbalance {balanced.imbalance:.2f}; {pools.replies} replies addressed to their "
      f"flow's port, {pools.violations} on another core")
assert {d.device: d.fields for d in nat.plan.devices}[1] == ("dst_port",)
assert balanced.imbalance <= 1.25 and balanced.violation_count == 0 and pools.replies > 10_000
per_core("nat, clients in 10.1.0.0/16 and one server: packets per core",
         {"remote endpoint (Maestro)": hot, "allocation (a pool per core)": balanced})


# %%
def one_server(cores, overrides=None):
    solution = pipeline.solve(analysed("nat"), quality=False, cores=cores, overrides=overrides)
    return pipeline.simulate(solution, "prefix", packets=NAT_PACKETS, flows=NAT_FLOWS, **ONE_SERVER).imbalance


nat_by_cores = {"remote endpoint": {c: one_server(c, ENDPOINT) for c in CORES},
                "allocation": {c: one_server(c) for c in CORES}}
print({label: {c: round(v, 2) for c, v in row.items()} for label, row in nat_by_cores.items()})
assert all(nat_by_cores["allocation"][c] <= 1.25 for c in CORES)
assert nat_by_cores["remote endpoint"][32] > nat_by_cores["remote endpoint"][2]
against_cores("nat, one server: imbalance by core count", {k: v.get for k, v in nat_by_cores.items()},
              "imbalance (busiest core / mean)")

# %% [markdown]
# **What it costs:** a pool per core, and no port shared across cores. Core c can only hand out the
# ports of its pool (`NAT_CAPACITY / cores` of them), and a port is live on one core only. When one
# core's clients open more flows than its pool holds, it drops new flows while other pools still
# have ports: the sequential NAT, with one pool for everyone, would still have room.

# %%
SMALL = 2048
small = pipeline.solve(analysed("nat", NAT_CAPACITY=str(SMALL)), quality=False)
print(f"NAT_CAPACITY={SMALL}: pools of {min(small.pools[0].sizes)} to {max(small.pools[0].sizes)} ports per core")
crowded = pipeline.simulate(small, "prefix", packets=NAT_PACKETS, flows=SMALL * 9 // 10, **ONE_SERVER).pools[0]
print(f"{sum(crowded.wanted)} new flows (the sequential table holds {SMALL}): {crowded.exhausted} found their "
      f"core's pool used up")
assert sum(crowded.wanted) <= SMALL and crowded.exhausted > 0
bar_chart(f"nat with NAT_CAPACITY={SMALL} on 16 cores: new flows per core against each core's pool",
          range(16), {"new flows": crowded.wanted, "pool": crowded.sizes}, y_label="flows")
