"""Running a generated project's replay harness (nfx-replay) on a Trace.

The harness steers every packet as the NIC would, runs each core in its own EAL lcore (more lcores
than CPUs is fine: ``--lcores '(0-3)@(0,1)'``), and writes every packet's outcome in trace order
plus a log: its core and RSS hash, how it ran (alone, reader pass, reader pass that wrote vector cells under
cell locks, or rerun under the write lock),
whether a core's share of a dchain ran out, and the tickets of its critical section.
"""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.codegen.compile import build_program
from explorer.codegen.project import GeneratedProject
from explorer.errors import ConfigError, RunError
from explorer.processes import eal_prefix, run_child
from explorer.run import encode_trace, read_outputs
from explorer.traffic.trace import Trace

RAN_ALONE, RAN_READ, RAN_WRITE, RAN_CELLS = 0, 1, 2, 3
NO_OBJECT = 0xFFFFFFFF
LOG_MAGIC = b"NFXRLOG2"
_LOG_RECORD = np.dtype([("core", "<u2"), ("ran", "u1"), ("capacity_hit", "u1"), ("hash", "<u4"),
                        ("abort_object", "<u4"), ("ticket_begin", "<u8"), ("ticket_end", "<u8"),
                        ("now", "<u8")])


@dataclass(frozen=True, eq=False)
class ParallelRun:
    """The outcome of a replay: per packet (trace order) its verdict, its frame after processing
    (None when dropped), and the log fields as numpy arrays."""

    verdicts: np.ndarray  # int32
    frames: tuple[Optional[bytes], ...]
    cores: np.ndarray  # uint16
    hashes: np.ndarray  # uint32
    ran: np.ndarray  # uint8: RAN_*
    capacity_hit: np.ndarray  # bool
    abort_object: np.ndarray  # uint32, NO_OBJECT when none
    ticket_begin: np.ndarray  # uint64
    ticket_end: np.ndarray  # uint64
    times: np.ndarray  # uint64: the time the NF ran each packet at (locks, tm: never before the state's)
    # sn with replicated objects (nf_replica.h): TSC when each packet started and finished
    started: Optional[np.ndarray] = None
    finished: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.verdicts)


def eal_args(cores: int, prefix: str, memory_mb: Optional[int] = None, pin: bool = False) -> list[str]:
    """EAL options for a run without NICs or huge pages, with ``cores`` lcores: each pinned to a CPU
    of its own when ``pin`` and there are enough (benchmarks), else all floating over the CPUs this
    process may use (more lcores than CPUs works that way). ``prefix`` comes from
    ``explorer.processes.eal_prefix``, which removes the runtime folder EAL leaves."""
    cpus = sorted(os.sched_getaffinity(0))
    memory = memory_mb if memory_mb is not None else 512 + 128 * cores
    if pin and cores <= len(cpus):
        placement = ["-l", ",".join(map(str, cpus[:cores]))]
    else:
        placement = ["--lcores", f"(0-{cores - 1})@({','.join(map(str, cpus[:max(1, cores)]))})"]
    return ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "--log-level=error", "-m", str(memory),
            *placement, f"--file-prefix={prefix}"]


EXIT_SETUP = 1  # replay.c's EXIT_INPUT: bad usage, input or set-up (EAL, memory, self-test)


def _failure(done: subprocess.CompletedProcess) -> RunError | ConfigError:
    """The replay's own one-line reason: a ConfigError when it could not start (set-up is never a
    verdict about the parallel build), else a RunError: a sanitizer's report first (a race or
    undefined behaviour is what a later failed check of the runtime trips over), then the replay's
    own reason (nf_init failed, a contract broken), then a crash."""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    if done.returncode == EXIT_SETUP:
        for ln in lines:
            if ln.startswith("nfx-replay: "):
                return ConfigError(f"the parallel build could not start: {ln[len('nfx-replay: '):]}")
    for ln in lines:
        if ("runtime error:" in ln or "ERROR: AddressSanitizer" in ln or "WARNING: ThreadSanitizer" in ln
                or "ERROR: LeakSanitizer" in ln):
            return RunError(f"{ln} (exit status {done.returncode})")
    for prefix in ("nfx-replay: ", "nfx runtime: "):
        for ln in lines:
            if ln.startswith(prefix):
                return RunError(ln[len(prefix):])
    if done.returncode < 0:
        return RunError(f"the replay crashed ({signal.Signals(-done.returncode).name})"
                        + (f": {lines[-1]}" if lines else ""))
    return RunError(f"the replay failed (exit status {done.returncode})" + (f": {lines[-1]}" if lines else ""))


def _parse_log(data: bytes, packets: int, cores: int) -> np.ndarray:
    if data[:8] != LOG_MAGIC or int.from_bytes(data[8:12], "little") != cores:
        raise RunError("the replay's log is not an NFXRLOG2 file of this build")
    log = np.frombuffer(data, _LOG_RECORD, offset=12)
    if len(log) != packets:
        raise RunError(f"the replay's log has {len(log)} records for {packets} packets")
    return log


def run_replay(project: GeneratedProject, trace: Trace, *, sanitize: Optional[str] = None,
               defines: tuple[str, ...] = (), timeout: Optional[float] = 600,
               env: Optional[dict[str, str]] = None, paced: bool = False) -> ParallelRun:
    """Build the project's replay harness and run it on ``trace`` (``paced``: one packet at a time
    in trace order, see replay.c)."""
    plan = project.plan
    if len(trace) and int(trace.devices.max()) >= plan.devices:
        raise ConfigError(f"the trace has packets on device {int(trace.devices.max())}, but {plan.nf} has "
                          f"{plan.devices} devices")
    binary = build_program(project, "replay", sanitize=sanitize, defines=defines)
    with tempfile.TemporaryDirectory(prefix="nfx-replay-") as tmp, eal_prefix("replay") as prefix:
        paths = {name: Path(tmp, name) for name in ("trace.bin", "out.bin", "log.bin")}
        paths["trace.bin"].write_bytes(encode_trace(trace))
        replicas = bool(getattr(plan, "broadcast", ()))
        extra = (["--replica-log", str(Path(tmp, "replica.bin"))] if replicas else []) + (["--paced"] if paced else [])
        argv = [str(binary), *eal_args(plan.cores, prefix), "--", "--log", str(paths["log.bin"]), *extra,
                str(paths["trace.bin"]), str(paths["out.bin"])]
        environment = {**os.environ, **(env or {})}
        if sanitize == "thread":  # stop at the first race: a racing run may corrupt state and never end
            environment["TSAN_OPTIONS"] = " ".join(filter(None, [environment.get("TSAN_OPTIONS", ""),
                                                               "halt_on_error=1"]))
        try:
            done = run_child(argv, timeout=timeout, env=environment)
        except subprocess.TimeoutExpired:
            raise RunError(f"the replay of {plan.nf} took longer than {timeout} s") from None
        if done.returncode != 0:
            raise _failure(done)
        verdicts, frames = read_outputs(paths["out.bin"].read_bytes(), len(trace), "the replay")
        log = _parse_log(paths["log.bin"].read_bytes(), len(trace), plan.cores)
        times = _parse_replica_log(Path(tmp, "replica.bin").read_bytes(), len(trace)) if replicas else None
    return ParallelRun(verdicts, frames, log["core"].copy(), log["hash"].copy(), log["ran"].copy(),
                       log["capacity_hit"].astype(bool), log["abort_object"].copy(), log["ticket_begin"].copy(),
                       log["ticket_end"].copy(), log["now"].copy(), *((times[0], times[1]) if times is not None else ()))


def _parse_replica_log(data: bytes, packets: int) -> tuple[np.ndarray, np.ndarray]:
    if data[:8] != b"NFXREPL1" or len(data) != 16 + 16 * packets:
        raise RunError("the replay's replica log is not an NFXREPL1 file for this trace")
    times = np.frombuffer(data, "<u8", offset=16).reshape(packets, 2)
    return times[:, 0].copy(), times[:, 1].copy()


def run_bench(project: GeneratedProject, trace: Trace, packets: int, *, timeout: Optional[float] = 600) -> float:
    """Mpps of the project's replay harness over ``packets`` packets cycling over ``trace``
    (preloaded in memory)."""
    binary = build_program(project, "replay")
    with tempfile.TemporaryDirectory(prefix="nfx-bench-") as tmp, eal_prefix("bench") as prefix:
        path = Path(tmp, "trace.bin")
        path.write_bytes(encode_trace(trace))
        argv = [str(binary), *eal_args(project.plan.cores, prefix, pin=True), "--", "--bench", str(packets),
                str(path)]
        try:
            done = run_child(argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RunError(f"the benchmark of {project.plan.nf} took longer than {timeout} s") from None
    if done.returncode != 0:
        raise _failure(done)
    for line in done.stdout.splitlines():
        if line.startswith("bench: ") and " Mpps" in line:
            return float(line.split(": ")[-1].split(" Mpps")[0])
    raise RunError(f"the benchmark printed no rate: {done.stdout.strip()[-200:]}")
