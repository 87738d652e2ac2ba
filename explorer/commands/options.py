"""Parsing of options shared by several subcommands."""
from __future__ import annotations

from explorer.errors import ConfigError


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
