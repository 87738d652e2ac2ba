"""The replay harness of generated projects: steering that agrees with the NIC model packet by
packet, the outcome log, the checks it makes before running."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.codegen.compile import build_program
from explorer.verify.replay import RAN_ALONE, RAN_CELLS, RAN_READ, RAN_WRITE, eal_args, run_replay
from explorer.verify.split import cores_of
from explorer.errors import ConfigError, RunError
from explorer.processes import eal_prefix, run_child
from explorer.rss.toeplitz import hash_fields
from explorer.run import encode_trace, run_trace
from explorer.traffic.field_arrays import fields_of

from codegen_fixtures import project, traffic

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.dpdk


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("nf,cores", [("nat", 4), ("pol", 3), ("psd", 2), ("fw", 4)])
def test_replay_steering_agrees_with_the_nic_model(tmp_path, nf, cores):
    """Toeplitz over each device's fields (addresses only for non-TCP/UDP IPv4, nothing for other
    frames), its key and RETA: the C harness and explorer.simulate.steering agree on every packet."""
    p = project(tmp_path, nf, "sn", cores)
    trace = traffic()
    run = run_replay(p, trace)
    assert np.array_equal(run.cores, cores_of(p.plan, trace))
    fields = fields_of(trace)
    for device in range(p.plan.devices):
        mine = (trace.devices == device) & fields.is_l4
        steering = p.plan.steering[device]
        arrays = {"src_ip": fields.src_ip[mine], "dst_ip": fields.dst_ip[mine], "src_port": fields.src_port[mine],
                  "dst_port": fields.dst_port[mine]}
        assert np.array_equal(run.hashes[mine], hash_fields(steering.key, steering.fields, arrays))
    assert np.all(run.hashes[~fields.is_ipv4] == 0)
    assert np.all(run.ran == RAN_ALONE)


def test_seq_replay_equals_the_sequential_harness(tmp_path):
    p = project(tmp_path, "nat", "seq", 1)
    trace = traffic()
    run = run_replay(p, trace)
    seq = run_trace("sample_nfs/nat.c", trace)
    assert run.verdicts.tolist() == [v.verdict for v in seq.verdicts]
    assert [run.frames[i] for i, _, _ in seq.outputs] == [f for _, _, f in seq.outputs]


def test_locks_replay_records_reader_and_writer_passes(tmp_path):
    p = project(tmp_path, "bridge", "locks", 2)
    run = run_replay(p, traffic())
    processed = np.array([len(f) >= 14 for f in traffic().frames])
    assert set(run.ran[processed].tolist()) == {RAN_READ, RAN_WRITE}
    writes = run.ran == RAN_WRITE
    # A rerun names the object it was about to change; the packets its core runs after it, to the end
    # of the burst, keep the writer flag and run as writers with no reader pass, so they name none.
    reruns = writes & (run.abort_object != 0xFFFFFFFF)
    assert reruns.any()
    assert np.all(run.ticket_end[processed] > run.ticket_begin[processed])


def test_the_self_test_and_the_lcore_count_are_checked(tmp_path):
    p = project(tmp_path, "fw", "sn", 2)
    binary = build_program(p, "replay")
    path = tmp_path / "trace.bin"
    path.write_bytes(encode_trace(traffic(packets=100)))
    with eal_prefix("test") as prefix:
        args = eal_args(3, prefix)  # three lcores for a two-core build
        done = run_child([str(binary), *args, "--", str(path), str(tmp_path / "out.bin")])
    assert done.returncode == 1 and "this build runs 2 cores but EAL has 3 lcores" in done.stderr


def test_a_trace_on_a_device_the_nf_lacks_is_refused(tmp_path):
    p = project(tmp_path, "fw", "sn", 2)
    trace = traffic(packets=50)
    bad = type(trace)(trace.timestamps, np.full(len(trace), 3, np.uint16), trace.frames)
    with pytest.raises(ConfigError, match="device 3"):
        run_replay(p, bad)


def test_nf_init_failure_on_a_core_is_reported(tmp_path, monkeypatch):
    nf = tmp_path / "big.c"
    nf.write_text('#include "nf.h"\nstatic struct nf_map *m;\n'
                  'bool nf_init(void) { return nf_map_allocate(4, 4000000000u, &m); }\n'
                  'int nf_process(uint16_t d, uint8_t *p, uint16_t l, nf_time_t n) {\n'
                  '  (void)d; (void)p; (void)l; (void)n;\n  return NF_DROP;\n}\n')
    monkeypatch.chdir(tmp_path)
    s = pipeline.solve(str(nf), cores=2)
    p = write_project(parallel_plan(s, "sn", 2), tmp_path / "p")
    with pytest.raises(RunError, match="nf_init failed"):
        run_replay(p, traffic(packets=10))


@pytest.mark.parametrize("nf,strategy", [("pol", "locks"), ("nat", "locks"), ("nat", "tm")])
def test_a_paced_locks_replay_runs_as_the_sequential_nf(tmp_path, nf, strategy):
    """Paced (one packet at a time in trace order) on write-heavy traffic: a core that waits for its
    turn gives back its reader token and the writer flag it kept for its burst (nf_par_wait), so the
    other core's packet can write; the run is then the sequential NF's, verdict and bytes. pol's
    bucket updates write their cells under cell locks instead."""
    from explorer.bench.measure import bench_trace
    # pol's main path (a bucket update per WAN packet); nat: every packet opens a flow
    trace = bench_trace(4000, nf=nf)[0] if nf == "pol" else traffic("uniform", packets=4000, packets_per_flow=1)
    p = project(tmp_path, nf, strategy, 2)
    run = run_replay(p, trace, paced=True, timeout=120)
    held = (run.ran == RAN_WRITE) & (run.abort_object == 0xFFFFFFFF)  # ran with the flag a core kept
    if nf == "pol":
        assert np.mean(run.ran == RAN_CELLS) > 0.25  # the rest: new hosts (the write lock) and LAN frames
    else:
        assert held.any()
    assert len(set(run.cores.tolist())) == 2
    seq = run_trace(f"sample_nfs/{nf}.c", trace)
    assert run.verdicts.tolist() == [v.verdict for v in seq.verdicts]
    assert [run.frames[i] for i, _, _ in seq.outputs] == [f for _, _, f in seq.outputs]
