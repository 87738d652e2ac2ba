"""Parsing of options shared by several subcommands."""
from __future__ import annotations

from explorer.errors import ConfigError

MAX_CORES = 128  # DPDK 22.11's RTE_MAX_LCORE (Debian's build): EAL cannot start more lcores


def parse_defines(specs: list[str]) -> dict[str, str]:
    """``["CAP=1024", "DEBUG"]`` -> ``{"CAP": "1024", "DEBUG": "1"}``; names must be C identifiers."""
    out: dict[str, str] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if not name.isidentifier() or not name.isascii():
            raise ConfigError(f"bad --define {spec!r}: expected NAME=VALUE with NAME a C identifier")
        out[name] = value if _ else "1"
    return out


def parse_device_values(specs: list[str], option: str) -> dict[int, str]:
    """``["0=abcd", "1=ef01"]`` -> ``{0: "abcd", 1: "ef01"}``."""
    out: dict[int, str] = {}
    for spec in specs:
        dev, eq, value = spec.partition("=")
        if not (eq and dev.strip().isdigit() and value):
            raise ConfigError(f"bad {option} {spec!r}: expected DEVICE=VALUE")
        out[int(dev)] = value
    return out


def check_cores(cores: int) -> int:
    """``cores`` when a parallel build can run on that many cores, else a ConfigError that says why
    (for generate, check and bench, before any work)."""
    if not 1 <= cores <= MAX_CORES:
        raise ConfigError(f"--cores {cores}: a parallel build runs on 1 to {MAX_CORES} cores (one DPDK lcore "
                          f"per core, and DPDK's RTE_MAX_LCORE is {MAX_CORES})")
    return cores
