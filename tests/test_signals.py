"""SIGTERM (what ``timeout`` and CI send) cleans up like Ctrl-C (issue 12, "Processes and
resources"): ``nfx check``, ``nfx bench`` and ``nfx explore`` are stopped mid-run, and afterwards
none of the processes they started is alive, no ``nfx-*`` folder is left in their temp folder and no
``/var/run/dpdk`` folder of theirs remains.

Every process of the command is followed while it runs (its descendants, by parent, polled every
few milliseconds, each identified by pid and start time so that a reused pid is not mistaken for
it). The signal is sent when a chosen program (gcc's cc1, the sequential harness, the replay, Voilà)
is running, so that each phase is interrupted where it holds something.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from explorer.processes import dpdk_runtime_dirs
from explorer.traffic.generators import generate
from explorer.traffic.pcap import write_trace

ROOT = Path(__file__).resolve().parent.parent
NFX = [sys.executable, "-m", "explorer.cli"]
GRACE_S = 3


def _stat(pid: int) -> Optional[tuple[int, int, str]]:
    """(parent pid, start time, command name) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its parent has not reaped it yet
    return int(fields[1]), int(fields[19]), name


def _eal_prefix_of(pid: int) -> Optional[str]:
    """The EAL file prefix a program of ours was given (--file-prefix, or the sequential harness's
    --eal-prefix); None when it starts no EAL (``--info``) or is gone."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if argv == [b""]:  # an exiting process's memory (its argv with it) is gone: it cannot be told
        return None
    for k, arg in enumerate(argv):
        if arg.startswith(b"--file-prefix="):
            return arg.split(b"=", 1)[1].decode()
        if arg == b"--eal-prefix" and k + 1 < len(argv):
            return argv[k + 1].decode()
    if b"--info" in argv:
        return None
    return "(none: EAL would name its folder after the pid)"


class ProcessTree:
    """Every descendant of ``root`` seen while polling: pid -> (start time, name)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[int, tuple[int, str]] = {}
        self.prefixes: dict[int, tuple[str, Optional[str]]] = {}  # DPDK programs: their EAL file prefix
        found = _stat(root)
        assert found is not None
        self.seen[root] = (found[1], found[2])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def poll(self) -> None:
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                found = _stat(int(entry))
                if found is not None:
                    table[int(entry)] = found
        with self._lock:
            grew = True
            while grew:
                grew = False
                for pid, (parent, start, name) in table.items():
                    if pid not in self.seen and parent in self.seen and self.seen[parent][0] <= start:
                        self.seen[pid] = (start, name)
                        if name.startswith("nfx-"):
                            self.prefixes[pid] = (name, _eal_prefix_of(pid))
                        grew = True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            time.sleep(0.01)

    def __enter__(self) -> "ProcessTree":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def running(self, name: str, at_least: int = 1) -> bool:
        with self._lock:
            return sum(1 for pid, (start, n) in self.seen.items() if n == name and self._alive(pid, start)) >= at_least

    def names(self) -> set[str]:
        with self._lock:
            return {n for _, n in self.seen.values()}

    def eal_up(self, tag: str) -> bool:
        """Whether a program of ours has started EAL (its runtime folder nfx-<tag>-<our pid>-<n> exists)."""
        return any(folder.is_dir() and any(e.name.startswith(f"nfx-{tag}-{self.root}-") for e in folder.iterdir())
                   for folder in {d.parent for d in dpdk_runtime_dirs("x")})

    @staticmethod
    def _alive(pid: int, start: int) -> bool:
        found = _stat(pid)
        return found is not None and found[1] == start

    def alive(self) -> list[str]:
        with self._lock:
            return sorted(f"{name} (pid {pid})" for pid, (start, name) in self.seen.items()
                          if pid != self.root and self._alive(pid, start))


def _dpdk_leftovers(tree: ProcessTree) -> list[str]:
    """Runtime folders named after the command (eal_prefix's nfx-<tag>-<pid>-<n>). Every DPDK
    program it started used such a name (``ProcessTree.prefixes``), so these are all of its own."""
    return sorted(str(entry) for folder in {d.parent for d in dpdk_runtime_dirs("x")} if folder.is_dir()
                  for entry in folder.iterdir() if entry.name.startswith("nfx-")
                  and entry.name.split("-")[2:3] == [str(tree.root)])


def terminate_mid_run(argv: list[str], when: Callable[[ProcessTree], bool], tmp_path: Path,
                      env: Optional[dict[str, str]] = None, patience: float = 600) -> tuple[ProcessTree, str]:
    """Run ``argv`` (with its own temp folder), send SIGTERM once ``when(tree)`` holds, and check
    what it left behind. Returns the tree and stderr."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    environment = {**os.environ, "TMPDIR": str(temp), **(env or {})}
    process = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        with ProcessTree(process.pid) as tree:
            deadline = time.monotonic() + patience
            while not when(tree):
                assert process.poll() is None, f"{argv} ended before the moment to stop it: {process.stderr.read()}"
                assert time.monotonic() < deadline, f"{argv}: the moment to stop it never came ({tree.names()})"
                time.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=60)
            settled = time.monotonic() + GRACE_S  # the kernel reaps what nfx killed just before exiting
            while tree.alive() and time.monotonic() < settled:
                time.sleep(0.1)
            tree.poll()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err.rstrip().endswith("terminated"), err
    assert "Traceback" not in err, err
    assert tree.alive() == [], f"still running after SIGTERM: {tree.alive()}"
    assert sorted(p.name for p in temp.iterdir()) == [], "temp files left behind"
    assert _dpdk_leftovers(tree) == []
    named = [prefix for _, prefix in tree.prefixes.values() if prefix is not None]
    assert all(p.startswith("nfx-") and p.split("-")[2] == str(tree.root) for p in named), tree.prefixes
    return tree, err


@pytest.fixture(scope="module")
def pcaps(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("traffic")
    paths = write_trace(generate("uniform", packets=150_000, flows=10_000, seed=3), folder)
    return [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]


STOPS = {  # when to send SIGTERM
    "build": lambda t: t.running("cc1", 2),  # gcc compiling files in parallel (from an empty build cache)
    "sequential run": lambda t: t.running("nfx-seq") and t.eal_up("seq"),  # the harness, EAL started
    "replay": lambda t: t.running("nfx-replay") and t.eal_up("replay"),  # the parallel build, EAL started
}


@pytest.mark.dpdk
@pytest.mark.parametrize("phase", sorted(STOPS))
def test_sigterm_stops_check_cleanly(tmp_path, pcaps, phase):
    env = {"NFX_CACHE": str(tmp_path / "cache")} if phase == "build" else {}
    terminate_mid_run([*NFX, "check", "sample_nfs/nat.c", *pcaps, "--cores", "4"], STOPS[phase], tmp_path, env)


@pytest.mark.dpdk
def test_sigterm_stops_bench_cleanly(tmp_path):
    terminate_mid_run([*NFX, "bench", "sample_nfs/fw.c", "--cores", "2", "--packets", "3000000"],
                      lambda t: t.running("nfx-replay") and t.eal_up("bench"), tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_explore_and_its_voila_server(tmp_path):
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    terminate_mid_run([*NFX, "explore", "sample_nfs/fw.c", "--port", str(port), "--no-browser"],
                      lambda t: _listening(port), tmp_path, env, patience=120)
    assert not _listening(port)


@pytest.mark.parametrize("group,starting", [(False, False), (True, False), (True, True)])
def test_sigterm_and_ctrl_c_stop_a_sweep_on_a_local_dask_cluster_quietly(tmp_path, group, starting):
    """Once its workers run, or while they start (still importing distributed): one line
    ("terminated" / "interrupted"), no traceback from the cluster's teardown or from a worker (a
    terminal's Ctrl-C reaches the whole process group), no scratch folder left."""
    argv = [*NFX, "sweep", "sample_nfs/fw.c", "--cores", "2,4,8", "--traffic", "uniform,zipf", "--seeds", "4",
            "--packets", "2000000", "--scheduler", "local"]
    workers = lambda t: len(t.alive()) >= (2 if starting else 3)  # noqa: E731  nfx and its first child / workers
    if not group:
        terminate_mid_run(argv, workers, tmp_path)
        return
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        with ProcessTree(process.pid) as tree:
            deadline = time.monotonic() + 300
            while not workers(tree) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2 if starting else 1.0)  # the workers starting / past their start-up, into their tasks
            os.killpg(process.pid, signal.SIGINT)
            _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert err == "nfx sweep: interrupted\n", err
    assert sorted(p.name for p in temp.iterdir()) == []


@pytest.mark.parametrize("raised, status, said", [
    ("argument 1: Terminated: 15", 143, "terminated"),
    ("argument 2: KeyboardInterrupt: ", 130, "interrupted"),
])
def test_a_signal_that_came_during_a_z3_call_stops_quietly(monkeypatch, capsys, raised, status, said):
    """SIGTERM (or Ctrl-C) while ctypes converts a Z3 call's arguments: the handler's exception
    comes out as ctypes.ArgumentError, which ``except KeyboardInterrupt`` missed: `timeout` on a
    witness search printed a 40-line traceback instead of 'terminated'."""
    import ctypes

    from explorer import cli
    from explorer.commands import analyze

    def stopped(_args):
        raise ctypes.ArgumentError(raised)

    monkeypatch.setattr(analyze, "main", stopped)
    assert cli.main(["analyze", "sample_nfs/fw.c"]) == status
    assert capsys.readouterr().err == f"nfx analyze: {said}\n"

    def broken(_args):
        raise ctypes.ArgumentError("argument 1: TypeError: wrong type")

    monkeypatch.setattr(analyze, "main", broken)
    with pytest.raises(ctypes.ArgumentError):  # a real bug is not hidden
        cli.main(["analyze", "sample_nfs/fw.c"])
