"""Statements that fork are explored as a whole; their paths that end in the same state merge.

The explorer re-runs nf_process from the start for every path (see ``state``). Two things make
that slow on NFs with many paths: every path re-executes the statements before its last fork, and
a constant-bound loop over rules (an ACL: a match test per rule, an early ``break``) multiplies
paths that differ only in how a rule failed to match, although they all reach the next rule in
the same state.

So a statement that may fork (``NodeFacts.may_fork``), when a path reaches it live, is explored as
a whole: every path through it is run from the state at its start, and the ends are grouped by
what later code can observe (memory, names in scope, state calls, how the statement ended: normally,
``break``, ``continue``, ``return`` with a value, or an error). Each group goes on as one path whose
condition is the disjunction of its members' conditions (one member: its own constraints, as
before). The path takes the first group and queues the others; the trace records a group as one
entry, ``("g", Group)``, and a path that replays it restores the group's end state instead of
running the statement again. Groups come in the order of their first member, so paths keep the
depth-first order (false before true) they had without merging.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import z3

from explorer.errors import NfxError
from explorer.symbex.bitvec import ast_id, conjoined, disjoined, is_true, negated
from explorer.symbex.machine import Snapshot
from explorer.symbex.memory import cell_key, term_key
from explorer.symbex.program import location_of
from explorer.symbex.state import Checkpoint, Decision, Infeasible
from explorer.symbex.statements import Break, Continue, Return
from explorer.symbex.values import Agg, Int, Value

if TYPE_CHECKING:
    from explorer.symbex.interpreter import Interpreter

ENABLED = True  # off: every path is explored on its own from the start (tests and benchmarks compare)
NEXT, BREAK, CONTINUE, RETURN, ERROR = "next", "break", "continue", "return", "error"
SIGNALS = ((Break, BREAK), (Continue, CONTINUE), (Return, RETURN), (NfxError, ERROR))


@dataclass(frozen=True)
class Group:
    """One merged end of a statement, as the trace records it."""

    node: Any  # the statement
    kind: str
    signal: Optional[BaseException]  # what ends the statement (None: it ends normally)
    subtrace: tuple  # the decisions of the group's first member through the statement
    constraints: tuple  # what the path gets instead of that member's own constraints
    decisions: tuple
    fields_read: frozenset[str]
    end: Snapshot  # the machine at the end of the statement


@dataclass
class _End:
    """One path through a statement, up to its end."""

    kind: str
    signal: Optional[BaseException]
    key: tuple  # what later code can observe: paths with equal keys continue identically
    subtrace: tuple
    constraints: tuple
    decisions: tuple
    fields_read: frozenset[str]
    end: Snapshot  # also keeps the key's terms alive, so that their ids stay unique

    @property
    def forks_only(self) -> bool:
        """Whether every constraint the path added is a fork's decision (no fact assumed about a fresh
        library result): then the paths of all groups partition the inputs that reach the statement."""
        return len(self.constraints) == len(self.decisions)


class Merger:
    def __init__(self, it: "Interpreter"):
        self.it = it
        self.machine = it.machine

    def run(self, node: Any, loop_body: bool = False) -> None:
        """Run the statement ``node`` as ``Statements.run`` does (the same result, the same signals),
        merging its paths. In a loop body ``continue`` ends the statement like its normal end."""
        m = self.machine
        state = m.state
        if not ENABLED or m.mode != "process" or state.assumptions or not m.program.facts.may_fork(node):
            self.it.statements.run(node)
            return
        entry = state.next_entry()
        if entry is not None:
            if entry[0] == "g" and entry[1].node is node:
                self._follow(entry[1])
            else:
                self.it.statements.run(node)
            return
        start, checkpoint = m.snapshot(), state.checkpoint()
        queued = len(state.siblings)
        first = self._attempt(node, loop_body)
        if len(state.siblings) == queued:  # no fork: nothing to merge or to keep
            self._finish(*first)
            return
        pending = state.siblings[queued:]
        del state.siblings[queued:]
        ends = [] if first[0] is None else [self._end(first, checkpoint, start)]
        while pending and (not ends or ends[-1].kind != ERROR):  # the exploration stops at an error
            state.budget.charge(location_of(node))
            m.restore(start)
            state.rewind(checkpoint)
            state.prefix, state.pos = pending.pop(), checkpoint.trace
            queued = len(state.siblings)
            outcome = self._attempt(node, loop_body)
            pending.extend(state.siblings[queued:])
            del state.siblings[queued:]
            if outcome[0] is not None:
                ends.append(self._end(outcome, checkpoint, start))
        m.restore(start)
        state.rewind(checkpoint)
        if not ends:
            raise Infeasible()
        groups = _groups(node, ends)
        trace = tuple(state.trace)
        for group in reversed(groups[1:]):
            state.siblings.append(trace + (("g", group),))
        state.prefix, state.pos = trace + (("g", groups[0]),), len(trace)
        self._follow(groups[0])

    def _attempt(self, node: Any, loop_body: bool) -> tuple[Optional[str], Optional[BaseException]]:
        """Run the statement once: how it ended (None when infeasible) and the signal that ended it."""
        try:
            self.it.statements.run(node)
            return NEXT, None
        except Infeasible:
            return None, None
        except (Break, Continue, Return, NfxError) as signal:
            kind = next(k for cls, k in SIGNALS if isinstance(signal, cls))
            if kind == CONTINUE and loop_body:
                return NEXT, None
            return kind, signal

    def _end(self, outcome: tuple[Optional[str], Optional[BaseException]], start: Checkpoint,
             since: Snapshot) -> _End:
        m, state = self.machine, self.machine.state
        kind, signal = outcome
        assert kind is not None
        if kind == ERROR:
            key: tuple = (ERROR, id(signal))  # never merged
        else:
            value = signal.value if isinstance(signal, Return) else None
            key = (kind, _value_key(value), m.fingerprint(since))
        return _End(kind, signal, key, tuple(state.trace[start.trace:]), tuple(state.constraints[start.constraints:]),
                    tuple(state.decisions[start.decisions:]), frozenset(m.effects.fields_read), m.snapshot())

    @staticmethod
    def _finish(kind: Optional[str], signal: Optional[BaseException]) -> None:
        if kind is None:
            raise Infeasible()
        if signal is not None:
            raise signal

    def _follow(self, group: Group) -> None:
        """Go on as the group: its end state, its constraints, and its way of ending."""
        m, state = self.machine, self.machine.state
        state.pos += 1
        if group.kind == ERROR:  # the path ends here, with its own decisions in the errored stash
            state.trace.extend(group.subtrace)
            raise group.signal
        m.restore(group.end)
        state.trace.append(("g", group))
        state.constraints.extend(group.constraints)
        state.decisions.extend(group.decisions)
        m.effects.fields_read |= group.fields_read
        if group.signal is not None:
            raise group.signal


def _value_key(value: Optional[Value]) -> Any:
    if isinstance(value, Int):
        return (value.ctype, term_key(value.v))
    if isinstance(value, Agg):
        return tuple(cell_key(c) for c in value.cells)
    return term_key(value)  # a pointer, or None


def _groups(node: Any, ends: list[_End]) -> list[Group]:
    """The ends grouped by key (in the order their first member was found), each with the condition
    that selects it."""
    by_key: dict[tuple, list[_End]] = {}
    for end in ends:
        by_key.setdefault(end.key, []).append(end)
    members = list(by_key.values())
    partition = all(end.forks_only for end in ends)
    groups = []
    for i, group in enumerate(members):
        first = group[0]
        fields = frozenset().union(*(end.fields_read for end in group))
        if len(group) == 1:
            groups.append(Group(node, first.kind, first.signal, first.subtrace, first.constraints, first.decisions,
                                fields, first.end))
            continue
        if partition and len(members) == 1:
            # every way through the statement ends alike: the group holds wherever the statement
            # starts, so it adds no condition (a switch's case that falls through to the default
            # read "p.ipv4.proto != 17 || p.ipv4.proto == 17")
            groups.append(Group(node, first.kind, first.signal, first.subtrace, (), (), fields, first.end))
            continue
        cond, ways, negate = _either(group), group, False
        others = [end for j, g in enumerate(members) if j != i for end in g]
        if partition and others and _size(others) < _size(group):
            # the same inputs, since the groups partition them
            cond, ways, negate = negated(_either(others)), others, True
        decision = Decision(cond, None, location_of(node), tuple(end.decisions for end in ways), negate)
        groups.append(Group(node, first.kind, first.signal, first.subtrace, (cond,), (decision,), fields, first.end))
    return groups


def _either(ends: list[_End]) -> Any:
    return _factored([end.constraints for end in ends])


def _factored(conjunctions: list[tuple]) -> Any:
    """The disjunction of ``conjunctions`` (tuples of constraints), with the leading constraints that
    several share taken out: the ends of a rule loop are ``a``, ``!a && b``, ``!a && !b && c``, ...,
    whose plain disjunction grows with the square of the rules (a 64-rule ACL's path printed
    kilobytes), and which read ``a || (!a && (b || (!b && c)))`` factored."""
    if any(not c for c in conjunctions):
        return z3.BoolVal(True)  # an empty conjunction holds always
    by_first: dict[int, list[tuple]] = {}
    for c in conjunctions:
        by_first.setdefault(ast_id(c[0]), []).append(c)
    parts = []
    for members in by_first.values():
        if len(members) == 1:
            parts.append(_join(conjoined, list(members[0])))
            continue
        rest = _factored([m[1:] for m in members])
        parts.append(members[0][0] if is_true(rest) else _join(conjoined, [members[0][0], rest]))
    return _join(disjoined, parts)


def _join(op: Any, terms: list[Any]) -> Any:
    """``op`` (``conjoined`` or ``disjoined``: Z3's C API, as z3.py's And and Or cast every operand)
    of ``terms``; an empty conjunction is true, an empty disjunction false."""
    if not terms:
        return z3.BoolVal(op is conjoined)
    return terms[0] if len(terms) == 1 else op(terms)


def _size(ends: list[_End]) -> int:
    return sum(len(end.constraints) for end in ends)
