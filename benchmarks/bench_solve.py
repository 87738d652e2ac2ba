"""Solve time and key quality per sample NF, next to Maestro's published full-tuple keys.

For every sample NF: the median time of analysis + sharding + Z3 key solving (+ quality measurement,
as ``nfx solve`` does), the strategy, the GF(2) rank of each device's RETA index, and max/mean
per-core packets on 16 cores with the default round-robin RETA, on seeded uniform and
prefix-concentrated traffic (clients in one /16, servers in one /20). The same traffic is then
steered with Maestro's keys (read from ../shared/data/maestro_keys.json, full 4-tuple hashing; its
device numbering is its own, so both mappings are tried and the one with fewer violations kept).

    .venv/bin/python benchmarks/bench_solve.py [--runs 5] [--maestro PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from explorer import pipeline

ROOT = Path(__file__).resolve().parent.parent
NFS = ["nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb"]
ALL4 = ("src_ip", "dst_ip", "src_port", "dst_port")
TRAFFIC = (("uniform", {}), ("prefix", {"client_prefix": "10.1.0.0/16", "server_prefix": "172.16.0.0/20"}))


def measure(solution, keys=None, fields=None):
    out = {}
    for kind, params in TRAFFIC:
        r = pipeline.simulate(solution, kind, packets=200_000, flows=40_000, seed=7, keys=keys, fields=fields, **params)
        out[kind] = (r.imbalance, sum(1 for c in r.per_core if c), r.violation_count)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--maestro", default=str(ROOT.parent / "shared" / "data" / "maestro_keys.json"))
    args = parser.parse_args()
    maestro = json.loads(Path(args.maestro).read_text())["keys"] if Path(args.maestro).exists() else {}
    print(f"{'nf':<8} {'strategy':<15} {'solve ms':>8} {'ranks':>9}  "
          f"{'ours uniform':>14} {'ours prefix':>14}  {'Maestro uniform':>16} {'Maestro prefix':>16}")
    for name in NFS:
        nf = ROOT / "sample_nfs" / f"{name}.c"
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            solution = pipeline.solve(nf)
            times.append(time.perf_counter() - t0)
        ranks = "/".join(str(d.rank) for d in solution.plan.devices)
        ours = measure(solution)
        cells = [f"{ours[k][0]:.2f} ({ours[k][1]}c)" for k, _ in TRAFFIC]
        theirs = ["-", "-"]
        if name in maestro and solution.strategy == "shared-nothing":
            keys = {int(d): bytes.fromhex(k) for d, k in maestro[name].items()}
            options = []
            for mapping in ({0: keys[0], 1: keys[1]}, {0: keys[1], 1: keys[0]}):
                m = measure(solution, keys=mapping, fields={0: ALL4, 1: ALL4})
                options.append((sum(v[2] for v in m.values()), m))
            _, m = min(options, key=lambda o: o[0])
            theirs = [f"{m[k][0]:.2f} ({m[k][1]}c{', %d viol' % m[k][2] if m[k][2] else ''})" for k, _ in TRAFFIC]
        print(f"{name:<8} {solution.strategy:<15} {statistics.median(times) * 1000:>8.0f} {ranks:>9}  "
              f"{cells[0]:>14} {cells[1]:>14}  {theirs[0]:>16} {theirs[1]:>16}")
    print("\nbalance = max/mean packets per core over 16 cores (Nc = cores that got traffic); "
          "Maestro's keys hash the full 4-tuple")


if __name__ == "__main__":
    main()
