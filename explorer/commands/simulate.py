"""``nfx simulate``: per-core load and sharding violations (or, for locks and tm plans, write-lock
contention) of an RSS plan on traffic, streamed in chunks with progress on stderr."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from explorer import pipeline
from explorer.commands.options import (parse_defines, parse_device_values, parse_traffic_params,
                                       paths_traffic_lines, solve_nf, split_traffic)
from explorer.errors import ConfigError, TrafficError
from explorer.pipeline import PATHS
from explorer.simulate.simulation import EmptyTraffic
from explorer.simulate.streams import frames_at
from explorer.simulate.verdict import allocation_text, violations_line
from explorer.traffic.generators import GENERATORS
from explorer.traffic.pcap import parse_inputs
from explorer.wording import captures_hold, count


class Progress:
    """Packets done and the rate, on stderr, at most once a second, once more than a chunk ran."""

    def __init__(self, total: int | None, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.started = self.shown = time.perf_counter()
        self.calls = 0

    def __call__(self, done: int) -> None:
        self.calls += 1
        now = time.perf_counter()
        if self.calls < 2 or now - self.shown < 1.0:
            return
        self.shown = now
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        end = "\r" if self.stream.isatty() else "\n"
        print(f"simulate: {done:,} packets{share}, {done / (now - self.started) / 1e6:.1f} Mpps", end=end,
              file=self.stream, flush=True)

    def close(self) -> None:
        if self.calls >= 2 and self.stream.isatty():
            print(file=self.stream)


def main(args) -> int:
    args.traffic, args.param = split_traffic(args.traffic, args.param)
    if bool(args.inputs) == bool(args.traffic):
        raise ConfigError("give either --in DEV=PCAP (repeatable) or --traffic KIND")
    if args.inputs and args.param:
        raise ConfigError("--param sets a traffic generator's parameter: it goes with --traffic, not --in")
    given = ", ".join(name for name, value in (("--packets", args.packets), ("--flows", args.flows)) if value is not None)
    if args.inputs and given:  # a capture is simulated whole: a count would be ignored without a word
        raise ConfigError(f"{given}: only with --traffic KIND (generated traffic), not with --in")
    packets = 100_000 if args.packets is None else args.packets
    flows = 10_000 if args.flows is None else args.flows
    paths = args.traffic == PATHS
    if args.traffic and not paths and args.traffic not in GENERATORS:
        raise ConfigError(f"unknown traffic kind {args.traffic!r}; known: {', '.join(sorted(GENERATORS))}, and {PATHS}")
    if paths and (given or args.param):
        raise ConfigError(f"{PATHS} traffic takes no {given or '--param'}: the NF's paths decide its packets")
    params = parse_traffic_params(args.param, [args.traffic]) if args.traffic and not paths else {}
    defines = parse_defines(args.define)
    solution = solve_nf(args, defines)
    traffic = parse_inputs(args.inputs) if args.inputs else _paths_trace(args, defines) if paths else args.traffic
    keys = parse_device_values(args.key, "--key")
    progress = Progress(packets if args.traffic and not paths else None)
    try:
        report = pipeline.simulate(solution, traffic, packets=packets, flows=flows, seed=args.seed,
                                   keys=keys, rebalance=args.rebalance, progress=progress,
                                   scheduler=args.scheduler, **params)
    except EmptyTraffic:
        if not args.inputs:
            raise
        raise TrafficError(f"{captures_hold(args.inputs)} no packet that reaches the NF (none, or only frames "
                           f"shorter than an Ethernet header): nothing to simulate") from None
    finally:
        progress.close()
    data = report.to_dict()
    data["nf"] = solution.analysis.nf
    data["keys"] = {str(d.device): d.key.hex() for d in pipeline.with_keys(solution.plan, keys).devices}
    if args.inputs:
        name_frames(data, traffic)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print(render(data))
    return 0


def _paths_trace(args, defines: dict[str, str]):
    """Packets that follow every path of the NF the witness search reaches, one path's after another:
    a plan's violations on every way the NF can go, rather than on a generator's idea of traffic."""
    analysis, witnesses = pipeline.nf_paths_traffic(args.nf, defines, args.seed)
    for line in paths_traffic_lines(analysis.nf, args.seed, witnesses):
        print(line, file=sys.stderr)
    return witnesses.combined()


def name_frames(data: dict, captures: dict[int, str]) -> None:
    """Add to ``data`` the capture of each device (``captures``: file names) and, to each violation
    example, the frame of each of its packets in its device's capture (``frames``: device and frame
    number, in the order of ``packets``), as ``nfx check`` names the packets it shows: a person finds
    "frame 7 of lan.pcap" in Wireshark, not packet 12 of a trace merged from several files."""
    data["captures"] = {str(dev): Path(path).name for dev, path in sorted(captures.items())}
    examples = data["violations"]["examples"]
    found = frames_at(captures, [n for ex in examples for n in ex["packets"]])
    for ex in examples:
        if all(n in found for n in ex["packets"]):  # the captures changed since, or end early: no frames
            ex["frames"] = [{"device": found[n][0], "frame": found[n][1]} for n in ex["packets"]]


def _example(ex: dict, captures: dict[str, str]) -> str:
    """A violation example: its key (as fields when they are known), and each packet with the core it
    reached (and its frame)."""
    key = ex.get("key_text") or ex["key"]
    if not ex.get("frames"):
        return f"  {ex['object']} key {key}: cores {ex['cores']}, packets {ex['packets']}"
    packets = ", ".join(f"packet {number} (frame {f['frame']} of {captures[str(f['device'])]}) on core {core}"
                        for number, f, core in zip(ex["packets"], ex["frames"], ex["cores"]))
    return f"  {ex['object']} key {key}: {packets}"


def render(data: dict) -> str:
    lines = [f"{data['nf']}: {count(data['packets'], 'packet')} on {count(data['cores'], 'core')}, "
             f"imbalance (max/mean) {data['imbalance']:.3f}"]
    lines.append("packets per core: " + " ".join(str(x) for x in data["per_core"]))
    lines.append("flows per core:   " + " ".join(str(x) for x in data["flows_per_core"]))
    contention = data.get("contention")
    if contention is not None:
        lines.append(f"sharding violations: none possible: {data['strategy']} keeps one shared copy of every object")
        lines.append(f"write lock: {100 * contention['share']:.2f}% of packets take it ({contention['writes']} "
                     f"packets); per core: " + " ".join(str(x) for x in contention["per_core"]))
        if contention.get("cells"):
            lines.append(f"cell locks: {100 * contention['cell_share']:.2f}% of packets may change only vector cells "
                         f"({contention['cells']} packets), which they write under per-cell locks, side by side")
        for note in contention["notes"]:
            lines.append(f"  estimate: {note}")
    else:
        v = data["violations"]
        lines.append(violations_line(data))
        for ex in v["examples"]:
            lines.append(_example(ex, data.get("captures", {})))
        for u in data["unchecked"]:
            lines.append(f"  not checked: {u}")
    shares = data.get("write_shares") or {}
    if shares:
        lines.append("write share (packets whose headers may take a path that writes it): " + ", ".join(
            f"{name} {share:.2%}" for name, share in sorted(shares.items())))
    for p in data.get("pools", []):  # per-core allocators: pools (sharding by allocation) or each core's own
        lines.append(allocation_text(p))
        for note in p["notes"]:
            lines.append(f"  note: {note}")
    for note in data.get("warnings", []):
        lines.append(f"warning: {note}")
    if data.get("rebalanced"):
        r = data["rebalanced"]
        lines.append(f"rebalanced RETA: imbalance {data['imbalance']:.3f} -> {r['imbalance']:.3f}, "
                     f"violations {r['violations']}")
        lines.append("  packets per core: " + " ".join(str(x) for x in r["per_core"]))
    return "\n".join(lines)
