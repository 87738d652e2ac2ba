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
# # Tuning: overrides, NIC profiles, cores and RETA rebalancing
#
# A solution is correct when related packets share a core; among correct solutions some balance load
# better than others. Each knob below is shown on seeded traffic, with the figure it changes asserted
# and plotted. *Imbalance* is the busiest core's packets over the mean (1.0 is perfectly even).

# %%
import warnings
from pathlib import Path

from explorer import pipeline
from widgets.charts import bar_chart, line_chart

NFS = Path("../sample_nfs")  # relative: outputs name no machine-specific path
PACKETS, FLOWS = 20_000, 2_000
NICS = ("e810", "x710", "cx5", "82599")

fw = pipeline.solve(NFS / "fw.c", quality=False)


def fields_of(solution, name):
    return next(o["fields"] for o in solution.to_dict()["objects"] if o["name"] == name)


# %% [markdown]
# ## Overrides: coarser sharding stays correct, but can balance worse
#
# An override names the fields an object may be sharded on, per device. Sharding the firewall's flows
# by server only (the LAN packet's `dst_ip`) is still correct: the solver derives that the WAN side must
# then hash the reply's `src_ip`.

# %%
by_server = pipeline.solve(NFS / "fw.c", quality=False, overrides={"flows": {0: ("dst_ip",)}})
print(fields_of(by_server, "flows"))
assert by_server.valid and fields_of(by_server, "flows") == {"0": ["dst_ip"], "1": ["src_ip"]}
assert pipeline.simulate(by_server, "bidir", packets=PACKETS, flows=FLOWS).violation_count == 0

# %% [markdown]
# With every client talking to the same 8 servers, sharding by server can use at most 8 of 16 cores:

# %%
EIGHT_SERVERS = {"server_prefix": "172.16.0.0/29"}
default = pipeline.simulate(fw, "prefix", packets=PACKETS, flows=FLOWS, **EIGHT_SERVERS)
coarse = pipeline.simulate(by_server, "prefix", packets=PACKETS, flows=FLOWS, **EIGHT_SERVERS)
busy = sum(1 for load in coarse.per_core if load)
print(f"4-tuple: imbalance {default.imbalance:.2f}; by server: {coarse.imbalance:.2f} on {busy} busy cores")
assert busy <= 8 and coarse.imbalance >= 2 > default.imbalance
bar_chart("fw, clients talking to 8 servers: packets per core", range(16),
          {"4-tuple (solved)": default.per_core, "by server (override)": coarse.per_core})

# %% [markdown]
# ## NIC profiles
#
# NICs differ in key length, RETA size and whether they can hash a subset of the fields. The
# policer's WAN side needs only the destination address: NICs with field selection hash just that;
# the 82599 must hash all four fields, with key bits zeroed so the others do not matter.

# %%
profiles = {}
for nic in NICS:
    solution = pipeline.solve(NFS / "pol.c", nic=nic)
    wan = solution.to_dict()["devices"]["1"]
    profiles[nic] = wan
    print(f"{nic:6} key {len(wan['key']) // 2} bytes, RETA {wan['reta_size']:4}, WAN hashes "
          f"{', '.join(wan['fields']):35} rank {wan['rank']}, quality {solution.to_dict()['quality']}")
assert [profiles[n]["fields"] for n in ("e810", "x710", "cx5")] == [["dst_ip"]] * 3
assert profiles["82599"]["fields"] == ["src_ip", "dst_ip", "src_port", "dst_port"]
assert (len(profiles["e810"]["key"]) // 2, profiles["e810"]["reta_size"]) == (52, 512)
assert (len(profiles["82599"]["key"]) // 2, profiles["82599"]["reta_size"]) == (40, 128)

# %% [markdown]
# ## Cores and RETA size
#
# More cores means fewer flows per core, so hashing noise weighs more: imbalance grows with the core
# count even for a well-mixed key. The NIC sets limits of its own. The 82599's RSS feeds at most 16
# queues (its RETA entries hold 4 bits), so the sweep leaves out its rows for 24 and 32 cores and
# says so. And the RETA adds a floor: its entries are dealt out to the cores in turn, so when the
# core count does not divide the table, some cores get one entry more. With the 82599's 128 entries
# and 12 cores, 8 cores hold 11 entries and 4 hold 10: 11 / 10.67 = 1.031 before any traffic. The
# 512-entry NICs cut that floor to 43 / 42.67 = 1.008.

# %%
CORES = (2, 4, 8, 12, 16, 24, 32)
# One simulation per NIC and core count (pipeline.sweep; scheduler="local" would spread it over cores).
with warnings.catch_warnings(record=True) as left_out:  # the rows a NIC cannot take, said once per NIC
    warnings.simplefilter("always")
    table = pipeline.sweep(NFS / "fw.c", nics=NICS, cores=CORES, traffic=("uniform",), seeds=1, packets=50_000,
                           flows=50_000).table
print("\n".join(str(w.message) for w in left_out))
assert [str(w.message) for w in left_out] == ["82599 takes at most 16 cores: its rows for 24, 32 cores are left out"]
grid = table.pivot(index="cores", columns="nic", values="imbalance")[list(NICS)]
print(grid.round(3).to_string())
by_nic = {nic: [float(grid.loc[cores, nic]) for cores in CORES] for nic in NICS}  # NaN: a row left out
assert by_nic["e810"][0] < by_nic["e810"][-1]  # more cores, more imbalance
assert [c for c, x in zip(CORES, by_nic["82599"]) if x != x] == [24, 32]  # past its 16 RSS queues
assert all(x == x for nic in ("e810", "x710", "cx5") for x in by_nic[nic])
assert by_nic["82599"][CORES.index(12)] > 11 / (128 / 12)  # the 128-entry RETA's floor
# The x710 line lies under the e810's: same key length, same RETA, so the same keys.
line_chart("fw, uniform traffic (50,000 flows): imbalance by NIC and core count", CORES, by_nic, baseline=1.0,
           low=1.0)

# %% [markdown]
# ## RETA rebalancing
#
# Skewed traffic loads some RETA buckets more than others. Rebalancing assigns buckets to cores from the
# measured load (heaviest first, to the least loaded core): correct for any RETA, since related packets
# share a *bucket*, not just a core. The new RETA is what the NIC would be programmed with.

# %%
skewed = pipeline.simulate(fw, "zipf", packets=50_000, flows=5_000, skew=0.9, rebalance=True)
after = skewed.rebalanced
print(f"imbalance {skewed.imbalance:.2f} -> {after.imbalance:.2f}; first RETA entries {after.reta[:16]}")
assert after.imbalance < skewed.imbalance and after.violations == 0
assert sorted(set(after.reta)) == list(range(16))
bar_chart(f"fw, Zipf traffic (skew 0.9): imbalance {skewed.imbalance:.2f}, rebalanced {after.imbalance:.2f}",
          range(16), {"solved RETA": skewed.per_core, "rebalanced RETA": after.per_core})

# %% [markdown]
# ## A NAT: sharding by the remote endpoint or by the port it allocates
#
# The NAT's WAN-side table can be sharded two ways. By default the solver shards it **by allocation**:
# each core hands out only external ports whose hash the NIC sends back to it, the WAN side hashes the
# destination port only and the LAN side the full 4-tuple. The override below asks for Maestro's
# **remote-endpoint** sharding instead (LAN destination ~ WAN source). The fewer servers the clients
# talk to, the fewer cores the remote endpoint reaches; the allocation does not care.

# %%
ENDPOINT = {"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}}
SERVERS = {1: "172.16.0.10/32", 4: "172.16.0.8/30", 64: "172.16.0.0/26", 4094: "172.16.0.0/20"}
nat = pipeline.solve(NFS / "nat.c", quality=False)
nat_endpoint = pipeline.solve(NFS / "nat.c", quality=False, overrides=ENDPOINT)
by_servers = {label: [pipeline.simulate(solution, "prefix", packets=40_000, flows=8_000,
                                        server_prefix=prefix).imbalance for prefix in SERVERS.values()]
              for label, solution in (("remote endpoint", nat_endpoint), ("allocation", nat))}
print({label: [round(v, 2) for v in row] for label, row in by_servers.items()})
assert max(by_servers["allocation"]) <= 1.25 and by_servers["remote endpoint"][0] > 6
line_chart("nat on 16 cores: imbalance by the number of servers the clients talk to", list(SERVERS), by_servers,
           x_label="servers", baseline=1.0, low=1.0)

# %% [markdown]
# Pools follow the key and the RETA: core c owns the ports whose RETA entry is c. With a round-robin
# RETA of 512 entries, a core count that does not divide 512 gives some cores one entry more, so
# their pools are a little larger; the plan reports uneven pools. A rebalanced RETA changes the
# pools too (the generated program computes them again at start-up, from the key and RETA it reads
# back from the NIC, and refuses to start if they are not the plan's).

# %%
POOL_CORES = (2, 3, 5, 6, 7, 12, 16, 24)
spread = [pipeline.solve(NFS / "nat.c", quality=False, cores=c).pools[0].imbalance for c in POOL_CORES]
print(dict(zip(POOL_CORES, [round(v, 4) for v in spread])))
assert spread[POOL_CORES.index(16)] == 1.0 and max(spread) < 1.1
line_chart("nat: the largest pool over the mean, by core count", POOL_CORES, {"pools": spread}, baseline=1.0,
           low=1.0, y_label="largest pool / mean", digits=3)
