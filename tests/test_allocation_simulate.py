"""The simulator with per-core pools (sharding by allocation): replies go to the port their flow's
core allocated, so a NAT with one server has no hot core; the model agrees with the generated
program port by port, and it finds replies that a key or RETA sends elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.errors import ConfigError
from explorer.run import run_trace
from explorer.simulate.pools import PoolModel
from explorer.simulate.simulation import Simulation
from explorer.simulate.steering import steer
from explorer.traffic.field_arrays import fields_of
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace
from explorer.verify.replay import run_replay

ROOT = Path(__file__).resolve().parent.parent
NAT = ROOT / "sample_nfs" / "nat.c"
ONE_SERVER = {"server_prefix": "172.16.0.10/32"}
ENDPOINT = {"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}}


@pytest.fixture(scope="module")
def nat16():
    return pipeline.solve(NAT, cores=16, quality=False)


def test_one_server_has_no_hot_core_with_allocation_and_one_with_the_remote_endpoint(nat16):
    report = pipeline.simulate(nat16, "prefix", **ONE_SERVER)
    assert report.imbalance <= 1.25 and report.violation_count == 0
    (pools,) = report.pools
    assert pools.replies > 30_000 and pools.violations == 0 and pools.exhausted == 0
    fields, devices = next(iter(pipeline.traffic_chunks("prefix", 100_000, 10_000, 0, **ONE_SERVER)))
    lan = (devices == 0) & fields.is_l4
    flows = {t for t in zip(fields.src_ip[lan].tolist(), fields.dst_ip[lan].tolist(), fields.src_port[lan].tolist(),
                            fields.dst_port[lan].tolist(), fields.proto[lan].tolist())}
    assert sum(pools.allocated) == len(flows) and min(pools.allocated) > 0  # one index per new LAN flow
    assert not any("chain.index" in u for u in report.unchecked)  # the pool model checks that key
    endpoint = pipeline.solve(NAT, cores=16, quality=False, overrides=ENDPOINT)
    hot = pipeline.simulate(endpoint, "prefix", **ONE_SERVER)
    assert 6 <= hot.imbalance <= 10
    # Not sharded by allocation, each core allocates its own ports; the remote endpoint brings the
    # replies back to it all the same. The hot core's share (16384 / 16) runs out.
    (own,) = hot.pools
    assert not own.pooled and own.replies > 10_000 and own.violations == own.stray == 0
    assert own.exhausted > 0 and max(own.allocated) == 1024


def test_rebalancing_recomputes_the_pools(nat16):
    report = pipeline.simulate(nat16, "prefix", rebalance=True, **ONE_SERVER)
    assert report.rebalanced is not None and report.rebalanced.violations == 0
    assert report.rebalanced.imbalance <= report.imbalance


def test_pools_computed_for_another_reta_split_flows(nat16):
    """A RETA that moved while the pools stayed: replies reach cores that did not allocate them."""
    (allocation,) = nat16.sharding.allocations
    sim = Simulation(nat16.analysis, nat16.sharding, nat16.plan)
    moved = list(nat16.plan.device(1).reta)
    moved = moved[1:] + moved[:1]
    from dataclasses import replace

    stale = replace(nat16.plan, devices=tuple(replace(d, reta=tuple(moved)) for d in nat16.plan.devices))
    sim.pools = [PoolModel(nat16.analysis, allocation, stale)]
    fields, devices = next(iter(pipeline.traffic_chunks("prefix", 20_000, 2_000, 0, **ONE_SERVER)))
    sim.add(fields, devices)
    report = sim.report()
    assert report.pools[0].violations > 100 and report.violation_count >= report.pools[0].violations
    assert report.violations and report.violations[0].object == "external"


def test_a_key_that_hashes_more_than_the_port_splits_flows():
    """On a NIC that hashes all four fields, the key must zero the others' RETA bits: a random key
    sends replies by their remote endpoint, away from the pool's core."""
    s = pipeline.solve(NAT, nic="82599", cores=8, quality=False)
    clean = pipeline.simulate(s, "prefix", packets=20_000, flows=2_000, **ONE_SERVER)
    assert clean.violation_count == 0 and clean.pools[0].replies > 5000
    rng = np.random.default_rng(3)
    random_key = bytes(rng.integers(0, 256, s.nic.key_bytes, dtype=np.uint8))
    broken = pipeline.simulate(s, "prefix", packets=20_000, flows=2_000, keys={1: random_key}, **ONE_SERVER)
    assert broken.pools[0].violations > 500 and broken.violation_count >= broken.pools[0].violations


def test_distributed_simulation_refuses_allocation(nat16, nat_broken):
    with pytest.raises(ConfigError, match="sharded by allocation"):
        pipeline.simulate(nat16, "prefix", scheduler="local", **ONE_SERVER)
    with pytest.raises(ConfigError, match="each core's own chain hands out values in trace order"):
        pipeline.simulate(nat_broken, "bidir", scheduler="local")


# ---- a plan that is not sharded by allocation: each core's own allocator ------------------------------

BROKEN = {"internal": {0: ("src_ip",), 1: ("src_ip",)}}  # device 1 no longer hashes dst_port


@pytest.fixture(scope="module")
def nat_broken():
    return pipeline.solve(NAT, cores=4, quality=False, overrides=BROKEN)


def test_replies_under_a_plan_not_sharded_by_allocation_are_checked(nat_broken):
    """nat with internal sharded on src_ip on both devices (the solver marks it not valid): each
    core's own chain hands out 0, 1, ... and a WAN reply, steered by its remote address, mostly
    reaches a core whose external lacks its flow. The simulator said "0 violations" (external's key
    holds the allocated port: unchecked). Expected from first principles: the flows whose replies
    the NIC sends to another core than their first LAN packet (device 1 hashes src_ip, which
    readdressing leaves alone), and each core's indices 0, 1, ... in flow order."""
    s = nat_broken
    assert not s.valid and s.sharding.allocations == () and s.pools == ()
    packets, flows = 20_000, 500
    report = pipeline.simulate(s, "bidir", packets=packets, flows=flows)
    (own,) = report.pools
    assert not own.pooled and own.sizes == (4096,) * 4 and own.objects == ("external",)
    fields, devices = next(iter(pipeline.traffic_chunks("bidir", packets, flows, 0)))
    cores = steer(s.plan, fields, devices).cores.tolist()
    tuples = list(zip(fields.src_ip.tolist(), fields.dst_ip.tolist(), fields.src_port.tolist(),
                      fields.dst_port.tolist(), fields.proto.tolist()))
    first_core: dict[tuple, int] = {}
    split, replies, stray = set(), 0, 0
    for t, dev, core, l4 in zip(tuples, devices.tolist(), cores, fields.is_l4.tolist()):
        if dev == 0:
            first_core.setdefault(t, core)
        elif l4 and (asked := (t[1], t[0], t[3], t[2], t[4])) in first_core:
            replies += 1
            if core != first_core[asked]:
                stray += 1
                split.add(asked)
    assert (own.replies, own.stray, own.violations) == (replies, stray, len(split))
    assert len(split) > flows // 2  # about 3 in 4 on 4 cores
    per_core = [sum(1 for c in first_core.values() if c == core) for core in range(4)]
    assert list(own.allocated) == per_core and list(own.wanted) == per_core
    model = Simulation(s.analysis, s.sharding, s.plan).pools[0]
    model.translate(fields, devices, 0, np.asarray(cores))
    for core in range(4):  # each core's own indices, lowest first: the same ports on every core
        assert model.flows.index[:model.flows.size][model.flows.core[:model.flows.size] == core].tolist() == \
            list(range(per_core[core]))
    assert report.violation_count >= len(split) and report.violations[0].object == "external"
    example = report.violations[0]  # named as the reply names it: its port
    assert example.key_text == f"{{dst_port: {int(example.key, 16)}}} (fields of a device 1 packet)"
    assert not report.unchecked_objects and not any("chain.index" in u for u in report.unchecked)


def test_cli_reports_the_replies_a_broken_plan_sends_elsewhere():
    """What a person reproducing it types: the summary line counts the split flows, and the line of
    chain says each core hands out its own ports and how many replies reached another core."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "explorer.cli", "simulate", "sample_nfs/nat.c", "--cores", "4",
                        "--override", "internal:0=src_ip", "--override", "internal:1=src_ip", "--traffic", "bidir",
                        "--packets", "4000", "--flows", "200"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    count = int(lines[3].removeprefix("sharding violations: ").split()[0])
    own = next(line for line in lines if line.startswith("chain: "))
    assert count > 100 and "among the checked objects" not in lines[3]
    assert lines[3] == (f"sharding violations: {count} (0 state keys touched from more than one core, {count} flows "
                        "whose replies reached another core than the one that allocated their value)")
    assert own.startswith("chain: not sharded by allocation, so each core's own chain hands out its indices from 0 "
                          "(replies carry dst_port = 1024 + i): ")
    assert f"reached another core ({count} flows split: external there has no entry for them)" in own


def test_an_object_left_unchecked_is_named_in_the_summary_line(nat_broken):
    """Without the allocation model (the sharded objects' names only, as a Dask segment has), the
    key of external holds the allocated port: the line says the count covers the checked objects
    and names external with why, never a bare "0 ... touched from more than one core"."""
    from explorer.commands.simulate import render
    from explorer.simulate.simulation import sharded_objects

    s = nat_broken
    sim = Simulation(s.analysis, sharded_objects(s.sharding), s.plan)
    sim.add(*next(iter(pipeline.traffic_chunks("bidir", 5_000, 200, 0))))
    report = sim.report()
    assert report.pools == () and [(u.object, u.allocator) for u in report.unchecked_objects] == [("external", "chain")]
    line = render({**report.to_dict(), "nf": "nat"}).splitlines()[3]
    assert line.startswith("sharding violations: 0 state keys touched from more than one core among the checked "
                           "objects; external unchecked: its key holds an index that chain allocates (chain.index")
    assert line.endswith("which the packets alone do not give")


@pytest.mark.parametrize("nf, table", [("port_alloc.c", "flows"), ("cone_nat.c", "flows")])
def test_other_allocating_nfs_under_a_plan_not_sharded_by_allocation(nf, table):
    """Two more NATs whose WAN side reads state at the port the LAN side allocated (port_alloc: a map
    keyed by the port; cone_nat: the dchain and vectors at dst_port - base, which no key table saw:
    its broken plan showed 0 violations and nothing unchecked). Their valid plans show none."""
    path = ROOT / "tests" / "nfs" / nf
    broken = pipeline.solve(path, cores=4, quality=False, overrides={table: {0: ("src_ip",), 1: ("src_ip",)}})
    report = pipeline.simulate(broken, "bidir", packets=10_000, flows=300)
    (own,) = report.pools
    assert not own.pooled and own.violations > 150 and own.stray >= own.violations
    assert report.violation_count >= own.violations and not report.unchecked_objects
    valid = pipeline.simulate(pipeline.solve(path, cores=4, quality=False), "bidir", packets=10_000, flows=300)
    assert valid.pools[0].pooled and valid.violation_count == 0 and valid.pools[0].replies == own.replies


def _swap(frame: bytes) -> bytes:
    out = bytearray(frame)
    out[0:6], out[6:12] = frame[6:12], frame[0:6]
    out[26:30], out[30:34] = frame[30:34], frame[26:30]
    out[34:36], out[36:38] = frame[36:38], frame[34:36]
    return bytes(out)


def test_a_capture_behind_the_sequential_nat_is_readdressed(nat16):
    """Replies to the ports the sequential NAT handed out (a capture taken behind it) reach the
    parallel build at the ports its cores allocate."""
    lan = generate("prefix", packets=3000, flows=300, seed=4, reply_share=0.0, **ONE_SERVER)
    seq = run_trace(str(NAT), lan)
    sent = {i: frame for i, device, frame in seq.outputs if device == 1}
    replies = [(int(lan.timestamps[i]) + 1000, _swap(frame)) for i, frame in sorted(sent.items())]
    trace = Trace.merge({0: (lan.timestamps, lan.frames),
                         1: (np.array([t for t, _ in replies], dtype=np.uint64), tuple(f for _, f in replies))})
    report = pipeline.simulate(nat16, trace)
    assert report.pools[0].replies == len(replies) and report.violation_count == 0
    assert report.imbalance <= 1.5


@pytest.mark.dpdk
def test_the_model_allocates_the_ports_the_generated_program_does(tmp_path):
    """Oracle: the external port of every flow, from the replay of the generated sn build, equals the
    one the simulator's pool model gives that flow."""
    s = pipeline.solve(NAT, cores=4, quality=False)
    project = write_project(parallel_plan(s), tmp_path / "nat")
    lan = generate("prefix", packets=4000, flows=500, seed=6, reply_share=0.0, udp_share=0.5, **ONE_SERVER)
    run = run_replay(project, lan)
    real = {}
    for i, frame in enumerate(run.frames):
        flow = (lan.frames[i][26:34], lan.frames[i][34:38], lan.frames[i][23])
        real.setdefault(flow, int.from_bytes(frame[34:36], "big"))
    sim = Simulation(s.analysis, s.sharding, s.plan)
    sim.add(fields_of(lan), np.asarray(lan.devices))
    model = sim.pools[0]
    modelled = {}
    for i in range(len(lan)):
        flow = (lan.frames[i][26:34], lan.frames[i][34:38], lan.frames[i][23])
        if flow not in modelled:
            match = np.flatnonzero(model.flows.packet[:model.flows.size] == i)
            assert len(match) == 1
            modelled[flow] = int(model.flows.emitted[match[0], 2])  # the source port it goes out with
    assert modelled == real and len(real) == 500


@pytest.mark.parametrize("threads", [1, 3])
def test_row_index_behaves_like_dict_setdefault(threads, monkeypatch):
    """The pool model's flow and reply tables against a dict: ids by first appearance, a value
    seen before keeps its id, invalid rows are skipped, absent values are not found (looked up on
    several threads too)."""
    from explorer.simulate import pools
    from explorer.simulate.pools import RowIndex

    monkeypatch.setattr(pools, "_SERIAL_ROWS", 0)
    rng = np.random.default_rng(5)
    for rows, cols, high in [(1, 5, 3), (500, 5, 4), (5000, 2, 1 << 40), (3000, 3, 40), (0, 3, 2)]:
        index, reference = RowIndex(cols, threads), {}
        for start in range(0, rows, 700):  # several calls, growing the table
            table = rng.integers(0, high, size=(min(700, rows - start), cols), dtype=np.int64).astype(np.uint64)
            valid = rng.random(len(table)) < 0.9
            taken = index.add_new(table, first_id=len(reference), valid=valid)
            expected = []
            for r, row in enumerate(map(tuple, table.tolist())):
                if valid[r] and row not in reference:
                    reference[row] = len(reference)
                    expected.append(r)
            assert taken.tolist() == expected
            probe = np.concatenate([table, table + np.uint64(high)])  # present, then absent values
            assert index.find(probe).tolist() == [reference.get(row, -1) for row in map(tuple, probe.tolist())]
        assert index.size == len(reference)
