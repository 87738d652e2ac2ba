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


def test_runts_in_a_capture_are_skipped_as_the_runtime_drops_them(fw, tmp_path):
    """A frame shorter than an Ethernet header never reaches the NF (nfx run counts it as a runt):
    the simulator skips it, says so, and reports what the other frames alone give."""
    from explorer.traffic.pcap import TrafficWarning, write_pcap

    trace = generate("bidir", packets=2_000, flows=200, seed=4).for_device(0)
    clean, odd = tmp_path / "clean.pcap", tmp_path / "runts.pcap"
    write_pcap(clean, trace.timestamps, trace.frames)
    frames = list(trace.frames)
    stamps = list(trace.timestamps)
    n = len(frames)
    for k in (0, n // 2, n + 2):  # a runt before, among and after the others
        frames.insert(k, b"\x01" * (k % 14))
        stamps.insert(k, stamps[min(k, len(stamps) - 1)])
    write_pcap(odd, stamps, frames)
    with pytest.warns(TrafficWarning, match=f"3 of {n + 3} packets are shorter than an Ethernet header"):
        skipped = pipeline.simulate(fw, {0: str(odd)}, chunk_packets=700)
    whole = pipeline.simulate(fw, {0: str(clean)})
    assert skipped.packets == whole.packets == n
    assert skipped.per_core == whole.per_core and skipped.violation_count == whole.violation_count


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


def test_a_device_missing_between_the_plans_devices_is_rejected(fw):
    """Devices within the range of the plan's are checked one by one (a plan of devices 0 and 2
    has no device 1), and a negative device is named."""
    from explorer.simulate.steering import Hasher

    hasher = Hasher(fw.plan)
    hasher.slot = np.array([0, -1, 1])  # as for a plan of devices 0 and 2
    hasher.check_devices(np.array([0, 2, 2, 0]))
    with pytest.raises(TrafficError, match="device 1, which the NF does not have"):
        hasher.check_devices(np.array([0, 2, 1, 0]))
    with pytest.raises(TrafficError, match="device -3, which is not a device"):
        hasher.check_devices(np.array([0, -3]))


def test_class_steering_equals_steering_every_packet(fw):
    """One pass over the class keys gives each class the bucket ``steer`` gives its packets, the
    packets per RETA entry, and per device its packets and distinct entries; a class on a device
    the plan lacks is named as a packet would be."""
    from explorer.simulate.classes import ClassTable, Layout
    from explorer.simulate.steering import Hasher

    trace = generate("mixed", packets=5_000, flows=300, seed=4)
    fields, devices = extract_fields(trace.frames), np.asarray(trace.devices, dtype=np.int64)
    table = ClassTable(Layout.of([], []), threads=1)
    table.add(fields, devices, 0)
    classes = table.classes()
    hasher = Hasher(fw.plan)
    got = hasher.class_steering(classes.keys, classes.count, fw.nic.reta_size)
    packets = steer(fw.plan, fields, devices, hasher=hasher)
    assert (got.buckets == packets.buckets[classes.first]).all()
    assert (~fields.is_l4).any() and (~fields.is_ipv4).any()  # hashed on L3 only, and not hashed
    assert got.load.tolist() == np.bincount(packets.buckets, minlength=fw.nic.reta_size).tolist()
    assert got.reach == tuple((int(d), int((devices == d).sum()), len(np.unique(packets.buckets[devices == d])))
                              for d in np.unique(devices))
    assert len(got.reach) == 2 and got.reach[0][0] == 0
    hasher.slot = np.array([0, -1])  # as for a plan of device 0 alone
    with pytest.raises(TrafficError, match="device 1, which the NF does not have"):
        hasher.class_steering(classes.keys, classes.count, fw.nic.reta_size)


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


def test_cli_simulate_on_the_packets_that_follow_every_path():
    """``--traffic paths``, as check takes it: fw's plan on packets that follow all its paths has no
    violation, a hand-made asymmetric WAN key has some (replies on the paths land elsewhere), and a
    count is refused since the paths decide the packets."""
    import json
    good = _nfx("simulate", "sample_nfs/fw.c", "--traffic", "paths", "--cores", "4", "--json")
    assert good.returncode == 0, good.stderr
    assert "of 7 paths followed" in good.stderr and json.loads(good.stdout)["violations"]["count"] == 0
    bad = _nfx("simulate", "sample_nfs/fw.c", "--traffic", "paths", "--cores", "4", "--json", "--key", "1=" + "ab" * 52)
    assert json.loads(bad.stdout)["violations"]["count"] > 0
    counted = _nfx("simulate", "sample_nfs/fw.c", "--traffic", "paths", "--packets", "5")
    assert counted.returncode == 1 and "paths traffic takes no --packets" in counted.stderr
    unknown = _nfx("simulate", "sample_nfs/fw.c", "--traffic", "path")
    assert unknown.returncode == 1 and "known: bidir" in unknown.stderr and "and paths" in unknown.stderr


def test_psd_with_a_five_tuple_hash_has_violations_on_real_analysis():
    solution = pipeline.solve(str(ROOT / "sample_nfs" / "psd.c"), quality=False)
    good = pipeline.simulate(solution, "scan", packets=20_000, flows=500)
    bad = pipeline.simulate(solution, "scan", packets=20_000, flows=500, fields={1: ALL4})
    assert good.violation_count == 0 < bad.violation_count
    assert {v.object for v in bad.violations} <= {"sources", "ports"}


# ---- streaming: chunks of generators and pcaps give what one big call gives -------------------

KINDS = ["uniform", "zipf", "prefix", "bidir", "churn", "scan", "heartbeat", "mixed"]


@pytest.fixture
def small_segments(monkeypatch):
    """Segments of 1,000 packets, so that a few thousand packets span several of them."""
    from explorer.traffic import generators
    monkeypatch.setattr(generators, "SEGMENT", 1000)
    generators._FLOW_CACHE.clear()
    yield generators
    generators._FLOW_CACHE.clear()


@pytest.mark.parametrize("kind", KINDS)
def test_generator_chunks_equal_one_big_call(small_segments, kind):
    g = small_segments
    whole = g.generate_headers(kind, 3500, 300, seed=5)
    for size in (1, 777, 1000, 5000):
        parts = list(g.header_chunks(kind, 3500, 300, seed=5, chunk_packets=size)) if size != 1 else \
            list(g.header_chunks(kind, 40, 300, seed=5, chunk_packets=1))
        ref = whole if size != 1 else g.generate_headers(kind, 40, 300, seed=5)
        joined = g.Headers.concat(parts)
        for name in ("timestamps", "devices", "length", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
                     "tcp_flags", "ihl", "ether_type", "eth_src", "ip_id"):
            assert np.array_equal(getattr(joined, name), getattr(ref, name)), (kind, size, name)
        assert all(len(p) == size for p in parts[:-1])
    fields, devices = g.generate_fields(kind, 3500, 300, seed=5)
    streamed = list(g.field_chunks(kind, 3500, 300, seed=5, chunk_packets=600))
    assert np.array_equal(np.concatenate([d for _, d in streamed]), devices)
    from explorer.traffic.field_arrays import PacketFields
    assert PacketFields.concat([f for f, _ in streamed]) == fields == whole.fields()
    # each segment can be made alone, e.g. on a Dask worker
    alone = [g.segment_fields(kind, 3500, 300, 5, i) for i in range(g.segment_count(3500))]
    assert len(alone) == 4 and PacketFields.concat([f for f, _ in alone]) == fields
    # and segments differ from each other (each has its own stream)
    assert not np.array_equal(alone[0][0].src_port[:100], alone[1][0].src_port[:100])


def test_segmented_traffic_keeps_each_kinds_promises(small_segments):
    g = small_segments
    fields, devices = g.generate_fields("heartbeat", 4000, 100, seed=1, backends=4, heartbeat_share=0.1)
    beats = np.flatnonzero(devices == 0)
    assert len(beats) == 400 and np.diff(beats).min() >= 9 and np.diff(beats).max() <= 11
    fields, devices = g.generate_fields("scan", 6000, 200, seed=3, scan_share=0.25, scan_ports=512)
    probes = (devices == 1) & (fields.dst_port <= 512) & (fields.src_port >= 32768) & (fields.src_ip >> 24 != 10)
    top = np.bincount(fields.src_ip[probes] & 0xFFFF).argmax()
    assert probes.sum() >= 1500 and len(np.unique(fields.dst_port[probes])) == 512
    h = g.generate_headers("bidir", 3001, 50, seed=5)
    assert h.devices.tolist() == [0, 1] * 1500 + [0]
    assert np.array_equal(h.src_ip[0::2][:1500], h.dst_ip[1::2])  # replies answer the request before them
    del top


def test_streamed_simulation_equals_in_memory(fw, small_segments):
    """Chunked generator input, pcap files read in chunks and one in-memory trace: one report."""
    from explorer.simulate.simulation import simulate
    g = small_segments
    fields, devices = g.generate_fields("mixed", 5000, 400, seed=9)
    broken = pipeline.with_keys(fw.plan, {1: bytes(range(52))})
    whole = simulate(fw.analysis, fw.sharding, broken, [(fields, devices)], rebalance_reta=True)
    for size in (333, 1000, 4096):
        streamed = simulate(fw.analysis, fw.sharding, broken, g.field_chunks("mixed", 5000, 400, 9, size),
                            rebalance_reta=True)
        assert streamed.to_dict() == whole.to_dict()
    assert whole.violation_count > 0 and len(whole.violations) == 5


def test_a_report_midway_does_not_change_the_final_one(fw):
    """A report releases the class table; chunks added after it count on from its classes."""
    from explorer.simulate.simulation import Simulation
    fields, devices = generate_fields("mixed", 6000, 500, seed=3)
    broken = pipeline.with_keys(fw.plan, {1: bytes(range(52))})
    once, twice = Simulation(fw.analysis, fw.sharding, broken), Simulation(fw.analysis, fw.sharding, broken)
    once.add(fields, devices)
    head = np.arange(2500)
    twice.add(fields.select(head), devices[head])
    midway = twice.report(rebalance_reta=True)
    tail = np.arange(2500, 6000)
    twice.add(fields.select(tail), devices[tail])
    final = once.report(rebalance_reta=True)
    assert twice.report(rebalance_reta=True).to_dict() == final.to_dict()
    assert midway.packets == 2500 and final.violation_count > midway.violation_count > 0


@pytest.mark.parametrize("nf,strategy,kind", [("fw", "auto", "bidir"), ("psd", "auto", "scan"), ("lb", "auto", "mixed"),
                                              ("fw", "locks", "bidir")])
def test_reports_made_in_small_parts_equal_one_pass(nf, strategy, kind, monkeypatch):
    """The report evaluates classes a part at a time, the next part while the last one's keys are
    recorded on another thread: tiny parts give the same report (violations and examples, flows,
    write shares, contention) as one."""
    from explorer.simulate import simulation
    solution = pipeline.solve(str(ROOT / "sample_nfs" / f"{nf}.c"), cores=4, strategy=strategy, quality=False)
    broken = {d.device: bytes(range(d.device + 1, d.device + 53)) for d in solution.plan.devices}
    every = {d.device: ALL4 for d in solution.plan.devices}
    one = pipeline.simulate(solution, kind, packets=8000, flows=900, seed=2, keys=broken, fields=every,
                            rebalance=True)
    monkeypatch.setattr(simulation, "_PART_CLASSES", 97)
    monkeypatch.setattr(simulation, "_THREADED_CLASSES", 0)  # two threads even for these few classes
    parts = pipeline.simulate(solution, kind, packets=8000, flows=900, seed=2, keys=broken, fields=every,
                              rebalance=True)
    assert parts.to_dict() == one.to_dict() and parts.checked_packets == one.checked_packets
    assert one.classes > 10 * 97
    assert (one.violation_count > 0 or (one.contention is not None and one.contention.writes > 0)
            or max(share for _, share in one.write_shares) > 0)


def test_pcaps_are_merged_by_time_while_streaming(tmp_path):
    from explorer.simulate.streams import merged_pcaps
    from explorer.traffic.pcap import load_inputs, write_pcap
    trace = generate("mixed", 3000, 200, seed=4)
    # equal timestamps across devices: ties go by device number, then file order
    stamps = trace.timestamps // 1000 * 1000
    for dev in (0, 1):
        mine = np.flatnonzero(trace.devices == dev)
        write_pcap(tmp_path / f"d{dev}.pcap", stamps[mine], [trace.frames[i] for i in mine])
    whole = load_inputs([f"0={tmp_path / 'd0.pcap'}", f"1={tmp_path / 'd1.pcap'}"])
    assert len(set(stamps.tolist())) < len(stamps)  # there are ties
    for size in (1, 50, 5000):
        frames, devices = [], []
        for fr, dv in merged_pcaps({0: tmp_path / "d0.pcap", 1: tmp_path / "d1.pcap"}, size):
            frames.extend(fr)
            devices.append(dv)
        assert tuple(frames) == whole.frames and np.array_equal(np.concatenate(devices), whole.devices)


def test_merged_pcap_chunks_are_bounded_by_their_frame_bytes(tmp_path, monkeypatch):
    """Big frames make small chunks: a chunk is handed on once its frames pass the byte budget
    (plus at most the piece last read from each file), and the chunks still make up the trace."""
    from explorer.simulate import streams
    from explorer.traffic.pcap import load_inputs
    trace = generate("bidir", 3000, 200, seed=2, size=1500)
    paths = write_trace(trace, tmp_path)
    monkeypatch.setattr(streams, "_CHUNK_BYTES", 100_000)
    monkeypatch.setattr(streams, "_READ_PACKETS", 16)
    chunks = list(streams.merged_pcaps({d: str(p) for d, p in paths.items()}, 1000))
    whole = load_inputs([f"{d}={p}" for d, p in sorted(paths.items())])
    assert tuple(f for fr, _ in chunks for f in fr) == whole.frames
    assert np.array_equal(np.concatenate([dv for _, dv in chunks]), whole.devices)
    sizes = [sum(map(len, fr)) for fr, _ in chunks]
    assert len(chunks) > 20 and max(sizes) <= 100_000 + 2 * 16 * 1500  # 3 chunks by packet count alone


def test_simulating_pcaps_equals_simulating_the_trace(fw, tmp_path):
    trace = generate("bidir", 4000, 300, seed=6)
    paths = write_trace(trace, tmp_path)
    broken = {1: bytes(range(52))}
    whole = pipeline.simulate(fw, trace, keys=broken)
    chunked = pipeline.simulate(fw, {d: str(p) for d, p in paths.items()}, keys=broken, chunk_packets=300)
    assert chunked.to_dict() == whole.to_dict() and whole.violation_count > 0


def test_memory_follows_classes_not_packets(fw):
    """The same 1,000 flows over 10x more packets: the class count stays put."""
    small = pipeline.simulate(fw, "uniform", packets=20_000, flows=1_000)
    large = pipeline.simulate(fw, "uniform", packets=200_000, flows=1_000)
    assert small.classes <= large.classes <= 2_000 * 3  # per flow: two directions, a few length outcomes
    assert large.packets == 200_000


# ---- locks and tm: contention, not violations (issue 10, item 7) ------------------------------

def test_locks_plan_counts_no_violations_and_reports_write_lock_share():
    lb = pipeline.solve(str(ROOT / "sample_nfs" / "lb.c"), strategy="locks", quality=False)  # auto replicates
    assert lb.strategy == "locks"
    report = pipeline.simulate(lb, "heartbeat", packets=20_000, flows=500, seed=1, backends=4)
    assert report.violation_count == 0 and report.violations == () and report.contention is not None
    c = report.contention
    # new client flows and new backends write; established flows and known backends read
    assert 0 < c.writes < report.packets and sum(c.per_core) == c.writes
    beats = 20_000 * 0.05
    assert 500 <= c.writes <= 500 + 4 + beats  # at most one write per flow and backend, plus beats
    data = report.to_dict()
    assert data["strategy"] == "locks" and data["contention"]["share"] == pytest.approx(c.writes / 20_000)


def test_a_policer_under_locks_writes_its_buckets_under_cell_locks():
    """pol's known hosts change only their bucket (a vector cell): no write lock, cell locks; a new
    host's first packet allocates (the write lock). The bench's replay counts the same split."""
    pol = pipeline.solve(str(ROOT / "sample_nfs" / "pol.c"), strategy="locks", quality=False)
    report = pipeline.simulate(pol, "zipf", packets=20_000, flows=500, seed=1)
    c = report.contention
    fields, devices = generate_fields("zipf", 20_000, 500, seed=1)
    wan = devices == 1
    hosts = len(set(fields.dst_ip[wan].tolist()))
    assert c.writes == hosts and c.cells == int(wan.sum()) - hosts, c
    assert report.to_dict()["contention"]["cell_share"] == pytest.approx(c.cells / 20_000)
    fw = pipeline.solve(str(ROOT / "sample_nfs" / "fw.c"), strategy="locks", quality=False)
    assert pipeline.simulate(fw, "bidir", packets=2_000, flows=100, seed=1).contention.cells == 0


def test_firewall_writes_once_per_new_lan_flow_under_locks():
    fw_locks = pipeline.solve(str(ROOT / "sample_nfs" / "fw.c"), strategy="locks", quality=False)
    fields, devices = generate_fields("bidir", 10_000, 700, seed=2)
    report = pipeline.simulate(fw_locks, "bidir", packets=10_000, flows=700, seed=2)
    lan_flows = {(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e, dev, l4 in zip(
        fields.src_ip, fields.dst_ip, fields.src_port, fields.dst_port, fields.proto, devices, fields.is_l4)
        if dev == 0 and l4}
    assert report.contention.writes == len(lan_flows) and report.violation_count == 0


def test_cli_param_reaches_the_generator_and_is_checked():
    import json
    r = _nfx("simulate", "sample_nfs/nat.c", "--traffic", "prefix", "--packets", "4000", "--flows", "400",
             "--param", "server_prefix=172.16.0.10/32", "--param", "client_prefix=10.1.0.0/16", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["packets"] == 4000
    for args, needle in [(["--param", "nope=1"], "has no parameter 'nope'"),
                         (["--param", "server_prefix"], "expected NAME=VALUE"),
                         (["--param", "server_prefix=172.16.0.10/33"], "server_prefix='172.16.0.10/33'")]:
        r = _nfx("simulate", "sample_nfs/nat.c", "--traffic", "prefix", "--packets", "100", *args)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    r = _nfx("simulate", "sample_nfs/nat.c", "--in", "0=x.pcap", "--param", "skew=1")
    assert r.returncode == 1 and "goes with --traffic" in r.stderr


def test_params_are_typed_and_checked_against_the_kind():
    from explorer.commands.options import parse_traffic_params
    from explorer.errors import ConfigError
    assert parse_traffic_params(["server_prefix=172.16.0.10/32", "skew=1.5", "size=64",
                                 "client_prefix=10.1.0.0/16,10.2.0.0/16"], ["prefix"]) == {
        "server_prefix": "172.16.0.10/32", "skew": 1.5, "size": 64, "client_prefix": ["10.1.0.0/16", "10.2.0.0/16"]}
    with pytest.raises(ConfigError, match="no parameter 'skew'"):
        parse_traffic_params(["skew=1"], ["uniform"])
    with pytest.raises(ConfigError, match="no parameter 'skew'"):  # a sweep's kinds must all accept it
        parse_traffic_params(["skew=1"], ["zipf", "uniform"])


def test_chunks_counted_in_the_background_give_the_serial_report(monkeypatch):
    """With two threads a chunk is counted while the next one is made (and a NAT's readdressed):
    reports midway and at the end equal one thread's, and an error in the background counting is
    raised by the next call."""
    from explorer.simulate.classes import ClassTable
    from explorer.simulate.simulation import Simulation
    from explorer.traffic.generators import field_chunks

    for nf in ("fw", "nat"):
        solution = pipeline.solve(str(ROOT / "sample_nfs" / f"{nf}.c"), cores=4, quality=False)
        chunks = list(field_chunks("bidir", 6000, 500, seed=3, chunk_packets=1000))
        reports = []
        for threads in (1, 2):
            sim = Simulation(solution.analysis, solution.sharding, solution.plan, threads=threads)
            for fields, devices in chunks[:3]:
                sim.add(fields, devices)
            midway = sim.report()
            for fields, devices in chunks[3:]:
                sim.add(fields, devices)
            reports.append((midway.to_dict(), sim.report().to_dict(), sim.packets))
        assert reports[0] == reports[1] and reports[0][2] == 6000

    def broken(*args):
        raise RuntimeError("counting failed")

    sim = Simulation(solution.analysis, solution.sharding, solution.plan, threads=2)
    monkeypatch.setattr(ClassTable, "add", broken)
    sim.add(*chunks[0])
    with pytest.raises(RuntimeError, match="counting failed"):
        sim.report()
