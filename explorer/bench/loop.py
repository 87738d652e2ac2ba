"""Closed-loop benchmark traces: each build measured on its own replies.

An NF that rewrites headers (a NAT) reaches its return path only with replies to what it sent, and
each build sends its own values (a sequential NAT's ports are not a parallel one's: per-core
pools). So every build is run once on the trace, the far end's replies to what it forwarded are
merged in (``explorer.traffic.replies``), and that trace is what the build is measured on; the
share of packets per verdict, from a run of the looped trace, says which paths the benchmark
exercised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.run import DROP, FLOOD, run_trace
from explorer.traffic.replies import with_replies
from explorer.traffic.trace import Trace
from explorer.verify.replay import run_replay


@dataclass(frozen=True)
class Verdicts:
    """Shares of a trace's packets per verdict: forwarded per output device, dropped, flooded."""

    packets: int
    forwarded: tuple[tuple[int, int], ...]  # (output device, packets)
    dropped: int
    flooded: int
    replies: int = 0  # of the packets, closed-loop replies

    def text(self) -> str:
        parts = [f"{100 * n / self.packets:.1f}% to device {d}" for d, n in self.forwarded]
        parts += [f"{100 * self.dropped / self.packets:.1f}% dropped"]
        if self.flooded:
            parts.append(f"{100 * self.flooded / self.packets:.1f}% flooded")
        loop = f" ({self.replies} of them replies to what this build sent)" if self.replies else ""
        return f"{self.packets} packets{loop}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"packets": self.packets, "forwarded": {str(d): n for d, n in self.forwarded}, "dropped": self.dropped,
                "flooded": self.flooded, "replies": self.replies}


def verdicts(values: np.ndarray, replies: int = 0) -> Verdicts:
    values = np.asarray(values)
    devices = sorted(int(d) for d in np.unique(values[values >= 0]))
    return Verdicts(len(values), tuple((d, int(np.sum(values == d))) for d in devices),
                    int(np.sum(values == DROP)), int(np.sum(values == FLOOD)), replies)


def emitted(project: Any, trace: Trace) -> dict[int, tuple[int, bytes]]:
    """What ``project``'s build sends for ``trace`` as the bench's warm-up lap leaves its state: the
    warm-up runs every packet in trace order, so a seq, locks or tm build then holds what the
    sequential NF holds (its run says what they send), and an sn build what each core's own run in
    trace order holds (its replay, deterministic for sn, says so)."""
    plan = project.plan
    if plan.strategy == "sn":
        run = run_replay(project, trace)
        return {i: (int(v), run.frames[i]) for i, v in enumerate(run.verdicts.tolist())
                if v >= 0 and run.frames[i] is not None}
    seq = run_trace(plan.source, trace, dict(plan.overrides))
    return {index: (verdict, frame) for index, verdict, frame in seq.outputs if verdict >= 0}


def closed_loop(project: Any, trace: Trace) -> tuple[Trace, Verdicts]:
    """``trace`` plus the replies to what ``project``'s build forwards on it, and the verdicts of
    the build on that looped trace."""
    looped = with_replies(trace, emitted(project, trace))
    # Paced, as the bench's warm-up lap runs it: run freely, a reply may reach its core before the
    # other core has forwarded the packet it answers (locks: any core takes any packet), which the
    # warm-up lap, and so the timed laps, never see.
    again = run_replay(project, looped.trace, paced=True)
    return looped.trace, verdicts(again.verdicts, looped.replies)
