"""nf.h's pure helpers and the libc an NF may use: byte order, ``nf_hash`` (FNV-1a, an
uninterpreted function when its input is symbolic), ``memcpy``, ``memset`` and ``memcmp``, and gcc's
bit builtins (popcount, clz, ctz, ``__builtin_constant_p``)."""
from __future__ import annotations

from typing import Any, Optional

import z3
from pycparser import c_ast

from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import (bswap, bv, bytes_of, builtin_term, combine_be, fnv1a, from_state,
                                    hash_function)
from explorer.symbex.models.context import CallContext, Model
from explorer.symbex.program import BUILTIN_PROTOTYPES
from explorer.symbex.render import Renderer
from explorer.symbex.values import Int, Value, convert_int

MAX_BLOCK = 1 << 20  # bytes one memcpy / memset / memcmp may cover


class ByteSwap(Model):
    names = ("nf_ntohs", "nf_htons", "nf_ntohl", "nf_htonl", "__builtin_bswap16", "__builtin_bswap32",
             "__builtin_bswap64")

    def call(self, ctx: CallContext) -> Optional[Value]:
        bits = 16 if ctx.name.endswith(("s", "16")) else 64 if ctx.name.endswith("64") else 32
        t = {16: ct.USHORT, 32: ct.UINT, 64: ct.ULLONG}[bits]
        value = ctx.integer(0, t).v
        if ctx.name.startswith("nf_hton") and isinstance(value, int) and value:  # 0 reads as 0 either way
            ctx.machine.program.converted.add((bits // 8, value))
        return Int(t, bswap(value, bits))


class Expect(Model):
    """``__builtin_expect(x, c)`` (``likely()`` / ``unlikely()``): a hint to gcc; its value is ``x``."""

    names = ("__builtin_expect",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        return ctx.integer(0, ct.LONG)


class PopCount(Model):
    """``__builtin_popcount(x)`` (``l``, ``ll``: of an unsigned long, long long): how many bits of
    ``x`` are 1, as an int; of a symbolic ``x``, the sum of its bits."""

    names = ("__builtin_popcount", "__builtin_popcountl", "__builtin_popcountll")

    def call(self, ctx: CallContext) -> Optional[Value]:
        value = ctx.integer(0, _operand_type(ctx.name)).v
        if isinstance(value, int):
            return Int(ct.INT, bin(value).count("1"))
        return Int(ct.INT, builtin_term(_bit_count(value), ctx.name, value))


def _operand_type(name: str) -> ct.IntType:
    """The unsigned type a ``__builtin_<op>`` / ``<op>l`` / ``<op>ll`` takes, as its prototype says."""
    return BUILTIN_PROTOTYPES[name].params[0]


def _bit_count(value: Any) -> Any:
    """How many bits of the symbolic ``value`` are 1, as a 32-bit term (the sum of its bits)."""
    return z3.simplify(z3.Sum(*[z3.ZeroExt(31, z3.Extract(i, i, value)) for i in range(value.size())]))


class CountZeros(Model):
    """``__builtin_clz(x)`` / ``__builtin_ctz(x)`` (``l``, ``ll``: of an unsigned long, long long): how
    many 0 bits lead (from the top) or trail (from the bottom) ``x``, as an int.

    C leaves both undefined for 0 (x86's bsr/bsf leave the register as it was; lzcnt/tzcnt give the
    width), so, as for a division by zero: a constant 0 and a packet-derived ``x`` that can be 0 on
    the path are refused at the call, with an example; test ``x`` first. A value from state is left
    to the NF (only it knows a bitmap is never full), and its term reads the width for 0. A
    symbolic ``x``'s term is a popcount, which Z3 and ``explorer.symbex.evaluate`` both read:
    ctz(x) = popcount(~x & (x - 1)); clz(x) = popcount(~s) where s is x with every bit below its
    highest 1 set."""

    names = ("__builtin_clz", "__builtin_clzl", "__builtin_clzll", "__builtin_ctz", "__builtin_ctzl",
             "__builtin_ctzll")

    def call(self, ctx: CallContext) -> Optional[Value]:
        t = _operand_type(ctx.name)
        leading = ctx.name.startswith("__builtin_clz")
        value = ctx.integer(0, t).v
        if isinstance(value, int):
            if value == 0:
                raise ctx.fail(f"{ctx.name}(0) is undefined in C: the argument is always 0 here (a macro, or a "
                               f"-D value, that is 0?)")
            count = t.bits - value.bit_length() if leading else (value & -value).bit_length() - 1
            return Int(ct.INT, count)
        if not from_state(value) and ctx.state.possible(value == 0):
            raise ctx.fail(f"{ctx.name}() of {Renderer().text(value)}, which can be 0 on this path: undefined in C, "
                           f"so the built NF would not do what the analysis assumes; test it first (e.g. return "
                           f"NF_DROP when it is 0)")
        if leading:
            smeared, shift = value, 1
            while shift < t.bits:
                smeared, shift = smeared | z3.LShR(smeared, shift), shift * 2
            zeros = ~smeared
        else:
            zeros = ~value & (value - 1)
        return Int(ct.INT, builtin_term(_bit_count(zeros), ctx.name, value))


class ConstantP(Model):
    """``__builtin_constant_p(x)``: 1 when ``x`` is an integer constant expression (literals,
    enumerators, ``sizeof``, and operators and casts over them) or a string literal, else 0; ``x``
    is not evaluated, as in gcc.

    gcc's answer for anything else depends on optimisation (at -O2 it may fold a variable it has
    propagated a constant into, or an inline function's argument, to 1); the analysis answers the
    conservative 0, what gcc answers at -O0. A macro that guards a constant-folding shortcut with it
    computes the same value either way, which is what such guards are for."""

    names = ("__builtin_constant_p",)
    evaluates_arguments = False

    def call(self, ctx: CallContext) -> Optional[Value]:
        if len(ctx.nodes) != 1:
            raise ctx.fail(f"__builtin_constant_p() takes 1 argument, {len(ctx.nodes)} given")
        return Int(ct.INT, int(_constant_expression(ctx.nodes[0], ctx)))


_CONSTANT_UNARY = frozenset({"-", "+", "~", "!"})


def _constant_expression(node: Any, ctx: CallContext) -> bool:
    """Whether ``node`` is a constant ``__builtin_constant_p`` answers 1 for (C11 6.6, syntactically)."""
    if isinstance(node, c_ast.Constant):
        return True
    if isinstance(node, c_ast.ID):
        return ctx.machine.lookup_var(node.name) is None and ctx.machine.lookup_enum(node.name) is not None
    if isinstance(node, c_ast.UnaryOp):
        return node.op in ("sizeof", "_Alignof") or (node.op in _CONSTANT_UNARY and
                                                        _constant_expression(node.expr, ctx))
    if isinstance(node, c_ast.Cast):
        return _constant_expression(node.expr, ctx)
    if isinstance(node, c_ast.BinaryOp):
        return _constant_expression(node.left, ctx) and _constant_expression(node.right, ctx)
    if isinstance(node, c_ast.TernaryOp):
        return all(_constant_expression(n, ctx) for n in (node.cond, node.iftrue, node.iffalse))
    return False


class Hash(Model):
    names = ("nf_hash",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        ptr = ctx.pointer(0, "nf_hash()'s data")
        size = ctx.constant(1, "nf_hash()'s size", ctx.nodes[1])
        if not 0 < size <= 64:
            raise ctx.fail(f"nf_hash() of {size} bytes is not supported (1..64)")
        cells = ctx.machine.read(ptr, size, ctx.node)
        if all(isinstance(c, int) for c in cells):
            return Int(ct.UINT, fnv1a(bytes(cells)))
        return Int(ct.UINT, hash_function(size)(bv(combine_be(cells), 8 * size)))


def _size(ctx: CallContext) -> int:
    size = ctx.constant(2, f"the size given to {ctx.name}()", ctx.nodes[2])
    if size < 0 or size > MAX_BLOCK:
        raise ctx.fail(f"{ctx.name}() of {size} bytes")
    return size


class Memcpy(Model):
    names = ("memcpy",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        dst = ctx.pointer(0, "memcpy()'s destination")
        src = ctx.pointer(1, "memcpy()'s source")
        size = _size(ctx)
        if size:
            ctx.machine.write(dst, ctx.machine.read(src, size, ctx.node), ctx.node)
        return dst


class Memset(Model):
    names = ("memset",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        dst = ctx.pointer(0, "memset()'s destination")
        byte = convert_int(ctx.integer(1, ct.INT), ct.UCHAR)
        size = _size(ctx)
        if size:
            cell = byte.v if isinstance(byte.v, int) else bytes_of(byte.v, 1)[0]
            ctx.machine.write(dst, (cell,) * size, ctx.node)
        return dst


class Memcmp(Model):
    names = ("memcmp",)

    def call(self, ctx: CallContext) -> Optional[Value]:
        a = ctx.pointer(0, "memcmp()'s first argument")
        b = ctx.pointer(1, "memcmp()'s second argument")
        size = _size(ctx)
        xs, ys = ctx.machine.read(a, size, ctx.node), ctx.machine.read(b, size, ctx.node)
        if all(isinstance(c, int) for c in xs + ys):
            for x, y in zip(xs, ys):
                if x != y:
                    return Int(ct.INT, (-1 if x < y else 1) & 0xFFFFFFFF)
            return Int(ct.INT, 0)
        result: Any = z3.BitVecVal(0, 32)
        for x, y in reversed(list(zip(xs, ys))):
            xt, yt = bv(combine_be((x,)), 8), bv(combine_be((y,)), 8)
            result = z3.If(xt == yt, result, z3.If(z3.ULT(xt, yt), z3.BitVecVal(-1, 32), z3.BitVecVal(1, 32)))
        return Int(ct.INT, result)
