"""The notebooks, written as code: ``python notebooks/build_notebooks.py`` rewrites every ``.ipynb``
here from the cells below, without outputs and with stable cell ids, so diffs stay readable and a
test can check that the committed notebooks are exactly these."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def md(text: str) -> tuple[str, str]:
    return ("markdown", text.strip("\n"))


def code(text: str) -> tuple[str, str]:
    return ("code", text.strip("\n"))


def explorer_cells() -> list[tuple[str, str]]:
    return [
        code('''
import os
from pathlib import Path

from widgets import ExplorerApp, load_bokehjs

load_bokehjs()  # BokehJS from the installed package: the page needs no CDN
# `nfx explore NF` passes the NF in NFX_NF; opened by hand, the notebook shows the firewall.
NF = os.environ.get("NFX_NF", str(Path("../sample_nfs/fw.c").resolve()))
OUT = Path(os.environ.get("NFX_OUT", "../out")).resolve() / Path(NF).stem  # a suggestion; the page can change it
app = ExplorerApp(NF, out_dir=str(OUT))
app
'''),
    ]


def pitfalls_cells() -> list[tuple[str, str]]:
    return [
        md('''
# Pitfalls of running an NF on many cores with RSS

The NIC spreads packets over cores by hashing header fields (RSS, a Toeplitz hash) and looking the
hash up in a redirection table (RETA). Shared-nothing parallelism is correct only when **every
packet that touches a state entry reaches the core that holds it**. Each section below shows one way
this goes wrong, with a cell that *asserts* the failure, then the fix, asserted too.

The simulator replays seeded traffic through the NIC model and counts **sharding violations**: state
entries that packets on more than one core touched.
'''),
        code('''
from pathlib import Path

import numpy as np

from explorer import pipeline
from explorer.errors import ShardingError
from explorer.traffic.generators import generate, generate_fields

NFS = Path("../sample_nfs").resolve()
PACKETS, FLOWS = 20_000, 2_000
ALL_FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")


def decision(solution, name):
    """One object's row of the sharding decisions."""
    return next(o for o in solution.to_dict()["objects"] if o["name"] == name)


fw = pipeline.solve(NFS / "fw.c", quality=False)
print(fw.to_dict()["strategy"])
'''),
        md('''
## 1. A flow table shared by both ports

The firewall's `flows` map is written by LAN packets and read by the WAN replies. The analysis finds
both: `flows` is sharded on fields of **both** devices, the reply's addresses and ports swapped.
'''),
        code('''
flows = decision(fw, "flows")
print(flows["reason"])
assert flows["decision"] == "shard" and sorted(flows["fields"]) == ["0", "1"]
'''),
        md('''
**Pitfall:** shard each port on its own idea of "the host", its source address. A LAN packet
`(s, d)` lands on the core of `s`, its reply `(d, s)` on the core of `d`: the table is split. The
solver says so and shows two such packets; the simulator finds the split entries.
'''),
        code('''
split = pipeline.solve(NFS / "fw.c", quality=False, overrides={"flows": {0: ("src_ip",), 1: ("src_ip",)}})
cex = split.counterexample
print(split.explanation)
print(cex["p1"], "-> core", cex["cores"][0])
print(cex["p2"], "-> core", cex["cores"][1])
assert not split.valid and cex["cores"][0] != cex["cores"][1]
assert cex["p1"]["src_ip"] == cex["p2"]["dst_ip"]  # the reply travels the request backwards
broken = pipeline.simulate(split, "bidir", packets=PACKETS, flows=FLOWS)
print(broken.violation_count, "flow entries touched from two cores")
assert broken.violation_count > 0
'''),
        md("**Fix:** let the solver choose both ports' keys together, from the constraints of every path."),
        code('''
fixed = pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS)
assert fw.valid and fixed.violation_count == 0
'''),
        md('''
## 2. Asymmetric flows: a stock RSS key

Most drivers program a well-known key (Microsoft's, below) on every port. Its hash of a request
`(s, d, sp, dp)` and of the reply `(d, s, dp, sp)` differ, so the two halves of a connection usually
land on different cores.
'''),
        code('''
MICROSOFT_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                              "6a42b73bbeac01fa")
stock_key = MICROSOFT_KEY + bytes(12)  # the E810 takes 52-byte keys
stock = pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS, keys={0: stock_key, 1: stock_key})
print(stock.violation_count, "connections split by the stock key")
assert stock.violation_count > 0
'''),
        md("**Fix:** the solved keys put a request on device 0 and its reply on device 1 in the same RETA bucket."),
        code('''
for device, plan in sorted(fw.to_dict()["devices"].items()):
    print(device, plan["key"])
assert pipeline.simulate(fw, "bidir", packets=PACKETS, flows=FLOWS).violation_count == 0
'''),
        md('''
## 3. A 5-tuple key for a per-host counter

The policer keeps one token bucket per LAN host: its `hosts` map is keyed by the destination
address of WAN packets, so device 1 needs to hash `dst_ip` only.
'''),
        code('''
pol = pipeline.solve(NFS / "pol.c", quality=False)
hosts = decision(pol, "hosts")
print(hosts["reason"])
assert hosts["fields"]["1"] == ["dst_ip"]
'''),
        md('''
**Pitfall:** hash the usual 5-tuple anyway. Flows from different WAN servers to the same LAN host
now reach different cores, each with its own bucket for that host: the host gets N times its rate.
It shows as soon as hosts have several flows (prefix-concentrated traffic).
'''),
        code('''
five_tuple = pipeline.simulate(pol, "prefix", packets=PACKETS, flows=FLOWS, fields={1: ALL_FIELDS})
print(five_tuple.violation_count, "hosts policed on several cores")
assert five_tuple.violation_count > 0
'''),
        md("**Fix:** hash only what the state is keyed by (NICs with field selection can)."),
        code('''
assert pipeline.simulate(pol, "prefix", packets=PACKETS, flows=FLOWS).violation_count == 0
'''),
        md('''
## 4. Capacity split across cores

Each core gets its own table of `capacity / cores` entries. A table that holds every flow
sequentially can overflow on the busiest core: hashing never splits flows perfectly evenly. The
firewall then lets the LAN packet out unrecorded, and drops the reply.
'''),
        code('''
CAPACITY, CORES = 4096, 16
sized = pipeline.solve(NFS / "fw.c", defines={"FW_CAPACITY": str(CAPACITY)}, cores=CORES, quality=False)
assert sized.analysis.object("flows").capacity == CAPACITY
lan = generate("uniform", packets=40_000, flows=CAPACITY, seed=1).for_device(0)  # LAN packets: one entry per flow
load = pipeline.simulate(sized, lan)
flows_seen, busiest = sum(load.flows_per_core), max(load.flows_per_core)
print(f"{flows_seen} flows fit the sequential table of {CAPACITY}; the busiest core needs {busiest} "
      f"entries of its {CAPACITY // CORES}")
assert flows_seen <= CAPACITY and busiest > CAPACITY // CORES
'''),
        md("**Fix:** give per-core tables headroom, e.g. a quarter more than the even share."),
        code('''
ROOMY = CAPACITY * 5 // 4
assert max(load.flows_per_core) <= ROOMY // CORES
print(f"FW_CAPACITY={ROOMY}: {ROOMY // CORES} entries per core")
'''),
        md('''
## 5. Elephant flows

With Zipf-distributed traffic a few flows carry most packets. A good key spreads *flows* evenly,
not packets: the cores holding the elephants are overloaded.
'''),
        code('''
zipf = pipeline.simulate(fw, "zipf", packets=50_000, flows=5_000, skew=1.2, rebalance=True)
fields, _ = generate_fields("zipf", packets=50_000, flows=5_000, skew=1.2)
_, per_flow = np.unique(np.stack([fields.src_ip, fields.dst_ip, fields.src_port, fields.dst_port]), axis=1,
                        return_counts=True)
print(f"imbalance {zipf.imbalance:.2f}; the biggest flow alone carries {per_flow.max() / 50_000:.0%} of the packets")
assert zipf.imbalance > 2 and per_flow.max() > 50_000 / 16
'''),
        md('''
**Partial fix:** rebalance the RETA from the measured per-bucket load (RSS++). It moves whole
buckets, so sharding stays correct, and it evens out the rest, but a bucket is never split: the
busiest core still carries the heaviest bucket.
'''),
        code('''
after = zipf.rebalanced
print(f"imbalance {zipf.imbalance:.2f} -> {after.imbalance:.2f}")
assert after.imbalance < zipf.imbalance and after.violations == 0
assert max(after.per_core) >= max(zipf.buckets)
'''),
        md('''
## 6. Global state forces locks

The load balancer picks a backend by a hash of the flow, then reads and updates that backend's
entry. Which entry depends on a state value, not on a header field, so no RSS key can keep it on
one core: the NF needs locks (or transactions).
'''),
        code('''
lb = pipeline.solve(NFS / "lb.c", quality=False)
locked = [o["name"] for o in lb.to_dict()["objects"] if o["decision"] == "lock"]
print(lb.to_dict()["strategy"], locked)
print(lb.explanation)
assert lb.to_dict()["strategy"] == "locks" and locked
try:
    pipeline.solve(NFS / "lb.c", strategy="sn", quality=False)
    raise AssertionError("shared-nothing must be refused")
except ShardingError as error:
    print("refused:", error)
'''),
        md('''
## 7. L2 keys RSS cannot hash

RSS hashes IP addresses and ports, never MAC addresses. The learning bridge keys its table by the
source MAC, so it cannot be sharded; the static bridge only *reads* its MAC table (filled in
`nf_init`), so every core gets a copy and no lock is needed.
'''),
        code('''
bridge = pipeline.solve(NFS / "bridge.c", quality=False)
macs = decision(bridge, "macs")
print(macs["decision"], "-", macs["reason"])
assert macs["decision"] == "lock" and "p.ether.src" in macs["reason"]
assert bridge.to_dict()["strategy"] == "locks"

sbridge = pipeline.solve(NFS / "sbridge.c", quality=False)
assert decision(sbridge, "macs")["decision"] == "replicate"
assert sbridge.to_dict()["strategy"] == "shared-nothing"
'''),
    ]


def tuning_cells() -> list[tuple[str, str]]:
    return [
        md('''
# Tuning: overrides, NIC profiles, cores and RETA rebalancing

A solution is correct when related packets share a core; among correct solutions some balance load
better than others. Each knob below is shown on seeded traffic, with the figure it changes asserted.
*Imbalance* is the busiest core's packets over the mean (1.0 is perfectly even).
'''),
        code('''
from pathlib import Path

from explorer import pipeline

NFS = Path("../sample_nfs").resolve()
PACKETS, FLOWS = 20_000, 2_000

fw = pipeline.solve(NFS / "fw.c", quality=False)


def fields_of(solution, name):
    return next(o["fields"] for o in solution.to_dict()["objects"] if o["name"] == name)
'''),
        md('''
## Overrides: coarser sharding stays correct, but can balance worse

An override names the fields an object may be sharded on, per device. Sharding the firewall's flows
by server only (the LAN packet's `dst_ip`) is still correct: the solver derives that the WAN side must
then hash the reply's `src_ip`.
'''),
        code('''
by_server = pipeline.solve(NFS / "fw.c", quality=False, overrides={"flows": {0: ("dst_ip",)}})
print(fields_of(by_server, "flows"))
assert by_server.valid and fields_of(by_server, "flows") == {"0": ["dst_ip"], "1": ["src_ip"]}
assert pipeline.simulate(by_server, "bidir", packets=PACKETS, flows=FLOWS).violation_count == 0
'''),
        md("With every client talking to the same 8 servers, sharding by server can use at most 8 of 16 cores:"),
        code('''
EIGHT_SERVERS = {"server_prefix": "172.16.0.0/29"}
default = pipeline.simulate(fw, "prefix", packets=PACKETS, flows=FLOWS, **EIGHT_SERVERS)
coarse = pipeline.simulate(by_server, "prefix", packets=PACKETS, flows=FLOWS, **EIGHT_SERVERS)
busy = sum(1 for load in coarse.per_core if load)
print(f"4-tuple: imbalance {default.imbalance:.2f}; by server: {coarse.imbalance:.2f} on {busy} busy cores")
assert busy <= 8 and coarse.imbalance >= 2 > default.imbalance
'''),
        md('''
## NIC profiles

NICs differ in key length, RETA size and whether they can hash a subset of the fields. The
policer's WAN side needs only the destination address: NICs with field selection hash just that;
the 82599 must hash all four fields, with key bits zeroed so the others do not matter.
'''),
        code('''
profiles = {}
for nic in ("e810", "x710", "cx5", "82599"):
    solution = pipeline.solve(NFS / "pol.c", nic=nic)
    wan = solution.to_dict()["devices"]["1"]
    profiles[nic] = wan
    print(f"{nic:6} key {len(wan['key']) // 2} bytes, RETA {wan['reta_size']:4}, WAN hashes "
          f"{', '.join(wan['fields']):35} rank {wan['rank']}, quality {solution.to_dict()['quality']}")
assert [profiles[n]["fields"] for n in ("e810", "x710", "cx5")] == [["dst_ip"]] * 3
assert profiles["82599"]["fields"] == ["src_ip", "dst_ip", "src_port", "dst_port"]
assert (len(profiles["e810"]["key"]) // 2, profiles["e810"]["reta_size"]) == (52, 512)
assert (len(profiles["82599"]["key"]) // 2, profiles["82599"]["reta_size"]) == (40, 128)
'''),
        md('''
## Cores

More cores means fewer flows per core, so hashing noise weighs more: imbalance grows with the core
count even for a well-mixed key.
'''),
        code('''
by_cores = {}
for cores in (2, 4, 8, 16, 32):
    solution = pipeline.solve(NFS / "fw.c", cores=cores, quality=False)
    by_cores[cores] = pipeline.simulate(solution, "uniform", packets=50_000, flows=5_000).imbalance
    print(f"{cores:2} cores: imbalance {by_cores[cores]:.3f}")
assert by_cores[2] < by_cores[32]
'''),
        md('''
## RETA rebalancing

Skewed traffic loads some RETA buckets more than others. Rebalancing assigns buckets to cores from the
measured load (heaviest first, to the least loaded core): correct for any RETA, since related packets
share a *bucket*, not just a core. The new RETA is what the NIC would be programmed with.
'''),
        code('''
skewed = pipeline.simulate(fw, "zipf", packets=50_000, flows=5_000, skew=0.9, rebalance=True)
after = skewed.rebalanced
print(f"imbalance {skewed.imbalance:.2f} -> {after.imbalance:.2f}; first RETA entries {after.reta[:16]}")
assert after.imbalance < skewed.imbalance and after.violations == 0
assert sorted(set(after.reta)) == list(range(16))
'''),
    ]


def export_cells() -> list[tuple[str, str]]:
    return [
        md('''
# Export: generate the parallel DPDK project, then check it

`pipeline.generate` writes a DPDK 22.11 project for a solution; `pipeline.check` builds it and the
sequential NF, runs both on the same seeded trace, and compares every packet's verdict and bytes.
'''),
        code('''
import os
from pathlib import Path

from explorer import pipeline
from explorer.errors import GenerateError

NFS = Path("../sample_nfs").resolve()
OUT = Path(os.environ.get("NFX_OUT", "../out")).resolve()

fw = pipeline.solve(NFS / "fw.c", cores=2, quality=False)
project = pipeline.generate(fw, OUT / "fw-sn")  # a folder nfx did not create is refused, never overwritten
print(project.folder)
for name in project.files:
    print(" ", name)
assert {"Makefile", "main.c", "nf.c", "nf_plan.c", "nf_plan.h", "README.md"} <= set(project.files)
'''),
        md("The plan the program starts with: the strategy and core count, and each port's solved key."),
        code('''
plan_h = (project.folder / "nf_plan.h").read_text()
print(plan_h)
assert "#define NF_STRATEGY NF_STRATEGY_SN" in plan_h and "#define NF_CORES 2" in plan_h

plan_c = "".join((project.folder / "nf_plan.c").read_text().split())  # without whitespace
for device, port in sorted(fw.to_dict()["devices"].items()):
    key = bytes.fromhex(port["key"])
    assert ",".join(f"0x{b:02x}" for b in key) in plan_c, f"device {device}'s key is not in nf_plan.c"
'''),
        md('''
## Check: the parallel build against the sequential NF

Two cores, bidirectional traffic: every reply must find the flow its request recorded, on its core.
'''),
        code('''
report = pipeline.check(fw, "bidir", cores=2)
print(report.render())
assert report.equivalent and report.packets > 0 and len(report.per_core) == 2
'''),
        md('''
An NF whose state cannot be sharded is generated with locks and checked the same way: the load
balancer, on heartbeat and client traffic.
'''),
        code('''
lb = pipeline.solve(NFS / "lb.c", cores=2, quality=False)
report = pipeline.check(lb, "heartbeat", cores=2)
print(report.render())
assert report.strategy == "locks" and report.equivalent
'''),
        md("A solution the solver showed to be wrong (an override that splits the flow table) is never exported:"),
        code('''
split = pipeline.solve(NFS / "fw.c", cores=2, quality=False, overrides={"flows": {0: ("src_ip",), 1: ("src_ip",)}})
try:
    pipeline.generate(split, OUT / "fw-split")
    raise AssertionError("an incorrect sharding must not be generated")
except GenerateError as error:
    print("refused:", error)
assert not (OUT / "fw-split").exists()
'''),
    ]


NOTEBOOKS = {
    "explorer": explorer_cells,
    "pitfalls": pitfalls_cells,
    "tuning": tuning_cells,
    "export": export_cells,
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` with cleared outputs and ids ``<name>-<n>``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = dict(KERNEL)
    notebook.metadata["language_info"] = {"name": "python"}
    for number, (kind, text) in enumerate(NOTEBOOKS[name]()):
        cell = nbformat.v4.new_code_cell(text) if kind == "code" else nbformat.v4.new_markdown_cell(text)
        cell.id = f"{name}-{number}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(name: str) -> str:
    return nbformat.writes(build(name)) + "\n"


def main(folder: Path = HERE) -> int:
    for name in sorted(NOTEBOOKS):
        path = folder / f"{name}.ipynb"
        text = render(name)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
