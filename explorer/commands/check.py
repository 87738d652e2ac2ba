"""``nfx check NF.c --in 0=a.pcap [--in 1=b.pcap] --cores N [--strategy S] [--replies|--no-replies]
[--json]``: run the sequential and the parallel build on the same trace and compare every packet (see
explorer.verify.equivalence). Exit status 0 when equivalent, 2 when not (or when the parallel run
failed), 3 when partial (some packets went uncompared), 1 for errors (bad input, a build or set-up
that cannot run)."""
from __future__ import annotations

import json

from explorer import pipeline
from explorer.commands.options import check_cores, parse_defines
from explorer.run import load_trace
from explorer.verify.equivalence import check


def main(args) -> int:
    defines = parse_defines(args.define)
    check_cores(args.cores)
    trace = load_trace(args.inputs)
    solution = pipeline.solve(args.nf, defines, nic=args.nic, cores=args.cores, seed=args.seed,
                              strategy=args.strategy, quality=False)
    report = check(solution, trace, args.cores, args.strategy, replies=getattr(args, "replies", None),
                   replication=args.replication)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return report.exit_status
