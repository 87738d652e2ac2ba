"""Peak memory per synthetic packet, the figures behind ``explorer.limits.FRAME_BYTES`` and
``FIELD_BYTES``: each measurement runs in a fresh Python process (peak RSS from getrusage), minus
the same process's peak without the work, divided by the packet count.

    .venv/bin/python benchmarks/bench_memory.py [--packets 400000]
"""
from __future__ import annotations

import argparse
import subprocess
import sys

PROBE = """
import resource, sys
from explorer.traffic.generators import generate, generate_fields
from explorer.traffic.pcap import write_trace
import tempfile
kind, what, packets = sys.argv[1], sys.argv[2], int(sys.argv[3])
if packets:
    if what == "frames":
        trace = generate(kind, packets=packets, flows=max(1, packets // 10))
        with tempfile.TemporaryDirectory() as folder:
            write_trace(trace, folder)
    else:
        generate_fields(kind, packets=packets, flows=max(1, packets // 10))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak(kind: str, what: str, packets: int) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE, kind, what, str(packets)], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=400_000)
    args = parser.parse_args()
    for what in ("frames", "fields"):
        for kind in ("uniform", "bidir", "mixed", "churn"):
            base = peak(kind, what, 0)
            used = peak(kind, what, args.packets) - base
            print(f"{what:6} {kind:8} {used / args.packets:7.0f} bytes per packet ({args.packets} packets)")


if __name__ == "__main__":
    main()
