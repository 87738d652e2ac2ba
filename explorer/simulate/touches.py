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

from explorer.simulate.mixing import GOLDEN, mix

_FREE = np.uint64(0xFFFFFFFFFFFFFFFF)  # the last column of an empty slot
_NUMBER = np.uint64((1 << 48) - 1)  # a main slot's last column: bucket << 48 | first packet number
_SHIFT = np.uint64(48)
MAX_BUCKET = (1 << 16) - 2  # buckets and packet numbers must fit that word (and never make _FREE)
MAX_PACKET = (1 << 48) - 1
_PART_SLOTS = 1 << 15  # slots per partition once the table is large: a partition stays in L2
_BATCH = 32  # rows whose data are loaded together before they are recorded


@numba.njit(cache=True, inline="always")
def _slot(keys, row):
    h = GOLDEN
    for k in range(keys.shape[1]):
        h = mix(h ^ keys[row, k])
    return h


@numba.njit(cache=True)
def _hashes(new, mask):
    h = np.zeros(len(mask), dtype=np.uint64)
    for r in range(len(mask)):
        if mask[r]:
            h[r] = _slot(new, r)
    return h


@numba.njit(cache=True)
def _partition(h, mask, shift, parts):
    """Rows with ``mask``, grouped by partition (the top bits of their hash), in row order within
    a partition; ``bounds[p]:bounds[p + 1]`` are partition p's."""
    bounds = np.zeros(parts + 1, dtype=np.int64)
    for r in range(len(mask)):
        if mask[r]:
            bounds[(h[r] >> shift) + np.uint64(1)] += 1
    for p in range(parts):
        bounds[p + 1] += bounds[p]
    at = bounds[:parts].copy()
    order = np.empty(bounds[parts], dtype=np.int64)
    for r in range(len(mask)):
        if mask[r]:
            p = h[r] >> shift
            order[at[p]] = r
            at[p] += 1
    return order, bounds


@numba.njit(cache=True, inline="always")
def _probe(slots, region, capacity, new, r, extra, h):
    """The slot of key ``new[r]`` (plus ``extra`` as a last key slice in the extra table, which
    is wider than ``new`` by that slice and two more columns) in the region, or the empty slot
    where it would go."""
    width = new.shape[1]
    wide = slots.shape[1] - 1 > width
    mask = np.uint64(capacity - 1)
    s = h & mask
    while True:
        row = region + np.int64(s)
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


@numba.njit(cache=True)
def _touch(slots, sizes, capacity, xslots, xsize, xcapacity, new, h, order, bounds, buckets, numbers, per):
    """Record the rows ``order`` of ``new``, row r touched from ``buckets[r // per]`` by packet
    ``numbers[r // per]``.
    Partition p owns slots ``p * capacity`` to ``(p + 1) * capacity``. Returns
    ``(status, xsize, _)``: status 1 or 2 when the main or the extra table must grow first (the call
    is idempotent: rerunning it on the same rows after growing gives the same tables; the last value
    only keeps the compiler from dropping the early loads)."""
    width = new.shape[1]
    last, xlast = slots.shape[1] - 1, xslots.shape[1] - 1
    half = capacity // 2
    mask = np.uint64(capacity - 1)
    loaded = np.uint64(0)
    for p in range(len(bounds) - 1):
        region = p * capacity
        for j in range(bounds[p], bounds[p + 1]):
            if (j - bounds[p]) % _BATCH == 0:
                # Read what the next rows need (their key, bucket, packet number and first slot,
                # all far apart in memory) together: independent loads the CPU overlaps.
                for a in range(j, min(j + _BATCH, bounds[p + 1])):
                    ra = order[a]
                    loaded ^= (new[ra, 0] ^ np.uint64(buckets[ra // per]) ^ np.uint64(numbers[ra // per])
                               ^ slots[region + np.int64(h[ra] & mask), last])
            r = order[j]
            b = np.uint64(buckets[r // per])
            row = _probe(slots, region, capacity, new, r, np.uint64(0), h[r])
            if slots[row, last] == _FREE:
                if sizes[p] >= half:
                    return 1, xsize, loaded
                for k in range(width):
                    slots[row, k] = new[r, k]
                slots[row, last] = (b << _SHIFT) | np.uint64(numbers[r // per])
                sizes[p] += 1
            elif (slots[row, last] >> _SHIFT) != b:
                xh = mix(h[r] ^ b)
                xrow = _probe(xslots, 0, xcapacity, new, r, b, xh)
                if xslots[xrow, xlast] == _FREE:
                    if xsize >= xcapacity // 2:
                        return 2, xsize, loaded
                    for k in range(width):
                        xslots[xrow, k] = new[r, k]
                    xslots[xrow, width] = b
                    xslots[xrow, xlast] = np.uint64(numbers[r // per])
                    xsize += 1
    return 0, xsize, loaded


class KeyTable:
    """Keys touched so far, each with its first bucket and packet, plus its other buckets.

    Slots hold the key inline (``width`` slices), then one word with the bucket (top 16 bits)
    and the first packet number (``_FREE`` when the slot is empty); the table is split into partitions by the top bits of the
    key's hash and every chunk is processed one partition at a time, so that each insertion hits a
    cache-resident part of a table of millions of keys."""

    def __init__(self, width: int, expected: int = 512):
        """``expected``: about how many keys will come (the table grows past it as needed)."""
        self.width = width
        capacity = 1 << max(10, int(2 * expected - 1).bit_length())
        self._layout(capacity)
        self.slots = np.full((capacity, width + 1), _FREE, dtype=np.uint64)
        self.sizes = np.zeros(self.parts, dtype=np.int64)
        self.xslots = np.full((1 << 8, width + 3), _FREE, dtype=np.uint64)
        self.xsize = 0

    def _layout(self, total: int) -> None:
        self.parts = max(1, total // _PART_SLOTS)
        self.capacity = total // self.parts
        self.shift = np.uint64(64 - (self.parts.bit_length() - 1))

    def __len__(self) -> int:
        return int(self.sizes.sum())

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
        h = _hashes(keys, mask)
        while True:
            order, bounds = _partition(h, mask, self.shift, self.parts) if self.parts > 1 else _whole(mask)
            status, self.xsize, _ = _touch(self.slots, self.sizes, self.capacity, self.xslots, self.xsize,
                                        len(self.xslots), keys, h, order, bounds, buckets, numbers, per)
            if status == 0:
                return
            if status == 1:
                self._grow()
            else:
                self._grow_extra()

    def _grow(self) -> None:
        rows = self.slots[self.slots[:, -1] != _FREE]
        self._layout(2 * len(self.slots))
        self.slots = None  # the old slots go before the new ones come
        self.slots = np.full((self.parts * self.capacity, self.width + 1), _FREE, dtype=np.uint64)
        self.sizes = np.zeros(self.parts, dtype=np.int64)
        _refill(self.slots, self.sizes, self.capacity, self.shift, self.parts, rows, self.width, False)

    def _grow_extra(self) -> None:
        rows = self.xslots[self.xslots[:, -1] != _FREE]
        self.xslots = np.full((2 * len(self.xslots), self.width + 3), _FREE, dtype=np.uint64)
        sizes = np.zeros(1, dtype=np.int64)
        _refill(self.xslots, sizes, len(self.xslots), np.uint64(63), 1, rows, self.width, True)

    def touches(self) -> "Touches":
        used = _used(self.slots)
        main = self.slots[used]
        extra = self.xslots[self.xslots[:, -1] != _FREE]
        w = self.width
        # Each extra pair's key row: the rank of the key's slot among the used slots.
        slot = _slots_of(self.slots, self.capacity, self.shift, self.parts, np.ascontiguousarray(extra[:, :w]))
        return Touches(main[:, :w].copy(), (main[:, w] >> _SHIFT).astype(np.int64), (main[:, w] & _NUMBER).astype(np.int64),
                       np.searchsorted(used, slot), extra[:, w].astype(np.int64), extra[:, w + 2].astype(np.int64))

    def split_touches(self) -> "Touches":
        """``touches()`` with only the keys touched from more than one bucket, in the same order:
        all that the violation check reads, and usually none of a table of millions of keys."""
        extra = self.xslots[self.xslots[:, -1] != _FREE]
        w = self.width
        slot = _slots_of(self.slots, self.capacity, self.shift, self.parts, np.ascontiguousarray(extra[:, :w]))
        rows, extra_key = np.unique(slot, return_inverse=True)
        main = self.slots[rows]
        return Touches(main[:, :w].copy(), (main[:, w] >> _SHIFT).astype(np.int64), (main[:, w] & _NUMBER).astype(np.int64),
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


@numba.njit(cache=True)
def _used(slots):
    """The used slots, in slot order."""
    first_col = slots.shape[1] - 1
    count = 0
    for s in range(len(slots)):
        if slots[s, first_col] != _FREE:
            count += 1
    out = np.empty(count, dtype=np.int64)
    k = 0
    for s in range(len(slots)):
        if slots[s, first_col] != _FREE:
            out[k] = s
            k += 1
    return out


@numba.njit(cache=True)
def _first_cores(slots, reta, cores):
    """Per core, the used slots whose first bucket the RETA sends there."""
    last = slots.shape[1] - 1
    out = np.zeros(cores, dtype=np.int64)
    for s in range(len(slots)):
        if slots[s, last] != _FREE:
            out[reta[np.int64(slots[s, last] >> _SHIFT)]] += 1
    return out


@numba.njit(cache=True)
def _slots_of(slots, capacity, shift, parts, keys):
    """The slot holding each of ``keys`` (all present)."""
    out = np.empty(len(keys), dtype=np.int64)
    mask = np.uint64(capacity - 1)
    width = keys.shape[1]
    for i in range(len(keys)):
        x = _slot(keys, i)
        p = np.int64(x >> shift) if parts > 1 else 0
        s = x & mask
        while True:
            slot = p * capacity + np.int64(s)
            same = True
            for k in range(width):
                if slots[slot, k] != keys[i, k]:
                    same = False
                    break
            if same and slots[slot, slots.shape[1] - 1] != _FREE:
                out[i] = slot
                break
            s = (s + np.uint64(1)) & mask
    return out


@numba.njit(cache=True)
def _whole(mask):
    order = np.flatnonzero(mask)
    bounds = np.zeros(2, dtype=np.int64)
    bounds[1] = len(order)
    return order, bounds


@numba.njit(cache=True)
def _refill(slots, sizes, capacity, shift, parts, rows, width, extra):
    """Put back ``rows`` (whole slots) after growing: keys of ``width`` slices, then (in the extra
    table, where it is part of the key) the bucket."""
    mask = np.uint64(capacity - 1)
    for i in range(len(rows)):
        h = GOLDEN
        for k in range(width):
            h = mix(h ^ rows[i, k])
        if extra:
            h = mix(h ^ rows[i, width])
        p = np.int64(h >> shift) if parts > 1 else 0
        s = h & mask
        while slots[p * capacity + np.int64(s), slots.shape[1] - 1] != _FREE:
            s = (s + np.uint64(1)) & mask
        for k in range(slots.shape[1]):
            slots[p * capacity + np.int64(s), k] = rows[i, k]
        sizes[p] += 1


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
