"""``nfx check NF.c (--in 0=a.pcap [--in 1=b.pcap] | --traffic KIND) --cores N [--strategy S]
[--override OBJ=...] [--replies|--no-replies] [--json]``: run the sequential and the parallel build on the same trace and
compare every packet (see explorer.verify.equivalence). The trace is the captures given, or
``--traffic paths`` (packets that follow every path of the NF the witness search reaches, as
``nfx traffic paths`` writes them), or a generated kind. Exit status 0 when equivalent, 2 when not
(or when the parallel run failed), 3 when partial (some packets went uncompared), 1 for errors
(bad input, a build or set-up that cannot run)."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from explorer import pipeline
from explorer.commands.options import (check_cores, parse_defines, parse_traffic_params, paths_traffic_lines,
                                       solve_nf, split_traffic)
from explorer.errors import ConfigError
from explorer.pipeline import PATHS
from explorer.run import load_trace
from explorer.traffic.pcap import parse_inputs
from explorer.traffic.generators import GENERATORS, generate
from explorer.traffic.trace import Trace
from explorer.verify.equivalence import check


def main(args) -> int:
    defines = parse_defines(args.define)
    check_cores(args.cores)
    traffic = _traffic(args, defines)
    solution = solve_nf(args, defines, args.strategy)
    # Witness traces are put together for the build being checked (each core's share of a table filled evenly).
    trace = traffic if isinstance(traffic, Trace) else pipeline.paths_check_trace(
        solution, traffic, defines, args.cores, args.strategy, args.replication)
    if args.traffic in GENERATORS:  # generated traffic arrives on two devices
        pipeline.check_generated(solution.analysis, args.traffic)
    report = check(solution, trace, args.cores, args.strategy, replies=getattr(args, "replies", None),
                   replication=args.replication)
    if args.inputs:  # a differing packet is named by its frame in the capture the user has
        report = replace(report, captures=tuple((dev, Path(path).name) for dev, path in parse_inputs(args.inputs).items()))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return report.exit_status


def _traffic(args, defines: dict[str, str]):
    """The captures of --in, or the traffic --traffic names (a Trace), or for --traffic paths the
    witnesses, which are put together once the build is known."""
    args.traffic, args.param = split_traffic(args.traffic, args.param)
    if args.inputs and args.traffic:
        raise ConfigError("give either --in DEV=PCAP (repeatable) or --traffic KIND, not both")
    given = ", ".join([name for name, value in (("--packets", args.packets), ("--flows", args.flows), ("--param", args.param))
                       if value])
    if not args.traffic:
        if not args.inputs:
            raise ConfigError(f"no input traffic: give --in DEV=PCAP (repeatable) or --traffic KIND, e.g. "
                              f"--traffic {PATHS}: packets that follow every path of the NF")
        if given:
            raise ConfigError(f"{given}: only with --traffic KIND (generated traffic), not with --in")
        return load_trace(args.inputs, needed_for="compare")
    if args.traffic == PATHS:
        if given:
            raise ConfigError(f"{PATHS} traffic takes no {given}: the NF's paths decide its packets")
        analysis, witnesses = pipeline.nf_paths_traffic(args.nf, defines, args.seed)
        for line in paths_traffic_lines(analysis.nf, args.seed, witnesses):
            print(line, file=sys.stderr)
        return witnesses
    if args.traffic not in GENERATORS:
        raise ConfigError(f"unknown traffic kind {args.traffic!r}; known: {', '.join(sorted(GENERATORS))}, and {PATHS}")
    params = parse_traffic_params(args.param, [args.traffic])
    return generate(args.traffic, packets=20_000 if args.packets is None else args.packets,
                    flows=2_000 if args.flows is None else args.flows, seed=args.seed, **params)
