"""explorer.processes: children die with their group, SIGTERM unwinds like Ctrl-C, EAL folders go."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from explorer.processes import Terminated, dpdk_runtime_dirs, eal_prefix, handle_termination, run_child


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_run_child_captures_output():
    done = run_child([sys.executable, "-c", "print('hi')"], timeout=30)
    assert done.returncode == 0 and done.stdout == "hi\n"


def test_a_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "grandchild"
    script = ("import subprocess, sys, time; "
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired):
        run_child([sys.executable, "-c", script], timeout=2)
    grandchild = int(pidfile.read_text())
    deadline = time.time() + 5
    while _alive(grandchild) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def _signal_on_start(monkeypatch, signum: int) -> list[int]:
    """Make run_child's Popen send ``signum`` to this process the moment the child exists (a
    signal that lands after the exec but before Popen returns); the child's pid is recorded."""
    started: list[int] = []

    class Signalling(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.pid)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(subprocess, "Popen", Signalling)
    return started


def test_ctrl_c_as_the_child_starts_still_kills_it(monkeypatch):
    """Ctrl-C between the exec and Popen's return (a loaded machine) raised out of Popen with the
    child running and unowned: the DPDK harness then outlived the runtime folder nfx removed for
    it, and made it again (seen in a full test run)."""
    started = _signal_on_start(monkeypatch, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        run_child(["sleep", "30"], timeout=60)
    assert started and not _alive(started[0])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_sigterm_as_the_child_starts_is_terminated_and_kills_it(monkeypatch):
    previous = signal.getsignal(signal.SIGTERM)
    handle_termination()
    try:
        started = _signal_on_start(monkeypatch, signal.SIGTERM)
        with pytest.raises(Terminated):
            run_child(["sleep", "30"], timeout=60)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert started and not _alive(started[0])


def test_sigterm_becomes_terminated():
    handle_termination()
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_eal_prefix_removes_the_runtime_folder():
    with eal_prefix("test") as prefix:
        for folder in dpdk_runtime_dirs(prefix):
            try:
                folder.mkdir(parents=True)
            except PermissionError:
                continue
            (folder / "config").write_text("x")
    assert prefix.startswith("nfx-test-")
    assert not any(folder.exists() for folder in dpdk_runtime_dirs(prefix))


def test_a_child_dies_with_a_caller_that_never_handles_sigterm(tmp_path):
    """A library caller (a test run, a kernel, a script) that SIGTERM ends without unwinding: the
    child run_child started is killed with it, not left running (its EAL folder with it)."""
    pidfile = tmp_path / "child"
    sleeper = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    script = f"import sys; from explorer.processes import run_child; run_child([sys.executable, '-c', {sleeper!r}])"
    caller = subprocess.Popen([sys.executable, "-c", script], cwd=os.getcwd())
    deadline = time.time() + 30
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    caller.send_signal(signal.SIGTERM)
    caller.wait(timeout=30)
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
