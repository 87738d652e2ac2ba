"""Launching a generated project's DPDK programs without NICs or huge pages (EAL options from
``explorer.verify.replay.eal_args``): one run under ``explorer.processes`` (its own process group,
killed on timeout, on interruption and when nfx dies, and its ``/var/run/dpdk`` folder removed
afterwards), and the most lcores one program may have.

``bench`` runs the replay harness's ``--bench`` mode with it; the tests run the DPDK program on
net_pcap and net_null ports with it.
"""
from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from explorer import build
from explorer.errors import BuildError, ConfigError, RunError
from explorer.processes import die_with_parent, eal_prefix, run_child
from explorer.verify.replay import eal_args


@functools.lru_cache(maxsize=None)
def max_lcores() -> int:
    """RTE_MAX_LCORE of the installed DPDK (the most lcores one EAL runs), as its preprocessor says."""
    cflags, _ = build.dpdk_flags()
    with tempfile.TemporaryDirectory(prefix="nfx-lcores-") as tmp:
        probe = Path(tmp, "probe.c")
        probe.write_text("#include <rte_build_config.h>\nRTE_MAX_LCORE\n")
        done = build.run_tool(["gcc", "-E", "-P", *cflags, str(probe)])
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


def run_dpdk(binary: str | Path, cores: int, arguments: Sequence[str], *, eal: Sequence[str] = (),
             pin: bool = False, tag: str = "run", timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``binary [EAL options] [eal] -- arguments``; RunError when it outlives ``timeout``."""
    with eal_prefix(tag) as prefix:
        argv = [str(binary), *eal_args(cores, prefix, pin=pin), *eal, "--", *arguments]
        try:
            return run_child(argv, timeout=timeout, preexec_fn=die_with_parent)
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
