"""nf.h's pure helpers and the libc an NF may use: byte order, ``nf_hash`` (FNV-1a, an
uninterpreted function when its input is symbolic), ``memcpy``, ``memset`` and ``memcmp``."""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bswap, bv, bytes_of, combine_be, fnv1a, hash_function
from explorer.symbex.models.context import CallContext, Model
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
        t = ct.UINT if ctx.name == "__builtin_popcount" else ct.ULONG if ctx.name.endswith("l") and not \
            ctx.name.endswith("ll") else ct.ULLONG
        value = ctx.integer(0, t).v
        if isinstance(value, int):
            return Int(ct.INT, bin(value).count("1"))
        bits = [z3.ZeroExt(31, z3.Extract(i, i, value)) for i in range(t.bits)]
        return Int(ct.INT, z3.simplify(z3.Sum(*bits)))


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
