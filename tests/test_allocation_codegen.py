"""Generated code with per-core pools (sharding by allocation): the plan, the transformed NF, and
the replay harness and DPDK program, which recompute the pools at start-up, refuse a plan whose
pools their key and RETA do not give, and answer every reply on the core that created its flow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.codegen.printer import render
from explorer.errors import ConfigError, RunError
from explorer.sharding.pools import owners
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace
from explorer.verify.pcap_run import expected_outputs, microsecond_trace, run_on_pcaps
from explorer.verify.replay import run_replay

ROOT = Path(__file__).resolve().parent.parent
NFS = {"nat": ROOT / "sample_nfs" / "nat.c", "cone_nat": ROOT / "tests" / "nfs" / "cone_nat.c"}


def solved(nf: str, cores: int):
    return pipeline.solve(NFS[nf], cores=cores, quality=False)


def test_the_plan_keeps_the_pools_and_recomputes_them_for_other_core_counts():
    s = solved("nat", 4)
    plan = parallel_plan(s)
    (pool,) = plan.pools
    assert pool.sizes == (4096,) * 4 and pool.allocator == "chain"
    assert plan.object("chain").pool == 0 and plan.object("chain").per_core == 4096
    assert plan.object("int_keys").per_core == 16384  # indexed by pooled (global) indices
    assert plan.object("internal").per_core == 4096
    assert "pool 0 chain: 4096 indices per core (dst_port 1024 + i on device 1)" in plan.text()
    three = plan.with_cores(3)
    assert sum(three.pools[0].sizes) == 16384 and len(three.pools[0].sizes) == 3
    assert three.pools[0].digest != pool.digest
    one = plan.with_cores(1)
    assert one.pools[0].sizes == (16384,) and one.object("chain").per_core == 16384


def test_the_nf_allocates_from_its_pool():
    files = render(parallel_plan(solved("nat", 2)))
    nf = files["nf.c"].decode()
    assert "nf_pool_dchain_allocate(0, NAT_CAPACITY, &chain)" in nf
    assert "nf_pool_capacity(NAT_CAPACITY)" in nf and "nf_sn_capacity" not in nf
    assert "nf_vector_allocate(sizeof(struct internal_key), NAT_CAPACITY, &int_keys)" in nf  # every cell
    plan_c = files["nf_plan.c"].decode()
    assert ".allocator = \"chain\"" in plan_c and ".field = NF_FIELD_DST_PORT" in plan_c
    assert "#define NF_POOLS 1" in files["nf_plan.h"].decode()
    assert "refuses to start" in files["README.md"].decode()


def test_nfs_without_pools_print_none():
    files = render(parallel_plan(pipeline.solve(ROOT / "sample_nfs" / "fw.c", cores=2, quality=False)))
    assert "#define NF_POOLS 0" in files["nf_plan.h"].decode()
    assert "nf_pool" not in files["nf.c"].decode()


# ---- running it: replies reach the core that holds their flow ------------------------------------

def _swap(frame: bytes) -> bytes:
    """The far end's answer: MACs, IPv4 addresses and ports swapped (checksums stay valid)."""
    out = bytearray(frame)
    out[0:6], out[6:12] = frame[6:12], frame[0:6]
    out[26:30], out[30:34] = frame[30:34], frame[26:30]
    l4 = 14 + 4 * (frame[14] & 15)
    out[l4:l4 + 2], out[l4 + 2:l4 + 4] = frame[l4 + 2:l4 + 4], frame[l4:l4 + 2]
    return bytes(out)


def _with_replies(trace: Trace, run) -> tuple[Trace, np.ndarray]:
    """``trace`` plus a WAN reply 1 us after every frame the run sent to the WAN; and per packet of
    the result, the request it answers (-1 for the trace's own)."""
    sent = [i for i in range(len(trace)) if run.verdicts[i] == 1]
    stamps = np.concatenate([trace.timestamps, trace.timestamps[sent] + np.uint64(1000)])
    devices = np.concatenate([trace.devices, np.ones(len(sent), dtype=np.uint16)])
    frames = list(trace.frames) + [_swap(run.frames[i]) for i in sent]
    origin = np.concatenate([np.full(len(trace), -1), np.array(sent, dtype=np.int64)])
    order = np.lexsort((np.arange(len(frames)), stamps))
    return Trace(stamps[order], devices[order], tuple(frames[i] for i in order)), origin[order]


def _lan_flows(packets: int, flows: int) -> Trace:
    return generate("prefix", packets=packets, flows=flows, seed=5, reply_share=0.0, udp_share=0.5,
                    server_prefix="172.16.0.10/32")


@pytest.mark.dpdk
@pytest.mark.parametrize("nf,cores", [("nat", 4), ("cone_nat", 3)])
def test_every_reply_returns_to_its_flow_on_its_core(tmp_path, nf, cores):
    s = solved(nf, cores)
    project = write_project(parallel_plan(s), tmp_path / nf)
    requests = _lan_flows(3000, 600)
    first = run_replay(project, requests)
    assert np.all(first.verdicts == 1)  # every LAN packet leaves on the WAN with a port of its core's pool
    (pool,) = project.plan.pools
    d = project.plan.steering[1]
    owner = owners(pool.capacity, pool.offset, pool.stride, pool.field, d.key, d.fields, d.reta)
    ports = np.array([int.from_bytes(f[34:36], "big") for f in first.frames])
    assert np.array_equal(owner[ports - pool.offset], first.cores)
    assert len(np.unique(first.cores)) == cores  # one server, and still every core creates flows

    looped, origin = _with_replies(requests, first)
    second = run_replay(project, looped)
    replies = np.flatnonzero(origin >= 0)
    assert len(replies) == len(requests)
    assert np.all(second.verdicts[replies] == 0), "a reply was dropped: it reached a core without its flow"
    position = np.flatnonzero(origin < 0)  # where each request went in the merged trace
    for r in replies.tolist():
        asked = requests.frames[origin[r]]
        answer = second.frames[r]
        assert answer[30:34] == asked[26:30] and answer[36:38] == asked[34:36]  # back to the LAN host
        assert second.cores[r] == second.cores[position[origin[r]]]


@pytest.mark.dpdk
def test_the_replay_refuses_pools_its_key_does_not_give(tmp_path):
    plan = parallel_plan(solved("nat", 4))
    wrong = plan.with_keys({1: bytes(reversed(plan.steering[1].key))})  # the pools stay the old key's
    project = write_project(wrong, tmp_path / "wrong")
    with pytest.raises(ConfigError, match="could not start: the pools of chain differ from the plan"):
        run_replay(project, _lan_flows(20, 10))


@pytest.mark.dpdk
def test_the_dpdk_program_refuses_pools_its_key_does_not_give(tmp_path):
    plan = parallel_plan(solved("nat", 2))
    wrong = plan.with_keys({1: bytes(reversed(plan.steering[1].key))})
    project = write_project(wrong, tmp_path / "wrong")
    with pytest.raises(RunError, match="pools of chain differ from the plan"):
        run_on_pcaps(project, microsecond_trace(_lan_flows(20, 10)), tmp_path / "run")


@pytest.mark.dpdk
def test_the_dpdk_program_with_pools_agrees_with_the_replay(tmp_path):
    project = write_project(parallel_plan(solved("nat", 2)), tmp_path / "nat")
    requests = microsecond_trace(_lan_flows(1000, 200))
    looped, _ = _with_replies(requests, run_replay(project, requests))
    looped = microsecond_trace(looped)
    sent = run_on_pcaps(project, looped, tmp_path / "run")
    expected = expected_outputs(run_replay(project, looped), looped, 2, 2)
    assert sent == expected and sum(len(v) for k, v in sent.items() if k[0] == 0) > 0


# ---- nfx check: closed-loop replies, per-core pools against the sequential NF ---------------------

@pytest.mark.dpdk
@pytest.mark.parametrize("nf,cores", [("nat", 2), ("nat", 4), ("cone_nat", 4)])
def test_check_with_replies_is_equivalent(nf, cores):
    """One server, clients in a /16: every core allocates, every reply comes back to its flow's core,
    and the parallel build equals the sequential one up to the renaming of external ports."""
    trace = generate("prefix", packets=6000, flows=600, seed=2, server_prefix="172.16.0.10/32")
    report = pipeline.check(solved(nf, cores), trace, cores=cores)
    assert report.equivalent, report.render()
    assert report.replies > 2000 and report.renamed > 1000 and report.capacity_drift == 0
    assert min(report.per_core) > report.packets / cores / 2  # one server, yet no hot core


@pytest.mark.dpdk
def test_check_of_the_remote_endpoint_override_is_equivalent_too():
    s = pipeline.solve(NFS["nat"], cores=2, quality=False,
                       overrides={"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}})
    trace = generate("uniform", packets=4000, flows=400, seed=2)
    report = pipeline.check(s, trace, cores=2)
    assert s.pools == () and report.equivalent and report.replies > 1000, report.render()


# ---- nfx bench: each build measured on the replies to what it forwards -----------------------------

@pytest.mark.dpdk
def test_bench_of_the_nat_exercises_its_return_path():
    from explorer.bench.measure import bench

    report = bench(str(NFS["nat"]), cores=(1, 2), packets=20_000, trace_packets=8_000, repeat=1)
    assert [(r.strategy, r.cores) for r in report.results] == [("seq", 1), ("sn", 1), ("sn", 2)]
    assert "with replies to what each build forwards" in report.traffic
    assert len(report.notes) == 3
    for note in report.notes:  # requests out to the WAN, replies back to the LAN: both paths, few drops
        shares = dict(part.split("% to device ")[::-1] for part in note.rsplit(": ", 1)[1].split(", ")
                      if "% to device" in part)
        assert float(shares["0"]) > 40 and float(shares["1"]) > 40, note
    fw = bench("sample_nfs/fw.c", cores=(2,), packets=10_000, trace_packets=5_000, repeat=1)
    assert not fw.notes and "replies to what each build forwards" not in fw.traffic  # a firewall rewrites nothing
