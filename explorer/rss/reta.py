"""The RETA: which core each entry of the redirection table names.

Any content keeps related packets together: the keys give them one RETA index, and every device
reads the one table. So the table is free to serve balance, and what balances is which *index
bits* decide the core. A round-robin table (entry i -> core i % cores) decides by the index's
lowest bits. That is right when those bits follow the input bits that vary in real traffic: the
low bits of a port (services below 1024, ephemeral ports counted up from 32768) and of an address
(the hosts of one prefix). It is wrong when the constraints let only a field's top bits steer
(``nf_ntohs(port) >> 8``, an address's /24): Toeplitz reads input bit p into index bit j through key
bit p + 31 - j, and zeroing the field's low bits zeroes every key bit past the live ones, so index
bit j sees only the field's top j bits. Bit 0 sees none, bit 1 only the most significant bit: every
port below 32768, and every ephemeral one, shared one of its values.

The index is a linear map of each device's input, so the cores are dealt out over *directions*:
parities of index bits (``c . i`` for a mask c), each a linear function of the input. They are
picked greedily, one at a time, each new one the one that adds a new degree of freedom on the most
devices, then whose new input bit sits lowest in its field on every device (its significance: 0
for a field's least significant bit), then the fewest input bits, then the smallest mask. Entry i's
coordinates along them, read as a number (the first direction its least significant bit), give the
core modulo ``cores``. With a port's top byte the coordinates of an entry are the port's block
number itself, so consecutive blocks take turns on the cores.

The round robin is kept (skipping the lowest index bits no device can set) where its own first
bits are as good on those terms, so full-rank keys, whose low index bits already mix in every
field's low bits, keep the table they always had.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from explorer.rss import gf2
from explorer.rss.hash_input import FIELD_BITS, input_layout
from explorer.rss.quality import reta_rows
from explorer.rss.reta_rule import RetaRule

LOW_BITS = 8  # input bits this close to a field's bottom vary in any traffic: they rank alike
_NONE = 1 << 16  # the significance of a direction that adds nothing on a device


@dataclass(frozen=True)
class _Device:
    """One hashing device's RETA-index rows with its input bits renumbered by significance (bit k
    of a row is the k-th input bit in (significance, position) order), so a vector's lowest set bit
    is its lowest-reaching input bit."""

    rows: tuple[int, ...]  # per index bit j, in the renumbered order
    significance: tuple[int, ...]  # per renumbered bit


def _device(key: bytes, fields: tuple[str, ...], reta_size: int) -> _Device:
    layout = input_layout(fields)
    n = layout.bits
    sig = []
    for name in layout.fields:
        width = FIELD_BITS[name]
        sig.extend(width - 1 - i for i in range(width))  # per input position, in layout order
    order = sorted(range(n), key=lambda pos: (sig[pos], pos))
    rank = {pos: k for k, pos in enumerate(order)}
    rows = []
    for row in reta_rows(key, layout.fields, reta_size):
        renumbered = 0
        for pos in range(n):
            if row >> (n - 1 - pos) & 1:
                renumbered |= 1 << rank[pos]
        rows.append(renumbered)
    return _Device(tuple(rows), tuple(sig[pos] for pos in order))


class _Basis:
    """Per device, an echelon basis of the directions taken so far (pivot = a vector's lowest set
    bit), to tell what a further direction adds on that device."""

    def __init__(self, devices: Sequence[_Device]):
        self.devices = devices
        self.pivots: list[list[tuple[int, int]]] = [[] for _ in devices]

    def reduce(self, d: int, vector: int) -> int:
        for pivot, row in self.pivots[d]:  # in insertion order: a later row never holds an earlier pivot
            if vector >> pivot & 1:
                vector ^= row
        return vector

    def add(self, reduced: Sequence[int]) -> None:
        for d, vector in enumerate(reduced):
            if vector:
                self.pivots[d].append(((vector & -vector).bit_length() - 1, vector))

    def step(self, vectors: Sequence[int]) -> tuple[int, int]:
        """(devices it adds nothing on, the highest significance of what it adds elsewhere)."""
        reduced = [self.reduce(d, v) for d, v in enumerate(vectors)]
        return _step(self.devices, reduced)


def _step(devices: Sequence[_Device], reduced: Sequence[int]) -> tuple[int, int]:
    flat = sum(1 for v in reduced if not v)
    sig = max((dev.significance[(v & -v).bit_length() - 1] for dev, v in zip(devices, reduced) if v), default=_NONE)
    return flat, sig


def _vectors(device: _Device, directions: int) -> list[int]:
    """The input vector of every direction c < ``directions`` (the XOR of its index bits' rows)."""
    out = [0] * directions
    for c in range(1, directions):
        low = (c & -c).bit_length() - 1
        out[c] = out[c & (c - 1)] ^ device.rows[low]
    return out


def _greedy(devices: Sequence[_Device], m: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The directions picked as the module docstring says, then the unit ones that complete a
    basis, and the step of each picked one."""
    count = 1 << m
    vectors = [_vectors(dev, count) for dev in devices]
    reduced = [list(v) for v in vectors]
    weight = [sum(v[c].bit_count() for v in vectors) for c in range(count)]
    chosen: list[int] = []
    steps: list[tuple[int, int]] = []
    while len(chosen) < m:
        best, best_key = 0, None
        for c in range(1, count):
            flat, sig = _step(devices, [r[c] for r in reduced])
            if flat == len(devices):
                continue  # adds nothing anywhere (a dead direction, or one already spanned)
            key = (flat, sig, weight[c], c)
            if best_key is None or key < best_key:
                best, best_key = c, key
        if best_key is None:
            break
        chosen.append(best)
        steps.append(best_key[:2])
        picked = [r[best] for r in reduced]
        for d, vector in enumerate(picked):
            if not vector:
                continue
            pivot = (vector & -vector).bit_length() - 1
            column = reduced[d]
            for c in range(count):
                if column[c] >> pivot & 1:
                    column[c] ^= vector
    span = gf2.Echelon(chosen)
    for j in range(m):  # directions no device can set: last, so they decide nothing
        if span.add(1 << j):
            chosen.append(1 << j)
    return chosen, steps


def _clamped(steps: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(flat, 0 if sig < LOW_BITS else sig) for flat, sig in steps]


def deal(planes: Sequence[tuple[bytes, tuple[str, ...]]], reta_size: int, cores: int) -> tuple[int, ...]:
    """The RETA for devices hashing ``planes`` ((key, fields) of each device that hashes something)
    with one table for all of them (see the module docstring)."""
    return dealing(planes, reta_size, cores).table()


def dealing(planes: Sequence[tuple[bytes, tuple[str, ...]]], reta_size: int, cores: int) -> RetaRule:
    """The rule ``deal``'s table follows: the directions it deals over, as masks of the entry."""
    m = reta_size.bit_length() - 1
    devices = [_device(key, fields, reta_size) for key, fields in planes]
    dead = min(_dead_low_bits(dev.rows) for dev in devices) if devices else 0
    round_robin = RetaRule.of(tuple(1 << j for j in range(dead, m)) or (0,), cores, reta_size)  # (i >> dead) % cores
    if not devices or cores == 1:
        return round_robin
    deciding = max(1, (cores - 1).bit_length())  # the directions a power of two of cores splits on
    basis = _Basis(devices)
    own = []
    for j in range(dead, min(m, dead + deciding)):
        vectors = [dev.rows[j] for dev in devices]
        own.append(basis.step(vectors))
        basis.add([basis.reduce(d, v) for d, v in enumerate(vectors)])
    if all(step == (0, 0) for step in _clamped(own)):
        return round_robin  # nothing deals better: keep the table plans always had
    chosen, steps = _greedy(devices, m)
    if _clamped(steps[:deciding]) >= _clamped(own):
        return round_robin
    return RetaRule.of(tuple(chosen), cores, reta_size)  # entry i -> its coordinates along them, mod cores


def _dead_low_bits(rows: Sequence[int]) -> int:
    """How many of the lowest RETA-index bits are 0 for every input (their rows are zero), short of
    all of them (an index that never changes has nothing to deal out)."""
    dead = 0
    while dead < len(rows) - 1 and rows[dead] == 0:
        dead += 1
    return dead
