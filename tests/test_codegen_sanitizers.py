"""Sanitizer builds of generated projects: AddressSanitizer and UndefinedBehaviorSanitizer replay seq
and sn cleanly; ThreadSanitizer finds no race in locks and tm with four lcores (cell locks on one
contended cell included), and finds the race of a missing write lock."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.verify.replay import RAN_CELLS, RAN_READ, RAN_WRITE, run_replay
from explorer.errors import RunError

from codegen_fixtures import project, traffic

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.dpdk


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)




# ---- sanitizers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("nf,strategy,cores", [("nat", "seq", 1), ("nat", "sn", 4), ("psd", "sn", 2),
                                               ("cl", "sn", 2), ("sbridge", "sn", 2)])
def test_address_and_undefined_behaviour_sanitizers_replay_cleanly(tmp_path, nf, strategy, cores):
    p = project(tmp_path, nf, strategy, cores)
    trace = traffic(packets=3000)
    clean = run_replay(p, trace)
    checked = run_replay(p, trace, sanitize="address,undefined")  # any report fails the run (RunError)
    assert checked.verdicts.tolist() == clean.verdicts.tolist() and checked.frames == clean.frames


@pytest.mark.parametrize("nf,strategy,kind", [("bridge", "locks", "mixed"), ("bridge", "tm", "mixed"),
                                              ("lb", "locks", "heartbeat"), ("lb", "tm", "heartbeat"),
                                              ("pol", "locks", "zipf")])  # write-heavy: the flag kept per burst
def test_thread_sanitizer_finds_no_race_in_locks_and_tm(tmp_path, nf, strategy, kind):
    p = project(tmp_path, nf, strategy, 4)
    run = run_replay(p, traffic(kind, 3000), sanitize="thread")  # a race report fails the run (exit 66)
    assert np.any(run.ran == RAN_WRITE) and np.any(run.ran == RAN_READ)


@pytest.mark.parametrize("nf,strategy", [("agg_policer", "locks"), ("agg_policer", "tm"), ("cell_transfer", "locks")])
def test_thread_sanitizer_finds_no_race_in_cell_locks(tmp_path, nf, strategy):
    """Four lcores write cells in reader passes: agg_policer's one bucket (LAN frames read it),
    cell_transfer's accounts, two per frame."""
    from explorer import pipeline
    from explorer.codegen import parallel_plan, write_project

    defines = {"AP_RATE_BPS": "100000000"} if nf == "agg_policer" else {}
    s = pipeline.solve(ROOT / "tests" / "nfs" / f"{nf}.c", defines, cores=4, quality=False)
    p = write_project(parallel_plan(s, strategy, 4), tmp_path / nf)
    run = run_replay(p, traffic("uniform", 3000), sanitize="thread")
    assert np.sum(run.ran == RAN_CELLS) > 100 and np.any(run.ran == RAN_READ)


def test_thread_sanitizer_finds_the_race_of_a_missing_write_lock(tmp_path):
    p = project(tmp_path, "bridge", "locks", 4)
    with pytest.raises(RunError, match="ThreadSanitizer: data race"):
        run_replay(p, traffic(packets=3000), sanitize="thread", defines=("NF_TEST_FAULT_NO_WRITE_LOCK",), timeout=120)


def test_a_sanitizer_report_comes_before_the_check_a_race_then_trips():
    """Without its write lock a race can corrupt a table before the run ends: the runtime's own
    bounds check then fails too, but the race is the reason reported."""
    import subprocess

    from explorer.errors import ConfigError
    from explorer.verify.replay import EXIT_SETUP, _failure

    stderr = ("==================\nWARNING: ThreadSanitizer: data race (pid=7)\n  Write of size 8 at ...\n"
              "nfx runtime: nf_vector_borrow: index 9802 out of range for vector #1 (capacity 1024)\n")
    error = _failure(subprocess.CompletedProcess([], 66, "", stderr))
    assert isinstance(error, RunError) and str(error).startswith("WARNING: ThreadSanitizer: data race")
    plain = _failure(subprocess.CompletedProcess([], 3, "", stderr.split("\n", 3)[3]))
    assert str(plain) == "nf_vector_borrow: index 9802 out of range for vector #1 (capacity 1024)"
    setup = _failure(subprocess.CompletedProcess([], EXIT_SETUP, "", "nfx-replay: cannot init EAL\n"))
    assert isinstance(setup, ConfigError) and "could not start: cannot init EAL" in str(setup)
