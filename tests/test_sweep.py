"""Sweeps and distributed simulation: a Dask run (a LocalCluster of 2 worker processes) gives the
same table and the same report as a serial run; the CLI's table, CSV and plot; clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FW = str(ROOT / "sample_nfs" / "fw.c")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    import dask
    from distributed import LocalCluster
    scratch = str(tmp_path_factory.mktemp("dask"))
    with dask.config.set({"temporary-directory": scratch}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         local_directory=scratch) as c:
        yield c


def test_sweep_on_dask_equals_serial(cluster):
    args = dict(nics=("e810", "82599"), cores=(2, 4, 8), traffic=("uniform", "zipf"), seeds=2, packets=6000,
                flows=600)
    serial = pipeline.sweep(FW, **args)
    dask = pipeline.sweep(FW, scheduler=cluster.scheduler_address, **args)
    assert serial.table.equals(dask.table)
    t = serial.table
    assert len(t) == 2 * 3 * 2 * 2 and list(t.columns[:4]) == ["nic", "cores", "traffic", "seed"]
    assert (t.violations == 0).all() and (t.imbalance >= 1).all() and (t.strategy == "shared-nothing").all()
    assert np.isnan(t.write_share).all()
    # seeds give different traffic, and more cores spread the same packets thinner
    assert t.groupby(["nic", "cores", "traffic"]).imbalance.nunique().max() == 2
    summary = serial.summary()
    assert len(summary) == 12 and (summary["max"] >= summary["mean"]).all()


def test_locks_sweep_reports_write_share(cluster):
    bridge = str(ROOT / "sample_nfs" / "bridge.c")  # locked: MAC addresses are not RSS-hashable
    result = pipeline.sweep(bridge, cores=(2, 4), traffic=("uniform",), seeds=1, packets=4000, flows=200,
                            scheduler=cluster.scheduler_address)
    assert (result.table.strategy == "locks").all() and (result.table.write_share > 0).all()
    assert (result.table.violations == 0).all()


def test_big_trace_on_dask_equals_serial(cluster):
    """A generated trace simulated segment by segment on the workers: the serial report exactly."""
    fw = pipeline.solve(FW, quality=False)
    keys = {1: bytes(range(52))}  # a wrong WAN key: violations to compare, with their examples
    from explorer.traffic import generators
    # Workers are other processes with the real segment size: two segments, the second short.
    packets = generators.SEGMENT + 50_000
    serial = pipeline.simulate(fw, "uniform", packets=packets, flows=20_000, seed=4, keys=keys, rebalance=True)
    dask = pipeline.simulate(fw, "uniform", packets=packets, flows=20_000, seed=4, keys=keys, rebalance=True,
                             scheduler=cluster.scheduler_address)
    assert dask.to_dict() == serial.to_dict() and serial.violation_count > 0


def test_sweep_errors_are_clear():
    with pytest.raises(ConfigError, match="no such file"):
        pipeline.sweep("nope.c")
    with pytest.raises(Exception, match="unknown NIC|nic"):
        pipeline.sweep(FW, nics=("nope",))
    with pytest.raises(ConfigError, match="bad scheduler"):
        pipeline.sweep(FW, cores=(2,), seeds=1, packets=100, flows=10, scheduler="http://x")


def test_a_sweep_leaves_out_core_counts_a_nic_cannot_feed():
    """82599's RSS feeds 16 cores: its 32-core rows are left out with a warning, the other NIC's
    stay; a sweep with nothing left is refused before any work."""
    with pytest.warns(UserWarning, match="82599 takes at most 16 cores: its rows for 32 cores are left out"):
        result = pipeline.sweep(FW, nics=("e810", "82599"), cores=(2, 32), traffic=("uniform",), seeds=1,
                                packets=500, flows=50)
    assert sorted(zip(result.table["nic"], result.table["cores"])) == [("82599", 2), ("e810", 2), ("e810", 32)]
    with pytest.raises(ConfigError, match=r"no NIC of the sweep takes that many cores \(82599: at most 16\)"), \
            pytest.warns(UserWarning):
        pipeline.sweep(FW, nics=("82599",), cores=(32,), seeds=1, packets=100, flows=10)


def _nfx(*args):
    return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_sweep_table_csv_and_plot(tmp_path):
    r = _nfx("sweep", "sample_nfs/psd.c", "--cores", "2,4", "--traffic", "scan,uniform", "--seeds", "1",
             "--packets", "4000", "--flows", "300", "--csv", str(tmp_path / "t.csv"), "--plot",
             str(tmp_path / "p.html"))
    assert r.returncode == 0, r.stderr
    assert "scan" in r.stdout and "imbalance" in r.stdout
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0].startswith("nic,cores,traffic,seed") and len(lines) == 1 + 4
    page = (tmp_path / "p.html").read_text()
    assert "Bokeh" in page and "psd.c: per-core imbalance" in page and "<script src=\"http" not in page  # inline
    for args, needle in [(["--csv", "sample_nfs/psd.c"], "refusing to write sample_nfs/psd.c (--csv): it is one of"),
                         (["--csv", str(tmp_path / "p.html"), "--plot", str(tmp_path / "p.html")], "name the same file"),
                         (["--plot", str(tmp_path / "mine.html")], "mine.html (--plot): nfx did not write it")]:
        (tmp_path / "mine.html").write_text("mine")
        r = _nfx("sweep", "sample_nfs/psd.c", "--cores", "2", "--seeds", "1", "--packets", "2000", *args)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert (ROOT / "sample_nfs" / "psd.c").read_text().startswith("/*") and (tmp_path / "mine.html").read_text() == "mine"
    r = _nfx("sweep", "sample_nfs/psd.c", "--cores", "2", "--seeds", "1", "--packets", "2000", "--json")
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["cores"] == 2
    r = subprocess.run([sys.executable, "-m", "explorer.cli", "sweep", str(ROOT / "sample_nfs" / "psd.c"), "--cores",
                        "2", "--seeds", "1", "--packets", "2000", "--csv", "-"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)  # '-' is stdout, as for other tools: no file named '-'
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("nic,cores,traffic,seed"), r.stderr
    assert len(r.stdout.splitlines()) == 2 and not (tmp_path / "-").exists()
    for args, needle in [(["--csv", "-", "--json"], "choose one"), (["--plot", "-"], "name a file for it")]:
        r = _nfx("sweep", "sample_nfs/psd.c", "--cores", "2", "--seeds", "1", "--packets", "2000", *args)
        assert r.returncode == 1 and needle in r.stderr, (args, r.stderr)
    for args, needle in [(["--cores", "two"], "--cores two: expected an integer"),
                         (["--cores", "0"], "--cores 0: expected an integer from 1"),
                         (["--traffic", "nope"], "unknown traffic kind"), (["--seeds", "0"], "at least 1"),
                         (["--param", "skew=1", "--traffic", "zipf,uniform"], "no parameter 'skew'")]:
        r = _nfx("sweep", "sample_nfs/psd.c", *args)
        assert r.returncode == 1 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_cli_table_says_the_strategy_and_its_write_share():
    """A locked NF's even spread is no speed-up: the printed table names the strategy and the share of
    packets that take the write lock, beside a shared-nothing NF's "-"."""
    r = _nfx("sweep", "sample_nfs/bridge.c", "--cores", "2", "--seeds", "1", "--packets", "3000", "--flows", "200")
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[1:3]
    assert header.split() == ["nic", "traffic", "cores", "strategy", "mean", "max", "writes"]
    assert row.split()[3] == "locks" and row.split()[-1].endswith("%") and float(row.split()[-1][:-1]) > 0
    r = _nfx("sweep", "sample_nfs/psd.c", "--cores", "2", "--seeds", "1", "--packets", "2000")
    assert r.stdout.splitlines()[2].split()[3] == "shared-nothing" and r.stdout.splitlines()[2].split()[-1] == "-"


def test_an_nf_with_its_own_headers_sweeps_on_dask_and_warns_with_its_own_path(cluster, tmp_path, recwarn):
    """A worker rebuilds the NF from its text and the headers of its folder it includes (a
    subfolder's too), so an NF split over files sweeps as it analyses; what the analysis has to
    say names the user's file, once (not a worker's copy)."""
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "ports.h").write_text("#define LAN 0\n#define WAN 1\n#define MGMT 2\n")
    (tmp_path / "keys.h").write_text('#include "inc/ports.h"\nstruct key { uint32_t host; };\n')
    nf = tmp_path / "split.c"
    nf.write_text((ROOT / "tests" / "nfs" / "mgmt_port.c").read_text().replace(
        "#define LAN 0\n#define WAN 1\n#define MGMT 2\n", '#include "keys.h"\n'))
    args = dict(cores=(2,), traffic=("uniform",), seeds=1, packets=2000, flows=100)
    serial = pipeline.sweep(str(nf), **args)
    dask = pipeline.sweep(str(nf), scheduler=cluster.scheduler_address, **args)
    assert serial.table.equals(dask.table) and len(serial.table) == 1
    said = [str(w.message) for w in recwarn.list if "tests for device 2" in str(w.message)]
    assert said and all(message.startswith(f"{nf}:") for message in said), said
