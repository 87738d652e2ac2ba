"""nfx bench: Mpps per strategy and core count next to the sequential build, its JSON and its plot."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.bench.measure import (BenchReport, BenchResult, CoreLoad, bench, bench_trace, parse_bench,
                                    wanted_strategies)
from explorer.bench.plot import scaling_svg
from explorer.bench.traffic import open_loop, traffic_for
from explorer.commands.bench import parse_cores
from explorer.errors import ConfigError, GenerateError, RunError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_bench_trace_is_read_heavy_by_default():
    trace, described = bench_trace(20_000)
    assert len(trace) == 20_000 and "1000 flows" in described and "64-byte frames" in described
    assert {len(f) for f in trace.frames} == {64}


def test_sample_nfs_get_traffic_of_their_main_path():
    """lb's clients talk to its virtual IP, pol gets hosts within and over their rate, nat replies."""
    lb = traffic_for("lb", None, 10_000)
    assert lb.kind == "heartbeat" and "virtual IP" in lb.describe()
    trace = open_loop(lb)
    vip = bytes([203, 0, 113, 1])
    to_vip = sum(1 for d, f in zip(trace.devices.tolist(), trace.frames) if d == 1 and f[30:34] == vip)
    assert to_vip / len(trace) > 0.9
    assert traffic_for("pol", None, 10_000).kind == "zipf"
    assert dict(traffic_for("nat", None, 10).params)["reply_share"] == 0.0  # replies come from each build
    assert traffic_for("my_nf", None, 10).kind == "uniform"
    assert traffic_for("lb", "uniform", 10).why == "as asked"
    assert dict(traffic_for("fw", {"kind": "zipf", "skew": 1.5, "size": 1514}, 10).params) == {"skew": 1.5}
    with pytest.raises(ConfigError, match="unknown traffic kind 'bogus'"):
        traffic_for("fw", "bogus", 10)


@pytest.mark.dpdk
def test_closed_loop_replies_answer_what_the_warm_up_leaves(tmp_path):
    """A locks build's warm-up runs the trace in order, so its NAT holds the sequential NF's ports: the
    replies come from the sequential run (an sn build's from its own replay)."""
    from explorer import pipeline
    from explorer.bench.loop import emitted
    from explorer.codegen import parallel_plan, write_project
    from explorer.run import run_trace

    trace = open_loop(traffic_for("nat", None, 2_000))
    solution = pipeline.solve("sample_nfs/nat.c", cores=2, quality=False)
    locks = write_project(parallel_plan(solution, "locks", 2), tmp_path / "locks")
    seq = run_trace("sample_nfs/nat.c", trace)
    assert emitted(locks, trace) == {i: (v, f) for i, v, f in seq.outputs if v >= 0}
    assert len(emitted(locks, trace)) == len(trace)  # every request goes out


@pytest.mark.dpdk
def test_closed_loop_verdict_shares_are_those_of_the_warm_up_order(tmp_path):
    """The shares a bench note gives come from a run in trace order, as the warm-up lap runs it: a
    locks build on 2 cores answers every reply, as the sequential NAT does (run freely, a reply could
    reach its core before the other core forwarded its request, and a third were dropped)."""
    from explorer import pipeline
    from explorer.bench.loop import closed_loop
    from explorer.codegen import parallel_plan, write_project

    trace = open_loop(traffic_for("nat", None, 4_000))
    solution = pipeline.solve("sample_nfs/nat.c", cores=2, quality=False)
    seq = closed_loop(write_project(parallel_plan(solution, "seq", None), tmp_path / "seq"), trace)[1]
    locks = closed_loop(write_project(parallel_plan(solution, "locks", 2), tmp_path / "locks"), trace)[1]
    assert locks.replies == len(trace) and locks.dropped == 0
    assert locks == seq


BENCH_OUTPUT = "\n".join((
    "bench: 1000 packets in 0.001000 s: 1.000 Mpps (locks, 2 cores)",
    "lock: big-reader lock",
    "core 0: packets 600, busy 0.000600, cpu 0.000500, waited 0.000100, writes 6, cells 300, forwarded 590, dropped 10, "
    "flooded 0, runts 0",
    "core 1: packets 400, busy 0.000400, cpu 0.000400, waited 0.000000, writes 4, cells 100, forwarded 380, dropped 0, "
    "flooded 20, runts 0", ""))


def test_parse_bench_reads_rates_verdicts_writes_and_per_core_load():
    sample = parse_bench(BENCH_OUTPUT)
    assert (sample.mpps, sample.packets, sample.seconds, sample.writes, sample.cells) == (1.0, 1000, 0.001, 10, 400)
    assert dict(sample.verdicts) == {"forwarded": 970, "dropped": 10, "flooded": 20, "runts": 0}
    assert sample.cores[0] == CoreLoad(0, 600, 0.0006, 0.0005, 0.0001) and sample.lock == "big-reader lock"
    with pytest.raises(RunError, match="no rate"):
        parse_bench("core 0: packets 1")


def test_report_json_speedups_and_rendering():
    results = (BenchResult("seq", 1, 10.0, (10.0,)), BenchResult("sn", 1, 9.5, (9.5,)),
               BenchResult("sn", 2, 18.0, (17.0, 18.0, 19.0)))
    report = BenchReport("fw", 1000, "uniform", results)
    data = report.to_dict()
    assert [(r["strategy"], r["cores"], r["mpps"]) for r in data["results"]] == [("seq", 1, 10.0), ("sn", 1, 9.5),
                                                                                ("sn", 2, 18.0)]
    assert data["results"][2]["speedup"] == 1.8 and report.speedup("sn", 2) == pytest.approx(1.8)
    assert " 1.80x " in report.render() and "[17.00 18.00 19.00]" in report.render()


def test_a_report_names_its_verdict_shares_and_write_share():
    verdicts = (("forwarded", 700), ("dropped", 300), ("flooded", 0), ("runts", 0))
    locks = BenchResult("locks", 2, 5.0, (5.0,), 1000, 25, verdicts,
                        (CoreLoad(0, 500, 0.1, 0.09, 0.0), CoreLoad(1, 500, 0.1, 0.1, 0.0)), "lock: big-reader lock",
                        cells=640)
    report = BenchReport("fw", 1000, "bidir", (BenchResult("seq", 1, 4.0, (4.0,), 1000, 0, verdicts), locks))
    line = next(ln for ln in report.render().splitlines() if ln.strip().startswith("locks"))
    assert "2.50%  64.00%" in line and "70.0%" in line and "30.0%" in line and "500 (0.100, 0.090)" in line
    assert "cells" in report.render().splitlines()[1]
    data = report.to_dict()["results"][1]
    assert data["write_share"] == 0.025 and data["cell_share"] == 0.64 and data["verdict_shares"]["dropped"] == 0.3
    assert data["per_core"][1] == {"core": 1, "packets": 500, "busy_s": 0.1, "cpu_s": 0.1, "waited_s": 0.0}


def test_strategies_to_measure():
    assert wanted_strategies((), "shared-nothing") == ("seq", "sn")
    assert wanted_strategies(("seq",), "shared-nothing") == ("seq",)
    assert wanted_strategies(("tm", "locks", "tm"), "locks") == ("seq", "tm", "locks")
    with pytest.raises(ConfigError, match="unknown strategy"):
        wanted_strategies(("fast",), "locks")


def test_plot_is_a_deterministic_svg():
    results = [{"strategy": "seq", "cores": 1, "mpps": 10.0}, {"strategy": "sn", "cores": 1, "mpps": 9.0},
               {"strategy": "sn", "cores": 2, "mpps": 17.5}, {"strategy": "locks", "cores": 2, "mpps": 12.0}]
    svg = scaling_svg("fw", results)
    assert svg == scaling_svg("fw", results)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg  # sn and locks lines, seq dashed
    assert ">sn</text>" in svg and ">locks</text>" in svg and ">20</text>" in svg  # legend, axis up to 20 Mpps


def test_parse_cores():
    assert parse_cores("2,1,2") == (1, 2) and parse_cores("128") == (128,)
    for bad in ("", "a", "0,1", "-1"):
        with pytest.raises(ConfigError):
            parse_cores(bad)
    with pytest.raises(ConfigError, match="--cores 129: DPDK here runs at most 128 lcores in one program "
                                          ".RTE_MAX_LCORE."):
        parse_cores("1,129")


def _bench_dirs():
    from explorer.processes import dpdk_runtime_dirs

    return sorted(p for base in {d.parent for d in dpdk_runtime_dirs("x")} if base.is_dir()
                  for p in base.glob(f"nfx-bench-{os.getpid()}-*"))


@pytest.mark.dpdk
def test_bench_measures_seq_next_to_the_parallel_builds():
    report = bench("sample_nfs/fw.c", cores=(1, 2), packets=40_000, trace_packets=20_000, repeat=1)
    assert [(r.strategy, r.cores) for r in report.results] == [("seq", 1), ("sn", 1), ("sn", 2)]
    assert all(r.mpps > 0.1 and r.packets == 40_000 for r in report.results)
    for r in report.results:  # bidir traffic: fw's main path, every packet forwarded
        assert r.share("forwarded") > 0.99 and sum(c.packets for c in r.per_core) == 40_000
    assert len(report.result("sn", 2).per_core) == 2
    locks = bench("sample_nfs/bridge.c", cores=(2,), strategies=("tm", "locks"), packets=20_000, repeat=1)
    assert [(r.strategy, r.cores) for r in locks.results] == [("seq", 1), ("tm", 2), ("locks", 2)]
    assert locks.result("tm", 2).note == "lock: big-reader lock (no RTM)"  # this CPU has no RTM
    with pytest.raises(GenerateError, match="cannot run shared-nothing"):  # a seq figure alone: nothing asked for
        bench("sample_nfs/bridge.c", cores=(1,), strategies=("sn",), packets=20_000, repeat=1)
    refused = bench("sample_nfs/bridge.c", cores=(1,), strategies=("sn", "locks"), packets=20_000, repeat=1)
    assert [r.strategy for r in refused.results] == ["seq", "locks"] and "cannot run shared-nothing" in refused.notes[0]
    only = bench("sample_nfs/nop.c", cores=(1, 2), strategies=("seq",), packets=10_000, repeat=1)
    assert [(r.strategy, r.cores) for r in only.results] == [("seq", 1)]
    assert _bench_dirs() == []


@pytest.mark.dpdk
def test_bench_measures_the_main_path_with_write_shares():
    """lb on its VIP traffic (read-heavy: established flows, heartbeats), nat with closed-loop replies,
    pol on a share within and over its rate: the verdict shares say so; the write-lock share is that
    of the timed laps (lb's refreshes are reads; pol's bucket updates write the bucket's cell under its cell
    lock, and only a new host's bucket takes the write lock)."""
    lb = bench("sample_nfs/lb.c", cores=(2,), strategies=("locks",), packets=20_000, trace_packets=10_000, repeat=1)
    locks = lb.result("locks", 2)
    assert locks.share("forwarded") > 0.9 and locks.write_share < 0.01
    nat = bench("sample_nfs/nat.c", cores=(2,), strategies=("sn", "locks"), packets=20_000, trace_packets=10_000,
                repeat=1)
    for r in nat.results:
        assert r.share("forwarded") > 0.99, (r.strategy, r.verdicts)
    pol = bench("sample_nfs/pol.c", cores=(2,), strategies=("locks",), packets=20_000, trace_packets=10_000,
                repeat=1)
    shares = pol.result("locks", 2)
    assert 0.01 < shares.share("dropped") < 0.6 and shares.cell_share > 0.3 and shares.write_share < 0.1
    assert "most packets were dropped" not in " ".join(pol.notes)


@pytest.mark.dpdk
def test_cli_bench_writes_json_csv_and_plot(tmp_path, capsys):
    from explorer.cli import main

    assert main(["bench", "sample_nfs/nop.c", "--cores", "1,2", "--packets", "20000", "--repeat", "1", "--json",
                 "--out", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["strategy"], r["cores"]) for r in data["results"]] == [("seq", 1), ("sn", 1), ("sn", 2)]
    assert all(isinstance(r["mpps"], float) and r["verdict_shares"]["forwarded"] == 1.0 for r in data["results"])
    assert json.loads((tmp_path / "bench.json").read_text()) == data
    csv = (tmp_path / "bench.csv").read_text()
    assert csv.startswith("strategy,cores,mpps,speedup,write_share,cell_share,forwarded_share,dropped_share,flooded_share,"
                          "runts_share\nseq,1,")
    assert (tmp_path / "bench.svg").read_text().startswith("<svg")
    assert main(["bench", "sample_nfs/nop.c", "--cores", "x"]) == 1
    assert "--cores" in capsys.readouterr().err
    assert main(["bench", "sample_nfs/nop.c", "--cores", "1", "--packets", "20000", "--repeat", "1",
                 "--out", str(tmp_path)]) == 0  # what the last bench wrote there, unchanged: replaced


@pytest.mark.dpdk  # RTE_MAX_LCORE comes from DPDK's headers
def test_cli_bench_refuses_bad_configuration_before_measuring(tmp_path, capsys, monkeypatch):
    from explorer.cli import main
    import explorer.commands.bench as command

    monkeypatch.setattr(command, "bench", lambda *a, **k: pytest.fail("measured despite a bad configuration"))
    assert main(["bench", "sample_nfs/nop.c", "--cores", "129"]) == 1
    assert "--cores 129" in capsys.readouterr().err
    assert main(["bench", "sample_nfs/nop.c", "--repeat", "0"]) == 1
    assert "--repeat 0" in capsys.readouterr().err
    (tmp_path / "target").write_text("keep me")
    (tmp_path / "bench.csv").symlink_to(tmp_path / "target")
    assert main(["bench", "sample_nfs/nop.c", "--out", str(tmp_path)]) == 1
    assert "symbolic link" in capsys.readouterr().err and (tmp_path / "target").read_text() == "keep me"
    assert main(["bench", "sample_nfs/nop.c", "--out", "/"]) == 1
    assert "system folder" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "bench.json").write_text("the user's own results")
    assert main(["bench", "sample_nfs/nop.c", "--out", str(mine)]) == 1
    assert "bench.json (--out): nfx did not write it" in capsys.readouterr().err
    assert (mine / "bench.json").read_text() == "the user's own results"


@pytest.mark.dpdk
@pytest.mark.slow
def test_scaling_script_writes_the_curve(tmp_path):
    """benchmarks/scaling.sh, here at 1 and 2 cores on two NFs (the device runs 1..16 on all)."""
    import sys

    from explorer.processes import run_child

    env = dict(os.environ, PYTHON=sys.executable, NFS="nop,lb", REPEAT="1", PACKETS="20000", TRACE_PACKETS="10000")
    done = run_child(["sh", str(ROOT / "benchmarks" / "scaling.sh"), str(tmp_path / "curve"), "1,2"], env=env,
                     timeout=1200)
    assert done.returncode == 0, done.stderr + done.stdout
    rows = list(csv.DictReader((tmp_path / "curve" / "curve.csv").open()))
    assert {(r["nf"], r["strategy"], r["cores"]) for r in rows} == {
        ("nop", "seq", "1"), ("nop", "sn", "1"), ("nop", "sn", "2"), ("nop", "locks", "1"), ("nop", "locks", "2"),
        ("lb", "seq", "1"), ("lb", "sn", "1"), ("lb", "sn", "2"), ("lb", "locks", "1"), ("lb", "locks", "2")}
    assert all(float(r["mpps"]) > 0 and float(r["forwarded_share"]) > 0.9 for r in rows)
    report = json.loads((tmp_path / "curve" / "lb.json").read_text())  # sn: lb's backends replicated
    assert [len(r["per_core"]) for r in report["results"]] == [1, 1, 2, 1, 2]
    text = (tmp_path / "curve" / "scaling.txt").read_text()
    assert "lb locks (read-heavy) 2 cores" in text and "nop locks: 2 cores" in text


@pytest.mark.dpdk
def test_cli_bench_measures_on_captures_and_says_when_its_traffic_is_generic(tmp_path, capsys):
    """A user's NF with its own traffic: ``--in`` benches on the captures (every build cycles over
    them, verdict shares of that traffic); without it, an NF nfx has no main-path traffic for gets
    generic traffic and a note saying so."""
    from explorer.cli import main
    from explorer.traffic.generators import generate
    from explorer.traffic.pcap import write_trace

    nf = ROOT / "tests" / "nfs" / "host_bytes.c"
    paths = write_trace(generate("bidir", packets=2_000, flows=100, seed=4), tmp_path)
    inputs = [a for d, p in sorted(paths.items()) for a in ("--in", f"{d}={p}")]
    assert main(["bench", str(nf), "--cores", "1", "--packets", "10000", "--repeat", "1", "--json", *inputs]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["traffic"].startswith(f"the captures 0={paths[0]}, 1={paths[1]}: 2000 packets as captured")
    assert not any("generic traffic" in n for n in data["notes"])
    assert all(r["packets"] == 10_000 for r in data["results"])
    assert main(["bench", str(nf), "--cores", "1", "--packets", "10000", "--repeat", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any("host_bytes is not a sample NF, so this generic traffic may miss its main path" in n
               for n in data["notes"])
    assert not bench("sample_nfs/nop.c", cores=(1,), packets=5_000, repeat=1).notes  # a sample: its default fits
    assert main(["bench", str(nf), "--in", f"0={paths[0]}", "--traffic", "uniform"]) == 1
    assert "--traffic and --in both name the traffic" in capsys.readouterr().err


def test_a_bundle_measures_elsewhere_what_bench_measures_here(tmp_path):
    """benchmarks/bench_parallel.py --bundle carries builds, traces and DPDK libraries to a machine
    without them; run_bundle.py (standard library only, the system's python3 with no project on its
    path) measures them, and --report makes the reports bench makes, leaving no folder behind."""
    script = Path("benchmarks/bench_parallel.py")
    folder, results, out = tmp_path / "bundle", tmp_path / "results.json", tmp_path / "out"
    made = subprocess.run([sys.executable, str(script), "--bundle", str(folder), "--nfs", "nop", "--cores", "1,2",
                           "--strategies", "sn", "--trace-packets", "2000", "--packets-per-core", "20000",
                           "--repeat", "2"], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (folder / "bin").iterdir()) == ["nop-seq-1", "nop-sn-1", "nop-sn-2"]
    assert any(p.name.startswith("librte_eal.so") for p in (folder / "lib").iterdir())
    before = set(Path("/var/run/dpdk").glob("nfxb*")) if Path("/var/run/dpdk").exists() else set()
    clean_env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    ran = subprocess.run(["/usr/bin/python3", str(folder / "run_bundle.py"), str(results)], capture_output=True,
                         text=True, timeout=300, env=clean_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    data = json.loads(results.read_text())
    assert [(r["strategy"], r["cores"], len(r["outputs"]), r["failures"]) for r in data["runs"]] == \
        [("seq", 1, 2, []), ("sn", 1, 2, []), ("sn", 2, 2, [])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "results.json"]  # traces unpacked, removed
    after = set(Path("/var/run/dpdk").glob("nfxb*")) if Path("/var/run/dpdk").exists() else set()
    assert after <= before
    report = subprocess.run([sys.executable, str(script), "--report", str(results), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert [(r["nf"], r["strategy"], r["cores"]) for r in rows] == [("nop", "seq", "1"), ("nop", "sn", "1"),
                                                                    ("nop", "sn", "2")]
    # the loss is attributed: the split of packets over the cores (at most 2x on 2), and their speed
    assert float(rows[1]["split_bound"]) == 1.0 and 1.0 < float(rows[2]["split_bound"]) <= 2.0
    assert all(float(r["core_speed"]) > 0 for r in rows)
    nop = json.loads((out / "nop.json").read_text())
    assert all(r["verdict_shares"]["forwarded"] == 1.0 and len(r["samples"]) == 2 for r in nop["results"])
    assert "nop: 20000 timed packets per core after a warm-up lap" in report.stdout
    results.write_text('{"runs": []}')
    bad = subprocess.run([sys.executable, str(script), "--report", str(results)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "not the results of run_bundle.py" in bad.stderr and "Traceback" not in bad.stderr
    assert "the split of packets over the cores allows at most" in report.stdout


@pytest.mark.dpdk
def test_bench_lanes_carry_every_packet_as_traced():
    """--bench copies each core's packets to a lane of its own: the timed laps of pol (each host's
    bucket decides its packets alone, so the verdicts do not depend on the core count) must drop
    exactly what the sequential build drops over the same whole laps, packet by packet counted."""
    pol = bench("sample_nfs/pol.c", cores=(1, 2, 4), strategies=("sn",), packets=30_000, trace_packets=10_000,
                repeat=1)
    seq = dict(pol.result("seq", 1).verdicts)
    assert 0 < seq["dropped"] < 30_000 and seq["forwarded"] + seq["dropped"] == 30_000
    for count in (1, 2, 4):
        result = pol.result("sn", count)
        assert dict(result.verdicts) == seq, count
        assert sum(c.packets for c in result.per_core) == 30_000


def test_a_report_attributes_a_loss_to_the_split_and_to_the_cores_speed():
    one = BenchResult("sn", 1, 10.0, (10.0,), 1000, 0, (), (CoreLoad(0, 1000, 0.0001, 0.0001, 0.0),))
    two = BenchResult("sn", 2, 8.0, (8.0,), 1000, 0, (), (CoreLoad(0, 600, 0.0001, 0.0001, 0.0),
                                                        CoreLoad(1, 400, 0.0001, 0.00005, 0.00005)))
    report = BenchReport("pol", 1000, "zipf", (BenchResult("seq", 1, 10.0, (10.0,)), one, two))
    assert two.split_bound == pytest.approx(1000 / 600) and one.split_bound == 1.0
    assert two.core_rate == pytest.approx(5e6) and report.core_speed(two) == pytest.approx(0.5)
    assert ("allows at most 1.67x one core; each core ran at 50% of its 1-core rate while busy, and other work "
            "held their CPUs 25% of that time") in report.render()
    data = report.to_dict()["results"][2]
    assert (data["split_bound"], data["core_speed"]) == (1.667, 0.5)
    assert report.core_speed(BenchResult("locks", 2, 1.0, (1.0,), per_core=two.per_core)) == 0.0  # no 1-core run


def test_a_locks_build_slower_on_more_cores_says_why():
    from explorer.bench.measure import Build, Sample, Setup, report_of

    def sample(mpps: float, writes: int) -> Sample:
        return Sample(mpps, 1000, 0.001, writes, (("forwarded", 1000), ("dropped", 0), ("flooded", 0), ("runts", 0)),
                      ())

    builds = tuple(Build(s, c, Path("x"), Path("t")) for s, c in (("seq", 1), ("locks", 1), ("locks", 2)))
    samples = [[sample(15.0, 0)], [sample(5.6, 500)], [sample(2.6, 480)]]
    shardable = report_of(Setup("pol", "zipf", builds, (), False, True), 1000, samples)
    assert any("locks on 2 cores ran slower than on one (2.60 < 5.60 Mpps): 48% of the packets took the write lock"
               in n and "pol shards, and its sn build takes no lock" in n for n in shardable.notes)
    locked = report_of(Setup("bridge", "uniform", builds, (), False, False), 1000, samples)
    assert any("writes too often for one lock to scale" in n for n in locked.notes)
    faster = report_of(Setup("fw", "bidir", builds, (), False, True), 1000,
                       [[sample(15.0, 0)], [sample(5.6, 500)], [sample(9.0, 480)]])
    assert not any("ran slower" in n for n in faster.notes)


@pytest.mark.dpdk
def test_bench_names_the_nf_and_why_its_nf_init_failed(capsys):
    from explorer.cli import main

    nf = str(ROOT / "tests" / "nfs" / "init_refuses.c")
    assert main(["bench", nf, "-D", "MAP_CAPACITY=1073741824", "--cores", "1,2", "--strategy", "locks",
                 "--packets", "1000", "--repeat", "1"]) == 1
    warned, failed = capsys.readouterr().err.strip().splitlines()  # the analysis said so first
    assert warned.startswith(f"nfx bench: warning: {nf}:13:29: nf_map_allocate() with a capacity of 1,073,741,824")
    assert failed == (f"nfx bench: error: {nf}: nf_init failed (returned false): nf_map_allocate: key_size 4 or "
                      "capacity 1073741824 out of range")


@pytest.mark.dpdk
def test_bench_with_no_build_to_measure_fails_and_says_why(tmp_path, capsys):
    """Every build refused (here: the NF's own header takes a name the generated project needs for
    its own file) is an error, not an empty table with exit status 0."""
    from explorer.cli import main

    (tmp_path / "nf_plan.h").write_text("#define WAN 1\n")
    nf = tmp_path / "split.c"
    nf.write_text('#include "nf.h"\n#include "nf_plan.h"\nbool nf_init(void) { return true; }\n'
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  return device == 0 ? WAN : 0;\n}\n")
    assert main(["bench", str(nf), "--cores", "1", "--packets", "1000", "--repeat", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nfx bench: error: ") and "split.c includes its own nf_plan.h" in err, err


def test_a_capture_of_runts_alone_is_refused_and_runts_are_named(tmp_path):
    """Runts never reach the NF: a capture of nothing else has no rate to measure (it read ~250 Mpps,
    every verdict share 0%); a capture with some says how many, and that no verdict counts them."""
    from explorer.bench.measure import prepare
    from explorer.traffic.trace import Trace
    import numpy as np

    runts = Trace(np.arange(3, dtype=np.uint64), np.zeros(3, dtype=np.uint16), (b"", b"\x01" * 13, b"\x02" * 10))
    with pytest.raises(ConfigError, match="none of the captures' 3 packets reaches the NF: each is shorter"):
        prepare("sample_nfs/nop.c", tmp_path, cores=(1,), captured=runts, captured_name="0=r.pcap")


def test_a_capture_shorter_than_a_lap_is_repeated_in_each_lap(tmp_path):
    """Every lap of a bench ends with each core waiting for the others: on a 5-packet capture the
    timed laps measured those waits (fw: 0.56 Mpps on one core, 0.27 on two; 3.8 on one with the
    capture repeated). The capture is repeated, each copy shifted by a lap as the replay shifts its
    laps, and the report says so."""
    from explorer.bench.measure import prepare
    from explorer.bench.traffic import LAP_PER_CORE, looped
    from explorer.run import encode_trace
    from explorer.traffic.trace import Trace
    import numpy as np

    frame = bytes(12) + b"\x08\x00" + bytes(50)
    five = Trace(np.array([10, 20, 40, 40, 70], dtype=np.uint64), np.array([0, 1, 0, 0, 1], dtype=np.uint16),
                 (frame,) * 5)
    setup = prepare("sample_nfs/nop.c", tmp_path, cores=(1, 2), captured=five, captured_name="0=five.pcap")
    copies = -(-2 * LAP_PER_CORE // 5)
    assert setup.traffic == (f"the captures 0=five.pcap: 5 packets as captured, repeated {copies} times in each lap "
                             f"(a lap of fewer than {LAP_PER_CORE} packets per core measures the cores' waits at its "
                             "end more than the NF)")
    lap, _ = looped(five, 2)
    assert (tmp_path / "trace.bin").read_bytes() == encode_trace(lap)
    assert lap.timestamps[:8].tolist() == [10, 20, 40, 40, 70, 85, 95, 115]  # + span 60 + mean gap 15
    assert lap.devices.tolist() == [0, 1, 0, 0, 1] * copies and len(lap.frames) == 5 * copies
    many = Trace(np.arange(2 * LAP_PER_CORE, dtype=np.uint64), np.zeros(2 * LAP_PER_CORE, dtype=np.uint16),
                 (frame,) * (2 * LAP_PER_CORE))
    assert looped(many, 2) == (many, 1)


def test_a_repeated_capture_spanning_centuries_never_goes_back_in_time():
    """Shifted copies of a capture from 1970 to 2554 pass 2**64 ns: they stay there, never wrap."""
    from explorer.bench.traffic import looped
    from explorer.traffic.trace import Trace
    import numpy as np

    top = (1 << 64) - 1
    lap, copies = looped(Trace(np.array([0, top - 5], dtype=np.uint64), np.zeros(2, dtype=np.uint16), (b"",) * 2), 1)
    assert copies > 2 and lap.timestamps.tolist() == [0, top - 5] + [top] * (2 * copies - 2)


@pytest.mark.dpdk
def test_replay_laps_of_a_capture_spanning_centuries_never_go_back_in_time():
    """The replay shifted lap L's times by L * span: past 2**64 ns they wrapped to the past, where
    clock_guard.c drops a frame older than the last tick (none of a trace in time order)."""
    from explorer.traffic.trace import Trace
    import numpy as np

    def udp(port: int) -> bytes:
        return (bytes(12) + b"\x08\x00" + bytes.fromhex("4500002e000040004011" "0000" "0a000001" "0a000002")
                + bytes.fromhex("04d2") + port.to_bytes(2, "big") + bytes.fromhex("001a0000") + bytes(18))

    capture = Trace(np.array([0, 1 << 63, 1 << 63], dtype=np.uint64), np.array([0, 1, 0], dtype=np.uint16),
                    (udp(7), udp(80), udp(80)))  # a tick (LAN, UDP to port 7), then two frames
    report = bench("tests/nfs/clock_guard.c", cores=(1,), strategies=["seq"], packets=20_000, repeat=1,
                   captured=capture, captured_name="0=ages.pcap")
    assert [(r.strategy, r.share("dropped")) for r in report.results] == [("seq", pytest.approx(1 / 3))]  # ticks
