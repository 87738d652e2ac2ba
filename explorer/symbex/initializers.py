"""Initializers: storing ``= value``, ``= "text"`` and brace lists (with designators) into a new
object; whatever a brace list leaves out is zero."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

from pycparser import c_ast

from explorer.nfsource.number_lists import NumberElements
from explorer.symbex.ctype import ArrayType, CType, IntType, PointerType, StructType
from explorer.symbex.literals import int_constant, string_bytes
from explorer.symbex.values import Agg, Ptr, mask
from explorer.symbex.visitor import Visitor


@lru_cache(maxsize=4096)
def _stored(negated: bool, literal: str, elem: IntType) -> Optional[bytes]:
    """The bytes an element of type ``elem`` holds for the integer literal ``literal`` (negated
    when ``negated``), as C converts it; None when ``literal`` is not an integer literal."""
    try:
        value, ctype = int_constant(literal)
    except ValueError:
        return None
    if negated:
        value = -value & mask(ctype.bits)
    if ctype.signed and value >> (ctype.bits - 1):
        value -= 1 << ctype.bits
    value = int(value != 0) if elem.is_bool else value & mask(elem.bits)
    return value.to_bytes(elem.size, "little")


def _member(ptr: Ptr, t: CType, offset: int) -> Ptr:
    return Ptr(PointerType(t), ptr.region, ptr.offset + offset)


class Initializers(Visitor):
    def initialize(self, ptr: Ptr, t: CType, init: Any) -> None:
        """Store the initializer ``init`` for an object of type ``t`` at ``ptr`` (rest zeroed)."""
        m = self.machine
        if isinstance(init, c_ast.InitList):
            m.write(ptr, (0,) * t.size, init)
            self._list(ptr, t, init)
            return
        if isinstance(t, ArrayType) and isinstance(init, c_ast.Constant) and init.type == "string":
            data = string_bytes(init)
            if len(data) > t.size + 1:
                raise m.fail(init, "string initializer is longer than the array")
            m.write(ptr, tuple(data[:t.size]) + (0,) * (t.size - min(len(data), t.size)), init)
            return
        value = self.it.expressions.value(init)
        if isinstance(t, (StructType, ArrayType)):
            if not isinstance(value, Agg) or value.ctype.size != t.size:
                raise m.fail(init, f"initializer of type {getattr(value, 'ctype', '?')} for an object of type {t}")
            m.write(ptr, value.cells, init)
            return
        m.store(ptr, t, m.convert(value, t, init), init)

    def _list(self, ptr: Ptr, t: CType, init: Any) -> None:
        if isinstance(t, StructType):
            self._struct_list(ptr, t, init)
        elif isinstance(t, ArrayType):
            self._array_list(ptr, t, init)
        elif len(init.exprs) != 1:  # a scalar in braces: { x }
            raise self.machine.fail(init, "a scalar initializer takes one value")
        else:
            self._element(ptr, t, init.exprs[0])

    def _struct_list(self, ptr: Ptr, t: StructType, init: Any) -> None:
        m = self.machine
        index = 0
        for expr in init.exprs:
            target = expr
            if isinstance(expr, c_ast.NamedInitializer):
                designator = expr.name[0]
                if not isinstance(designator, c_ast.ID):
                    raise m.fail(expr, "array designator used for a struct")
                names = [f.name for f in t.fields]
                if designator.name not in names:
                    raise m.fail(expr, f"{t} has no member {designator.name}")
                index = names.index(designator.name)
                target = expr.expr
                if len(expr.name) > 1:
                    field = t.fields[index]
                    sub = c_ast.NamedInitializer(expr.name[1:], expr.expr, expr.coord)
                    self._list(_member(ptr, field.ctype, field.offset), field.ctype, c_ast.InitList([sub], expr.coord))
                    index += 1
                    continue
            if index >= len(t.fields):
                raise m.fail(expr, f"too many initializers for {t}")
            field = t.fields[index]
            self._element(_member(ptr, field.ctype, field.offset), field.ctype, target)
            index += 1
            if t.union:
                break

    def _array_list(self, ptr: Ptr, t: ArrayType, init: Any) -> None:
        m = self.machine
        if len(init.exprs) >= 64 and isinstance(t.elem, IntType) and self._numbers(ptr, t, init):
            return
        index = 0
        for expr in init.exprs:
            target = expr
            if isinstance(expr, c_ast.NamedInitializer):
                designator = expr.name[0]
                if isinstance(designator, c_ast.ID):
                    raise m.fail(expr, "member designator used for an array")
                if type(designator).__name__ == "ArrayDesignator":  # pycparser 3 wraps [index]
                    designator = designator.expr
                index = self.it.constant(designator)
                target = expr.expr
                if len(expr.name) > 1:
                    sub = c_ast.NamedInitializer(expr.name[1:], expr.expr, expr.coord)
                    self._list(_member(ptr, t.elem, index * t.elem.size), t.elem, c_ast.InitList([sub], expr.coord))
                    index += 1
                    continue
            if not 0 <= index < t.length:
                raise m.fail(expr, f"initializer index {index} is outside the array of {t.length}")
            self._element(_member(ptr, t.elem, index * t.elem.size), t.elem, target)
            index += 1

    def _numbers(self, ptr: Ptr, t: ArrayType, init: Any) -> bool:
        """A long list of integer literals (a generated table) stored in one write: each converted
        to the element type as C converts (modulo its width; != 0 for a bool), once per distinct
        spelling. False when an element is anything else, for the general path (and its errors) to
        take."""
        elem = t.elem
        if len(init.exprs) > t.length:
            return False
        if isinstance(init.exprs, NumberElements):  # an elided list: its spellings, without nodes
            numbers = init.exprs.numbers
            stored = {part: _stored(negated, literal, elem) for part, (negated, literal) in numbers.spellings.items()}
            if None in stored.values():
                return False
            data = b"".join(map(stored.__getitem__, numbers.parts))
        else:
            pieces = []
            for expr in init.exprs:
                negate = isinstance(expr, c_ast.UnaryOp) and expr.op == "-"
                node = expr.expr if negate else expr
                if not isinstance(node, c_ast.Constant) or node.type in ("string", "char", "float", "double",
                                                                         "long double"):
                    return False
                piece = _stored(negate, node.value, elem)
                if piece is None:
                    return False
                pieces.append(piece)
            data = b"".join(pieces)
        self.machine.write(ptr, tuple(data), init)
        return True

    def _element(self, ptr: Ptr, t: CType, expr: Any) -> None:
        if isinstance(expr, c_ast.InitList):
            self._list(ptr, t, expr)
            return
        if isinstance(t, (StructType, ArrayType)) and not (
                isinstance(t, ArrayType) and isinstance(expr, c_ast.Constant) and expr.type == "string"):
            value = self.it.expressions.value(expr)
            if isinstance(value, Agg) and value.ctype.size == t.size:
                self.machine.write(ptr, value.cells, expr)
                return
            raise self.machine.fail(expr, f"initialize the {t} member with braces ({{...}}); brace elision is "
                                          "not supported")
        self.initialize(ptr, t, expr)
