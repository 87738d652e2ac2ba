"""The dict-based pool model the simulator had before its array tables (commit 7f5b1ad): the
simple reference ``tests/test_pool_reference.py`` checks ``explorer.simulate.pools`` against."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import z3

from explorer.ir import Analysis, CallPath
from explorer.sharding.allocation import Allocation
from explorer.sharding.pools import owners
from explorer.simulate.key_arrays import Unknown, evaluate_term, key_slices, packet_guard
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.evaluate import fields_env
from explorer.traffic.field_arrays import PacketFields
from explorer.wire import FIELD_BY_NAME

FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")
_DTYPES = {"src_ip": np.uint32, "dst_ip": np.uint32, "src_port": np.uint16, "dst_port": np.uint16}
MAX_EXAMPLES = 5


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

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": self.allocator, "sizes": list(self.sizes), "allocated": list(self.allocated),
                "exhausted": self.exhausted, "wanted": list(self.wanted), "replies": self.replies, "violations": self.violations,
                "examples": [list(e) for e in self.examples], "notes": list(self.notes), "stray": self.stray}


@dataclass(frozen=True)
class _Emitter:
    """An allocating path: its flow key (None: every packet allocates), the fresh index's symbol and
    what it writes into the four hashable fields."""

    path: CallPath
    key: Optional[z3.ExprRef]
    index: str
    writes: tuple[tuple[str, z3.ExprRef], ...]


def _emitter(path: CallPath, allocator: str) -> _Emitter:
    key = next((a.key for a in path.accesses if a.key is not None and symbols_of(a.key)
                and all(s.startswith("p.") for s in symbols_of(a.key))), None)
    index = next(a.results[1] for a in path.accesses
                 if a.call == "nf_dchain_allocate_new_index" and a.object == allocator)
    writes = tuple((f.rss_name, w.value) for w in path.writes
                   if w.value is not None and (f := FIELD_BY_NAME.get(w.field)) is not None and f.rss_name)
    return _Emitter(path, key, index, writes)


def distinct_rows(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a 2-D integer array that hold each distinct value, first ones, in order of
    appearance, and for every row the number of its distinct value in that order (a lexsort:
    ``np.unique(axis=0)`` sorts a structured view, several times slower)."""
    n = len(columns)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = np.lexsort(columns.T[::-1])
    ranked = columns[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = np.any(ranked[1:] != ranked[:-1], axis=1)
    group = np.cumsum(starts) - 1
    first = np.minimum.reduceat(order, np.flatnonzero(starts))  # stable: the first row of each group
    by_appearance = np.argsort(first, kind="stable")
    renumber = np.empty(len(first), dtype=np.int64)
    renumber[by_appearance] = np.arange(len(first))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = renumber[group]
    return first[by_appearance].astype(np.int64), inverse


@dataclass
class _Flow:
    core: int
    index: int  # -1: the pool was used up
    packet: int  # its first packet
    emitted: tuple[int, int, int, int]  # (src_ip, dst_ip, src_port, dst_port) as this build forwards it
    split: bool = False


class PoolModel:
    """Allocations and replies along a trace, for one ``Allocation`` under one RSS plan."""

    def __init__(self, analysis: Analysis, allocation: Allocation, plan: Any):
        self.allocation = allocation
        device = plan.device(allocation.devices[0])
        owner = owners(allocation.capacity, allocation.offset, allocation.stride, allocation.field, device.key,
                       device.fields, device.reta)
        self.pools = [np.flatnonzero(owner == c) for c in range(plan.cores)]
        self.given = [0] * plan.cores
        self.wanted = [0] * plan.cores
        self.next_seq = 0  # the sequential NF's next index
        self.emitters = [_emitter(analysis.paths[p], allocation.allocator) for p in allocation.emitting]
        self.flows: dict[tuple, _Flow] = {}
        self.answers: dict[tuple, tuple] = {}  # a reply's 5-tuple as a trace may have it -> flow key
        self.exhausted = self.replies = self.violations = self.stray = 0
        self.examples: list[tuple[int, int, int, int, int]] = []
        self.notes: list[str] = []

    # ---- along the trace ---------------------------------------------------------------------

    def translate(self, fields: PacketFields, devices: np.ndarray, first: int,
                  cores: np.ndarray) -> tuple[PacketFields, np.ndarray, list[tuple]]:
        """The chunk of packets ``first, first + 1, ...`` (the NIC sends packet i to ``cores[i]`` as it
        is) with its replies readdressed; and the readdressed rows with their flows."""
        n = len(fields)
        if n == 0 or not self.emitters:
            return fields, np.zeros(0, dtype=np.int64), []
        env = fields_env(fields, devices)
        for e in self.emitters:
            self._allocations(e, fields, devices, env, first, cores)
        return self._replies(fields, devices, first)

    def _allocations(self, e: _Emitter, fields, devices, env, first: int, cores: np.ndarray) -> None:
        n = len(fields)
        rows = np.flatnonzero(packet_guard(e.path.condition, env, n) & np.isin(devices, e.path.devices))
        if not len(rows):
            return
        if e.key is None:
            firsts, keys = rows, [(-1, first + int(r)) for r in rows]
        else:
            try:
                slices = np.stack([s[rows] for s in key_slices(e.key, env, n)], axis=1)
            except Unknown as why:
                self._note(f"path {e.path.index}: its flow key uses {why}: its allocations are not modelled")
                return
            at, _ = distinct_rows(slices)
            firsts, keys = rows[at], [tuple(row) for row in slices[at].tolist()]
        fresh = [k for k, key in enumerate(keys) if key not in self.flows]
        if not fresh:
            return
        picked = firsts[fresh]
        new_keys = [keys[k] for k in fresh]
        core = cores[picked].astype(np.int64)
        # Each core hands out its pool in order: a new flow takes its core's next index.
        order = np.argsort(core, kind="stable")
        counts = np.bincount(core, minlength=len(self.pools))
        rank = np.empty(len(core), dtype=np.int64)
        rank[order] = np.arange(len(core)) - np.repeat(np.cumsum(counts) - counts, counts)
        given = np.array(self.given, dtype=np.int64)[core] + rank
        sizes = np.array([len(p) for p in self.pools], dtype=np.int64)
        index = np.full(len(core), -1, dtype=np.int64)
        for c in np.flatnonzero(counts).tolist():
            mine = core == c
            inside = mine & (given < sizes[c])
            index[inside] = self.pools[c][given[inside]]
            self.wanted[c] += int(counts[c])
            taken = int(inside.sum())
            self.given[c] += taken
            self.exhausted += int(counts[c]) - taken
        seq = self.next_seq + np.arange(len(core), dtype=np.int64)
        seq[seq >= self.allocation.capacity] = -1
        self.next_seq += len(core)
        original = np.stack([getattr(fields, name)[picked].astype(np.int64) for name in FIELDS], axis=1)
        proto = fields.proto[picked].astype(np.int64).tolist()
        emitted = self._emitted(e, env, picked, index, original)
        emitted[index < 0] = original[index < 0]  # no index: forwarded as it came
        behind_seq = self._emitted(e, env, picked, seq, original).tolist()
        for k, (key, t, out, c, i, row, q) in enumerate(zip(new_keys, original.tolist(), emitted.tolist(),
                                                          core.tolist(), index.tolist(), picked.tolist(),
                                                          seq.tolist())):
            self.flows[key] = _Flow(c, i, first + row, tuple(out))
            self.answers.setdefault((t[1], t[0], t[3], t[2], proto[k]), key)  # without the NF (generated replies)
            if q >= 0:
                s = behind_seq[k]
                self.answers.setdefault((s[1], s[0], s[3], s[2], proto[k]), key)  # behind the sequential NF

    def _emitted(self, e: _Emitter, env: dict, rows: np.ndarray, index: np.ndarray,
                 original: np.ndarray) -> np.ndarray:
        """The four fields of packets ``rows`` as the path forwards them, having allocated ``index``."""
        out = original.copy()
        sub = {name: v[rows] for name, v in env.items()}
        sub[e.index] = np.maximum(index, 0).astype(np.uint64)
        for name, term in e.writes:
            try:
                values = np.broadcast_to(evaluate_term(term, sub), (len(rows),)).astype(np.int64)
            except Unknown as why:
                self._note(f"path {e.path.index}: the {name} it writes uses {why}: left as it was")
                continue
            out[:, FIELDS.index(name)] = values
        return out

    def _replies(self, fields: PacketFields, devices: np.ndarray, first: int):
        candidates = np.flatnonzero(np.isin(devices, self.allocation.devices) & fields.is_l4)
        if not len(candidates) or not self.answers:
            return fields, np.zeros(0, dtype=np.int64), []
        tuples = np.stack([*(getattr(fields, name)[candidates].astype(np.int64) for name in FIELDS),
                           fields.proto[candidates].astype(np.int64)], axis=1)
        at, inverse = distinct_rows(tuples)
        # Per distinct 5-tuple: the flow it answers, and that flow's index, first packet and the
        # fields it was forwarded with; then every candidate row at once.
        keys = [self.answers.get(t) for t in map(tuple, tuples[at].tolist())]
        found = [self.flows[k] if k is not None else None for k in keys]
        index = np.array([f.index if f is not None else -1 for f in found], dtype=np.int64)
        since = np.array([f.packet if f is not None else -1 for f in found], dtype=np.int64)
        emitted = np.array([f.emitted if f is not None else (0, 0, 0, 0) for f in found], dtype=np.int64)
        answered = (index[inverse] >= 0) & (since[inverse] < first + candidates)  # allocated, and before
        rows = candidates[answered]
        which = inverse[answered]
        out = {name: getattr(fields, name).copy() for name in FIELDS}
        for name, column in zip(FIELDS, (1, 0, 3, 2)):  # answer the forwarded packet: swap addresses and ports
            out[name][rows] = emitted[which, column].astype(_DTYPES[name])
        self.replies += len(rows)
        return replace(fields, **out), rows.astype(np.int64), [keys[k] for k in which.tolist()]

    def check(self, rows: np.ndarray, flows: list[tuple], cores: np.ndarray, first: int) -> None:
        """The readdressed ``rows`` of a chunk (of ``flows``) reached ``cores``: a flow whose reply is
        on another core than its allocation is split."""
        for row, key, core in zip(rows.tolist(), flows, cores.tolist()):
            f = self.flows[key]
            self.stray += core != f.core
            if core != f.core and not f.split:
                f.split = True
                self.violations += 1
                if len(self.examples) < MAX_EXAMPLES:
                    self.examples.append((self.allocation.value(f.index), f.packet, f.core, first + row, int(core)))

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def report(self) -> PoolReport:
        return PoolReport(self.allocation.allocator, tuple(len(p) for p in self.pools), tuple(self.given),
                          self.exhausted, tuple(self.wanted), self.replies, self.violations, tuple(self.examples),
                          tuple(self.notes), self.stray)
