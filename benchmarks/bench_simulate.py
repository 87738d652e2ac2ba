"""Simulator throughput next to a plain numpy Toeplitz of the same packets, and peak memory.

    .venv/bin/python benchmarks/bench_simulate.py [--packets 10000000] [--nf fw ...] [--runs 3]
                                                  [--threads 1,0] [--rss 10000000,100000000]
                                                  [--flows-per-packet 0.1]
                                                  [--pcap-packets 20000000 [--pcap-dir DIR]]

Throughput: the same ``--packets`` bidir packets (LAN requests and their WAN replies, ``flows`` =
packets x 0.1, so the tables hold a million flows at 10M packets) are made once, in 1M-packet
chunks; then, alternately in the same process, (a) a plain numpy Toeplitz hashes each packet's
12-byte 4-tuple with one 256-entry table lookup per input byte (the textbook vectorised hash), and
(b) the simulator runs end to end: steering (hash, RETA, per-core counts), flows per core and the
violation check of every sharded object. Medians over ``--runs``; min-max shows the noise. The
simulator runs once per ``--threads`` setting in each run (0: one thread per CPU, the default),
so that its thread counts are compared within the same run too. Beside the wall-clock ratio, the
ratio of CPU seconds (the process's, all threads): on a machine other jobs load, wall times
spread with the share of the CPUs the process gets, CPU seconds much less.

Peak RSS: a fresh process streams ``--rss`` packets (generated chunk by chunk) through the
simulator and reports its own peak (``VmHWM``); the trace itself is never held.

Pcaps (``--pcap-packets``, off by default: 20M IMIX packets take 7.4 GB and ~2 minutes to
write): the same bidir traffic written with dpkt, chunk by chunk, as one pcap per device into a
temporary folder (deleted afterwards, also on Ctrl-C), then ``nfx simulate fw.c --in 0=... --in
1=...`` in a fresh process: its peak RSS, time and progress lines.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from explorer import pipeline  # noqa: E402
from explorer.rss.toeplitz import ToeplitzTable  # noqa: E402
from explorer.simulate import arena  # noqa: E402
from explorer.simulate.simulation import Simulation  # noqa: E402
from explorer.simulate.threads import default_threads  # noqa: E402
from explorer.traffic.generators import field_chunks  # noqa: E402

CHUNK = 1 << 20


def numpy_toeplitz(table: ToeplitzTable, fields) -> np.ndarray:
    """The plain vectorised hash: per input byte, extract it from its field and look it up."""
    out = None
    pos = 0
    for values, width in ((fields.src_ip, 4), (fields.dst_ip, 4), (fields.src_port, 2), (fields.dst_port, 2)):
        values = values.astype(np.uint32, copy=False)
        for b in range(width):
            part = table.tables[pos].take((values >> np.uint32(8 * (width - 1 - b))) & np.uint32(0xFF))
            out = part if out is None else out ^ part
            pos += 1
    return out


def throughput(name: str, packets: int, runs: int, flows: int, threads: tuple[int, ...] = (0,)) -> list[dict]:
    """One row per thread count (0: the default, one per CPU)."""
    solution = pipeline.solve(ROOT / "sample_nfs" / f"{name}.c", quality=False)
    chunks = list(field_chunks("bidir", packets, flows, seed=1, chunk_packets=CHUNK))
    table = ToeplitzTable(solution.plan.device(0).key, 12)
    for t in threads:  # numba kernels loaded (counting and report), threads started
        warm = Simulation(solution.analysis, solution.sharding, solution.plan, threads=t or None)
        warm.add(*chunks[0])
        warm.report()
    del warm
    base, sim, reports = [], {t: [] for t in threads}, {}
    base_cpu, sim_cpu = [], {t: [] for t in threads}
    for _ in range(runs):
        started, cpu = time.perf_counter(), time.process_time()
        for fields, _devices in chunks:
            numpy_toeplitz(table, fields)
        base.append(time.perf_counter() - started)
        base_cpu.append(time.process_time() - cpu)
        for t in threads:
            s = None
            arena.release()  # every run starts with fresh tables, as a user's run does
            started, cpu = time.perf_counter(), time.process_time()
            s = Simulation(solution.analysis, solution.sharding, solution.plan, threads=t or None)
            for fields, devices in chunks:
                s.add(fields, devices)
            reports[t] = s.report()
            sim[t].append(time.perf_counter() - started)
            sim_cpu[t].append(time.process_time() - cpu)
    if len({json.dumps(r.to_dict(), sort_keys=True) for r in reports.values()}) != 1:
        raise AssertionError(f"{name}: the report changed with the number of threads")
    b = statistics.median(base)
    rows = []
    for t in threads:
        m, report = statistics.median(sim[t]), reports[t]
        rows.append({"nf": name, "threads": t or default_threads(), "packets": packets, "flows": flows,
                     "numpy_mpps": packets / b / 1e6, "sim_mpps": packets / m / 1e6, "ratio": m / b,
                     "cpu_ratio": statistics.median(sim_cpu[t]) / statistics.median(base_cpu),
                     "numpy_s": (min(base), max(base)), "sim_s": (min(sim[t]), max(sim[t])),
                     "classes": report.classes, "checked_share": report.checked_packets / packets,
                     "violations": report.violation_count})
    return rows


def rss_child(packets: int, flows: int) -> None:
    solution = pipeline.solve(ROOT / "sample_nfs" / "fw.c", quality=False)
    started = time.perf_counter()
    s = Simulation(solution.analysis, solution.sharding, solution.plan)
    for fields, devices in field_chunks("bidir", packets, flows, seed=1, chunk_packets=CHUNK):
        s.add(fields, devices)
    report = s.report()
    print(json.dumps({"packets": report.packets, "classes": report.classes, "seconds": time.perf_counter() - started,
                      "max_rss_mb": peak_rss_mb()}))


def write_pcaps(folder: Path, packets: int, flows: int) -> dict[int, Path]:
    """The bidir trace as one pcap per device (dpkt's writer, nanosecond stamps), chunk by chunk."""
    import dpkt

    from explorer.traffic.generators import generate_chunks

    paths = {dev: folder / f"dev{dev}.pcap" for dev in (0, 1)}
    with contextlib.ExitStack() as stack:
        writers = {dev: dpkt.pcap.Writer(stack.enter_context(open(path, "wb")), nano=True)
                   for dev, path in paths.items()}
        for trace in generate_chunks("bidir", packets, flows, seed=1, chunk_packets=CHUNK):
            stamps = np.asarray(trace.timestamps, dtype=np.uint64).tolist()
            for ns, dev, frame in zip(stamps, np.asarray(trace.devices).tolist(), trace.frames):
                writers[dev].writepkt(frame, ns / 1e9)
    return paths


def pcap_child(folder: str) -> None:
    """``nfx simulate`` on the pcaps in ``folder``; its report goes nowhere, its peak to stdout."""
    from explorer.cli import main as nfx

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as report:
        code = nfx(["simulate", str(ROOT / "sample_nfs" / "fw.c"), "--in", f"0={folder}/dev0.pcap",
                    "--in", f"1={folder}/dev1.pcap"])
    print(json.dumps({"code": code, "seconds": time.perf_counter() - started, "max_rss_mb": peak_rss_mb(),
                      "report": report.getvalue().splitlines()[0] if report.getvalue() else ""}))


def pcap_rss(packets: int, flows: int, where: str | None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="nfx-bench-pcap-", dir=where))
    try:
        started = time.perf_counter()
        paths = write_pcaps(folder, packets, flows)
        size = sum(p.stat().st_size for p in paths.values())
        print(f"pcaps: {packets:,} bidir packets over {flows:,} flows, {size / 1e9:.1f} GB, written in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        done = subprocess.run([sys.executable, __file__, "--pcap-child", str(folder)], capture_output=True,
                              text=True, check=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    progress = [line for line in done.stderr.splitlines() if line.startswith("simulate:")]
    print(f"peak RSS, nfx simulate fw.c --in 0=dev0.pcap --in 1=dev1.pcap: {r['max_rss_mb']:.0f} MB, "
          f"{r['seconds']:.0f} s, {len(progress)} progress lines (last: {progress[-1] if progress else 'none'}); "
          f"{r['report']}", flush=True)


def peak_rss_mb() -> float:
    """This process's own peak resident memory. ``ru_maxrss`` would not do: Linux carries the
    parent's peak across fork and exec, so a child started by a big parent reports the parent's."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--flows-per-packet", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1,0", help="simulator thread counts to run, 0 for the default")
    parser.add_argument("--nf", action="append", default=[])
    parser.add_argument("--rss", default="10000000,100000000", help="packet counts for peak RSS ('' to skip)")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss-flows", type=int, default=1_000_000)
    parser.add_argument("--pcap-packets", type=int, default=0, help="also simulate this many packets from pcaps")
    parser.add_argument("--pcap-dir", help="where the pcaps are written (a temporary folder inside it)")
    parser.add_argument("--pcap-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.rss_flows)
        return
    if args.pcap_child:
        pcap_child(args.pcap_child)
        return
    flows = max(1, int(args.packets * args.flows_per_packet))
    threads = tuple(int(t) for t in args.threads.split(","))
    print(f"bidir traffic, {args.packets:,} packets, {flows:,} flows, median of {args.runs} (min-max seconds), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'nf':<5} {'threads':>7} {'numpy Toeplitz Mpps':>20} {'simulator Mpps':>15} {'sim/numpy time':>15} "
          f"{'CPU s ratio':>12} {'classes':>10} {'checked':>8} {'violations':>10}  noise")
    for name in args.nf or ["fw", "nat", "pol", "psd", "cl"]:
        for r in throughput(name, args.packets, args.runs, flows, threads):
            print(f"{name:<5} {r['threads']:>7} {r['numpy_mpps']:>20.1f} {r['sim_mpps']:>15.1f} {r['ratio']:>14.2f}x "
                  f"{r['cpu_ratio']:>11.2f}x {r['classes']:>10,} {100 * r['checked_share']:>7.0f}% {r['violations']:>10}  "
                  f"numpy {r['numpy_s'][0]:.2f}-{r['numpy_s'][1]:.2f}s, sim {r['sim_s'][0]:.2f}-{r['sim_s'][1]:.2f}s",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}", flush=True)
    for packets in [int(p) for p in args.rss.split(",") if p.strip()]:
        done = subprocess.run([sys.executable, __file__, "--rss-child", str(packets), "--rss-flows",
                               str(args.rss_flows)], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"peak RSS, fw, {packets:,} bidir packets over {args.rss_flows:,} flows streamed in "
              f"{CHUNK:,}-packet chunks: {r['max_rss_mb']:.0f} MB ({r['classes']:,} classes, {r['seconds']:.0f} s "
              "with generation)", flush=True)
    if args.pcap_packets:
        pcap_rss(args.pcap_packets, args.rss_flows, args.pcap_dir)


if __name__ == "__main__":
    main()
