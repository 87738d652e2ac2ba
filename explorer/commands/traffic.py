"""``nfx traffic KIND --out DIR``: write a seeded synthetic trace as ``DIR/dev0.pcap`` (LAN) and
``DIR/dev1.pcap`` (WAN), as a pcap folder (``explorer.traffic.pcap_folder``: a new one appears
whole, an existing one keeps every file nfx did not write).

``nfx traffic paths --nf NF.c --out DIR`` writes, instead, packets that follow every path of that
NF the concolic search reaches (``explorer.verify.witnesses``): the traffic to check a new NF on,
since no generic kind knows its ports, its thresholds or the order of packets its state needs."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from explorer import pipeline
from explorer.commands.options import parse_defines, parse_traffic_params, paths_traffic_lines, split_traffic
from explorer.errors import ConfigError
from explorer.pipeline import PATHS
from explorer.traffic.generators import GENERATORS, LAN, WAN, generate, kind_parameters
from explorer.traffic.pcap import write_trace
from explorer.traffic.pcap_folder import check_folder
from explorer.traffic.trace import Trace
from explorer.wording import count


def main(args: argparse.Namespace) -> int:
    check_folder(Path(args.out))
    args.kind, args.param = split_traffic(args.kind, args.param)
    if args.kind == PATHS:
        return _paths(args)
    if args.kind not in GENERATORS:
        raise ConfigError(f"unknown traffic kind {args.kind!r}; known: {', '.join(sorted(GENERATORS))}, "
                          f"and {PATHS} (with --nf NF.c)")
    if args.nf is not None or args.define:
        raise ConfigError(f"--nf and --define are for `nfx traffic {PATHS}`; {args.kind} traffic does not depend on an NF")
    packets = 10_000 if args.packets is None else args.packets
    flows = 1_000 if args.flows is None else args.flows
    if args.skew is not None and "skew" not in kind_parameters(args.kind):
        raise ConfigError(f"--skew: {args.kind} traffic has no Zipf exponent; {', '.join(skewed_kinds())} have one")
    params = parse_traffic_params(args.param + ([f"skew={args.skew}"] if args.skew is not None else []), [args.kind])
    trace = generate(args.kind, packets=packets, flows=flows, seed=args.seed, **params)
    written = write_trace(trace, args.out, devices=(LAN, WAN))
    print(f"{args.kind} traffic, seed {args.seed}: {count(len(trace), 'packet')} over up to {count(flows, 'flow')}")
    _print_written(trace, written)
    return 0


def skewed_kinds() -> list[str]:
    """The generator kinds that take ``--skew``, in the generators' order (for the help and errors)."""
    return [kind for kind in GENERATORS if "skew" in kind_parameters(kind)]


def _paths(args: argparse.Namespace) -> int:
    if args.nf is None:
        raise ConfigError(f"`nfx traffic {PATHS}` needs --nf NF.c: the NF whose paths the packets follow")
    given = [name for name, value in (("--packets", args.packets), ("--flows", args.flows), ("--skew", args.skew))
             if value is not None] + (["--param"] if args.param else [])
    if given:
        raise ConfigError(f"{PATHS} traffic takes no {', '.join(given)}: the NF's paths decide its packets")
    defines = parse_defines(args.define)
    analysis, witnesses = pipeline.nf_paths_traffic(args.nf, defines, args.seed)
    trace = witnesses.combined()
    if not len(trace):
        raise ConfigError(f"{analysis.nf}: no packet followed any path, so there is no traffic to write")
    written = write_trace(trace, args.out, devices=range(analysis.devices), inputs=[args.nf])
    for line in paths_traffic_lines(analysis.nf, args.seed, witnesses):
        print(line)
    _print_written(trace, written)
    return 0


def _print_written(trace: Trace, written: dict[int, Path]) -> None:
    counts = np.bincount(trace.devices, minlength=max(written) + 1)
    for dev, path in written.items():
        print(f"wrote {path} ({int(counts[dev])} packet{'' if counts[dev] == 1 else 's'})")
