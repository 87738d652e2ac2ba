"""Packet classes: the packets every term of an analysis sees alike, counted.

Whatever the simulator asks of a packet (its RSS bucket, the state keys its paths compute, which
paths it may take) depends only on a few header values: its device, the four hashed fields and the
protocol, whether it is IPv4 and TCP/UDP, the other header symbols the analysis' terms read, and
for ``p.len`` only the outcome of the conditions that test it. Packets equal in all of these form a
*class*. A trace of 100M packets over a million flows has a few million classes, so the simulator
makes one pass over the packets to count them (one hash-table insertion each, in a numba kernel)
and evaluates everything else once per class: memory and most of the work follow distinct
classes, not packets.

A class key is a row of uint64 slices (``Layout``). ``ClassTable`` counts classes online, keeping
each class's first packet number; ``Classes`` is the result, in first-packet order, and merges
exactly with the ``Classes`` of later packets (counts add, the earliest first packet is kept).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np
import z3

from explorer.simulate.key_arrays import Unknown, evaluate_term
from explorer.symbex.evaluate import fields_env
from explorer.traffic.field_arrays import PacketFields

_FREE = np.uint64(0xFFFFFFFFFFFFFFFF)  # the entry column of an empty slot
_PART_SLOTS = 1 << 15  # slots per partition of a large table: a partition stays in the L2 cache
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
# Symbols always in the class key (device, flags, the 5-tuple) or in its third slice.
_BASE_SYMBOLS = {"p.device", "p.ipv4.src", "p.ipv4.dst", "p.l4.sport", "p.l4.dport", "p.ipv4.proto",
                 "p.ether.type", "p.ipv4.version_ihl", "p.ipv4.frag_off"}
_MAC_SYMBOLS = ("p.ether.src", "p.ether.dst")
_LENGTH = "p.len"
_LENGTH_BITS = 32  # conditions on p.len kept as outcome bits; past that, the length itself


@dataclass(frozen=True)
class Layout:
    """What a class key holds: slices 0-2 always (addresses; ports, protocol, flags and device;
    ether type, IHL, fragment flag and ``length_tests`` outcome bits), then the MACs the terms read
    and, when a key term reads it, the frame length itself."""

    macs: tuple[str, ...]  # of _MAC_SYMBOLS
    length_tests: tuple[z3.BoolRef, ...]  # conditions on p.len, one bit each
    exact_length: bool

    @property
    def width(self) -> int:
        return 3 + len(self.macs) + int(self.exact_length)

    @staticmethod
    def of(key_terms: Sequence[z3.ExprRef], conditions: Sequence[z3.BoolRef]) -> "Layout":
        from explorer.sharding.constraints import symbols_of

        key_symbols = set().union(*(symbols_of(t) for t in key_terms)) if key_terms else set()
        tests, seen = [], set()
        for c in conditions:
            if c.get_id() not in seen and _LENGTH in symbols_of(c):
                seen.add(c.get_id())
                tests.append(c)
        used = key_symbols.union(*(symbols_of(c) for c in conditions)) if conditions else key_symbols
        exact = _LENGTH in key_symbols or len(tests) > _LENGTH_BITS
        return Layout(tuple(m for m in _MAC_SYMBOLS if m in used), () if exact else tuple(tests), exact)

    def pack(self, fields: PacketFields, devices: np.ndarray) -> np.ndarray:
        """The class key of every packet: uint64 of shape (n, width)."""
        n = len(fields)
        out = np.empty((n, self.width), dtype=np.uint64)
        tests = np.zeros(n, dtype=np.uint64)
        if self.length_tests:
            env = fields_env(fields, devices)
            for bit, test in enumerate(self.length_tests):
                try:
                    tests |= np.broadcast_to(evaluate_term(test, env), (n,)).astype(np.uint64) << np.uint64(bit)
                except Unknown:  # reads something packets do not give: assumed to hold, as in guards
                    tests |= np.uint64(1) << np.uint64(bit)
        c = np.ascontiguousarray
        _pack(out, c(fields.src_ip), c(fields.dst_ip), c(fields.src_port), c(fields.dst_port), c(fields.proto),
              c(fields.is_ipv4), c(fields.is_l4), c(devices), c(fields.ether_type), c(fields.ihl), c(fields.frag), tests)
        col = 3
        for mac in self.macs:
            out[:, col] = np.asarray(fields.eth_src if mac == "p.ether.src" else fields.eth_dst, dtype=np.uint64)
            col += 1
        if self.exact_length:
            out[:, col] = np.asarray(fields.length, dtype=np.uint64)
        return out

    def env(self, keys: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """``(symbols, devices, flags)`` of classes: the symbol values every packet of a class has
        (``p.len`` is absent unless exact: its conditions come from ``length_values``), the
        device, and the fields steering needs (``src_ip``, ..., ``is_ipv4``, ``is_l4``)."""
        k0, k1, k2 = keys[:, 0], keys[:, 1], keys[:, 2]
        m16, m8 = np.uint64(0xFFFF), np.uint64(0xFF)
        is_ipv4 = ((k1 >> np.uint64(17)) & np.uint64(1)).astype(bool)
        ihl = (k2 >> np.uint64(40)) & np.uint64(0xF)
        steering = {
            "src_ip": (k0 >> np.uint64(32)).astype(np.uint32), "dst_ip": (k0 & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "src_port": (k1 >> np.uint64(48)).astype(np.uint16), "dst_port": ((k1 >> np.uint64(32)) & m16).astype(np.uint16),
            "is_ipv4": is_ipv4, "is_l4": ((k1 >> np.uint64(16)) & np.uint64(1)).astype(bool),
        }
        devices = (k1 & m16).astype(np.int64)
        env = {
            "p.ipv4.src": k0 >> np.uint64(32), "p.ipv4.dst": k0 & np.uint64(0xFFFFFFFF),
            "p.l4.sport": k1 >> np.uint64(48), "p.l4.dport": (k1 >> np.uint64(32)) & m16,
            "p.ipv4.proto": (k1 >> np.uint64(24)) & m8,
            "p.ether.type": k2 >> np.uint64(48),
            "p.ipv4.version_ihl": np.where(is_ipv4, np.uint64(0x40) | ihl, np.uint64(0)),
            "p.ipv4.frag_off": ((k2 >> np.uint64(39)) & np.uint64(1)) * np.uint64(0x2000),
            "p.device": devices.astype(np.uint64),
        }
        col = 3
        for mac in self.macs:
            env[mac] = keys[:, col].copy()
            col += 1
        if self.exact_length:
            env[_LENGTH] = keys[:, col] & m16
        return env, devices, steering

    def length_values(self, keys: np.ndarray) -> dict[int, np.ndarray]:
        """Per length test (by its Z3 id), its outcome for every class."""
        bits = keys[:, 2] if len(keys) else np.zeros(0, np.uint64)
        return {t.get_id(): ((bits >> np.uint64(k)) & np.uint64(1)).astype(bool)
                for k, t in enumerate(self.length_tests)}


@numba.njit(cache=True)
def _pack(out, src, dst, sport, dport, proto, is_ipv4, is_l4, devices, ether_type, ihl, frag, tests):
    u = np.uint64
    for i in range(len(src)):
        out[i, 0] = (u(src[i]) << u(32)) | u(dst[i])
        out[i, 1] = ((u(sport[i]) << u(48)) | (u(dport[i]) << u(32)) | (u(proto[i]) << u(24))
                     | (u(is_ipv4[i]) << u(17)) | (u(is_l4[i]) << u(16)) | (u(devices[i]) & u(0xFFFF)))
        out[i, 2] = (u(ether_type[i]) << u(48)) | (u(ihl[i]) << u(40)) | (u(frag[i]) << u(39)) | tests[i]


# ---- counting classes ------------------------------------------------------------------------

@numba.njit(cache=True, inline="always")
def _mix(x):
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit value."""
    x = (x ^ (x >> _S30)) * _C1
    x = (x ^ (x >> _S27)) * _C2
    return x ^ (x >> _S31)


@numba.njit(cache=True)
def _scatter(keys, shift, parts):
    """Rows grouped by partition (the top bits of their hash), in row order within a partition,
    copied so that the insertion pass reads them sequentially: ``(keys, hashes, rows, bounds)``
    with partition p's rows at ``bounds[p]:bounds[p + 1]``."""
    n, width = keys.shape
    h = np.empty(n, dtype=np.uint64)
    bounds = np.zeros(parts + 1, dtype=np.int64)
    for r in range(n):
        x = _GOLDEN
        for k in range(width):
            x = _mix(x ^ keys[r, k])
        h[r] = x
        p = np.int64(x >> shift) if parts > 1 else 0
        bounds[p + 1] += 1
    for p in range(parts):
        bounds[p + 1] += bounds[p]
    at = bounds[:parts].copy()
    out_keys = np.empty_like(keys)
    out_h = np.empty(n, dtype=np.uint64)
    out_rows = np.empty(n, dtype=np.int64)
    for r in range(n):
        p = np.int64(h[r] >> shift) if parts > 1 else 0
        j = at[p]
        at[p] += 1
        for k in range(width):
            out_keys[j, k] = keys[r, k]
        out_h[j] = h[r]
        out_rows[j] = r
    return out_keys, out_h, out_rows, bounds


@numba.njit(cache=True)
def _count(slots, sizes, capacity, keys, h, rows, bounds, weights, firsts, entry_keys, entry_first, size):
    """Count the scattered rows into ``slots`` (per slot: the key, its entry number, its count;
    partition p owns slots ``p * capacity`` to ``(p + 1) * capacity``). A new key becomes entry
    ``size`` (its key and first packet go to the entry arrays). Stops before a partition would be
    more than half full: returns ``(size, j)`` with j the first scattered row not counted."""
    width = keys.shape[1]
    mask = np.uint64(capacity - 1)
    half = capacity // 2
    for p in range(len(bounds) - 1):
        region = p * capacity
        for j in range(bounds[p], bounds[p + 1]):
            s = h[j] & mask
            while True:
                slot = region + np.int64(s)
                if slots[slot, width] == _FREE:
                    if sizes[p] >= half:
                        return size, j
                    for k in range(width):
                        slots[slot, k] = keys[j, k]
                        entry_keys[size, k] = keys[j, k]
                    slots[slot, width] = np.uint64(size)
                    slots[slot, width + 1] = np.uint64(weights[rows[j]]) if len(weights) else np.uint64(1)
                    entry_first[size] = firsts[rows[j]]
                    sizes[p] += 1
                    size += 1
                    break
                same = True
                for k in range(width):
                    if slots[slot, k] != keys[j, k]:
                        same = False
                        break
                if same:
                    slots[slot, width + 1] += np.uint64(weights[rows[j]]) if len(weights) else np.uint64(1)
                    break
                s = (s + np.uint64(1)) & mask
    return size, len(rows)


@numba.njit(cache=True)
def _reinsert(slots, sizes, capacity, shift, parts, rows):
    """Put whole slots back after growing (the key is every column but the last two)."""
    width = slots.shape[1] - 2
    mask = np.uint64(capacity - 1)
    for i in range(len(rows)):
        x = _GOLDEN
        for k in range(width):
            x = _mix(x ^ rows[i, k])
        p = np.int64(x >> shift) if parts > 1 else 0
        s = x & mask
        while slots[p * capacity + np.int64(s), width] != _FREE:
            s = (s + np.uint64(1)) & mask
        for k in range(width + 2):
            slots[p * capacity + np.int64(s), k] = rows[i, k]
        sizes[p] += 1


@dataclass(frozen=True, eq=False)
class Classes:
    """Distinct class keys in the order of their first packet, with that packet's number and the
    number of packets of each class."""

    layout: Layout
    keys: np.ndarray  # uint64 (n, width)
    first: np.ndarray  # int64
    count: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.first)

    @property
    def packets(self) -> int:
        return int(self.count.sum())

    @staticmethod
    def merge(parts: Sequence["Classes"]) -> "Classes":
        """The classes of consecutive packet ranges given in trace order, as if counted at once."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        table = ClassTable(parts[0].layout)
        for part in parts:
            table.add_classes(part)
        return table.classes()


class ClassTable:
    """Counts the classes of packets fed in trace order, chunk by chunk."""

    def __init__(self, layout: Layout, capacity: int = 1 << 12):
        self.layout = layout
        self.width = layout.width
        self.size = 0
        self.entry_keys = np.zeros((capacity, self.width), dtype=np.uint64)
        self.entry_first = np.zeros(capacity, dtype=np.int64)
        self._set_layout(2 * capacity)
        self.slots = np.full((self.parts * self.capacity, self.width + 2), _FREE, dtype=np.uint64)
        self.sizes = np.zeros(self.parts, dtype=np.int64)
        self.order: list[np.ndarray] = []  # entry numbers in first-packet order, per call

    def _set_layout(self, total: int) -> None:
        self.parts = max(1, total // _PART_SLOTS)
        self.capacity = total // self.parts
        self.shift = np.uint64(64 - (self.parts.bit_length() - 1))

    def add(self, fields: PacketFields, devices: np.ndarray, base: int) -> None:
        """Count packets ``base``, ``base + 1``, ... (the chunk's first packet number is ``base``)."""
        keys = self.layout.pack(fields, devices)
        self._add(keys, np.arange(base, base + len(keys), dtype=np.int64), np.zeros(0, dtype=np.int64))

    def add_classes(self, classes: Classes) -> None:
        """Count the classes of later packets (their first packets follow every packet so far)."""
        self._add(np.ascontiguousarray(classes.keys), classes.first, classes.count)

    def _add(self, keys: np.ndarray, firsts: np.ndarray, weights: np.ndarray) -> None:
        n = len(keys)
        if n == 0:
            return
        if len(self.entry_first) < self.size + n:
            self._grow_entries(self.size + n)
        before = self.size
        todo = np.arange(n, dtype=np.int64)
        while len(todo):
            scattered, h, rows, bounds = _scatter(keys if len(todo) == n else keys[todo], self.shift, self.parts)
            rows = todo[rows]  # back to positions in ``keys``
            self.size, stop = _count(self.slots, self.sizes, self.capacity, scattered, h, rows, bounds, weights,
                                     firsts, self.entry_keys, self.entry_first, self.size)
            # The rest (each key's rows still in packet order) goes on after growing the table to
            # what the rate of new classes so far says it will need.
            todo = rows[stop:]
            if len(todo):
                done = n - len(todo)
                expected = self.size + (self.size - before + 1) / max(done, 1) * len(todo) * 1.25
                self._grow(int(2 * expected))
        # Entries were numbered partition by partition: list them in first-packet order.
        new = np.arange(before, self.size, dtype=np.int64)
        self.order.append(new[np.argsort(self.entry_first[before:self.size], kind="stable")])

    def _grow(self, at_least: int = 0) -> None:
        rows = self.slots[self.slots[:, self.width] != _FREE]
        self._set_layout(max(2 * len(self.slots), 1 << (int(at_least) - 1).bit_length()))
        self.slots = np.full((self.parts * self.capacity, self.width + 2), _FREE, dtype=np.uint64)
        self.sizes = np.zeros(self.parts, dtype=np.int64)
        _reinsert(self.slots, self.sizes, self.capacity, self.shift, self.parts, rows)

    def _grow_entries(self, at_least: int) -> None:
        capacity = max(at_least, 2 * len(self.entry_first))
        keys = np.zeros((capacity, self.width), dtype=np.uint64)
        keys[:self.size] = self.entry_keys[:self.size]
        first = np.zeros(capacity, dtype=np.int64)
        first[:self.size] = self.entry_first[:self.size]
        self.entry_keys, self.entry_first = keys, first

    def classes(self) -> Classes:
        used = self.slots[self.slots[:, self.width] != _FREE]
        count = np.zeros(self.size, dtype=np.int64)
        count[used[:, self.width].astype(np.int64)] = used[:, self.width + 1].astype(np.int64)
        order = np.concatenate(self.order) if self.order else np.zeros(0, dtype=np.int64)
        return Classes(self.layout, self.entry_keys[order], self.entry_first[order], count[order])
