"""``nfx bench NF.c --cores 1,2 [--strategy S[,S...] ...] [--traffic KIND | --in DEV=PCAP ...] [--packets N]
[--repeat N] [--out DIR] [--json]``: Mpps per strategy and core count next to the sequential build, packets preloaded in memory,
with the share of packets per verdict, the write-lock share and per-core load (see
explorer.bench.measure); with --out, bench.json, bench.csv and bench.svg (the scaling plot), written
through explorer.outputs and checked before any measurement."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from explorer.bench.launch import check_cores
from explorer.bench.measure import VERDICTS, BenchReport, bench
from explorer.commands.options import parse_defines
from explorer.errors import ConfigError, OutputError
from explorer.outputs import claim_output, os_words, refuse_system_folder, write_output
from explorer.run import load_trace

OUT_FILES = ("bench.json", "bench.csv", "bench.svg")


def parse_cores(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; each count at least 1 and at most RTE_MAX_LCORE."""
    try:
        cores = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--cores {text!r}: expected comma-separated core counts, e.g. 1,2") from None
    if not cores or any(c < 1 for c in cores):
        raise ConfigError(f"--cores {text!r}: core counts must be positive")
    return tuple(sorted({check_cores(c) for c in cores}))


def prepare_out(folder: str) -> Path:
    """The --out folder, made and proven writable before the measurements (which take minutes), with
    no symlink or non-file where bench.json, bench.csv or bench.svg go."""
    out = refuse_system_folder(folder)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: it exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".nfx-bench-", suffix=".probe"):
            pass
    except OSError as error:
        raise OutputError(f"--out {out}: cannot write there ({os_words(error)})") from None
    for name in OUT_FILES:  # only files an earlier bench wrote, unchanged since, are replaced
        claim_output(out / name, "--out")
    return out


def csv_text(report: BenchReport) -> str:
    columns = ["strategy", "cores", "mpps", "speedup", "write_share", "cell_share", *(f"{v}_share" for v in VERDICTS)]
    rows = [",".join(columns)]
    for r in report.to_dict()["results"]:
        rows.append(",".join(str(x) for x in (r["strategy"], r["cores"], r["mpps"], r["speedup"], r["write_share"],
                                              r["cell_share"], *(r["verdict_shares"][v] for v in VERDICTS))))
    return "\n".join(rows) + "\n"


def parse_repeat(text: str) -> int:
    """``--repeat``: measurements per build, 1 to 100."""
    try:
        repeat = int(text)
    except ValueError:
        repeat = 0
    if not 1 <= repeat <= 100:
        raise ConfigError(f"--repeat {text}: expected an integer from 1 to 100")
    return repeat


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


STRATEGIES = ("seq", "sn", "locks", "tm")


def parse_strategies(values: list[str]) -> list[str]:
    """``--strategy locks,tm`` or ``--strategy locks --strategy tm``, as ``--cores 1,2`` takes a list."""
    out = []
    for value in values:
        for name in value.split(","):
            name = name.strip()
            if name not in STRATEGIES:
                raise ConfigError(f"--strategy {value}: {name or 'an empty name'} is not a strategy; choose from "
                                  f"{', '.join(STRATEGIES)}")
            if name not in out:
                out.append(name)
    return out


def main(args) -> int:
    defines = parse_defines(args.define)
    cores = parse_cores(args.cores)
    repeat = parse_repeat(str(getattr(args, "repeat", "3")))
    out = prepare_out(args.out) if args.out else None
    inputs = getattr(args, "inputs", [])
    if inputs and args.traffic:
        raise ConfigError("--traffic and --in both name the traffic: give one")
    captured = load_trace(inputs, needed_for="measure") if inputs else None
    report = bench(args.nf, cores, parse_strategies(args.strategy), args.packets, defines, traffic=parse_traffic(args.traffic),
                   repeat=repeat, replication=args.replication, replies=getattr(args, "replies", None),
                   captured=captured, captured_name=", ".join(inputs))
    data = report.to_dict()
    if out is not None:
        write_output(out / "bench.json", json.dumps(data, indent=2, sort_keys=True) + "\n", "--out", [args.nf])
        write_output(out / "bench.csv", csv_text(report), "--out", [args.nf])
        write_output(out / "bench.svg", report.svg(), "--out", [args.nf])
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(report.render())
        if out is not None:
            print(f"  wrote {out / 'bench.json'}, bench.csv and bench.svg")
    return 0
