"""What replicating lb's backend table buys: Mpps of lb's sequential build, its sn build (backend
objects replicated, heartbeats broadcast) and its locks build, on the same VIP traffic with heartbeats
at about 1 per 1,000 packets, all in one run (``nfx bench sample_nfs/lb.c`` measures the same).

    .venv/bin/python benchmarks/bench_replication.py [--packets N] [--repeat R] [--cores 1,2]
        [--heartbeat-share S] [--replication lagged|strict] [--json]

Prints each build's rate (best of ``repeat``, every sample kept), the ratio to seq measured in the
same run, and the share of packets per verdict (the benchmark exercises lb's main path: clients
balanced to backends). The machine is shared: read the ratios, and rerun to see the spread.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import pipeline  # noqa: E402
from explorer.bench.measure import bench, bench_trace  # noqa: E402
from explorer.run import run_trace  # noqa: E402
from explorer.sharding.writers import writer_traffic  # noqa: E402

LB = str(ROOT / "sample_nfs" / "lb.c")


def verdict_shares(traffic: dict, packets: int) -> dict[str, float]:
    """Share of the bench trace's packets per verdict of the sequential NF."""
    trace, _ = bench_trace(min(packets, 100_000), traffic)
    counts = Counter({-1: "drop", -2: "flood"}.get(v.verdict, f"to device {v.verdict}")
                     for v in run_trace(LB, trace).verdicts)
    return {name: count / len(trace) for name, count in sorted(counts.items())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--heartbeat-share", type=float, default=0.001)
    parser.add_argument("--replication", default="lagged", choices=["lagged", "strict"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    cores = tuple(int(c) for c in args.cores.split(","))
    analysis = pipeline.analyze(LB)
    solution = pipeline.solve(analysis, cores=max(cores), quality=False)
    traffic = writer_traffic(analysis, solution.sharding, args.heartbeat_share)
    report = bench(LB, cores, ("sn", "locks"), args.packets, traffic=traffic, repeat=args.repeat,
                   replication=args.replication)
    shares = verdict_shares(traffic, args.packets)
    if args.json:
        print(json.dumps({**report.to_dict(), "verdicts": shares, "replication": args.replication}, indent=2,
                         sort_keys=True))
        return 0
    print(report.render())
    print(f"  replication {args.replication}; verdicts of the sequential NF on this traffic: "
          + ", ".join(f"{name} {share:.1%}" for name, share in shares.items()))
    for count in cores:
        if count > 1:
            sn, locks = report.result("sn", count).mpps, report.result("locks", count).mpps
            print(f"  {count} cores: sn {report.speedup('sn', count):.2f}x seq, locks {report.speedup('locks', count):.2f}x "
                  f"seq; sn / locks {sn / locks if locks else float('inf'):.1f}x")
            # Each round measures every build one after the other, seconds apart: a round's ratio
            # is the least disturbed by the host's speed drifting over the run.
            seq = report.result("seq", 1).samples
            for strategy in ("sn", "locks"):
                rounds = [b / a for a, b in zip(seq, report.result(strategy, count).samples) if a]
                print(f"    {strategy} / seq per round: {' '.join(f'{r:.2f}' for r in rounds)}; "
                      f"median {statistics.median(rounds):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
