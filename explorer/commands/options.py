"""Parsing of options shared by several subcommands."""
from __future__ import annotations

import argparse
from typing import Optional

from explorer import limits
from explorer.errors import ConfigError

_NUMBERS = {"seed": limits.SEED, "packets": limits.PACKETS, "flows": limits.FLOWS, "cores": limits.CORES,
            "port": limits.PORT}


def check_numbers(args: argparse.Namespace) -> None:
    """Turn the numeric options into ints within their one range (``explorer.limits``), and refuse
    up front a synthetic trace that would not fit in memory (traffic, bench and check hold their frames;
    simulate and sweep stream theirs). ``--cores`` of bench and sweep stays a list."""
    for name, bounds in _NUMBERS.items():
        value = getattr(args, name, None)
        if not isinstance(value, str):
            continue
        if name == "cores" and args.command in ("bench", "sweep"):
            for part in value.split(","):
                bounds.parse(part, "--cores")
            continue
        setattr(args, name, bounds.parse(value, f"--{name}"))
    if args.command in ("traffic", "bench", "check") and isinstance(args.packets, int):  # (simulate streams in chunks)
        limits.check_memory(args.packets, limits.FRAME_BYTES, f"{args.packets} frames in memory")


def parse_defines(specs: list[str]) -> dict[str, str]:
    """``["CAP=1024", "DEBUG"]`` -> ``{"CAP": "1024", "DEBUG": "1"}``; names must be C identifiers, each
    given once (a second value would silently win, as ``nfx analyze`` refuses too)."""
    out: dict[str, str] = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if not name.isidentifier() or not name.isascii():
            raise ConfigError(f"bad define {spec!r}: expected NAME=VALUE with NAME a C identifier")
        if name in out:
            raise ConfigError(f"define {name} is given twice")
        out[name] = value if _ else "1"
    return out


def parse_device_values(specs: list[str], option: str) -> dict[int, str]:
    """``["0=abcd", "1=ef01"]`` -> ``{0: "abcd", 1: "ef01"}``."""
    out: dict[int, str] = {}
    for spec in specs:
        dev, eq, value = spec.partition("=")
        if not (eq and dev.strip().isdigit() and value):
            raise ConfigError(f"bad {option} {spec!r}: expected DEVICE=VALUE")
        if int(dev) in out:
            raise ConfigError(f"bad {option} {spec!r}: device {int(dev)} is given twice")
        out[int(dev)] = value
    return out


def split_traffic(text: Optional[str], params: list[str]) -> tuple[Optional[str], list[str]]:
    """``--traffic KIND[:NAME=VALUE,...]`` (bench's form) as a kind and ``--param`` specs:
    ``"zipf:skew=1.2"`` -> ``("zipf", ["skew=1.2", *params])``. A part without ``=`` continues the
    value before it, as a list (``prefix:server_prefix=10.0.0.0/8,172.16.0.0/12``)."""
    if not text or ":" not in text:
        return text, params
    kind, _, rest = text.partition(":")
    inline: list[str] = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" in part or not inline:
            inline.append(part)
        else:
            inline[-1] += "," + part
    return kind.strip(), inline + params


def parse_traffic_params(specs: list[str], kinds: list[str]) -> dict[str, object]:
    """``["server_prefix=172.16.0.10/32", "skew=1.2"]`` -> generator parameters, each checked
    against what every traffic kind in ``kinds`` accepts. Values become numbers where they look
    like one; a comma-separated value becomes a list (several prefixes)."""
    from explorer.traffic.generators import kind_parameters

    accepted = None
    for kind in kinds:
        names = set(kind_parameters(kind))
        accepted = names if accepted is None else accepted & names
    out: dict[str, object] = {}
    for spec in specs:  # from --param or after KIND: in --traffic: the message names neither
        name, eq, text = spec.partition("=")
        name = name.strip()
        if not eq or not name or not text:
            raise ConfigError(f"bad traffic parameter {spec!r}: expected NAME=VALUE, e.g. server_prefix=172.16.0.10/32")
        if name in out:
            raise ConfigError(f"bad traffic parameter {spec!r}: {name} is given twice")
        if name in ("packets", "flows") and (accepted is None or name not in accepted):
            raise ConfigError(f"bad traffic parameter {spec!r}: the {name} count is an option of its own: --{name} {text}")
        if accepted is not None and name not in accepted:
            raise ConfigError(f"bad traffic parameter {spec!r}: traffic {', '.join(kinds)} has no parameter {name!r}; "
                              f"accepted: {', '.join(sorted(accepted))}")
        out[name] = [_value(v) for v in text.split(",")] if "," in text else _value(text)
    return out


def _value(text: str) -> object:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_cores(cores: int) -> int:
    """``cores`` when a parallel build can run on that many cores (``limits.CORES``), else a
    ConfigError that says why (for generate, check and bench, before any work)."""
    return limits.CORES.check(cores, "--cores")


def solve_nf(args: argparse.Namespace, defines: dict[str, str], strategy: str = "auto", quality: bool = False):
    """The solution a command's options ask for: the NF analysed under ``defines``, its --override
    read against that analysis, solved for --nic, --cores and --seed (solve, simulate, generate and
    check alike)."""
    from explorer import pipeline  # here: cli imports this module for every command, --help too
    from explorer.sharding.decisions import parse_overrides

    analysis = pipeline.analyze(args.nf, defines)
    return pipeline.solve(analysis, nic=args.nic, cores=args.cores, seed=args.seed, strategy=strategy,
                          overrides=parse_overrides(args.override, analysis), quality=quality)


def paths_traffic_lines(nf: str, seed: int, witnesses) -> list[str]:
    """What ``--traffic paths`` made, as check, simulate and traffic print it: its packets, how many
    of the NF's paths they follow, and why the others went unreached (what a run on them cannot
    speak for)."""
    from explorer.pipeline import PATHS
    from explorer.verify.witnesses import unreached_lines

    parts, coverage = len(witnesses.traces), witnesses.coverage
    head = (f"{PATHS} traffic for {nf}, seed {seed}: {sum(len(t) for t in witnesses.traces)} packets"
            + (f" in {parts} parts an hour apart" if parts > 1 else "")
            + f"; {coverage.covered} of {coverage.paths} paths followed")
    return [head] + [f"  {line}" for line in unreached_lines(witnesses)]
