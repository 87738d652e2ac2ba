"""Scaling of the generated parallel builds: Mpps per strategy and core count next to the sequential build,
measured in one run (explorer.bench.measure: packets preloaded, a warm-up lap, then timed laps), each
NF on the traffic of its main path, with the share of packets per verdict and the write-lock share.

    python benchmarks/bench_parallel.py [--cores 1,2] [--nfs fw,nat,lb] [--strategies sn,locks,tm]
                                        [--packets N] [--repeat N] [--out DIR]
        measures here, prints every report, a summary (x seq, x the strategy's own 1-core rate,
        write-lock share, verdict shares) and the targets of issue 13 with PASS/FAIL; with --out,
        <nf>.json and <nf>.svg per NF and curve.csv (every NF, strategy and core count);
    python benchmarks/bench_parallel.py --bundle DIR --cores 1,2,4,8,16 [--packets-per-core N]
        builds the replay programs and traces bench would measure (nat: one closed-loop trace per
        build), and the DPDK libraries they need, into DIR, with DIR/run_bundle.py (Python's standard
        library only) to measure them on another x86-64 machine without DPDK or this project:
        python3 DIR/run_bundle.py results.json [--deadline SECONDS]
    python benchmarks/bench_parallel.py --report results.json [--out DIR]
        the same reports, summary and targets as a run here, from those results.

The machine is shared: every figure is the median of --repeat runs, with all samples printed (their
spread says how noisy the run was), and ratios are taken against seq measured in the same run.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer.bench.measure import (VERDICTS, BenchReport, Build, Setup, bench, parse_bench,  # noqa: E402
                                    prepare, report_of)
from explorer.errors import NfxError  # noqa: E402

SAMPLES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")


def targets(reports: dict[str, BenchReport]) -> list[str]:
    """Issue 13's and 15's targets, checked on this run's medians (those it measured)."""
    lines = []

    def at_least(nf: str, strategy: str, cores: int, goal: float, what: str) -> None:
        try:
            ratio = reports[nf].speedup(strategy, cores)
        except KeyError:
            return
        core_text = "1 core" if cores == 1 else f"{cores} cores"
        lines.append(f"{'PASS' if ratio >= goal else 'FAIL'}  {nf} {what} {core_text} {ratio:.3f}x seq >= {goal}x")

    for nf, report in reports.items():
        for strategy in ("locks", "tm"):
            try:
                one, two = report.result(strategy, 1).mpps, report.result(strategy, 2).mpps
            except KeyError:
                continue
            lines.append(f"{'PASS' if two >= one else 'FAIL'}  {nf} {strategy}: 2 cores {two:.2f} Mpps >= "
                         f"its own 1-core {one:.2f} Mpps")
    at_least("lb", "locks", 2, 1.5, "locks (read-heavy)")
    for nf in ("fw", "nat"):
        at_least(nf, "sn", 2, 1.9, "sn")
        at_least(nf, "sn", 1, 0.97, "sn")
    at_least("lb", "sn", 2, 1.6, "sn (replicated)")
    for nf in reports:
        at_least(nf, "sn", 16, 14 if nf in ("fw", "nat") else 10, "sn")
    return lines


def summarize(reports: dict[str, BenchReport], out: Path | None) -> None:
    """Print every report, a summary table and the targets; with ``out``, write <nf>.json, <nf>.svg
    and curve.csv there."""
    rows = []
    for nf, report in reports.items():
        print(report.render(), "\n", flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{nf}.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
            (out / f"{nf}.svg").write_text(report.svg())
        for r in report.results:
            own = next((o.mpps for o in report.results if o.strategy == r.strategy and o.cores == 1), 0.0)
            rows.append((nf, r.strategy, r.cores, r.mpps, report.speedup(r.strategy, r.cores),
                         r.mpps / own if own else 0.0, r.split_bound, report.core_speed(r), r.write_share,
                         r.cell_share, *(r.share(v) for v in VERDICTS)))
    print("split: the most the trace's split over cores allows (packets over the busiest core's); core speed: the\n"
          "cores' mean rate while busy over the strategy's 1-core rate. x own 1c ~ split x core speed x cores' "
          "overlap.")
    print(f"{'nf':<8}{'strategy':<9}{'cores':>5}{'Mpps':>9}{'x seq':>8}{'x own 1c':>9}{'split':>8}{'speed':>7}"
          f"{'writes':>9}{'cells':>9}{'fwd':>8}{'drop':>8}{'flood':>8}")
    for nf, strategy, count, mpps, speedup, own, split, speed, writes, cells, fwd, drop, flood, _runts in rows:
        print(f"{nf:<8}{strategy:<9}{count:>5}{mpps:>9.3f}{speedup:>7.2f}x{own:>8.2f}x{split:>7.2f}x{100 * speed:>6.0f}%"
              f"{100 * writes:>8.2f}%{100 * cells:>8.2f}%{100 * fwd:>7.1f}%{100 * drop:>7.1f}%{100 * flood:>7.1f}%")
    print("\n" + "\n".join(targets(reports)))
    if out is not None:
        header = ("nf,strategy,cores,mpps,speedup,own_speedup,split_bound,core_speed,write_share,cell_share," +
                  ",".join(f"{v}_share" for v in VERDICTS))
        (out / "curve.csv").write_text(header + "\n" + "".join(
            ",".join(str(round(x, 6)) if isinstance(x, float) else str(x) for x in row) + "\n" for row in rows))
        print(f"\nwrote {out}/curve.csv and one .json and .svg per NF")


RUNNER = r'''"""Measure the bundled replay programs (--bench) in rounds and write their reports as JSON.
Python's standard library only:  python3 run_bundle.py RESULTS.json [--deadline SECONDS]
Rounds go over every run, so that a slow spell hits all alike; RESULTS.json is rewritten after each
run, no run starts past the deadline, and it stops when the first three runs all failed. Traces are
unpacked to a temporary folder, removed at the end with the runtime folders EAL leaves."""
import json, lzma, os, shutil, subprocess, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
plan = json.load(open(os.path.join(HERE, "bundle.json")))
results, deadline = sys.argv[1], time.time() + (float(sys.argv[3]) if sys.argv[2:3] == ["--deadline"] else 1e9)
cpus = sorted(os.sched_getaffinity(0))
cpus = cpus[2:] + cpus[:2]  # small runs keep off CPUs 0 and 1, where this script and the system run
env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(HERE, "lib"))
unpacked = tempfile.mkdtemp(prefix="nfx-bundle-")
runs = [dict(run, outputs=[], failures=[]) for run in plan["runs"]]
try:
    for name in sorted({run["trace"] for run in runs}):
        with lzma.open(os.path.join(HERE, name)) as packed, \
                open(os.path.join(unpacked, os.path.basename(name)), "wb") as f:
            shutil.copyfileobj(packed, f)
    for round_ in range(plan["repeat"]):
        for k, run in enumerate(runs):
            if time.time() > deadline:
                break
            cores, prefix = run["cores"], "nfxb%d_%d_%d" % (os.getpid(), round_, k)
            placement = ["-l", ",".join(map(str, cpus[:cores]))] if cores <= len(cpus) else \
                ["--lcores", "(0-%d)@(%s)" % (cores - 1, ",".join(map(str, cpus)))]
            argv = [os.path.join(HERE, run["binary"]), "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                    "--log-level=error", "-m", str(512 + 128 * cores), *placement, "--file-prefix=" + prefix, "--",
                    "--bench", str(run["packets"]), os.path.join(unpacked, os.path.basename(run["trace"]))]
            try:
                done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=40)
                if done.returncode == 0 and "bench: " in done.stdout:
                    run["outputs"].append(done.stdout)
                else:
                    run["failures"].append("exit %d: %s" % (done.returncode, done.stderr[-800:]))
            except subprocess.TimeoutExpired:
                run["failures"].append("timed out after 40 s")
            finally:
                shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
            last = run["failures"][-1] if len(run["outputs"]) <= round_ else run["outputs"][-1].splitlines()[0]
            print(round_, run["nf"], run["strategy"], run["cores"], last, flush=True)
            with open(results + ".part", "w") as f:
                json.dump({"cpus": len(cpus), "nfs": plan["nfs"], "runs": runs}, f, indent=1)
            os.replace(results + ".part", results)
            if round_ == 0 and k == 2 and not any(r["outputs"] for r in runs[:3]):
                sys.exit("the first three runs failed; stopped")
finally:
    shutil.rmtree(unpacked, ignore_errors=True)
'''


def bundle(folder: Path, nfs: tuple[str, ...], cores: tuple[int, ...], asked: tuple[str, ...],
           packets_per_core: int, trace_packets: int, repeat: int) -> int:
    """Replay programs, traces (xz) and libraries to measure ``nfs`` on a machine without DPDK's
    development files or this project's Python packages: the builds and traces ``bench`` measures
    (``prepare``), so closed-loop NFs (nat) carry a trace per build."""
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("bin", "lib", "traces"):
        (folder / sub).mkdir(parents=True)
    runs, binaries, setups = [], [], {}
    with tempfile.TemporaryDirectory(prefix="nfx-bundle-") as tmp:
        for nf in nfs:
            work = Path(tmp, nf)
            work.mkdir()
            setup = prepare(ROOT / "sample_nfs" / f"{nf}.c", work, cores, asked, packets_per_core,
                            trace_packets=trace_packets)
            setups[nf] = {"traffic": setup.traffic, "notes": list(setup.notes), "generic": setup.generic,
                          "shardable": setup.shardable}
            for b in setup.builds:
                target = folder / "bin" / f"{nf}-{b.strategy}-{b.cores}"
                shutil.copy2(b.binary, target)
                binaries.append(target)
                data = b.trace.read_bytes()  # named by content: most closed-loop builds send alike
                trace = f"traces/{hashlib.sha256(data).hexdigest()[:16]}.bin.xz"
                if not (folder / trace).exists():
                    with lzma.open(folder / trace, "wb", preset=6) as packed:
                        packed.write(data)
                runs.append({"nf": nf, "strategy": b.strategy, "cores": b.cores, "binary": f"bin/{target.name}",
                             "trace": trace, "packets": packets_per_core * b.cores})
            print(f"{nf}: {len(setup.builds)} builds", file=sys.stderr, flush=True)
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
    (folder / "bundle.json").write_text(json.dumps({"repeat": repeat, "nfs": setups, "runs": runs}, indent=1) + "\n")
    (folder / "run_bundle.py").write_text(RUNNER)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"bundle {folder}: {len(runs)} runs, {len(needed)} libraries, {size / 1e6:.1f} MB")
    return 0


def reports_of(results: dict) -> dict[str, BenchReport]:
    """Reports from a bundle's results (``run_bundle.py``), as ``bench`` makes them from its samples."""
    reports = {}
    for nf, info in results["nfs"].items():
        runs = [r for r in results["runs"] if r["nf"] == nf and r["outputs"]]
        failed = [f"{r['strategy']} on {r['cores']}: {r['failures'][-1].strip()}" for r in results["runs"]
                  if r["nf"] == nf and r["failures"]]
        if not runs:
            print(f"{nf}: nothing measured; {'; '.join(failed)}", file=sys.stderr)
            continue
        setup = Setup(nf, info["traffic"], tuple(Build(r["strategy"], r["cores"], Path(r["binary"]), Path(r["trace"]))
                                                 for r in runs), tuple(info["notes"] + failed), info["generic"],
                      info.get("shardable", False))
        per_core = runs[0]["packets"] // runs[0]["cores"]
        report = report_of(setup, per_core, [[parse_bench(o) for o in r["outputs"]] for r in runs])
        reports[nf] = BenchReport(nf, per_core, f"{report.traffic}; measured on another machine "
                                  f"({results['cpus']} CPUs)", report.results, report.notes, per_core=True)
    return reports


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
    parser.add_argument("--report", metavar="RESULTS", help="a bundle's results (run_bundle.py) to summarize")
    parser.add_argument("--packets-per-core", type=int, default=2_000_000, help="with --bundle")
    args = parser.parse_args()
    cores = tuple(sorted({int(c) for c in args.cores.split(",")}))
    nfs = _names(args.nfs, SAMPLES, "NFs")
    asked = _names(args.strategies, ("sn", "locks", "tm"), "strategies")
    out = Path(args.out) if args.out else None
    if args.bundle:
        return bundle(Path(args.bundle), nfs, cores, asked, args.packets_per_core, args.trace_packets, args.repeat)
    if args.report:
        try:
            results = json.loads(Path(args.report).read_text())
            reports = reports_of(results)
        except (OSError, ValueError, KeyError, TypeError, NfxError) as error:
            raise SystemExit(f"--report {args.report}: not the results of run_bundle.py ({error})") from None
        summarize(reports, out)
        return 0
    summarize({nf: bench(ROOT / "sample_nfs" / f"{nf}.c", cores, asked, args.packets, trace_packets=args.trace_packets,
                         repeat=args.repeat) for nf in nfs}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
