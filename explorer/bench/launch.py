"""Launching a generated project's DPDK programs without NICs or huge pages: the EAL options, and one
run under ``explorer.processes`` (its own process group, killed on timeout or interruption, and its
``/var/run/dpdk`` folder removed afterwards).

``bench`` runs the replay harness's ``--bench`` mode with it; the tests run the DPDK program on
net_pcap and net_null ports with it.
"""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from explorer import build
from explorer.errors import BuildError, ConfigError, RunError
from explorer.processes import eal_prefix, run_child


@functools.lru_cache(maxsize=None)
def max_lcores() -> int:
    """RTE_MAX_LCORE of the installed DPDK (the most lcores one EAL runs), as its preprocessor says."""
    cflags, _ = build.dpdk_flags()
    done = build.run_tool(["gcc", "-E", "-P", *cflags, "-x", "c", "-"],
                          input_text="#include <rte_build_config.h>\nRTE_MAX_LCORE\n")
    value = done.stdout.split()[-1] if done.returncode == 0 and done.stdout.split() else ""
    if not value.isdigit():
        raise BuildError(f"cannot read RTE_MAX_LCORE from DPDK's headers: {done.stderr.strip()[-200:]}")
    return int(value)


def check_cores(cores: int, option: str = "--cores") -> int:
    """``cores``, if one DPDK program can run that many lcores; ConfigError otherwise."""
    if cores < 1:
        raise ConfigError(f"{option} {cores}: core counts must be positive")
    if cores > max_lcores():
        raise ConfigError(f"{option} {cores}: DPDK here runs at most {max_lcores()} lcores in one program "
                          f"(RTE_MAX_LCORE); choose {max_lcores()} or fewer cores")
    return cores


def eal_options(cores: int, prefix: str, *, pin: bool = False, memory_mb: Optional[int] = None) -> list[str]:
    """EAL options for ``cores`` lcores: each pinned to a CPU of its own when ``pin`` and there are
    enough of them (benchmarks), else all floating over the CPUs this process may use (more lcores
    than CPUs works that way)."""
    cpus = sorted(os.sched_getaffinity(0))
    memory = memory_mb if memory_mb is not None else 512 + 128 * cores
    if pin and cores <= len(cpus):
        placement = ["-l", ",".join(map(str, cpus[:cores]))]
    else:
        placement = ["--lcores", f"(0-{cores - 1})@({','.join(map(str, cpus))})"]
    return ["--no-huge", "--no-pci", "--no-shconf", "--no-telemetry", "--log-level=error", "-m", str(memory),
            *placement, f"--file-prefix={prefix}"]


def run_dpdk(binary: str | Path, cores: int, arguments: Sequence[str], *, eal: Sequence[str] = (),
             pin: bool = False, tag: str = "run", timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``binary [EAL options] [eal] -- arguments``; RunError when it outlives ``timeout``."""
    with eal_prefix(tag) as prefix:
        argv = [str(binary), *eal_options(cores, prefix, pin=pin), *eal, "--", *arguments]
        try:
            return run_child(argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RunError(f"{Path(binary).name} took longer than {timeout:g} s") from None


def program_error(done: subprocess.CompletedProcess, program: str) -> RunError:
    """A failed run's reason: the program's own one-line message ("<program>: ..." or "nfx runtime:
    ..."), else its last line and exit status."""
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    for prefix in (f"{program}: ", "nfx runtime: "):
        for ln in lines:
            if ln.startswith(prefix) and "WARNING" not in ln:
                return RunError(ln[len(prefix):])
    return RunError(f"{program} failed (exit status {done.returncode})" + (f": {lines[-1]}" if lines else ""))
