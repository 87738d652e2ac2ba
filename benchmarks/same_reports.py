"""Simulator reports of one checkout, many configurations, as JSON: run it on two checkouts and
compare, field by field, to show that a change to the simulator changed no report.

    .venv/bin/python benchmarks/same_reports.py --root /work/main --out main.json
    .venv/bin/python benchmarks/same_reports.py --root . --out mine.json [--threads 1]
    .venv/bin/python benchmarks/same_reports.py --compare main.json mine.json

``--root`` is the checkout whose ``explorer`` is imported (it is put first on ``sys.path``; the
script itself never imports this checkout's). Configurations: every sample NF that simulates
(fw, nat, pol, psd, cl, lb) x strategy auto and locks x traffic bidir, uniform, zipf (rebalanced),
scan, mixed (rebalanced) x the solved keys, a broken key on the last device, and every device
broken with all four fields hashed x chunks of 1M and of 1,237 packets (tables grow mid-chunk);
with ``--part-classes N`` the report passes over parts of N classes (where the checkout has them);
with ``--threads N`` the classes are counted by N threads even in small chunks (where it can).
Bytecode and numba's cache go to a temporary folder, so the other checkout is only read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

NFS = ("fw", "nat", "pol", "psd", "cl", "lb")
STRATEGIES = ("auto", "locks")
TRAFFIC = (("bidir", False), ("uniform", False), ("zipf", True), ("scan", False), ("mixed", True))
CHUNKS = (1 << 20, 1237)
KEYS = ("solved", "broken", "all-broken")
PACKETS, FLOWS = 20_000, 2_000


def _broken(solution, which: str):
    """``(keys, fields)`` for ``simulate``: a seeded random key on the last device, or on every
    device with all four fields hashed."""
    import numpy as np

    from explorer.wire import RSS_NAMES

    devices = [d.device for d in solution.plan.devices]
    rng = np.random.default_rng(7)
    chosen = devices[-1:] if which == "broken" else devices
    keys = {d: rng.integers(0, 256, len(solution.plan.device(d).key), dtype=np.uint8).tobytes() for d in chosen}
    fields = {d: tuple(RSS_NAMES) for d in chosen} if which == "all-broken" else None
    return keys, fields


def reports(root: str, part_classes: int | None, threads: int | None, nfs: tuple[str, ...]) -> dict[str, dict]:
    sys.path.insert(0, str(Path(root).resolve()))
    from explorer import pipeline
    import explorer.simulate.simulation as simulation

    assert Path(simulation.__file__).resolve().is_relative_to(Path(root).resolve()), simulation.__file__
    if part_classes is not None:
        simulation._PART_CLASSES = part_classes
    if threads is not None:
        import explorer.simulate.classes as classes

        classes.default_threads = simulation.default_threads = lambda: threads
        classes._SERIAL_ROWS = 0  # threads even for chunks of 1,237 packets
    out = {}
    for nf in nfs:
        for strategy in STRATEGIES:
            solution = pipeline.solve(Path(root) / "sample_nfs" / f"{nf}.c", strategy=strategy, quality=False)
            for keys_kind in KEYS:
                keys, fields = (None, None) if keys_kind == "solved" else _broken(solution, keys_kind)
                for kind, rebalance in TRAFFIC:
                    for chunk in CHUNKS:
                        name = f"{nf}/{strategy}/{solution.strategy}/{keys_kind}/{kind}/{chunk}"
                        report = pipeline.simulate(solution, kind, PACKETS, FLOWS, seed=3, keys=keys, fields=fields,
                                                   rebalance=rebalance, chunk_packets=chunk)
                        out[name] = dict(report.to_dict(), classes=report.classes,
                                         checked_packets=report.checked_packets)
                print(f"{nf} {strategy} {keys_kind}: done", file=sys.stderr, flush=True)
    return out


def differences(a: dict, b: dict, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in one" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{where}/{k}")
        return out
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="the checkout to import")
    parser.add_argument("--out", help="where to write its reports (JSON)")
    parser.add_argument("--part-classes", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--nf", action="append", default=[])
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = parser.parse_args()
    if args.compare:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        found = differences(a, b)
        for line in found[:40]:
            print(line)
        print(f"{len(a)} and {len(b)} configurations, {len(found)} differences")
        sys.exit(1 if found or not a else 0)
    with tempfile.TemporaryDirectory(prefix="nfx-same-reports-") as scratch:
        os.environ.setdefault("NUMBA_CACHE_DIR", scratch)
        sys.pycache_prefix = scratch
        out = reports(args.root, args.part_classes, args.threads, tuple(args.nf) or NFS)
    Path(args.out).write_text(json.dumps(out, indent=0, sort_keys=True))
    print(f"{len(out)} configurations written to {args.out}")


if __name__ == "__main__":
    main()
