"""Scaling of the generated parallel builds (issue 5): Mpps per strategy and core count next to the
sequential build, measured in one run, packets preloaded in memory.

    python benchmarks/bench_parallel.py [--cores 1,2] [--packets N] [--out DIR]
        measures here and prints the ratios the issue asks for: sn at 2 cores and at 1 core over seq
        for fw, nat, pol, psd and cl; locks at 2 cores over seq on read-heavy traffic (bridge, lb);
    python benchmarks/bench_parallel.py --bundle DIR --cores 1,2,4,8,16
        builds every replay binary, the traces and the DPDK libraries they need into DIR, with
        DIR/run_bundle.py (Python standard library only) to measure on another x86-64 machine:
        LD_LIBRARY_PATH=DIR/lib python3 DIR/run_bundle.py > results.json

Traffic: 64-byte frames; uniform flows, packets / 20 of them, so that 95% of the packets of the
trace's first pass belong to known flows (later laps of the trace: all of them); lb gets its own
traffic (clients of its virtual IP and backend heartbeats).
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
from explorer.bench.measure import bench  # noqa: E402
from explorer.codegen.compile import build_program  # noqa: E402
from explorer.codegen.planning import parallel_plan  # noqa: E402
from explorer.codegen.project import write_project  # noqa: E402
from explorer.run import encode_trace  # noqa: E402
from explorer.traffic.generators import generate  # noqa: E402

SHARED_NOTHING = ("fw", "nat", "pol", "psd", "cl")
LOCKED = ("bridge", "lb")
LB_TRAFFIC = {"kind": "heartbeat", "size": 64, "vip": "203.0.113.1", "heartbeat_port": 9999}
UNIFORM = {"kind": "uniform", "size": 64}


def traffic_of(nf: str) -> dict:
    return dict(LB_TRAFFIC if nf == "lb" else UNIFORM)


def measure_here(cores: tuple[int, ...], packets: int, trace_packets: int, repeat: int, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for nf in SHARED_NOTHING + LOCKED:
        strategies = ("sn",) if nf in SHARED_NOTHING else ("locks", "tm")
        report = bench(ROOT / "sample_nfs" / f"{nf}.c", cores, strategies, packets, traffic=traffic_of(nf),
                       trace_packets=trace_packets, repeat=repeat)
        print(report.render(), flush=True)
        (out / f"{nf}.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
        (out / f"{nf}.svg").write_text(report.svg())
        for strategy in strategies:
            for count in cores:
                lines.append(f"{nf:<7}{strategy:<6}{count:>3} cores {report.speedup(strategy, count):6.2f}x seq")
    print("\n".join(["", "ratios over seq, same run:"] + lines))
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
    samples = []
    for k in range(plan["repeat"]):
        argv = [os.path.join(HERE, run["binary"]), "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                "--log-level=error", "-m", str(512 + 128 * cores), *placement,
                "--file-prefix=nfxb%d_%d" % (len(results), k), "--", "--bench", str(run["packets"]),
                os.path.join(HERE, run["trace"])]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        line = [l for l in done.stdout.splitlines() if l.startswith("bench: ")]
        if done.returncode != 0 or not line:
            print("FAILED", run, done.returncode, done.stderr[-500:], file=sys.stderr, flush=True)
            break
        samples.append(float(line[0].split(": ")[-1].split(" Mpps")[0]))
    row = dict(run, samples=samples, mpps=max(samples) if samples else None)
    results.append(row)
    print(json.dumps(row), file=sys.stderr, flush=True)
print(json.dumps({"cpus": len(cpus), "results": results}, indent=1))
'''


def bundle(folder: Path, cores: tuple[int, ...], packets_per_core: int, trace_packets: int, repeat: int) -> int:
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("bin", "lib", "traces"):
        (folder / sub).mkdir(parents=True)
    traces = {}
    for name, spec in (("uniform", UNIFORM), ("heartbeat", LB_TRAFFIC)):
        params = {k: v for k, v in spec.items() if k != "kind"}
        trace = generate(spec["kind"], packets=trace_packets, flows=trace_packets // 20, seed=0, **params)
        (folder / "traces" / f"{name}.bin").write_bytes(encode_trace(trace))
        traces[name] = f"traces/{name}.bin"
    runs = []
    work = folder / "projects"
    binaries = []
    for nf in SHARED_NOTHING + LOCKED:
        source = f"sample_nfs/{nf}.c"
        auto = pipeline.solve(source, cores=max(cores))
        locks = pipeline.solve(source, cores=max(cores), strategy="locks")
        configs = [("seq", 1, auto)]
        for strategy in (("sn",) if nf in SHARED_NOTHING else ("locks", "tm")):
            configs += [(strategy, c, auto if strategy == "sn" else locks) for c in cores]
        for strategy, count, solution in configs:
            project = write_project(parallel_plan(solution, strategy, count), work / f"{nf}-{strategy}-{count}")
            binary = build_program(project, "replay")
            target = folder / "bin" / f"{nf}-{strategy}-{count}"
            shutil.copy2(binary, target)
            binaries.append(target)
            runs.append({"nf": nf, "strategy": strategy, "cores": count, "binary": f"bin/{target.name}",
                         "trace": traces["heartbeat" if nf == "lb" else "uniform"],
                         "packets": packets_per_core * count})
    shutil.rmtree(work)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", default="1,2")
    parser.add_argument("--packets", type=int, default=4_000_000, help="packets per measurement (here)")
    parser.add_argument("--trace-packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--bundle", metavar="DIR")
    parser.add_argument("--packets-per-core", type=int, default=2_000_000, help="with --bundle")
    args = parser.parse_args()
    cores = tuple(sorted({int(c) for c in args.cores.split(",")}))
    if args.bundle:
        return bundle(Path(args.bundle), cores, args.packets_per_core, args.trace_packets, args.repeat)
    return measure_here(cores, args.packets, args.trace_packets, args.repeat, Path(args.out))


if __name__ == "__main__":
    sys.exit(main())
