"""Which state keys were touched from which RETA buckets, and by which packet first.

``KeyTable`` is an open-addressing hash table (numba kernels) over exact keys of ``width`` 64-bit
slices, fed in packet order. Per key it keeps the bucket of the first packet that touched it and
that packet's number: the first core to touch it under any RETA. Every other bucket the key is
touched from goes to a second table, once, with the first packet from there. A correct sharding
touches each key from one bucket only, so the second table stays empty; a broken one records each
split key once per extra bucket. Memory follows distinct keys, never packets.

``Touches`` is the result, from which the report reads the keys touched from several cores under
a RETA (the plan's or a rebalanced one), the first packet on each core, and distinct keys per core.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from explorer.simulate import arena
from explorer.simulate.mixing import GOLDEN, mix
from explorer.simulate.prefetch import AHEAD, prefetch

_FREE = np.uint64(0xFFFFFFFFFFFFFFFF)  # the last column of an empty slot
_NUMBER = np.uint64((1 << 48) - 1)  # a main slot's last column: bucket << 48 | first packet number
_SHIFT = np.uint64(48)
MAX_BUCKET = (1 << 16) - 2  # buckets and packet numbers must fit that word (and never make _FREE)
MAX_PACKET = (1 << 48) - 1


@numba.njit(cache=True, inline="always")
def _slot(keys, row):
    h = GOLDEN
    for k in range(keys.shape[1]):
        h = mix(h ^ keys[row, k])
    return h


@numba.njit(cache=True, inline="always")
def _probe(slots, new, r, extra, h):
    """The slot of key ``new[r]`` (plus ``extra`` as a last key slice in the extra table, which
    is wider than ``new`` by that slice and two more columns), or the empty slot where it would go."""
    width = new.shape[1]
    wide = slots.shape[1] - 1 > width
    mask = np.uint64(len(slots) - 1)
    s = h & mask
    while True:
        row = np.int64(s)
        if slots[row, slots.shape[1] - 1] == _FREE:
            return row
        same = True
        for k in range(width):
            if slots[row, k] != new[r, k]:
                same = False
                break
        if same and (not wide or slots[row, width] == extra):
            return row
        s = (s + np.uint64(1)) & mask


@numba.njit(cache=True, nogil=True)
def _touch(slots, size, xslots, xsize, new, mask, start, buckets, numbers, per):
    """Record rows ``start``, ``start + 1``, ... of ``new`` that ``mask`` keeps, row r touched from
    ``buckets[r // per]`` by packet ``numbers[r // per]``. Returns ``(size, xsize, r, status)``: r
    the first row not recorded (all when status is 0), status 1 or 2 when the main or the extra
    table must grow first. The rows' hashes come first, then each row is recorded while the slot
    of the row ``AHEAD`` on is prefetched."""
    width = new.shape[1]
    last, xlast = slots.shape[1] - 1, xslots.shape[1] - 1
    half, xhalf = len(slots) // 2, len(xslots) // 2
    slot_mask = np.uint64(len(slots) - 1)
    n = len(new)
    rows = np.empty(n - start, dtype=np.int64)
    hashes = np.empty(n - start, dtype=np.uint64)
    m = 0
    for r in range(start, n):
        if mask[r]:
            rows[m] = r
            hashes[m] = _slot(new, r)
            m += 1
    for c in range(min(AHEAD, m)):
        prefetch(slots, hashes[c] & slot_mask)
    for c in range(m):
        if c + AHEAD < m:
            prefetch(slots, hashes[c + AHEAD] & slot_mask)
        j = rows[c]
        packet = j if per == 1 else j // per
        b = np.uint64(buckets[packet])
        row = _probe(slots, new, j, np.uint64(0), hashes[c])
        if slots[row, last] == _FREE:
            if size >= half:
                return size, xsize, j, 1
            for k in range(width):
                slots[row, k] = new[j, k]
            slots[row, last] = (b << _SHIFT) | np.uint64(numbers[packet])
            size += 1
        elif (slots[row, last] >> _SHIFT) != b:
            xrow = _probe(xslots, new, j, b, mix(hashes[c] ^ b))
            if xslots[xrow, xlast] == _FREE:
                if xsize >= xhalf:
                    return size, xsize, j, 2
                for k in range(width):
                    xslots[xrow, k] = new[j, k]
                xslots[xrow, width] = b
                xslots[xrow, xlast] = np.uint64(numbers[packet])
                xsize += 1
    return size, xsize, n, 0


class KeyTable:
    """Keys touched so far, each with its first bucket and packet, plus its other buckets.

    Slots hold the key inline (``width`` slices), then one word with the bucket (top 16 bits)
    and the first packet number (``_FREE`` when the slot is empty). One flat table, at most half
    full, filled in row order: hashes first, then rows recorded with the slot a few rows on
    prefetched."""

    def __init__(self, width: int, expected: int = 512):
        """``expected``: about how many keys will come (the table grows past it as needed)."""
        self.width = width
        self.size = 0
        self.slots = arena.full((1 << max(10, int(2 * expected - 1).bit_length()), width + 1), _FREE, np.uint64)
        self.xslots = np.full((1 << 8, width + 3), _FREE, dtype=np.uint64)
        self.xsize = 0

    def __len__(self) -> int:
        return self.size

    def touch(self, keys: np.ndarray, mask: np.ndarray, buckets: np.ndarray, numbers: np.ndarray,
              per: int = 1) -> None:
        """Where ``mask[i]``, packet ``numbers[i // per]`` touched ``keys[i]`` (uint64, shape
        (n, width)) from RETA bucket ``buckets[i // per]`` (``per`` keys of one packet side by
        side: no repeated copy of its bucket and number). Rows of one key must come in packet order."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        if (keys.ndim != 2 or keys.shape[1] != self.width or len(keys) != len(mask)
                or len(keys) != per * len(buckets)):
            raise ValueError(f"expected keys of shape (n, {self.width}) with n masks and n / {per} buckets")
        mask = np.ascontiguousarray(mask, dtype=np.bool_)
        buckets = np.ascontiguousarray(buckets, dtype=np.int64)
        numbers = np.ascontiguousarray(numbers, dtype=np.int64)
        if len(buckets) and (buckets.min() < 0 or buckets.max() > MAX_BUCKET
                             or numbers.min() < 0 or numbers.max() > MAX_PACKET):
            raise ValueError(f"buckets must be within 0..{MAX_BUCKET} and packet numbers within 0..{MAX_PACKET}")
        start = 0
        while True:
            self.size, self.xsize, start, status = _touch(self.slots, self.size, self.xslots, self.xsize, keys,
                                                             mask, start, buckets, numbers, per)
            if status == 0:
                return
            if status == 1:
                self.slots = _regrown(self.slots, self.width, False)
            else:
                self.xslots = _regrown(self.xslots, self.width, True)

    def touches(self) -> "Touches":
        used = _used(self.slots)
        main = self.slots[used]
        extra = self.xslots[self.xslots[:, -1] != _FREE]
        w = self.width
        # Each extra pair's key row: the rank of the key's slot among the used slots.
        slot = _slots_of(self.slots, np.ascontiguousarray(extra[:, :w]))
        return Touches(main[:, :w].copy(), (main[:, w] >> _SHIFT).astype(np.int64),
                       (main[:, w] & _NUMBER).astype(np.int64),
                       np.searchsorted(used, slot), extra[:, w].astype(np.int64), extra[:, w + 2].astype(np.int64))

    def split_touches(self) -> "Touches":
        """``touches()`` with only the keys touched from more than one bucket, in the same order:
        all that the violation check reads, and usually none of a table of millions of keys."""
        extra = self.xslots[self.xslots[:, -1] != _FREE]
        w = self.width
        slot = _slots_of(self.slots, np.ascontiguousarray(extra[:, :w]))
        rows, extra_key = np.unique(slot, return_inverse=True)
        main = self.slots[rows]
        return Touches(main[:, :w].copy(), (main[:, w] >> _SHIFT).astype(np.int64),
                       (main[:, w] & _NUMBER).astype(np.int64),
                       extra_key.reshape(-1).astype(np.int64), extra[:, w].astype(np.int64),
                       extra[:, w + 2].astype(np.int64))

    def first_cores(self, reta: np.ndarray, cores: int) -> np.ndarray:
        """``touches().first_cores`` without listing the keys."""
        return _first_cores(self.slots, np.asarray(reta, dtype=np.int64), cores)

    def keys_per_core(self, reta: np.ndarray, cores: int) -> np.ndarray:
        """``touches().keys_per_core`` without listing the keys (a table of millions of them)."""
        reta = np.asarray(reta, dtype=np.int64)
        counts = _first_cores(self.slots, reta, cores)
        if self.xsize:
            counts = counts + Touches.extra_per_core(self.touches(), reta, cores)
        return counts


def _regrown(slots: np.ndarray, width: int, extra: bool) -> np.ndarray:
    """The used rows of ``slots`` in a table twice as large (in the extra table the bucket
    column is part of the key)."""
    grown = arena.full((2 * len(slots), slots.shape[1]), _FREE, np.uint64)
    _refill(grown, slots[slots[:, -1] != _FREE], width, extra)
    return grown


@numba.njit(cache=True, nogil=True)
def _used(slots):
    """The used slots, in slot order."""
    last = slots.shape[1] - 1
    count = 0
    for s in range(len(slots)):
        if slots[s, last] != _FREE:
            count += 1
    out = np.empty(count, dtype=np.int64)
    k = 0
    for s in range(len(slots)):
        if slots[s, last] != _FREE:
            out[k] = s
            k += 1
    return out


@numba.njit(cache=True, nogil=True)
def _first_cores(slots, reta, cores):
    """Per core, the used slots whose first bucket the RETA sends there."""
    last = slots.shape[1] - 1
    out = np.zeros(cores, dtype=np.int64)
    for s in range(len(slots)):
        if slots[s, last] != _FREE:
            out[reta[np.int64(slots[s, last] >> _SHIFT)]] += 1
    return out


@numba.njit(cache=True, nogil=True)
def _slots_of(slots, keys):
    """The slot holding each of ``keys`` (all present)."""
    out = np.empty(len(keys), dtype=np.int64)
    for i in range(len(keys)):
        out[i] = _probe(slots, keys, i, np.uint64(0), _slot(keys, i))
    return out


@numba.njit(cache=True, nogil=True)
def _refill(slots, rows, width, extra):
    """Put back ``rows`` (whole slots) after growing: keys of ``width`` slices, then (in the extra
    table, where it is part of the key) the bucket."""
    mask = np.uint64(len(slots) - 1)
    for i in range(len(rows)):
        h = GOLDEN
        for k in range(width):
            h = mix(h ^ rows[i, k])
        if extra:
            h = mix(h ^ rows[i, width])
        s = h & mask
        while slots[np.int64(s), slots.shape[1] - 1] != _FREE:
            s = (s + np.uint64(1)) & mask
        for k in range(slots.shape[1]):
            slots[np.int64(s), k] = rows[i, k]


@dataclass(frozen=True, eq=False)
class Touches:
    """Per key touched: its value (uint64 slices, least significant first), the bucket and the
    number of its first packet; and every other bucket a key was touched from, as ``extra_*``
    rows (the key's row, the bucket, the first packet from there)."""

    keys: np.ndarray  # (k, width)
    bucket: np.ndarray  # int64 (k,)
    first: np.ndarray  # int64 (k,)
    extra_key: np.ndarray  # int64 (x,): row in ``keys``
    extra_bucket: np.ndarray  # int64 (x,)
    extra_first: np.ndarray  # int64 (x,)

    def __len__(self) -> int:
        return len(self.first)

    def keys_per_core(self, reta: np.ndarray, cores: int) -> np.ndarray:
        """Distinct keys each core touches."""
        reta = np.asarray(reta, dtype=np.int64)
        return np.bincount(reta[self.bucket], minlength=cores)[:cores] + self.extra_per_core(reta, cores)

    def extra_per_core(self, reta: np.ndarray, cores: int) -> np.ndarray:
        """Per core, the keys it touches whose first packet ran on another core."""
        core = reta[self.extra_bucket]
        other = core != reta[self.bucket[self.extra_key]]
        pairs = np.unique(self.extra_key[other] * cores + core[other])
        return np.bincount(pairs % cores, minlength=cores)[:cores]

    def first_cores(self, reta: np.ndarray, cores: int) -> np.ndarray:
        """Per core, the keys whose first packet ran there (e.g. entries it created)."""
        return np.bincount(np.asarray(reta, dtype=np.int64)[self.bucket], minlength=cores)[:cores]

    def split(self, reta: np.ndarray) -> np.ndarray:
        """Rows of the keys touched from more than one core under ``reta``, ordered by the packet
        that first touched each from a second core."""
        reta = np.asarray(reta, dtype=np.int64)
        other = reta[self.extra_bucket] != reta[self.bucket[self.extra_key]]
        if not other.any():
            return np.zeros(0, dtype=np.int64)
        rows, firsts = self.extra_key[other], self.extra_first[other]
        order = np.lexsort((rows, firsts))
        rows = rows[order]
        _, at = np.unique(rows, return_index=True)
        return rows[np.sort(at)]

    def cores_of(self, row: int, reta: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The cores key ``row`` is touched from and the first packet on each."""
        per = {int(reta[self.bucket[row]]): int(self.first[row])}
        for x in np.flatnonzero(self.extra_key == row).tolist():
            core, first = int(reta[self.extra_bucket[x]]), int(self.extra_first[x])
            per[core] = min(per.get(core, first), first)
        cores = tuple(sorted(per))
        return cores, tuple(per[c] for c in cores)
