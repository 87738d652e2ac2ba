"""Sequential throughput of every sample NF: Mpps of nf_process with packets preloaded in memory.

Each NF is built with the sequential harness (explorer.build, kind "seq") and run in its
``--bench N`` mode: the trace is loaded once, then N packets are processed cycling over it (each
frame restored from a pristine copy before reuse; state is never reset). The figure is the median
of ``--runs`` runs. Traffic is seeded synthetic ("bidir": LAN clients and their WAN replies; the
load balancer gets "heartbeat" traffic aimed at its virtual IP). The verdict mix of one sequential
pass is shown too, so that a fast NF that drops everything stands out.

    .venv/bin/python benchmarks/bench_seq.py [--packets 5000000] [--runs 5] [--json] [nf ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer.build import build_nf  # noqa: E402
from explorer.run import encode_trace, run_trace  # noqa: E402
from explorer.traffic.generators import generate  # noqa: E402

# The traffic each NF is measured on: (kind, generator parameters).
TRAFFIC = {"lb": ("heartbeat", {"vip": "203.0.113.1", "heartbeat_port": 9999})}
DEFAULT_TRAFFIC = ("bidir", {})


def measure(nf: Path, trace_file: Path, packets: int, runs: int) -> list[float]:
    binary = build_nf(nf)
    rates = []
    for _ in range(runs):
        done = subprocess.run([str(binary), "--bench", str(packets), str(trace_file)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise SystemExit(f"{nf.name}: {done.stderr.strip()}")
        words = done.stdout.split()  # "bench: N packets in T s: R Mpps"
        rates.append(float(words[-2]))
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nfs", nargs="*", help="NF names (default: every sample_nfs/*.c)")
    parser.add_argument("--packets", type=int, default=5_000_000, help="packets per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trace-packets", type=int, default=100_000)
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    sources = sorted((ROOT / "sample_nfs").glob("*.c"))
    if args.nfs:
        sources = [s for s in sources if s.stem in args.nfs]
    rows = []
    with tempfile.TemporaryDirectory(prefix="nfx-bench-") as tmp:
        for nf in sources:
            kind, params = TRAFFIC.get(nf.stem, DEFAULT_TRAFFIC)
            trace = generate(kind, args.trace_packets, args.flows, seed=0, **params)
            trace_file = Path(tmp, f"{nf.stem}.bin")
            trace_file.write_bytes(encode_trace(trace))
            summary = run_trace(nf, trace).summary()
            rates = measure(nf, trace_file, args.packets, args.runs)
            rows.append({"nf": nf.stem, "traffic": kind, "mpps": statistics.median(rates),
                         "min": min(rates), "max": max(rates), "forwarded": summary["forwarded"],
                         "flooded": summary["flooded"], "dropped": summary["dropped"], "in": summary["in"]})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'nf':<9} {'traffic':<10} {'Mpps':>7} {'min':>7} {'max':>7}   verdicts of one pass")
    for r in rows:
        mix = f"{r['forwarded']} fwd, {r['flooded']} flood, {r['dropped']} drop of {r['in']}"
        print(f"{r['nf']:<9} {r['traffic']:<10} {r['mpps']:>7.2f} {r['min']:>7.2f} {r['max']:>7.2f}   {mix}")
    print(f"({args.runs} runs of {args.packets} packets each, median; trace of {args.trace_packets} "
          f"packets over {args.flows} flows, seed 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
