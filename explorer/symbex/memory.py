"""Byte-addressed memory regions: locals, globals, packet headers, borrowed vector cells, handles.

Each region is a list of cells (a concrete byte or a ``Slice`` of a wider term). Scalars are stored
little-endian as on x86; a pointer is stored as eight slices of the pointer value, and only a full,
aligned load gets it back.
"""
from __future__ import annotations

from typing import Any, Optional

from explorer.ir import Location
from explorer.symbex.ctype import ArrayType, CType, IntType, PointerType, StructType
from explorer.symbex.bitvec import Cell, Slice, ast_id, bytes_of, combine, is_bv
from explorer.symbex.values import Agg, Int, Ptr, SemanticsError, Value, mask


class Region:
    """A contiguous block of memory with a name (pointers refer to it) and a kind:
    ``local``, ``global``, ``header`` (ether / ipv4 / l4), ``cell`` (a borrowed vector cell),
    ``handle`` (an opaque state object), ``packet`` (the raw frame) or ``const`` (a string literal).

    A region in a snapshot is ``shared``: the machine copies it before changing it."""

    __slots__ = ("name", "kind", "label", "cells", "writes", "readonly", "alive", "shared", "unset")

    def __init__(self, name: str, kind: str, label: str, size: int, cells: Optional[list] = None,
                 readonly: bool = False):
        self.name = name
        self.kind = kind
        self.label = label
        self.cells: list = cells if cells is not None else [0] * size
        self.writes: dict[int, Location] = {}
        self.readonly = readonly
        self.alive = True
        self.shared = False
        # bytes of a local declared without an initializer that nothing has written yet: C leaves
        # them indeterminate (the machine reads them as 0, the built NF reads the stack)
        self.unset: frozenset[int] = frozenset()

    @property
    def size(self) -> int:
        return len(self.cells)

    def copy(self) -> "Region":
        region = Region(self.name, self.kind, self.label, 0, list(self.cells), self.readonly)
        region.writes = dict(self.writes)
        region.alive = self.alive
        region.unset = self.unset
        return region

    def check(self, offset: int, n: int) -> None:
        if offset < 0 or offset + n > len(self.cells):
            if self.kind == "header":
                hint = {"ipv4": "; use nf_tcpudp_header() to reach the TCP/UDP header (IPv4 options are not "
                                "supported)",
                        "ether": "; use nf_ipv4_header() to reach the IPv4 header",
                        "l4": "; only the ports are in struct nf_tcpudp_hdr: use nf_tcp_fields() for the rest of a "
                              "TCP header",
                        "tcp": "; TCP options are not modelled"}
                raise SemanticsError(f"access to bytes {offset}..{offset + n - 1} is past the {self.label} "
                                     f"({len(self.cells)} bytes){hint.get(self.name, '')}")
            raise SemanticsError(f"access to bytes {offset}..{offset + n - 1} is outside {self.label} "
                                 f"({len(self.cells)} bytes)")

    def read(self, offset: int, n: int) -> tuple:
        self.check(offset, n)
        return tuple(self.cells[offset:offset + n])

    def write(self, offset: int, cells: tuple, location: Optional[Location] = None) -> None:
        self.check(offset, len(cells))
        self.cells[offset:offset + len(cells)] = cells
        if self.unset:
            self.unset = self.unset.difference(range(offset, offset + len(cells)))
        if location is not None:
            for i in range(offset, offset + len(cells)):
                self.writes[i] = location


def cells_of(value: Value, ctype: CType) -> tuple:
    """The bytes that store ``value`` (already converted to ``ctype``)."""
    if isinstance(value, Int):
        return bytes_of(value.v, ctype.size)
    if isinstance(value, Ptr):
        if value.region is None and isinstance(value.offset, int):
            return bytes_of(value.offset & mask(64), 8)
        return tuple(Slice(value, i) for i in range(8))
    if isinstance(value, Agg):
        return value.cells
    raise SemanticsError(f"cannot store {value!r}")


def value_of(cells: tuple, ctype: CType) -> Value:
    """The value of type ``ctype`` that ``cells`` hold."""
    if isinstance(ctype, IntType):
        if any(isinstance(c, Slice) and not is_bv(c.source) for c in cells):
            raise SemanticsError("the bytes of a pointer are read as an integer")
        value = combine(cells)
        if ctype.is_bool and isinstance(value, int):
            return Int(ctype, value)
        return Int(ctype, value)
    if isinstance(ctype, PointerType):
        first = cells[0]
        if isinstance(first, Slice) and isinstance(first.source, Ptr):
            if all(isinstance(c, Slice) and c.source is first.source and c.index == i for i, c in enumerate(cells)):
                return first.source.retype(ctype)
            raise SemanticsError("a pointer is read from a part of its bytes")
        if all(isinstance(c, int) for c in cells):
            return Ptr(ctype, None, combine(cells))
        raise SemanticsError("a pointer is built from packet or state data")
    if isinstance(ctype, (StructType, ArrayType)):
        return Agg(ctype, tuple(cells))
    raise SemanticsError(f"cannot load a value of type {ctype}")


def same_cell(a: Cell, b: Cell) -> bool:
    """Whether two cells are syntactically the same byte (a concrete byte, or the same byte of the
    same term or pointer); False does not mean they may differ."""
    if isinstance(a, int) or isinstance(b, int):
        return a == b if isinstance(a, int) and isinstance(b, int) else False
    return a.index == b.index and (a.source is b.source or (is_bv(a.source) and is_bv(b.source)
                                                            and ast_id(a.source) == ast_id(b.source)))


def term_key(term: Any) -> Any:
    """A hashable stand-in for a concrete number, a Z3 term (its AST id: Z3 shares equal terms) or a
    pointer value, equal exactly when the two are syntactically the same."""
    if term is None or isinstance(term, int):
        return term
    if isinstance(term, Ptr):
        return ("ptr", term.region, term_key(term.offset))
    return ("term", ast_id(term))


def cell_key(cell: Cell) -> Any:
    return cell if isinstance(cell, int) else (term_key(cell.source), cell.index)
