"""Analysis time per NF: the nine samples and test NFs with constant-bound loops over ACL rules.

For each NF, the median of ``--runs`` full analyses (preprocess, parse, nf_init, exploration of
nf_process, the IR), as wall-clock and CPU time, with the paths found, the Z3 checks made and the
questions answered without Z3. Next to it, in the same process, the same analysis with statement
merging off (every path explored on its own from the start, as before merging existed): the ratio
of the two CPU times is the figure that survives a noisy machine.

The NFs' main path is the exploration itself, so every path of nf_process is exercised by
construction. ``tests/nfs/acl_fw.c`` has 8 ACL rules tested one condition per ``if`` with
``continue`` and an early ``break`` (89 paths unmerged, 8 merged); ``tests/nfs/acl_count.c`` has 16
rules with a counter per rule (about a hundred paths); ``tests/nfs/acl_long.c`` has 64 rules (231
paths unmerged, 8 merged).

Target: under 0.5 s per NF of up to 100 paths on the 2-core development machine.

    .venv/bin/python benchmarks/bench_analysis.py [--runs 5] [--json] [nf.c ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.frontend import parse_nf  # noqa: E402
from explorer.symbex import merging  # noqa: E402
from explorer.symbex.path_search import analyze_parsed, explore  # noqa: E402

TARGET_SECONDS = 0.5
DEFAULT_NFS = sorted((ROOT / "sample_nfs").glob("*.c")) + [ROOT / "tests" / "nfs" / f"{nf}.c"
                                                              for nf in ("acl_fw", "acl_count", "acl_long")]


def _times(nf: Path, runs: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of ``runs`` analyses (after a warm-up), and the path count."""
    analyze_parsed(parse_nf(nf, {}))  # warm-up: imports, gcc's page cache
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        analysis = analyze_parsed(parse_nf(nf, {}, private=True))  # a parse per run, as before parses were shared
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), len(analysis.paths)


def measure(nf: Path, runs: int) -> dict:
    wall, cpu, paths = _times(nf, runs)
    search, exploration = explore(parse_nf(nf, {}))
    merging.ENABLED = False
    try:
        plain_wall, plain_cpu, plain_paths = _times(nf, runs)
    finally:
        merging.ENABLED = True
    return {"nf": nf.stem, "wall_s": wall, "cpu_s": cpu, "paths": paths, "solver_checks": exploration.solver_checks,
            "answered_without_z3": search.solver.reused + search.solver.witnessed,
            "unmerged_paths": plain_paths, "unmerged_cpu_s": plain_cpu, "speedup": plain_cpu / cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nfs", nargs="*", type=Path, help="NF files (default: the samples and the ACL test NFs)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [measure(nf, args.runs) for nf in (args.nfs or DEFAULT_NFS)]
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"load_average": load, "rows": rows}, indent=2))
        return 0
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; medians of {args.runs} runs")
    print(f"{'nf':<10} {'wall':>8} {'cpu':>8} {'paths':>6} {'z3 checks':>10} {'no z3':>6} "
          f"{'unmerged: paths':>16} {'cpu':>8} {'speedup':>8}")
    for r in rows:
        flag = "" if r["wall_s"] < TARGET_SECONDS else "  (over target)"
        print(f"{r['nf']:<10} {r['wall_s']:>7.3f}s {r['cpu_s']:>7.3f}s {r['paths']:>6} {r['solver_checks']:>10} "
              f"{r['answered_without_z3']:>6} {r['unmerged_paths']:>16} {r['unmerged_cpu_s']:>7.3f}s "
              f"{r['speedup']:>7.1f}x{flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
