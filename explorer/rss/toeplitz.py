"""The Toeplitz hash of RSS, three ways: bit by bit (the reference), vectorised with numpy, and as a
Z3 term (the twin the solver and the counterexample search reason with).

For every input bit i (most significant first) that is set, the hash XORs the 32-bit window of the
key that starts at key bit i. So the hash is linear over GF(2), bit j of the hash (j = 0 least
significant) for input bit i is key bit ``i + 31 - j``, and a key must have at least
``input bits + 32`` bits.
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
import z3

from explorer.errors import ConfigError
from explorer.rss.hash_input import FIELD_BITS, canonical_fields

_MASK32 = 0xFFFFFFFF


def _check_key(key: bytes, input_bytes: int) -> None:
    if len(key) * 8 < input_bytes * 8 + 32:
        raise ConfigError(f"an RSS key of {len(key)} bytes is too short to hash {input_bytes} input bytes "
                          f"(needs at least {input_bytes + 4})")


def key_window(key: bytes, i: int) -> int:
    """The 32 key bits starting at key bit ``i`` (bit 0 = the first byte's most significant bit)."""
    k = int.from_bytes(key, "big")
    return (k >> (len(key) * 8 - 32 - i)) & _MASK32


def toeplitz_hash(key: bytes, data: bytes) -> int:
    """The reference: the 32-bit hash of ``data`` under ``key``, one input bit at a time."""
    _check_key(key, len(data))
    result = 0
    for i in range(len(data) * 8):
        if data[i // 8] >> (7 - i % 8) & 1:
            result ^= key_window(key, i)
    return result


class ToeplitzTable:
    """Per input-byte position, the 256 hashes of that byte alone: by linearity the hash of a whole
    input is the XOR of one lookup per byte. Immutable once built."""

    __slots__ = ("key", "input_bytes", "tables")

    def __init__(self, key: bytes, input_bytes: int):
        key = bytes(key)
        _check_key(key, input_bytes)
        bit_of = ((np.arange(256)[:, None] >> (7 - np.arange(8))[None, :]) & 1).astype(bool)  # [value, bit]
        tables = np.zeros((input_bytes, 256), dtype=np.uint32)
        for pos in range(input_bytes):
            windows = np.array([key_window(key, pos * 8 + b) for b in range(8)], dtype=np.uint32)
            # XOR of the windows of the set bits, for all 256 byte values at once.
            tables[pos] = np.bitwise_xor.reduce(np.where(bit_of, windows[None, :], np.uint32(0)), axis=1)
        tables.setflags(write=False)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "input_bytes", input_bytes)
        object.__setattr__(self, "tables", tables)

    def __setattr__(self, name, value):
        raise AttributeError(f"ToeplitzTable is immutable (cannot set {name})")

    def __repr__(self) -> str:
        return f"ToeplitzTable(key={self.key.hex()}, input_bytes={self.input_bytes})"


def hash_rows(table: ToeplitzTable, data: np.ndarray) -> np.ndarray:
    """Hashes of N inputs given as a ``uint8`` array of shape ``(N, input_bytes)``."""
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != table.input_bytes:
        raise ValueError(f"expected a uint8 array of shape (N, {table.input_bytes}), got {data.dtype} {data.shape}")
    columns = np.ascontiguousarray(data.T)  # one contiguous row per byte position: fast gathers
    out = table.tables[0].take(columns[0])
    for pos in range(1, table.input_bytes):
        out ^= table.tables[pos].take(columns[pos])
    return out


def hash_fields(key: Union[bytes, ToeplitzTable], fields: Sequence[str],
                arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Hashes of N packets given per field as host-order numbers (``src_ip`` as uint32, ports as
    uint16), hashing ``fields`` in hash-input order. No per-packet Python loop: one table lookup per
    input byte, each over the whole array."""
    names = canonical_fields(fields)
    input_bytes = sum(FIELD_BITS[name] for name in names) // 8
    table = key if isinstance(key, ToeplitzTable) else ToeplitzTable(key, input_bytes)
    if table.input_bytes != input_bytes:
        raise ValueError(f"table hashes {table.input_bytes} bytes, fields {names} need {input_bytes}")
    length = None
    out = None
    pos = 0
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ValueError(f"no array for hashed field(s) {', '.join(missing)}")
    for name in names:
        values = np.asarray(arrays[name])
        if length is None:
            length = values.shape[0]
        elif values.shape[0] != length:
            raise ValueError(f"field arrays differ in length ({name}: {values.shape[0]}, expected {length})")
        values = values.astype(np.uint32, copy=False)
        width = FIELD_BITS[name] // 8
        for b in range(width):
            byte = (values >> np.uint32(8 * (width - 1 - b))) & np.uint32(0xFF)
            part = table.tables[pos].take(byte)
            out = part if out is None else out ^ part
            pos += 1
    if out is None:  # no field hashed: every hash is 0
        count = 0 if not arrays else len(next(iter(arrays.values())))
        return np.zeros(count, dtype=np.uint32)
    return out


BitsLike = Union[z3.BitVecRef, bytes, int, Sequence[Union[z3.ExprRef, int, bool]]]


def _as_bits(value: BitsLike, width: int | None = None) -> list[z3.BitVecRef]:
    """Bits as 1-bit Z3 terms, most significant (bit 0) first."""
    if isinstance(value, (bytes, bytearray)):
        return [z3.BitVecVal(value[i // 8] >> (7 - i % 8) & 1, 1) for i in range(len(value) * 8)]
    if isinstance(value, z3.BitVecRef):
        n = value.size()
        return [z3.Extract(n - 1 - i, n - 1 - i, value) for i in range(n)]
    if isinstance(value, int):
        if width is None:
            raise ValueError("an int needs an explicit width")
        return [z3.BitVecVal(value >> (width - 1 - i) & 1, 1) for i in range(width)]
    out = []
    for bit in value:
        if isinstance(bit, z3.BoolRef):
            out.append(z3.If(bit, z3.BitVecVal(1, 1), z3.BitVecVal(0, 1)))
        elif isinstance(bit, z3.BitVecRef):
            if bit.size() != 1:
                raise ValueError("bit terms must be BitVec(1) or Bool")
            out.append(bit)
        else:
            out.append(z3.BitVecVal(int(bool(bit)), 1))
    return out


def z3_toeplitz(key_bits: BitsLike, input_bits: BitsLike) -> z3.BitVecRef:
    """The 32-bit Toeplitz hash as a Z3 term. Key and input are each a Z3 bit-vector (its most
    significant bit is bit 0), bytes, or a sequence of Bool / BitVec(1) / 0-1 values; either or both
    may be symbolic."""
    key = _as_bits(key_bits)
    data = _as_bits(input_bits)
    if len(key) < len(data) + 32:
        raise ConfigError(f"a key of {len(key)} bits is too short to hash {len(data)} input bits")
    result = z3.BitVecVal(0, 32)
    for i, d in enumerate(data):
        window = z3.Concat(*key[i:i + 32])
        # d replicated 32 times selects the window or nothing.
        result = result ^ (window & z3.SignExt(31, d))
    return z3.simplify(result)
