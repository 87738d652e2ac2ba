"""Building Z3 bit-vector terms the way the explorer needs them: bytes, byte swaps, symbols, nf_hash.

Memory holds bytes as ``Slice(source, i)`` (byte i, little-endian, of a wider term) so that loading
back what was stored returns the stored term itself, and re-assembling a field's bytes in wire order
returns the field's symbol: terms stay small and readable without calling z3.simplify.
"""
from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator, Optional, Union

import z3

Term = Union[int, z3.BitVecRef]

# The largest state entry (a map key, a vector cell) the analysis takes, in bytes: Z3 works on an
# entry as one bit-vector, and past a few KiB every query slows down (a 5,200-byte cell took a
# minute to analyse, a 16 KiB one three). Z3's Python API passes a bit-vector's value through a
# decimal string (BitVecVal, as_long), which Python refuses past 4,300 digits by default (a cell of
# about 1,790 bytes): the bound is raised to what the largest entry needs (39,457 digits).
MAX_ENTRY_BYTES = 16384
_DIGITS = 40_000
if 0 < sys.get_int_max_str_digits() < _DIGITS:
    sys.set_int_max_str_digits(_DIGITS)

FNV_OFFSET = 2166136261
FNV_PRIME = 16777619


class Slice:
    """Byte ``index`` (0 = least significant) of ``source``: a Z3 bit-vector or a pointer value.
    (A plain slotted class: memory creates many of these.)"""

    __slots__ = ("source", "index")

    def __init__(self, source: Any, index: int):
        self.source = source
        self.index = index

    def __repr__(self) -> str:
        return f"Slice({self.source}, {self.index})"


Cell = Union[int, Slice]

# Caches keyed by Z3 AST ids; every entry keeps its key's AST alive (so the id is not reused) and
# reset_caches() empties them at the start of each analysis.
_extract_cache: dict[tuple[int, int], z3.BitVecRef] = {}
_bytes_cache: dict[int, tuple[z3.BitVecRef, tuple[Cell, ...]]] = {}
_numerals: dict[tuple[int, int], z3.BitVecRef] = {}
TERM_MEMO: dict[tuple, Any] = {}  # results of operations on terms, for ``values.memoized``
_ast_ids: dict[int, tuple[Any, int]] = {}
_widths: dict[int, tuple[Any, int]] = {}  # by Python id, like _ast_ids  # by Python id, keeping the object alive so that the id stays its own


def ast_id(term: Any) -> int:
    """Z3's id of ``term``'s AST (equal terms share one), memoized per Python object: asking Z3 costs
    a foreign call, and the explorer asks for the same objects again and again."""
    hit = _ast_ids.get(id(term))
    if hit is None:
        hit = _ast_ids[id(term)] = (term, term.get_id())
    return hit[1]


_kinds: dict[int, tuple[Any, Optional[int]]] = {}  # by Python id, like _ast_ids


def op_kind(term: Any) -> Optional[int]:
    """The operator (``z3.Z3_OP_AND``, ...) of ``term`` when it is a Z3 application or numeral, else
    None; memoized per Python object. Asked through Z3's C API: z3.py's ``is_and`` and kin build a
    declaration object and check the AST kind twice per question, and the explorer asks them
    thousands of times per path text (a third of the Z3 API time on a 16-rule ACL)."""
    hit = _kinds.get(id(term))
    if hit is None:
        kind = None
        if isinstance(term, z3.ExprRef):
            ref, node = term.ctx.ref(), term.as_ast()
            if z3.Z3_get_ast_kind(ref, node) in (z3.Z3_APP_AST, z3.Z3_NUMERAL_AST):
                kind = z3.Z3_get_decl_kind(ref, z3.Z3_get_app_decl(ref, z3.Z3_to_app(ref, node)))
        hit = _kinds[id(term)] = (term, kind)
    return hit[1]


# z3.py's predicates of the same names, answered by op_kind
def is_and(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_AND


def is_or(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_OR


def is_not(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_NOT


def is_true(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_TRUE


def is_false(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_FALSE


def is_eq(term: Any) -> bool:
    return op_kind(term) == z3.Z3_OP_EQ


def reset_caches() -> None:
    _ast_ids.clear()
    _kinds.clear()
    _widths.clear()
    TERM_MEMO.clear()
    _extract_cache.clear()
    _bytes_cache.clear()
    _constants_cache.clear()
    _constants_roots.clear()
    _numerals.clear()


# Terms a bit builtin computed (a popcount is a sum of 32 or 64 bits), by AST id: (term, builtin, argument),
# so that text shows the call the NF made. Never emptied (a term rendered after the next analysis began
# still prints as the call); the entries keep their terms alive, so their ids stay unique.
_builtin_calls: dict[int, tuple[Any, str, Any]] = {}


def builtin_term(term: Any, builtin: str, argument: Any) -> Any:
    """``term``, remembered as the value of ``builtin(argument)``."""
    _builtin_calls.setdefault(term.get_id(), (term, builtin, argument))
    return term


def builtin_call(term: Any) -> Optional[tuple[str, Any]]:
    """(builtin, argument) when ``term`` is a bit builtin's value (``builtin_term``), else None."""
    hit = _builtin_calls.get(ast_id(term))
    return None if hit is None else hit[1:]


def negated(cond: z3.BoolRef) -> z3.BoolRef:
    """``z3.Not(cond)`` for a Boolean term, through Z3's C API: z3.py casts and sort-checks in Python,
    which was a sixth of the analysis of a long switch (a Not per replayed case)."""
    return z3.BoolRef(z3.Z3_mk_not(cond.ctx.ref(), cond.as_ast()), cond.ctx)


def conjoined(conds: list[z3.BoolRef]) -> z3.BoolRef:
    """``z3.And(*conds)`` for one or more Boolean terms, through Z3's C API (z3.py casts each one:
    a path condition holds hundreds of them)."""
    ctx = conds[0].ctx
    array = (z3.Ast * len(conds))(*[c.as_ast() for c in conds])
    return z3.BoolRef(z3.Z3_mk_and(ctx.ref(), len(conds), array), ctx)


def conjuncts(condition: z3.BoolRef) -> list[z3.BoolRef]:
    """The top-level conjuncts of ``condition`` (nested Ands flattened), in order."""
    if z3.is_and(condition):
        out = []
        for c in condition.children():
            out.extend(conjuncts(c))
        return out
    return [condition]


def disjoined(conds: list[z3.BoolRef]) -> z3.BoolRef:
    """``z3.Or(*conds)`` for one or more Boolean terms, through Z3's C API (as ``conjoined``)."""
    ctx = conds[0].ctx
    array = (z3.Ast * len(conds))(*[c.as_ast() for c in conds])
    return z3.BoolRef(z3.Z3_mk_or(ctx.ref(), len(conds), array), ctx)


def implies(a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
    """``z3.Implies(a, b)`` through Z3's C API."""
    return z3.BoolRef(z3.Z3_mk_implies(a.ctx.ref(), a.as_ast(), b.as_ast()), a.ctx)


def equalities(term: z3.BitVecRef, values: Iterable[int], differ: bool = False,
               numeral_first: bool = False) -> list[z3.BoolRef]:
    """``[term == v for v in values]`` (``term != v`` if ``differ``) for integers ``values``, through
    Z3's C API: the same terms z3.py builds (an equality, or a two-term distinct, with a numeral
    made from the value's decimal text), without its Python-level coercion and sort checks, which
    made the witness search's state facts (hundreds of known keys per question) most of its time.
    ``numeral_first``: the terms of ``term == z3.BitVecVal(v, ...)``, where Python lets the numeral
    (a subclass) answer: ``v == term``, unless ``term`` is a numeral too."""
    ctx = term.ctx
    ref, a, sort = ctx.ref(), term.as_ast(), z3.Z3_get_sort(ctx.ref(), term.as_ast())
    first = numeral_first and not isinstance(term, z3.BitVecNumRef)
    out = []
    for value in values:
        number = z3.Z3_mk_numeral(ref, str(value), sort)
        if differ:
            pair = (z3.Ast * 2)(number, a) if first else (z3.Ast * 2)(a, number)
            out.append(z3.BoolRef(z3.Z3_mk_distinct(ref, 2, pair), ctx))
        else:
            out.append(z3.BoolRef(z3.Z3_mk_eq(ref, number, a) if first else z3.Z3_mk_eq(ref, a, number), ctx))
    return out


def is_bv(x: Any) -> bool:
    return isinstance(x, z3.BitVecRef)


def bv(value: Term, bits: int) -> z3.BitVecRef:
    """``value`` as a Z3 term of ``bits`` bits (numerals are made once per analysis: building one
    costs several calls into Z3)."""
    if isinstance(value, z3.BitVecRef):
        return value
    key = (value, bits)
    term = _numerals.get(key)
    if term is None:
        term = _numerals[key] = z3.BitVecVal(value, bits)
    return term


def symbol(name: str, bits: int) -> z3.BitVecRef:
    return z3.BitVec(name, bits)


def _byte_term(cell: Cell) -> z3.BitVecRef:
    if isinstance(cell, int):
        return bv(cell, 8)
    key = (ast_id(cell.source), cell.index)
    term = _extract_cache.get(key)
    if term is None:
        if width(cell.source) == 8:
            term = cell.source
        else:
            term = z3.Extract(8 * cell.index + 7, 8 * cell.index, cell.source)
        _extract_cache[key] = term
    return term


def bytes_of(term: Term, nbytes: int) -> tuple[Cell, ...]:
    """The ``nbytes`` bytes of ``term``, least significant first; a concatenation of byte-aligned
    extracts is taken apart into the bytes of its sources."""
    if isinstance(term, int):
        return tuple((term >> (8 * i)) & 0xFF for i in range(nbytes))
    if z3.is_bv_value(term):
        value = term.as_long()
        return tuple((value >> (8 * i)) & 0xFF for i in range(nbytes))
    key = ast_id(term)
    cached = _bytes_cache.get(key)
    if cached is not None and len(cached[1]) == nbytes:
        return cached[1]
    cells = _split(term)
    if cells is None or len(cells) != nbytes:
        cells = tuple(Slice(term, i) for i in range(nbytes))
    _bytes_cache[key] = (term, cells)
    return cells


def _split(term: z3.BitVecRef) -> Any:
    """Bytes of a Concat/Extract tree whose pieces are byte-aligned, else None."""
    if term.size() % 8:
        return None
    kind = term.decl().kind()
    if kind == z3.Z3_OP_CONCAT:
        cells: list[Cell] = []
        for child in reversed(term.children()):  # children are most significant first
            if child.size() % 8:
                return None
            part = _split(child)
            cells.extend(part if part is not None else [Slice(child, i) for i in range(child.size() // 8)])
        return tuple(cells)
    if kind == z3.Z3_OP_ZERO_EXT:
        inner = term.children()[0]
        if inner.size() % 8:
            return None
        base = _split(inner)
        if base is None:
            base = tuple(Slice(inner, i) for i in range(inner.size() // 8))
        return tuple(base) + (0,) * ((term.size() - inner.size()) // 8)
    if kind == z3.Z3_OP_EXTRACT:
        hi, lo = term.params()
        if lo % 8 or (hi + 1) % 8:
            return None
        inner = term.children()[0]
        if inner.size() % 8:
            return None
        base = _split(inner)
        if base is None:
            base = tuple(Slice(inner, i) for i in range(inner.size() // 8))
        return tuple(base[lo // 8:(hi + 1) // 8])
    if z3.is_bv_value(term):
        value = term.as_long()
        return tuple((value >> (8 * i)) & 0xFF for i in range(term.size() // 8))
    return None


def combine(cells: tuple[Cell, ...] | list[Cell]) -> Term:
    """The little-endian value of ``cells`` (cells[0] least significant) as an int when all are
    concrete, else a Z3 term built from maximal runs of one source's consecutive bytes."""
    if all(isinstance(c, int) for c in cells):
        value = 0
        for i, c in enumerate(cells):
            value |= c << (8 * i)
        return value
    if any(isinstance(c, Slice) and not is_bv(c.source) for c in cells):
        raise TypeError("pointer bytes cannot form an integer")
    key = ("combine",) + tuple(c if isinstance(c, int) else (ast_id(c.source), c.index) for c in cells)
    hit = TERM_MEMO.get(key)
    if hit is None:
        hit = TERM_MEMO[key] = _combine(cells)
    return hit


def width(term: Any) -> int:
    """The number of bits of a bit-vector term, memoized per Python object like ``ast_id``."""
    hit = _widths.get(id(term))
    if hit is None:
        hit = _widths[id(term)] = (term, term.size())
    return hit[1]


def _combine(cells: tuple[Cell, ...] | list[Cell]) -> Term:
    n = len(cells)
    first = cells[0]
    if (isinstance(first, Slice) and first.index == 0 and is_bv(first.source)
            and width(first.source) == 8 * n
            and all(isinstance(c, Slice) and _same(c.source, first.source) and c.index == i for i, c in enumerate(cells))):
        return first.source
    # Walk from the most significant byte down, merging runs of descending indices of one source.
    parts: list[z3.BitVecRef] = []
    i = n - 1
    while i >= 0:
        cell = cells[i]
        if isinstance(cell, int):
            j, value = i, 0
            while j >= 0 and isinstance(cells[j], int):
                value = (value << 8) | cells[j]
                j -= 1
            parts.append(bv(value, 8 * (i - j)))
            i = j
            continue
        if not is_bv(cell.source):
            raise TypeError("pointer bytes cannot form an integer")
        j = i - 1
        while j >= 0 and isinstance(cells[j], Slice) and _same(cells[j].source, cell.source) \
                and cells[j].index == cells[j + 1].index - 1:
            j -= 1
        hi, lo = 8 * cell.index + 7, 8 * cells[j + 1].index
        if lo == 0 and hi + 1 == width(cell.source):
            parts.append(cell.source)
        elif hi == lo + 7:
            parts.append(_byte_term(cell) if cells[j + 1] is cell else z3.Extract(hi, lo, cell.source))
        else:
            parts.append(z3.Extract(hi, lo, cell.source))
        i = j
    if len(parts) == 1:
        return parts[0]
    if z3.is_bv_value(parts[0]) and parts[0].as_long() == 0:  # leading zero bytes: a zero extension
        rest = parts[1] if len(parts) == 2 else z3.Concat(*parts[1:])
        return z3.ZeroExt(parts[0].size(), rest)
    return z3.Concat(*parts)


def _same(a: Any, b: Any) -> bool:
    return a is b or (is_bv(a) and is_bv(b) and ast_id(a) == ast_id(b))


def combine_be(cells: tuple[Cell, ...] | list[Cell]) -> Term:
    """The big-endian value of ``cells`` (cells[0] most significant): memory order, as keys are."""
    return combine(tuple(reversed(tuple(cells))))


def bswap(value: Term, bits: int) -> Term:
    """Reverse the bytes of a ``bits``-wide value (nf_ntohs / nf_ntohl)."""
    return combine_be(bytes_of(value, bits // 8))


_hash_functions: dict[int, z3.FuncDeclRef] = {}


def hash_function(nbytes: int) -> z3.FuncDeclRef:
    """``nf_hash<N>``: an uninterpreted function from 8N bits (memory order) to 32 bits."""
    fn = _hash_functions.get(nbytes)
    if fn is None:
        fn = z3.Function(f"nf_hash<{nbytes}>", z3.BitVecSort(8 * nbytes), z3.BitVecSort(32))
        _hash_functions[nbytes] = fn
    return fn


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a, the runtime's nf_hash."""
    h = FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


_HEAVY_OPS = frozenset({z3.Z3_OP_BMUL, z3.Z3_OP_BUDIV, z3.Z3_OP_BSDIV, z3.Z3_OP_BUREM, z3.Z3_OP_BSREM,
                        z3.Z3_OP_BSMOD, z3.Z3_OP_BUDIV_I, z3.Z3_OP_BSDIV_I, z3.Z3_OP_BUREM_I, z3.Z3_OP_BSREM_I})


# By Z3 AST id: (symbols by name, weight). The ids stay unique while the terms asked about are alive,
# and ``_constants_roots`` keeps them (and with them every subterm) alive until reset_caches().
_constants_cache: dict[int, tuple[dict[str, Any], int]] = {}
_constants_roots: list[Any] = []


HEAVY_SUMS = 12  # additions of non-constant terms in one term past which Z3's incremental solver slows down


def constants_of(term: Any) -> tuple[dict[str, Any], bool]:
    """The free symbols (uninterpreted constants) of ``term`` by name, and whether the term is heavy
    for Z3: it multiplies two non-constant terms, divides by anything but a power of two, or adds
    up more than ``HEAVY_SUMS`` non-constant terms (a constant-bound loop summing 32 state cells
    took Z3 7 s to prove a comparison of the sum, 64 cells past its timeout). Heavy questions are
    first tried on candidate assignments (``PathSolver._witness``). Memoized per subterm, since
    path constraints share large subterms; the DAG is walked through Z3's C API (z3.py's
    ``children()`` wraps every child in a Python object: a tenth of a 64-rule ACL's analysis)."""
    if not isinstance(term, z3.ExprRef):
        return {}, False
    hit = _constants_cache.get(ast_id(term))
    if hit is not None:
        return hit[0], hit[1] > HEAVY_SUMS
    ctx = term.ctx
    ref = ctx.ref()
    _constants_roots.append(term)
    stack: list[tuple[Any, bool]] = [(term.as_ast(), False)]
    while stack:
        node, ready = stack.pop()
        key = z3.Z3_get_ast_id(ref, node)
        if key in _constants_cache:
            continue
        if z3.Z3_get_ast_kind(ref, node) != z3.Z3_APP_AST:
            _constants_cache[key] = ({}, 0)
            continue
        app = z3.Z3_to_app(ref, node)
        count = z3.Z3_get_app_num_args(ref, app)
        kind = z3.Z3_get_decl_kind(ref, z3.Z3_get_app_decl(ref, app))
        if count == 0:
            if kind == z3.Z3_OP_UNINTERPRETED:
                name = z3.Z3_get_symbol_string(ref, z3.Z3_get_decl_name(ref, z3.Z3_get_app_decl(ref, app)))
                _constants_cache[key] = ({name: z3.z3._to_expr_ref(node, ctx)}, 0)
            else:
                _constants_cache[key] = ({}, 0)
            continue
        args = [z3.Z3_get_app_arg(ref, app, k) for k in range(count)]
        if not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in args)
            continue
        # the weight: past HEAVY_SUMS means heavy (a heavy operation counts as past it)
        weight = HEAVY_SUMS + 1 if kind in _HEAVY_OPS and not _by_constant(ref, kind, args) else 0
        if kind == z3.Z3_OP_BADD:
            weight += sum(1 for a in args if not z3.Z3_is_numeral_ast(ref, a)) - 1
        consts: dict[str, Any] = {}
        for a in args:
            child_consts, child_weight = _constants_cache[z3.Z3_get_ast_id(ref, a)]
            consts.update(child_consts)
            weight += child_weight
        _constants_cache[key] = (consts, min(weight, HEAVY_SUMS + 1))
    consts, weight = _constants_cache[ast_id(term)]
    return consts, weight > HEAVY_SUMS


def _by_constant(ref: Any, kind: int, args: list[Any]) -> bool:
    """A product with a constant factor, or a division or remainder by a power of two: shifts and
    adds once bit-blasted, so as cheap for Z3 as an addition."""
    if kind == z3.Z3_OP_BMUL:
        return sum(not z3.Z3_is_numeral_ast(ref, a) for a in args) <= 1
    divisor = args[-1]
    if not z3.Z3_is_numeral_ast(ref, divisor):
        return False
    value = int(z3.Z3_get_numeral_string(ref, divisor))
    return value > 0 and value & (value - 1) == 0


def subterms(term: Any) -> Iterator[Any]:
    """Every distinct subterm of ``term`` (itself included) once: a walk over the DAG, in which a
    shared subterm is visited once however many terms hold it."""
    todo, seen = [term], set()
    while todo:
        t = todo.pop()
        if t.get_id() in seen:
            continue
        seen.add(t.get_id())
        yield t
        todo.extend(t.children())


def symbols_of(term: Any) -> set[str]:
    """The names of the free symbols (uninterpreted constants) in ``term``."""
    return set(constants_of(term)[0])


def applications(terms: Iterable[Any]) -> Iterator[tuple[Any, Any, Any, int]]:
    """Each distinct function application in ``terms``' shared DAG, once: (the context's reference,
    the node, the application, its argument count), walked through Z3's C API (z3.py's ``children()``
    wraps every child in a Python object). The nodes are borrowed: ``terms`` keeps them alive."""
    exprs = [t for t in terms if isinstance(t, z3.ExprRef)]
    if not exprs:
        return
    ctx = exprs[0].ctx.ref()
    seen: set[int] = set()
    todo = [t.as_ast() for t in exprs]
    while todo:
        node = todo.pop()
        key = z3.Z3_get_ast_id(ctx, node)
        if key in seen or z3.Z3_get_ast_kind(ctx, node) != z3.Z3_APP_AST:
            continue
        seen.add(key)
        app = z3.Z3_to_app(ctx, node)
        count = z3.Z3_get_app_num_args(ctx, app)
        yield ctx, node, app, count
        todo.extend(z3.Z3_get_app_arg(ctx, app, k) for k in range(count))


def symbol_names(terms: Iterable[Any]) -> set[str]:
    """The names of the free symbols in any of ``terms``: one walk over their shared DAG. Path
    conditions share their conjuncts but each path's own conjunction is a new term, so walking them
    one by one through Python wrappers (``symbols_of``) grows with the square of a long if-chain:
    0.69 s against 0.05 s here for 200 ``if (port == K)`` lines."""
    names: set[str] = set()
    for ctx, _, app, count in applications(terms):
        if count == 0:
            decl = z3.Z3_get_app_decl(ctx, app)
            if z3.Z3_get_decl_kind(ctx, decl) == z3.Z3_OP_UNINTERPRETED:
                names.add(z3.Z3_get_symbol_string(ctx, z3.Z3_get_decl_name(ctx, decl)))
    return names


def given(term: Any, values: Iterable[tuple[Any, int]]) -> Any:
    """``term`` with each bit-vector symbol of ``values`` (symbol, value) replaced by its value,
    simplified."""
    subs = [(symbol, z3.BitVecVal(value, symbol.size())) for symbol, value in values]
    return z3.simplify(z3.substitute(term, *subs) if subs else term)


def from_state(term: Any) -> bool:
    """Whether ``term`` depends on a state library result (``flows.value#2``, ``v.cell#1``): a value
    only the NF can bound, which the analysis leaves to it (and the runtime checks)."""
    return any("#" in name for name in constants_of(term)[0])


_NARROWING_OPS = frozenset({z3.Z3_OP_BADD, z3.Z3_OP_BSUB, z3.Z3_OP_BMUL, z3.Z3_OP_BAND, z3.Z3_OP_BOR,
                            z3.Z3_OP_BXOR})


def low_bits(term: Any, bits: int, depth: int = 8) -> Any:
    """The low ``bits`` bits of ``term`` (C's conversion to a narrower type), kept small: truncation
    distributes over modular arithmetic and undoes zero/sign extension, so ``(uint8_t)(ttl - 1)``
    stays an 8-bit ``ttl - 1`` instead of a slice of a 32-bit sum."""
    width = term.size()
    if width == bits:
        return term
    if z3.is_bv_value(term):
        return z3.BitVecVal(term.as_long() & ((1 << bits) - 1), bits)
    kind = term.decl().kind() if z3.is_app(term) else None
    if kind in (z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT):
        inner = term.children()[0]
        if inner.size() == bits:
            return inner
        if inner.size() > bits:
            return low_bits(inner, bits, depth)
        return (z3.ZeroExt if kind == z3.Z3_OP_ZERO_EXT else z3.SignExt)(bits - inner.size(), inner)
    if depth > 0 and kind in _NARROWING_OPS:
        parts = [low_bits(c, bits, depth - 1) for c in term.children()]
        result = parts[0]
        for part in parts[1:]:
            if kind == z3.Z3_OP_BADD:
                result = result + part
            elif kind == z3.Z3_OP_BSUB:
                result = result - part
            elif kind == z3.Z3_OP_BMUL:
                result = result * part
            elif kind == z3.Z3_OP_BAND:
                result = result & part
            elif kind == z3.Z3_OP_BOR:
                result = result | part
            else:
                result = result ^ part
        return result
    if depth > 0 and kind in (z3.Z3_OP_BNOT, z3.Z3_OP_BNEG):
        inner = low_bits(term.children()[0], bits, depth - 1)
        return ~inner if kind == z3.Z3_OP_BNOT else -inner
    if kind == z3.Z3_OP_EXTRACT and term.params()[1] == 0:
        return z3.Extract(bits - 1, 0, term.children()[0])
    return z3.Extract(bits - 1, 0, term)
