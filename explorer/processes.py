"""Child processes that never outlive nfx: gcc, the harness, the replay, the DPDK program, Voilà.

* ``handle_termination()`` (called once by the CLI) turns SIGTERM, what ``timeout`` and CI send, into
  ``Terminated``, a KeyboardInterrupt: every ``finally`` and ``with`` block then runs on SIGTERM exactly
  as on Ctrl-C, so temporary folders are removed and children are stopped.
* ``run_child`` runs a program in its own process group and kills the whole group (gcc's cc1, a
  DPDK program's lcores) when it times out or when nfx is interrupted.
* ``eal_prefix`` names a DPDK program's runtime folder and removes ``/var/run/dpdk/<prefix>`` after
  the run, which EAL leaves behind even with ``--no-shconf``.
"""
from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

_RUNS = itertools.count()


class Terminated(KeyboardInterrupt):
    """nfx received SIGTERM: unwinds like Ctrl-C, then exits with 143."""


def _raise_terminated(signum, _frame) -> None:
    raise Terminated(signum)


def stopped_by(error: BaseException) -> Optional[str]:
    """"terminated" or "interrupted" when ``error`` is what ctypes made of a Terminated or
    KeyboardInterrupt raised while it converted a call's arguments (a signal that came during a Z3
    call): ``ctypes.ArgumentError("argument 1: Terminated: 15")``, which no ``except
    KeyboardInterrupt`` catches. None for any other error."""
    if not isinstance(error, ctypes.ArgumentError):
        return None
    # ctypes keeps only the text: "argument N: <exception class>: <its message>"
    kind = str(error).split(": ")[1:2]
    if kind == [Terminated.__name__]:
        return "terminated"
    return "interrupted" if kind == [KeyboardInterrupt.__name__] else None


def handle_termination() -> None:
    """Make SIGTERM unwind the stack (main thread only; a no-op elsewhere)."""
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, _raise_terminated)


def die_with_parent() -> None:
    """For ``preexec_fn``: the child is killed when nfx dies, even by SIGKILL, which no handler sees
    (Linux's PR_SET_PDEATHSIG; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        process.wait(timeout=5)


def run_child(argv: Sequence[str], *, timeout: Optional[float] = None, input: Optional[bytes | str] = None,
              env: Optional[Mapping[str, str]] = None, cwd: Optional[str | os.PathLike] = None,
              text: bool = True, preexec_fn=None,
              watch: Optional[Callable[[int], None]] = None) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True)`` in a new process group that is killed, children
    and all, on timeout (``subprocess.TimeoutExpired`` is raised as usual) or on any exception.

    ``watch(pid)`` is called every ``WATCH_EVERY`` seconds while the child runs; an exception it
    raises kills the group and propagates (e.g. the preprocessor reading a device). The child dies
    with this process even where nothing turns SIGTERM into an exception (a library caller, a test
    run, a kernel): ``die_with_parent``, unless ``preexec_fn`` replaces it (and calls it itself)."""
    # Ctrl-C or SIGTERM while Popen waits for the exec would raise out of Popen with the child
    # running and no handle on it (it then outlives the folders removed for it): such a signal is
    # held until the child is ours to kill, then handled as it would have been.
    held = _hold_stops()
    try:
        process = subprocess.Popen(list(argv), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=None if env is None else dict(env), cwd=cwd, text=text,
                                   start_new_session=True, preexec_fn=preexec_fn or die_with_parent)
    except BaseException:
        _release_stops(held)
        raise
    with process:
        try:
            _release_stops(held)  # a signal that came meanwhile raises here
            out, err = _communicate(process, input, timeout, watch)
        except BaseException:
            _kill_group(process)
            raise
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


_STOPS = (signal.SIGINT, signal.SIGTERM)


def _hold_stops() -> Optional[tuple[dict, list]]:
    """Record SIGINT and SIGTERM instead of handling them (their previous handlers, and the signals
    that came). Python runs signal handlers in the main thread whichever thread the kernel picks,
    so elsewhere nothing can interrupt the caller: None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    came: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: came.append(signum)) for s in _STOPS}
    return previous, came


def _release_stops(held: Optional[tuple[dict, list]]) -> None:
    """Put the handlers back, then handle what came meanwhile as they would have."""
    if held is None:
        return
    previous, came = held
    for signum, handler in previous.items():
        signal.signal(signum, handler)
    for signum in dict.fromkeys(came):
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)


WATCH_EVERY = 0.1


def _communicate(process: subprocess.Popen, input, timeout: Optional[float], watch) -> tuple:
    if watch is None:
        return process.communicate(input, timeout=timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        step = WATCH_EVERY if deadline is None else min(WATCH_EVERY, max(0.0, deadline - time.monotonic()))
        try:
            return process.communicate(input, timeout=step)  # input is sent once; retrying loses nothing
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(process.args, timeout) from None
            watch(process.pid)


def dpdk_runtime_dirs(prefix: str) -> tuple[Path, ...]:
    """Where EAL puts the runtime folder of ``--file-prefix=prefix`` (root, and other users)."""
    places = [Path("/var/run/dpdk") / prefix]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    places.append(Path(runtime or "/tmp") / "dpdk" / prefix)
    return tuple(places)


@contextlib.contextmanager
def eal_prefix(tag: str) -> Iterator[str]:
    """A fresh EAL ``--file-prefix`` (``nfx-<tag>-<pid>-<n>``); its runtime folder is removed afterwards."""
    prefix = f"nfx-{tag}-{os.getpid()}-{next(_RUNS)}"
    try:
        yield prefix
    finally:
        for folder in dpdk_runtime_dirs(prefix):
            shutil.rmtree(folder, ignore_errors=True)
