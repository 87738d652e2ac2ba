"""The simulator: steering, violations (positive and negative), rebalancing, traffic kinds, errors."""
from __future__ import annotations

import numpy as np
import pytest
import z3

from explorer import pipeline
from explorer.errors import TrafficError
from explorer.rss.toeplitz import toeplitz_hash
from explorer.simulate.rebalance import imbalance, per_core, rebalance, round_robin
from explorer.simulate.steering import steer
from explorer.traffic.field_arrays import extract_fields
from explorer.traffic.generators import generate, generate_fields
from explorer.traffic.pcap import write_trace
from test_sharding import DPORT, SRC, access, analysis, fw_like, path
from explorer.ir import Op

ALL4 = ("src_ip", "dst_ip", "src_port", "dst_port")


def psd_like():
    return analysis([("hosts", "map"), ("ports", "map")],
                    path(0, [1], access("hosts", Op.WRITE, "nf_map_put", SRC),
                         access("ports", Op.WRITE, "nf_map_put", z3.Concat(SRC, DPORT))))


@pytest.fixture(scope="module")
def fw():
    return pipeline.solve(fw_like(), cores=16)


@pytest.mark.parametrize("kind", ["uniform", "zipf", "prefix", "bidir", "churn", "scan", "heartbeat", "mixed"])
def test_every_traffic_kind_simulates_without_violations_under_the_solved_plan(fw, kind):
    report = pipeline.simulate(fw, kind, packets=20_000, flows=2_000, seed=3)
    assert report.packets == 20_000 and sum(report.per_core) == 20_000
    assert report.violation_count == 0
    assert sum(report.buckets) == 20_000 and len(report.buckets) == fw.nic.reta_size


def test_steering_matches_the_reference_hash(fw):
    trace = generate("mixed", packets=2_000, flows=200, seed=1)
    fields = extract_fields(trace.frames)
    s = steer(fw.plan, fields, trace.devices)
    for i in range(0, 2_000, 37):
        dev = fw.plan.device(int(trace.devices[i]))
        if fields.is_l4[i]:
            data = b"".join(int(getattr(fields, f)[i]).to_bytes(4 if f.endswith("ip") else 2, "big") for f in dev.fields)
            assert s.hashes[i] == toeplitz_hash(dev.key, data)
        elif not fields.is_ipv4[i]:
            assert s.hashes[i] == 0
        assert s.cores[i] == dev.reta[s.buckets[i]]


def test_asymmetric_key_splits_firewall_replies(fw):
    broken = pipeline.simulate(fw, "bidir", packets=20_000, flows=2_000, keys={1: bytes(range(52))})
    assert broken.violation_count > 0
    example = broken.violations[0]
    assert example.object == "flows" and len(example.cores) == 2


def test_five_tuple_key_for_a_per_host_counter_is_a_violation():
    solution = pipeline.solve(psd_like(), cores=16)
    assert dict(solution.sharding.hashed)[1] == ("src_ip",)
    good = pipeline.simulate(solution, "scan", packets=20_000, flows=500)
    bad = pipeline.simulate(solution, "scan", packets=20_000, flows=500, fields={1: ALL4})
    assert good.violation_count == 0
    assert bad.violation_count > 0 and {v.object for v in bad.violations} >= {"hosts"}


def test_rebalancing_improves_skewed_load_and_keeps_sharding(fw):
    report = pipeline.simulate(fw, "zipf", packets=50_000, flows=2_000, skew=1.3, rebalance=True)
    assert report.rebalanced is not None
    assert report.rebalanced.imbalance < report.imbalance
    assert report.rebalanced.violations == 0
    assert sum(report.rebalanced.per_core) == report.packets


def test_rebalance_is_greedy_optimal_on_a_small_case():
    load = np.array([10, 0, 7, 7, 3, 3], dtype=float)
    reta = rebalance(load, 2)
    assert sorted(per_core(load, reta, 2)) == [14, 16]  # no subset sums to 15: 16 is optimal
    assert imbalance(per_core(load, round_robin(6, 2), 2)) > 1.0


def test_prefix_traffic_is_balanced_with_a_solved_key(fw):
    report = pipeline.simulate(fw, "prefix", packets=100_000, flows=20_000,
                               client_prefix="10.1.0.0/16", server_prefix="172.16.0.0/20")
    assert report.imbalance <= 1.25


def test_pcap_inputs_are_read_in_chunks_with_the_same_result(fw, tmp_path):
    trace = generate("bidir", packets=5_000, flows=500, seed=2)
    paths = write_trace(trace, tmp_path)
    whole = pipeline.simulate(fw, trace)
    chunked = pipeline.simulate(fw, {d: str(p) for d, p in paths.items()}, chunk_packets=700)
    assert sorted(whole.per_core) == sorted(chunked.per_core) and whole.per_core == chunked.per_core
    assert chunked.violation_count == whole.violation_count == 0


def test_empty_and_malformed_traffic_are_clear_errors(fw, tmp_path):
    empty = tmp_path / "empty.pcap"
    write_trace(generate("uniform", packets=10, flows=2).for_device(5), tmp_path)  # nothing on device 5
    from explorer.traffic.pcap import write_pcap
    write_pcap(empty, [], [])
    with pytest.raises(TrafficError, match="empty"):
        pipeline.simulate(fw, {0: str(empty)})
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a pcap file at all")
    with pytest.raises(TrafficError, match="junk.pcap"):
        pipeline.simulate(fw, {0: str(junk)})


def test_unknown_device_in_traffic_is_rejected(fw):
    fields, devices = generate_fields("uniform", packets=100, flows=10)
    from explorer.simulate.simulation import simulate
    with pytest.raises(TrafficError, match="device 7"):
        simulate(fw.analysis, fw.sharding, fw.plan, [(fields, np.full(100, 7))])


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _nfx(*args):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_simulate_json_on_the_sample_psd_and_a_symmetric_key_pitfall():
    import json
    r = _nfx("simulate", "sample_nfs/psd.c", "--traffic", "scan", "--packets", "20000", "--flows", "500",
             "--json", "--rebalance")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert len(data["per_core"]) == 16 and sum(data["per_core"]) == 20000
    assert data["violations"]["count"] == 0 and data["imbalance"] >= 1.0
    assert len(data["reta"]) == 512 and data["rebalanced"]["violations"] == 0
    # fw with a hand-made asymmetric key on the WAN side: replies land elsewhere
    r = _nfx("simulate", "sample_nfs/fw.c", "--traffic", "bidir", "--packets", "20000", "--json",
             "--key", "1=" + "ab" * 52)
    data = json.loads(r.stdout)
    assert data["violations"]["count"] > 0 and data["violations"]["examples"][0]["object"] == "flows"


def test_cli_simulate_bad_inputs_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 10)
    for args, needle in [(["--in", f"0={bad}"], "bad.pcap"),
                         (["--in", "0=/nonexistent.pcap"], "nonexistent"),
                         (["--traffic", "nope"], "nope"),
                         ([], "either --in"),
                         (["--traffic", "uniform", "--key", "1=xyz"], "not hexadecimal")]:
        r = _nfx("simulate", "sample_nfs/fw.c", *args)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_psd_with_a_five_tuple_hash_has_violations_on_real_analysis():
    solution = pipeline.solve(str(ROOT / "sample_nfs" / "psd.c"), quality=False)
    good = pipeline.simulate(solution, "scan", packets=20_000, flows=500)
    bad = pipeline.simulate(solution, "scan", packets=20_000, flows=500, fields={1: ALL4})
    assert good.violation_count == 0 < bad.violation_count
    assert {v.object for v in bad.violations} <= {"sources", "ports"}
