"""``bench``: Mpps of the generated builds, per strategy and core count, next to the sequential build
measured in the same run, with packets preloaded in memory (the replay harness's ``--bench``).

Every measurement runs the project's replay harness: each core processes its own RSS queue of the
trace, again and again (times shifted by one trace span per lap), and the rate is all packets over
the time from the first core's start to the last core's end, so an imbalanced split costs what it
would on a NIC. Each configuration is measured ``repeat`` times and the best rate is reported (other
processes can only slow a run down), every sample kept.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from explorer.codegen.planning import parallel_plan
from explorer.bench.loop import closed_loop
from explorer.bench.plot import scaling_svg
from explorer.codegen.project import write_project
from explorer.verify.equivalence import rewrites
from explorer.verify.replay import run_bench
from explorer.errors import ConfigError, GenerateError
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace

DEFAULT_TRAFFIC = {"kind": "uniform", "size": 64}


@dataclass(frozen=True)
class BenchResult:
    strategy: str
    cores: int
    mpps: float
    samples: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "cores": self.cores, "mpps": self.mpps, "samples": list(self.samples)}


@dataclass(frozen=True)
class BenchReport:
    nf: str
    packets: int
    traffic: str
    results: tuple[BenchResult, ...]
    notes: tuple[str, ...] = field(default=())

    def result(self, strategy: str, cores: int) -> BenchResult:
        for r in self.results:
            if r.strategy == strategy and r.cores == cores:
                return r
        raise KeyError((strategy, cores))

    def speedup(self, strategy: str, cores: int) -> float:
        """Mpps of ``strategy`` on ``cores`` over the sequential build's."""
        seq = self.result("seq", 1).mpps
        return self.result(strategy, cores).mpps / seq if seq else 0.0

    def to_dict(self) -> dict[str, Any]:
        seq = next((r.mpps for r in self.results if r.strategy == "seq"), 0.0)
        return {"nf": self.nf, "packets": self.packets, "traffic": self.traffic,
                "results": [dict(r.to_dict(), speedup=round(r.mpps / seq, 3) if seq else None) for r in self.results],
                "notes": list(self.notes)}

    def render(self) -> str:
        seq = next((r.mpps for r in self.results if r.strategy == "seq"), 0.0)
        lines = [f"{self.nf}: {self.packets} packets per measurement, {self.traffic}"]
        for r in self.results:
            ratio = f"  {r.mpps / seq:.2f}x seq" if seq and r.strategy != "seq" else ""
            lines.append(f"  {r.strategy:<6} {r.cores:>3} core{'s' if r.cores != 1 else ' '} {r.mpps:8.3f} Mpps{ratio}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def svg(self) -> str:
        return scaling_svg(f"{self.nf}: Mpps per core count", [r.to_dict() for r in self.results])


def bench_trace(packets: int, traffic: Optional[Mapping[str, Any]] = None, seed: int = 0) -> tuple[Trace, str]:
    """The preloaded trace: ``packets`` packets of ``traffic`` (a generator kind and its parameters;
    by default uniform 64-byte traffic over packets / 20 flows, so that 95% of the packets belong to
    flows seen before)."""
    spec = dict(DEFAULT_TRAFFIC if traffic is None else traffic)
    kind = spec.pop("kind", "uniform")
    flows = int(spec.pop("flows", max(1, packets // 20)))
    trace = generate(kind, packets=packets, flows=flows, seed=seed, **spec)
    extra = "".join(f", {k}={v}" for k, v in sorted(spec.items()))
    return trace, f"{kind} traffic, {flows} flows{extra}, seed {seed}"


def bench(nf: str | Path, cores: Sequence[int] = (1, 2), strategies: Sequence[str] = (), packets: int = 1_000_000,
          defines: Optional[Mapping[str, str]] = None, traffic: Optional[Mapping[str, Any]] = None,
          trace_packets: Optional[int] = None, repeat: int = 3, seed: int = 0, nic: str = "e810",
          replication: str = "lagged", replies: Optional[bool] = None) -> BenchReport:
    """Measure ``nf``'s sequential build and each of ``strategies`` (default: the one the solver
    picks, and locks next to an sn build with replicated objects) on each core count. ``packets``
    per measurement, cycling over a preloaded trace of ``trace_packets`` (default: ``packets``, one
    pass). With replicated objects and no ``traffic``, the traffic is their rare writers' (see
    ``writers.writer_traffic``). With ``replies`` (default: when the NF rewrites headers, as a NAT
    does) every build is measured on the trace plus the replies to what it forwards
    (``explorer.bench.loop``; the default traffic then has no replies of its own), and the notes give
    each build's share of packets per verdict."""
    from explorer import pipeline

    if packets < 1 or repeat < 1:
        raise ConfigError("packets and repeat must be positive")
    if not cores or any(c < 1 for c in cores):
        raise ConfigError(f"core counts must be positive, not {list(cores)}")
    analysis = pipeline.analyze(nf, defines)
    base = pipeline.solve(analysis, cores=max(cores), seed=seed, nic=nic, quality=False)
    wanted = [s for s in dict.fromkeys(strategies) if s != "seq"]
    if not wanted:
        wanted = [{"shared-nothing": "sn"}.get(base.strategy, base.strategy)]
        if base.sharding.replicated:  # what replication buys, measured in the same run
            wanted.append("locks")
    if traffic is None and base.sharding.replicated:
        from explorer.sharding.writers import writer_traffic
        traffic = writer_traffic(analysis, base.sharding)
    if replies is None:
        replies = rewrites(base)
    if replies and traffic is None:
        traffic = {**DEFAULT_TRAFFIC, "reply_share": 0.0}  # the replies are each build's own
    trace, described = bench_trace(trace_packets or packets, traffic, seed)
    if replies:
        described += ", with replies to what each build forwards"
    results = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="nfx-bench-") as folder:
        def measure(strategy: str, count: int, solution: Any) -> BenchResult:
            project = write_project(parallel_plan(solution, strategy, count, replication),
                                    Path(folder) / f"{strategy}-{count}")
            measured = trace
            if replies:
                measured, shares = closed_loop(project, trace)
                notes.append(f"{strategy} on {count} core{'s' if count != 1 else ''}: {shares.text()}")
            samples = tuple(round(run_bench(project, measured, packets), 4) for _ in range(repeat))
            return BenchResult(strategy, count, max(samples), samples)

        results.append(measure("seq", 1, base))
        for strategy in wanted:
            solution = base if strategy == "sn" else pipeline.solve(analysis, cores=max(cores), seed=seed, nic=nic,
                                                                    strategy=strategy, quality=False)
            for count in sorted(set(cores)):
                try:
                    results.append(measure(strategy, count, solution))
                except GenerateError as error:
                    notes.append(f"{strategy}: {error}")
                    break
    return BenchReport(analysis.nf, packets, described, tuple(results), tuple(notes))
