"""Throughput of the traffic stage on one core, in M packets/s (median of R runs): the fields-only
generator path, building frames, extracting fields from frames, and writing and reading a pcap.
Run: ``python benchmarks/bench_traffic.py [--packets N] [--repeat R] [--kind KIND]``."""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from explorer.traffic.field_arrays import extract_fields
from explorer.traffic.generators import generate, generate_fields
from explorer.traffic.pcap import read_pcap, write_pcap


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kind", default="uniform")
    args = parser.parse_args()
    n, kind = args.packets, args.kind

    def report(what: str, seconds: float) -> None:
        print(f"{what:<28} {n / seconds / 1e6:6.2f} Mpps  ({seconds:.3f} s for {n} packets)")

    print(f"traffic kind {kind!r}, {n} packets, {args.flows} flows, median of {args.repeat}")
    report("generate_fields (no bytes)",
           _median_seconds(lambda: generate_fields(kind, n, args.flows, seed=1), args.repeat))
    report("generate (frames)", _median_seconds(lambda: generate(kind, n, args.flows, seed=1), args.repeat))
    trace = generate(kind, n, args.flows, seed=1)
    report("extract_fields", _median_seconds(lambda: extract_fields(trace.frames), args.repeat))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.pcap"
        report("write_pcap", _median_seconds(lambda: write_pcap(path, trace.timestamps, trace.frames),
                                             args.repeat))
        report("read_pcap", _median_seconds(lambda: read_pcap(path), args.repeat))
        print(f"pcap size: {path.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
