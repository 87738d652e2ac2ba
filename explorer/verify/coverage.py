"""Which analysed path each packet of a sequential run followed, and the path coverage of a trace.

A packet follows path P when P's condition holds for the packet's fields with P's state-result
symbols bound, in order, to the results the runtime logged for the packet's calls (the j-th access
of P to the packet's j-th logged call; 0 where the packet made fewer calls, and then P's own
conditions on those results, or its other accesses, tell it apart). Exactly one path should match
every packet the NF saw (runts, shorter than an Ethernet header, never reach it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer import ir
from explorer.run import RunResult, StateCall
from explorer.wire import reaching_the_nf
from explorer.symbex.evaluate import compile_term, frames_env
from explorer.traffic.trace import Trace


def calls_by_packet(result: RunResult, packets: int) -> list[list[StateCall]]:
    out: list[list[StateCall]] = [[] for _ in range(packets)]
    for call in result.calls:
        out[call.packet].append(call)
    return out


def result_table(calls: list[list[StateCall]]) -> dict[tuple[int, int], np.ndarray]:
    """``table[(j, r)][i]``: result r of packet i's j-th logged call (0 where it has none)."""
    columns: dict[tuple[int, int], list[int]] = {}
    n = len(calls)
    for i, mine in enumerate(calls):
        for j, call in enumerate(mine):
            for r, text in enumerate(call.results):
                column = columns.get((j, r))
                if column is None:
                    column = columns[(j, r)] = [0] * n
                column[i] = int(text, 16)
    return {at: np.array(values, dtype=object if max(values, default=0) >= 1 << 64 else np.uint64)
            for at, values in columns.items()}


def bind_results(table: dict[tuple[int, int], np.ndarray], path: ir.CallPath, packets: int) -> dict[str, np.ndarray]:
    """The path's result symbols bound, per packet, to the logged call at the same position."""
    zeros = np.zeros(packets, dtype=np.uint64)
    return {symbol: table.get((j, r), zeros) for j, access in enumerate(path.accesses)
            for r, symbol in enumerate(access.results)}


@dataclass(frozen=True, eq=False)
class PathMatch:
    """``matches[p, i]``: path p's condition holds for packet i; ``path_of[i]``: the one path packet
    i followed (-1 when none or several matched, or for a runt)."""

    matches: np.ndarray  # bool, paths x packets
    path_of: np.ndarray  # int64
    live: np.ndarray  # bool: the NF saw the packet
    environments: tuple[dict[str, Any], ...]  # per path: packet symbols and bound results

    def counts(self, paths: int) -> np.ndarray:
        return np.bincount(self.path_of[self.path_of >= 0], minlength=paths)


def match_paths(analysis: ir.Analysis, trace: Trace, result: RunResult,
                calls: list[list[StateCall]] | None = None) -> PathMatch:
    """Evaluate every path's condition on every packet of a run made with its call log."""
    n = len(trace)
    calls = calls if calls is not None else calls_by_packet(result, n)
    env = frames_env(trace.frames, trace.devices, trace.timestamps)
    table = result_table(calls)
    environments = tuple({**env, **bind_results(table, p, n)} for p in analysis.paths)
    matches = np.zeros((len(analysis.paths), n), dtype=bool)
    for p, path in enumerate(analysis.paths):
        if n:
            matches[p] = np.broadcast_to(compile_term(path.condition)(environments[p]), (n,))
    live = reaching_the_nf(trace.frames)
    count = matches.sum(axis=0)
    path_of = np.where(live & (count == 1), matches.argmax(axis=0) if n else 0, -1).astype(np.int64)
    return PathMatch(matches, path_of, live, environments)


@dataclass(frozen=True)
class Coverage:
    """How many packets followed each path, over one or more runs."""

    nf: str
    packets: tuple[int, ...]  # per path

    @property
    def covered(self) -> int:
        return sum(1 for c in self.packets if c)

    @property
    def paths(self) -> int:
        return len(self.packets)

    def uncovered(self) -> tuple[int, ...]:
        return tuple(p for p, c in enumerate(self.packets) if not c)

    def __add__(self, other: "Coverage") -> "Coverage":
        return Coverage(self.nf, tuple(a + b for a, b in zip(self.packets, other.packets)))

    def text(self) -> str:
        missing = self.uncovered()
        return (f"{self.nf}: {self.covered} of {self.paths} paths covered"
                + (f" (not: {', '.join(map(str, missing))})" if missing else ""))


def coverage(analysis: ir.Analysis, trace: Trace, result: RunResult) -> Coverage:
    """The path coverage of a sequential run made with its call log."""
    return Coverage(analysis.nf, tuple(int(c) for c in match_paths(analysis, trace, result).counts(len(analysis.paths))))
