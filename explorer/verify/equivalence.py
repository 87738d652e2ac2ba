"""Is the parallel build equivalent to the sequential NF on a trace? ``check(solution, trace, cores,
strategy)`` runs both and compares every packet's verdict and output bytes under the relation of
the strategy, explaining the packets that differ (``explorer.verify.report``).

The relations (each one tested by tests/test_check.py):

* seq, sn: packet by packet, the same verdict and the same bytes, except where sharding changes
  what an NF legitimately does:
  - renaming (``explorer.verify.renaming``): a header field written from an allocated index of a
    divided object (a NAT's external port) may differ by a consistent renaming;
  - documented drift (``explorer.verify.drift``): packets after a core's share of a table ran out
    are set aside uncompared (the verdict is then "partial", never "equivalent"); packets whose
    outcome differs only because a core's sketch counts only its own keys are named and counted.
* locks, tm: the replay stamps every critical section with tickets from one counter. The check
  verifies that no write section overlapped any other section (mutual exclusion as observed), then
  rebuilds the serial order the locks allowed: writers in ticket order and, between two writers,
  the reader passes that ran between them in time order, ties in ticket order (passes that wrote
  vector cells under cell locks among them: the runtime makes a pass that uses a cell run at or
  after every pass it conflicts with that came first, see nf_parallel.c). The sequential NF run on the trace permuted
  into that order, each packet at the time the parallel run ran it at (a pass never runs before a
  time the shared state holds, so a packet that lost a race to a later one runs at the later
  time), must give every packet the same verdict and bytes. How many packets differ from
  the sequential run in trace order (cores racing, as any parallel NF does) is reported apart.

Closed loop (``explorer.verify.closed_loop``): for an NF that rewrites headers, each run also gets
replies to what it sent, so that return paths (a NAT's WAN -> LAN) are compared too, and packets of
the trace that answer a port the sequential run chose reach the parallel run at the parallel run's
port.
"""
from __future__ import annotations

import tempfile
from typing import Any, Optional

import numpy as np

from explorer.codegen.planning import ParallelPlan, parallel_plan
from explorer.codegen.project import write_project
from explorer.errors import ConfigError, RunError
from explorer.run import RunResult, StateCall, run_trace
from explorer.traffic.trace import Trace
from explorer.verify import drift
from explorer.verify.closed_loop import Outcome, run_closed_loop, unsettled_tail
from explorer.verify.renaming import Renaming, flow_key, renamable_fields, renamed_equal
from explorer.verify.replay import RAN_CELLS, RAN_WRITE, ParallelRun, run_replay
from explorer.verify.report import SHOWN, CheckReport, Difference, capture_frames, packet_headers, per_core, unused_devices
from explorer.wire import MIN_FRAME, reaching_the_nf
from explorer.wording import count

_WRITE_CALLS = ("nf_map_put", "nf_map_erase", "nf_sketch_touch")
SERIAL_ORDER = ("locks", "tm")  # compared with the NF run serially in the order the run took
RELATIONS = {
    "seq": "same verdict and bytes for every packet",
    "sn": "same verdict and bytes for every packet, up to a consistent renaming of index-derived fields "
          "and per-core capacity",
    "locks": "equal to the sequential NF run in the order the locks serialised the packets",
    "tm": "equal to the sequential NF run in the order the locks serialised the packets",
    "sn-strict": "same verdict and bytes for every packet, one packet at a time in trace order (every write is on "
                 "every core before the next packet), up to renaming and per-core capacity",
    "sn-lagged": "equal to the sequential NF run in the order each core applied the writes, one packet at a time "
                 "in trace order; every difference from the trace-order run is replication lag",
}


def rewrites(solution: Any) -> bool:
    """Whether some path of the NF writes a header field other than a checksum (it rewrites
    packets, so replies to what it sent reach paths the trace alone may not)."""
    return solution is not None and any(w.value is not None for p in solution.analysis.paths for w in p.writes)


def _explain_sharding(index: int, trace: Trace, run: ParallelRun, calls: dict[int, list[StateCall]],
                      names: dict[int, str]) -> str:
    """Why a packet's state may be on another core: the last earlier packet that wrote an entry
    this packet uses, when RSS put it on a different core."""
    mine = [c for c in calls.get(index, []) if c.call in drift.KEYED_CALLS and c.key is not None]
    for call in mine:
        for q in range(index - 1, -1, -1):
            if any(c.object == call.object and c.key == call.key and c.call in _WRITE_CALLS for c in calls.get(q, [])):
                if int(run.cores[q]) != int(run.cores[index]):
                    return (f"it uses {names.get(call.object, call.object)} entry {call.key}, which packet {q} "
                            f"(device {int(trace.devices[q])}) wrote on core {int(run.cores[q])}: packets that "
                            "share state were steered to different cores")
                break
    return "the parallel run's state differs from the sequential run's at this packet"


def _compare_sn(plan: ParallelPlan, trace: Trace, par_trace: Trace, run: ParallelRun, seq: RunResult,
                fields: frozenset[str]) -> dict[str, Any]:
    """Packets that break the sn relation, packets equal up to renaming, and drift (capacity:
    set aside; sketch: explained)."""
    expected = Outcome.of(seq)
    renaming = Renaming()
    seq_calls = drift.calls_by_packet(seq.calls)
    fresh = drift.fresh_indices(plan, seq_calls)
    first_seq_full, core_full = drift.capacity_limits(seq, run)
    bad: list[tuple[int, str]] = []
    capacity: list[tuple[int, str]] = []
    renamed = 0
    for i in range(len(trace)):
        core = int(run.cores[i])
        same_verdict = expected.verdicts[i] == run.verdicts[i]
        if same_verdict and expected.frames[i] == run.frames[i]:
            continue
        if first_seq_full is not None and i >= first_seq_full:
            capacity.append((i, f"set aside uncompared: the sequential table refused an index at packet {first_seq_full}"))
            continue
        if core in core_full and i >= core_full[core]:
            capacity.append((i, f"set aside uncompared: core {core}'s share of indices ran out at packet "
                                f"{core_full[core]}"))
            continue
        if not same_verdict:
            bad.append((i, ""))
            continue
        found = renamed_equal(expected.frames[i] or b"", run.frames[i] or b"", fields)
        if found is None:
            bad.append((i, "the output bytes differ" + (f" beyond the renamable fields ({', '.join(sorted(fields))})"
                                                          if fields else "")))
            continue
        names, seq_values, par_values = found
        problem = renaming.accept(flow_key(int(trace.devices[i]), trace.frames[i]), core, names, seq_values, par_values,
                                  fresh=i in fresh)
        if problem:
            bad.append((i, f"renaming is inconsistent: {problem}"))
        else:
            renamed += 1
    overrides = dict(plan.overrides)
    sketch = drift.sketch_drift(plan, par_trace, run, seq_calls, [i for i, _ in bad], fields,
                                lambda t: run_trace(plan.source, t, overrides, calls=True))
    return {"bad": [(i, why) for i, why in bad if i not in sketch], "renamed": renamed, "capacity": capacity,
            "sketch": sketch, "detail": drift.capacity_detail(plan, first_seq_full, core_full)}


def _ran_at(trace: Trace, run: ParallelRun, processed: np.ndarray) -> np.ndarray:
    """The time the NF ran each packet at in the parallel run (frames it never saw: their own)."""
    return np.where(processed, run.times, trace.timestamps).astype(np.uint64)


def serial_order(trace: Trace, run: ParallelRun) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The order the locks let the packets through (see the module docstring), and the packets
    whose write section overlapped another section."""
    n = len(trace)
    begin = run.ticket_begin.astype(np.int64)
    end = run.ticket_end.astype(np.int64)
    processed = reaching_the_nf(trace.frames)
    writer = (run.ran == RAN_WRITE) & processed
    problems: list[tuple[int, str]] = []
    idx = np.flatnonzero(processed)
    order = idx[np.argsort(begin[idx], kind="stable")]
    begins = begin[order]
    ends_max = np.maximum.accumulate(end[order]) if len(order) else end[order]
    for w in np.flatnonzero(writer).tolist():
        inside = np.searchsorted(begins, begin[w], side="right"), np.searchsorted(begins, end[w], side="left")
        if inside[1] > inside[0]:
            other = int(order[inside[0]])
            problems.append((w, f"its write section overlapped packet {other}'s section (core {int(run.cores[other])}):"
                                " the write lock did not exclude it"))
            continue
        before = np.searchsorted(begins, begin[w], side="left")
        if before > 0 and ends_max[before - 1] > begin[w]:
            problems.append((w, "its write section started inside another packet's section: the write lock did "
                                "not exclude it"))
    writer_ends = np.sort(end[writer])
    writer_rank = np.zeros(n, dtype=np.int64)
    writer_rank[writer] = np.searchsorted(np.sort(begin[writer]), begin[writer]) + 1
    epoch = np.where(writer, writer_rank, np.searchsorted(writer_ends, begin, side="left"))
    kind = np.where(writer, 0, 1)
    # Frames the NF never saw (runts) go first: they change nothing.
    epoch = np.where(processed, epoch, -1)
    permutation = np.lexsort((np.arange(n), end, _ran_at(trace, run, processed), kind, epoch))
    return permutation, problems


def _compare_serial(plan: ParallelPlan, trace: Trace, par_trace: Trace, run: ParallelRun, seq: RunResult,
                    defines: dict[str, str]) -> dict[str, Any]:
    """``trace`` is what the sequential run received (for the trace-order comparison), ``par_trace``
    what the parallel run received (the serial order permutes it)."""
    permutation, problems = serial_order(par_trace, run)
    processed = reaching_the_nf(par_trace.frames)
    for core in range(plan.cores):  # each core's packets keep their arrival order (runts aside)
        mine = permutation[(run.cores[permutation] == core) & processed[permutation]]
        if np.any(np.diff(mine) < 0):
            problems.append((int(mine[np.flatnonzero(np.diff(mine) < 0)[0] + 1]),
                             f"core {core}'s packets are out of arrival order in the serial order"))
    permuted = Trace(_ran_at(par_trace, run, processed)[permutation], par_trace.devices[permutation],
                     tuple(par_trace.frames[i] for i in permutation))
    serial = Outcome.of(run_trace(plan.source, permuted, defines))
    verdicts = np.empty(len(trace), dtype=np.int32)
    verdicts[permutation] = serial.verdicts
    frames: list[Optional[bytes]] = [None] * len(trace)
    for position, original in enumerate(permutation.tolist()):
        frames[original] = serial.frames[position]
    bad = list(problems)
    for i in range(len(trace)):
        if verdicts[i] != run.verdicts[i] or frames[i] != run.frames[i]:
            how = {RAN_WRITE: "write lock", RAN_CELLS: "reader pass that wrote cells under cell locks"}.get(
                int(run.ran[i]), "reader pass")
            bad.append((i, f"differs from the sequential NF run in the locks' order (ran in a {how})"))
    in_order = Outcome.of(seq)
    reordered = sum(1 for i in range(len(trace))
                    if in_order.verdicts[i] != run.verdicts[i] or in_order.frames[i] != run.frames[i])
    return {"bad": sorted(bad, key=lambda b: b[0]), "reordered": reordered, "serial_verdicts": verdicts}


class _ParallelFailed(Exception):
    """The parallel run failed on the trace: a verdict ("failed"), not a set-up error."""


def check_plan(plan: ParallelPlan, trace: Trace, solution: Any = None, *, shown: int = SHOWN,
               sanitize: Optional[str] = None, defines: tuple[str, ...] = (),
               timeout: Optional[float] = None, replies: Optional[bool] = None) -> CheckReport:
    """Generate ``plan``'s project in a temporary folder, replay ``trace`` on it and compare with the
    sequential NF. ``defines`` are extra -D flags for the build (fault injection in tests).
    ``replies`` (default: when the NF rewrites headers) closes the loop: each run also gets replies
    to what it sent. A replay that outlasts ``timeout`` seconds (default: a minute, plus one per
    5,000 packets beyond 300,000) counts as a failed parallel run: broken locking can corrupt state
    into endless loops. Set-up problems (EAL cannot start, a device the NF lacks) raise."""
    if len(trace) == 0:
        raise ConfigError("the trace is empty: nothing to compare")
    if not reaching_the_nf(trace.frames).any():
        raise ConfigError(f"none of the trace's {count(len(trace), 'packet')} reaches the NF: each is shorter than "
                          f"an Ethernet header ({MIN_FRAME} bytes), and the runtime drops such runts; nothing to compare")
    overrides = dict(plan.overrides)
    fields = renamable_fields(solution, plan) if solution is not None else frozenset()
    if replies is None:
        replies = rewrites(solution)
    with tempfile.TemporaryDirectory(prefix="nfx-check-") as folder:
        project = write_project(plan, folder)

        def run_parallel(t: Trace) -> ParallelRun:
            limit = timeout if timeout is not None else 60 + max(0, len(t) - 300_000) / 5000
            try:
                return run_replay(project, t, sanitize=sanitize, defines=defines, timeout=limit,
                                  paced=bool(plan.broadcast))
            except RunError as error:  # the sequential NF ran: a failing parallel run is a verdict
                raise _ParallelFailed(str(error)) from None

        try:
            loop = run_closed_loop(trace, lambda t: run_trace(plan.source, t, overrides), run_parallel,
                                   replies=replies, renamed=lambda s, p: renamed_equal(s, p, fields) is not None,
                                   serial_order=plan.strategy in SERIAL_ORDER)
        except _ParallelFailed as error:
            return CheckReport(plan.nf, plan.strategy, plan.cores, len(trace), RELATIONS[plan.strategy], (), 0,
                               (), 0, failure=str(error))
    seq_trace, par_trace, seq, run = loop.seq_trace, loop.par_trace, loop.seq, loop.par
    if plan.broadcast:  # replicated objects take broadcast writes
        from explorer.verify.replication import check_replicated
        return check_replicated(plan, loop, fields, shown, RELATIONS[f"sn-{plan.replication}"])
    n = len(seq_trace)
    expected = Outcome.of(seq)
    differs = bool(np.any(expected.verdicts != run.verdicts)) or any(f != g for f, g in zip(expected.frames, run.frames))
    notes: list[str] = unused_devices(plan.devices, seq_trace.devices)
    if not loop.fixed_point and plan.strategy not in SERIAL_ORDER:
        notes.append(f"the closed loop did not settle in {loop.rounds - 1} rounds: replies answer the last round's "
                     "outputs")
    result: dict[str, Any] = {"bad": [], "renamed": 0, "capacity": [], "sketch": {}, "detail": "", "reordered": 0}
    seq_verdicts = expected.verdicts
    if plan.strategy in SERIAL_ORDER:
        result.update(_compare_serial(plan, seq_trace, par_trace, run, seq, overrides))
        seq_verdicts = result["serial_verdicts"]
    elif differs:
        if solution is None:
            raise ConfigError("checking a shared-nothing plan needs its solution (for the renamable fields)")
        seq = run_trace(plan.source, seq_trace, overrides, calls=True)
        result.update(_compare_sn(plan, seq_trace, par_trace, run, seq, fields))
        answering = drift.replies_to_drift(result["bad"], loop.answers, result["sketch"], seq_trace, par_trace)
        if answering:
            result["bad"] = [(i, why) for i, why in result["bad"] if i not in answering]
            result["sketch"] = {**result["sketch"], **answering}
        if result["renamed"]:
            notes.append("renamed fields (written from allocated indices): " + ", ".join(sorted(fields)))

    frames = capture_frames(seq_trace.devices, loop.origin)
    answers = loop.answers

    def packet(index: int, why: str, kind: str) -> Difference:
        return Difference(index, int(seq_trace.devices[index]), int(run.cores[index]), int(seq_verdicts[index]),
                          int(run.verdicts[index]), why, kind, packet_headers(seq_trace.frames[index]),
                          int(answers[index]), int(frames[index]))

    bad, unsettled = unsettled_tail(result["bad"], loop.settled)
    differences = []
    if bad:
        calls = drift.calls_by_packet(seq.calls) if seq.calls else {}
        names = {o.alloc_index: o.name for o in plan.objects}
        differences = [packet(i, why or _explain_sharding(i, seq_trace, run, calls, names), "difference")
                       for i, why in bad[:shown]]
    drifting = sorted([(i, "capacity", why) for i, why in result["capacity"]]
                      + [(i, "sketch", why) for i, why in result["sketch"].items()])
    ran, runts = per_core(run.cores, seq_trace.frames, plan.cores)
    return CheckReport(plan.nf, plan.strategy, plan.cores, n, RELATIONS[plan.strategy], tuple(differences),
                       len({i for i, _ in bad}), ran,
                       int(np.sum(run.ran == RAN_WRITE)), result["renamed"], len(result["capacity"]), result["detail"],
                       result["reordered"], tuple(notes), sketch_drift=len(result["sketch"]),
                       drift=tuple(packet(i, why, kind) for i, kind, why in drifting[:shown]), replies=loop.replies,
                       translated=loop.translated, runts=runts, cell_passes=int(np.sum(run.ran == RAN_CELLS)),
                       unsettled=unsettled, settled=loop.settled)



def check(solution: Any, trace: Trace, cores: int = 2, strategy: str = "auto", *, shown: int = SHOWN,
          sanitize: Optional[str] = None, defines: tuple[str, ...] = (),
          timeout: Optional[float] = None, replies: Optional[bool] = None,
          replication: str = "lagged") -> CheckReport:
    """Run the sequential and the parallel build of ``solution``'s NF on ``trace`` and compare them
    (see the module docstring for the relation of each strategy; ``replication``: how an sn build
    broadcasts writes to replicated objects, explorer.verify.replication)."""
    plan = parallel_plan(solution, strategy, cores, replication)
    return check_plan(plan, trace, solution, shown=shown, sanitize=sanitize, defines=defines, timeout=timeout,
                      replies=replies)
