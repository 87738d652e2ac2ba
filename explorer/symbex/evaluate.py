"""Evaluate the analysis's Z3 terms on concrete values, in bulk, without Z3.

``compile_term(term)`` turns a term into a Python function over numpy arrays (generated source,
one line per DAG node), so that a path condition or a state key can be evaluated for 10,000 packets
in one call: ``compile_term(key)({"p.ipv4.src": srcs, "p.ipv4.dst": dsts, ...})``.

Values follow Z3's bit-vector semantics exactly (wrap-around, division by zero, shifts past the
width). Bit-vectors of up to 64 bits are ``uint64`` arrays; wider ones (keys of more than 8 bytes)
are object arrays of Python ints; Booleans are ``bool`` arrays. ``nf_hash<N>`` is FNV-1a over the
N bytes of its argument in memory order, as the runtime computes it.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import z3

from explorer.symbex.bitvec import FNV_OFFSET, FNV_PRIME
from explorer.wire import L4_REGIONS, PACKET_FIELDS

_U64 = np.uint64


def _mask(bits: int) -> int:
    return (1 << bits) - 1


def _arr(value: Any, bits: int) -> np.ndarray:
    """An input as an array in the representation of its width."""
    if bits <= 64:
        if isinstance(value, np.ndarray) and value.dtype == np.uint64:
            return np.atleast_1d(value)
        if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.dtype != np.uint64:
            return np.atleast_1d(value.astype(np.int64).astype(np.uint64)) & _U64(_mask(bits))
        return np.atleast_1d(np.asarray(value, dtype=object).astype(object) & _mask(bits)).astype(np.uint64)
    return np.atleast_1d(np.asarray(value, dtype=object) & _mask(bits)).astype(object)


def _rep(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` (already within ``bits``) in the representation of ``bits``."""
    if bits <= 64:
        return x if x.dtype == np.uint64 else x.astype(np.uint64)
    return x if x.dtype == object else x.astype(object)


def _m(bits: int) -> Any:
    return _U64(_mask(bits)) if bits <= 64 else _mask(bits)


def _sym(env: Mapping[str, Any], name: str, bits: int) -> np.ndarray:
    try:
        value = env[name]
    except KeyError:
        raise KeyError(f"no value for symbol {name}") from None
    return _arr(value, bits)


def _const(value: int, bits: int) -> np.ndarray:
    return np.array([value], dtype=np.uint64 if bits <= 64 else object)


def _signed(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement values as object arrays of Python ints (exact for every width)."""
    obj = x.astype(object)
    return np.where(obj >> (bits - 1) & 1 == 1, obj - (1 << bits), obj)


def _from_signed(x: np.ndarray, bits: int) -> np.ndarray:
    return _rep((x.astype(object) & _mask(bits)), bits)


def _add(a, b, bits):
    return (a + b) & _m(bits)


def _sub(a, b, bits):
    return (a - b) & _m(bits)


def _mul(a, b, bits):
    return (a * b) & _m(bits)


def _udiv(a, b, bits):
    zero = b == 0
    q = a // np.where(zero, _rep(np.ones_like(b), bits), b)
    return _rep(np.where(zero, _m(bits), q), bits)


def _urem(a, b, bits):
    zero = b == 0
    r = a % np.where(zero, _rep(np.ones_like(b), bits), b)
    return _rep(np.where(zero, a, r), bits)


def _sdiv(a, b, bits):
    sa, sb = _signed(a, bits), _signed(b, bits)
    zero = sb == 0
    safe = np.where(zero, 1, sb)
    q = (abs(sa) // abs(safe)) * np.where((sa < 0) != (safe < 0), -1, 1)
    q = np.where(zero, np.where(sa >= 0, -1, 1), q)
    return _from_signed(q, bits)


def _srem(a, b, bits):
    sa, sb = _signed(a, bits), _signed(b, bits)
    zero = sb == 0
    safe = np.where(zero, 1, sb)
    r = (abs(sa) % abs(safe)) * np.where(sa < 0, -1, 1)
    return _from_signed(np.where(zero, sa, r), bits)


def _smod(a, b, bits):
    sa, sb = _signed(a, bits), _signed(b, bits)
    zero = sb == 0
    safe = np.where(zero, 1, sb)
    r = sa % safe  # Python's modulo takes the divisor's sign, as bvsmod does
    return _from_signed(np.where(zero, sa, r), bits)


def _shl(a, b, bits):
    big = b >= bits
    amount = _rep(np.where(big, 0, b), bits)
    return _rep(np.where(big, 0, (a << amount) & _m(bits)), bits)


def _lshr(a, b, bits):
    big = b >= bits
    amount = _rep(np.where(big, 0, b), bits)
    return _rep(np.where(big, 0, a >> amount), bits)


def _ashr(a, b, bits):
    sa = _signed(a, bits)
    amount = np.minimum(b.astype(object), bits - 1)
    return _from_signed(sa >> amount, bits)


def _not(a, bits):
    return _rep(~a & _m(bits), bits)


def _neg(a, bits):
    return _rep((_rep(np.zeros_like(a), bits) - a) & _m(bits), bits)


def _extract(x, hi, lo, bits_in):
    width = hi - lo + 1
    shifted = x >> (_U64(lo) if bits_in <= 64 else lo)
    return _rep(shifted & (_m(width) if bits_in <= 64 or width > 64 else _mask(width)), width)


def _concat(parts, widths):
    total = sum(widths)
    if total <= 64:  # shifted and or-ed in place: no temporary array per part
        result = np.zeros(np.broadcast_shapes(*(np.shape(p) for p in parts)), dtype=np.uint64)
        for part, width in zip(parts, widths):
            np.left_shift(result, _U64(width), out=result)
            np.bitwise_or(result, _rep(part, total), out=result)
        return result
    result = np.zeros_like(parts[0], dtype=object)
    for part, width in zip(parts, widths):
        part = _rep(part, total)
        result = (result << (_U64(width) if total <= 64 else width)) | part
    return result


def _sext(x, bits_in, bits_out):
    return _from_signed(_signed(x, bits_in), bits_out)


def _ult(a, b):
    return np.asarray(a < b, dtype=bool)


def _ule(a, b):
    return np.asarray(a <= b, dtype=bool)


def _slt(a, b, bits):
    return np.asarray(_signed(a, bits) < _signed(b, bits), dtype=bool)


def _sle(a, b, bits):
    return np.asarray(_signed(a, bits) <= _signed(b, bits), dtype=bool)


def _eq(a, b):
    return np.asarray(a == b, dtype=bool)


def _and(*args):
    result = args[0]
    for arg in args[1:]:
        result = np.logical_and(result, arg)  # pairwise, so that length-1 constants broadcast
    return result


def _or(*args):
    result = args[0]
    for arg in args[1:]:
        result = np.logical_or(result, arg)
    return result


def _ite(c, a, b, bits):
    return _rep(np.where(c, a, b), bits) if bits else np.asarray(np.where(c, a, b), dtype=bool)


def _fnv(x, nbytes):
    """FNV-1a of the ``nbytes`` bytes of x, most significant byte first (memory order)."""
    h = np.full(x.shape, FNV_OFFSET, dtype=np.uint64)
    for i in range(nbytes):
        shift = 8 * (nbytes - 1 - i)
        if x.dtype == object:
            byte = ((x >> shift) & 0xFF).astype(np.uint64)
        else:
            byte = (x >> _U64(shift)) & _U64(0xFF)
        h = ((h ^ byte) * _U64(FNV_PRIME)) & _U64(0xFFFFFFFF)
    return h


_NAMESPACE = {name: value for name, value in globals().items() if name.startswith("_") and callable(value)}
_NAMESPACE.update({"np": np})

_BINARY_BV = {
    z3.Z3_OP_BADD: "_add", z3.Z3_OP_BSUB: "_sub", z3.Z3_OP_BMUL: "_mul",
    z3.Z3_OP_BUDIV: "_udiv", z3.Z3_OP_BUDIV_I: "_udiv", z3.Z3_OP_BUREM: "_urem", z3.Z3_OP_BUREM_I: "_urem",
    z3.Z3_OP_BSDIV: "_sdiv", z3.Z3_OP_BSDIV_I: "_sdiv", z3.Z3_OP_BSREM: "_srem", z3.Z3_OP_BSREM_I: "_srem",
    z3.Z3_OP_BSMOD: "_smod", z3.Z3_OP_BSMOD_I: "_smod",
    z3.Z3_OP_BSHL: "_shl", z3.Z3_OP_BLSHR: "_lshr", z3.Z3_OP_BASHR: "_ashr",
}
_BITWISE = {z3.Z3_OP_BAND: "&", z3.Z3_OP_BOR: "|", z3.Z3_OP_BXOR: "^"}


class CompiledTerm:
    """A Z3 term as a function of its symbols' values (numpy arrays or ints, broadcast together)."""

    def __init__(self, term: Any):
        self.term = term
        self.bits = 0 if z3.is_bool(term) else term.size()
        self._lines: list[str] = []
        self._names: dict[int, str] = {}
        self._symbols: set[str] = set()
        result = self._emit(term)
        body = "\n".join("    " + line for line in self._lines)
        self.source = f"def _evaluate(env):\n{body}\n    return {result}\n"
        namespace = dict(_NAMESPACE)
        exec(compile(self.source, "<compiled term>", "exec"), namespace)  # our own generated code
        self._fn: Callable[[Mapping[str, Any]], np.ndarray] = namespace["_evaluate"]
        self.symbols = tuple(sorted(self._symbols))

    def __call__(self, env: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self._fn(env)

    # -- code generation ---------------------------------------------------------------------
    def _emit(self, root: Any) -> str:
        """One line per DAG node, children first (iteratively: terms may be thousands deep)."""
        stack: list[tuple[Any, bool]] = [(root, False)]
        while stack:
            t, ready = stack.pop()
            key = t.get_id()
            if key in self._names:
                continue
            if not ready and z3.is_app(t) and t.num_args():
                stack.append((t, True))
                stack.extend((c, False) for c in reversed(t.children()) if c.get_id() not in self._names)
                continue
            name = f"v{len(self._names)}"
            self._lines.append(f"{name} = {self._expr(t)}")
            self._names[key] = name
        return self._names[root.get_id()]

    def _name(self, t: Any) -> str:
        return self._names[t.get_id()]

    def _expr(self, t: Any) -> str:
        if z3.is_true(t):
            return "np.array([True])"
        if z3.is_false(t):
            return "np.array([False])"
        if z3.is_bv_value(t):
            return f"_const({t.as_long()}, {t.size()})"
        if not z3.is_app(t):
            raise ValueError(f"cannot evaluate {t}")
        decl = t.decl()
        kind = decl.kind()
        kids = t.children()
        if kind == z3.Z3_OP_UNINTERPRETED:
            if not kids:
                self._symbols.add(decl.name())
                if not z3.is_bv(t):
                    raise ValueError(f"cannot evaluate the non-bit-vector symbol {decl.name()}")
                return f"_sym(env, {decl.name()!r}, {t.size()})"
            if decl.name().startswith("nf_hash<") and len(kids) == 1:
                return f"_fnv({self._name(kids[0])}, {kids[0].size() // 8})"
            raise ValueError(f"cannot evaluate the function {decl.name()}")
        args = [self._name(k) for k in kids]
        if kind == z3.Z3_OP_AND:
            return f"_and({', '.join(args)})"
        if kind == z3.Z3_OP_OR:
            return f"_or({', '.join(args)})"
        if kind == z3.Z3_OP_NOT:
            return f"np.logical_not({args[0]})"
        if kind == z3.Z3_OP_XOR:
            return f"np.logical_xor({args[0]}, {args[1]})"
        if kind == z3.Z3_OP_IMPLIES:
            return f"np.logical_or(np.logical_not({args[0]}), {args[1]})"
        if kind == z3.Z3_OP_EQ:
            return f"_eq({args[0]}, {args[1]})"
        if kind == z3.Z3_OP_DISTINCT:
            if len(args) != 2:
                raise ValueError("distinct of more than two terms")
            return f"np.logical_not(_eq({args[0]}, {args[1]}))"
        if kind == z3.Z3_OP_ITE:
            bits = 0 if z3.is_bool(t) else t.size()
            return f"_ite({args[0]}, {args[1]}, {args[2]}, {bits})"
        if kind in (z3.Z3_OP_ULT, z3.Z3_OP_UGT, z3.Z3_OP_ULEQ, z3.Z3_OP_UGEQ):
            a, b = (args[0], args[1]) if kind in (z3.Z3_OP_ULT, z3.Z3_OP_ULEQ) else (args[1], args[0])
            return f"{'_ult' if kind in (z3.Z3_OP_ULT, z3.Z3_OP_UGT) else '_ule'}({a}, {b})"
        if kind in (z3.Z3_OP_SLT, z3.Z3_OP_SGT, z3.Z3_OP_SLEQ, z3.Z3_OP_SGEQ):
            a, b = (args[0], args[1]) if kind in (z3.Z3_OP_SLT, z3.Z3_OP_SLEQ) else (args[1], args[0])
            fn = "_slt" if kind in (z3.Z3_OP_SLT, z3.Z3_OP_SGT) else "_sle"
            return f"{fn}({a}, {b}, {kids[0].size()})"
        bits = t.size()
        if kind in _BINARY_BV:
            expr = args[0]
            for arg in args[1:]:
                expr = f"{_BINARY_BV[kind]}({expr}, {arg}, {bits})"
            return expr
        if kind in _BITWISE:
            return "(" + f" {_BITWISE[kind]} ".join(args) + ")"
        if kind == z3.Z3_OP_BNOT:
            return f"_not({args[0]}, {bits})"
        if kind == z3.Z3_OP_BNEG:
            return f"_neg({args[0]}, {bits})"
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = t.params()
            return f"_extract({args[0]}, {hi}, {lo}, {kids[0].size()})"
        if kind == z3.Z3_OP_CONCAT:
            return f"_concat([{', '.join(args)}], [{', '.join(str(k.size()) for k in kids)}])"
        if kind == z3.Z3_OP_ZERO_EXT:
            return f"_rep({args[0]}, {bits})"
        if kind == z3.Z3_OP_SIGN_EXT:
            return f"_sext({args[0]}, {kids[0].size()}, {bits})"
        raise ValueError(f"cannot evaluate {decl.name()} in {t}")


_compiled: dict[int, tuple[Any, CompiledTerm]] = {}


def compile_term(term: Any) -> CompiledTerm:
    """A compiled evaluator for ``term`` (cached per term)."""
    key = term.get_id()
    hit = _compiled.get(key)
    if hit is None:
        hit = (term, CompiledTerm(term))
        _compiled[key] = hit
    return hit[1]


def evaluate(term: Any, env: Mapping[str, Any]) -> np.ndarray:
    """``term``'s value for the symbol values in ``env`` (arrays broadcast together)."""
    return compile_term(term)(env)


# ---- symbol values from packets ------------------------------------------------------------
_HEAD = 94  # Ethernet + the longest IPv4 header (IHL 15) + TCP's 20 fixed bytes


def _be(head: np.ndarray, start: int, size: int) -> np.ndarray:
    value = np.zeros(len(head), dtype=np.uint64)
    for col in range(start, start + size):
        value = (value << _U64(8)) | head[:, col].astype(np.uint64)
    return value


def frames_env(frames: Any, devices: Any = None, timestamps: Any = None) -> dict[str, np.ndarray]:
    """The value of every packet symbol for raw frames, read at the offsets nf.h's structs give,
    whatever the frame holds (as the runtime reads them; bytes past the end read as 0):
    ``p.ether.*``, ``p.ipv4.*`` (bytes 14..33), ``p.l4.*`` (at 14 + 4 * IHL), ``p.tcp.*`` (4 bytes
    later), ``p.len`` and, when given, ``p.device`` and ``now``."""
    n = len(frames)
    head = np.zeros((n, _HEAD), dtype=np.uint8)
    lengths = np.zeros(n, dtype=np.uint64)
    for i, frame in enumerate(frames):
        part = frame[:_HEAD]
        head[i, :len(part)] = np.frombuffer(part, dtype=np.uint8)
        lengths[i] = len(frame)
    l4 = 14 + 4 * (head[:, 14] & 0x0F).astype(np.intp)
    rows = np.arange(n)

    def at(start: int, size: int) -> np.ndarray:
        """The big-endian numbers of ``size`` bytes at byte ``start`` of the L4 headers."""
        value = np.zeros(n, dtype=np.uint64)
        for k in range(size):
            value = (value << _U64(8)) | head[rows, l4 + start + k].astype(np.uint64)
        return value

    env = {
        "p.ether.dst": _be(head, 0, 6), "p.ether.src": _be(head, 6, 6), "p.ether.type": _be(head, 12, 2),
        "p.ipv4.version_ihl": _be(head, 14, 1), "p.ipv4.tos": _be(head, 15, 1),
        "p.ipv4.total_length": _be(head, 16, 2), "p.ipv4.id": _be(head, 18, 2),
        "p.ipv4.frag_off": _be(head, 20, 2), "p.ipv4.ttl": _be(head, 22, 1), "p.ipv4.proto": _be(head, 23, 1),
        "p.ipv4.checksum": _be(head, 24, 2), "p.ipv4.src": _be(head, 26, 4), "p.ipv4.dst": _be(head, 30, 4),
        "p.len": lengths & _U64(0xFFFF),
    }
    env.update({f.name: at(L4_REGIONS[f.region] + f.offset, f.size)
                for f in PACKET_FIELDS if f.region in L4_REGIONS})
    if devices is not None:
        env["p.device"] = np.asarray(devices).astype(np.uint64)
    if timestamps is not None:
        env["now"] = np.asarray(timestamps).astype(np.uint64)
    return env


def fields_env(fields: Any, devices: Any = None, timestamps: Any = None) -> "FieldsEnv":
    """Symbol values from ``explorer.traffic.field_arrays.PacketFields`` (for the simulator), each
    converted when a term first reads it (a chunk of a million packets has a dozen symbols of
    8 MB each, and most terms read two or three). ``fields`` is only read then, so it may be any
    object with PacketFields' attributes (one that gathers rows of a chunk as they are read).

    PacketFields zeroes IPv4 fields of non-IPv4 frames and ports of non-TCP/UDP ones, and keeps no
    raw version/IHL or fragment word; those are rebuilt so that the accessor conditions
    (``p.is_ipv4``, ``p.is_tcpudp``) evaluate exactly as on the frames. Fields PacketFields does not
    carry (tos, id, ttl, total_length, checksum, and TCP's fields after the ports) are absent: terms
    using them raise KeyError."""
    u64 = lambda name: lambda: np.asarray(getattr(fields, name), dtype=np.uint64)  # noqa: E731
    make = {
        "p.ether.dst": u64("eth_dst"), "p.ether.src": u64("eth_src"), "p.ether.type": u64("ether_type"),
        "p.ipv4.version_ihl": lambda: np.where(np.asarray(fields.is_ipv4), 0x40 | np.asarray(fields.ihl, dtype=np.uint64),
                                               0).astype(np.uint64),
        "p.ipv4.frag_off": lambda: np.where(np.asarray(fields.frag), 0x2000, 0).astype(np.uint64),
        "p.ipv4.proto": u64("proto"), "p.ipv4.src": u64("src_ip"), "p.ipv4.dst": u64("dst_ip"),
        "p.l4.sport": u64("src_port"), "p.l4.dport": u64("dst_port"),
        "p.len": lambda: np.asarray(fields.length, dtype=np.uint64) & _U64(0xFFFF),
    }
    if devices is not None:
        make["p.device"] = lambda: np.asarray(devices).astype(np.uint64)
    if timestamps is not None:
        make["now"] = lambda: np.asarray(timestamps).astype(np.uint64)
    return FieldsEnv(make)


class FieldsEnv(Mapping):
    """Symbol values made on first read (``fields_env``); every symbol it can make is a key."""

    def __init__(self, make: dict[str, Callable[[], np.ndarray]]):
        self._make, self._values = make, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = self._make[name]()  # KeyError: a symbol packets do not give
        return self._values[name]

    def __contains__(self, name: object) -> bool:  # without making it (Mapping's would)
        return name in self._make

    def __iter__(self):
        return iter(self._make)

    def __len__(self) -> int:
        return len(self._make)
