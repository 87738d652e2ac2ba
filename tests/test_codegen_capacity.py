"""Shared nothing divides a capacity only where a per-core allocator hands out the entries (a dchain,
and the maps and vectors that follow it). An object that packets name directly (per-port counters
indexed by ``nf_ntohs(l4->dst_port)``, an owner table keyed by the port) keeps its full capacity on
every core, so the parallel program never aborts where the sequential one runs.

The NFs are ``tests/nfs/port_budget.c``, ``port_flows.c`` and ``port_owner.c``; each is generated and
checked with ``nfx generate`` and ``nfx check`` at 2 and 4 cores on traffic whose ports run past a
core's share (which aborted before), and the old division is shown to abort on the same traffic."""
from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.codegen import parallel_plan
from explorer.codegen.transform import transform
from explorer.traffic.frames import build_frames
from explorer.traffic.generators import generate_headers
from explorer.traffic.pcap import write_trace
from explorer.traffic.trace import Trace
from explorer.verify.equivalence import check_plan

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"
# NF -> (defines, the objects that keep every entry, the objects divided among cores, ports in the trace)
CASES = {
    "port_budget": ((), {"used"}, set(), 65535),
    "port_flows": ((), {"ports"}, {"flows", "keys", "chain"}, 65535),
    "port_owner": ((("OWNER_CAPACITY", "4096"),), {"owners"}, set(), 4096),
}


@functools.lru_cache(maxsize=None)
def solution(nf: str, cores: int):
    return pipeline.solve(str(NFS / f"{nf}.c"), dict(CASES[nf][0]), cores=cores, quality=False)


@functools.lru_cache(maxsize=None)
def spread(ports: int, packets: int = 12_000, seed: int = 5) -> Trace:
    """Request/reply traffic whose servers listen on ports 1..``ports`` (each server address and
    service gets its own, the same in both directions): ports far beyond a core's share of 65536."""
    h = generate_headers("bidir", packets, packets // 4, seed)
    lan = h.devices == 0
    server_ip = np.where(lan, h.dst_ip, h.src_ip).astype(np.uint64)
    server_port = np.where(lan, h.dst_port, h.src_port).astype(np.uint64)
    port = ((server_ip * np.uint64(2654435761) + server_port * np.uint64(40503)) % np.uint64(ports) + 1)
    port = port.astype(h.dst_port.dtype)
    h = h.with_columns(dst_port=np.where(lan, port, h.dst_port), src_port=np.where(lan, h.src_port, port))
    return Trace(h.timestamps, h.devices, build_frames(h))


@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf", list(CASES))
def test_only_objects_a_per_core_allocator_fills_are_divided(nf, cores):
    _, whole, divided, _ = CASES[nf]
    plan = parallel_plan(solution(nf, cores), "sn")
    for o in plan.objects:
        assert o.divisible == (o.name in divided), o
        assert o.per_core == (-(-o.capacity // cores) if o.name in divided else o.capacity), o
    assert {o.name for o in plan.objects if o.per_core == o.capacity and o.decision == "shard"} == whole
    text = plan.text()
    for name in whole:
        assert "full size (packets name its entries" in next(line for line in text.splitlines() if f" {name} " in line)
    nf_c = transform(plan).text
    assert nf_c.count("nf_sn_capacity(") == len(divided)
    assert plan.with_cores(3).object(next(iter(whole))).per_core == plan.object(next(iter(whole))).capacity


def test_the_shares_of_a_capacity_add_up_to_it():
    """nf_sn_capacity gave every core the capacity / cores rounded up: 64 on 3 cores held 66
    entries, more than the sequential NF is configured for, and the flows past 64 were taken by
    the parallel build and refused by the sequential one. The shares now add up to the capacity
    (``core_shares``, the Python twin of nf_sn_capacity); a pooled chain's shares are its pools."""
    from explorer.codegen.planning import core_shares

    assert core_shares(64, 3) == (22, 21, 21) and core_shares(65536, 4) == (16384,) * 4
    assert core_shares(2, 3) == (1, 1, 1)  # at least one entry each: an allocation of 0 fails
    pol = parallel_plan(pipeline.solve(str(ROOT / "sample_nfs" / "pol.c"), {"POL_CAPACITY": "64"}, cores=3,
                                       quality=False))
    assert pol.shares("chain") == (22, 21, 21) and pol.object("chain").per_core == 22
    assert "64 -> 21-22 per core" in next(line for line in pol.text().splitlines() if " chain " in line)
    nat = parallel_plan(pipeline.solve(str(ROOT / "sample_nfs" / "nat.c"), {"NAT_CAPACITY": "64"}, cores=3,
                                       quality=False))
    assert nat.shares("chain") == nat.pools[0].sizes and sum(nat.shares("chain")) == 64
    assert nat.shares("int_keys") == (64, 64, 64)  # indexed by pooled indices: every cell
    header = (ROOT / "explorer" / "runtime" / "nf_parallel.h").read_text()
    assert "capacity / NF_CORES + (nf_core < capacity % NF_CORES" in header


def test_the_samples_divide_what_they_did():
    """fw, nat and psd: every map, vector and dchain comes from a per-core dchain."""
    for nf, names in (("fw", {"flows", "keys", "chain"}),
                      ("nat", {"internal", "external", "int_keys", "ext_keys", "chain"}),
                      ("psd", {"sources", "source_keys", "counters", "source_chain", "ports", "port_keys",
                               "port_chain"})):
        plan = parallel_plan(pipeline.solve(str(ROOT / "sample_nfs" / f"{nf}.c"), cores=4, quality=False))
        assert {o.name for o in plan.objects if o.divisible} == names


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf", list(CASES))
def test_generate_and_check_from_the_command_line(nf, cores, tmp_path, capsys):
    defines, whole, _, ports = CASES[nf]
    trace = spread(ports)
    capacity = parallel_plan(solution(nf, cores), "sn").object(next(iter(whole))).capacity
    ports_seen = {int.from_bytes(f[36:38], "big") for f in trace.frames}
    # past a core's share: a vector index out of its range, or more keys than its map holds (aborted before)
    assert max(ports_seen) >= -(-capacity // cores) or len(ports_seen) > -(-capacity // cores)
    inputs = write_trace(trace, tmp_path / "in")
    flags = [x for name, value in defines for x in ("--define", f"{name}={value}")]
    source = str(NFS / f"{nf}.c")
    assert main(["generate", source, "-o", str(tmp_path / "p"), "--cores", str(cores), *flags]) == 0
    out = capsys.readouterr().out
    for name in whole:
        assert "full size" in next(line for line in out.splitlines() if f" {name} " in line)
    args = ["check", source, "--cores", str(cores), *flags, *[x for d, p in sorted(inputs.items())
                                                              for x in ("--in", f"{d}={p}")]]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "NOT equivalent" not in out and "equivalent" in out


@pytest.mark.dpdk
@pytest.mark.parametrize("nf,error", [("port_budget", "out of range"), ("port_owner", "is full")])
def test_dividing_what_packets_name_would_abort(nf, error):
    """The rule matters: give the same objects a core's share and the same traffic aborts. A map
    without a dchain overflows where a core gets more than its share of the keys: here all of them,
    through a RETA that sends every bucket to core 0 (still a correct plan: RSS++ may do as much)."""
    cores = 4
    plan = parallel_plan(solution(nf, cores), "sn")
    if nf == "port_owner":
        plan = replace(plan, steering=tuple(replace(d, reta=tuple(0 for _ in d.reta)) for d in plan.steering))
    old = replace(plan, objects=tuple(replace(o, divisible=True) for o in plan.objects)).with_cores(cores)
    trace = spread(CASES[nf][3])
    assert check_plan(plan, trace).equivalent
    report = check_plan(old, trace)
    assert not report.equivalent and error in (report.failure or ""), report.render()
