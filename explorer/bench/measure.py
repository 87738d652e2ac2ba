"""``bench``: Mpps of the generated builds, per strategy and core count, next to the sequential build
measured in the same run, packets preloaded in memory (the replay harness's ``--bench``).

Every measurement runs the project's replay harness: one untimed warm-up lap of the trace (every
packet in trace order, so the timed laps start from the state a sequential run leaves), then each
core processes its own RSS queue of the trace again and again (times shifted by one trace span per
lap). The rate is all timed packets over the time from the first core's start to the last core's
end, so an imbalanced split costs what it would on a NIC. Each configuration is measured ``repeat``
times; the median is reported with every sample (the spread says how noisy the machine was), and
so are, over the timed packets: the share per verdict (a drop-path figure never passes for a
forwarding one), the share of packets that took the write lock (locks, tm), and per core its
packets, busy time and CPU time (so that a loss can be attributed to imbalance, waiting or a
CPU shared with other work). The builds are measured in rounds (every build once, then again), so
that a slow spell of a shared machine hits all of them alike.
"""
from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from explorer.bench.launch import check_cores, program_error, run_dpdk
from explorer.bench.plot import scaling_svg
from explorer.bench.loop import closed_loop
from explorer.bench.traffic import KNOWN_MAIN_PATH, LAP_PER_CORE, Spec, looped, open_loop, traffic_for
from explorer.codegen.compile import build_program
from explorer.codegen.planning import STRATEGIES, parallel_plan
from explorer.codegen.project import write_project
from explorer.errors import ConfigError, GenerateError, RunError
from explorer.run import encode_trace
from explorer.traffic.trace import Trace
from explorer.verify.equivalence import rewrites
from explorer.wire import MIN_FRAME, reaching_the_nf
from explorer.wording import count

VERDICTS = ("forwarded", "dropped", "flooded", "runts")


@dataclass(frozen=True)
class CoreLoad:
    """One core's share of a measurement: timed packets, wall time less waits for slower cores, and
    its thread's CPU time (below busy when the CPU also ran other work)."""

    core: int
    packets: int
    busy_s: float
    cpu_s: float
    waited_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"core": self.core, "packets": self.packets, "busy_s": self.busy_s, "cpu_s": self.cpu_s,
                "waited_s": self.waited_s}


@dataclass(frozen=True)
class Sample:
    """One run of ``nfx-replay --bench``."""

    mpps: float
    packets: int
    seconds: float
    writes: int
    verdicts: tuple[tuple[str, int], ...]  # VERDICTS order
    cores: tuple[CoreLoad, ...]
    lock: str = ""
    cells: int = 0


def parse_bench(stdout: str) -> Sample:
    """The replay's --bench report: "bench: N packets in T s: R Mpps (...)" and one "core C: name
    value, ..." line per core."""
    head = [ln for ln in stdout.splitlines() if ln.startswith("bench: ") and " Mpps" in ln]
    if not head:
        raise RunError(f"the benchmark printed no rate: {stdout.strip()[-300:]}")
    words = head[0].split()
    packets, seconds, mpps = int(words[1]), float(words[4]), float(words[6])
    cores, totals, lock = [], dict.fromkeys(("writes", "cells") + VERDICTS, 0), ""
    for line in stdout.splitlines():
        if line.startswith("lock: "):
            lock = line[len("lock: "):]
        if not line.startswith("core "):
            continue
        name, _, rest = line.partition(": ")
        values = {k: float(v) for k, v in (part.rsplit(" ", 1) for part in rest.split(", "))}
        cores.append(CoreLoad(int(name.split()[1]), int(values["packets"]), values["busy"], values["cpu"],
                              values["waited"]))
        for key in totals:
            totals[key] += int(values[key])
    return Sample(mpps, packets, seconds, totals["writes"], tuple((v, totals[v]) for v in VERDICTS), tuple(cores),
                  lock, totals["cells"])


@dataclass(frozen=True)
class BenchResult:
    strategy: str
    cores: int
    mpps: float  # the median sample's
    samples: tuple[float, ...]
    packets: int = 0  # timed packets of the median sample
    writes: int = 0  # of them, how many took the write lock
    verdicts: tuple[tuple[str, int], ...] = ()
    per_core: tuple[CoreLoad, ...] = ()
    note: str = ""
    cells: int = 0  # of them, how many wrote vector cells under cell locks in a reader pass

    @property
    def write_share(self) -> float:
        return self.writes / self.packets if self.packets else 0.0

    @property
    def cell_share(self) -> float:
        return self.cells / self.packets if self.packets else 0.0

    def share(self, verdict: str) -> float:
        return dict(self.verdicts).get(verdict, 0) / self.packets if self.packets else 0.0

    @property
    def split_bound(self) -> float:
        """The most over one core that this split of the packets over the cores allows: all packets
        over the busiest core's (the traffic's skew and RSS decide it, not the build)."""
        busiest = max((c.packets for c in self.per_core), default=0)
        return sum(c.packets for c in self.per_core) / busiest if busiest else 0.0

    @property
    def core_rate(self) -> float:
        """The cores' mean rate while busy, packets per second."""
        rates = [c.packets / c.busy_s for c in self.per_core if c.busy_s > 0]
        return sum(rates) / len(rates) if rates else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "cores": self.cores, "mpps": self.mpps, "samples": list(self.samples),
                "packets": self.packets, "writes": self.writes, "write_share": round(self.write_share, 6),
                "cells": self.cells, "cell_share": round(self.cell_share, 6),
                "verdicts": dict(self.verdicts),
                "verdict_shares": {v: round(self.share(v), 6) for v in VERDICTS},
                "per_core": [c.to_dict() for c in self.per_core], "note": self.note}


@dataclass(frozen=True)
class BenchReport:
    nf: str
    packets: int
    traffic: str
    results: tuple[BenchResult, ...]
    notes: tuple[str, ...] = field(default=())
    per_core: bool = False  # ``packets`` counts per core (a build on C cores timed C times as many)

    def result(self, strategy: str, cores: int) -> BenchResult:
        for r in self.results:
            if r.strategy == strategy and r.cores == cores:
                return r
        raise KeyError((strategy, cores))

    def core_speed(self, result: BenchResult) -> float:
        """``result``'s cores' rate while busy over its strategy's 1-core rate (0 when that was not
        measured): below 1 when cores slow each other down (caches, memory, locks, a busy host)."""
        one = next((r for r in self.results if r.strategy == result.strategy and r.cores == 1), None)
        return result.core_rate / one.core_rate if one is not None and one.core_rate else 0.0

    def speedup(self, strategy: str, cores: int) -> float:
        """Mpps of ``strategy`` on ``cores`` over the sequential build's."""
        seq = self.result("seq", 1).mpps
        return self.result(strategy, cores).mpps / seq if seq else 0.0

    def _seq(self) -> float:
        return next((r.mpps for r in self.results if r.strategy == "seq"), 0.0)

    def to_dict(self) -> dict[str, Any]:
        seq = self._seq()
        return {"nf": self.nf, "packets": self.packets, "traffic": self.traffic,
                "results": [dict(r.to_dict(), speedup=round(r.mpps / seq, 3) if seq else None,
                                 split_bound=round(r.split_bound, 3), core_speed=round(self.core_speed(r), 3))
                            for r in self.results],
                "notes": list(self.notes)}

    def render(self) -> str:
        seq = self._seq()
        lines = [f"{self.nf}: {self.packets} timed packets per {'core' if self.per_core else 'measurement'} after a "
                 f"warm-up lap; {self.traffic}",
                 f"  {'strategy':<8} {'cores':>5} {'Mpps':>8} {'x seq':>6} {'writes':>7} {'cells':>7}  "
                 f"{'forwarded':>9} {'dropped':>7} {'flooded':>7}  samples; per core: packets (busy s, cpu s)"]
        for r in self.results:
            ratio = f"{r.mpps / seq:.2f}x" if seq and r.strategy != "seq" else ""
            locked = r.strategy in ("locks", "tm")
            writes = f"{100 * r.write_share:.2f}%" if locked else "-"
            cells = f"{100 * r.cell_share:.2f}%" if locked else "-"
            samples = " ".join(f"{s:.2f}" for s in r.samples)
            per_core = "; ".join(f"{c.packets} ({c.busy_s:.3f}, {c.cpu_s:.3f})" for c in r.per_core)
            lines.append(f"  {r.strategy:<8} {r.cores:>5} {r.mpps:>8.3f} {ratio:>6} {writes:>7} {cells:>7}  "
                         f"{100 * r.share('forwarded'):>8.1f}% {100 * r.share('dropped'):>6.1f}% "
                         f"{100 * r.share('flooded'):>6.1f}%  [{samples}]; {per_core}")
            if r.cores > 1 and r.per_core:
                speed = self.core_speed(r)
                busy = sum(c.busy_s for c in r.per_core)
                stolen = 1 - sum(c.cpu_s for c in r.per_core) / busy if busy else 0.0
                lines.append(f"      the split of packets over the cores allows at most {r.split_bound:.2f}x one core"
                             + (f"; each core ran at {100 * speed:.0f}% of its 1-core rate while busy" if speed else "")
                             + (f", and other work held their CPUs {100 * stolen:.0f}% of that time" if stolen > 0.1
                                else ""))
            if r.note:
                lines.append(f"      {r.note}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def svg(self) -> str:
        return scaling_svg(f"{self.nf}: Mpps per core count", [r.to_dict() for r in self.results])


def bench_trace(packets: int, traffic: Spec = None, seed: int = 0, nf: str = "") -> tuple[Trace, str]:
    """A bench trace: ``packets`` packets of ``traffic`` (a generator kind or a spec ``{"kind": ...,
    parameter: value}``; by default the NF's main-path traffic), 64-byte frames over packets / 20
    flows unless the spec says otherwise."""
    spec = traffic_for(nf, traffic, packets, seed)
    return open_loop(spec), spec.describe()


def _run_once(binary: Path, cores: int, trace_file: Path, packets: int, timeout: float, nf: str | Path) -> Sample:
    done = run_dpdk(binary, cores, ["--bench", str(packets), str(trace_file)], pin=True, tag="bench", timeout=timeout)
    if done.returncode != 0:
        raise RunError(f"{nf}: {program_error(done, 'nfx-replay')}")
    return parse_bench(done.stdout)


def _result(strategy: str, cores: int, samples: Sequence[Sample]) -> BenchResult:
    ordered = sorted(samples, key=lambda s: s.mpps)
    median = ordered[(len(ordered) - 1) // 2]
    note = f"lock: {median.lock}" if strategy in ("locks", "tm") else ""
    return BenchResult(strategy, cores, round(statistics.median(s.mpps for s in samples), 4),
                       tuple(round(s.mpps, 4) for s in samples), median.packets, median.writes, median.verdicts,
                       median.cores, note, median.cells)


def wanted_strategies(strategies: Sequence[str], solved: str, replicated: bool = False) -> tuple[str, ...]:
    """seq first, then the strategies asked for (the solver's when none is, and locks next to an sn
    build with replicated objects: what replication buys): ``--strategy seq`` alone measures only seq."""
    for s in strategies:
        if s not in STRATEGIES:
            raise ConfigError(f"unknown strategy {s!r}: choose from {', '.join(STRATEGIES)}")
    chosen = list(dict.fromkeys(strategies))
    if not chosen:
        chosen = ["seq", {"shared-nothing": "sn"}.get(solved, solved)] + (["locks"] if replicated else [])
    return ("seq",) + tuple(s for s in chosen if s != "seq")


@dataclass(frozen=True)
class Build:
    """One measured configuration: its replay program and the trace it cycles over."""

    strategy: str
    cores: int
    binary: Path
    trace: Path


@dataclass(frozen=True)
class Setup:
    """What ``prepare`` made: the builds to measure, what their traffic is, and notes on them."""

    nf: str
    traffic: str
    builds: tuple[Build, ...]
    notes: tuple[str, ...]
    generic: bool  # default traffic for an NF nfx knows no main path of
    shardable: bool = False  # the solver found a shared-nothing plan


def prepare(nf: str | Path, folder: Path, cores: Sequence[int] = (1, 2), strategies: Sequence[str] = (),
            packets: int = 1_000_000, defines: Optional[Mapping[str, str]] = None, traffic: Spec = None,
            trace_packets: Optional[int] = None, seed: int = 0, nic: str = "e810", replication: str = "lagged",
            replies: Optional[bool] = None, captured: Optional[Trace] = None, captured_name: str = "") -> Setup:
    """Build ``nf``'s replay programs and write their traces in ``folder``, as ``bench`` measures them
    (its arguments); also what ``benchmarks/bench_parallel.py --bundle`` carries to another machine."""
    from explorer import pipeline

    if not cores:
        raise ConfigError("no core count to measure")
    cores = tuple(sorted({check_cores(c) for c in cores}))
    analysis = pipeline.analyze(nf, defines)
    base = pipeline.solve(analysis, cores=max(cores), seed=seed, nic=nic, quality=False)
    replicated = bool(base.sharding.replicated)
    order = wanted_strategies(strategies, base.strategy, replicated)
    if traffic is None and replicated:
        from explorer.sharding.writers import writer_traffic
        traffic = writer_traffic(analysis, base.sharding)
    if replies is None:
        replies = rewrites(base)
    builds, notes = [], []
    refused: list[GenerateError] = []
    generic = False
    if captured is not None:
        if not len(captured):
            raise ConfigError("the captures hold no packet to measure")
        runts = len(captured) - int(reaching_the_nf(captured.frames).sum())
        if runts == len(captured):
            raise ConfigError(f"none of the captures' {len(captured)} packets reaches the NF: each is shorter than an "
                              f"Ethernet header ({MIN_FRAME} bytes), and the runtime drops such runts unseen")
        trace, copies = looped(captured, max(cores))
        described = f"the captures {captured_name}: {count(len(captured), 'packet')} as captured"
        if runts:
            described += f" ({runts} of them runts, dropped before the NF: in no verdict's share)"
        if copies > 1:
            described += (f", repeated {copies} times in each lap (a lap of fewer than {LAP_PER_CORE} packets per "
                          f"core measures the cores' waits at its end more than the NF)")
    else:
        spec = traffic_for(analysis.nf, traffic, trace_packets or min(packets, 200_000), seed)
        pipeline.check_generated(analysis, spec.kind, "give its traffic with --in 0=PCAP")
        described = spec.describe()
        trace = open_loop(spec)
        generic = traffic is None and analysis.nf not in KNOWN_MAIN_PATH
    described += ", with replies to what each build forwards" if replies else ""
    shared = folder / "trace.bin"
    shardable = base.strategy == "shared-nothing"
    for strategy in order:
        try:
            # locks and tm are correct with any steering; where the NF shards, they keep the
            # shared-nothing keys, which keep each flow (both directions) on one core.
            solution = base if strategy in ("seq", "sn") or shardable else pipeline.solve(
                analysis, cores=max(cores), seed=seed, nic=nic, strategy=strategy, quality=False)
            for n in (1,) if strategy == "seq" else cores:
                project = write_project(parallel_plan(solution, strategy, n, replication),
                                        folder / f"{strategy}-{n}")
                path = shared
                if replies:
                    measured, shares = closed_loop(project, trace)
                    notes.append(f"{strategy} on {count(n, 'core')}: {shares.text()}")
                    path = folder / f"trace-{strategy}-{n}.bin"
                    path.write_bytes(encode_trace(measured))
                elif not shared.exists():
                    shared.write_bytes(encode_trace(trace))
                builds.append(Build(strategy, n, build_program(project, "replay"), path))
        except GenerateError as error:
            notes.append(f"{strategy}: {error}")
            refused.append(error)
    if not builds:  # nothing to measure is a failure, not an empty report
        raise refused[0] if refused else ConfigError(f"{nf}: no build to measure")
    asked = set(strategies) - {"seq"}
    if asked and refused and not any(b.strategy in asked for b in builds):  # a seq figure alone answers nothing asked
        raise refused[0]
    return Setup(analysis.nf, described, tuple(builds), tuple(notes), generic, shardable)


def report_of(setup: Setup, packets: int, samples: Sequence[Sequence[Sample]]) -> BenchReport:
    """The report of ``setup``'s builds from their ``samples`` (one list per build, in its order)."""
    results = [_result(b.strategy, b.cores, runs) for b, runs in zip(setup.builds, samples)]
    notes = list(setup.notes)
    drop_heavy = [f"{r.strategy} on {r.cores}" for r in results if r.share("dropped") > 0.5]
    if drop_heavy:
        notes.append(f"most packets were dropped ({', '.join(drop_heavy)}): those figures measure the drop "
                     "path; choose --traffic (or --in) that the NF forwards to measure its main path")
    for r in results:
        one = next((o for o in results if o.strategy == r.strategy and o.cores == 1), None)
        if r.strategy in ("locks", "tm") and r.cores > 1 and one is not None and r.mpps < one.mpps \
                and r.write_share >= 0.05:
            notes.append(f"{r.strategy} on {r.cores} cores ran slower than on one ({r.mpps:.2f} < {one.mpps:.2f} Mpps): "
                         f"{100 * r.write_share:.0f}% of the packets took the write lock, and while one does, the "
                         "other cores wait; " + (f"{setup.nf} shards, and its sn build takes no lock" if setup.shardable
                                                 else "this traffic writes too often for one lock to scale"))
    if setup.generic:
        notes.append(f"{setup.nf} is not a sample NF, so this generic traffic may miss its main path: "
                     "check the verdict shares, and measure with --traffic or --in on the traffic it is for")
    return BenchReport(setup.nf, packets, setup.traffic, tuple(results), tuple(notes))


def bench(nf: str | Path, cores: Sequence[int] = (1, 2), strategies: Sequence[str] = (), packets: int = 1_000_000,
          defines: Optional[Mapping[str, str]] = None, traffic: Spec = None, trace_packets: Optional[int] = None,
          repeat: int = 3, seed: int = 0, nic: str = "e810", timeout: float = 600, replication: str = "lagged",
          replies: Optional[bool] = None, captured: Optional[Trace] = None, captured_name: str = "") -> BenchReport:
    """Measure ``nf``'s sequential build and each of ``strategies`` (default: the one the solver picks,
    and locks next to an sn build with replicated objects) on each core count. ``packets`` timed
    packets per measurement, cycling over a preloaded trace of ``trace_packets`` (default: ``packets``,
    at most 200,000) of ``traffic`` (default: the NF's main-path traffic; with replicated objects,
    their rare writers' traffic, ``writers.writer_traffic``). With ``replies`` (default: when the NF
    rewrites headers, as a NAT does) every build is measured on the trace plus the replies to what it
    sends (``explorer.bench.loop``), and the notes give each build's share per verdict of that trace.
    ``captured``: a trace read from the user's captures (``captured_name``) instead of generated
    traffic; the timed packets cycle over it."""
    if packets < 1 or repeat < 1:
        raise ConfigError("packets and repeat must be positive")
    with tempfile.TemporaryDirectory(prefix="nfx-bench-") as tmp:
        setup = prepare(nf, Path(tmp), cores, strategies, packets, defines, traffic, trace_packets, seed, nic,
                        replication, replies, captured, captured_name)
        # Rounds over every build, so that a slow spell of the machine hits all of them alike.
        samples: list[list[Sample]] = [[] for _ in setup.builds]
        for _ in range(repeat):
            for k, b in enumerate(setup.builds):
                samples[k].append(_run_once(b.binary, b.cores, b.trace, packets, timeout, nf))
    return report_of(setup, packets, samples)
