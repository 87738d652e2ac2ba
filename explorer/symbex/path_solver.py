"""The one place the explorer asks Z3 questions; Z3's failures become SolverError.

These ideas keep the number and size of Z3 calls down:

* Independence: a path's constraints are satisfiable (the explorer only follows feasible paths),
  so a query only needs the constraints that share symbols, transitively, with the question
  (KLEE's constraint independence). A question about ``p.device`` never drags in the arithmetic of
  a token bucket.
* Incrementality: one solver serves every query; each constraint is asserted once behind a guard
  literal (``guard -> constraint``) and a query is a check under the guards of its constraints, so
  nothing is ever popped and what Z3 learned stays valid for every later query.
* Reuse: an answer depends only on the (sliced) constraints and the question, and every path
  replays its prefix, so answers are kept by the ids of their terms; a question that is a
  constant, one of the constraints or the negation of one is answered without Z3.
* Witnesses: Z3 bit-blasts multiplication and division, which costs tens of milliseconds per
  query (a token bucket's refill). For such queries a few candidate assignments are tried first
  (recent models and witnesses, their merge - sliced queries give models of a few symbols each -
  and variants with the question's own symbols set to 0, all ones or seeded random values) and
  checked by evaluation: a candidate that satisfies everything proves "sat" exactly.
"""
from __future__ import annotations

import random
from typing import Any, Iterable, Optional, Sequence

import z3

from explorer import z3_check
from explorer.errors import SolverError
from explorer.symbex.bitvec import ast_id, constants_of, given, implies, is_eq, is_not, is_true

TIMEOUT_MS = 20_000
# A heavy question's budget on the incremental solver before a fresh one takes it, in Z3's resource
# units (about 0.3 s here): a count, not a clock, so that which solver answers, and with it every
# later model, never depends on the machine's load.
HEAVY_FIRST_RLIMIT = 2_000_000
KEPT_MODELS = 6
RANDOM_VARIANTS = 2
MAX_CANDIDATES = 24


class _TermInfo:
    __slots__ = ("term", "names", "consts", "heavy")

    def __init__(self, term: Any):
        self.term = term
        self.consts, self.heavy = constants_of(term)
        self.names = frozenset(self.consts)


class PathSolver:
    def __init__(self) -> None:
        # Incremental solvers, one for light questions and one for heavy ones (``constants_of``), so
        # that the clauses of a big sum or product never slow down the light questions. A heavy
        # question the incremental solver cannot answer within HEAVY_FIRST_RLIMIT goes to a fresh
        # solver, which preprocesses (solves equalities, bit-blasts) where the incremental one crawls.
        self._incremental = {False: self._start(), True: self._start(HEAVY_FIRST_RLIMIT)}
        # per solver, by AST id: (the guard literal, the term, kept alive)
        self._guards: dict[bool, dict[int, tuple[Any, Any]]] = {False: {}, True: {}}
        self._solver = self._incremental[False]  # the one that answered last (its model is read)
        self._info: dict[int, _TermInfo] = {}
        self._models: list[dict[str, int]] = []
        self._random = random.Random(0)
        # answers by (constraint ids, question id), keeping the terms alive so that ids stay unique:
        # paths that share a prefix ask the same questions again
        self._answers: dict[tuple, tuple[list[Any], Any, bool]] = {}
        self.checks = 0
        self.witnessed = 0
        self.reused = 0

    def info(self, term: Any) -> _TermInfo:
        key = ast_id(term)
        hit = self._info.get(key)
        if hit is None:
            hit = _TermInfo(term)
            self._info[key] = hit
        return hit

    def symbols(self, term: Any) -> frozenset[str]:
        return self.info(term).names

    def relevant(self, constraints: Sequence[Any], extra: Any) -> list[Any]:
        """The constraints connected to ``extra`` through shared symbols, in their original order."""
        if extra is None or isinstance(extra, bool):
            return list(constraints)
        return self._connected(constraints, self.symbols(extra))

    def _connected(self, constraints: Sequence[Any], names: Iterable[str]) -> list[Any]:
        """The constraints connected to the symbols ``names``, in their original order."""
        wanted = set(names)
        sets = [self.symbols(c) for c in constraints]
        chosen = [False] * len(constraints)
        changed = True
        while changed:
            changed = False
            for i, syms in enumerate(sets):
                if not chosen[i] and (not syms or not wanted.isdisjoint(syms)):
                    chosen[i] = True
                    wanted |= syms
                    changed = True
        return [c for c, keep in zip(constraints, chosen) if keep]

    @staticmethod
    def _start(rlimit: int = 0) -> Any:
        """A solver with the wall-clock timeout, and a resource limit per check when ``rlimit``."""
        try:
            solver = z3.Solver()
            solver.set("timeout", TIMEOUT_MS)
            if rlimit:
                solver.set("rlimit", rlimit)
        except z3.Z3Exception as exc:
            raise SolverError(f"could not start Z3: {exc}") from None
        return solver

    def _guard(self, term: Any, heavy: bool) -> Any:
        """The Boolean literal that switches ``term`` on: ``guard -> term`` is asserted once, and a
        query is a check under the guards of its terms (no push or pop, whose cost grows with the
        solver's state, and what Z3 learned stays valid for every later query)."""
        key = ast_id(term)
        guards = self._guards[heavy]
        hit = guards.get(key)
        if hit is None:
            literal = z3.Bool(f"nfx!guard{'h' if heavy else ''}{len(guards)}")
            solver = self._incremental[heavy]
            # Z3's C API: z3.py's Implies and add cast and sort-check (a tenth of a 64-rule ACL's analysis)
            z3.Z3_solver_assert(solver.ctx.ref(), solver.solver, implies(literal, term).as_ast())
            hit = guards[key] = (literal, term)
        return hit[0]

    def satisfiable(self, constraints: Sequence[Any], extra: Optional[Any] = None, witness: bool = True) -> bool:
        """Whether ``constraints`` (known to be satisfiable together) and ``extra`` can all hold.

        With ``extra`` None every constraint is checked (the one way to test a path's own
        feasibility)."""
        if extra is True:
            extra = None
        query = list(constraints) if extra is None else self.relevant(constraints, extra)
        if not witness:  # the caller reads the model: Z3 must answer this very query
            return self._check(query, extra, witness)
        key = (tuple(ast_id(c) for c in query), None if extra is None else ast_id(extra))
        hit = self._answers.get(key)
        if hit is None:
            hit = (query, extra, self._decided(key, extra))
            if hit[2] is None:
                hit = (query, extra, self._check(query, extra, witness))
            self._answers[key] = hit
        else:
            self.reused += 1
        return hit[2]

    def each_satisfiable(self, constraints: Sequence[Any], extras: Sequence[Any]) -> list[bool]:
        """``satisfiable(constraints, e)`` for each of many questions (a switch's labels). The
        incremental solver would take each behind a guard of its own, and its checks slow down with
        every one (2 ms each after a thousand labels): these go to a solver of their own that holds
        the constraints that share symbols with any question once, each question an assumption."""
        names: set[str] = set()
        for extra in extras:
            names |= self.symbols(extra)
        query = self._connected(constraints, names)
        ids = tuple(ast_id(c) for c in query)
        answers = [self._decided((ids, ast_id(extra)), extra) for extra in extras]
        if all(answer is not None for answer in answers):
            return [bool(answer) for answer in answers]
        try:
            solver = self._start()
            for c in query:
                solver.add(c)
            for i, extra in enumerate(extras):
                if answers[i] is None:
                    result = z3_check.check(solver, [extra], timeout_ms=TIMEOUT_MS)
                    self.checks += 1
                    if result == z3.unknown:
                        raise SolverError(f"Z3 could not decide a switch's case ({solver.reason_unknown()})")
                    answers[i] = result == z3.sat
        except z3.Z3Exception as exc:
            raise SolverError(f"Z3 failed: {exc}") from None
        return [bool(answer) for answer in answers]

    def _decided(self, key: tuple, extra: Any) -> Optional[bool]:
        """The answer when the question settles it syntactically: one of the (satisfiable) constraints
        themselves, the negation of one of them, or a question without symbols (``3 == 3``)."""
        if extra is None:
            return None
        if key[1] in key[0] or _reflexive(extra):
            return True
        if is_not(extra) and (ast_id(extra.arg(0)) in key[0] or _reflexive(extra.arg(0))):
            return False
        if not self.symbols(extra):
            return is_true(z3.simplify(extra))
        if is_not(extra) and is_eq(extra.arg(0)) and self._free_side(extra.arg(0), key[0]):
            return True
        return None

    def _free_side(self, eq: Any, constraints: tuple) -> bool:
        """Whether one side of ``a == b`` is a bit-vector symbol that occurs nowhere else in the query
        (a fresh library result): it can always be chosen unequal to the other side."""
        a, b = eq.arg(0), eq.arg(1)
        for side, other in ((a, b), (b, a)):
            if z3.is_bv(side) and z3.is_const(side) and side.decl().kind() == z3.Z3_OP_UNINTERPRETED:
                name = side.decl().name()
                if name not in self.symbols(other) and not any(name in self._info[c].names for c in constraints):
                    return True
        return False

    def _check(self, query: list[Any], extra: Any, witness: bool) -> bool:
        heavy = any(self.info(c).heavy for c in query) or (extra is not None and self.info(extra).heavy)
        if heavy and witness and extra is not None and self._witness(query, extra):
            self.witnessed += 1
            return True
        try:
            self._solver = self._incremental[heavy]
            terms = query + ([] if extra is None else [extra])
            result = z3_check.check(self._solver, [self._guard(t, heavy) for t in terms], timeout_ms=TIMEOUT_MS,
                                    rlimit=HEAVY_FIRST_RLIMIT if heavy else 0)
            if result == z3.unknown and heavy:
                self._solver = self._start()
                self._solver.add(*terms)
                result = z3_check.check(self._solver, timeout_ms=TIMEOUT_MS)
            self.checks += 1
            if result == z3.sat and heavy:
                self._keep_model(self._solver.model())
        except z3.Z3Exception as exc:
            raise SolverError(f"Z3 failed: {exc}") from None
        if result == z3.unknown:
            raise SolverError(f"Z3 could not decide a path condition ({self._solver.reason_unknown()}): conditions "
                              f"over many values at once (a long loop over state cells, products of packet "
                              f"fields) are hard for it; a shorter loop or simpler arithmetic helps")
        return result == z3.sat

    def _keep_model(self, model: Any) -> None:
        values = {}
        for decl in model.decls():
            if decl.arity() == 0:
                value = model[decl]
                if z3.is_bv_value(value):
                    values[decl.name()] = value.as_long()
        self._remember(values)

    def _remember(self, values: dict[str, int]) -> None:
        self._models.insert(0, values)
        del self._models[KEPT_MODELS:]

    def _witness(self, query: list[Any], extra: Any) -> bool:
        """Whether a cheap candidate assignment satisfies ``query`` and ``extra`` (checked exactly)."""
        consts: dict[str, Any] = {}
        bound: set[str] = set()
        for c in query:
            info = self.info(c)
            consts.update(info.consts)
            bound |= info.names
        extra_info = self.info(extra)
        consts.update(extra_info.consts)
        free = sorted(extra_info.names - bound)
        asked = sorted(extra_info.names)
        goal = z3.And(*query, extra) if query else extra
        merged: dict[str, int] = {}
        for model in reversed(self._models):  # newest last, so newest wins
            merged.update(model)
        candidates: list[dict[str, int]] = []
        for base in [merged] + self._models + [{}]:
            candidates.append(base)
            for names in (free, asked) if free else (asked,):
                for fill in ("zero", "ones") + ("random",) * RANDOM_VARIANTS:
                    variant = dict(base)
                    for name in names:
                        bits = consts[name].size()
                        variant[name] = (0 if fill == "zero" else (1 << bits) - 1 if fill == "ones"
                                         else self._random.getrandbits(bits))
                    candidates.append(variant)
        for candidate in candidates[:MAX_CANDIDATES]:
            try:
                value = given(goal, ((const, candidate.get(name, 0)) for name, const in consts.items()))
            except z3.Z3Exception:
                return False
            if is_true(value):
                self._remember({name: candidate.get(name, 0) for name in consts})
                return True
        return False

    def model_value(self, constraints: Sequence[Any], extra: Any, term: Any) -> Optional[int]:
        """A value of ``term`` in a model of the constraints and ``extra``, or None if unsatisfiable."""
        query = term == term if extra is None or extra is True else z3.And(extra, term == term)
        if not self.satisfiable(constraints, query, witness=False):  # the model is read below
            return None
        try:
            value = self._solver.model().eval(term, model_completion=True)
            return value.as_long()
        except z3.Z3Exception as exc:
            raise SolverError(f"Z3 failed: {exc}") from None


def _reflexive(cond: Any) -> bool:
    """``x == x`` (Z3 keeps such terms as they are built)."""
    return is_eq(cond) and ast_id(cond.arg(0)) == ast_id(cond.arg(1))
