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
from typing import Optional, Sequence

import numba
import numpy as np
import z3

from explorer.simulate import arena
from explorer.simulate.key_arrays import Unknown, evaluate_term
from explorer.simulate.mixing import GOLDEN, mix
from explorer.simulate.prefetch import AHEAD, prefetch, prefetch_write
from explorer.simulate.threads import default_threads, run_tasks
from explorer.symbex.evaluate import compile_term, fields_env
from explorer.traffic.field_arrays import PacketFields

_FREE = np.uint64(0xFFFFFFFFFFFFFFFF)  # the last column (entry and count) of an empty slot
_LOW = np.uint64(0xFFFFFFFF)  # the count half of a slot's last column; the entry number is the high half
# Symbols always in the class key (device, flags, the 5-tuple) or in its third slice.
_BASE_SYMBOLS = {"p.device", "p.ipv4.src", "p.ipv4.dst", "p.l4.sport", "p.l4.dport", "p.ipv4.proto",
                 "p.ether.type", "p.ipv4.version_ihl", "p.ipv4.frag_off"}
_MAC_SYMBOLS = ("p.ether.src", "p.ether.dst")
_LENGTH = "p.len"
_PACKET_SYMBOLS = _BASE_SYMBOLS | set(_MAC_SYMBOLS) | {_LENGTH}  # what a class key can hold
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
        for c in conditions:  # a test that also reads state (pol's bucket) is assumed to hold: no bit
            if c.get_id() not in seen and _LENGTH in symbols_of(c) and symbols_of(c) <= _PACKET_SYMBOLS:
                seen.add(c.get_id())
                tests.append(c)
        used = key_symbols.union(*(symbols_of(c) for c in conditions)) if conditions else key_symbols
        exact = _LENGTH in key_symbols or len(tests) > _LENGTH_BITS
        return Layout(tuple(m for m in _MAC_SYMBOLS if m in used), () if exact else tuple(tests), exact)

    @property
    def narrow_tests(self) -> bool:
        """Whether there are length tests and they read only the narrow fields (``_NARROW_SYMBOLS``):
        their outcome then follows from a packet's combination of those, of which a trace has few."""
        return bool(self.length_tests) and narrow_only(self.length_tests)

    def inputs(self, fields: PacketFields, devices: np.ndarray, tests: bool = True) -> tuple[np.ndarray, ...]:
        """What the class-key kernels read per packet: the header arrays (contiguous), then the
        outcome bits of ``length_tests`` (empty when there are none, or when not ``tests``: the
        caller looks them up per combination of narrow fields, ``NarrowBits``) and the key's
        columns past the third (MACs, the exact length: shape (n, width - 3))."""
        n = len(fields)
        tests = (test_bits(self.length_tests, fields, devices) if self.length_tests and tests
                 else np.zeros(0, np.uint64))
        extra = np.empty((n, self.width - 3), dtype=np.uint64)
        for col, mac in enumerate(self.macs):
            extra[:, col] = fields.eth_src if mac == "p.ether.src" else fields.eth_dst
        if self.exact_length:
            extra[:, -1] = fields.length
        c = np.ascontiguousarray
        return (c(fields.src_ip), c(fields.dst_ip), c(fields.src_port), c(fields.dst_port), c(fields.proto),
                c(fields.is_ipv4), c(fields.is_l4), c(devices, dtype=np.int64), c(fields.ether_type), c(fields.ihl),
                c(fields.frag), c(fields.length), tests, extra)

    def pack(self, fields: PacketFields, devices: np.ndarray) -> np.ndarray:
        """The class key of every packet: uint64 of shape (n, width) (what ``ClassTable.add``
        computes on the fly; kept as the plain reference)."""
        out = np.empty((len(fields), self.width), dtype=np.uint64)
        _key_rows(*self.inputs(fields, devices), *NarrowBits.NONE, 0, out, np.empty(len(fields), dtype=np.uint64))
        return out

    def steering(self, keys: np.ndarray) -> dict[str, np.ndarray]:
        """What the NIC hashes of each class: ``src_ip``, ``dst_ip``, ``src_port``, ``dst_port``,
        ``is_ipv4``, ``is_l4`` (one pass over the keys: numpy took one per field and a cast)."""
        n = len(keys)
        out = {"src_ip": np.empty(n, np.uint32), "dst_ip": np.empty(n, np.uint32), "src_port": np.empty(n, np.uint16),
               "dst_port": np.empty(n, np.uint16), "is_ipv4": np.empty(n, np.bool_), "is_l4": np.empty(n, np.bool_)}
        _steering(keys, *out.values())
        return out

    def env(self, keys: np.ndarray) -> tuple["ClassEnv", np.ndarray]:
        """``(symbols, devices)`` of classes: the symbol values every packet of a class has
        (``p.len`` is absent unless exact: its conditions come from ``length_values``), each made
        when a term first reads it, and the device."""
        k0, k1, k2 = keys[:, 0], keys[:, 1], keys[:, 2]
        m16, m8 = np.uint64(0xFFFF), np.uint64(0xFF)
        is_ipv4 = lambda: ((k1 >> np.uint64(17)) & np.uint64(1)).astype(bool)  # noqa: E731
        devices = (k1 & m16).astype(np.int64)
        make = {
            "p.ipv4.src": lambda: k0 >> np.uint64(32), "p.ipv4.dst": lambda: k0 & np.uint64(0xFFFFFFFF),
            "p.l4.sport": lambda: k1 >> np.uint64(48), "p.l4.dport": lambda: (k1 >> np.uint64(32)) & m16,
            "p.ipv4.proto": lambda: (k1 >> np.uint64(24)) & m8,
            "p.ether.type": lambda: k2 >> np.uint64(48),
            "p.ipv4.version_ihl": lambda: np.where(
                is_ipv4(), np.uint64(0x40) | ((k2 >> np.uint64(40)) & np.uint64(0xF)), np.uint64(0)),
            "p.ipv4.frag_off": lambda: ((k2 >> np.uint64(39)) & np.uint64(1)) * np.uint64(0x2000),
            "p.device": lambda: devices.astype(np.uint64),
        }
        for col, mac in enumerate(self.macs, start=3):
            make[mac] = lambda col=col: keys[:, col].copy()
        if self.exact_length:
            make[_LENGTH] = lambda: keys[:, self.width - 1] & m16
        return ClassEnv(make), devices

    def signatures(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The classes' narrow signatures (protocol, flags, device, ether type, IHL, fragment flag,
        length-test bits: what ``NARROW_CLASS_SYMBOLS`` and the length tests read), numbered:
        ``(ids, rows)``, ``rows`` a key row per distinct signature (the rest zero), so that a
        condition on those symbols is evaluated once per signature (a few dozen) and not per class."""
        values = np.empty((len(keys), 2), dtype=np.uint64)
        np.bitwise_and(keys[:, 1], _SIGNATURE, out=values[:, 0])
        values[:, 1] = keys[:, 2]
        ids, distinct = distinct_rows(values)
        rows = np.zeros((len(distinct), self.width), dtype=np.uint64)
        rows[:, 1:3] = distinct
        return ids, rows

    def length_values(self, keys: np.ndarray) -> dict[int, np.ndarray]:
        """Per length test (by its Z3 id), its outcome for every class."""
        bits = keys[:, 2] if len(keys) else np.zeros(0, np.uint64)
        return {t.get_id(): ((bits >> np.uint64(k)) & np.uint64(1)).astype(bool)
                for k, t in enumerate(self.length_tests)}


# What a class's narrow signature decides (``Layout.signatures``): slice 1's low 32 bits
# (protocol, IPv4 and L4 flags, device) and slice 2 (ether type, IHL, fragment flag, test bits).
NARROW_CLASS_SYMBOLS = frozenset({"p.device", "p.ipv4.proto", "p.ether.type", "p.ipv4.version_ihl",
                                  "p.ipv4.frag_off"})
_SIGNATURE = np.uint64(0xFFFFFFFF)


def distinct_rows(values: np.ndarray, limit: int = 1 << 62) -> tuple[np.ndarray, np.ndarray] | None:
    """Number the distinct rows of ``values`` (uint64, shape (n, w)) in order of first appearance:
    ``(ids, distinct)`` with ``distinct[ids[i]] == values[i]``, or None past ``limit`` distinct rows.
    Meant for few distinct rows (narrow fields, class signatures): a small table, grown as needed."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    ids = np.empty(len(values), dtype=np.int64)
    size = 1 << 10
    while True:
        distinct = np.empty((min(size // 2, limit), values.shape[1]), dtype=np.uint64)
        found = _number_rows(values, np.full(size, -1, dtype=np.int64), distinct, ids)
        if found >= 0:
            return ids, distinct[:found]
        if len(distinct) >= limit:
            return None
        size *= 8


@numba.njit(cache=True, nogil=True)
def _number_rows(values, slots, distinct, ids):
    """``distinct_rows`` with an open-addressing table of ``slots``; the count of distinct rows,
    or -1 when ``distinct`` is too small."""
    mask = np.uint64(len(slots) - 1)
    width = values.shape[1]
    size = 0
    for i in range(len(values)):
        h = GOLDEN
        for k in range(width):
            h = mix(h ^ values[i, k])
        s = h & mask
        while True:
            e = slots[np.int64(s)]
            if e < 0:
                if size == len(distinct):
                    return -1
                slots[np.int64(s)] = size
                for k in range(width):
                    distinct[size, k] = values[i, k]
                ids[i] = size
                size += 1
                break
            same = True
            for k in range(width):
                if distinct[e, k] != values[i, k]:
                    same = False
                    break
            if same:
                ids[i] = e
                break
            s = (s + np.uint64(1)) & mask
    return size


@numba.njit(cache=True, inline="always")
def steering_fields(k0, k1):
    """What the NIC hashes of a class, out of slices 0 and 1 of its key: source and destination
    address, source and destination port, the IPv4 and L4 flags, and the device."""
    u = np.uint64
    return (k0 >> u(32), k0 & u(0xFFFFFFFF), k1 >> u(48), (k1 >> u(32)) & u(0xFFFF), (k1 >> u(17)) & u(1),
            (k1 >> u(16)) & u(1), np.int64(k1 & u(0xFFFF)))


@numba.njit(cache=True)
def _steering(keys, src_ip, dst_ip, src_port, dst_port, is_ipv4, is_l4):
    """``Layout.steering``'s fields out of slices 0 and 1 of the keys."""
    for r in range(len(keys)):
        src_ip[r], dst_ip[r], src_port[r], dst_port[r], is_ipv4[r], is_l4[r], _ = steering_fields(keys[r, 0],
                                                                                                  keys[r, 1])


class ClassEnv(dict):
    """Symbol values of classes, each computed from the class keys when a term first reads it
    (a symbol no term reads costs nothing: each is 8 bytes per class)."""

    def __init__(self, make: dict):
        super().__init__()
        self._make = make

    def __missing__(self, name: str) -> np.ndarray:
        if name not in self._make:
            raise KeyError(name)
        value = self[name] = self._make[name]()
        return value


def test_bits(tests: Sequence[z3.BoolRef], fields: PacketFields, devices: np.ndarray,
              env: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Per packet, the outcome bits of at most 64 ``tests`` (bit k: test k holds; a test that reads
    what packets do not give is assumed to hold, as in guards).

    Length tests read the length and a few narrow header fields (IHL, protocol): a chunk has few
    distinct combinations of them. When the tests read nothing else, a kernel numbers each packet's
    combination, the Z3-compiled tests run once per distinct one, and packets take their bits from
    it; otherwise the tests run over every packet (over ``env``, ``fields_env`` of the packets,
    when the caller has it)."""
    n = len(fields)
    if narrow_only(tests):
        packed = np.empty((n, 1), dtype=np.uint64)
        _narrow_values(*narrow_inputs(fields, devices), packed)
        numbered = distinct_rows(packed, limit=1 << 23)
        if numbered is not None:
            ids, distinct = numbered
            return _test_bits(tests, _narrow_env(distinct[:, 0]), len(distinct))[ids]
    return _test_bits(tests, fields_env(fields, devices) if env is None else env, n)


def narrow_only(tests: Sequence[z3.BoolRef]) -> bool:
    """Whether ``tests`` read only the narrow fields (``_NARROW_SYMBOLS``): their outcome then
    follows from a packet's combination of those, of which a trace has few."""
    return set().union(*(compile_term(t).symbols for t in tests)) <= _NARROW_SYMBOLS


def _test_bits(tests: Sequence[z3.BoolRef], env: dict[str, np.ndarray], n: int) -> np.ndarray:
    bits = np.zeros(n, dtype=np.uint64)
    for bit, test in enumerate(tests):
        try:
            bits |= np.broadcast_to(evaluate_term(test, env), (n,)).astype(np.uint64) << np.uint64(bit)
        except Unknown:  # reads something packets do not give: assumed to hold, as in guards
            bits |= np.uint64(1) << np.uint64(bit)
    return bits


# The narrow symbols and where ``_narrow_value`` packs them: length 0-15, IHL 16-19, protocol 20-27,
# ether type 28-43, fragment flag 44, IPv4 flag 45, device 46-61.
_NARROW_SYMBOLS = {_LENGTH, "p.ipv4.version_ihl", "p.ipv4.proto", "p.ether.type", "p.ipv4.frag_off", "p.device"}


@numba.njit(cache=True, inline="always")
def _narrow_value(length, ether_type, is_ipv4, ihl, proto, frag, device):
    """A packet's narrow fields packed into one word (the layout above)."""
    u = np.uint64
    return ((u(length) & u(0xFFFF)) | ((u(ihl) & u(15)) << u(16)) | (u(proto) << u(20))
            | (u(ether_type) << u(28)) | (u(frag) << u(44)) | (u(is_ipv4) << u(45))
            | ((u(device) & u(0xFFFF)) << u(46)))


@numba.njit(cache=True, nogil=True)
def _narrow_values(length, ether_type, is_ipv4, ihl, proto, frag, devices, out):
    """Each packet's narrow fields packed into ``out[i, 0]``."""
    for i in range(len(length)):
        out[i, 0] = _narrow_value(length[i], ether_type[i], is_ipv4[i], ihl[i], proto[i], frag[i], devices[i])


def _narrow_env(values: np.ndarray) -> dict[str, np.ndarray]:
    """The symbols of packed narrow fields, as ``fields_env`` gives them."""
    u = np.uint64
    is_ipv4 = ((values >> u(45)) & u(1)).astype(bool)
    return {_LENGTH: values & u(0xFFFF),
            "p.ipv4.version_ihl": np.where(is_ipv4, u(0x40) | ((values >> u(16)) & u(15)), u(0)).astype(u),
            "p.ipv4.proto": (values >> u(20)) & u(0xFF), "p.ether.type": (values >> u(28)) & u(0xFFFF),
            "p.ipv4.frag_off": np.where((values >> u(44)) & u(1), u(0x2000), u(0)).astype(u),
            "p.device": (values >> u(46)) & u(0xFFFF)}


class NarrowBits:
    """The outcome bits of a layout's length tests per combination of the narrow fields they read,
    kept from chunk to chunk: the class-key kernel looks each packet's combination up (a table of a
    few dozen, in the L1 cache) instead of a serial pass numbering them, and only combinations not
    seen before are tested (``learn``, a block at a time). Past ``LIMIT`` combinations (a trace of
    every frame length on many devices) the caller tests packets one by one instead."""

    LIMIT = 1 << 20
    NONE = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64))

    def __init__(self, tests: Sequence[z3.BoolRef]):
        self.tests = tuple(tests)
        self.values = np.zeros(0, dtype=np.uint64)  # packed combinations (``_narrow_value``)
        self.bits = np.zeros(0, dtype=np.uint64)
        self.slots = np.full(1 << 4, -1, dtype=np.int64)

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the class-key kernel reads: slots, values, bits."""
        return self.slots, self.values, self.bits

    def learn(self, narrow: tuple[np.ndarray, ...], begin: int, end: int) -> bool:
        """Test the combinations of packets ``begin:end`` (``narrow_inputs``) not seen yet; False
        when that would pass ``LIMIT`` (nothing changes then)."""
        packed = np.empty((end - begin, 1), dtype=np.uint64)
        _narrow_values(*(a[begin:end] for a in narrow), packed)
        new = np.setdiff1d(distinct_rows(packed)[1][:, 0], self.values)  # sorted: learned in a fixed order
        if self.size + len(new) > self.LIMIT:
            return False
        self.values = np.concatenate([self.values, new])
        self.bits = np.concatenate([self.bits, _test_bits(self.tests, _narrow_env(new), len(new))])
        self.slots = np.full(1 << (4 * self.size - 1).bit_length(), -1, dtype=np.int64)  # at most a quarter full
        _narrow_index(self.slots, self.values, self.size)
        return True


    def passing(self, narrow: tuple[np.ndarray, ...], devices: Sequence[int]) -> Optional[np.ndarray]:
        """The packets (``narrow_inputs``) received on one of ``devices`` for which every test
        holds; None past ``LIMIT`` combinations. One pass looks each packet's combination up,
        after the chunk's new ones are learned."""
        wanted = np.zeros(1 << 16, dtype=np.bool_)  # by device number, as combinations hold it (16 bits)
        wanted[[d & 0xFFFF for d in devices]] = True
        out = np.empty(len(narrow[0]), dtype=np.int64)
        every = np.uint64((1 << len(self.tests)) - 1)
        while True:
            found = _passing(*narrow, *self.arrays, every, wanted, out)
            if found >= 0:
                return out[:found]
            if not self.learn(narrow, 0, len(narrow[0])):
                return None


def narrow_inputs(fields: PacketFields, devices: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays ``NarrowBits`` reads per packet (contiguous, in ``_narrow_values``' order)."""
    c = np.ascontiguousarray
    return (c(fields.length), c(fields.ether_type), c(fields.is_ipv4), c(fields.ihl), c(fields.proto), c(fields.frag),
            c(devices, dtype=np.int64))


def _narrow_of(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """``narrow_inputs`` out of ``Layout.inputs``."""
    return inputs[11], inputs[8], inputs[5], inputs[9], inputs[4], inputs[10], inputs[7]


@numba.njit(cache=True)
def _passing(length, ether_type, is_ipv4, ihl, proto, frag, devices, nslots, nvalues, nbits, every, wanted, out):
    """``NarrowBits.passing``: the count of packets put in ``out``, or -1 when the table lacks a
    packet's combination."""
    nmask = np.uint64(len(nslots) - 1)
    found = 0
    for i in range(len(length)):
        v = _narrow_value(length[i], ether_type[i], is_ipv4[i], ihl[i], proto[i], frag[i], devices[i])
        s = mix(v) & nmask
        while True:
            e = nslots[np.int64(s)]
            if e < 0:
                return -1
            if nvalues[e] == v:
                break
            s = (s + np.uint64(1)) & nmask
        out[found] = i  # kept only when it passes: no branch to mispredict on a mix of devices
        found += np.int64((nbits[e] == every) & wanted[devices[i] & 0xFFFF])
    return found


@numba.njit(cache=True)
def _narrow_index(slots, values, size):
    """Put entries ``0 .. size - 1`` of ``values`` into the empty ``slots``."""
    mask = np.uint64(len(slots) - 1)
    for e in range(size):
        s = mix(values[e]) & mask
        while slots[np.int64(s)] >= 0:
            s = (s + np.uint64(1)) & mask
        slots[np.int64(s)] = e


# ---- counting classes ------------------------------------------------------------------------
# A slot is the class key, then one word: the entry number (high half) and the count (low half).
# A probe into a table of millions of classes misses the cache (~250 ns on this VM). Packets are
# counted a block at a time in two steps: their class keys and hashes (``_key_rows``, the block
# shared out between threads), then their insertion (``_count_rows``), which prefetches the slot
# of the row a few rows on while it counts one, so the misses overlap (``prefetch``: 30 ns per
# packet, against 50 with a batch's slots loaded first and 110 with each loaded as it is hashed).
# The table is split by the hashes' high bits into partitions, one per thread, each with its own
# slots and its entries numbered in its own first-packet order; a partition's thread counts the
# block's rows that fall in it and skips the others. ``classes()`` merges the partitions' listings
# by first packet, so the classes are the same whatever the number of threads (``threads``).

_BLOCK = 1 << 18  # packets whose keys are built before they are counted (8 MB of keys and hashes)
_SERIAL_ROWS = 1 << 14  # fewer rows than this are counted in the calling thread (a hand-off costs more)


@numba.njit(cache=True, inline="always")
def _hash3(k0, k1, k2):
    return mix(mix(mix(GOLDEN ^ k0) ^ k1) ^ k2)


@numba.njit(cache=True, inline="always")
def _partition(h, parts):
    """The partition of a row whose hash is ``h``: its high 32 bits scaled to ``0 .. parts - 1``
    (the low bits choose the slot)."""
    return np.int64(((h >> np.uint64(32)) * np.uint64(parts)) >> np.uint64(32))


@numba.njit(cache=True, inline="always")
def _add_count(word, weight, flushed):
    """``word`` (entry << 32 | count) with ``weight`` more; a count that would pass 32 bits goes to
    ``flushed[entry]`` instead. Returns ``(word, ok)``: not ok when that is needed and ``flushed``
    is still empty (the caller allocates it and counts the row again)."""
    c = (word & _LOW) + weight
    if c > _LOW:
        if len(flushed) == 0:
            return word, False
        flushed[np.int64(word >> np.uint64(32))] += np.int64(c)
        c = np.uint64(0)
    return (word & ~_LOW) | c, True


@numba.njit(cache=True, nogil=True)
def _key_rows(src, dst, sport, dport, proto, is_ipv4, is_l4, devices, ether_type, ihl, frag, length, tests, extra,
              nslots, nvalues, nbits, begin, keys, hashes):
    """The class key of packet ``begin + r`` in ``keys[r]`` and its hash in ``hashes[r]``. The
    length-test bits come from ``tests`` per packet or, when ``nslots`` is not empty, from the
    ``NarrowBits`` table of the packet's narrow combination. Returns how many packets' combinations
    were not in that table (their keys lack the bits: learn them and build the rows again). (The
    three base slices in a loop of their own, the test bits' presence decided once: written as one
    loop with the key built by a helper returning a tuple, it took twice as long.)"""
    u = np.uint64
    tested = len(tests) > 0
    narrow = len(nslots) > 0
    nmask = u(len(nslots) - 1)
    missing = 0
    for r in range(len(keys)):
        i = begin + r
        k0 = (u(src[i]) << u(32)) | u(dst[i])
        k1 = ((u(sport[i]) << u(48)) | (u(dport[i]) << u(32)) | (u(proto[i]) << u(24))
              | (u(is_ipv4[i]) << u(17)) | (u(is_l4[i]) << u(16)) | (u(devices[i]) & u(0xFFFF)))
        k2 = (u(ether_type[i]) << u(48)) | (u(ihl[i]) << u(40)) | (u(frag[i]) << u(39))
        if tested:
            k2 |= tests[i]
        elif narrow:
            v = _narrow_value(length[i], ether_type[i], is_ipv4[i], ihl[i], proto[i], frag[i], devices[i])
            s = mix(v) & nmask
            while True:
                e = nslots[np.int64(s)]
                if e < 0:
                    missing += 1
                    break
                if nvalues[e] == v:
                    k2 |= nbits[e]
                    break
                s = (s + u(1)) & nmask
        keys[r, 0], keys[r, 1], keys[r, 2] = k0, k1, k2
        hashes[r] = _hash3(k0, k1, k2)
    for k in range(extra.shape[1]):
        for r in range(len(keys)):
            keys[r, 3 + k] = extra[begin + r, k]
            hashes[r] = mix(hashes[r] ^ extra[begin + r, k])
    return missing


@numba.njit(cache=True, nogil=True)
def _key_hashes(keys, hashes):
    """The hash of whole class keys (``_key_rows``'s)."""
    for r in range(len(keys)):
        x = GOLDEN
        for k in range(keys.shape[1]):
            x = mix(x ^ keys[r, k])
        hashes[r] = x


@numba.njit(cache=True, nogil=True)
def _count_rows(keys, hashes, weights, firsts, base, part, parts, start, slots, size, entry_first, flushed, rows):
    """Count rows ``start``, ``start + 1``, ... of ``keys`` whose hash falls in partition ``part``
    of ``parts``: row r weighs ``weights[r]`` and has first packet ``firsts[r]`` (both empty: 1 and
    ``base + r``); rows come in first-packet order. A new class becomes the partition's entry
    ``size``. Returns ``(size, r, status)``: r the first row not counted (all when status is 0),
    status 1 when the slots are half full (grow them first), 2 when ``flushed`` is needed. The
    slot of the row ``AHEAD`` rows on is prefetched while a row is counted. (The insertion is
    written out here: called, even inlined, the same steps made this loop 2x slower.)"""
    n, width = keys.shape
    mask = np.uint64(len(slots) - 1)
    half = len(slots) // 2
    packets = len(weights) == 0
    m = n - start  # the partition's rows, listed in ``rows`` (scratch of n rows) unless all are
    if parts > 1:
        m = 0
        for r in range(start, n):  # without a branch: half of them would be mispredicted
            rows[m] = r
            m += _partition(hashes[r], parts) == part
    for j in range(min(AHEAD, m)):
        prefetch(slots, hashes[rows[j] if parts > 1 else start + j] & mask)
    for j in range(m):
        q = rows[j] if parts > 1 else start + j
        if j + AHEAD < m:
            ahead = hashes[rows[j + AHEAD] if parts > 1 else q + AHEAD]
            prefetch(slots, ahead & mask)
            prefetch(slots, (ahead + np.uint64(1)) & mask)  # a probe often goes on into the next line
        weight = np.uint64(1) if packets else np.uint64(weights[q])
        s = hashes[q] & mask
        while True:
            slot = np.int64(s)
            if slots[slot, width] == _FREE:
                if size >= half:
                    return size, q, 1
                word, ok = _add_count(np.uint64(size) << np.uint64(32), weight, flushed)
                if not ok:
                    return size, q, 2
                for k in range(width):
                    slots[slot, k] = keys[q, k]
                slots[slot, width] = word
                entry_first[size] = base + q if packets else firsts[q]
                size += 1
                break
            same = True
            for k in range(width):
                if slots[slot, k] != keys[q, k]:
                    same = False
                    break
            if same:
                word, ok = _add_count(slots[slot, width], weight, flushed)
                if not ok:
                    return size, q, 2
                slots[slot, width] = word
                break
            s = (s + np.uint64(1)) & mask
    return size, n, 0


@numba.njit(cache=True, nogil=True)
def _listing(slots, keys, count, position):
    """Every used slot's key and count, at row ``position[entry]`` (``position`` empty: at row
    ``entry``); ``count`` already holds what was flushed out of the slots. Entries are in packet
    order, slots in hash order, so the rows written are scattered: the row of the slot ``AHEAD``
    on is prefetched for writing (and its position ``2 * AHEAD`` on, for reading)."""
    width = slots.shape[1] - 1
    placed = len(position) > 0
    for s in range(len(slots)):
        ahead = s + AHEAD
        if placed and ahead + AHEAD < len(slots) and slots[ahead + AHEAD, width] != _FREE:
            prefetch(position, np.int64(slots[ahead + AHEAD, width] >> np.uint64(32)))
        if ahead < len(slots) and slots[ahead, width] != _FREE:
            e = np.int64(slots[ahead, width] >> np.uint64(32))
            row = position[e] if placed else e
            prefetch_write(keys, row)
            prefetch_write(count, row)
        word = slots[s, width]
        if word != _FREE:
            e = np.int64(word >> np.uint64(32))
            row = position[e] if placed else e
            for k in range(width):
                keys[row, k] = slots[s, k]
            count[row] += np.int64(word & _LOW)


@numba.njit(cache=True, nogil=True)
def _reinsert(slots, old):
    """Put the used slots of ``old`` into the (larger) empty ``slots``: their hashes a block at a
    time, then each put with the slot of the one ``AHEAD`` on prefetched."""
    width = slots.shape[1] - 1
    mask = np.uint64(len(slots) - 1)
    used = np.empty(1024, dtype=np.int64)
    hashes = np.empty(1024, dtype=np.uint64)
    for b0 in range(0, len(old), 1024):
        m = 0
        for i in range(b0, min(b0 + 1024, len(old))):
            if old[i, width] != _FREE:
                x = GOLDEN
                for k in range(width):
                    x = mix(x ^ old[i, k])
                used[m], hashes[m] = i, x
                m += 1
        for j in range(min(AHEAD, m)):
            prefetch_write(slots, hashes[j] & mask)
        for j in range(m):
            if j + AHEAD < m:
                prefetch_write(slots, hashes[j + AHEAD] & mask)
            s = hashes[j] & mask
            while slots[np.int64(s), width] != _FREE:
                s = (s + np.uint64(1)) & mask
            for k in range(width + 1):
                slots[np.int64(s), k] = old[used[j], k]


@numba.njit(cache=True, nogil=True)
def _add_ranks(other, mine, out):
    """Add to ``out[i]`` how many of ``other`` are below ``mine[i]`` (both sorted): one merge pass,
    where a binary search per entry missed the cache at every step."""
    j = 0
    for i in range(len(mine)):
        while j < len(other) and other[j] < mine[i]:
            j += 1
        out[i] += j


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
    def merge(parts: Sequence["Classes"], threads: int | None = None) -> "Classes":
        """The classes of consecutive packet ranges given in trace order, as if counted at once."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        table = ClassTable(parts[0].layout, threads=threads)
        for part in parts:
            table.add_classes(part)
        return table.classes()


def _aligned_slots(rows: int, columns: int) -> np.ndarray:
    """Empty slots (uint64, ``_FREE``) starting on a cache line (numpy only promises 16 bytes),
    from the arena's kept buffers when one is free."""
    return arena.full((rows, columns), _FREE, np.uint64)


class _Partition:
    """The classes of one partition of a ``ClassTable``: open-addressing slots, at most half full,
    and per entry its first packet (and, once a count passes 32 bits, what was moved out of its
    slot)."""

    def __init__(self, width: int, capacity: int):
        self.size = 0
        self.entry_first = np.zeros(capacity, dtype=np.int64)
        self.flushed = np.zeros(0, dtype=np.int64)  # per entry, counts moved out of the slots
        self.rows = np.zeros(0, dtype=np.int64)  # scratch: a block's rows that fall in the partition
        self.slots = _aligned_slots(1 << max(4, (2 * capacity - 1).bit_length()), width + 1)

    def count(self, keys: np.ndarray, hashes: np.ndarray, weights: np.ndarray, firsts: np.ndarray, base: int,
              part: int, parts: int, later: int) -> None:
        """Count the rows that fall in this partition (``_count_rows``); ``later``: rows that will
        follow in the same chunk (how much room a growing table makes)."""
        n = len(keys)
        self._fit(self.size + n)
        if parts > 1 and len(self.rows) < n:
            self.rows = np.empty(n, dtype=np.int64)
        start, before = 0, self.size
        while True:
            self.size, start, status = _count_rows(keys, hashes, weights, firsts, base, part, parts, start,
                                                   self.slots, self.size, self.entry_first, self.flushed, self.rows)
            if status == 0:
                return
            self._make_room(status, (self.size - before + 1) / max(start, 1) * (n - start + later))

    def _fit(self, entries: int) -> None:
        """Room in the entry arrays for ``entries`` classes."""
        if len(self.entry_first) >= entries:
            return
        capacity = max(entries, 2 * len(self.entry_first))
        first = np.zeros(capacity, dtype=np.int64)
        first[:self.size] = self.entry_first[:self.size]
        self.entry_first = first
        if len(self.flushed):
            flushed = np.zeros(capacity, dtype=np.int64)
            flushed[:self.size] = self.flushed[:self.size]
            self.flushed = flushed

    def _make_room(self, status: int, coming: float) -> None:
        """What ``_count_rows``'s status asks for: ``flushed`` (2: a count passes 32 bits; from now
        on such counts go there), or more slots (1): twice as many, or room for the ``coming`` new
        classes that the rate so far predicts (a table of millions grows once or twice, not ten
        times)."""
        if status == 2:
            self.flushed = np.zeros(len(self.entry_first), dtype=np.int64)
            return
        old = self.slots
        wanted = int(2 * (self.size + 1.25 * coming))
        self.slots = _aligned_slots(max(2 * len(old), 1 << (wanted - 1).bit_length()), old.shape[1])
        _reinsert(self.slots, old)

    def list_into(self, keys: np.ndarray, first: np.ndarray, count: np.ndarray, position: np.ndarray) -> None:
        """Its classes into rows ``position`` (per entry; empty: its entries are the rows) of the
        table's listing."""
        rows = position if len(position) else slice(0, self.size)
        first[rows] = self.entry_first[:self.size]
        if len(self.flushed):
            count[rows] = self.flushed[:self.size]
        _listing(self.slots, keys, count, position)


class ClassTable:
    """Counts the classes of packets fed in trace order, chunk by chunk.

    The classes are split into ``threads`` partitions by their hash (``_Partition``), counted side
    by side on up to that many threads (``threads.run_tasks``). A slot is the key and one word (entry number, 32-bit count): 32 bytes
    for the usual 3-slice key, so a probe reads one cache line. Counts past 32 bits (a class of
    more than 4G packets) move to a per-entry array, allocated only then. Keys live in the slots
    only: ``classes()`` lists them from there. The classes do not depend on ``threads``."""

    def __init__(self, layout: Layout, capacity: int = 1 << 12, threads: int | None = None):
        self.layout = layout
        self.width = layout.width
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"a class table counts with at least 1 thread, not {threads}")
        self.parts = [_Partition(self.width, max(16, capacity // self.threads)) for _ in range(self.threads)]
        self.narrow = NarrowBits(layout.length_tests) if layout.narrow_tests else None

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def add(self, fields: PacketFields, devices: np.ndarray, base: int) -> None:
        """Count packets ``base``, ``base + 1``, ... (the chunk's first packet number is ``base``)."""
        n = len(fields)
        if n == 0:
            return
        inputs = self.layout.inputs(fields, devices, tests=self.narrow is None)
        keys = np.empty((min(n, _BLOCK), self.width), dtype=np.uint64)
        hashes = np.empty(len(keys), dtype=np.uint64)
        for b0 in range(0, n, _BLOCK):
            rows = min(_BLOCK, n - b0)
            k, h = keys[:rows], hashes[:rows]
            while True:
                narrow = self.narrow.arrays if self.narrow is not None else NarrowBits.NONE
                if self._build_keys(inputs, narrow, b0, k, h) == 0:
                    break
                if not self.narrow.learn(_narrow_of(inputs), b0, b0 + rows):  # too many combinations: test each packet
                    self.narrow = None
                    inputs = self.layout.inputs(fields, devices)
            self._count(k, h, _NONE, _NONE, base + b0, n - b0 - rows)

    def _build_keys(self, inputs, narrow, b0: int, keys: np.ndarray, hashes: np.ndarray) -> int:
        """The keys and hashes of packets ``b0 .. b0 + len(keys) - 1``, in pieces shared out between
        the threads; how many packets' narrow combinations the table lacked."""
        rows = len(keys)
        cuts = np.linspace(0, rows, 4 * self.threads + 1).astype(np.int64).tolist()
        missing = [0] * (len(cuts) - 1)

        def piece(p: int, lo: int, hi: int) -> None:
            missing[p] = _key_rows(*inputs, *narrow, b0 + lo, keys[lo:hi], hashes[lo:hi])

        run_tasks([lambda p=p, lo=lo, hi=hi: piece(p, lo, hi) for p, (lo, hi) in enumerate(zip(cuts, cuts[1:]))
                   if hi > lo], self._threads(rows))
        return sum(missing)

    def add_classes(self, classes: Classes) -> None:
        """Count the classes of later packets (their first packets follow every packet so far)."""
        if len(classes) == 0:
            return
        keys = np.ascontiguousarray(classes.keys)
        hashes = np.empty(len(keys), dtype=np.uint64)
        _key_hashes(keys, hashes)
        self._count(keys, hashes, np.ascontiguousarray(classes.count, dtype=np.int64),
                    np.ascontiguousarray(classes.first, dtype=np.int64), 0, 0)

    def _count(self, keys, hashes, weights, firsts, base: int, later: int) -> None:
        parts = len(self.parts)
        run_tasks([lambda p=p, part=part: part.count(keys, hashes, weights, firsts, base, p, parts, later)
              for p, part in enumerate(self.parts)], self._threads(len(keys)))

    def _threads(self, rows: int) -> int:
        return self.threads if rows >= _SERIAL_ROWS else 1

    def classes(self) -> Classes:
        """The classes so far, in first-packet order (each partition's entries are in their own
        first-packet order: merged by it)."""
        sizes = [p.size for p in self.parts]
        total = sum(sizes)
        keys = arena.empty((total, self.width), np.uint64)
        first = np.empty(total, dtype=np.int64)
        count = np.zeros(total, dtype=np.int64)
        firsts = [p.entry_first[:p.size] for p in self.parts]
        positions = [_NONE]  # one partition: its entries are the rows
        if len(firsts) > 1:  # a class's row: how many classes of any partition came first
            positions = [np.arange(len(mine), dtype=np.int64) for mine in firsts]
            run_tasks([lambda p=p: [_add_ranks(other, firsts[p], positions[p]) for q, other in enumerate(firsts)
                                    if q != p] for p in range(len(firsts))], self._threads(total))
        run_tasks([lambda part=part, position=position: part.list_into(keys, first, count, position)
              for part, position in zip(self.parts, positions)], self._threads(total))
        return Classes(self.layout, keys, first, count)


_NONE = np.zeros(0, dtype=np.int64)  # no weights, no first packets: rows are packets
