"""Documented drift of shared-nothing builds: what sharding changes on purpose, told apart from bugs.

* Capacity: a core holds only its share (``ParallelPlan.shares``) of a divided table, so it can refuse an
  index the sequential table would still give. From the first packet at which a core's share ran
  out (or the sequential table refused an index, for every core), that core's packets no longer
  follow the sequential run; those that differ are set aside uncompared, and the verdict says so.
* Sketches: a sharded count-min sketch is a full-width copy per core that counts only the keys its
  core sees. An estimate is a minimum over counters that other keys share, so the sequential sketch,
  which counts every key, can estimate more than a core's copy. A packet is sketch drift when
  (a) it, or an earlier packet on its core whose state it reuses, got an estimate that differs
  from the sequential one for a key that only this core ever touched or estimated (so the core's
  copy saw every touch of that key: the difference is collisions with other cores' keys, not a key
  split across cores), and (b) the NF run sequentially on just this core's packets gives the
  parallel run's outcome for it (so the parallel build did what one core of the NF should).
  In a closed loop, a reply to a packet whose output was sketch drift (an estimate written into
  a header) is drift too when the two runs' replies differ: each run answered its own output.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from explorer.run import RunResult, StateCall
from explorer.traffic.trace import Trace
from explorer.verify.renaming import renamed_equal
from explorer.verify.replay import ParallelRun

KEYED_CALLS = ("nf_map_get", "nf_map_put", "nf_map_erase", "nf_sketch_touch", "nf_sketch_estimate")
SKETCH_CALLS = ("nf_sketch_touch", "nf_sketch_estimate")


def calls_by_packet(calls: tuple[StateCall, ...]) -> dict[int, list[StateCall]]:
    out: dict[int, list[StateCall]] = {}
    for call in calls:
        out.setdefault(call.packet, []).append(call)
    return out


def fresh_indices(plan, seq_calls: dict[int, list[StateCall]]) -> set[int]:
    """Packets at which the sequential run allocated a new index of a divided dchain: their flow's
    index-derived values start anew (an expired entry's index is handed out again in each build's
    own order), which ``explorer.verify.renaming`` needs to tell reuse from a clash."""
    chains = {o.alloc_index for o in plan.objects if o.kind == "dchain" and o.per_core != o.capacity}
    return {i for i, calls in seq_calls.items()
            if any(c.call == "nf_dchain_allocate_new_index" and c.object in chains and c.results[:1] == ("01",)
                   for c in calls)}


# ---- capacity -----------------------------------------------------------------------------------

def sequential_refusals(seq: RunResult) -> list[int]:
    """Packets at which the sequential run's dchain refused a new index (its table was full)."""
    return [c.packet for c in seq.calls if c.call == "nf_dchain_allocate_new_index" and c.results[:1] == ("00",)]


def capacity_limits(seq: RunResult, run: ParallelRun) -> tuple[Optional[int], dict[int, int]]:
    """The first packet at which the sequential table refused an index (None if never), and per core
    the first packet at which its share ran out."""
    refused = sequential_refusals(seq)
    core_full: dict[int, int] = {}
    for i in np.flatnonzero(run.capacity_hit).tolist():
        core_full.setdefault(int(run.cores[i]), i)
    return (min(refused) if refused else None), core_full


def capacity_detail(plan, first_seq_full: Optional[int], core_full: dict[int, int]) -> str:
    detail = []
    if core_full:
        shares = ", ".join(f"{o.name} {' '.join(str(n) for n in plan.shares(o.name))}" for o in plan.objects
                           if o.kind == "dchain" and o.per_core != o.capacity)
        detail.append("a core's share of indices ran out on core " + ", ".join(
            f"{c} at packet {p}" for c, p in sorted(core_full.items())) + (f" (shares: {shares})" if shares else ""))
    if first_seq_full is not None:
        detail.append(f"the sequential table refused an index at packet {first_seq_full}")
    return "; ".join(detail)


# ---- sketches -----------------------------------------------------------------------------------

def _estimates(calls: list[StateCall], sketches: dict[int, str]) -> list[tuple[int, Optional[str], tuple[str, ...]]]:
    return [(c.object, c.key, c.results) for c in calls if c.call == "nf_sketch_estimate" and c.object in sketches]


def _same_outcome(model: tuple[int, Optional[bytes]], verdict: int, frame: Optional[bytes],
                  fields: frozenset[str]) -> bool:
    if model[0] != verdict:
        return False
    if model[1] == frame:
        return True
    return model[1] is not None and frame is not None and renamed_equal(model[1], frame, fields) is not None


def sketch_drift(plan, trace: Trace, run: ParallelRun, seq_calls: dict[int, list[StateCall]],
                 candidates: list[int], fields: frozenset[str],
                 run_alone: Callable[[Trace], RunResult]) -> dict[int, str]:
    """Which of the ``candidates`` (packets that differ from the sequential run, indices into
    ``trace``, the trace the parallel run received) are sketch drift, and why. ``run_alone`` runs
    the sequential NF with its call log on one core's packets."""
    sketches = {o.alloc_index: o.name for o in plan.objects if o.kind == "sketch" and o.decision == "shard"}
    if not sketches or not candidates:
        return {}
    key_cores: dict[tuple[int, Optional[str]], set[int]] = {}
    for i, calls in seq_calls.items():
        for c in calls:
            if c.call in SKETCH_CALLS and c.object in sketches:
                key_cores.setdefault((c.object, c.key), set()).add(int(run.cores[i]))
    found: dict[int, str] = {}
    wanted = set(candidates)
    for core in sorted({int(run.cores[i]) for i in candidates}):
        mine = np.flatnonzero(run.cores == core)
        alone = run_alone(Trace(trace.timestamps[mine], trace.devices[mine], tuple(trace.frames[i] for i in mine)))
        model_calls = {int(mine[k]): calls for k, calls in calls_by_packet(alone.calls).items()}
        outcome = {int(mine[v.index]): (v.verdict, None) for v in alone.verdicts}
        for index, verdict, frame in alone.outputs:
            outcome[int(mine[index])] = (verdict, frame)
        tainted: dict[tuple[int, Optional[str]], tuple[int, str]] = {}  # key -> (root packet, why)
        for i in mine.tolist():
            seq_here, model_here = seq_calls.get(i, []), model_calls.get(i, [])
            cause = None
            for s, m in zip(_estimates(seq_here, sketches), _estimates(model_here, sketches)):
                if s != m and s[:2] == m[:2] and key_cores.get(s[:2]) == {core}:
                    cause = (i, f"sketch {sketches[s[0]]}: core {core}'s copy estimates key {s[1]} at "
                                f"{int(m[2][0], 16)}, the sequential sketch at {int(s[2][0], 16)}: each core counts "
                                "only its own keys, so other cores' keys do not collide in its counters")
                    break
            keys = {(c.object, c.key) for c in seq_here + model_here if c.call in KEYED_CALLS and c.key is not None}
            if cause is None:
                cause = next((tainted[k] for k in sorted(keys, key=str) if k in tainted), None)
            if cause is None:
                continue
            for k in keys:
                tainted.setdefault(k, cause)
            if i in wanted and _same_outcome(outcome[i], int(run.verdicts[i]), run.frames[i], fields):
                root, why = cause
                found[i] = why if root == i else f"reuses state of packet {root}, whose {why}"
    return found


def replies_to_drift(bad: list[tuple[int, str]], answers: np.ndarray, drifted: dict[int, str], seq_trace: Trace,
                     par_trace: Trace) -> dict[int, str]:
    """Which ``bad`` packets are replies (``answers``: the packet whose output each answers, or -1,
    ``LoopedRuns.answers``) to a packet in ``drifted`` that reached the two runs as different
    frames: the sequential run got a reply to its output, the parallel run to its own drifted one,
    so their outcomes are not comparable (a reply that reached both alike is still compared)."""
    found: dict[int, str] = {}
    for i, _ in bad:
        answered = int(answers[i]) if i < len(answers) else -1
        if answered in drifted and seq_trace.frames[i] != par_trace.frames[i]:
            found[i] = (f"a reply to packet {answered}, whose output differed as sketch drift, so each run got the "
                        "reply to its own output")
    return found
