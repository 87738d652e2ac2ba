"""Per-core load and sharding violations of an RSS plan on a trace.

Packets are steered as the NIC would (``steering``). For every object that shared-nothing keeps
per core, each keyed access computes its state key from the packet fields with the analysis' own
key terms, for the packets that may take the access's path; a key touched from more than one core
is a sharding violation: two cores would hold (or miss) the same entry. Under locks and tm every
object has one shared copy, so nothing can be split: the report shows contention instead, the
packets that take the write lock (``writes``).

Traces are fed in chunks (``Simulation.add``). A chunk is only counted into packet classes
(``classes``): one hash-table insertion per packet, memory by distinct classes. Everything else is
computed once per class when the report is made (``report``), from a ``Classes`` value that also
merges exactly with the classes of other chunks, so chunks counted apart (on Dask workers) give
the same report as one serial pass.
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from explorer.errors import TrafficError
from explorer.ir import Analysis
from explorer.rss.key_solver import RssPlan
from explorer.sharding.allocation import ALLOCATE_CALL
from explorer.sharding.constraints import keyed_accesses, written_objects
from explorer.sharding.decisions import ShardingPlan
from explorer.simulate import arena
from explorer.simulate import writes as write_model
from explorer.simulate.classes import NARROW_CLASS_SYMBOLS, Classes, ClassTable, Layout
from explorer.simulate.key_arrays import Unknown, conjuncts, evaluate_term, key_slices, on_devices
from explorer.simulate.key_values import KeyFields, read_key
from explorer.simulate.pools import PoolModel, PoolReport, unpooled
from explorer.simulate.rebalance import imbalance, per_core, rebalance, round_robin
from explorer.simulate.steering import Hasher, steer
from explorer.simulate.threads import default_threads, in_background, run_tasks
from explorer.simulate.touches import KeyTable, Touches
from explorer.symbex.evaluate import compile_term
from explorer.traffic.field_arrays import PacketFields

MAX_EXAMPLES = 5
_HASHED = ("src_ip", "dst_ip", "src_port", "dst_port", "is_ipv4", "is_l4")  # what steering reads of a packet
SHARED_NOTHING = "shared-nothing"
SHARED_STRATEGIES = ("locks", "tm")  # one shared copy of every object


@dataclass(frozen=True)
class Violation:
    """A state entry that packets on several cores touch."""

    object: str
    key: str  # hex of the key (or index) bytes
    cores: tuple[int, ...]
    packets: tuple[int, ...]  # one packet number per core (trace order)
    fields: Optional[KeyFields] = None  # the key as the packet fields it was made of, when known

    @property
    def key_text(self) -> str:
        """The key as people read it: its fields (``{src_ip: 10.202.6.8, ...}``), else its bytes."""
        return self.fields.text if self.fields is not None else self.key

    def to_dict(self) -> dict[str, Any]:
        named = self.fields.fields if self.fields is not None else ()
        return {"object": self.object, "key": self.key, "key_text": self.key_text,
                "fields": [{"name": name, "value": value} for name, value in named],
                "fields_device": self.fields.device if self.fields is not None else None,
                "cores": list(self.cores), "packets": list(self.packets)}


@dataclass(frozen=True)
class Unchecked:
    """An object some of whose keys read ``symbol``, which the packets alone do not give (a state
    value, ``now``), so the simulator could not say which entry they name; ``allocator``: the
    symbol is an index that allocator hands out as the NF runs."""

    object: str
    symbol: str
    allocator: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "symbol": self.symbol, "allocator": self.allocator}


@dataclass(frozen=True)
class Rebalanced:
    reta: tuple[int, ...]
    per_core: tuple[int, ...]
    imbalance: float
    violations: int

    def to_dict(self) -> dict[str, Any]:
        return {"reta": list(self.reta), "per_core": list(self.per_core), "imbalance": round(self.imbalance, 4),
                "violations": self.violations}


@dataclass(frozen=True)
class SimulationReport:
    packets: int
    cores: int
    per_core: tuple[int, ...]
    flows_per_core: tuple[int, ...]
    imbalance: float
    buckets: tuple[int, ...]  # packets per RETA entry (all devices)
    reta: tuple[int, ...]
    violation_count: int  # distinct state keys touched from more than one core
    violations: tuple[Violation, ...]  # examples
    unchecked: tuple[str, ...]  # accesses whose keys the packets alone do not determine
    rebalanced: Optional[Rebalanced] = None
    seconds: float = field(default=0.0, compare=False)
    strategy: str = SHARED_NOTHING
    contention: Optional[write_model.Contention] = None  # locks and tm: the write lock
    classes: int = field(default=0, compare=False)  # distinct packet classes (what memory follows)
    checked_packets: int = field(default=0, compare=False)  # packets that compute a state key checked here
    # Replicated and locked objects that packets write: the share of packets whose headers let them
    # take a path that writes the object (what decides whether replicating it pays)
    write_shares: tuple[tuple[str, float], ...] = ()
    pools: tuple[PoolReport, ...] = ()  # sharding by allocation: what each allocator's pools did
    # per device that got packets: (device, packets, distinct RETA entries they reached), which bounds
    # the cores any RETA could give them
    reach: tuple[tuple[int, int, int], ...] = ()
    warnings: tuple[str, ...] = ()  # what the plan cannot spread of this trace (``explorer.rss.spread``)
    # the objects behind ``unchecked``: the violation count says nothing about their keys
    unchecked_objects: tuple[Unchecked, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "cores": self.cores,
            "strategy": self.strategy,
            "per_core": list(self.per_core),
            "flows_per_core": list(self.flows_per_core),
            "imbalance": round(self.imbalance, 4),
            "buckets": list(self.buckets),
            "reta": list(self.reta),
            "violations": {"count": self.violation_count, "examples": [v.to_dict() for v in self.violations]},
            "unchecked": list(self.unchecked),
            "unchecked_objects": [u.to_dict() for u in self.unchecked_objects],
            "rebalanced": self.rebalanced.to_dict() if self.rebalanced else None,
            "contention": self.contention.to_dict() if self.contention else None,
            "write_shares": {name: round(share, 6) for name, share in self.write_shares},
            "pools": [p.to_dict() for p in self.pools],
            "reach": {str(dev): {"packets": packets, "reta_entries": entries} for dev, packets, entries in self.reach},
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class _KeyedTerm:
    """One key term of a per-core object with every path condition under which packets of
    ``devices`` compute it (the same key is usually built on many paths)."""

    object: str
    devices: tuple[int, ...]
    key: Any
    conditions: tuple[Any, ...]
    where: str


def sharded_objects(sharding: ShardingPlan) -> tuple[str, ...]:
    return tuple(d.name for d in sharding.objects if d.decision == "shard")


def _keyed_terms(analysis: Analysis, sharded: tuple[str, ...], strategy: str) -> list[_KeyedTerm]:
    """Key terms of the objects the strategy keeps per core: the ``sharded`` ones under
    shared-nothing, none under locks and tm."""
    if strategy in SHARED_STRATEGIES:
        return []
    written = written_objects(analysis)
    groups: dict[tuple, list] = {}
    for name in sharded:
        for k in keyed_accesses(analysis, name, written):
            if k.kind == "packet":
                ident = (name, k.access.key.get_id(), k.path.devices)
                groups.setdefault(ident, [name, k.path.devices, k.access.key, [], k.where])[3].append(
                    k.path.condition)
    return [_KeyedTerm(obj, devs, key, tuple(conds), where) for obj, devs, key, conds, where in groups.values()]


class Simulation:
    """Accumulates chunks of a trace (in trace order); ``report()`` gives the totals."""

    def __init__(self, analysis: Analysis, sharding: ShardingPlan | tuple[str, ...], plan: RssPlan,
                 strategy: str = SHARED_NOTHING, threads: int | None = None):
        """``sharding``: the plan, or just the names of its sharded objects; ``threads``: how many
        count the packet classes (default: one per CPU; the report is the same for any number)."""
        self.analysis, self.plan, self.strategy, self.threads = analysis, plan, strategy, threads
        self.sharded = sharding if isinstance(sharding, tuple) else sharded_objects(sharding)
        self.keyed = _keyed_terms(analysis, self.sharded, strategy)
        self.writes = write_model.path_writes(analysis) if strategy in SHARED_STRATEGIES else ()
        self.writers = {} if isinstance(sharding, tuple) else writer_paths(analysis, sharding)
        tests = [c for kp in self.keyed for cond in kp.conditions for c in conjuncts(cond)]
        tests += [c for cond in write_model.conditions(self.writes) for c in conjuncts(cond)]
        tests += [c for paths in self.writers.values() for _, cond in paths for c in conjuncts(cond)]
        self.layout = Layout.of([kp.key for kp in self.keyed] + write_model.key_terms(self.writes), tests)
        self.hasher = Hasher(plan)
        self.table: Optional[ClassTable] = ClassTable(self.layout, threads=threads)
        self._classes: Optional[Classes] = None  # what the table held when a report released it
        self._counting: Optional[Future] = None  # the last chunk's counting, in the background
        self.packets = 0
        # Sharding by allocation: the replies to what each core's pool handed out (explorer.simulate.pools).
        # A shared-nothing plan that is not sharded by allocation still allocates per core: the same
        # model, each core's own indices as its pool (``unpooled``).
        pooled = isinstance(sharding, ShardingPlan) and strategy == SHARED_NOTHING
        self.pools = [PoolModel(analysis, a, plan, threads) for a in (sharding.allocations if pooled else ())]
        self.pools += [PoolModel(analysis, a, plan, threads, shares=shares)
                       for a, shares in (unpooled(analysis, sharding, plan.cores) if pooled else ())]

    def add(self, fields: PacketFields, devices: np.ndarray) -> None:
        """The next ``len(fields)`` packets of the trace, received on ``devices``. With more than
        one thread they are counted in the background while the caller goes on (sharding by
        allocation readdresses the next chunk meanwhile): ``fields`` and ``devices`` must not change
        afterwards (the simulator's sources always make new arrays)."""
        n = len(fields)
        if n == 0:
            return
        devices = np.asarray(devices, dtype=np.int64)
        if len(devices) != n:
            raise TrafficError(f"{n} packets but {len(devices)} device numbers")
        self.hasher.check_devices(devices)
        if self.pools:
            fields = self._readdressed(fields, devices)
        self._counted()
        if self.table is None:  # a report released it: counting goes on from its classes
            self.table = ClassTable(self.layout, threads=self.threads)
            self.table.add_classes(self._classes)
        table, base = self.table, self.packets
        if table.threads > 1:  # counted while the caller reads or makes the next chunk
            self._counting = in_background(lambda: table.add(fields, devices, base))
        else:
            table.add(fields, devices, base)
        self.packets += n

    def _counted(self) -> None:
        """Wait until the last chunk is counted (raising what its counting raised)."""
        pending, self._counting = self._counting, None
        if pending is not None:
            pending.result()

    def _readdressed(self, fields: PacketFields, devices: np.ndarray) -> PacketFields:
        arrived = fields  # as the NIC receives them: where the packets that allocate go
        for model in self.pools:
            fields, rows, flows = model.translate(fields, devices, self.packets,
                                                  lambda rows: self._cores(arrived, devices, rows))
            if len(rows):  # where the readdressed packets go now (the others did not change)
                model.check(rows, flows, self._cores(fields, devices, rows), self.packets)
        return fields

    def _cores(self, fields: PacketFields, devices: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The cores the NIC sends packets ``rows`` to (only what it hashes is gathered)."""
        hashed = SimpleNamespace(**{name: getattr(fields, name)[rows] for name in _HASHED})
        return steer(self.plan, hashed, devices[rows], hasher=self.hasher).cores

    def classes(self) -> Classes:
        """What the chunks so far amount to: merge it with later chunks' with ``Classes.merge``."""
        self._counted()
        return self._classes if self.table is None else self.table.classes()

    def report(self, rebalance_reta: bool = False, started: float | None = None) -> SimulationReport:
        """The totals so far. The class table's slots and scratch are released first (the report
        reads only the listed classes; it is the larger half of the peak memory otherwise)."""
        classes = self.classes()
        self.table, self._classes = None, classes
        out = report(self.analysis, self.sharded, self.plan, classes, self.strategy, rebalance_reta,
                     started, self.writers, self.threads)
        return with_pools(out, self.pools) if self.pools else out


def writer_paths(analysis: Analysis, sharding: ShardingPlan) -> dict[str, list]:
    """Replicated or locked objects that packets write: (devices, condition) of each writing path."""
    by_index = {p.index: p for p in analysis.paths}
    return {o.name: [(by_index[i].devices, by_index[i].condition) for i in o.writers]
            for o in sharding.objects if o.writers and o.decision in ("replicate", "lock")}


def with_pools(out: SimulationReport, models: list[PoolModel]) -> SimulationReport:
    """``out`` with the pools' report: their violations counted (a reply on another core than its
    flow's allocation), the accesses they check no longer listed as unchecked."""
    pools = tuple(m.report() for m in models)
    indices = {e.index for m in models for e in m.emitters}
    unchecked = tuple(u for u in out.unchecked if not any(u.endswith(f"(key uses {i})") for i in indices))
    objects = tuple(u for u in out.unchecked_objects if u.symbol not in indices)
    # An example's key as the reply names it (``{dst_port: 1024} (fields of a device 1 packet)``).
    examples = [Violation(m.allocation.objects[0], f"{value:x}", (c1, c2), (p1, p2),
                          KeyFields(((m.allocation.field, str(value)),), m.allocation.devices[0]))
                for m in models for value, p1, c1, p2, c2 in m.examples]
    count = out.violation_count + sum(p.violations for p in pools)
    return replace(out, violation_count=count, violations=(out.violations + tuple(examples))[:MAX_EXAMPLES],
                   unchecked=unchecked, unchecked_objects=objects, pools=pools)


class EmptyTraffic(TrafficError):
    """No packet reached the simulation (an empty capture, or one of runts only): the caller, who
    knows where the packets were to come from, can say so."""


def report(analysis: Analysis, sharding: ShardingPlan | tuple[str, ...], plan: RssPlan, classes: Classes,
           strategy: str = SHARED_NOTHING, rebalance_reta: bool = False,
           started: float | None = None, writers: Optional[dict[str, list]] = None,
           threads: int | None = None) -> SimulationReport:
    """The report of a trace counted into ``classes`` (by ``Simulation`` or merged from chunks).
    ``writers`` (``writer_paths``): the objects whose write share to measure. The key tables of
    the sharded objects and the flow table are filled side by side on up to ``threads`` threads
    (default: one per CPU); the report is the same for any number."""
    if classes.packets == 0:
        raise EmptyTraffic("the traffic is empty: nothing to simulate")
    sharded = sharding if isinstance(sharding, tuple) else sharded_objects(sharding)
    sim = _ClassView(analysis, sharded, plan, classes, strategy)
    threads = default_threads() if threads is None else threads
    sim.fill_tables(threads if sim.n >= _THREADED_CLASSES else 1)
    reta = sim.reta
    loads = per_core(sim.bucket_load, reta, plan.cores)
    count, examples = sim.violations(reta)
    rebalanced = None
    if rebalance_reta:
        reta2 = rebalance(sim.bucket_load, plan.cores)
        loads2 = per_core(sim.bucket_load, reta2, plan.cores)
        rebalanced = Rebalanced(tuple(int(c) for c in reta2), tuple(int(x) for x in loads2), imbalance(loads2),
                                sim.violations(reta2, examples=False)[0])
    return SimulationReport(
        classes.packets, plan.cores, tuple(int(x) for x in loads), sim.flows_per_core(reta), imbalance(loads),
        tuple(int(b) for b in sim.bucket_load), tuple(int(c) for c in reta), count, examples,
        tuple(sorted(sim.unchecked)), rebalanced, time.perf_counter() - started if started is not None else 0.0,
        strategy, sim.contention(reta) if strategy in SHARED_STRATEGIES else None, len(classes),
        int(classes.count[sim.checked].sum()), sim.write_shares(writers or {}), reach=sim.reach,
        unchecked_objects=tuple(sorted(sim.unchecked_objects, key=lambda u: (u.object, u.symbol))))


_PART_CLASSES = 1 << 18  # classes whose symbols, guards and keys a report pass holds at a time
_THREADED_CLASSES = 1 << 14  # fewer classes than this are reported on in the calling thread alone


@dataclass(eq=False)
class _Part:
    """Classes ``start:stop`` and what terms read over them (symbols made when read, conjunct
    outcomes): a report pass holds one part at a time, so its memory follows the part, not the
    millions of classes.

    Most conjuncts of a path condition read only narrow symbols (device, protocol, ether type,
    IHL, fragment flag, the length tests' bits), which a part's classes share a few dozen
    combinations of, their *signatures* (``Layout.signatures``): those are decided once per
    signature and only a guard's outcome is spread to the classes."""

    start: int
    stop: int
    keys: np.ndarray
    layout: Layout
    env: Any = field(init=False)  # the classes' symbols (``Layout.env``)
    memo: dict = field(default_factory=dict)  # conjunct id -> ("signature" | "class", value) or None
    # Per part (by its range of classes), its signatures: (ids, symbols, length-test bits, devices),
    # made when first needed and kept for the passes over the same part (one per sharded object).
    signatures: dict = field(default_factory=dict)

    def __post_init__(self):
        self.env = self.layout.env(self.keys)[0]

    def __len__(self) -> int:
        return self.stop - self.start

    def _signature(self) -> tuple:
        if (self.start, self.stop) not in self.signatures:
            ids, rows = self.layout.signatures(self.keys)
            env, devices = self.layout.env(rows)
            self.signatures[self.start, self.stop] = (ids, env, self.layout.length_values(rows), devices)
        return self.signatures[self.start, self.stop]

    def _conjunct(self, c) -> Optional[tuple[str, np.ndarray]]:
        """A conjunct's outcome per signature or per class (None: assumed to hold: it reads what
        packets do not give)."""
        key = c.get_id()
        if key not in self.memo:
            _, env, lengths, signature_devices = self._signature()
            try:
                if key in lengths:
                    self.memo[key] = ("signature", lengths[key])
                elif set(compile_term(c).symbols) <= NARROW_CLASS_SYMBOLS:
                    self.memo[key] = ("signature", np.broadcast_to(evaluate_term(c, env),
                                                                 (len(signature_devices),)))
                else:
                    self.memo[key] = ("class", np.broadcast_to(evaluate_term(c, self.env), (len(self),)))
            except Unknown:
                self.memo[key] = None
        return self.memo[key]

    def guard(self, devices: tuple[int, ...], conditions, split: dict) -> np.ndarray:
        """Classes that may take one of the paths ``conditions`` (each condition's conjuncts found
        once in ``split``) on one of ``devices``."""
        ids, _, _, signature_devices = self._signature()
        per_signature = np.zeros(len(signature_devices), dtype=bool)
        per_class = None
        for condition in conditions:
            ident = condition.get_id()
            if ident not in split:  # the condition kept: its id stays its own
                split[ident] = (condition, conjuncts(condition))
            narrow, wide = np.ones(len(signature_devices), dtype=bool), None
            for c in split[ident][1]:
                found = self._conjunct(c)
                if found is None:
                    continue
                if found[0] == "signature":
                    narrow &= found[1]
                else:
                    wide = found[1].copy() if wide is None else wide & found[1]
            if wide is None:
                per_signature |= narrow
            else:
                wide &= narrow[ids]
                per_class = wide if per_class is None else per_class | wide
        on = on_devices(signature_devices, devices)
        mask = (per_signature & on)[ids]
        return mask if per_class is None else mask | (per_class & on[ids])


class _ClassView:
    """The questions of a report, answered once per packet class."""

    def __init__(self, analysis: Analysis, sharded: tuple[str, ...], plan: RssPlan, classes: Classes, strategy: str):
        self.plan, self.classes, self.strategy = plan, classes, strategy
        self.keyed = _keyed_terms(analysis, sharded, strategy)
        self.writes = write_model.path_writes(analysis) if strategy in SHARED_STRATEGIES else ()
        self.n = len(classes)
        steering = Hasher(plan).class_steering(classes.keys, classes.count, plan.nic.reta_size)
        self.buckets, self.bucket_load, self.reach = steering.buckets, steering.load, steering.reach
        retas = {d.reta for d in plan.devices}
        self.reta = np.asarray(next(iter(retas)) if len(retas) == 1 else round_robin(plan.nic.reta_size, plan.cores),
                               dtype=np.int64)
        self.unchecked: set[str] = set()
        self.unchecked_objects: set[Unchecked] = set()
        self._allocated = {a.results[1]: a.object for p in analysis.paths for a in p.accesses
                           if a.call == ALLOCATE_CALL and len(a.results) >= 2}  # index symbol -> its allocator
        self.checked = np.zeros(self.n, dtype=bool)  # classes whose packets compute a checked key
        self._touches: Optional[dict[str, Touches]] = None
        self._flows: Optional[KeyTable] = None
        self._key_bits: dict[str, int] = {}  # per object, its widest key term (how examples are printed)
        self._whole: Optional[_Part] = None
        self._split: dict = {}  # each path condition's conjuncts (_Part.guard), found once for all parts
        self._signatures: dict = {}  # each part's class signatures (_Part.signatures)

    def _part(self, start: int, stop: int) -> _Part:
        return _Part(start, stop, self.classes.keys[start:stop], self.classes.layout, signatures=self._signatures)

    def _parts(self):
        for start in range(0, self.n, _PART_CLASSES):
            yield self._part(start, min(start + _PART_CLASSES, self.n))

    def _all(self) -> _Part:
        """Every class as one part (contention under locks and tm, which has no per-core keys)."""
        if self._whole is None:
            self._whole = self._part(0, self.n)
        return self._whole

    def _guard(self, part: _Part, devices: tuple[int, ...], conditions) -> np.ndarray:
        return part.guard(tuple(devices), conditions, self._split)

    def _keys(self, part: _Part, term, where: str, obj: str) -> Optional[list[np.ndarray]]:
        try:
            return key_slices(term, part.env, len(part))
        except Unknown as why:
            self.unchecked.add(f"{where} (key uses {why})")
            self.unchecked_objects.add(Unchecked(obj, str(why), self._allocated.get(str(why), "")))
            return None

    @staticmethod
    def _rows(part: _Part, width: int, terms: list[tuple[np.ndarray, list[np.ndarray]]]) -> tuple:
        """One object's (mask, key slices) terms over ``part`` as key-table rows: the terms of a
        class side by side (so each key sees its packets in trace order), their masks, and how many
        rows a class has."""
        keys = np.zeros((len(part), len(terms), width), dtype=np.uint64)
        masks = np.zeros((len(part), len(terms)), dtype=bool)
        for t, (mask, slices) in enumerate(terms):
            masks[:, t] = mask
            for k, values in enumerate(slices):
                keys[:, t, k] = values
        return keys.reshape(-1, width), masks.reshape(-1), len(terms)

    def _touch(self, table: KeyTable, part: _Part, rows: tuple) -> None:
        """Record ``_rows`` of ``part`` in ``table``, class by class in first-packet order."""
        keys, masks, per = rows
        at = slice(part.start, part.stop)
        table.touch(keys, masks, self.buckets[at], self.classes.first[at], per=per)

    def _object_rows(self, obj: str, terms: list[_KeyedTerm], part: _Part) -> Optional[tuple]:
        """The key-table rows of ``obj`` over ``part`` (None when no class of it computes a key)."""
        found = []
        for kp in terms:
            mask = self._guard(part, kp.devices, kp.conditions)
            if not mask.any():
                continue
            slices = self._keys(part, kp.key, kp.where, obj)
            if slices is not None:
                found.append((mask, slices))
                self._key_bits[obj] = max(self._key_bits.get(obj, 0), kp.key.size())
                self.checked[part.start:part.stop] |= mask
        return self._rows(part, max(-(-kp.key.size() // 64) for kp in terms), found) if found else None

    def _flow_rows(self, part: _Part) -> tuple:
        """The flow table's rows over ``part``: each class's 5-tuple (protocol, addresses, ports)."""
        k = self.classes.keys[part.start:part.stop]
        flows = np.empty((len(k), 2), dtype=np.uint64)
        flows[:, 0] = k[:, 0]
        np.right_shift(k[:, 1], np.uint64(24), out=flows[:, 1])
        return flows, np.ones(len(k), dtype=bool), 1

    def fill_tables(self, threads: int = 1) -> None:
        """Fill the sharded objects' key tables (keeping, per object, only its split keys: all that
        the violation check reads) and the flow table. Tables are filled part by part in
        first-packet order, one object's at a time (the flow table beside the first one's): while
        one part's rows are recorded (numba, without the GIL), the next part's are evaluated
        (numpy over its classes), on two threads when ``threads`` allows."""
        if self._touches is not None:
            return
        by_object: dict[str, list[_KeyedTerm]] = {}
        for kp in self.keyed:
            by_object.setdefault(kp.object, []).append(kp)
        touches: dict[str, Touches] = {}
        flows = KeyTable(2, self.n)
        passes = sorted(by_object) or [None]  # no object to check: a pass for the flow table alone
        for k, obj in enumerate(passes):
            tables: dict[str, KeyTable] = {}

            def evaluate(part: _Part, obj=obj, k=k) -> tuple:
                rows = self._object_rows(obj, by_object[obj], part) if obj is not None else None
                return part, rows, self._flow_rows(part) if k == 0 else None

            def record(evaluated: tuple, obj=obj, tables=tables) -> None:
                part, rows, _ = evaluated
                if rows is not None:
                    if obj not in tables:
                        tables[obj] = KeyTable(rows[0].shape[1], self.n)
                    self._touch(tables[obj], part, rows)

            def record_flows(evaluated: tuple) -> None:
                part, _, flow_rows = evaluated
                if flow_rows is not None:
                    self._touch(flows, part, flow_rows)

            _pipelined([lambda start=start: self._part(start, min(start + _PART_CLASSES, self.n))
                        for start in range(0, self.n, _PART_CLASSES)], evaluate, (record, record_flows), threads)
            if obj in tables:
                touches[obj] = tables.pop(obj).split_touches()
        self._touches, self._flows = touches, flows

    def touches(self) -> dict[str, Touches]:
        """Per object, the keys touched from more than one bucket (``fill_tables``)."""
        self.fill_tables()
        return self._touches

    def violations(self, reta: np.ndarray, examples: bool = True) -> tuple[int, tuple[Violation, ...]]:
        count, found = 0, []
        for obj, touches in self.touches().items():
            rows = touches.split(reta)
            count += len(rows)
            if examples:
                for row in rows[:MAX_EXAMPLES].tolist():
                    cores, packets = touches.cores_of(row, reta)
                    value = _value(touches.keys[row])
                    terms = [(kp.key, kp.devices) for kp in self.keyed if kp.object == obj]
                    found.append(Violation(obj, _hex(value, self._key_bits[obj]), cores, packets,
                                           read_key(value, terms)))
        # In the order the keys became split: the earliest packet on a second core.
        found.sort(key=lambda v: (sorted(v.packets)[1], v.object))
        return count, tuple(found[:MAX_EXAMPLES])

    def flow_table(self) -> KeyTable:
        """The 5-tuples (protocol, addresses, ports, whatever the device) the classes touch."""
        self.fill_tables()
        return self._flows

    def flows_per_core(self, reta: np.ndarray) -> tuple[int, ...]:
        """Distinct 5-tuples per core."""
        return tuple(int(x) for x in self.flow_table().keys_per_core(reta, self.plan.cores))

    def write_shares(self, writers: dict[str, list]) -> tuple[tuple[str, float], ...]:
        """Per object, the share of packets whose headers let them take a path that writes it."""
        out = []
        for name, paths in sorted(writers.items()):
            packets = 0
            for part in self._parts():
                mask = np.zeros(len(part), dtype=bool)
                for devices, condition in paths:
                    mask |= self._guard(part, devices, (condition,))
                packets += int(self.classes.count[part.start:part.stop][mask].sum())
            out.append((name, float(packets) / self.classes.packets))
        return tuple(out)

    def contention(self, reta: np.ndarray) -> write_model.Contention:
        cores = self.plan.cores
        whole = self._all()
        core = reta[self.buckets]
        counts = self.classes.count
        may_write = np.zeros(self.n, dtype=bool)
        may_read = np.zeros(self.n, dtype=bool)  # a path that takes no write lock
        may_pure = np.zeros(self.n, dtype=bool)  # ... and writes no cell either
        creator = np.full(self.n, -1, dtype=np.int64)  # the first writing path with a creation key
        for k, pw in enumerate(self.writes):
            mask = self._guard(whole, pw.path.devices, (pw.path.condition,))
            if pw.writes:
                may_write |= mask
                if pw.creation is not None:
                    creator[mask & (creator < 0)] = k
            else:
                may_read |= mask
                if not pw.cells:
                    may_pure |= mask
        always = may_write & ~may_read
        mixed = may_write & may_read
        notes: list[str] = []

        def bins(mask: np.ndarray) -> np.ndarray:
            return np.bincount(core[mask], weights=counts[mask], minlength=cores)[:cores].astype(np.int64)

        def lock_writes(within: np.ndarray, note: bool) -> np.ndarray:
            """Per core, the packets of the classes in ``within`` that take the write lock."""
            per = bins(always & within)
            guessed = mixed & (creator < 0) & within
            if guessed.any():  # no key tells first packets apart: count all as writes
                per += bins(guessed)
                if note:
                    notes.append(f"{int(counts[guessed].sum())} packets may write or not, and no key their headers "
                                 "determine tells which: counted as writes")
            rows: dict[str, list] = {}
            for k in sorted(set(creator[mixed & (creator >= 0) & within].tolist())):
                pw = self.writes[k]
                obj, term = pw.creation
                slices = self._keys(whole, term, f"path {pw.path.index}", obj)
                mask = mixed & (creator == k) & within
                if slices is None:
                    per += bins(mask)
                    if note:
                        notes.append(f"path {pw.path.index}: its creation key is unknown: its packets counted as "
                                     "writes")
                    continue
                rows.setdefault(obj, []).append((mask, slices))
            for obj in sorted(rows):
                table = KeyTable(max(len(slices) for _, slices in rows[obj]), self.n)
                self._touch(table, whole, self._rows(whole, table.width, rows.pop(obj)))
                per += table.first_cores(reta, cores)
            return per

        per = lock_writes(np.ones(self.n, dtype=bool), True)
        # Cell writers: the packets of classes whose paths without the write lock all write vector
        # cells (pol's known hosts), less those of them that take the write lock (a new host's first).
        cellish = may_read & ~may_pure
        cells = int(counts[cellish].sum()) - (int(lock_writes(cellish, False).sum()) if cellish.any() else 0)
        return write_model.Contention(self.classes.packets, int(per.sum()), tuple(int(x) for x in per), tuple(notes),
                                      cells)


def _pipelined(parts: list[Callable[[], Any]], evaluate: Callable[[Any], Any],
               records: tuple[Callable[[Any], None], ...], threads: int) -> None:
    """``record(evaluate(part()))`` of each of ``records`` (which fill tables of their own) for
    each part in order, evaluating the next part while the current one is recorded (up to
    ``threads`` threads take these tasks)."""
    ahead: Any = None
    for k in range(len(parts) + 1):
        done, box = ahead, []
        tasks = [lambda: box.append(evaluate(parts[k]()))] if k < len(parts) else []
        if done is not None:
            tasks += [lambda record=record: record(done) for record in records]
        run_tasks(tasks, threads)
        ahead = box[0] if box else None


def _value(slices: np.ndarray) -> int:
    """A key-table row (64-bit slices, least significant first) as one number."""
    return sum(int(s) << (64 * k) for k, s in enumerate(slices))


def _hex(value: int, bits: int) -> str:
    """The key's bytes in memory order (the key term's first byte is its most significant)."""
    return f"{value:0{(bits + 3) // 4}x}"


def simulate(analysis: Analysis, sharding: ShardingPlan, plan: RssPlan,
             chunks: Union[Iterable[tuple[PacketFields, np.ndarray]], Callable[[], Iterable]],
             rebalance_reta: bool = False, strategy: str = SHARED_NOTHING, progress=None) -> SimulationReport:
    """Simulate ``chunks`` of ``(fields, devices)`` in trace order (or a function that gives them:
    sharding by allocation replays them to rebalance); ``progress(packets)`` is called after each
    chunk. The tables' buffers are let go at the end (an explorer's kernel keeps nothing)."""
    try:
        return _simulate(analysis, sharding, plan, chunks, rebalance_reta, strategy, progress)
    finally:
        arena.release()


def _simulate(analysis: Analysis, sharding: ShardingPlan, plan: RssPlan,
              chunks: Union[Iterable[tuple[PacketFields, np.ndarray]], Callable[[], Iterable]],
              rebalance_reta: bool, strategy: str, progress) -> SimulationReport:
    started = time.perf_counter()
    kept: list = []
    source = chunks() if callable(chunks) else chunks
    sim = Simulation(analysis, sharding, plan, strategy)
    pooled = bool(sim.pools)  # allocations follow the RETA: rebalancing simulates the trace again
    for fields, devices in source:
        sim.add(fields, devices)
        if pooled and rebalance_reta and not callable(chunks):
            kept.append((fields, devices))
        if progress is not None:
            progress(sim.packets)
    if sim.packets == 0:
        raise EmptyTraffic("the traffic is empty: nothing to simulate")
    if not (pooled and rebalance_reta):
        return sim.report(rebalance_reta, started)
    # A new RETA gives new pools, so the replies change: simulate again from the start under it.
    first = sim.report(False, started)
    del sim  # its classes and pool tables are not needed for the second pass
    reta = rebalance(np.asarray(first.buckets, dtype=np.int64), plan.cores)
    moved = RssPlan(tuple(replace(d, reta=tuple(int(c) for c in reta)) for d in plan.devices), plan.nic, plan.cores,
                    plan.seconds, plan.seed)
    again = Simulation(analysis, sharding, moved, strategy)
    for fields, devices in (chunks() if callable(chunks) else kept):
        again.add(fields, devices)
    second = again.report(False)
    rebalanced = Rebalanced(tuple(int(c) for c in reta), second.per_core, second.imbalance, second.violation_count)
    return replace(first, rebalanced=rebalanced, seconds=time.perf_counter() - started)
