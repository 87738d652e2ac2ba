"""The conjuncts a path's condition text shows: those its own earlier conjuncts do not decide.

A branch on ``(ip->tos & FLAG_MASK) == 0`` with ``FLAG_MASK`` 0 is always taken, and after
``ip->protocol == 17`` the test ``ip->protocol != 6`` always holds; the path condition keeps them
(they are what the NF tested), but its text read ``(p.ipv4.tos & 0) == 0 && ... && p.ipv4.proto
== 17 && p.ipv4.proto != 6``. Shown is each comparison simplified under the values the conjuncts
before it pin (``x == constant``, a flag tested true or false): one that is then true is left out
of an ``&&`` (false, out of an ``||``), and a decision that is then true disappears. No solver
call: only Z3's simplifier on a comparison with its own symbols' pins substituted, so that what
goes is decided by syntax and plain equalities (a bound implied by two comparisons stays).
"""
from __future__ import annotations

from typing import Any, Optional, Union

import z3

from explorer.symbex.bitvec import ast_id, constants_of, is_eq, is_false, is_not, is_true, op_kind

Pruned = Union[bool, Any]  # True or False when decided, else the term left to show


class Conjuncts:
    """Prunes the conditions of one analysis' paths. What the conjuncts before a part say is
    numbered as it is learned (0: nothing): symbols pinned to a value, and facts, whole conditions
    known true or false (a merged decision repeats a test: ``!t || (t && x)``). Paths share their
    prefixes, so a condition under the same knowledge is pruned once."""

    def __init__(self) -> None:
        self._pins: list[tuple[tuple[Any, Any], ...]] = [()]  # number -> (symbol, value) pairs
        self._facts: list[dict[int, bool]] = [{}]  # number -> condition id -> its truth
        self._extended: dict[tuple[int, int, bool], int] = {}
        self._pruned: dict[tuple[int, int], tuple[Pruned, int]] = {}
        self._decided: dict[tuple, Optional[bool]] = {}

    def shown(self, conditions: list[Any]) -> list[Optional[Any]]:
        """Per condition (in path order), what to show of it, or None when the earlier ones decide it."""
        known = 0
        out: list[Optional[Any]] = []
        for condition in conditions:
            kept, known = self._prune(condition, known)
            out.append(None if kept is True else condition if kept is False else kept)
        return out

    def _prune(self, t: Any, known: int) -> tuple[Pruned, int]:
        """``t`` under what is ``known``: True or False when that decides it, else the term with its
        decided parts left out; and what is known once ``t`` holds."""
        key = (ast_id(t), known)
        hit = self._pruned.get(key)
        if hit is None:
            hit = self._pruned[key] = self._prune_new(t, known)
        return hit

    def _prune_new(self, t: Any, known: int) -> tuple[Pruned, int]:
        fact = self._facts[known].get(ast_id(t))
        if fact is not None:
            return fact, known
        kind = op_kind(t)
        if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
            conjunction = kind == z3.Z3_OP_AND
            children, kept, before = t.children(), [], known
            for child in children:
                part, after = self._prune(child, known)
                if part is (not conjunction):
                    return part, before
                if part is not conjunction:
                    kept.append(part)
                # a && b is a && (a -> b); a || b is a || (!a && b): b may take a as false
                known = after if conjunction else self._learn(known, child, False)
            if not kept:
                return conjunction, before
            if not conjunction:
                known = before  # no alternative holds for sure
            known = self._learn(known, t, True)
            if len(kept) == len(children) and all(k is c for k, c in zip(kept, children)):
                return t, known
            return (kept[0] if len(kept) == 1 else (z3.And if conjunction else z3.Or)(*kept)), known
        if kind == z3.Z3_OP_NOT:
            inner = t.children()[0]
            part, _ = self._prune(inner, known)
            if part is True or part is False:
                return not part, known
            return (t if part is inner else z3.Not(part)), self._learn(known, t, True)
        decided = self._decide(t, known)
        if decided is not None:
            return decided, known
        return t, self._learn(known, t, True)

    def _learn(self, known: int, t: Any, holds: bool) -> int:
        """What is known once ``t`` is ``holds``: the fact, and what it pins (``x == 5``, a flag)."""
        key = (known, ast_id(t), holds)
        number = self._extended.get(key)
        if number is None:
            pins, facts = self._pins[known], dict(self._facts[known])
            facts[ast_id(t)] = holds
            if is_not(t):
                facts[ast_id(t.arg(0))] = not holds
            pinned = _pinned(t) if holds else _pinned_false(t)
            if pinned is not None:
                pins = pins + (pinned,)
            number = self._extended[key] = len(self._pins)
            self._pins.append(pins)
            self._facts.append(facts)
        return number

    def _decide(self, t: Any, known: int) -> Optional[bool]:
        """Whether a comparison or flag is true or false under the pins of its own symbols."""
        names = constants_of(t)[0]
        relevant = tuple((s, v) for s, v in self._pins[known] if s.decl().name() in names)
        key = (ast_id(t), tuple((ast_id(s), ast_id(v)) for s, v in relevant))
        if key not in self._decided:
            simple = z3.simplify(_unsigned(z3.substitute(t, *relevant) if relevant else t))
            self._decided[key] = True if is_true(simple) else False if is_false(simple) else None
        return self._decided[key]


_UNSIGNED = {z3.Z3_OP_SLT: z3.ULT, z3.Z3_OP_SLEQ: z3.ULE, z3.Z3_OP_SGT: z3.UGT, z3.Z3_OP_SGEQ: z3.UGE}


def _unsigned(t: Any) -> Any:
    """A signed comparison of two values whose sign bit is 0 as the unsigned one: C compares a
    promoted ``uint16_t`` as an int (``port >= 0`` with a rule's lower bound 0), which Z3's
    simplifier leaves undecided signed and decides unsigned."""
    if op_kind(t) in _UNSIGNED and all(_sign_clear(c) for c in t.children()):
        return _UNSIGNED[op_kind(t)](t.arg(0), t.arg(1))
    return t


def _sign_clear(t: Any) -> bool:
    if z3.is_bv_value(t):
        return not t.as_long() >> (t.size() - 1)
    return op_kind(t) == z3.Z3_OP_ZERO_EXT and t.params()[0] > 0


def _is_symbol(t: Any) -> bool:
    return op_kind(t) == z3.Z3_OP_UNINTERPRETED and t.num_args() == 0


def _pinned_false(t: Any) -> Optional[tuple[Any, Any]]:
    """What a condition that does not hold pins: a flag ``f`` false, or what ``u`` pins for ``!u``."""
    if _is_symbol(t):
        return t, z3.BoolVal(False)
    return _pinned(t.arg(0)) if is_not(t) else None


def _pinned(t: Any) -> Optional[tuple[Any, Any]]:
    """What a conjunct that holds pins: ``x == 5`` (through zero extension), a flag ``f``."""
    if _is_symbol(t):
        return t, z3.BoolVal(True)
    if not (is_eq(t) and z3.is_bv(t.arg(0))):
        return None
    a, b = t.arg(0), t.arg(1)
    if z3.is_bv_value(a):
        a, b = b, a
    if not z3.is_bv_value(b):
        return None
    while op_kind(a) == z3.Z3_OP_ZERO_EXT:
        inner = a.arg(0)
        if b.as_long() >> inner.size():
            return None  # cannot hold: left as it is
        a, b = inner, z3.BitVecVal(b.as_long(), inner.size())
    return (a, b) if _is_symbol(a) else None
