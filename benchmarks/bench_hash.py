"""Throughput of the numpy Toeplitz hash on one core: M hashes/s for 1 M IPv4 4-tuples, median of 5,
for ``hash_rows`` (wire bytes) and ``hash_fields`` (per-field arrays), plus the key solver's time
per problem. Run: ``python benchmarks/bench_hash.py [--tuples N] [--repeat R]``."""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from explorer.rss.hash_input import FIELD_BITS, FIELD_NAMES
from explorer.rss.nic import nic_profile
from explorer.rss.problem import KeyProblem, PairConstraint
from explorer.rss.key_solver import solve_keys
from explorer.rss.toeplitz import ToeplitzTable, hash_fields, hash_rows


def _median_rate(fn, count: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return count / statistics.median(times) / 1e6


def _firewall_problem(nic: str, seed: int) -> KeyProblem:
    swap = {"src_ip": "dst_ip", "dst_ip": "src_ip", "src_port": "dst_port", "dst_port": "src_port"}
    equal = tuple(((f, i), (swap[f], i)) for f in FIELD_NAMES for i in range(FIELD_BITS[f]))
    c = PairConstraint(0, 1, equal, "flows: lan ~ wan")
    return KeyProblem(devices=(0, 1), constraints=(c,), hashed=((0, FIELD_NAMES), (1, FIELD_NAMES)),
                      nic=nic_profile(nic), cores=16, seed=seed)


def _policer_problem(nic: str, seed: int) -> KeyProblem:
    c = PairConstraint(1, 1, tuple((("dst_ip", i), ("dst_ip", i)) for i in range(32)), "buckets: wan dst")
    hashed = ((0, FIELD_NAMES), (1, FIELD_NAMES if nic == "82599" else ("dst_ip",)))
    return KeyProblem(devices=(0, 1), constraints=(c,), hashed=hashed, nic=nic_profile(nic), cores=16, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tuples", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.tuples
    rng = np.random.default_rng(0)
    key = bytes(rng.integers(0, 256, 52, dtype=np.uint8))
    table = ToeplitzTable(key, 12)
    rows = rng.integers(0, 256, (n, 12), dtype=np.uint8)
    arrays = {"src_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
              "dst_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
              "src_port": rng.integers(0, 2**16, n, dtype=np.uint16),
              "dst_port": rng.integers(0, 2**16, n, dtype=np.uint16)}
    hash_rows(table, rows[:1000])  # warm up
    print(f"hash_rows:   {_median_rate(lambda: hash_rows(table, rows), n, args.repeat):6.1f} M hashes/s "
          f"({n} IPv4 4-tuples, median of {args.repeat})")
    print(f"hash_fields: {_median_rate(lambda: hash_fields(table, FIELD_NAMES, arrays), n, args.repeat):6.1f} "
          f"M hashes/s (prebuilt table)")
    print(f"hash_fields: {_median_rate(lambda: hash_fields(key, FIELD_NAMES, arrays), n, args.repeat):6.1f} "
          f"M hashes/s (table built per call)")
    for name, make in (("firewall", _firewall_problem), ("policer", _policer_problem)):
        for nic in ("e810", "82599"):
            times = []
            for seed in range(args.repeat):
                started = time.perf_counter()
                solve_keys(make(nic, seed))
                times.append(time.perf_counter() - started)
            print(f"solve_keys {name:<8} {nic:<5}: median {statistics.median(times) * 1000:5.1f} ms, "
                  f"max {max(times) * 1000:5.1f} ms over {args.repeat} seeds")


if __name__ == "__main__":
    main()
