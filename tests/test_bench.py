"""nfx bench: Mpps per strategy and core count next to the sequential build, its JSON and its plot."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer.bench.measure import BenchReport, BenchResult, bench, bench_trace
from explorer.bench.plot import scaling_svg
from explorer.commands.bench import parse_cores
from explorer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_bench_trace_is_read_heavy_by_default():
    trace, described = bench_trace(20_000)
    assert len(trace) == 20_000 and "1000 flows" in described and "size=64" in described
    assert {len(f) for f in trace.frames} == {64}


def test_report_json_speedups_and_rendering():
    report = BenchReport("fw", 1000, "uniform", (BenchResult("seq", 1, 10.0, (10.0,)), BenchResult("sn", 1, 9.5, (9.5,)),
                                                  BenchResult("sn", 2, 18.0, (17.0, 18.0, 19.0))))
    data = report.to_dict()
    assert [(r["strategy"], r["cores"], r["mpps"]) for r in data["results"]] == [("seq", 1, 10.0), ("sn", 1, 9.5),
                                                                                ("sn", 2, 18.0)]
    assert data["results"][2]["speedup"] == 1.8 and report.speedup("sn", 2) == pytest.approx(1.8)
    assert "1.80x seq" in report.render()


def test_plot_is_a_deterministic_svg():
    results = [{"strategy": "seq", "cores": 1, "mpps": 10.0}, {"strategy": "sn", "cores": 1, "mpps": 9.0},
               {"strategy": "sn", "cores": 2, "mpps": 17.5}, {"strategy": "locks", "cores": 2, "mpps": 12.0}]
    svg = scaling_svg("fw", results)
    assert svg == scaling_svg("fw", results)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg  # sn and locks lines, seq dashed
    assert ">sn</text>" in svg and ">locks</text>" in svg and ">20</text>" in svg  # legend, axis up to 20 Mpps


def test_parse_cores():
    assert parse_cores("2,1,2") == (1, 2)
    for bad in ("", "a", "0,1", "-1"):
        with pytest.raises(ConfigError):
            parse_cores(bad)


@pytest.mark.dpdk
def test_bench_measures_seq_next_to_the_parallel_builds():
    report = bench("sample_nfs/fw.c", cores=(1, 2), packets=40_000, trace_packets=20_000, repeat=1)
    assert [(r.strategy, r.cores) for r in report.results] == [("seq", 1), ("sn", 1), ("sn", 2)]
    assert all(r.mpps > 0.1 for r in report.results)
    locks = bench("sample_nfs/bridge.c", cores=(2,), strategies=("tm", "locks"), packets=20_000, repeat=1)
    assert [(r.strategy, r.cores) for r in locks.results] == [("seq", 1), ("tm", 2), ("locks", 2)]
    refused = bench("sample_nfs/bridge.c", cores=(1,), strategies=("sn",), packets=20_000, repeat=1)
    assert [r.strategy for r in refused.results] == ["seq"] and "cannot run shared-nothing" in refused.notes[0]


@pytest.mark.dpdk
def test_cli_bench_writes_json_csv_and_plot(tmp_path, capsys):
    from explorer.cli import main

    assert main(["bench", "sample_nfs/nop.c", "--cores", "1,2", "--packets", "20000", "--json",
                 "--out", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["strategy"], r["cores"]) for r in data["results"]] == [("seq", 1), ("sn", 1), ("sn", 2)]
    assert all(isinstance(r["mpps"], float) for r in data["results"])
    assert json.loads((tmp_path / "bench.json").read_text()) == data
    assert (tmp_path / "bench.csv").read_text().startswith("strategy,cores,mpps\nseq,1,")
    assert (tmp_path / "bench.svg").read_text().startswith("<svg")
    assert main(["bench", "sample_nfs/nop.c", "--cores", "x"]) == 1
    assert "--cores" in capsys.readouterr().err
