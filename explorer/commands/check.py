"""``nfx check NF.c --in 0=a.pcap [--in 1=b.pcap] --cores N [--strategy S] [--json]``: run the
sequential and the parallel build on the same trace and compare every packet (see
explorer.verify.equivalence). Exit status 0 when equivalent, 2 when not."""
from __future__ import annotations

import json

from explorer import pipeline
from explorer.verify.equivalence import check
from explorer.commands.options import parse_defines
from explorer.errors import ConfigError
from explorer.run import load_trace


def main(args) -> int:
    defines = parse_defines(args.define)
    if args.cores < 1:
        raise ConfigError(f"--cores must be at least 1, not {args.cores}")
    trace = load_trace(args.inputs)
    solution = pipeline.solve(args.nf, defines, nic=args.nic, cores=args.cores, seed=args.seed,
                              strategy=args.strategy, quality=False)
    report = check(solution, trace, args.cores, args.strategy)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return 0 if report.equivalent else 2
