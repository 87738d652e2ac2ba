"""Sweeps and big traces on Dask: "which NIC and how many cores for this NF and this traffic".

A sweep simulates an NF for every NIC profile, core count, traffic kind and traffic seed asked
for, and returns one tidy row per combination (``Sweep.table``, a pandas DataFrame). A big
generated trace is simulated segment by segment (``simulate_distributed``): each worker counts one
segment's packet classes, and the classes merge exactly, so the report equals a serial run's.

Work runs serially in this process (``scheduler=None``), on an embedded local Dask cluster
(``"local"``: worker processes on this machine) or on an existing dask.distributed cluster
(``"tcp://host:8786"``), unchanged. Z3 terms do not travel between processes: a task carries the
NF's source text and rebuilds its analysis once per worker (cached), and RSS plans travel as plain
values.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from explorer.errors import AnalysisWarning, ConfigError

COLUMNS = ("nic", "cores", "traffic", "seed", "strategy", "packets", "imbalance", "max_core_share",
           "violations", "write_share")


@dataclass(frozen=True)
class NfSource:
    """An NF as a worker can rebuild it: its C text, file name, configuration defines, and the
    headers of its own folder that it includes (path relative to that folder, text)."""

    text: str
    name: str
    defines: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(nf: str | Path, defines: Optional[Mapping[str, str]] = None) -> "NfSource":
        """The NF at ``nf``, read (and its includes checked) as every stage reads it: errors name
        the user's file, not a worker's copy."""
        from explorer.nfsource import read_nf
        from explorer.nfsource.cpp import is_ours

        path = Path(nf)
        if not path.is_file():
            raise ConfigError(f"{nf}: no such file")
        source = read_nf(path, defines)
        folder = path.resolve().parent
        headers = []
        for file in source.files:
            if file.startswith("<") or is_ours(file):
                continue
            resolved = Path(file).resolve()
            if resolved != path.resolve() and resolved.is_relative_to(folder):
                headers.append((str(resolved.relative_to(folder)), resolved.read_text(encoding="utf-8")))
        return NfSource(path.read_text(encoding="utf-8"), path.name, tuple(sorted((defines or {}).items())),
                        tuple(sorted(headers)))


@functools.lru_cache(maxsize=8)
def _analysis(nf: NfSource):
    from explorer import pipeline

    with tempfile.TemporaryDirectory(prefix="nfx-sweep-") as folder:
        for name, text in nf.headers:
            header = Path(folder) / name
            header.parent.mkdir(parents=True, exist_ok=True)
            header.write_text(text, encoding="utf-8")
        path = Path(folder) / nf.name
        path.write_text(nf.text, encoding="utf-8")
        with warnings.catch_warnings():  # said once, by the caller's analysis of the user's own file
            warnings.simplefilter("ignore", AnalysisWarning)
            return pipeline.analyze(path, dict(nf.defines))


@functools.lru_cache(maxsize=64)
def _solution(nf: NfSource, nic: str, cores: int):
    from explorer import pipeline

    return pipeline.solve(_analysis(nf), nic=nic, cores=cores, quality=False)


def sweep_row(nf: NfSource, nic: str, cores: int, traffic: str, seed: int, packets: int, flows: int,
              params: tuple[tuple[str, Any], ...] = ()) -> dict[str, Any]:
    """One combination, simulated: a row of the sweep's table (plain values)."""
    from explorer import pipeline

    solution = _solution(nf, nic, cores)
    report = pipeline.simulate(solution, traffic, packets=packets, flows=flows, seed=seed, **dict(params))
    return {"nic": nic, "cores": cores, "traffic": traffic, "seed": seed, "strategy": solution.strategy,
            "packets": report.packets, "imbalance": round(report.imbalance, 6),
            "max_core_share": round(max(report.per_core) / report.packets, 6),
            "violations": report.violation_count,
            "write_share": round(report.contention.share, 6) if report.contention else float("nan")}


@dataclass(frozen=True, eq=False)
class Sweep:
    """A sweep's results: ``table`` has one row per (nic, cores, traffic, seed), sorted, with the
    columns of ``COLUMNS``."""

    nf: str
    table: Any  # pandas.DataFrame

    def summary(self) -> Any:
        """Mean and worst imbalance over seeds, per NIC, traffic and core count, with the strategy
        and its mean write share (NaN for shared-nothing): an even spread under a lock that most
        packets take is no speed-up, and must not read like one."""
        grouped = self.table.groupby(["nic", "traffic", "cores", "strategy"], sort=True)
        return grouped.agg(mean=("imbalance", "mean"), max=("imbalance", "max"),
                           writes=("write_share", "mean")).reset_index()

    def best(self, max_imbalance: float = 1.25) -> Any:
        """Per NIC and traffic, the most cores whose worst imbalance stays within ``max_imbalance``
        with no violation (NaN where none does)."""
        t = self.table
        ok = t.groupby(["nic", "traffic", "cores"]).agg(worst=("imbalance", "max"), violations=("violations", "max"))
        ok = ok[(ok.worst <= max_imbalance) & (ok.violations == 0)].reset_index()
        return ok.groupby(["nic", "traffic"])["cores"].max().reset_index()


def _within_nics(combos: list[tuple]) -> list[tuple]:
    """The (nic, cores, ...) combinations the NIC can take (82599's RSS feeds 16 cores); the others
    are left out with one warning per NIC, or refused when none is left."""
    from explorer.rss.nic import nic_profile

    most = {nic: nic_profile(nic).max_cores for nic in {combo[0] for combo in combos}}
    for nic in sorted(most):
        over = sorted({combo[1] for combo in combos if combo[0] == nic and combo[1] > most[nic]})
        if over:
            warnings.warn(f"{nic} takes at most {most[nic]} cores: its rows for {', '.join(map(str, over))} cores "
                          "are left out")
    kept = [combo for combo in combos if combo[1] <= most[combo[0]]]
    if not kept:
        limits = ", ".join(f"{nic}: at most {m}" for nic, m in sorted(most.items()))
        raise ConfigError(f"no NIC of the sweep takes that many cores ({limits})")
    return kept


def sweep(nf: str | Path, nics: Sequence[str] = ("e810",), cores: Sequence[int] = (2, 4, 8, 16),
          traffic: Sequence[str] = ("uniform",), seeds: int = 3, packets: int = 50_000, flows: int = 5_000,
          defines: Optional[Mapping[str, str]] = None, scheduler: Optional[str] = None,
          **params: Any) -> Sweep:
    """Simulate ``nf`` for every NIC, core count, traffic kind and seed 0..``seeds``-1. Serial
    without ``scheduler``; on Dask with ``"local"`` or a scheduler address. The table is the same
    either way. ``params`` go to every traffic kind (each must accept them)."""
    import pandas

    from explorer.rss.nic import nic_profile
    from explorer.traffic.generators import kind_parameters

    from explorer import pipeline

    source = NfSource.of(nf, defines)
    analysis = pipeline.analyze(nf, defines)  # its errors and warnings name the user's file, once, before any work
    for nic in nics:
        nic_profile(nic)  # a clear error for an unknown profile, before any work
    for kind in traffic:
        kind_parameters(kind)
        pipeline.check_generated(analysis, kind, "a sweep runs generated traffic only (nfx simulate takes --in "
                                                 "0=PCAP)")
    if not nics or not cores or not traffic or seeds < 1:
        raise ConfigError("a sweep needs at least one NIC, core count, traffic kind and seed")
    bad = [c for c in cores if not isinstance(c, (int, np.integer)) or c < 1]
    if bad:
        raise ConfigError(f"core counts must be positive integers, not {bad[0]!r}")
    fixed = tuple(sorted(params.items()))
    combos = _within_nics(list(itertools.product(sorted(set(nics)), sorted(set(int(c) for c in cores)),
                                                 sorted(set(traffic)), range(seeds))))
    if scheduler is None:
        rows = [sweep_row(source, nic, c, kind, seed, packets, flows, fixed) for nic, c, kind, seed in combos]
    else:
        with dask_client(scheduler) as client:
            futures = [client.submit(sweep_row, source, nic, c, kind, seed, packets, flows, fixed, pure=False)
                       for nic, c, kind, seed in combos]
            rows = client.gather(futures)
    table = pandas.DataFrame(rows, columns=list(COLUMNS))
    table = table.sort_values(["nic", "cores", "traffic", "seed"], kind="stable").reset_index(drop=True)
    return Sweep(source.name, table)


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    """A dask.distributed client: of an embedded local cluster (``"local"``: one single-threaded
    worker process per CPU, no dashboard) or of the cluster at ``scheduler``. Closed on exit; on
    Ctrl-C or SIGTERM quietly (no worker chatter, no asyncio tracebacks) and with its scratch
    folder gone."""
    import logging

    from distributed import Client

    # Workers are stopped on purpose at the end: their shutdown chatter is not for the user.
    for name in ("distributed", "distributed.nanny", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler == "local":
        with _local_client() as client:
            yield client
        return
    if not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ConfigError(f"bad scheduler {scheduler!r}: expected 'local' or an address such as tcp://host:8786")
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as error:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    with client, _quiet_when_stopped():
        yield client


@contextlib.contextmanager
def _local_client() -> Iterator[Any]:
    import os
    import shutil

    import dask
    from distributed import Client, LocalCluster

    workers = max(1, len(os.sched_getaffinity(0)))
    scratch = tempfile.mkdtemp(prefix="nfx-dask-")
    before = _clusters()
    try:
        with dask.config.set({"temporary-directory": scratch}), _quiet_when_stopped():  # stopped while starting
            try:
                with _children_without_stderr():
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, local_directory=scratch,
                                           preload=["explorer.dask_worker"])
            except Exception as error:  # a stop signal mid-start surfaces as "Nanny failed to start"
                if _stopped_by(error):
                    raise KeyboardInterrupt from None
                raise ConfigError(f"cannot start a local Dask cluster: {error}") from None
            with cluster, Client(cluster) as client, _quiet_when_stopped():  # silent before the teardown
                yield client
    finally:
        _forget_unclosed_clusters(before)
        for _ in range(20):  # workers killed mid-write may still be leaving files for a moment
            shutil.rmtree(scratch, ignore_errors=True)
            if not os.path.exists(scratch):
                break
            time.sleep(0.05)


@contextlib.contextmanager
def _children_without_stderr() -> Iterator[None]:
    """Processes started meanwhile (the cluster's workers and multiprocessing's resource tracker)
    write their standard error to /dev/null. A terminal's Ctrl-C reaches the whole process group:
    a worker still importing distributed, before its preload ignores the signal, printed a
    KeyboardInterrupt traceback, and one stopped mid-start an assertion from its queue. A task's
    failure reaches nfx as the task's exception, and the workers' logs are silenced anyway."""
    import os
    import sys

    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _stopped_by(error: BaseException) -> bool:
    """Whether a Ctrl-C or SIGTERM (or the cancellation it caused) is behind ``error``."""
    import asyncio

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def _quiet_when_stopped() -> Iterator[None]:
    """On Ctrl-C or SIGTERM, silence what the cluster's teardown logs (asyncio's "Task exception was
    never retrieved", distributed's errors about workers it is killing) while the stop unwinds."""
    import logging

    try:
        yield
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt) or _stopped_by(error):
            for name in ("asyncio", "distributed", "distributed.client", "distributed.nanny", "distributed.scheduler",
                         "distributed.worker", "distributed.core", "distributed.diskutils", "tornado"):
                logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        raise


def _clusters() -> set:
    with contextlib.suppress(Exception):
        from distributed.deploy.spec import SpecCluster
        return set(SpecCluster._instances)
    return set()


def _forget_unclosed_clusters(before: set) -> None:
    """A cluster stopped while it started or closed keeps workers in their first state, and
    distributed's exit hook then fails an assertion on it (a traceback after nfx said
    "interrupted"): forget what this cluster left that is not closed (it was closed as far as it
    could be)."""
    with contextlib.suppress(Exception):
        from distributed.core import Status
        from distributed.deploy.spec import SpecCluster

        for cluster in _clusters() - before:
            if getattr(cluster, "status", None) != Status.closed:
                SpecCluster._instances.discard(cluster)


# ---- one big trace, segment by segment ---------------------------------------------------------

def segment_classes(nf: NfSource, sharded: tuple[str, ...], plan: Any, strategy: str, kind: str, packets: int,
                    flows: int, seed: int, index: int, params: tuple[tuple[str, Any], ...]):
    """The packet classes of segment ``index`` of a generated trace, as plain arrays
    ``(keys, first, count)`` (what travels back from a worker)."""
    from explorer.simulate.simulation import Simulation
    from explorer.traffic.generators import SEGMENT, segment_fields

    sim = Simulation(_analysis(nf), sharded, plan, strategy, threads=1)  # the workers are the parallelism
    fields, devices = segment_fields(kind, packets, flows, seed, index, **dict(params))
    sim.packets = index * SEGMENT  # packet numbers continue across segments
    sim.add(fields, devices)
    classes = sim.classes()
    return classes.keys, classes.first, classes.count


def simulate_distributed(analysis: Any, sharding: Any, plan: Any, strategy: str, kind: str, packets: int,
                         flows: int, seed: int, scheduler: str = "local", rebalance: bool = False,
                         params: Optional[Mapping[str, Any]] = None):
    """``explorer.simulate.simulation.simulate`` of a generated trace, one segment per Dask task;
    the merged classes give the serial run's report."""
    import time

    from explorer.simulate.classes import Classes
    from explorer.simulate.simulation import Simulation, report, sharded_objects
    from explorer.traffic.generators import segment_count

    started = time.perf_counter()
    nf = NfSource.of(analysis.source, dict(analysis.defines))
    sharded = sharded_objects(sharding)
    layout = Simulation(analysis, sharded, plan, strategy).layout
    fixed = tuple(sorted((params or {}).items()))
    with dask_client(scheduler) as client:
        futures = [client.submit(segment_classes, nf, sharded, plan, strategy, kind, packets, flows, seed, i, fixed,
                                 pure=False) for i in range(segment_count(packets))]
        parts = [Classes(layout, *client.gather(f)) for f in futures]  # in segment order
    merged = Classes.merge(parts)
    return report(analysis, sharded, plan, merged, strategy, rebalance, started)
