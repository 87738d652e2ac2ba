"""C values and C integer semantics over concrete ints and Z3 bit-vectors.

An integer value keeps a Python int (the unsigned bit pattern) while it is concrete and becomes a
Z3 term only once a symbol flows into it, so nf_init and loop counters cost no Z3 calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import z3

from explorer.symbex.ctype import (ArrayType, CType, FunctionType, INT, IntType, LONG, PTRDIFF_T, PointerType,
                                   StructType, ULONG, common_type, promote)
from explorer.symbex.bitvec import TERM_MEMO, Cell, Term, ast_id, bv, low_bits


# A constant divisor of 0 is almost always a configuration macro left at (or set to) 0.
_BY_ZERO = "division by zero: the divisor is always 0 here (a macro, or a -D value, that is 0?)"


class SemanticsError(Exception):
    """A C operation the explorer refuses (division by zero, pointer misuse); the interpreter adds
    the source location and turns it into an UnsupportedError."""


@dataclass(frozen=True)
class Int:
    ctype: IntType
    v: Term  # the unsigned bit pattern (int) or a Z3 term of ctype.bits bits
    cond: Any = None  # for 0/1 results of comparisons: the Z3 condition (or a Python bool)

    @property
    def concrete(self) -> bool:
        return isinstance(self.v, int)

    def signed_value(self) -> int:
        assert isinstance(self.v, int)
        return to_signed(self.v, self.ctype.bits) if self.ctype.signed else self.v


@dataclass(frozen=True)
class Ptr:
    """A pointer: ``region`` names the memory region (None for NULL or an integer address) and
    ``offset`` is a byte offset (int, or a 64-bit Z3 term for a symbolic index)."""

    ctype: PointerType
    region: Optional[str]
    offset: Term

    def retype(self, ctype: PointerType) -> "Ptr":
        return Ptr(ctype, self.region, self.offset)


@dataclass(frozen=True)
class Agg:
    """A struct or array value: its bytes."""

    ctype: Union[StructType, ArrayType]
    cells: tuple[Cell, ...]


Value = Union[Int, Ptr, Agg]


def _key(x: Any) -> Any:
    if isinstance(x, Int):
        return (x.ctype, _key(x.v), _key(x.cond))
    if x is None or isinstance(x, (bool, int, str, IntType)):
        return x
    return ("term", ast_id(x))


def _symbolic(x: Any) -> bool:
    return isinstance(x, Int) and not isinstance(x.v, int) or isinstance(x, z3.ExprRef)


def memoized(fn: Callable[..., Int]) -> Callable[..., Int]:
    """``fn`` remembered for symbolic arguments (an analysis evaluates the same operations on the same
    terms again on every path that replays them, and each new Z3 term costs several foreign calls);
    concrete arguments are cheaper to compute than to look up."""
    def wrapper(*args: Any) -> Int:
        if not any(_symbolic(a) for a in args):
            return fn(*args)
        key = (fn.__name__,) + tuple(_key(a) for a in args)
        hit = TERM_MEMO.get(key)
        if hit is None:
            hit = TERM_MEMO[key] = fn(*args)
        return hit
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def mask(bits: int) -> int:
    return (1 << bits) - 1


def to_signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


@memoized
def bool_int(cond: Any) -> Int:
    """The int 0/1 of a condition (a Python bool or a Z3 Bool)."""
    if isinstance(cond, bool):
        return Int(INT, int(cond), cond)
    return Int(INT, z3.If(cond, bv(1, 32), bv(0, 32)), cond)


def truth(value: Value) -> Any:
    """The C truth value of a scalar: a Python bool when known, else a Z3 Bool."""
    if isinstance(value, Int):
        if value.cond is not None:
            return value.cond
        if isinstance(value.v, int):
            return value.v != 0
        return value.v != 0
    if isinstance(value, Ptr):
        if value.region is not None:
            return True  # objects, locals and headers never live at address 0
        if isinstance(value.offset, int):
            return value.offset != 0
        return value.offset != 0
    raise SemanticsError("a struct or array is used where a scalar is required")


@memoized
def convert_int(value: Int, to: IntType) -> Int:
    frm = value.ctype
    if to.is_bool:
        cond = truth(value)
        if isinstance(cond, bool):
            return Int(to, int(cond), cond)
        return Int(to, z3.If(cond, bv(1, 8), bv(0, 8)), cond)
    v = value.v
    if to.bits == frm.bits:
        return Int(to, v, value.cond)
    if isinstance(v, int):
        if to.bits > frm.bits and frm.signed:
            v = to_signed(v, frm.bits)
        return Int(to, v & mask(to.bits), value.cond)
    if to.bits > frm.bits:
        ext = z3.SignExt if frm.signed else z3.ZeroExt
        return Int(to, ext(to.bits - frm.bits, v), value.cond)
    return Int(to, low_bits(v, to.bits), value.cond)


def convert(value: Value, to: CType) -> Value:
    """C's conversion as if by assignment or cast to ``to``."""
    if isinstance(to, IntType):
        if isinstance(value, Int):
            return convert_int(value, to)
        if isinstance(value, Ptr):
            if value.region is None:  # an integer address, e.g. offsetof's ((T *)0)->member
                off = value.offset
                return convert_int(Int(ULONG, off & mask(64) if isinstance(off, int) else off), to)
            if to.is_bool:
                return Int(to, 1, True)
            raise SemanticsError("a pointer converted to an integer is not supported")
        raise SemanticsError(f"cannot convert {value.ctype} to {to}")
    if isinstance(to, PointerType):
        if isinstance(value, Ptr):
            return value.retype(to)
        if isinstance(value, Int):
            if isinstance(value.v, int):
                return Ptr(to, None, value.v)
            raise SemanticsError("an integer computed from packet or state data is used as a pointer")
        raise SemanticsError(f"cannot convert {value.ctype} to {to}")
    if isinstance(to, (StructType, ArrayType)):
        if isinstance(value, Agg) and value.ctype.size == to.size:
            return Agg(to, value.cells)
        raise SemanticsError(f"cannot convert {getattr(value, 'ctype', value)} to {to}")
    raise SemanticsError(f"cannot convert to {to}")


def _both(a: Int, b: Int, t: IntType) -> tuple[Int, Int]:
    return convert_int(a, t), convert_int(b, t)


@memoized
def arithmetic(op: str, a: Int, b: Int) -> Int:
    """``a op b`` for + - * / % & | ^ << >> with C's promotions and usual arithmetic conversions."""
    if op in ("<<", ">>"):
        return _shift(op, a, b)
    t = common_type(a.ctype, b.ctype)
    a, b = _both(a, b, t)
    bits = t.bits
    if isinstance(a.v, int) and isinstance(b.v, int):
        x, y = a.v, b.v
        if op == "+":
            r = x + y
        elif op == "-":
            r = x - y
        elif op == "*":
            r = x * y
        elif op == "&":
            r = x & y
        elif op == "|":
            r = x | y
        elif op == "^":
            r = x ^ y
        elif op in ("/", "%"):
            if y == 0:
                raise SemanticsError(_BY_ZERO)
            if t.signed:
                sx, sy = to_signed(x, bits), to_signed(y, bits)
                q = abs(sx) // abs(sy)
                if (sx < 0) != (sy < 0):
                    q = -q
                r = q if op == "/" else sx - q * sy
            else:
                r = x // y if op == "/" else x % y
        else:
            raise SemanticsError(f"unknown operator {op}")
        return Int(t, r & mask(bits))
    x, y = bv(a.v, bits), bv(b.v, bits)
    if op == "+":
        r = x + y
    elif op == "-":
        r = x - y
    elif op == "*":
        r = x * y
    elif op == "&":
        r = x & y
    elif op == "|":
        r = x | y
    elif op == "^":
        r = x ^ y
    elif op == "/":
        if isinstance(b.v, int) and b.v == 0:
            raise SemanticsError(_BY_ZERO)
        r = x / y if t.signed else z3.UDiv(x, y)
    elif op == "%":
        if isinstance(b.v, int) and b.v == 0:
            raise SemanticsError(_BY_ZERO)
        r = z3.SRem(x, y) if t.signed else z3.URem(x, y)
    else:
        raise SemanticsError(f"unknown operator {op}")
    return Int(t, r)


def _shift(op: str, a: Int, b: Int) -> Int:
    t = promote(a.ctype)
    a = convert_int(a, t)
    b = convert_int(b, promote(b.ctype))
    bits = t.bits
    if isinstance(b.v, int):
        count = b.signed_value()
        if count < 0:
            raise SemanticsError("shift by a negative amount")
        if isinstance(a.v, int):
            x = a.v
            if op == "<<":
                return Int(t, (x << count) & mask(bits) if count < bits else 0)
            if t.signed:
                sx = to_signed(x, bits)
                return Int(t, (sx >> min(count, bits - 1)) & mask(bits) if count < bits
                           else (mask(bits) if sx < 0 else 0))
            return Int(t, x >> count if count < bits else 0)
        y = z3.BitVecVal(min(count, (1 << bits) - 1), bits)
    else:
        yb = b.v
        if b.ctype.bits < bits:
            yb = z3.ZeroExt(bits - b.ctype.bits, yb)
        elif b.ctype.bits > bits:
            yb = z3.Extract(bits - 1, 0, yb)
        y = yb
    x = bv(a.v, bits)
    if op == "<<":
        return Int(t, x << y)
    return Int(t, x >> y if t.signed else z3.LShR(x, y))


@memoized
def compare(op: str, a: Int, b: Int) -> Int:
    """``a op b`` for == != < <= > >= on integers; the result is an int 0/1 carrying its condition."""
    t = common_type(a.ctype, b.ctype)
    a, b = _both(a, b, t)
    if isinstance(a.v, int) and isinstance(b.v, int):
        x, y = (a.signed_value(), b.signed_value()) if t.signed else (a.v, b.v)
        result = {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
        return bool_int(result)
    x, y = bv(a.v, t.bits), bv(b.v, t.bits)
    if op == "==":
        cond = x == y
    elif op == "!=":
        cond = x != y
    elif t.signed:
        cond = {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    else:
        cond = {"<": z3.ULT(x, y), "<=": z3.ULE(x, y), ">": z3.UGT(x, y), ">=": z3.UGE(x, y)}[op]
    return bool_int(cond)


@memoized
def unary(op: str, a: Int) -> Int:
    t = promote(a.ctype)
    a = convert_int(a, t)
    if isinstance(a.v, int):
        if op == "-":
            return Int(t, (-a.v) & mask(t.bits))
        if op == "~":
            return Int(t, a.v ^ mask(t.bits))
        return a
    if op == "-":
        return Int(t, -a.v)
    if op == "~":
        return Int(t, ~a.v)
    return a


def logical_not(value: Value) -> Int:
    cond = truth(value)
    if isinstance(cond, bool):
        return bool_int(not cond)
    return bool_int(z3.Not(cond))


def offset_add(offset: Term, delta: Term) -> Term:
    """Pointer offset arithmetic (64-bit)."""
    if isinstance(offset, int) and isinstance(delta, int):
        return offset + delta
    return bv(offset, 64) + bv(delta, 64)


def index_offset(index: Int, scale: int) -> Term:
    """``index * scale`` as a byte offset (sign-extended to 64 bits as C does for signed indices)."""
    v = convert_int(index, LONG if index.ctype.signed else ULONG)
    if isinstance(v.v, int):
        return to_signed(v.v, 64) * scale
    return v.v * scale


def pointer_compare(op: str, a: Ptr, b: Ptr) -> Int:
    if a.region != b.region:
        if op in ("==", "!="):
            return bool_int(op == "!=")
        raise SemanticsError("pointers into different objects are compared")
    x, y = a.offset, b.offset
    if isinstance(x, int) and isinstance(y, int):
        return bool_int({"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])
    return compare(op, Int(LONG, x if not isinstance(x, int) else x & mask(64)),
                   Int(LONG, y if not isinstance(y, int) else y & mask(64)))


def pointer_add(p: Ptr, i: Int, op: str) -> Ptr:
    """``p + i`` / ``p - i``: the offset moves by ``i`` elements of the pointed-to type."""
    target = p.ctype.target
    if isinstance(target, FunctionType):
        raise SemanticsError("function pointers are not supported")
    if isinstance(target, StructType) and not target.complete:
        raise SemanticsError(f"arithmetic on a pointer to incomplete {target}")
    delta = index_offset(i, max(target.size, 1))
    if op == "-":
        delta = -delta
    return Ptr(p.ctype, p.region, offset_add(p.offset, delta))


def pointer_diff(a: Ptr, b: Ptr) -> Int:
    """``a - b`` in elements, for two pointers into one object."""
    if a.region != b.region:
        raise SemanticsError("subtraction of pointers into different objects")
    size = max(a.ctype.target.size, 1)
    diff = offset_add(a.offset, -b.offset if isinstance(b.offset, int) else -bv(b.offset, 64))
    if isinstance(diff, int):
        return Int(PTRDIFF_T, (diff // size) & mask(64))
    return Int(PTRDIFF_T, diff / size)


def add(a: Value, b: Value, op: str) -> Value:
    """``a + b`` / ``a - b`` on integers and pointers."""
    if isinstance(a, Ptr) and isinstance(b, Int):
        return pointer_add(a, b, op)
    if isinstance(a, Int) and isinstance(b, Ptr) and op == "+":
        return pointer_add(b, a, op)
    if isinstance(a, Ptr) and isinstance(b, Ptr) and op == "-":
        return pointer_diff(a, b)
    if isinstance(a, Int) and isinstance(b, Int):
        return arithmetic(op, a, b)
    raise SemanticsError(f"invalid operands to {op}")
