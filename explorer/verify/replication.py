"""Checking a shared-nothing build whose replicated objects take broadcast writes (nf_replica.h).

The replay runs *paced* (``nfx-replay --paced``): packets run on the cores RSS picks, but one at a
time in trace order, each after the previous one is done, so "an earlier write" means an earlier
packet's. Each packet's log says which writes its core had applied when it ran (its epoch) and
which write it published. Then:

* every run must equal the sequential NF run in the *replica order*: the writes in their
  sequence, and every other packet right after the last write its core had applied (each core's
  packets keep their order). Any difference from that run is a failure;
* a packet that ran before its core applied an earlier packet's write *lagged*; strict replication
  allows none (a write is on every core before the next packet starts);
* every difference from the sequential run in trace order must come from lag: either the packet
  lagged itself, or it uses state that a lagging packet left on its core (a flow that picked its
  backend from the old backend set keeps it). Each is counted against the write that was missed,
  with the longest lag in packets (from the write to the last packet that missed it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from explorer.codegen.planning import ParallelPlan
from explorer.run import RunResult, run_trace
from explorer.traffic.trace import Trace
from explorer.verify import drift
from explorer.verify.closed_loop import LoopedRuns, Outcome, unsettled_tail
from explorer.verify.renaming import flow_key, renamed_equal
from explorer.verify.replay import RAN_WRITE, ParallelRun
from explorer.verify.report import CheckReport, Difference, capture_frames, packet_headers, per_core, unused_devices


@dataclass(frozen=True)
class MissedWrite:
    """A write that packets ran without, after the packet that made it was done."""

    write: int  # its sequence number (1, 2, ...)
    packet: int  # the trace packet that made it
    device: int
    changed: str  # the replicated object whose change made that packet a writer
    lagging: int  # packets that ran without it
    max_lag: int  # trace packets from the write to the last packet that missed it
    core_lag: int  # the most packets one core ran without it (at most one burst)
    differing: int  # packets whose outcome differs from the trace-order run because of it
    # the first of those: (packet, its core, the sequential NF's output, the parallel run's output)
    example: Optional[tuple[int, int, Optional[bytes], Optional[bytes]]] = None
    headers: tuple[tuple[str, Any], ...] = ()  # of the writing packet (report.packet_headers)

    @property
    def text(self) -> str:
        return (f"write #{self.write} (packet {self.packet}, device {self.device}, changing {self.changed}): "
                f"{self.lagging} packets ran without it (up to {self.core_lag} on one core, the last {self.max_lag} "
                f"packets after it); {self.differing} outcomes differ because of it")

    def to_dict(self) -> dict[str, Any]:
        return {"write": self.write, "packet": self.packet, "device": self.device, "changed": self.changed,
                "lagging": self.lagging, "max_lag": self.max_lag, "core_lag": self.core_lag,
                "differing": self.differing, "headers": dict(self.headers),
                "example": None if self.example is None else {
                    "packet": self.example[0], "core": self.example[1],
                    "sequential": self.example[2].hex() if self.example[2] is not None else None,
                    "parallel": self.example[3].hex() if self.example[3] is not None else None}}


def lag_summary(missed: tuple[MissedWrite, ...], writes: int, shown: int = 3) -> list[str]:
    """A few lines for people: how much lag, and the writes whose lag changed most outcomes."""
    if not missed:
        return [f"no packet ran without an earlier write ({writes} writes)"]
    lines = [f"{len(missed)} of {writes} writes were missed by some packets ({sum(m.lagging for m in missed)} times a "
             f"packet ran without a write), by at most {max(m.core_lag for m in missed)} packets of one core per write "
             f"(one burst), at most {max(m.max_lag for m in missed)} packets after the write"]
    worst = sorted(missed, key=lambda m: (-m.differing, m.write))[:shown]
    lines += [m.text for m in worst]
    return lines


@dataclass(frozen=True)
class ReplicaCheck:
    bad: tuple[tuple[int, str], ...]  # packets that break the relation, and why
    missed: tuple[MissedWrite, ...]
    lag_differences: int  # packets that differ from the trace-order run, all explained by lag
    writes: int
    serial_verdicts: np.ndarray


def replica_order(run: ParallelRun) -> np.ndarray:
    """The trace's packet numbers in replica order (see the module docstring)."""
    n = len(run)
    seq = run.ticket_end.astype(np.int64)
    epoch = run.ticket_begin.astype(np.int64)
    writer = seq > 0
    major = np.where(writer, seq, epoch)
    minor = np.where(writer, 0, 1)
    return np.lexsort((np.arange(n), minor, major))


def replica_order_differences(plan: ParallelPlan, trace: Trace, run: ParallelRun,
                              defines: dict[str, str]) -> list[int]:
    """For any replay, paced or not: the packets whose outcome differs from the sequential NF run in
    replica order (none when the replicas took every write in one order and nothing else broke)."""
    order = replica_order(run)
    permuted = Trace(trace.timestamps[order], trace.devices[order], tuple(trace.frames[i] for i in order))
    serial = Outcome.of(run_trace(plan.source, permuted, defines))
    verdicts, frames = serial.verdicts, serial.frames
    return sorted(int(original) for position, original in enumerate(order.tolist())
                  if verdicts[position] != run.verdicts[original] or frames[position] != run.frames[original])


def compare_replicated(plan: ParallelPlan, trace: Trace, run: ParallelRun, seq: RunResult,
                       defines: dict[str, str], same: Any) -> ReplicaCheck:
    """``same(i, verdict, frame)`` -> None when packet i's parallel outcome matches (up to what the
    sn relation allows: renaming, capacity drift), else why not."""
    n = len(trace)
    order = replica_order(run)
    permuted = Trace(trace.timestamps[order], trace.devices[order], tuple(trace.frames[i] for i in order))
    serial = Outcome.of(run_trace(plan.source, permuted, defines))
    serial_verdicts_p, serial_frames_p = serial.verdicts, serial.frames
    serial_verdicts = np.empty(n, dtype=np.int32)
    serial_verdicts[order] = serial_verdicts_p
    serial_frames: list[Optional[bytes]] = [None] * n
    for position, original in enumerate(order.tolist()):
        serial_frames[original] = serial_frames_p[position]

    seq_numbers = run.ticket_end.astype(np.int64)
    writer_packets = np.flatnonzero(seq_numbers > 0)
    by_seq = {int(seq_numbers[w]): int(w) for w in writer_packets}
    if sorted(by_seq) != list(range(1, len(by_seq) + 1)):
        return ReplicaCheck(((0, "the writes' sequence numbers are not 1, 2, 3, ... (a write was lost or doubled)"),),
                            (), 0, len(by_seq), serial_verdicts)
    # Paced: a write is done before the next packet starts, so packet i should have seen every
    # write made by a packet before it.
    before = np.cumsum(np.r_[0, (seq_numbers > 0)[:-1].astype(np.int64)])
    epoch = run.ticket_begin.astype(np.int64)
    lagging = (seq_numbers == 0) & (epoch < before)

    bad: list[tuple[int, str]] = []
    if np.any((seq_numbers > 0) & (epoch != seq_numbers)):
        w = int(np.flatnonzero((seq_numbers > 0) & (epoch != seq_numbers))[0])
        bad.append((w, f"it published write #{int(seq_numbers[w])} without having applied every earlier write"))
    if np.any(epoch > np.maximum(before, seq_numbers)):
        i = int(np.flatnonzero(epoch > np.maximum(before, seq_numbers))[0])
        bad.append((i, "it saw a write that a later packet made"))
    if plan.replication == "strict":
        for i in np.flatnonzero(lagging)[:5].tolist():
            bad.append((i, f"strict replication let it run without write #{int(epoch[i]) + 1} "
                           f"(packet {by_seq[int(epoch[i]) + 1]})"))

    in_order = Outcome.of(seq)
    trace_verdicts, trace_frames = in_order.verdicts, in_order.frames
    # The last lagging packet on each core, and per flow, so that consequences can be named.
    last_lag: dict[int, int] = {}
    flow_lag: dict[tuple, int] = {}

    cause = np.full(n, -1, dtype=np.int64)  # the write each differing packet is charged to
    lag_differences = 0
    for i in range(n):
        core = int(run.cores[i])
        flow = flow_key(int(trace.devices[i]), trace.frames[i])
        if lagging[i]:
            last_lag[core] = i
            flow_lag[(core, flow)] = i
        why = same(i, int(serial_verdicts[i]), serial_frames[i])
        if why is not None:
            bad.append((i, f"differs from the sequential NF run in the order its core applied the writes ({why})"))
            continue
        if same(i, int(trace_verdicts[i]), trace_frames[i]) is None:
            continue
        source = i if lagging[i] else flow_lag.get((core, flow), last_lag.get(core, -1))
        if source < 0:
            bad.append((i, "differs from the trace-order run, but neither it nor an earlier packet on its core "
                           "ran without a write"))
            continue
        cause[i] = int(epoch[source]) + 1
        lag_differences += 1

    missed = []
    for s, w in sorted(by_seq.items()):
        missing = np.flatnonzero(lagging & (epoch < s) & (np.arange(n) > w))
        if len(missing) == 0:
            continue
        per_core = np.bincount(run.cores[missing].astype(np.int64))
        charged = np.flatnonzero(cause == s)
        example = None
        if len(charged):
            first = int(charged[0])
            example = (first, int(run.cores[first]), trace_frames[first], run.frames[first])
        missed.append(MissedWrite(s, w, int(trace.devices[w]), _changed(plan, run, w), len(missing),
                                  int(missing.max() - w), int(per_core.max()), len(charged), example,
                                  packet_headers(trace.frames[w])))
    return ReplicaCheck(tuple(bad), tuple(missed), lag_differences, len(by_seq), serial_verdicts)


def _changed(plan: ParallelPlan, run: ParallelRun, packet: int) -> str:
    ordinal = int(run.abort_object[packet])
    for o in plan.objects:
        if o.alloc_index == ordinal:
            return o.name
    return f"object #{ordinal}"


def check_replicated(plan: ParallelPlan, loop: LoopedRuns, fields: frozenset[str], shown: int,
                     relation: str) -> CheckReport:
    """The checker's report for an sn plan with broadcast objects (paced replay, see above), on the
    packets the parallel run received (closed-loop replies included)."""
    trace, run = loop.par_trace, loop.par
    overrides = dict(plan.overrides)
    same_trace = loop.seq_trace.frames == trace.frames
    seq = loop.seq if same_trace else run_trace(plan.source, trace, overrides)
    first_seq_full, core_full = drift.capacity_limits(seq, run)
    limits = [*core_full.values()] + ([first_seq_full] if first_seq_full is not None else [])
    drifting = min(limits, default=None)
    set_aside: set[int] = set()

    def same(i: int, verdict: int, frame: Optional[bytes]) -> Optional[str]:
        if verdict == run.verdicts[i] and (frame == run.frames[i]
                                           or renamed_equal(frame or b"", run.frames[i] or b"", fields) is not None):
            return None
        if drifting is not None and i >= drifting:  # a core's share (or the table) is full from here
            set_aside.add(i)
            return None
        return (f"verdict {verdict_text(verdict)} there, {verdict_text(int(run.verdicts[i]))} here"
                if verdict != run.verdicts[i] else "the output bytes differ")

    result = compare_replicated(plan, trace, run, seq, overrides, same)
    bad, unsettled = unsettled_tail(list(result.bad), loop.settled)
    notes = unused_devices(plan.devices, trace.devices)
    notes += [] if loop.fixed_point else [f"the closed loop did not settle in {loop.rounds - 1} rounds"]
    frames = capture_frames(trace.devices, loop.origin)
    answers = loop.answers
    differences = tuple(Difference(i, int(trace.devices[i]), int(run.cores[i]), int(result.serial_verdicts[i]),
                                   int(run.verdicts[i]), why, "difference", packet_headers(trace.frames[i]),
                                   int(answers[i]) if i < len(answers) else -1, int(frames[i]))
                        for i, why in bad[:shown])
    ran, runts = per_core(run.cores, trace.frames, plan.cores)
    return CheckReport(plan.nf, plan.strategy, plan.cores, len(trace), relation, differences,
                       len({i for i, _ in bad}), ran,
                       int(np.sum(run.ran == RAN_WRITE)), 0, len(set_aside),
                       drift.capacity_detail(plan, first_seq_full, core_full) if set_aside else "", 0, tuple(notes),
                       replies=loop.replies, translated=loop.translated, replication=plan.replication,
                       writes=result.writes, missed=result.missed, lag_differences=result.lag_differences,
                       runts=runts, unsettled=unsettled, settled=loop.settled)


def verdict_text(verdict: int) -> str:
    from explorer.verify.report import verdict_name
    return verdict_name(verdict)
