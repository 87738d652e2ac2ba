"""Evaluate the analysis' Z3 terms over whole arrays of packets with numpy.

Bit-vectors of up to 64 bits are uint64 arrays masked to their width; wider terms (map keys) are
evaluated as 64-bit slices. A term that mentions something not known per packet (a state value,
``now``, a hash) raises ``Unknown``; callers then treat it as "may be anything".
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import z3

from explorer.traffic.fields import PacketFields


class Unknown(Exception):
    """The term depends on a value the packets alone do not give."""


def packet_symbols(fields: PacketFields, devices: np.ndarray) -> dict[str, np.ndarray]:
    """The analysis' packet symbols (``p.ipv4.src``, ...) as uint64 arrays of host-order values."""
    u = lambda a: np.asarray(a).astype(np.uint64)  # noqa: E731
    version_ihl = np.where(fields.is_ipv4, (4 << 4) | u(fields.ihl), 0).astype(np.uint64)
    return {
        "p.ether.dst": u(fields.eth_dst), "p.ether.src": u(fields.eth_src), "p.ether.type": u(fields.ether_type),
        "p.ipv4.version_ihl": version_ihl, "p.ipv4.proto": u(fields.proto),
        "p.ipv4.frag_off": np.where(fields.frag, 0x2000, 0).astype(np.uint64),  # MF: only "is a fragment" matters
        "p.ipv4.src": u(fields.src_ip), "p.ipv4.dst": u(fields.dst_ip),
        "p.l4.sport": u(fields.src_port), "p.l4.dport": u(fields.dst_port),
        "p.device": u(devices), "p.len": u(fields.length),
    }


def _mask(width: int) -> np.uint64:
    return np.uint64((1 << width) - 1)


def _signed(values: np.ndarray, width: int) -> np.ndarray:
    v = values.astype(np.int64) if width == 64 else values.astype(np.int64)
    if width < 64:
        sign = np.int64(1 << (width - 1))
        v = (v ^ sign) - sign
    return v


class Evaluator:
    """Evaluates terms over a fixed set of packets, memoising shared subterms."""

    def __init__(self, symbols: Mapping[str, np.ndarray], count: int):
        self.symbols = symbols
        self.count = count
        self.memo: dict[int, tuple[z3.ExprRef, np.ndarray]] = {}

    def bits(self, term: z3.BitVecRef) -> list[np.ndarray]:
        """A bit-vector of any width as 64-bit slices, least significant first."""
        width = term.size()
        if width <= 64:
            return [self.value(term)]
        return [self.value(z3.simplify(z3.Extract(min(lo + 63, width - 1), lo, term))) for lo in range(0, width, 64)]

    def value(self, term: z3.ExprRef) -> np.ndarray:
        hit = self.memo.get(term.get_id())
        if hit is not None and hit[0].eq(term):
            return hit[1]
        out = self._eval(term)
        if np.ndim(out) == 0:
            out = np.full(self.count, out, dtype=bool if out.dtype == bool else np.uint64)
        self.memo[term.get_id()] = (term, out)
        return out

    def _eval(self, t: z3.ExprRef) -> np.ndarray:
        if z3.is_bv_value(t):
            return np.uint64(t.as_long())
        if z3.is_true(t):
            return np.bool_(True)
        if z3.is_false(t):
            return np.bool_(False)
        kind = t.decl().kind()
        args = t.children()
        if kind == z3.Z3_OP_UNINTERPRETED:
            name = t.decl().name()
            if args or name not in self.symbols:
                raise Unknown(name)
            return self.symbols[name] & _mask(t.size())
        if z3.is_bv(t) and t.size() > 64:
            raise Unknown(f"{t.size()}-bit term")
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise Unknown(t.decl().name())
        return handler(self, t, args)


def _bv(fn: Callable) -> Callable:
    def handle(ev: Evaluator, t, args):
        vals = [ev.value(a) for a in args]
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out & _mask(t.size())
    return handle


def _cmp(fn: Callable, signed: bool = False) -> Callable:
    def handle(ev: Evaluator, t, args):
        a, b = (ev.value(x) for x in args)
        if signed:
            w = args[0].size()
            a, b = _signed(a, w), _signed(b, w)
        return fn(a, b)
    return handle


def _concat(ev: Evaluator, t, args):
    out = np.zeros(ev.count, dtype=np.uint64)
    for a in args:
        out = (out << np.uint64(a.size())) | ev.value(a)
    return out


def _extract(ev: Evaluator, t, args):
    hi, lo = t.params()
    return (ev.value(args[0]) >> np.uint64(lo)) & _mask(hi - lo + 1)


def _sign_ext(ev: Evaluator, t, args):
    w = args[0].size()
    return _signed(ev.value(args[0]), w).astype(np.uint64) & _mask(t.size())


def _shift(op: str) -> Callable:
    def handle(ev: Evaluator, t, args):
        w = t.size()
        a, s = ev.value(args[0]), ev.value(args[1])
        big = s >= np.uint64(w)
        s = np.minimum(s, np.uint64(w - 1))
        if op == "shl":
            out = (a << s) & _mask(w)
            return np.where(big, np.uint64(0), out)
        if op == "lshr":
            return np.where(big, np.uint64(0), a >> s)
        sa = _signed(a, w)
        return (sa >> s.astype(np.int64)).astype(np.uint64) & _mask(w)
    return handle


def _udiv(ev: Evaluator, t, args):
    a, b = ev.value(args[0]), ev.value(args[1])
    safe = np.where(b == 0, np.uint64(1), b)
    return np.where(b == 0, _mask(t.size()), a // safe)  # SMT-LIB: x / 0 = all ones


def _urem(ev: Evaluator, t, args):
    a, b = ev.value(args[0]), ev.value(args[1])
    safe = np.where(b == 0, np.uint64(1), b)
    return np.where(b == 0, a, a % safe)


def _ite(ev: Evaluator, t, args):
    return np.where(ev.value(args[0]), ev.value(args[1]), ev.value(args[2]))


def _bool(fn: Callable) -> Callable:
    def handle(ev: Evaluator, t, args):
        vals = [ev.value(a) for a in args]
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out
    return handle


_HANDLERS: dict[int, Callable] = {
    z3.Z3_OP_BADD: _bv(lambda a, b: a + b),
    z3.Z3_OP_BSUB: _bv(lambda a, b: a - b),
    z3.Z3_OP_BMUL: _bv(lambda a, b: a * b),
    z3.Z3_OP_BAND: _bv(lambda a, b: a & b),
    z3.Z3_OP_BOR: _bv(lambda a, b: a | b),
    z3.Z3_OP_BXOR: _bv(lambda a, b: a ^ b),
    z3.Z3_OP_BNOT: lambda ev, t, a: ~ev.value(a[0]) & _mask(t.size()),
    z3.Z3_OP_BNEG: lambda ev, t, a: (np.uint64(0) - ev.value(a[0])) & _mask(t.size()),
    z3.Z3_OP_CONCAT: _concat,
    z3.Z3_OP_EXTRACT: _extract,
    z3.Z3_OP_ZERO_EXT: lambda ev, t, a: ev.value(a[0]),
    z3.Z3_OP_SIGN_EXT: _sign_ext,
    z3.Z3_OP_BSHL: _shift("shl"),
    z3.Z3_OP_BLSHR: _shift("lshr"),
    z3.Z3_OP_BASHR: _shift("ashr"),
    z3.Z3_OP_BUDIV: _udiv, z3.Z3_OP_BUDIV_I: _udiv,
    z3.Z3_OP_BUREM: _urem, z3.Z3_OP_BUREM_I: _urem,
    z3.Z3_OP_ITE: _ite,
    z3.Z3_OP_EQ: _cmp(lambda a, b: a == b),
    z3.Z3_OP_DISTINCT: _cmp(lambda a, b: a != b),
    z3.Z3_OP_ULT: _cmp(lambda a, b: a < b), z3.Z3_OP_ULEQ: _cmp(lambda a, b: a <= b),
    z3.Z3_OP_UGT: _cmp(lambda a, b: a > b), z3.Z3_OP_UGEQ: _cmp(lambda a, b: a >= b),
    z3.Z3_OP_SLT: _cmp(lambda a, b: a < b, True), z3.Z3_OP_SLEQ: _cmp(lambda a, b: a <= b, True),
    z3.Z3_OP_SGT: _cmp(lambda a, b: a > b, True), z3.Z3_OP_SGEQ: _cmp(lambda a, b: a >= b, True),
    z3.Z3_OP_AND: _bool(lambda a, b: a & b),
    z3.Z3_OP_OR: _bool(lambda a, b: a | b),
    z3.Z3_OP_XOR: _bool(lambda a, b: a ^ b),
    z3.Z3_OP_NOT: lambda ev, t, a: ~ev.value(a[0]),
    z3.Z3_OP_IMPLIES: lambda ev, t, a: ~ev.value(a[0]) | ev.value(a[1]),
}


def conjuncts(condition: z3.BoolRef) -> list[z3.BoolRef]:
    """The top-level conjuncts of a path condition."""
    if z3.is_and(condition):
        out = []
        for c in condition.children():
            out.extend(conjuncts(c))
        return out
    return [condition]


def packet_guard(ev: Evaluator, condition: z3.BoolRef) -> np.ndarray:
    """Packets that may take a path: its conjuncts over packet fields hold (others are assumed to)."""
    mask = np.ones(ev.count, dtype=bool)
    for c in conjuncts(condition):
        try:
            mask &= ev.value(c)
        except Unknown:
            continue
    return mask
