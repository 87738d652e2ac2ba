"""The top of each iteration of a loop, kept so that a path queued inside iteration k replays from there.

A queued path is replayed from the start of the statement being merged (``merging``), or of
nf_process: every iteration before the one it was queued in ran again, decisions read from its
trace. In a constant-bound loop over rules that is quadratic: a 64-rule ACL ran its first rule test
610 times for 64 rules. So while a loop runs, the machine and the path at the top of each iteration
are noted (``open``), and every path queued during that iteration is filed under them (``close``).
When the loop replays such a path it starts at that iteration instead (``resume``). Replaying is
deterministic (``state``), so what the replay would have reached there is exactly what was noted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from explorer.symbex.machine import Machine, Snapshot
from explorer.symbex.state import Checkpoint, PathState


@dataclass(frozen=True)
class Head:
    """The top of one iteration of one run of a loop."""

    node: Any  # the loop statement
    start: int  # the trace's length where this run of the loop began
    iterations: int
    forking: int  # the loop's count of iterations that forked, so far
    snapshot: Snapshot
    constraints: tuple
    decisions: tuple
    trace: tuple
    decided: dict


@dataclass
class OpenHead:
    """An iteration under way: where it started, and how many paths were queued before it."""

    node: Any
    start: int
    iterations: int
    forking: int
    snapshot: Snapshot
    checkpoint: Checkpoint
    queued: int


class LoopHeads:
    """The heads of every path queued inside a loop, by the path (one exploration's worth)."""

    def __init__(self) -> None:
        self._by_path: dict[int, tuple[tuple, Head]] = {}  # keeps the path tuple alive: its id stays its own

    def open(self, node: Any, start: int, iterations: int, forking: int, machine: Machine) -> OpenHead:
        state = machine.state
        return OpenHead(node, start, iterations, forking, machine.snapshot(), state.checkpoint(), len(state.siblings))

    def close(self, head: Optional[OpenHead], state: PathState) -> None:
        """File the paths queued since ``head`` opened under it."""
        if head is None or len(state.siblings) <= head.queued:
            return
        cp = head.checkpoint
        assert len(state.trace) >= cp.trace and len(state.constraints) >= cp.constraints, "rewound past a loop head"
        frozen = Head(head.node, head.start, head.iterations, head.forking, head.snapshot,
                      tuple(state.constraints[:cp.constraints]), tuple(state.decisions[:cp.decisions]),
                      tuple(state.trace[:cp.trace]), cp.decided)
        for path in state.siblings[head.queued:]:
            self._by_path[id(path)] = (path, frozen)

    def resume(self, node: Any, machine: Machine) -> Optional[Head]:
        """The head to go on from when this run of ``node`` (just starting) replays a path queued
        inside it, after restoring the machine and the path there; None to run from the start."""
        state = machine.state
        hit = self._by_path.get(id(state.prefix))
        if hit is None:
            return None
        head = hit[1]
        start = len(state.trace)
        # the same loop, where the queued path met it (an inner loop also starts at every outer iteration)
        if head.node is not node or head.start != start or state.pos != start or len(head.trace) < start:
            return None
        del self._by_path[id(state.prefix)]
        machine.restore(head.snapshot)
        state.constraints[:] = head.constraints
        state.decisions[:] = head.decisions
        state.trace[:] = head.trace
        state.pos = len(head.trace)
        state.restore_decided(head.decided)
        return head
