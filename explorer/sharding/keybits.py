"""Where each bit of a state key comes from: a constant, one bit of a named symbol, or something opaque.

Sharding needs, for two accesses with keys k1(p1) and k2(p2), the pairs of packet-field bits that
``k1 == k2`` forces equal. Keys are built by copying header fields into structs, byte swaps, masks,
zero extensions and shifts (or divisions and remainders by powers of two), so a structural walk over the Z3 term recovers a per-bit provenance without calling
the solver. Anything the walk does not understand (sums, hashes, products) is opaque: it relates
nothing, which is the conservative answer (fewer equalities means fewer fields may be hashed).

A key that chooses with if-then-else (the lower and the higher of two addresses, so that both
directions of a conversation share an entry) has one provenance per way its choices go
(``key_alternatives``); two keys are equal only if some alternative of one equals some
alternative of the other, so sharding relates the bits of every such pair of alternatives.

A key bit may also be the XOR of two packet-field bits (``src ^ dst``: one entry for both directions
of a host pair). Toeplitz is linear over GF(2), so RSS can follow such a key; only sharding asks
for these bits (``key_alternatives(term, xor=True)``); everyone else sees them opaque, as before.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import z3

from explorer.symbex.bitvec import subterms


@dataclass(frozen=True)
class KeyBit:
    """One bit of a term: ``const`` is 0/1 for a constant bit; else ``symbol``/``index`` name the
    source bit (index 0 = least significant, Z3's convention); both None means opaque."""

    const: Optional[int] = None
    symbol: Optional[str] = None
    index: Optional[int] = None
    # the XOR of two distinct source bits ((symbol, index) pairs, sorted); symbol and const are then
    # None, so that a reader that knows only copies takes the bit for opaque
    parts: tuple[tuple[str, int], ...] = ()


OPAQUE = KeyBit()
ZERO = KeyBit(const=0)
ONE = KeyBit(const=1)


CHOICES = 3  # if-then-else conditions a key may choose on (2 ** 3 alternatives); past that, opaque
Choice = tuple[tuple[int, bool], ...]  # (condition's AST id, the branch taken), sorted
_XOR = (-1, True)  # in a Choice (AST ids are never negative): read XORs of two bits as such, not as opaque


def key_bits(term: z3.ExprRef) -> tuple[KeyBit, ...]:
    """The provenance of every bit of a bit-vector term, least significant first (a bit an
    if-then-else chooses is opaque: see ``key_alternatives``)."""
    return _bits(term, ())


def key_alternatives(term: z3.ExprRef, xor: bool = False) -> tuple[tuple[KeyBit, ...], ...]:
    """``key_bits`` for each way the if-then-else choices of ``term`` can go (each distinct
    condition decided once, up to ``CHOICES`` of them), without repeats; just ``key_bits`` for a
    term that chooses nothing. Ways the conditions cannot go together are included: asking too
    many packets to share a core is the safe side. With ``xor``, a bit that is the XOR of two
    source bits has them as its ``parts`` (opaque otherwise)."""
    base: Choice = (_XOR,) if xor else ()
    conditions = _conditions(term)
    if not conditions or len(conditions) > CHOICES:
        return (_bits(term, base),)
    ids = sorted(c.get_id() for c in conditions)
    out: dict[tuple[KeyBit, ...], None] = {}
    for ways in itertools.product((True, False), repeat=len(ids)):
        out[_bits(term, base + tuple(zip(ids, ways)))] = None
    return tuple(out)


def chooses_too_much(term: z3.ExprRef) -> bool:
    """Whether ``term`` chooses on more than ``CHOICES`` conditions (it then stays opaque)."""
    return len(_conditions(term)) > CHOICES


def _conditions(term: z3.ExprRef) -> list[z3.ExprRef]:
    """The distinct conditions of the if-then-else terms in ``term``."""
    found: dict[int, z3.ExprRef] = {}
    for t in subterms(term):
        if z3.is_app_of(t, z3.Z3_OP_ITE) and z3.is_bv(t):
            found.setdefault(t.arg(0).get_id(), t.arg(0))
    return list(found.values())


# Memo by AST id and choice; the term is kept so its id stays valid (Z3 reuses ids of freed terms).
_MEMO: dict[tuple[int, Choice], tuple[z3.ExprRef, tuple[KeyBit, ...]]] = {}


def _bits(term: z3.ExprRef, choice: Choice) -> tuple[KeyBit, ...]:
    hit = _MEMO.get((term.get_id(), choice))
    if hit is not None and hit[0].eq(term):
        return hit[1]
    if len(_MEMO) > 100_000:
        _MEMO.clear()
    bits = _walk(term, choice)
    _MEMO[(term.get_id(), choice)] = (term, bits)
    return bits


def _walk(term: z3.ExprRef, choice: Choice) -> tuple[KeyBit, ...]:
    width = term.size()
    if z3.is_bv_value(term):
        value = term.as_long()
        return tuple(ONE if (value >> i) & 1 else ZERO for i in range(width))
    kind = term.decl().kind()
    args = term.children()
    if kind == z3.Z3_OP_UNINTERPRETED and not args:
        name = term.decl().name()
        return tuple(KeyBit(symbol=name, index=i) for i in range(width))
    if kind == z3.Z3_OP_CONCAT:
        out: list[KeyBit] = []
        for part in reversed(args):  # the last argument holds the least significant bits
            out.extend(_bits(part, choice))
        return tuple(out)
    if kind == z3.Z3_OP_EXTRACT:
        hi, lo = term.params()
        return _bits(args[0], choice)[lo:hi + 1]
    if kind == z3.Z3_OP_ZERO_EXT:
        return _bits(args[0], choice) + (ZERO,) * (width - args[0].size())
    if kind == z3.Z3_OP_SIGN_EXT:
        inner = _bits(args[0], choice)
        return inner + (inner[-1],) * (width - len(inner))
    if kind in (z3.Z3_OP_BAND, z3.Z3_OP_BOR) and len(args) == 2:
        return _masked(kind, _bits(args[0], choice), _bits(args[1], choice))
    if kind == z3.Z3_OP_BXOR and choice[:1] == (_XOR,):
        out = _bits(args[0], choice)
        for arg in args[1:]:
            out = tuple(_xor(x, y) for x, y in zip(out, _bits(arg, choice)))
        return out
    if kind == z3.Z3_OP_BSHL and z3.is_bv_value(args[1]):
        shift = min(args[1].as_long(), width)
        return ((ZERO,) * shift + _bits(args[0], choice))[:width]
    if kind == z3.Z3_OP_BLSHR and z3.is_bv_value(args[1]):
        shift = min(args[1].as_long(), width)
        return _bits(args[0], choice)[shift:] + (ZERO,) * shift
    if kind == z3.Z3_OP_BASHR and z3.is_bv_value(args[1]):
        # C promotes a 16-bit field to int, so `ntohs(port) >> 8` is an arithmetic shift: the
        # vacated bits copy the sign bit (a constant 0 after a zero extension).
        inner = _bits(args[0], choice)
        shift = min(args[1].as_long(), width)
        return inner[shift:] + (inner[-1],) * shift
    if kind in _DIVISIONS and _power_of_two(args[1]) is not None:
        inner = _bits(args[0], choice)
        if kind in _UNSIGNED or inner[-1] == ZERO:  # a signed division of a value known >= 0 rounds down too
            shift = _power_of_two(args[1])
            return inner[shift:] + (ZERO,) * shift
    if kind in _REMAINDERS and _power_of_two(args[1]) is not None:
        inner = _bits(args[0], choice)
        if kind in _UNSIGNED or inner[-1] == ZERO:  # `port % 16`: the low bits, as a mask would keep them
            keep = _power_of_two(args[1])
            return inner[:keep] + (ZERO,) * (width - keep)
    if kind == z3.Z3_OP_ITE:
        way = dict(choice).get(args[0].get_id())
        if way is not None:
            return _bits(args[1] if way else args[2], choice)
    return (OPAQUE,) * width


_DIVISIONS = frozenset({z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I, z3.Z3_OP_BSDIV, z3.Z3_OP_BSDIV_I})
_REMAINDERS = frozenset({z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I, z3.Z3_OP_BSREM, z3.Z3_OP_BSREM_I, z3.Z3_OP_BSMOD,
                         z3.Z3_OP_BSMOD_I})
_UNSIGNED = frozenset({z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I, z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I})


def _power_of_two(term: z3.ExprRef) -> Optional[int]:
    """k when ``term`` is the constant 2 ** k (k >= 0), else None."""
    if not z3.is_bv_value(term):
        return None
    value = term.as_long()
    if value <= 0 or value & (value - 1) or value >> (term.size() - 1):  # not a power of two, or negative signed
        return None
    return value.bit_length() - 1


def _xor(x: KeyBit, y: KeyBit) -> KeyBit:
    """One bit of a XOR: constants fold, a zero passes the other side, two copied bits make a
    two-part bit; anything more (three parts, a bit flipped by a constant 1) is opaque."""
    if x.const is not None and y.const is not None:
        return ONE if x.const != y.const else ZERO
    if x == ZERO:
        return y
    if y == ZERO:
        return x
    if x.symbol is not None and y.symbol is not None:
        a, b = (x.symbol, x.index), (y.symbol, y.index)
        return ZERO if a == b else KeyBit(parts=tuple(sorted((a, b))))
    return OPAQUE


def _masked(kind: int, a: tuple[KeyBit, ...], b: tuple[KeyBit, ...]) -> tuple[KeyBit, ...]:
    """AND/OR bit by bit when one side of each bit is a constant that decides or passes it."""
    absorbing, neutral = (0, 1) if kind == z3.Z3_OP_BAND else (1, 0)
    out = []
    for x, y in zip(a, b):
        if x.const == absorbing or y.const == absorbing:
            out.append(KeyBit(const=absorbing))
        elif x.const == neutral:
            out.append(y)
        elif y.const == neutral:
            out.append(x)
        else:
            out.append(OPAQUE)
    return tuple(out)

