"""Running a generated project's DPDK program on net_pcap ports: every port gets one ``rx_pcap`` per
queue (the trace pre-split per core as RSS would, since net_pcap does not hash) and one
``tx_pcap`` per queue; ``--rx-time --ordered`` makes every lcore process its packets in capture
order with the capture's times, so its output can be compared queue by queue with the replay
harness's (``expected_outputs``).

net_pcap reports rx times in microseconds, so the trace must have microsecond timestamps
(``microsecond_trace`` rounds one).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

import numpy as np

from explorer.codegen.compile import build_program
from explorer.codegen.project import GeneratedProject
from explorer.verify.replay import ParallelRun, eal_args
from explorer.verify.split import split_trace
from explorer.errors import ConfigError, RunError
from explorer.processes import eal_prefix, run_child
from explorer.run import DROP, FLOOD
from explorer.traffic.pcap import read_pcap
from explorer.traffic.trace import Trace


def microsecond_trace(trace: Trace) -> Trace:
    """``trace`` with timestamps rounded down to the microsecond, merged again (ties by device)."""
    stamps = trace.timestamps // np.uint64(1000) * np.uint64(1000)
    per_device = {}
    for device in np.unique(trace.devices).tolist():
        picked = np.flatnonzero(trace.devices == device)
        per_device[int(device)] = (stamps[picked], tuple(trace.frames[i] for i in picked))
    return Trace.merge(per_device)


def run_on_pcaps(project: GeneratedProject, trace: Trace, folder: str | Path, *,
                 timeout: Optional[float] = 120) -> dict[tuple[int, int], tuple[bytes, ...]]:
    """Run nfx-nf on ``trace`` through net_pcap ports; returns what every (device, core) tx queue
    sent, in order."""
    if len(trace) and np.any(trace.timestamps % np.uint64(1000)):
        raise ConfigError("net_pcap gives microsecond rx times: use a trace with microsecond timestamps "
                          "(microsecond_trace)")
    plan = project.plan
    folder = Path(folder)
    split_trace(plan, trace, folder / "in")
    (folder / "out").mkdir(parents=True, exist_ok=True)
    binary = build_program(project, "nf")
    vdevs = []
    for d in range(plan.devices):
        rx = ",".join(f"rx_pcap={folder / 'in' / f'dev{d}-core{c}.pcap'}" for c in range(plan.cores))
        tx = ",".join(f"tx_pcap={folder / 'out' / f'dev{d}-core{c}.pcap'}" for c in range(plan.cores))
        vdevs += ["--vdev", f"net_pcap{d},{rx},{tx}"]
    with eal_prefix("pcap") as prefix:
        argv = [str(binary), *eal_args(plan.cores, prefix), *vdevs, "--", "--rx-time", "--ordered"]
        try:
            done = run_child(argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RunError(f"the DPDK program of {plan.nf} took longer than {timeout} s") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith(("nfx-nf: ", "nfx runtime: "))
                 and "WARNING" not in ln]
        raise RunError(lines[-1] if lines else f"the DPDK program failed (exit status {done.returncode}): "
                       f"{done.stderr.strip()[-300:]}")
    return {(d, c): read_pcap(folder / "out" / f"dev{d}-core{c}.pcap")[1]
            for d in range(plan.devices) for c in range(plan.cores)}


def expected_outputs(run: ParallelRun, trace: Trace, devices: int, cores: int) -> dict[tuple[int, int], tuple[bytes, ...]]:
    """What every (device, core) tx queue sends according to a replay: each core's packets in
    trace order, to their output device, floods to every device but the input one."""
    out: dict[tuple[int, int], list[bytes]] = {(d, c): [] for d in range(devices) for c in range(cores)}
    for i, verdict in enumerate(run.verdicts.tolist()):
        frame = run.frames[i]
        if verdict == DROP or frame is None:
            continue
        core = int(run.cores[i])
        targets = [d for d in range(devices) if d != int(trace.devices[i])] if verdict == FLOOD else [verdict]
        for d in targets:
            out[(d, core)].append(frame)
    return {key: tuple(frames) for key, frames in out.items()}
