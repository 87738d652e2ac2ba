"""Scaling of the generated parallel builds: Mpps per strategy and core count next to the sequential build,
measured in one run (explorer.bench.measure: packets preloaded, a warm-up lap, then timed laps), each
NF on the traffic of its main path, with the share of packets per verdict and the write-lock share.

    python benchmarks/bench_parallel.py [--cores 1,2] [--nfs fw,nat,lb] [--strategies sn,locks,tm]
                                        [--packets N] [--repeat N] [--out DIR]
        measures here, prints every report, a summary (x seq, x the strategy's own 1-core rate,
        write-lock share, verdict shares) and the targets of issue 13 with PASS/FAIL; with --out,
        <nf>.json and <nf>.svg per NF and curve.csv (every NF, strategy and core count);
    python benchmarks/bench_parallel.py --bundle DIR --cores 1,2,4,8,16
        builds every replay binary, the traces and the DPDK libraries they need into DIR, with
        DIR/run_bundle.py (Python standard library only) to measure on another x86-64 machine:
        LD_LIBRARY_PATH=DIR/lib python3 DIR/run_bundle.py > results.json

The machine is shared: every figure is the median of --repeat runs, with all samples printed (their
spread says how noisy the run was), and ratios are taken against seq measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import pipeline  # noqa: E402  (after the path set-up above)
from explorer.bench.measure import VERDICTS, BenchReport, bench  # noqa: E402
from explorer.bench.traffic import open_loop, traffic_for  # noqa: E402
from explorer.codegen.compile import build_program  # noqa: E402
from explorer.codegen.planning import parallel_plan  # noqa: E402
from explorer.codegen.project import write_project  # noqa: E402
from explorer.run import encode_trace  # noqa: E402
from explorer.verify.equivalence import rewrites  # noqa: E402

SAMPLES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")
SHARED_NOTHING = ("nop", "sbridge", "pol", "fw", "nat", "cl", "psd")


def strategies_of(nf: str, asked: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(s for s in asked if s != "sn" or nf in SHARED_NOTHING)


def targets(reports: dict[str, BenchReport]) -> list[str]:
    """Issue 13's targets, checked on this run's medians."""
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {text}")

    for nf, report in reports.items():
        for strategy in ("locks", "tm"):
            try:
                one, two = report.result(strategy, 1).mpps, report.result(strategy, 2).mpps
            except KeyError:
                continue
            check(two >= one, f"{nf} {strategy}: 2 cores {two:.2f} Mpps >= its own 1-core {one:.2f} Mpps")
    if "lb" in reports:
        try:
            check(reports["lb"].speedup("locks", 2) >= 1.5,
                  f"lb locks (read-heavy) 2 cores {reports['lb'].speedup('locks', 2):.2f}x seq >= 1.5x")
        except KeyError:
            pass
    for nf in ("fw", "nat"):
        if nf not in reports:
            continue
        try:
            two, one = reports[nf].speedup("sn", 2), reports[nf].speedup("sn", 1)
            check(two >= 1.9, f"{nf} sn 2 cores {two:.2f}x seq >= 1.9x")
            check(one >= 0.97, f"{nf} sn 1 core {one:.2f}x seq >= 0.97x")
        except KeyError:
            pass
    return lines


def measure_here(nfs: tuple[str, ...], cores: tuple[int, ...], asked: tuple[str, ...], packets: int,
                 trace_packets: int, repeat: int, out: Path | None) -> int:
    reports: dict[str, BenchReport] = {}
    rows = []
    for nf in nfs:
        report = bench(ROOT / "sample_nfs" / f"{nf}.c", cores, strategies_of(nf, asked), packets,
                       trace_packets=trace_packets, repeat=repeat)
        reports[nf] = report
        print(report.render(), "\n", flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{nf}.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
            (out / f"{nf}.svg").write_text(report.svg())
        for r in report.results:
            own = next((o.mpps for o in report.results if o.strategy == r.strategy and o.cores == 1), 0.0)
            rows.append((nf, r.strategy, r.cores, r.mpps, report.speedup(r.strategy, r.cores),
                         r.mpps / own if own else 0.0, r.write_share, *(r.share(v) for v in VERDICTS)))
    print(f"{'nf':<8}{'strategy':<9}{'cores':>5}{'Mpps':>9}{'x seq':>8}{'x own 1c':>9}{'writes':>9}"
          f"{'fwd':>8}{'drop':>8}{'flood':>8}")
    for nf, strategy, count, mpps, speedup, own, writes, fwd, drop, flood, _runts in rows:
        print(f"{nf:<8}{strategy:<9}{count:>5}{mpps:>9.3f}{speedup:>7.2f}x{own:>8.2f}x{100 * writes:>8.2f}%"
              f"{100 * fwd:>7.1f}%{100 * drop:>7.1f}%{100 * flood:>7.1f}%")
    print("\n" + "\n".join(targets(reports)))
    if out is not None:
        header = "nf,strategy,cores,mpps,speedup,own_speedup,write_share," + ",".join(f"{v}_share" for v in VERDICTS)
        (out / "curve.csv").write_text(header + "\n" + "".join(
            ",".join(str(round(x, 6)) if isinstance(x, float) else str(x) for x in row) + "\n" for row in rows))
        print(f"\nwrote {out}/curve.csv and one .json and .svg per NF")
    return 0


RUNNER = r'''"""Run the bundled replay binaries (--bench) and print their rates as JSON (stdlib only)."""
import json, os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
plan = json.load(open(os.path.join(HERE, "bundle.json")))
cpus = sorted(os.sched_getaffinity(0))
cpus = cpus[2:] + cpus[:2]  # small runs keep off CPUs 0 and 1, where this script and the system run
env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(HERE, "lib"))
results = []
for run in plan["runs"]:
    cores = run["cores"]
    placement = ["-l", ",".join(map(str, cpus[:cores]))] if cores <= len(cpus) else \
        ["--lcores", "(0-%d)@(%s)" % (cores - 1, ",".join(map(str, cpus)))]
    samples, lines = [], []
    for k in range(plan["repeat"]):
        argv = [os.path.join(HERE, run["binary"]), "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                "--log-level=error", "-m", str(512 + 128 * cores), *placement,
                "--file-prefix=nfxb%d_%d" % (len(results), k), "--", "--bench", str(run["packets"]),
                os.path.join(HERE, run["trace"])]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        line = [l for l in done.stdout.splitlines() if l.startswith("bench: ")]
        if done.returncode != 0 or not line:
            print("FAILED", run, done.returncode, done.stderr[-500:], file=sys.stderr, flush=True)
            break
        samples.append(float(line[0].split(": ")[-1].split(" Mpps")[0]))
        lines.append([l for l in done.stdout.splitlines() if l.startswith(("core ", "lock: "))])
    ordered = sorted(samples)
    row = dict(run, samples=samples, mpps=ordered[(len(ordered) - 1) // 2] if samples else None,
               cores_report=lines[samples.index(ordered[(len(ordered) - 1) // 2])] if samples else [])
    results.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
print(json.dumps({"cpus": len(cpus), "results": results}, indent=1))
'''


def bundle(folder: Path, nfs: tuple[str, ...], cores: tuple[int, ...], asked: tuple[str, ...],
           packets_per_core: int, trace_packets: int, repeat: int) -> int:
    """Replay binaries, traces (each NF's main-path traffic; closed-loop kinds are left out) and
    libraries for a machine without DPDK's development files or this project's Python packages."""
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("bin", "lib", "traces"):
        (folder / sub).mkdir(parents=True)
    runs, binaries = [], []
    work = folder / "projects"
    for nf in nfs:
        traffic = traffic_for(nf, None, trace_packets)
        source = f"sample_nfs/{nf}.c"
        auto = pipeline.solve(source, cores=max(cores), quality=False)
        if rewrites(auto):
            print(f"{nf}: its replies depend on the build (closed loop); left out of the bundle", file=sys.stderr)
            continue
        (folder / "traces" / f"{nf}.bin").write_bytes(encode_trace(open_loop(traffic)))
        locks = pipeline.solve(source, cores=max(cores), strategy="locks", quality=False)
        configs = [("seq", 1, auto)]
        for strategy in strategies_of(nf, asked):
            configs += [(strategy, c, auto if strategy == "sn" else locks) for c in cores]
        for strategy, count, solution in configs:
            project = write_project(parallel_plan(solution, strategy, count), work / f"{nf}-{strategy}-{count}")
            target = folder / "bin" / f"{nf}-{strategy}-{count}"
            shutil.copy2(build_program(project, "replay"), target)
            binaries.append(target)
            runs.append({"nf": nf, "strategy": strategy, "cores": count, "binary": f"bin/{target.name}",
                         "trace": f"traces/{nf}.bin", "packets": packets_per_core * count,
                         "traffic": traffic.describe()})
    shutil.rmtree(work, ignore_errors=True)
    needed = set()
    for binary in binaries:
        for line in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
                name = Path(parts[2]).name
                if not name.startswith(("libc.so", "libm.so", "ld-linux", "libpthread", "libdl.so", "librt.so")):
                    needed.add(parts[2])
    for library in sorted(needed):
        shutil.copy2(library, folder / "lib" / Path(library).name)
    (folder / "bundle.json").write_text(json.dumps({"repeat": repeat, "runs": runs}, indent=1) + "\n")
    (folder / "run_bundle.py").write_text(RUNNER)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"bundle {folder}: {len(runs)} runs, {len(needed)} libraries, {size / 1e6:.1f} MB")
    return 0


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(n for n in text.split(",") if n)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--nfs", default=",".join(SAMPLES))
    parser.add_argument("--strategies", default="sn,locks,tm")
    parser.add_argument("--packets", type=int, default=2_000_000, help="timed packets per measurement")
    parser.add_argument("--trace-packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="write <nf>.json, <nf>.svg and curve.csv here")
    parser.add_argument("--bundle", metavar="DIR")
    parser.add_argument("--packets-per-core", type=int, default=2_000_000, help="with --bundle")
    args = parser.parse_args()
    cores = tuple(sorted({int(c) for c in args.cores.split(",")}))
    nfs = _names(args.nfs, SAMPLES, "NFs")
    asked = _names(args.strategies, ("sn", "locks", "tm"), "strategies")
    if args.bundle:
        return bundle(Path(args.bundle), nfs, cores, asked, args.packets_per_core, args.trace_packets, args.repeat)
    return measure_here(nfs, cores, asked, args.packets, args.trace_packets, args.repeat,
                        Path(args.out) if args.out else None)


if __name__ == "__main__":
    sys.exit(main())
