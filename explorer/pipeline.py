"""The stages chained: what the CLI, the widgets and the tests call.

Each function takes and returns plain values, so a caller can stop at any stage and look:
``analyze`` -> ``ir.Analysis``; ``solve`` -> ``Solution`` (sharding decisions, strategy, RSS plan, and
when the user's overrides break correctness, the explanation and a counterexample pair).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from explorer import limits
from explorer.errors import ConfigError, ShardingError
from explorer.ir import Analysis
from explorer.rss.nic import NicProfile, nic_profile
from explorer.rss.problem import KeyProblem
from explorer.rss.key_solver import Conflict, RssPlan, find_counterexample, solve_keys
from explorer.rss.spread import port_range_notes, portless_notes, trace_notes
from explorer.sharding.allocation import explain as explain_allocation
from explorer.sharding.decisions import Overrides, ShardingPlan, shard
from explorer.sharding.pools import Pools, pools_of
from explorer.wire import RSS_NAMES

PATHS = "paths"  # the traffic that follows the NF's own paths (``paths_traffic``)

STRATEGY_NAMES = {"sn": "shared-nothing", "locks": "locks", "tm": "tm"}


def analyze(nf: str | Path, defines: Optional[Mapping[str, str]] = None) -> Analysis:
    from explorer.symbex import analyze as explore_paths

    return explore_paths(str(nf), dict(defines or {}))


def graph(analysis: Analysis, highlight: Optional[str] = None) -> str:
    from explorer.graph import access_graph

    return access_graph(analysis, highlight)


@dataclass(frozen=True)
class Solution:
    """How an NF runs on many cores: per-object decisions, the strategy and the RSS plan."""

    analysis: Analysis
    sharding: ShardingPlan
    strategy: str  # "shared-nothing" | "locks" | "tm"
    plan: RssPlan
    nic: NicProfile
    cores: int
    seed: int
    valid: bool = True  # False when overrides break correctness (see explanation, counterexample)
    explanation: str = ""
    counterexample: Optional[dict[str, Any]] = None
    seconds: tuple[tuple[str, float], ...] = field(default=(), compare=False)
    quality: tuple[tuple[str, float], ...] = ()  # max/mean per-core packets on seeded traffic kinds
    pools: tuple[Pools, ...] = ()  # sn with sharding by allocation: each allocator's per-core pools
    # replicated and locked objects that packets write: the share of the quality traffic's first kind
    # (uniform) that may take a path writing each one
    write_shares: tuple[tuple[str, float], ...] = ()
    # traffic the plan cannot spread because a key keeps only part of a port (``explorer.rss.spread``)
    warnings: tuple[str, ...] = ()
    # the key solver's unsat core, when each object shards alone but no key shards them together
    conflict: Optional[Conflict] = None
    # overrides (``OBJ=replicate``) checked to let the rest run shared-nothing, for such a conflict
    remedies: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()
        out: dict[str, Any] = {
            "nf": self.analysis.nf,
            "strategy": self.strategy,
            "valid": self.valid,
            "nic": self.nic.name,
            "cores": self.cores,
            "seed": self.seed,
            "objects": [o.to_dict() for o in self.sharding.objects],
            "devices": plan["devices"],
            "conflicts": list(self.sharding.conflicts),
            "replicated": [o.name for o in self.sharding.replicated],
            "seconds": dict(self.seconds),
            "quality": dict(self.quality),
            "write_shares": {name: round(share, 6) for name, share in self.write_shares},
            "warnings": list(self.warnings),
        }
        if self.explanation:
            out["explanation"] = self.explanation
        if self.conflict is not None:
            out["conflict"] = self.conflict.to_dict()
            out["remedies"] = list(self.remedies)
        why = why_text(self)
        if why:
            out["why"] = why
        if self.pools:
            hashed = {d.device: d.fields for d in self.plan.devices}
            out["allocation"] = "; ".join(explain_allocation(a, hashed) for a in self.sharding.allocations)
            out["pools"] = [p.to_dict() for p in self.pools]
        elif self.sharding.unallocated:
            out["allocation"] = self.sharding.unallocated
        if self.sharding.replicated and self.strategy == STRATEGY_NAMES["sn"]:
            out["replication"] = replication_summary(self.sharding, self.analysis)
        if self.counterexample is not None:
            out["counterexample"] = self.counterexample
        return out


def why_text(solution: Solution) -> str:
    """Why the NF does not run shared-nothing, once, in its own terms (``explorer.explain``)."""
    from explorer.explain import why_not_sharded

    return why_not_sharded(solution)


def replication_summary(sharding: ShardingPlan, analysis: Optional[Analysis] = None) -> str:
    """Why shared-nothing works with some written objects replicated; with the ``analysis``, those
    replicated by choice although frequent packets write them are not called rarely written."""
    from explorer.nf_terms import in_words
    from explorer.sharding.writers import writers_of

    many = len(sharding.replicated) > 1
    names = ", ".join(o.name for o in sharding.replicated)
    # each object's packet classes, "; "-joined: the distinct ones, once each
    classes = sorted({in_words(c) for o in sharding.replicated if o.write_class for c in o.write_class.split("; ")})
    writers = writers_of(analysis) if analysis is not None else {}
    frequent = [o.name for o in sharding.replicated if o.name in writers and not writers[o.name].rare]
    if frequent:
        return (f"{names} {'are' if many else 'is'} replicated on every core, by choice: packets that no header "
                f"field singles out as rare write {', '.join(frequent)} ({'; '.join(classes) or 'any packet'}), and "
                "each of their writes is broadcast to the other cores through per-core rings; packets that only "
                "read them can go to any core, so RSS keeps only the sharded objects' constraints")
    return (f"{names} {'are' if many else 'is'} replicated on every core: only rare "
            f"packets write {'them' if many else 'it'} ({'; '.join(classes) or 'expiry'}), "
            "and those broadcast each write to the other cores through per-core rings; packets that only read "
            "them can go to any core, so RSS keeps only the sharded objects' constraints")


QUALITY_TRAFFIC = (("uniform", {}), ("prefix", {"client_prefix": "10.1.0.0/16", "server_prefix": "172.16.0.0/20"}))
QUALITY_PACKETS = 32_000  # one packet per flow: balance over flows, the unit RSS places


def solve(nf: str | Path | Analysis, defines: Optional[Mapping[str, str]] = None, nic: str = "e810",
          cores: int = 16, seed: int = 0, overrides: Optional[Overrides] = None,
          strategy: str = "auto", quality: bool = True, allocation: bool = True) -> Solution:
    """Analyse (unless given an Analysis), decide sharding, pick the strategy and solve the keys.

    With ``allocation``, state keyed by a value the NF allocates and packets carry back (a NAT's
    external port) is sharded by allocation: per-core pools (``explorer.sharding.allocation``).
    With ``quality``, the plan's per-core balance (max/mean packets) is measured on seeded uniform
    and prefix-concentrated traffic (clients in one /16, servers in one /20)."""
    cores, seed = limits.CORES.check(cores), limits.SEED.check(seed)
    solution = _solve(nf, defines, nic, cores, seed, overrides, strategy, allocation)
    if not quality or solution.analysis.devices < 2:  # the quality traffic arrives on two devices
        return solution
    reports = [(kind, simulate(solution, kind, packets=QUALITY_PACKETS, flows=QUALITY_PACKETS, seed=seed, **params))
               for kind, params in QUALITY_TRAFFIC]
    figures = tuple((kind, round(report.imbalance, 4)) for kind, report in reports)
    return replace(solution, quality=figures, write_shares=reports[0][1].write_shares)


def _solve(nf, defines, nic, cores, seed, overrides, strategy, allocation=True) -> Solution:
    analysis = nf if isinstance(nf, Analysis) else analyze(nf, defines)
    analysed = time.perf_counter()
    profile = nic_profile(nic)
    decided: dict = {}  # each object's own decision, made once for this solve and its remedies
    sharding = shard(analysis, profile, overrides, allocation=allocation, decided=decided)

    if strategy in ("locks", "tm") or (strategy == "auto" and sharding.locked):
        chosen = STRATEGY_NAMES["tm" if strategy == "tm" else "locks"]
        if overrides:  # the user's fields choose the key here too, and are checked like any other
            return _overridden(analysis, sharding, chosen, profile, cores, seed, analysed)
        plan = solve_keys(_free_problem(sharding, profile, cores, seed))
        explanation = _why_not_sharded(sharding) if sharding.locked else ""
        return _solution(analysis, sharding, chosen, plan, profile, cores, seed, True, explanation, None,
                         analysed)
    if sharding.locked:  # strategy == "sn" was asked for
        from explorer.explain import locked_words

        raise ShardingError(f"{analysis.nf} cannot run shared-nothing: {locked_words(analysis, sharding)}")

    fallback = strategy == "auto" and not overrides  # the NF itself cannot shard: use locks, say why
    if not sharding.conflicts:
        try:
            plan = solve_keys(_problem(sharding, sharding.constraints, profile, cores, seed))
        except ShardingError as conflict:  # Z3's unsat core: constraints no key satisfies together
            if not fallback:
                raise _conflict_error(analysis, sharding, conflict, bool(overrides)) from None
            plan = solve_keys(_free_problem(sharding, profile, cores, seed))
            return replace(_solution(analysis, sharding, STRATEGY_NAMES["locks"], plan, profile, cores, seed, True,
                                     str(conflict), None, analysed),
                           conflict=conflict.conflict, remedies=_remedies(analysis, sharding, conflict.conflict,
                                                                          profile, cores, seed, decided))
        return _solution(analysis, sharding, STRATEGY_NAMES["sn"], plan, profile, cores, seed, True, "", None,
                         analysed)
    explanation = "; ".join(sharding.conflicts)
    if fallback:
        plan = solve_keys(_free_problem(sharding, profile, cores, seed))
        return replace(_solution(analysis, sharding, STRATEGY_NAMES["locks"], plan, profile, cores, seed, True,
                                 explanation, None, analysed),
                       remedies=_remedies(analysis, sharding, None, profile, cores, seed, decided))
    return _overridden(analysis, sharding, STRATEGY_NAMES["sn"], profile, cores, seed, analysed)


def _conflict_error(analysis: Analysis, sharding: ShardingPlan, error: ShardingError, overridden: bool) -> ShardingError:
    """The key solver's conflict, where shared-nothing was asked for (--strategy sn, or fields
    given by overrides), in the NF's terms; the solver's own stays on the error's ``conflict``."""
    from explorer.explain import conflict_words

    if error.conflict is None:
        return error
    words = conflict_words(analysis, sharding, error.conflict)
    return ShardingError(f"{analysis.nf} cannot run shared-nothing{' with these overrides' if overridden else ''}: "
                         f"{words[0].lower() + words[1:]}", conflict=error.conflict)


def _remedies(analysis: Analysis, sharding: ShardingPlan, conflict: Optional[Conflict], profile: NicProfile,
              cores: int, seed: int, decided: Optional[dict] = None) -> tuple[str, ...]:
    """The overrides ``OBJ=replicate``, for the objects a conflict involves (the key solver's, or
    with none, the sharded objects of devices whose fields have nothing in common), that let
    every other object run shared-nothing, with only rare packets writing the copies: checked by
    sharding and solving again, so the words never suggest one that does not work."""
    from explorer.explain import conflict_objects
    from explorer.sharding.writers import writers_of

    found, writers = [], None
    for name in conflict_objects(sharding, conflict):
        try:
            again = shard(analysis, profile, {name: "replicate"}, decided=decided)
            writers = writers if writers is not None else writers_of(analysis)
            # only rare writers: a copy per core that every packet writes would broadcast every packet
            if again.shared_nothing and all(writers[o.name].rare for o in again.replicated if o.name in writers):
                solve_keys(_problem(again, again.constraints, profile, cores, seed))
                found.append(f"{name}=replicate")
        except (ShardingError, ConfigError):
            continue
    return tuple(found)


def _overridden(analysis, sharding, strategy, profile, cores, seed, analysed) -> Solution:
    """A solution for the user's overrides: the devices hash exactly the fields they name, under
    every sharded object's constraints. Overrides that break a constraint (an entry's packets no
    longer agree on what is hashed) make the solution invalid, with the explanation and two packets
    the key separates. Under locks the state is shared, so placement is not needed for
    correctness; an override still states where each entry's packets go (locality), and a wrong
    one is reported the same way rather than silently ignored."""
    if not sharding.conflicts:
        try:
            plan = solve_keys(_problem(sharding, sharding.constraints, profile, cores, seed))
        except ShardingError as conflict:
            raise _conflict_error(analysis, sharding, conflict, True) from None
        return _solution(analysis, sharding, strategy, plan, profile, cores, seed, True, "", None, analysed)
    # The overrides leave no key that keeps every entry on one core: solve for what was asked
    # without the broken constraints, and show two packets it separates.
    broken = {c.origin for c in sharding.violated}
    kept = tuple(c for c in sharding.constraints if c.origin not in broken)
    plan = solve_keys(_problem(sharding, kept, profile, cores, seed))
    example = find_counterexample(plan, sharding.violated)
    if example is None:  # cannot happen for a constraint the override breaks; never claim without one
        raise ShardingError(f"{analysis.nf}: {'; '.join(sharding.conflicts)}, but no two packets that the key "
                            "separates were found")
    return _solution(analysis, sharding, strategy, plan, profile, cores, seed, False, "; ".join(sharding.conflicts),
                     example.to_dict(), analysed)


def _solution(analysis, sharding, strategy, plan, profile, cores, seed, valid, explanation, counterexample,
              analysed) -> Solution:
    pools = tuple(pools_of(a, plan) for a in sharding.allocations) if strategy == STRATEGY_NAMES["sn"] else ()
    done = time.perf_counter()
    # The analysis' own figure: a solve given an earlier Analysis (the CLI, the explorer) reuses it.
    seconds = (("analysis", round(analysis.seconds, 4)), ("solve", round(done - analysed, 4)))
    return Solution(analysis, sharding, strategy, plan, profile, cores, seed, valid, explanation,
                    counterexample, seconds, pools=pools,
                    warnings=port_range_notes(plan, sharding.constraints) + portless_notes(plan))


def _problem(sharding: ShardingPlan, constraints, profile: NicProfile, cores: int, seed: int) -> KeyProblem:
    return KeyProblem(devices=sharding.devices, constraints=tuple(constraints), hashed=sharding.hashed,
                      nic=profile, cores=cores, seed=seed)


def _free_problem(sharding: ShardingPlan, profile: NicProfile, cores: int, seed: int) -> KeyProblem:
    """Locks and TM need no placement: hash all four fields with well-mixed keys, for balance."""
    return KeyProblem(devices=sharding.devices, constraints=(),
                      hashed=tuple((d, RSS_NAMES) for d in sharding.devices), nic=profile, cores=cores, seed=seed)


def _why_not_sharded(sharding: ShardingPlan) -> str:
    parts = [f"{o.name} ({o.kind}): {o.reason}" for o in sharding.locked]
    return "; ".join(parts + list(sharding.conflicts))


def explain(result: Analysis | Solution, outcome: bool = True) -> dict[str, Any]:
    """The analysis (or a solution) in the NF author's terms (``explorer.explain``): per object a
    summary naming its source lines and C calls, its fields and what a wrong override breaks; the
    strategy; and for a broken override, ``counterexample``: two realistic packets the plan splits,
    with (``outcome``) what the NF does to the second one when it misses the first one's state."""
    from explorer import explain as words

    analysis, solution = (result, None) if isinstance(result, Analysis) else (result.analysis, result)
    out = words.describe(analysis, solution)
    example = words.counterexample(solution) if solution is not None else None
    out["counterexample"] = words.public(example)
    if example is not None and outcome:
        out["counterexample"]["outcome"] = words.what_happens(solution, example)
    return out


def simulate(solution: Solution, traffic: Any = "uniform", packets: int = 100_000, flows: int = 10_000,
             seed: int = 0, keys: Optional[Mapping[int, Any]] = None,
             fields: Optional[Mapping[int, tuple[str, ...]]] = None, reta: Optional[Sequence[int]] = None,
             rebalance: bool = False, chunk_packets: int = 1 << 20, progress: Optional[Any] = None,
             scheduler: Optional[str] = None, **params: Any):
    """Per-core load and violations of the solution's RSS plan (or of user ``keys``/``fields`` per
    device, with the RETA dealt for them unless ``reta`` fixes it) on ``traffic``: a generator kind,
    a ``Trace``, or ``{device: pcap path}``, streamed in chunks of ``chunk_packets`` (memory follows
    distinct flows, not packets). Locks and tm solutions report write-lock contention instead of
    violations. ``progress(packets_done)`` is called after each chunk. With ``scheduler`` ("local"
    or a dask.distributed address such as ``tcp://host:8786``), a generated trace is simulated
    segment by segment on Dask workers: the report is the same as a serial run's."""
    from explorer.simulate.pools import unpooled
    from explorer.simulate.simulation import simulate as run_simulation

    if isinstance(traffic, str):  # generated traffic streams in chunks: memory follows flows, not packets
        check_generated(solution.analysis, traffic)
        _check_synthetic(packets, flows, seed, limits.FIELD_BYTES, streamed=True)
    plan = with_keys(solution.plan, keys, fields, reta)
    strategy = solution.strategy
    if scheduler is not None:
        from explorer.sweep import simulate_distributed

        if solution.pools:
            raise ConfigError(f"{solution.analysis.nf} is sharded by allocation: its pools hand out values in trace "
                              "order, which one pass over the trace models (run it without --scheduler)")
        sn = strategy == STRATEGY_NAMES["sn"]
        per_core = unpooled(solution.analysis, solution.sharding, plan.cores) if sn else ()
        if per_core:  # segments apart would hand out the same indices again, and leave the replies unchecked
            raise ConfigError(f"{solution.analysis.nf}: each core's own {per_core[0][0].allocator} hands out values in "
                              "trace order, which one pass over the trace models (run it without --scheduler)")
        if not isinstance(traffic, str):
            raise ConfigError("simulating on Dask needs a generated traffic kind (pcap inputs are read serially)")
        report = simulate_distributed(solution.analysis, solution.sharding, plan, strategy, traffic, packets, flows,
                                      seed, scheduler=scheduler, rebalance=rebalance, params=params)
    else:
        chunks = lambda: traffic_chunks(traffic, packets, flows, seed, chunk_packets, **params)  # noqa: E731
        if rebalance and isinstance(traffic, Mapping) and _allocates_per_core(solution, plan.cores):
            chunks = _replayable(traffic, chunks)
        report = run_simulation(solution.analysis, solution.sharding, plan, chunks, rebalance, strategy=strategy,
                                progress=progress)
    reached = {dev: (packets_on, entries) for dev, packets_on, entries in report.reach}
    return replace(report, warnings=trace_notes(plan, solution.sharding.constraints, reached))


def _allocates_per_core(solution: Solution, cores: int) -> bool:
    """Whether the simulator models per-core allocators (pools, or each core's own indices), which
    hand out values in trace order: a rebalanced RETA then takes a second pass over the trace."""
    from explorer.simulate.pools import unpooled

    if solution.strategy != STRATEGY_NAMES["sn"] or not isinstance(solution.sharding, ShardingPlan):
        return False
    return bool(solution.sharding.allocations) or bool(unpooled(solution.analysis, solution.sharding, cores))


def _replayable(traffic: Mapping[int, str], chunks):
    """``chunks`` itself when every capture can be read again; with a pipe among them, the first pass
    kept for the second (``--in 0=<(zcat lan.pcap.gz)``: a pipe gives its bytes once)."""
    from explorer.simulate.streams import Replayed, read_once

    pipes = read_once(traffic)
    return Replayed(chunks, pipes, int(limits.available_memory() * limits.MEMORY_SHARE)) if pipes else chunks


def packets_of(traffic: Any, numbers: Any, packets: int = 100_000, flows: int = 10_000, seed: int = 0,
               **params: Any) -> dict[int, dict[str, Any]]:
    """The addresses, ports and device of the packets numbered ``numbers`` (trace order, from 0) of
    the traffic ``simulate`` was given the same arguments: its examples as packets people read. From
    captures (``{device: pcap}``), each also has its ``frame`` number in its device's ``capture``
    (the file's name), by which a person finds it there."""
    from explorer.explain import packets_at

    found = packets_at(traffic_chunks(traffic, packets, flows, seed, **params), numbers)
    if isinstance(traffic, Mapping):
        from explorer.simulate.streams import frames_at

        for number, (device, frame) in frames_at(traffic, found).items():
            found[number].update(frame=frame, capture=Path(traffic[device]).name)
    return found


def with_keys(plan: RssPlan, keys: Optional[Mapping[int, Any]] = None,
              fields: Optional[Mapping[int, tuple[str, ...]]] = None,
              reta: Optional[Sequence[int]] = None) -> RssPlan:
    """``plan`` with some devices' keys (bytes or hex) and/or hashed fields replaced, and its RETA
    dealt again for them (``key_solver.plan_with_keys``) unless ``reta`` fixes it."""
    from explorer.rss.key_solver import DevicePlan, plan_with_keys, plan_with_reta
    from explorer.rss.nic import rss_hf
    from explorer.rss.quality import reta_rank

    if keys:
        plan = plan_with_keys(plan, dict(keys), reta)
    if fields:
        devices = []
        for d in plan.devices:
            if d.device in fields:
                hf = rss_hf(fields[d.device], plan.nic)
                chosen = tuple(f for f in RSS_NAMES if f in fields[d.device])
                d = DevicePlan(d.device, d.key, chosen, hf.mask, hf.names, d.reta,
                               reta_rank(d.key, chosen, plan.nic.reta_size))
            devices.append(d)
        plan = RssPlan(tuple(devices), plan.nic, plan.cores, plan.seconds, plan.seed)
    if fields or (reta is not None and not keys):
        plan = plan_with_reta(plan, reta)
    return plan


def traffic_chunks(traffic: Any, packets: int, flows: int, seed: int, chunk_packets: int = 1 << 20, **params: Any):
    """``(PacketFields, devices)`` chunks, in trace order, of a generator kind (made as consumed),
    a Trace, or ``{device: pcap}`` (read incrementally and merged by timestamp)."""
    import numpy as np

    from explorer.traffic.field_arrays import extract_fields
    from explorer.traffic.generators import field_chunks
    from explorer.traffic.trace import Trace
    from explorer.wire import reaching_the_nf as reaching

    def reaching_the_nf(frames, devices):  # runts never reach the NF (and were warned about on reading)
        kept = reaching(frames)
        if kept.all():
            return extract_fields(frames), np.asarray(devices)
        return extract_fields([f for f, k in zip(frames, kept) if k]), np.asarray(devices)[kept]

    if isinstance(traffic, str):
        return field_chunks(traffic, packets, flows, seed, chunk_packets, **params)
    if isinstance(traffic, Trace):
        return iter([reaching_the_nf(traffic.frames, traffic.devices)])
    from explorer.simulate.streams import merged_pcaps

    return (reaching_the_nf(frames, devices) for frames, devices in merged_pcaps(dict(traffic), chunk_packets))


def project_in(folder: str | Path) -> Optional[dict[str, Any]]:
    """The NF and strategy of the project an earlier ``generate`` wrote into ``folder`` (None when
    there is none), so that a caller can ask before writing another NF's project over it."""
    from explorer.codegen.project import marker_summary

    return marker_summary(folder)


def generate(solution: Solution, out: str | Path, strategy: str = "auto", cores: Optional[int] = None,
             force: bool = False, replication: str = "lagged"):
    """Write the parallel DPDK project of ``solution`` into the folder ``out`` (refuses a non-empty
    folder nfx did not create unless ``force``). ``replication``: how sn builds broadcast writes to
    replicated objects, "lagged" (up to one burst late on other cores) or "strict"."""
    from explorer.codegen import generate as write

    return write(solution, out, strategy=strategy, cores=cores, force=force, replication=replication)


def check(solution: Solution, traffic: Any = "bidir", cores: int = 2, strategy: str = "auto",
          packets: int = 20_000, flows: int = 2_000, seed: int = 0, replication: str = "lagged",
          wrong_on_purpose: bool = False):
    """Run the sequential and the parallel build on the same trace (a generator kind, ``"paths"``
    for ``paths_traffic`` of the solution's NF, or a Trace) and compare every packet's verdict and
    output bytes. With ``wrong_on_purpose``, a solution the solver
    showed to be wrong (an override that splits state) is built and run anyway, in a temporary
    folder, to see what goes wrong (``generate`` still refuses to write it)."""
    from explorer.verify.equivalence import check as compare
    from explorer.traffic.generators import generate as make_trace

    if wrong_on_purpose and not solution.valid:
        solution = replace(solution, valid=True)
    if traffic == PATHS:
        from explorer.codegen.planning import overrides_of

        analysis = solution.analysis
        defines = dict(overrides_of(analysis.source, analysis.defines))
        trace = paths_check_trace(solution, paths_traffic(analysis, defines, seed), defines, cores, strategy,
                                  replication)
    elif isinstance(traffic, str):
        check_generated(solution.analysis, traffic)
        _check_synthetic(packets, flows, seed, limits.FRAME_BYTES)
        trace = make_trace(traffic, packets=packets, flows=flows, seed=seed)
    else:
        trace = traffic
    return compare(solution, trace, cores=limits.CORES.check(cores), strategy=strategy, replication=replication)


def check_generated(analysis: Analysis, kind: str, instead: str = f"give its traffic with --in 0=PCAP, or use "
                                                                  f"--traffic {PATHS}") -> None:
    """Generated traffic arrives on two devices, LAN (0) and WAN (1): an NF with one device can take
    only traffic of its own (a capture, or the packets of its paths); ``instead`` says how."""
    if analysis.devices < 2:
        raise ConfigError(f"{analysis.nf} has one device, and generated traffic ({kind}) arrives on two (LAN 0 "
                          f"and WAN 1): {instead}")


def paths_traffic(analysis: Analysis, defines: Optional[Mapping[str, str]] = None, seed: int = 0):
    """Packets that follow every path of ``analysis`` that the concolic search reaches, in a few
    traces an hour apart (``.combined()``), with ``.coverage`` and ``.unreached`` (why a path was
    not reached): ``explorer.verify.witnesses``. ``defines`` are the ones ``analysis`` was made with."""
    from explorer.verify.witnesses import find_witnesses

    return find_witnesses(analysis, dict(defines or {}), seed=limits.SEED.check(seed))


def paths_check_trace(solution: Solution, witnesses: Any, defines: Optional[Mapping[str, str]], cores: int,
                      strategy: str = "auto", replication: str = "lagged"):
    """The witness traces of ``witnesses`` one after the other, for checking ``solution`` on
    ``cores``: where a shared-nothing build splits a table into per-core shares, its fill is
    redone so that every core's share fills when the sequential table does
    (``explorer.verify.witnesses.balanced_fills``): the "table full" paths are then compared on
    both builds rather than set aside as capacity drift."""
    from explorer.codegen.planning import parallel_plan
    from explorer.verify.split import cores_of
    from explorer.verify.witnesses import balanced_fills

    plan = parallel_plan(solution, strategy, limits.CORES.check(cores), replication)
    shares = {o.name: plan.shares(o.name) for o in plan.objects if o.kind == "dchain" and o.per_core != o.capacity}
    if shares and witnesses.fills:
        witnesses = balanced_fills(witnesses, solution.analysis, dict(defines or {}), lambda t: cores_of(plan, t),
                                   shares)
    return witnesses.combined()


def nf_paths_traffic(nf: str | Path, defines: Optional[Mapping[str, str]] = None, seed: int = 0):
    """``(analyze(nf, defines), paths_traffic(...))``, the same packets in every fresh process: the
    NF is built (or found built) before anything asks Z3, so that whether a build ran, which changes
    when Python frees Z3's terms and so Z3's models, no longer matters (``nfx traffic paths`` and
    ``nfx check --traffic paths``)."""
    import gc

    from explorer.build import build_nf

    build_nf(nf, dict(defines or {}))
    gc.collect()
    analysis = analyze(nf, defines)
    return analysis, paths_traffic(analysis, defines, seed)


def sweep(nf: str | Path, nics: tuple[str, ...] = ("e810",), cores: tuple[int, ...] = (2, 4, 8, 16),
          traffic: tuple[str, ...] = ("uniform",), seeds: int = 3, packets: int = 50_000, flows: int = 5_000,
          defines: Optional[Mapping[str, str]] = None, scheduler: Optional[str] = None, **params: Any):
    """Simulate ``nf`` for every NIC profile, core count, traffic kind and seed 0..``seeds``-1:
    "which NIC and how many cores for this NF and this traffic". Returns an ``explorer.sweep.Sweep``
    whose ``table`` (pandas) has one row per combination: strategy, imbalance (max/mean per-core
    packets), the busiest core's share, violations and, for locks/tm, the write-lock share.
    ``scheduler``: None (serial), ``"local"`` (a local Dask cluster) or a dask.distributed address
    such as ``tcp://host:8786``; the table is the same on all of them. ``params`` go to the
    traffic generators (every kind must accept them)."""
    from explorer.sweep import sweep as run_sweep

    return run_sweep(nf, nics, cores, traffic, seeds, packets, flows, defines, scheduler, **params)


def _check_synthetic(packets: int, flows: int, seed: int, per_packet: int, streamed: bool = False) -> None:
    """The one range of each number (``explorer.limits``), and the memory the packets would take
    (unless they are ``streamed`` in chunks)."""
    limits.PACKETS.check(packets)
    limits.FLOWS.check(flows)
    limits.SEED.check(seed)
    if not streamed:
        limits.check_memory(packets, per_packet, f"{packets} synthetic packets", "packets")
