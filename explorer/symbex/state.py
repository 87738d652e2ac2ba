"""The decisions of one path: its constraints, its forks and how it replays its prefix.

A path is identified by the sequence of its symbolic decisions (its *trace*). Forking does not copy
an interpreter: the explorer runs nf_process again from the start for each trace prefix it has
queued, and ``branch`` / ``concretize`` replay the recorded decisions instead of asking Z3 again.
At a new fork the path takes the false side (or the lowest value) and queues the others, so depth-
first exploration yields paths in lexicographic order of their decisions, false before true.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import z3

from explorer.errors import UnsupportedError
from explorer.ir import Location
from explorer.symbex.bitvec import ast_id, conjoined, is_false, negated
from explorer.symbex.path_solver import PathSolver

MAX_VALUES = 16  # a symbolic index may take at most this many values


@dataclass(frozen=True)
class Decision:
    """A fork the path went through: the condition that holds on it, and how to show it."""

    cond: Any  # z3.BoolRef, as taken
    label: Optional[str]  # readable text replacing the rendered condition (e.g. "p.is_ipv4")
    location: Optional[Location]
    # A merged statement's group (``merging``): the ways through it, each the decisions of one of its
    # paths, that ``cond`` is the disjunction of (with ``negated``, of the other groups' ways, and
    # ``cond`` is its negation). The path's text shows them with their labels.
    ways: Optional[tuple[tuple["Decision", ...], ...]] = None
    negated: bool = False
    case: bool = False  # a switch label's test or its negation (``choose_case``)


class Infeasible(Exception):
    """The path contradicts a fact that holds by construction; it is dropped."""


class NeedsFork(Exception):
    """Raised while evaluating an operand under a temporary assumption (a pure ``&&`` / ``?:``
    operand) when that evaluation would fork; the caller then forks on the operator instead."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a path stood: how many constraints, decisions and trace entries it had, and what it had
    decided by then (``PathState.rewind`` drops everything after it)."""

    constraints: int
    decisions: int
    trace: int
    decided: dict


class Budget:
    """What one exploration may spend: a deadline, and a number of runs (a path from the start, or
    a path through one statement while statements are merged)."""

    def __init__(self, seconds: float, runs: int):
        self.seconds = seconds
        self.deadline = time.thread_time() + seconds  # CPU time: the same NF passes whatever the load
        self.max_runs = runs
        self.runs = 0

    def charge(self, location: Optional[Location]) -> None:
        self.runs += 1
        if self.runs > self.max_runs:
            raise UnsupportedError(f"nf_process has more than {self.max_runs} paths", location=location)
        self.check(location)

    def check(self, location: Optional[Location]) -> None:
        """The deadline alone: also checked inside a path, whose loops may run long."""
        if time.thread_time() > self.deadline:
            raise UnsupportedError(f"the analysis of nf_process took more than {self.seconds:g} s of CPU time",
                                   location=location)


class PathState:
    # Called as (state, cond, taken, location) when this path can take only one side of a branch
    # (the path search uses it to point out comparisons with devices the NF does not have).
    on_one_sided: Optional[Callable[["PathState", Any, bool, Optional[Location]], None]] = None
    # Where queued paths resume inside loops (``loop_heads.LoopHeads``), shared by one exploration's
    # runs; None: loops replay from their start.
    heads: Any = None

    def __init__(self, solver: PathSolver, prefix: tuple, base: list[Any], budget: Optional[Budget] = None):
        self.solver = solver
        self.budget = budget or Budget(float("inf"), 1 << 62)
        self.prefix = prefix
        self.pos = 0
        self.trace: list[tuple] = []
        self.siblings: list[tuple] = []
        self.constraints: list[Any] = list(base)
        self.decisions: list[Decision] = []
        self.assumptions: list[Any] = []
        self._decided: dict[int, bool] = {}

    # -- checkpoints -----------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(len(self.constraints), len(self.decisions), len(self.trace), dict(self._decided))

    def rewind(self, checkpoint: Checkpoint) -> None:
        del self.constraints[checkpoint.constraints:]
        del self.decisions[checkpoint.decisions:]
        del self.trace[checkpoint.trace:]
        self._decided = dict(checkpoint.decided)

    def restore_decided(self, decided: dict) -> None:
        """Take what a path had decided at a checkpoint of another run (``loop_heads``)."""
        self._decided = dict(decided)

    def assuming(self, cond: Any) -> "PathState":
        """A copy of this (finished) path restricted by the decision ``cond``."""
        other = PathState(self.solver, (), self.constraints + [cond], self.budget)
        other.decisions = self.decisions + [Decision(cond, None, None)]
        return other

    def next_entry(self) -> Optional[tuple]:
        """The recorded decision the replay follows next (None once the path runs live)."""
        return self.prefix[self.pos] if self.pos < len(self.prefix) else None

    # -- facts -----------------------------------------------------------------------------
    def assume(self, cond: Any, fresh: bool = True) -> None:
        """Add a fact that holds by construction (e.g. a library result's range).

        ``fresh``: the fact only constrains symbols created just now, so it cannot contradict the
        path (unless it is plainly false); otherwise it is checked, keeping every path condition
        satisfiable, which the solver's constraint slicing relies on."""
        if isinstance(cond, bool):
            if not cond:
                raise Infeasible()
            return
        if fresh:
            if is_false(z3.simplify(cond)):
                raise Infeasible()
        elif not self.possible(cond):
            raise Infeasible()
        self.constraints.append(cond)

    def _all(self) -> list[Any]:
        return self.constraints + self.assumptions if self.assumptions else self.constraints

    def example(self, cond: Any, term: Any) -> Optional[int]:
        """A value ``term`` takes on this path where ``cond`` holds too (None if it never does)."""
        return self.solver.model_value(self._all(), cond, term)

    def possible(self, cond: Any) -> bool:
        if isinstance(cond, bool):
            return cond
        return self.solver.satisfiable(self._all(), cond)

    def proves(self, cond: Any) -> bool:
        """Whether ``cond`` holds for every input that follows this path (so far)."""
        if isinstance(cond, bool):
            return cond
        return not self.solver.satisfiable(self._all(), negated(cond))

    # -- forks -----------------------------------------------------------------------------
    def branch(self, cond: Any, location: Optional[Location], labels: Optional[tuple[str, str]] = None,
               written: bool = True) -> bool:
        """The truth of ``cond`` on this path, forking when both sides are feasible.

        ``labels`` = (text when false, text when true) replaces the rendered condition. ``written``:
        the NF's own test (an if, a switch case), which ``on_one_sided`` may warn about, rather than
        one the analysis makes (is the verdict NF_DROP?).
        """
        if isinstance(cond, bool):
            return cond
        if self.assumptions:
            can_true = self.possible(cond)
            if can_true and self.possible(z3.Not(cond)):
                raise NeedsFork()
            return can_true
        key = ast_id(cond)
        known = self._decided.get(key)
        if known is not None:
            return known
        if self.pos < len(self.prefix):
            kind, taken, fork = self.prefix[self.pos]
            self.pos += 1
            assert kind == "b", "replay diverged"
        else:
            can_true = self.possible(cond)
            fork = can_true and self.possible(negated(cond))
            taken = False if fork else can_true
            if fork:
                self.siblings.append(tuple(self.trace) + (("b", True, True),))
            elif self.on_one_sided is not None and written:
                self.on_one_sided(self, cond, taken, location)
        self.trace.append(("b", taken, fork))
        self._decided[key] = taken
        if fork:
            taken_cond = cond if taken else negated(cond)
            self.constraints.append(taken_cond)
            label = None if labels is None else labels[1 if taken else 0]
            self.decisions.append(Decision(taken_cond, label, location))
        return taken

    def choose_case(self, count: int, test: Callable[[int], Any],
                    location: Callable[[int], Optional[Location]]) -> Optional[int]:
        """Which of a switch's ``count`` case labels the path takes (``test(i)``: the value equals
        label ``i``; None: the default, or no case), forking over every feasible one at once.

        Labels are distinct constants, so a case's test alone selects it: the path of case ``i``
        gets ``test(i)``, not the negations of the labels before it too (which made a 1,000-case
        switch's conditions, merged ways and replays grow with the square of its cases), and the
        default gets the negations of the feasible labels. Paths come in the order forking on each
        case in turn gave them: the default first, then the cases from the last one up. The trace
        entry is ``("s", (case, feasible cases), fork)``, so a replay builds only the tests it adds.
        """
        if self.pos < len(self.prefix):
            kind, (chosen, feasible), fork = self.prefix[self.pos]
            self.pos += 1
            assert kind == "s", "replay diverged"
        else:
            options, feasible = self._case_options(count, test, location)
            chosen, fork = options[-1], len(options) > 1
            for other in options[:-1]:
                self.siblings.append(tuple(self.trace) + (("s", (other, feasible), True),))
        self.trace.append(("s", (chosen, feasible), fork))
        if chosen is not None:
            cond = test(chosen)
            if not isinstance(cond, bool):
                self._decided[ast_id(cond)] = True
                if fork:
                    self.constraints.append(cond)
                    self.decisions.append(Decision(cond, None, location(chosen), case=True))
            return chosen
        for i in feasible:
            cond = test(i)
            if isinstance(cond, bool):
                continue
            self._decided[ast_id(cond)] = False
            if fork:
                other = negated(cond)
                self.constraints.append(other)
                self.decisions.append(Decision(other, None, location(i), case=True))
        return None

    def _case_options(self, count: int, test: Callable[[int], Any],
                      location: Callable[[int], Optional[Location]]) -> tuple[tuple, tuple[int, ...]]:
        """A live switch's ways, in label order with the default (None) last, and its feasible cases."""
        tests = [test(i) for i in range(count)]
        first: dict[int, int] = {}  # a repeated label never matches: the first one took its inputs
        asked = [i for i, cond in enumerate(tests) if not isinstance(cond, bool)
                 and first.setdefault(ast_id(cond), i) == i]
        answers = dict(zip(asked, self.solver.each_satisfiable(self._all(), [tests[i] for i in asked])))
        feasible = [i for i, cond in enumerate(tests) if cond is True or answers.get(i, False)]
        never = [i for i, cond in enumerate(tests) if cond is not True and not answers.get(i, False)]
        cases = tuple(feasible)
        conds = [tests[i] for i in cases]
        terms = [negated(c) for c in conds if not isinstance(c, bool)]
        default = (not any(c is True for c in conds)
                   and (not terms or self.possible(terms[0] if len(terms) == 1 else conjoined(terms))))
        if self.on_one_sided is not None:
            # what forking on each case in turn reported: the labels it reached that never hold, and
            # the last feasible case, taken for want of any other when no input misses every label
            last = None if default or not cases else cases[-1]
            for i in never:
                if (last is None or i < last) and not isinstance(tests[i], bool):
                    self.on_one_sided(self, tests[i], False, location(i))
            if last is not None and not isinstance(tests[last], bool):
                self.on_one_sided(self, tests[last], True, location(last))
        return (cases + (None,) if default else cases), cases

    def concretize(self, term: Any, location: Optional[Location], what: str) -> int:
        """One value of the bit-vector ``term``, forking over each feasible value (at most MAX_VALUES)."""
        if isinstance(term, int):
            return term
        if z3.is_bv_value(term):
            return term.as_long()
        if self.assumptions:
            value = self.solver.model_value(self._all(), True, term)
            if value is None or self.possible(term != value):
                raise NeedsFork()
            return value
        if self.pos < len(self.prefix):
            kind, value, fork = self.prefix[self.pos]
            self.pos += 1
            assert kind == "v", "replay diverged"
        else:
            values: list[int] = []
            while len(values) <= MAX_VALUES:
                exclude = z3.And(*[term != v for v in values]) if values else True
                found = self.solver.model_value(self._all(), exclude, term)
                if found is None:
                    break
                values.append(found)
            if len(values) > MAX_VALUES:
                raise UnsupportedError(f"{what} depends on packet or state data and may take more than "
                                       f"{MAX_VALUES} values; only small bounded symbolic indices are supported",
                                       location=location)
            if not values:
                raise UnsupportedError(f"{what} has no feasible value", location=location)
            values.sort()
            value = values[0]
            fork = len(values) > 1
            for other in reversed(values[1:]):
                self.siblings.append(tuple(self.trace) + (("v", other, True),))
        self.trace.append(("v", value, fork))
        if fork:
            cond = term == value
            self.constraints.append(cond)
            self.decisions.append(Decision(cond, None, location))
        return value
