"""Analysis time of every sample NF: the median of ``--runs`` full analyses (preprocess, parse,
nf_init, exploration of nf_process, the IR), with the number of paths and of Z3 checks.

Target: under 0.3 s per sample NF on the 2-core development machine.

    .venv/bin/python benchmarks/bench_analysis.py [--runs 7] [--json] [nf ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.frontend import parse_nf  # noqa: E402
from explorer.symbex import analyze  # noqa: E402
from explorer.symbex.path_search import explore  # noqa: E402

TARGET_SECONDS = 0.3


def measure(nf: Path, runs: int) -> dict:
    analyze(nf)  # warm-up: imports, gcc's page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        analysis = analyze(nf)
        times.append(time.perf_counter() - start)
    explorer, exploration = explore(parse_nf(nf, {}))
    return {"nf": nf.stem, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "paths": len(analysis.paths), "solver_checks": exploration.solver_checks,
            "witnessed": explorer.solver.witnessed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nfs", nargs="*", help="sample NF names (default: all)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = args.nfs or sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c"))
    rows = [measure(ROOT / "sample_nfs" / f"{name}.c", args.runs) for name in names]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'nf':<10} {'median':>9} {'min':>9} {'max':>9} {'paths':>6} {'z3 checks':>10} {'witnessed':>10}")
        for r in rows:
            flag = "" if r["median_s"] < TARGET_SECONDS else "  (over target)"
            print(f"{r['nf']:<10} {r['median_s']:>8.3f}s {r['min_s']:>8.3f}s {r['max_s']:>8.3f}s {r['paths']:>6} "
                  f"{r['solver_checks']:>10} {r['witnessed']:>10}{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
