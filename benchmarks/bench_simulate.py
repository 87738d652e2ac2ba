"""Simulator throughput: 1,000,000 packets end to end (traffic fields, hash, RETA, per-core counts,
violation check), median of 5 runs, for every shardable sample NF.

    .venv/bin/python benchmarks/bench_simulate.py [--packets N] [--nf fw ...]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from explorer import pipeline
from explorer.simulate.simulation import simulate
from explorer.traffic.generators import generate_fields

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nf", action="append", default=[])
    args = parser.parse_args()
    names = args.nf or ["fw", "nat", "pol", "psd", "cl"]
    print(f"{'nf':<8} {'hash+steer+violations (s)':>26} {'with traffic generation (s)':>28} {'Mpps':>7} {'violations':>10}")
    for name in names:
        solution = pipeline.solve(ROOT / "sample_nfs" / f"{name}.c", quality=False)
        sim_times, total_times = [], []
        for run in range(args.runs):
            t0 = time.perf_counter()
            fields, devices = generate_fields("bidir", packets=args.packets, flows=args.packets // 10, seed=run)
            t1 = time.perf_counter()
            report = simulate(solution.analysis, solution.sharding, solution.plan, [(fields, devices)])
            t2 = time.perf_counter()
            sim_times.append(t2 - t1)
            total_times.append(t2 - t0)
        sim = statistics.median(sim_times)
        print(f"{name:<8} {sim:>26.3f} {statistics.median(total_times):>28.3f} {args.packets / sim / 1e6:>7.2f} "
              f"{report.violation_count:>10}")


if __name__ == "__main__":
    main()
