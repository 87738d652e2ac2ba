"""Per-core pools in the simulator (sharding by allocation): replies carry the value their flow's core
allocated.

A NAT sharded by allocation sends a new flow's first packet out with an external port from the pool
of the core that received it, and the far end answers to that port; which port depends on the core,
so the simulation addresses the replies itself. ``PoolModel.translate`` runs along the trace, chunk
by chunk, in order:

* a packet that may take an allocating path (``Allocation.emitting``: it allocates and writes the
  value into the packet it forwards) with a *flow key* not seen before allocates: its core hands
  out the lowest index of its pool it has not given yet (none when the pool is used up: the NF
  then drops the packet). The flow key is the first state key of that path the headers determine
  (the NAT's LAN 5-tuple); the packet as forwarded is the path's writes applied to it (source
  ``NAT_EXTERNAL_IP``, port ``NAT_START_PORT + i``);
* a later packet that answers the flow's first packet as the far end would without the NF in the
  way (the generators' replies: addresses and ports swapped), or as it answered the sequential NF
  (which hands out 0, 1, 2, ... in order: a capture taken behind it), is readdressed to answer the
  packet this build forwards.

Expiry is not modelled: an index stays with its flow. The model checks what sharding by allocation
promises: every readdressed reply reaches the core that allocated its flow's index (``check``); one
that does not splits the allocation's objects (a key whose other hashed fields move the RETA index,
a RETA the pools were not computed for).

Flows live in arrays (``_Flows``: core, index, first packet, forwarded fields, split flag), found by
two numba hash tables (``RowIndex``): one from the flow key, one from the 5-tuples a reply may
carry. A NAT trace has about one flow per ten packets, so per-flow Python objects and dicts were
most of a simulation's time; the tables keep it to a few array passes per chunk.
"""
from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import numba
import numpy as np
import z3

from explorer.ir import Analysis, CallPath
from explorer.sharding.allocation import AllocatedKey, Allocation, allocated_keys
from explorer.sharding.pools import owners
from explorer.simulate import arena
from explorer.simulate.classes import NarrowBits, narrow_inputs, narrow_only, test_bits
from explorer.simulate.key_arrays import Unknown, conjuncts, evaluate_term, key_slices, on_devices, packet_guard
from explorer.simulate.mixing import GOLDEN, mix
from explorer.simulate.prefetch import AHEAD, prefetch, prefetch_write
from explorer.simulate.threads import default_threads, run_tasks
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.evaluate import compile_term, fields_env
from explorer.traffic.field_arrays import PacketFields
from explorer.wire import FIELD_BY_NAME

FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")
_DTYPES = {"src_ip": np.uint32, "dst_ip": np.uint32, "src_port": np.uint16, "dst_port": np.uint16}
MAX_EXAMPLES = 5
_SERIAL_ROWS = 1 << 14  # fewer rows than this are looked up in the calling thread alone


@dataclass(frozen=True)
class PoolReport:
    """What the pools of one allocator did over a trace."""

    allocator: str
    sizes: tuple[int, ...]  # per core: its pool
    allocated: tuple[int, ...]  # per core: indices handed out
    exhausted: int  # new flows whose core's pool was used up (the NF drops them)
    wanted: tuple[int, ...]  # per core: new flows that asked it for an index
    replies: int  # packets readdressed to the value their flow's core allocated
    violations: int  # flows whose readdressed replies reached another core than the one that allocated
    examples: tuple[tuple[int, int, int, int, int], ...] = ()  # (value, first packet, its core, reply, its core)
    notes: tuple[str, ...] = ()
    stray: int = 0  # readdressed replies that reached another core than their flow's allocation
    # False: the plan is not sharded by allocation (``unpooled``): each core's own allocator hands
    # out its indices from 0, and the values it gives are not steered back to it
    pooled: bool = True
    field: str = ""  # what the replies carry the value in, and its formula (``"dst_port"``, ``"1024 + i"``)
    formula: str = ""
    objects: tuple[str, ...] = ()  # the objects keyed by the value

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": self.allocator, "sizes": list(self.sizes), "allocated": list(self.allocated),
                "exhausted": self.exhausted, "wanted": list(self.wanted), "replies": self.replies, "violations": self.violations,
                "examples": [list(e) for e in self.examples], "notes": list(self.notes), "stray": self.stray,
                "pooled": self.pooled, "field": self.field, "formula": self.formula, "objects": list(self.objects)}


@dataclass(frozen=True)
class _Emitter:
    """An allocating path: its flow key (None: every packet allocates), the fresh index's symbol and
    what it writes into the four hashable fields."""

    path: CallPath
    key: Optional[z3.ExprRef]
    index: str
    writes: tuple[tuple[str, z3.ExprRef], ...]
    tests: tuple[z3.BoolRef, ...]  # the conjuncts of its condition that packets decide


def _emitter(path: CallPath, allocator: str) -> _Emitter:
    key = next((a.key for a in path.accesses if a.key is not None and symbols_of(a.key)
                and all(s.startswith("p.") for s in symbols_of(a.key))), None)
    index = next(a.results[1] for a in path.accesses
                 if a.call == "nf_dchain_allocate_new_index" and a.object == allocator)
    writes = tuple((f.rss_name, w.value) for w in path.writes
                   if w.value is not None and (f := FIELD_BY_NAME.get(w.field)) is not None and f.rss_name)
    given = fields_env(None, np.zeros(0))  # the symbols packets give (none is made: only its keys are read)
    tests = tuple(c for c in conjuncts(path.condition) if set(compile_term(c).symbols) <= given.keys())
    return _Emitter(path, key, index, writes, tests)


@numba.njit(cache=True, inline="always")
def _start(table, rows, r):
    """Where the probe for ``rows[r]`` starts."""
    h = GOLDEN
    for k in range(rows.shape[1]):
        h = mix(h ^ rows[r, k])
    return np.int64(h & np.uint64(len(table) - 1))


@numba.njit(cache=True, inline="always")
def _slot(table, rows, r, s):
    """The slot of ``rows[r]`` in the table, or the empty slot where it would go, probing from s.
    A slot holds the row's values, then its id + 1 (0: empty), so a probe reads one cache line."""
    width = rows.shape[1]
    mask = len(table) - 1
    while table[s, width] != 0:
        same = True
        for k in range(width):
            if table[s, k] != rows[r, k]:
                same = False
                break
        if same:
            return s
        s = (s + 1) & mask
    return s


@numba.njit(cache=True, inline="always")
def _starts(table, rows):
    """The probe starts of every row, and the first ``AHEAD`` of them prefetched: the probes then
    prefetch the slot ``AHEAD`` rows on as they go, so the cache misses overlap."""
    starts = np.empty(len(rows), dtype=np.int64)
    for r in range(len(rows)):
        starts[r] = _start(table, rows, r)
    for r in range(min(AHEAD, len(rows))):
        prefetch(table, starts[r])
    return starts


@numba.njit(cache=True)
def _add_new(table, rows, valid, values, first_id):
    """Give each valid row whose value the table lacks an id (``values[row]``, or when ``values``
    is empty the next of ``first_id``, ``first_id + 1``, ...), in row order; a value seen earlier
    keeps its id (``dict.setdefault``). Returns the rows given one."""
    width = rows.shape[1]
    out = np.empty(len(rows), dtype=np.int64)
    starts = _starts(table, rows)
    m = 0
    for r in range(len(rows)):
        if r + AHEAD < len(rows):
            prefetch(table, starts[r + AHEAD])
        if not valid[r]:
            continue
        s = _slot(table, rows, r, starts[r])
        if table[s, width] == 0:
            for k in range(width):
                table[s, k] = rows[r, k]
            table[s, width] = np.uint64((values[r] if len(values) else first_id + m) + 1)
            out[m] = r
            m += 1
    return out[:m]


@numba.njit(cache=True, nogil=True)
def _find(table, rows, out):
    """The id of every row's value in ``out``, -1 where the table lacks it."""
    starts = _starts(table, rows)
    for r in range(len(rows)):
        if r + AHEAD < len(rows):
            prefetch(table, starts[r + AHEAD])
        out[r] = np.int64(table[_slot(table, rows, r, starts[r]), rows.shape[1]]) - 1


@numba.njit(cache=True)
def _reinsert(table, old):
    """Put the used slots of ``old`` (values, then id + 1) into the larger empty ``table``: their
    probe starts a block at a time, then each put with the slot ``AHEAD`` on prefetched."""
    width = old.shape[1] - 1
    values = old[:, :width]
    mask = len(table) - 1
    used = np.empty(1024, dtype=np.int64)
    starts = np.empty(1024, dtype=np.int64)
    for b0 in range(0, len(old), 1024):
        m = 0
        for i in range(b0, min(b0 + 1024, len(old))):
            if old[i, width] != 0:
                used[m], starts[m] = i, _start(table, values, i)
                m += 1
        for j in range(min(AHEAD, m)):
            prefetch_write(table, starts[j])
        for j in range(m):
            if j + AHEAD < m:
                prefetch_write(table, starts[j + AHEAD])
            s = starts[j]
            while table[s, width] != 0:
                s = (s + 1) & mask
            for k in range(width + 1):
                table[s, k] = old[used[j], k]


def _guarded(e: _Emitter, narrow: Optional[NarrowBits], fields: PacketFields, devices: np.ndarray,
             env: dict) -> np.ndarray:
    """The packets that may take the path: received on one of its devices, its conjuncts over
    packet fields holding. An allocating path's usually read only the narrow fields (length, IHL,
    protocol, ...): they are then tested once per combination of those (``narrow``, kept from chunk
    to chunk), and a kernel looks each packet's up."""
    if narrow is not None:
        rows = narrow.passing(narrow_inputs(fields, devices), e.path.devices)
        if rows is not None:
            return rows
    if len(e.tests) > 64:
        guard = packet_guard(e.path.condition, env, len(fields))
    else:
        guard = test_bits(e.tests, fields, devices, env) == np.uint64((1 << len(e.tests)) - 1)
    return np.flatnonzero(guard & on_devices(devices, e.path.devices))


class _Gathered:
    """Rows of a chunk's packet fields, each field gathered when it is first read."""

    def __init__(self, fields: PacketFields, rows: np.ndarray):
        self._fields, self._rows = fields, rows

    def __getattr__(self, name: str) -> np.ndarray:
        value = getattr(self._fields, name)[self._rows]
        setattr(self, name, value)
        return value


def _rows_env(fields: PacketFields, devices: np.ndarray, rows: np.ndarray) -> Mapping:
    """``fields_env`` of packets ``rows`` of a chunk: a symbol's fields are gathered, then widened
    (widening the whole chunk first would convert twice the packets, at 8 bytes each)."""
    return fields_env(_Gathered(fields, rows), devices[rows])


class RowIndex:
    """Rows of ``width`` uint64 values, each with an id: an open-addressing hash table kept at most
    half full."""

    def __init__(self, width: int, threads: int = 1):
        """``threads``: how many threads look rows up (``find``)."""
        self.width, self.threads = width, threads
        self.table = np.zeros((1 << 10, width + 1), dtype=np.uint64)
        self.size = 0

    def _room(self, more: int) -> None:
        """Grow, if need be, so that ``more`` rows can come in."""
        if 2 * (self.size + more) <= len(self.table):
            return
        old = self.table
        self.table = arena.zeros((1 << (2 * (self.size + more) - 1).bit_length(), self.width + 1), np.uint64)
        _reinsert(self.table, old)

    def add_new(self, rows: np.ndarray, first_id: int = 0, valid: Optional[np.ndarray] = None,
                values: Optional[np.ndarray] = None) -> np.ndarray:
        """``_add_new``: the positions of the rows that took an id."""
        rows = np.ascontiguousarray(rows, dtype=np.uint64)
        valid = np.ones(len(rows), dtype=bool) if valid is None else np.ascontiguousarray(valid, dtype=bool)
        values = np.zeros(0, dtype=np.int64) if values is None else np.ascontiguousarray(values, dtype=np.int64)
        self._room(len(rows))
        taken = _add_new(self.table, rows, valid, values, first_id)
        self.size += len(taken)
        return taken

    def find(self, rows: np.ndarray) -> np.ndarray:
        """The id of each row, -1 for those the table lacks (rows shared out between the threads)."""
        rows = np.ascontiguousarray(rows, dtype=np.uint64)
        out = np.empty(len(rows), dtype=np.int64)
        cuts = np.linspace(0, len(rows), 2 * self.threads + 1).astype(np.int64).tolist()
        run_tasks([lambda lo=lo, hi=hi: _find(self.table, rows[lo:hi], out[lo:hi]) for lo, hi in zip(cuts, cuts[1:])
                   if hi > lo], self.threads if len(rows) >= _SERIAL_ROWS else 1)
        return out


class _Flows:
    """Per flow (by id, in the order flows came): its core, pool index (-1: the pool was used up),
    first packet, the four fields as this build forwards its first packet, and whether a reply
    reached another core."""

    def __init__(self):
        self.size = 0
        self.core = np.zeros(0, dtype=np.int64)
        self.index = np.zeros(0, dtype=np.int64)
        self.packet = np.zeros(0, dtype=np.int64)
        self.emitted = np.zeros((0, 4), dtype=np.int64)
        self.split = np.zeros(0, dtype=bool)

    def append(self, core: np.ndarray, index: np.ndarray, packet: np.ndarray, emitted: np.ndarray) -> None:
        n = len(core)
        if self.size + n > len(self.core):
            capacity = max(1024, 2 * (self.size + n))
            for name in ("core", "index", "packet", "emitted", "split"):
                old = getattr(self, name)
                new = np.zeros((capacity,) + old.shape[1:], dtype=old.dtype)
                new[:self.size] = old[:self.size]
                setattr(self, name, new)
        end = self.size + n
        self.core[self.size:end], self.index[self.size:end], self.packet[self.size:end] = core, index, packet
        self.emitted[self.size:end] = emitted
        self.size = end


@numba.njit(cache=True)
def _newly_split(flows, cores, flow_core, split):
    """Readdressed replies in order (their flows and cores): the positions of those whose flow they
    split first (a reply on another core than the allocation, the flow not split before), and how
    many replies reached another core in all."""
    out = np.empty(len(flows), dtype=np.int64)
    m = stray = 0
    for r in range(len(flows)):
        f = flows[r]
        if cores[r] != flow_core[f]:
            stray += 1
            if not split[f]:
                split[f] = True
                out[m] = r
                m += 1
    return out[:m], stray


@numba.njit(cache=True)
def _pack_tuples(src, dst, sport, dport, proto, rows, out):
    """The 5-tuples of ``rows`` in two words each (``out``): the addresses, then the ports and
    the protocol (half the table a column per field takes, so half its cache misses)."""
    u = np.uint64
    for r in range(len(rows)):
        i = rows[r]
        out[r, 0] = ((u(src[i]) & u(0xFFFFFFFF)) << u(32)) | (u(dst[i]) & u(0xFFFFFFFF))
        out[r, 1] = ((u(sport[i]) & u(0xFFFF)) << u(48)) | ((u(dport[i]) & u(0xFFFF)) << u(32)) | (u(proto[i]) & u(0xFF))


_EXHAUSTED = np.int64(1 << 62)  # in an answer's flow id: the flow got no index (its replies are not readdressed)


@numba.njit(cache=True)
def _answered(flow, candidates, packet, newer, first):
    """The candidates whose 5-tuple answers a flow (``flow``, -1: none) that got an index and
    whose first packet came before them; only this chunk's flows (ids from ``newer`` on) can
    come after, so only theirs are looked up (the older ones' would be a cache miss each)."""
    out = np.empty(len(flow), dtype=np.bool_)
    for r in range(len(flow)):
        f = flow[r]
        out[r] = f >= 0 and (f & _EXHAUSTED) == 0 and (f < newer or packet[f] < first + candidates[r])
    return out


@numba.njit(cache=True)
def _hand_out(cores, pooled, bounds, given, wanted):
    """Each new flow, in order, takes its core's next pool index (-1 once it is used up)."""
    index = np.empty(len(cores), dtype=np.int64)
    for r in range(len(cores)):
        c = cores[r]
        wanted[c] += 1
        if bounds[c] + given[c] < bounds[c + 1]:
            index[r] = pooled[bounds[c] + given[c]]
            given[c] += 1
        else:
            index[r] = -1
    return index


class PoolModel:
    """Allocations and replies along a trace, for one ``Allocation`` under one RSS plan."""

    def __init__(self, analysis: Analysis, allocation: Allocation, plan: Any, threads: int | None = None,
                 shares: Optional[tuple[int, ...]] = None):
        """``threads``: how many look replies up (default: one per CPU). ``shares``: the plan is not
        sharded by allocation (``unpooled``): core c's own allocator hands out 0 .. shares[c] - 1."""
        self.allocation = allocation
        self.by_allocation = shares is None  # else each core's own indices (``unpooled``)
        if shares is None:
            device = plan.device(allocation.devices[0])
            owner = owners(allocation.capacity, allocation.offset, allocation.stride, allocation.field, device.key,
                           device.fields, device.reta)
            pools = [np.flatnonzero(owner == c) for c in range(plan.cores)]
        else:
            pools = [np.arange(share, dtype=np.int64) for share in shares]
        self.sizes = tuple(len(p) for p in pools)
        self.pooled = np.concatenate(pools).astype(np.int64)  # core c's pool: from bounds[c] to bounds[c + 1]
        self.bounds = np.concatenate(([0], np.cumsum(self.sizes))).astype(np.int64)
        self.given = np.zeros(plan.cores, dtype=np.int64)
        self.wanted = np.zeros(plan.cores, dtype=np.int64)
        self.next_seq = 0  # the sequential NF's next index
        self.emitters = [_emitter(analysis.paths[p], allocation.allocator) for p in allocation.emitting]
        self.narrow = [NarrowBits(e.tests) if len(e.tests) <= 64 and narrow_only(e.tests) else None
                       for e in self.emitters]  # each one's tests per narrow combination, learned as chunks come
        # Flow keys, one column more than the widest key's slices: the first holds the key's
        # slice count, so that keys of different widths never meet.
        slices = [-(-e.key.size() // 64) for e in self.emitters if e.key is not None]
        self.keys = RowIndex(1 + max(slices, default=1))
        # A reply's 5-tuple (``_pack_tuples``) -> its flow's id, with ``_EXHAUSTED`` set when the flow got no index.
        self.answers = RowIndex(2, default_threads() if threads is None else threads)
        self.flows = _Flows()
        self.chunk_flows = 0  # the first flow of the chunk being translated
        self.exhausted = self.replies = self.violations = self.stray = 0
        self.examples: list[tuple[int, int, int, int, int]] = []
        self.notes: list[str] = []

    # ---- along the trace ---------------------------------------------------------------------

    def translate(self, fields: PacketFields, devices: np.ndarray, first: int,
                  cores: np.ndarray | Callable[[np.ndarray], np.ndarray]) -> tuple[PacketFields, np.ndarray, np.ndarray]:
        """The chunk of packets ``first, first + 1, ...`` (the NIC sends packet i to ``cores[i]`` as it
        is, or ``cores(rows)`` gives the cores of packets ``rows``: only new flows' are asked) with
        its replies readdressed; and the readdressed rows with their flows (ids)."""
        n = len(fields)
        if n == 0 or not self.emitters:
            return fields, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        env = fields_env(fields, devices)
        self.chunk_flows = self.flows.size  # flows from here on are this chunk's
        for e, narrow in zip(self.emitters, self.narrow):
            self._allocations(e, narrow, fields, devices, env, first, cores)
        return self._replies(fields, devices, first)

    def _allocations(self, e: _Emitter, narrow: Optional[NarrowBits], fields, devices, env, first: int,
                     cores: np.ndarray) -> None:
        rows = _guarded(e, narrow, fields, devices, env)
        if not len(rows):
            return
        keys = np.zeros((len(rows), self.keys.width), dtype=np.uint64)
        if e.key is None:  # every packet is a flow of its own: its key is its number (count column 0)
            keys[:, 1] = first + rows
        else:
            try:  # over the rows that may allocate only
                slices = key_slices(e.key, _rows_env(fields, devices, rows), len(rows))
            except Unknown as why:
                self._note(f"path {e.path.index}: its flow key uses {why}: its allocations are not modelled")
                return
            keys[:, 0] = len(slices)
            for k, part in enumerate(slices):
                keys[:, 1 + k] = part
        # New flows: keys not seen before, each at its first packet, in packet order.
        picked = rows[self.keys.add_new(keys, self.flows.size)]
        if not len(picked):
            return
        core = np.ascontiguousarray(cores(picked) if callable(cores) else cores[picked], dtype=np.int64)
        index = _hand_out(core, self.pooled, self.bounds, self.given, self.wanted)
        self.exhausted += int(np.count_nonzero(index < 0))
        seq = self.next_seq + np.arange(len(core), dtype=np.int64)
        seq[seq >= self.allocation.capacity] = -1
        self.next_seq += len(core)
        original = np.stack([getattr(fields, name)[picked].astype(np.int64) for name in FIELDS], axis=1)
        proto = fields.proto[picked]
        new = _rows_env(fields, devices, picked)
        emitted = self._emitted(e, new, index, original)  # no index: forwarded as it came
        behind_seq = self._emitted(e, new, seq, original)
        ids = self.flows.size + np.arange(len(picked), dtype=np.int64)
        self.flows.append(core, index, first + picked, emitted)
        # The replies each new flow may get, flow by flow, the first flow to claim a 5-tuple
        # keeping it: as the far end answers without the NF in the way (generated replies), and
        # as it answered the sequential NF.
        answers = np.empty((2 * len(picked), 2), dtype=np.uint64)
        every = np.arange(len(picked), dtype=np.int64)
        for out, sent in ((answers[0::2], original), (answers[1::2], behind_seq)):  # addresses and ports swapped
            _pack_tuples(sent[:, 1], sent[:, 0], sent[:, 3], sent[:, 2], proto, every, out)
        valid = np.ones(len(answers), dtype=bool)
        valid[1::2] = seq >= 0
        self.answers.add_new(answers, valid=valid, values=np.repeat(np.where(index < 0, ids | _EXHAUSTED, ids), 2))

    def _emitted(self, e: _Emitter, env: Mapping, index: np.ndarray, original: np.ndarray) -> np.ndarray:
        """The four fields of the packets ``env`` gives (fields ``original``) as the path forwards
        them, having allocated ``index`` (as they came where ``index`` is -1: the pool was used up)."""
        out = original.copy()
        unchanged = index < 0
        sub = ChainMap({e.index: np.maximum(index, 0).astype(np.uint64)}, env)
        for name, term in e.writes:
            try:
                values = np.broadcast_to(evaluate_term(term, sub), (len(index),)).astype(np.int64)
            except Unknown as why:
                self._note(f"path {e.path.index}: the {name} it writes uses {why}: left as it was")
                continue
            column = FIELDS.index(name)
            out[:, column] = np.where(unchanged, original[:, column], values)
        return out

    def _replies(self, fields: PacketFields, devices: np.ndarray, first: int):
        candidates = np.flatnonzero(on_devices(devices, self.allocation.devices) & fields.is_l4)
        if not len(candidates) or not self.answers.size:
            return fields, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        tuples = np.empty((len(candidates), 2), dtype=np.uint64)
        _pack_tuples(fields.src_ip, fields.dst_ip, fields.src_port, fields.dst_port, fields.proto, candidates, tuples)
        flow = self.answers.find(tuples)
        answered = _answered(flow, candidates, self.flows.packet, self.chunk_flows, first)
        rows, which = candidates[answered], flow[answered]
        emitted = self.flows.emitted[which]
        out = {name: getattr(fields, name).copy() for name in FIELDS}
        for name, column in zip(FIELDS, (1, 0, 3, 2)):  # answer the forwarded packet: swap addresses and ports
            out[name][rows] = emitted[:, column].astype(_DTYPES[name])
        self.replies += len(rows)
        return replace(fields, **out), rows.astype(np.int64), which

    def check(self, rows: np.ndarray, flows: np.ndarray, cores: np.ndarray, first: int) -> None:
        """The readdressed ``rows`` of a chunk (of ``flows``) reached ``cores``: a flow whose reply is
        on another core than its allocation is split."""
        at, stray = _newly_split(np.ascontiguousarray(flows, dtype=np.int64),
                                 np.ascontiguousarray(cores, dtype=np.int64), self.flows.core, self.flows.split)
        self.violations += len(at)
        self.stray += stray
        for r in at[:max(0, MAX_EXAMPLES - len(self.examples))].tolist():
            f = int(flows[r])
            self.examples.append((self.allocation.value(int(self.flows.index[f])), int(self.flows.packet[f]),
                                  int(self.flows.core[f]), first + int(rows[r]), int(cores[r])))

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def report(self) -> PoolReport:
        a = self.allocation
        return PoolReport(a.allocator, self.sizes, tuple(self.given.tolist()), self.exhausted,
                          tuple(self.wanted.tolist()), self.replies, self.violations, tuple(self.examples),
                          tuple(self.notes), self.stray, self.by_allocation, a.field, a.formula, a.objects)


def unpooled(analysis: Analysis, sharding: Any, cores: int) -> tuple[tuple[Allocation, tuple[int, ...]], ...]:
    """The allocators of a shared-nothing plan that is not sharded by allocation (an override took
    the allocated field out of what the reading device hashes, or named the keyed object, or the
    plan was solved without it) whose value packets carry back (``allocated_keys``), with each
    core's share of indices.

    The generated program then gives every core its own allocator, handing out 0, 1, ... of its
    share (``nf_sn_capacity``; the whole capacity when nf_init takes indices from it,
    ``per_core_allocated``), so the same value comes from several cores and nothing steers a reply
    back to the core whose state holds its flow: the pool model runs with those indices as the
    pools, and counts the replies that reach another core. Without it the keys that hold the
    index went unchecked, and a broken plan showed no violation."""
    from explorer.codegen.planning import core_shares, per_core_allocated  # codegen's rule, not its package

    decisions = {o.name: o.decision for o in sharding.objects}
    pooled = {a.allocator for a in sharding.allocations}
    if all(record.allocator in pooled for record in analysis.allocated):
        return ()  # every allocator has its pools (or none carries a value back): no solver call
    grouped: dict[str, list[AllocatedKey]] = {}
    for key in allocated_keys(analysis):
        if (key.allocator not in pooled and key.emitting and decisions.get(key.object) == "shard"
                and decisions.get(key.allocator) == "shard"):
            grouped.setdefault(key.allocator, []).append(key)
    if not grouped:
        return ()
    divided = per_core_allocated(analysis, decisions)
    out = []
    for allocator, keys in sorted(grouped.items()):
        first = keys[0]
        devices = tuple(sorted({d for k in keys for d in k.devices}))
        allocation = Allocation(allocator, first.capacity, first.field, devices, first.offset, first.stride,
                                tuple(k.object for k in keys), "each core's own allocator",
                                tuple(sorted({p for k in keys for p in k.emitting})))
        shares = core_shares(first.capacity, cores) if allocator in divided else (first.capacity,) * cores
        out.append((allocation, shares))
    return tuple(out)
