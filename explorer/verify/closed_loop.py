"""Closed-loop runs for the checker: each run gets replies to what *it* emitted.

An NF that rewrites (a NAT) only reaches its return path with replies to the frames it sent, and
the parallel build may send different (consistently renamed) external ports than the sequential
one. So the sequential run and the parallel run each get their own replies
(``explorer.traffic.replies``), built from their own outputs, and packets that the trace itself
addresses to a port the sequential run emitted ("user-made replies") reach the parallel run
addressed to the port the parallel run emitted for the same packet.

Replies can change what later packets see (a reply refreshes a flow), so the runs are repeated
with replies to the new outputs until the outputs they answer stop changing (a fixed point,
usually after the second round; at most ``ROUNDS``). Each round settles a longer prefix: a NAT
whose flows expire within a millisecond under churn hands ports out differently once replies
refresh its flows, and took 8 rounds. Without a fixed point, the packets from the first one whose
reply answers an output that changed are not comparable (each run got stale replies of its own):
``LoopedRuns.settled`` says where that starts.

Under locks or tm the parallel run is compared with the NF run serially in the order the run took,
on the very packets it received: any replies are as good an input as any other, and a fixed point
is neither needed nor to be had (the cores interleave differently each run, so the outputs answered
keep changing: lb under locks never settled in 12 rounds and set three quarters of its packets
aside). There one round of replies, each run answering its first run's outputs, is the loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from explorer.run import RunResult
from explorer.traffic.replies import ClosedLoop, l4_start, with_replies
from explorer.traffic.trace import Trace
from explorer.verify.renaming import update_checksums
from explorer.verify.replay import ParallelRun

ROUNDS = 12  # rounds of replies at most (each a sequential and a parallel run)


@dataclass(frozen=True, eq=False)
class Outcome:
    """Per packet of a run: its verdict and its frame after processing (None when dropped)."""

    verdicts: np.ndarray  # int32
    frames: tuple[Optional[bytes], ...]

    @staticmethod
    def of(result: RunResult | ParallelRun) -> "Outcome":
        if isinstance(result, ParallelRun):
            return Outcome(np.asarray(result.verdicts, dtype=np.int32), tuple(result.frames))
        return Outcome(result.codes, result.frames)


@dataclass(frozen=True, eq=False)
class LoopedRuns:
    """The traces each side received, the raw results, and what the loop did."""

    seq_trace: Trace
    par_trace: Trace
    seq: RunResult
    par: ParallelRun
    origin: np.ndarray  # per packet: -1, or the original packet whose output it answers
    rounds: int
    fixed_point: bool
    translated: int  # packets of the trace readdressed for the parallel run
    settled: int = -1  # without a fixed point: packets from this one on got stale replies (else -1)

    @property
    def replies(self) -> int:
        return int(np.sum(self.origin >= 0))

    @property
    def answers(self) -> np.ndarray:
        """Per packet: the packet whose output it answers, numbered as the packets of these runs (as
        a report numbers them; ``origin`` numbers the original trace's), or -1."""
        at = np.flatnonzero(self.origin < 0)  # the original packets keep their order among the replies
        out = np.full(len(self.origin), -1, dtype=np.int64)
        replies = self.origin >= 0
        out[replies] = at[self.origin[replies]]
        return out


def _tuple(frame: bytes) -> Optional[tuple[bytes, bytes, int, bytes, bytes]]:
    """(src ip, dst ip, protocol, src port, dst port) of an unfragmented TCP/UDP frame."""
    l4 = l4_start(frame)
    if l4 is None:
        return None
    return frame[26:30], frame[30:34], frame[23], frame[l4:l4 + 2], frame[l4 + 2:l4 + 4]


def _swapped(t: tuple) -> tuple:
    return t[1], t[0], t[2], t[4], t[3]


def _readdress(frame: bytes, t: tuple) -> bytes:
    """``frame`` with its addresses and ports set to ``t``, checksums recomputed when they were valid."""
    valid = update_checksums(frame) == frame
    out = bytearray(frame)
    l4 = l4_start(frame)
    out[26:30], out[30:34] = t[0], t[1]
    out[l4:l4 + 2], out[l4 + 2:l4 + 4] = t[3], t[4]
    return update_checksums(bytes(out)) if valid else bytes(out)


def emitted_pairs(trace: Trace, seq: Outcome, par: Outcome, positions: np.ndarray) -> tuple[dict, dict]:
    """What each run sent for every packet of the original trace that both forwarded to the same
    device (not flooded): ``{k: (device, frame)}`` for the sequential and for the parallel run."""
    seq_out, par_out = {}, {}
    for k, at in enumerate(positions.tolist()):
        v = int(seq.verdicts[at])
        if v < 0 or v != int(par.verdicts[at]) or seq.frames[at] is None or par.frames[at] is None:
            continue
        seq_out[k] = (v, seq.frames[at])
        par_out[k] = (v, par.frames[at])
    return seq_out, par_out


def translate(trace: Trace, seq_out: dict, par_out: dict, renamed: Callable[[bytes, bytes], bool]) -> tuple[Trace, int]:
    """The trace as the parallel run must receive it: a packet on device d that answers (by its
    addresses and ports) a frame the sequential run sent on d earlier, where the parallel run sent
    that frame renamed, is readdressed to the parallel run's frame. Returns the trace and how many
    packets changed."""
    answers: dict[tuple, list[tuple[int, tuple]]] = {}
    for k in sorted(seq_out):
        device, seq_frame = seq_out[k]
        par_frame = par_out[k][1]
        if seq_frame == par_frame or not renamed(seq_frame, par_frame):
            continue
        s, p = _tuple(seq_frame), _tuple(par_frame)
        if s is None or p is None or s == p:
            continue
        answers.setdefault((device, _swapped(s)), []).append((int(trace.timestamps[k]), _swapped(p)))
    if not answers:
        return trace, 0
    frames = list(trace.frames)
    changed = 0
    for j, frame in enumerate(trace.frames):
        t = _tuple(frame)
        candidates = answers.get((int(trace.devices[j]), t)) if t is not None else None
        if not candidates:
            continue
        stamp = int(trace.timestamps[j])
        earlier = [p for sent, p in candidates if sent < stamp]
        if earlier and earlier[-1] != t:
            frames[j] = _readdress(frame, earlier[-1])
            changed += 1
    return Trace(trace.timestamps, trace.devices, tuple(frames)), changed


def run_closed_loop(trace: Trace, run_seq: Callable[[Trace], RunResult], run_par: Callable[[Trace], ParallelRun],
                    *, replies: bool, renamed: Callable[[bytes, bytes], bool],
                    serial_order: bool = False) -> LoopedRuns:
    """Run both sides on ``trace``; then, with ``replies``, on the trace plus replies to what each
    side sent (and in any case with user-made replies readdressed for the parallel run), until the
    frames answered stop changing; with ``serial_order`` (the parallel run is compared in its own
    order: locks, tm) after one round of replies, nothing set aside."""
    n = len(trace)
    seq, par = run_seq(trace), run_par(trace)
    seq_trace = par_trace = trace
    origin = np.full(n, -1, dtype=np.int64)
    positions = np.arange(n, dtype=np.int64)
    translated = 0
    answered: Optional[tuple[dict, dict]] = None
    made: dict[bytes, bytes] = {}  # replies by the frame they answer, from round to round
    for rounds in range(1, ROUNDS + 1):
        pairs = emitted_pairs(trace, Outcome.of(seq), Outcome.of(par), positions)
        readdressed, translated = translate(trace, *pairs, renamed)
        if pairs == answered or (not replies and translated == 0):
            return LoopedRuns(seq_trace, par_trace, seq, par, origin, rounds, True, translated)
        answered = pairs
        if replies:
            seq_loop = with_replies(trace, pairs[0], made=made)
            par_loop = with_replies(readdressed, pairs[1], made=made)
        else:
            seq_loop = ClosedLoop(trace, origin, positions)
            par_loop = ClosedLoop(readdressed, origin, positions)
        seq_trace, par_trace = seq_loop.trace, par_loop.trace
        origin, positions = seq_loop.origin, seq_loop.position
        seq, par = run_seq(seq_trace), run_par(par_trace)
        if not replies:  # readdressing alone: one more run settles it
            return LoopedRuns(seq_trace, par_trace, seq, par, origin, rounds + 1, True, translated)
        if serial_order:
            return LoopedRuns(seq_trace, par_trace, seq, par, origin, rounds + 1, False, translated)
    final = emitted_pairs(trace, Outcome.of(seq), Outcome.of(par), positions)
    stale = [k for side, now in zip(answered or ({}, {}), final) for k in side.keys() | now.keys()
             if side.get(k) != now.get(k)]
    if not stale:  # the last round reached it
        return LoopedRuns(seq_trace, par_trace, seq, par, origin, ROUNDS + 1, True, translated)
    settled = int(positions[min(stale)]) + 1  # its reply, and so what follows, may be stale
    return LoopedRuns(seq_trace, par_trace, seq, par, origin, ROUNDS + 1, False, translated, settled)


def unsettled_tail(bad: list[tuple[int, str]], settled: int) -> tuple[list[tuple[int, str]], int]:
    """``bad`` without the packets from ``settled`` on (-1: none), where a closed loop without a
    fixed point gave each run stale replies of its own; and how many differing packets that set aside."""
    if settled < 0:
        return bad, 0
    kept = [(i, why) for i, why in bad if i < settled]
    return kept, len({i for i, _ in bad if i >= settled})
