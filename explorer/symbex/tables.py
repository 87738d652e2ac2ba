"""Constant tables read at a symbolic index: ``CLASS[ip->tos]`` is one value, an if-then-else over
the ranges of indices that hold each entry value, instead of a fork per index.

A 256-entry table with a handful of classes becomes a few range tests (``tos <= 39``), so the
analysis stays as fast as for a branch, and every later stage reads the same term. Only reads come
here (the element lives in a region made for the read, read-only), and only of tables that cannot
change while ``nf_process`` runs: ``const`` objects, globals or locals (static or not), and globals
(nf_process never writes those).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import z3

from explorer.symbex.bitvec import ast_id, bytes_of
from explorer.symbex.ctype import ArrayType, CType, IntType, PointerType, StructType
from explorer.symbex.values import Ptr

# Past this many runs of equal entries in one field the term would be as big as the table: such a
# read forks over the index's values as any other symbolic index (and is refused past a few).
MAX_RUNS = 512


class TooVaried(Exception):
    """A table whose entries change value more than MAX_RUNS times over the indices read."""

    def __init__(self, runs: int):
        super().__init__(runs)
        self.runs = runs


def table_element(machine: Any, region: Any, offset: int, elem: CType, count: int,
                  index: z3.BitVecRef) -> Optional[tuple[Ptr, CType]]:
    """The lvalue of element ``index`` (64-bit, proved in ``[0, count)``) of the table of ``count``
    ``elem`` at ``offset`` in ``region``, or None when the table is not all numbers; TooVaried when
    its entries change value too often."""
    if not isinstance(elem, (IntType, StructType)) or count < 2:
        return None
    count = min(count, _largest(index) + 1)  # a table longer than the index reaches (BIG[ip->ttl])
    size = elem.size
    cells = region.cells[offset:offset + count * size]
    try:
        raw = np.frombuffer(bytes(cells), dtype=np.uint8).reshape(count, size)  # TypeError: a term
    except (TypeError, ValueError):
        return None
    element: list[Any] = [0] * size
    kind, _, table = region.label.rpartition(" ")  # "global variable CLASS", "local variable PREC"
    declared = _declared(machine, region) if kind in ("global variable", "local variable") else None
    # the subscripts and members before the index: a row of ACTION[4][2] (offset 2) is ACTION[1][i]
    path = _designator(declared, offset, elem) if declared is not None else None
    table = table + path if path is not None else None
    for start, width, member in _spans(elem):
        column = _field(raw, start, width)
        term = _select(column, index, width * 8)
        if isinstance(term, int):
            element[start:start + width] = term.to_bytes(width, "little")
            continue
        element[start:start + width] = bytes_of(term, width)
        _name(term, table + "[{}]" + member if table is not None and member is not None else None, index,
              column.tolist())
    name = machine.fresh("table")
    made = machine.new_region(name, "const", f"an element of {region.label} read at a symbolic index", size)
    made.cells = element
    made.readonly = True
    return Ptr(PointerType(elem), name, 0), elem


def _declared(machine: Any, region: Any) -> Optional[CType]:
    """The declared type of the variable that ``region`` holds, where a scope in reach names it."""
    for scope in (machine.program.file_scope, *machine.scopes):
        for name, ctype in scope.vars.values():
            if name == region.name:
                return ctype
    return None


def _designator(t: CType, offset: int, elem: CType) -> Optional[str]:
    """The subscripts and members (``[1]``, ``.ports``) that lead from an object of type ``t`` to the
    array of ``elem`` that starts ``offset`` bytes into it; None when none does."""
    if isinstance(t, ArrayType):
        if offset == 0 and t.elem.size == elem.size and type(t.elem) is type(elem):
            return ""
        i, rest = divmod(offset, t.elem.size) if t.elem.size else (0, -1)
        inner = _designator(t.elem, rest, elem) if 0 <= i < t.length and rest >= 0 else None
        return None if inner is None else f"[{i}]{inner}"
    if isinstance(t, StructType):
        for field in t.fields:
            if field.offset <= offset < field.offset + field.ctype.size:
                inner = _designator(field.ctype, offset - field.offset, elem)
                if inner is not None:
                    return f".{field.name}{inner}"
    return None


def _largest(term: z3.BitVecRef) -> int:
    """An upper bound of the unsigned value of ``term``, from its shape: the width of a field
    under zero extension, a constant mask, remainder or shift."""
    full = (1 << term.size()) - 1
    if z3.is_bv_value(term):
        return term.as_long()
    kind = term.decl().kind() if z3.is_app(term) else None
    args = term.children()
    if kind == z3.Z3_OP_ZERO_EXT:
        return _largest(args[0])
    if kind == z3.Z3_OP_SIGN_EXT:
        inner = _largest(args[0])
        return inner if inner >> (args[0].size() - 1) == 0 else full
    if kind == z3.Z3_OP_CONCAT and z3.is_bv_value(args[0]) and args[0].as_long() == 0:
        return _largest(z3.Concat(*args[1:]) if len(args) > 2 else args[1])
    if kind == z3.Z3_OP_EXTRACT:
        return min(full, _largest(args[0]) >> term.params()[1])
    if kind == z3.Z3_OP_BAND:
        return min(_largest(a) for a in args)
    if kind == z3.Z3_OP_BUREM and z3.is_bv_value(args[1]) and args[1].as_long() > 0:
        return min(_largest(args[0]), args[1].as_long() - 1)
    if kind == z3.Z3_OP_BLSHR and z3.is_bv_value(args[1]):
        return _largest(args[0]) >> min(args[1].as_long(), term.size())
    return full


def _spans(elem: CType) -> list[tuple[int, int, Optional[str]]]:
    """(offset, width, how the piece is named after the element) of the pieces read as one number:
    the whole of an integer (""), each integer member of a struct (".name"), each byte of anything
    else (a byte of a nested struct or array by its path, ".mark[0]"; padding and bytes of wider
    numbers: None)."""
    if isinstance(elem, IntType):
        return [(0, elem.size, "")]
    spans: list[tuple[int, int, Optional[str]]] = []
    covered: set[int] = set()
    for field in elem.fields:
        if isinstance(field.ctype, IntType) and not covered.intersection(range(field.offset, field.offset + field.ctype.size)):
            spans.append((field.offset, field.ctype.size, "." + field.name))
            covered.update(range(field.offset, field.offset + field.ctype.size))
    spans.extend((i, 1, _scalar(elem, i)) for i in range(elem.size) if i not in covered)
    return sorted(spans)


def _scalar(t: CType, offset: int) -> Optional[str]:
    """The subscripts and members (``.mark[0]``) of the one-byte integer ``offset`` bytes into an object
    of type ``t``; None for padding or a byte of a wider number."""
    if isinstance(t, IntType):
        return "" if offset == 0 and t.size == 1 else None
    if isinstance(t, ArrayType) and t.elem.size:
        i, rest = divmod(offset, t.elem.size)
        inner = _scalar(t.elem, rest) if i < t.length else None
        return None if inner is None else f"[{i}]{inner}"
    if isinstance(t, StructType):
        for field in t.fields:
            if field.offset <= offset < field.offset + field.ctype.size:
                inner = _scalar(field.ctype, offset - field.offset)
                if inner is not None:
                    return f".{field.name}{inner}"
    return None


# A table read's term -> how to print it (``CLASS[p.ipv4.tos]``, not its ranges; a piece without a
# name by the indices that hold a value): by AST id, the term kept alive so that the id stays its
# own. Only for printing; emptied when it grows large.
_NAMES: dict[int, tuple[Any, Optional[str], Any, list[int]]] = {}
MAX_NAMES = 10_000


def _name(term: Any, pattern: Optional[str], index: Any, values: list[int]) -> None:
    if len(_NAMES) >= MAX_NAMES:
        _NAMES.clear()
    key = ast_id(term)
    if pattern is None and key in _NAMES:
        return  # equal entries of another table, at the same index: its name stays
    _NAMES[key] = (term, pattern, index, values)


def table_read(term: Any) -> Optional[tuple[str, Any]]:
    """(pattern with ``{}`` for the index, index term) when ``term`` is a constant table's element
    (or a member of one) as read at a symbolic index, else None."""
    hit = _NAMES.get(ast_id(term)) if _NAMES else None
    return None if hit is None or hit[1] is None else (hit[1], hit[2])


def table_values(term: Any) -> Optional[tuple[list[int], Any]]:
    """(the piece's value at each index, the index term) when ``term`` is a piece of a constant
    table's element read at a symbolic index, named or not; else None."""
    hit = _NAMES.get(ast_id(term)) if _NAMES else None
    return None if hit is None else (hit[3], hit[2])


def _field(raw: np.ndarray, start: int, width: int) -> np.ndarray:
    """The unsigned little-endian number of ``width`` bytes at ``start`` in each row of ``raw``."""
    piece = raw[:, start:start + width].astype(np.uint64)
    values = np.zeros(len(raw), dtype=np.uint64)
    for k in range(width):
        values |= piece[:, k] << np.uint64(8 * k)
    return values


def _select(values: np.ndarray, index: z3.BitVecRef, bits: int) -> Any:
    """``values[index]`` as an int (all equal) or an if-then-else over runs of equal values;
    TooVaried past MAX_RUNS runs. The value with the most runs is the final else, so its runs cost
    nothing."""
    ends = np.flatnonzero(values[1:] != values[:-1]).tolist()  # the last index of each run but the last
    if len(ends) + 1 > MAX_RUNS:
        raise TooVaried(len(ends) + 1)
    runs: dict[int, list[tuple[int, int]]] = {}
    start = 0
    for end in ends + [len(values) - 1]:
        runs.setdefault(int(values[start]), []).append((start, end))
        start = end + 1
    if len(runs) == 1:
        return int(values[0])
    last = len(values) - 1
    default = max(runs, key=lambda v: (len(runs[v]), -runs[v][0][0]))
    term: Any = z3.BitVecVal(default, bits)
    others = sorted((v for v in runs if v != default), key=lambda v: runs[v][0][0], reverse=True)
    for value in others:
        tests = [_within(index, lo, hi, last) for lo, hi in runs[value]]
        term = z3.If(z3.Or(*tests) if len(tests) > 1 else tests[0], z3.BitVecVal(value, bits), term)
    return term


def _within(index: z3.BitVecRef, lo: int, hi: int, last: int) -> Any:
    """``lo <= index <= hi`` for an index known to lie in ``[0, last]``."""
    if lo == hi:
        return index == lo
    if lo == 0:
        return z3.ULE(index, hi)
    if hi == last:
        return z3.UGE(index, lo)
    return z3.And(z3.UGE(index, lo), z3.ULE(index, hi))
