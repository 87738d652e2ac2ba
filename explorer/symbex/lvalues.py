"""Lvalues: where an expression's object lives (a pointer) and its type, one ``visit_<Node>`` per
kind of expression that designates an object."""
from __future__ import annotations

from typing import Any

import z3
from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv
from explorer.symbex.ctype import CType, FunctionType, PointerType, StructType, VoidType
from explorer.symbex.state import MAX_VALUES
from explorer.symbex.tables import MAX_RUNS, TooVaried, table_element
from explorer.symbex.values import Int, Ptr, convert_int, index_offset, offset_add
from explorer.symbex.visitor import Visitor

Lvalue = tuple[Ptr, CType]


def is_lvalue(node: Any) -> bool:
    """Whether ``node`` designates an object (so ``.`` on it selects a member in memory)."""
    if isinstance(node, (c_ast.ID, c_ast.ArrayRef, c_ast.CompoundLiteral)):
        return True
    if isinstance(node, c_ast.UnaryOp) and node.op == "*":
        return True
    if isinstance(node, c_ast.StructRef):
        return node.type == "->" or is_lvalue(node.name)
    return False


class Lvalues(Visitor):
    def __init__(self, it: Any):
        super().__init__(it)
        self._reading = False

    def address(self, node: Any, reading: bool = False) -> Lvalue:
        """Where ``node``'s object lives. ``reading``: the object is only read here (an rvalue), so an
        element of a constant table at a symbolic index may live in a region made for this read
        (``tables.table_element``) instead of forking over every index."""
        outer, self._reading = self._reading, reading
        try:
            return self.visit(node)
        finally:
            self._reading = outer

    def generic_visit(self, node: Any) -> Lvalue:
        raise self.machine.fail(node, "this expression does not designate an object")

    def visit_ID(self, node: Any) -> Lvalue:
        m = self.machine
        hit = m.lookup_var(node.name)
        if hit is None:
            if m.is_function(node.name):
                raise m.fail(node, f"function pointers are not supported (here &{node.name})")
            raise m.fail(node, f"'{node.name}' does not designate an object")
        region, t = hit
        return Ptr(PointerType(t), region, 0), t

    def visit_UnaryOp(self, node: Any) -> Lvalue:
        m = self.machine
        if node.op != "*":
            return self.generic_visit(node)
        value = self.it.expressions.value(node.expr)
        if not isinstance(value, Ptr):
            raise m.fail(node, "dereference of a non-pointer")
        t = value.ctype.target
        if isinstance(t, FunctionType):
            raise m.fail(node, "function pointers are not supported")
        if self._reading and not isinstance(value.offset, int):
            element = self._table_at(value, t)
            if element is not None:
                return element
        return value, t

    def _constant(self, region: Any) -> bool:
        """Whether ``region`` cannot change while this run lasts (a table read at a symbolic index
        may then be one value)."""
        return region.readonly or (region.kind == "global" and self.machine.mode == "process")

    def _table_at(self, ptr: Ptr, t: CType) -> Lvalue | None:
        """``*(TABLE + i)``: the element of a constant table at a pointer whose offset is ``i`` (bytes)
        or ``i * sizeof element``, read as one value; None for any other pointer."""
        m = self.machine
        region = m.memory.get(ptr.region) if ptr.region is not None else None
        if region is None or region.kind == "packet" or not self._constant(region) or not t.size:
            return None
        index = _element_index(bv(ptr.offset, 64), t.size)
        if index is None:
            return None
        count = region.size // t.size
        if not m.state.proves(z3.ULT(index, count)):
            return None
        try:
            return table_element(m, region, 0, t, count, index)
        except TooVaried:
            return None

    def visit_ArrayRef(self, node: Any) -> Lvalue:
        m = self.machine
        base = self.it.expressions.value(node.name)
        index = self.it.expressions.value(node.subscript)
        if isinstance(base, Int) and isinstance(index, Ptr):
            base, index = index, base
        if not isinstance(base, Ptr) or not isinstance(index, Int):
            raise m.fail(node, "subscript of a non-array")
        elem = base.ctype.target
        if isinstance(elem, (VoidType, FunctionType)) or (isinstance(elem, StructType) and not elem.complete):
            raise m.fail(node, f"subscript of a pointer to {elem}")
        if not index.concrete:
            index = self._bounded_index(base, index, elem, node)
            if not isinstance(index, Int):
                return index
        delta = index_offset(index, elem.size)
        return Ptr(PointerType(elem), base.region, offset_add(base.offset, delta)), elem

    def _bounded_index(self, base: Ptr, index: Int, elem: CType, node: Any) -> Int | Lvalue:
        """A symbolic index: prove it stays inside the array, then read the element of a constant
        table as one value (the lvalue of a region made for the read), or fork over its values."""
        m = self.machine
        region = m.memory.get(base.region) if base.region is not None else None
        if region is not None and region.kind == "packet":
            raise m.packet_bytes(node)
        if region is None or not isinstance(base.offset, int):
            raise m.fail(node, "a symbolic index into an object the analyzer cannot bound")
        signed = convert_int(index, ct.LONG if index.ctype.signed else ct.ULONG)
        count = (region.size - base.offset) // max(elem.size, 1)
        low = -(base.offset // max(elem.size, 1))
        idx = bv(signed.v, 64)
        cond = z3.And(idx >= low, idx < count) if index.ctype.signed else z3.ULT(idx, count)
        if not m.state.proves(cond):
            raise m.fail(node.subscript, f"index may be outside {region.label} ({count} elements): bound it "
                                         "with a check first")
        varied = None
        if self._reading and self._constant(region):
            try:
                element = table_element(m, region, base.offset, elem, count, idx)
            except TooVaried as error:
                element, varied = None, error.runs
            if element is not None:
                return element
        try:
            value = m.state.concretize(index.v, m.loc(node.subscript), "the array index")
        except UnsupportedError:
            if varied is None:
                raise
            raise m.fail(node.subscript, f"the index into {region.label} may take more than {MAX_VALUES} values here, "
                                         f"and the entries it reaches change value {varied:,} times (a table is read "
                                         f"as one value up to {MAX_RUNS} runs of equal entries): group the entries "
                                         "(a coarser table, or ranges tested with if)") from None
        return Int(index.ctype, value)

    def visit_StructRef(self, node: Any) -> Lvalue:
        m = self.machine
        if node.type == "->":
            base = self.it.expressions.value(node.name)
            if not isinstance(base, Ptr):
                raise m.fail(node, "-> applied to a non-pointer")
            st = base.ctype.target
        else:
            base, st = self.visit(node.name)
        if isinstance(st, StructType) and not st.complete:  # e.g. a misspelt tag: C declares it on the fly
            raise m.fail(node, f"member access on {st}, which is declared but never defined")
        if not isinstance(st, StructType):
            raise m.fail(node, f"member access on {st}, not a struct or union")
        field = st.field(node.field.name)
        if field is None:
            raise m.fail(node.field, f"{st} has no member {node.field.name}")
        return Ptr(PointerType(field.ctype), base.region, offset_add(base.offset, field.offset)), field.ctype

    def visit_CompoundLiteral(self, node: Any) -> Lvalue:
        m = self.machine
        t = m.resolve_type(node.type)
        name = m.fresh("literal")
        m.new_region(name, "local", "a compound literal", t.size)
        ptr = Ptr(PointerType(t), name, 0)
        self.it.initializers.initialize(ptr, t, node.init)
        return ptr, t


def _element_index(offset: Any, size: int) -> Any:
    """``i`` of a byte offset built as ``0 + i * size`` (``TABLE + i``), or the offset itself for
    bytes; None for any other shape."""
    if z3.is_app_of(offset, z3.Z3_OP_BADD):
        terms = [c for c in offset.children() if not (z3.is_bv_value(c) and c.as_long() == 0)]
        if len(terms) != 1:
            return None
        offset = terms[0]
    if z3.is_app_of(offset, z3.Z3_OP_BMUL) and len(offset.children()) == 2:
        a, b = offset.children()
        index, scale = (b, a) if z3.is_bv_value(a) else (a, b)
        if z3.is_bv_value(scale) and scale.as_long() == size:
            return index
    return offset if size == 1 else None
