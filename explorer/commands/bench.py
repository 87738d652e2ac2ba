"""``nfx bench NF.c --cores 1,2 [--strategy S ...] [--packets N] [--out DIR] [--json]``: Mpps per
strategy and core count next to the sequential build, packets preloaded in memory (see
explorer.bench.measure); with --out, bench.json, bench.csv and bench.svg (the scaling plot)."""
from __future__ import annotations

import json
from pathlib import Path

from explorer.bench.measure import bench
from explorer.commands.options import parse_defines
from explorer.errors import ConfigError


def parse_cores(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``."""
    try:
        cores = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--cores {text!r}: expected comma-separated core counts, e.g. 1,2") from None
    if not cores or any(c < 1 for c in cores):
        raise ConfigError(f"--cores {text!r}: core counts must be positive")
    return tuple(sorted(set(cores)))


def parse_traffic(text):
    """``"heartbeat:heartbeat_share=0.001,size=64"`` -> ``{"kind": "heartbeat", ...}`` (numbers parsed)."""
    if not text:
        return None
    kind, _, rest = text.partition(":")
    spec = {"kind": kind.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise ConfigError(f"--traffic {text!r}: expected KIND[:NAME=VALUE,...]")
        for convert in (int, float):
            try:
                spec[name.strip()] = convert(value)
                break
            except ValueError:
                continue
        else:
            spec[name.strip()] = value.strip()
    return spec


def main(args) -> int:
    defines = parse_defines(args.define)
    report = bench(args.nf, parse_cores(args.cores), args.strategy, args.packets, defines,
                   traffic=parse_traffic(args.traffic), replication=args.replication,
                   replies=getattr(args, "replies", None))
    data = report.to_dict()
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "bench.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            (out / "bench.csv").write_text("strategy,cores,mpps\n" + "".join(
                f"{r.strategy},{r.cores},{r.mpps}\n" for r in report.results))
            (out / "bench.svg").write_text(report.svg())
        except OSError as error:
            raise ConfigError(f"--out {out}: cannot write ({error.strerror or error})") from None
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(report.render())
        if args.out:
            print(f"  wrote {Path(args.out) / 'bench.json'}, bench.csv and bench.svg")
    return 0
