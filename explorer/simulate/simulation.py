"""Per-core load and sharding violations of an RSS plan on a trace.

Packets are steered as the NIC would (``steering``). For every sharded object, each keyed access
computes its state key from the packet fields with the analysis' own key terms (``terms``), for the
packets that may take the access's path; a key touched from more than one core is a sharding
violation: two cores would hold (or miss) the same entry. Long traces are fed in chunks; per-core
and per-bucket counts and the (key, core) pairs seen are accumulated, so memory stays bounded by
the number of distinct keys, not packets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import numpy as np

from explorer.errors import TrafficError
from explorer.ir import Analysis
from explorer.rss.key_solver import RssPlan
from explorer.sharding.constraints import keyed_accesses, written_objects
from explorer.sharding.decisions import ShardingPlan
from explorer.simulate.rebalance import imbalance, per_core, rebalance, round_robin
from explorer.simulate.steering import steer
from explorer.simulate.key_arrays import Unknown, key_slices, packet_guard
from explorer.symbex.evaluate import fields_env
from explorer.traffic.field_arrays import PacketFields

MAX_EXAMPLES = 5
COMPACT_ROWS = 8_000_000  # rows kept per object before compacting to distinct (key, bucket) pairs


@dataclass(frozen=True)
class Violation:
    """A state entry that packets on several cores touch."""

    object: str
    key: str  # hex of the key (or index) bytes
    cores: tuple[int, ...]
    packets: tuple[int, ...]  # one packet number per core (trace order)

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "key": self.key, "cores": list(self.cores), "packets": list(self.packets)}


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "packets": self.packets,
            "cores": self.cores,
            "per_core": list(self.per_core),
            "flows_per_core": list(self.flows_per_core),
            "imbalance": round(self.imbalance, 4),
            "buckets": list(self.buckets),
            "reta": list(self.reta),
            "violations": {"count": self.violation_count, "examples": [v.to_dict() for v in self.violations]},
            "unchecked": list(self.unchecked),
            "rebalanced": self.rebalanced.to_dict() if self.rebalanced else None,
        }


@dataclass(frozen=True)
class _KeyedTerm:
    """One key term of a sharded object with every path condition under which packets of
    ``devices`` compute it (the same key is usually built on many paths)."""

    object: str
    devices: tuple[int, ...]
    key: Any
    conditions: tuple[Any, ...]
    where: str


def _keyed_terms(analysis: Analysis, sharding: ShardingPlan) -> list[_KeyedTerm]:
    written = written_objects(analysis)
    groups: dict[tuple, list] = {}
    for decision in sharding.objects:
        if decision.decision != "shard":
            continue
        for k in keyed_accesses(analysis, decision.name, written):
            if k.kind == "packet":
                ident = (decision.name, k.access.key.get_id(), k.path.devices)
                groups.setdefault(ident, [decision.name, k.path.devices, k.access.key, [], k.where])[3].append(
                    k.path.condition)
    return [_KeyedTerm(obj, devs, key, tuple(conds), where) for obj, devs, key, conds, where in groups.values()]


class Simulation:
    """Accumulates chunks of a trace; ``report()`` gives the totals."""

    def __init__(self, analysis: Analysis, sharding: ShardingPlan, plan: RssPlan):
        self.plan = plan
        self.cores = plan.cores
        self.reta_size = plan.nic.reta_size
        self.keyed = _keyed_terms(analysis, sharding)
        self.packets = 0
        self.buckets = np.zeros(self.reta_size, dtype=np.int64)
        self.flows: list = []  # (flow fingerprint, bucket, None) parts
        self.seen: dict[str, list] = {}  # object -> (key fingerprint, bucket, packet#) parts
        self.keys: dict[str, list] = {}  # object -> (fingerprint, packet#, key slices) per chunk, for examples
        self.bucket_parts: list[np.ndarray] = []
        self.unchecked: set[str] = set()
        reta = {d.reta for d in plan.devices}
        self.reta = np.asarray(next(iter(reta)) if len(reta) == 1 else round_robin(self.reta_size, self.cores))

    def add(self, fields: PacketFields, devices: np.ndarray) -> None:
        n = len(fields)
        if n == 0:
            return
        devices = np.asarray(devices, dtype=np.int64)
        known = {d.device for d in self.plan.devices}
        bad = sorted(set(np.unique(devices).tolist()) - known)
        if bad:
            raise TrafficError(f"the traffic has packets on device {bad[0]}, which the NF does not have "
                               f"(devices {', '.join(map(str, sorted(known)))})")
        steering = steer(self.plan, fields, devices)
        buckets = steering.buckets
        self.bucket_parts.append(buckets)
        self.buckets += np.bincount(buckets, minlength=self.reta_size)
        flow = _fingerprint([fields.src_ip.astype(np.uint64) << np.uint64(32) | fields.dst_ip.astype(np.uint64),
                             (fields.src_port.astype(np.uint64) << np.uint64(32))
                             | (fields.dst_port.astype(np.uint64) << np.uint64(8)) | fields.proto.astype(np.uint64)])
        self._keep(self.flows, "flows", flow, buckets, None)
        env = fields_env(fields, devices)
        memo: dict = {}  # conjunct id -> mask: paths share most of their conditions
        numbers = np.arange(self.packets, self.packets + n, dtype=np.int64)
        on_devices: dict[tuple[int, ...], np.ndarray] = {}
        for kp in self.keyed:
            if kp.devices not in on_devices:
                on_devices[kp.devices] = np.isin(devices, kp.devices)
            guard = np.zeros(n, dtype=bool)
            for condition in kp.conditions:
                guard |= packet_guard(condition, env, n, memo)
            mask = on_devices[kp.devices] & guard
            if not mask.any():
                continue
            try:
                slices = key_slices(kp.key, env, n)
            except Unknown as why:
                self.unchecked.add(f"{kp.where} (key uses {why})")
                continue
            fp = slices[0] if len(slices) == 1 else _fingerprint(slices)
            self._keep(self.seen.setdefault(kp.object, []), kp.object, fp[mask], buckets[mask], numbers[mask])
            parts = self.keys.setdefault(kp.object, [])
            if sum(len(p[0]) for p in parts) < COMPACT_ROWS:  # example lookup data, bounded
                parts.append((fp[mask], numbers[mask], [sl[mask] for sl in slices]))
        self.packets += n

    def _keep(self, store: list, name: str, fp: np.ndarray, buckets: np.ndarray, numbers) -> None:
        """Append (key fingerprint, bucket[, packet#]) rows; compact to distinct (key, bucket) pairs when
        the store grows past COMPACT_ROWS, so memory follows distinct keys rather than packets."""
        store.append((fp, buckets, numbers))
        if sum(len(part[0]) for part in store) > COMPACT_ROWS:
            fp_all = np.concatenate([p[0] for p in store])
            b_all = np.concatenate([p[1] for p in store])
            nums = None if numbers is None else np.concatenate([p[2] for p in store])
            order = np.lexsort((b_all, fp_all))
            keep = order[np.r_[True, (np.diff(fp_all[order]) != 0) | (np.diff(b_all[order]) != 0)]]
            store[:] = [(fp_all[keep], b_all[keep], None if nums is None else nums[keep])]

    def report(self, rebalance_reta: bool = False, started: float | None = None) -> SimulationReport:
        if self.packets == 0:
            raise TrafficError("the traffic is empty: nothing to simulate")
        loads = per_core(self.buckets, self.reta, self.cores)
        count, examples = self._violations(self.reta)
        flows = self._flows_per_core(self.reta)
        rebalanced = None
        if rebalance_reta:
            reta2 = rebalance(self.buckets, self.cores)
            loads2 = per_core(self.buckets, reta2, self.cores)
            rebalanced = Rebalanced(tuple(int(c) for c in reta2), tuple(int(x) for x in loads2), imbalance(loads2),
                                    self._violations(reta2)[0])
        return SimulationReport(
            self.packets, self.cores, tuple(int(x) for x in loads), flows, imbalance(loads),
            tuple(int(b) for b in self.buckets), tuple(int(c) for c in self.reta), count, examples,
            tuple(sorted(self.unchecked)), rebalanced,
            time.perf_counter() - started if started is not None else 0.0)

    def _flows_per_core(self, reta: np.ndarray) -> tuple[int, ...]:
        fp = np.concatenate([p[0] for p in self.flows])
        cores = reta[np.concatenate([p[1] for p in self.flows])]
        order = np.lexsort((fp, cores))
        fp, cores = fp[order], cores[order]
        first = np.r_[True, (fp[1:] != fp[:-1]) | (cores[1:] != cores[:-1])]  # distinct (flow, core)
        return tuple(int(x) for x in np.bincount(cores[first], minlength=self.cores)[:self.cores])

    def _violations(self, reta: np.ndarray) -> tuple[int, tuple[Violation, ...]]:
        count, examples = 0, []
        for obj in sorted(self.seen):
            fp = np.concatenate([p[0] for p in self.seen[obj]])
            cores = reta[np.concatenate([p[1] for p in self.seen[obj]])]
            order = np.argsort(fp)
            fp_sorted, cores_sorted = fp[order], cores[order]
            starts = np.flatnonzero(np.r_[True, fp_sorted[1:] != fp_sorted[:-1]])
            lo = np.minimum.reduceat(cores_sorted, starts)
            hi = np.maximum.reduceat(cores_sorted, starts)
            bad = starts[lo != hi]
            count += len(bad)
            for start in bad[:max(0, MAX_EXAMPLES - len(examples))]:
                examples.append(self._example(obj, fp_sorted[start], reta))
        return count, tuple(examples)

    def _example(self, obj: str, fp: np.uint64, reta: np.ndarray) -> Violation:
        """The key's value and, per core, the first packet that touched it there."""
        per: dict[int, int] = {}
        key = ""
        for part_fp, part_numbers, part_slices in self.keys.get(obj, []):
            hit = np.flatnonzero(part_fp == fp)
            if len(hit) and not key:
                key = _hex([sl[hit[0]] for sl in part_slices])
            for i in hit:
                number = int(part_numbers[i])
                per.setdefault(int(reta[self._bucket_of(number)]), number)
        cores = tuple(sorted(per))
        return Violation(obj, key or f"fingerprint {int(fp):016x}", cores, tuple(per[c] for c in cores))

    def _bucket_of(self, number: int) -> int:
        for part in self.bucket_parts:
            if number < len(part):
                return int(part[number])
            number -= len(part)
        raise IndexError(number)


def _fingerprint(slices: list[np.ndarray]) -> np.ndarray:
    """A 64-bit fingerprint of multi-slice values (splitmix64-style mixing). Distinct keys collide
    with probability about n^2 / 2^65 (1e-8 for a million keys); single-slice keys are used as is."""
    h = np.full(len(slices[0]), 0x9E3779B97F4A7C15, dtype=np.uint64)
    for sl in slices:
        h = (h ^ sl) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
        h = h * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(29)
    return h


def _hex(slices: np.ndarray) -> str:
    return "".join(f"{int(s):016x}" for s in reversed(slices)).lstrip("0") or "0"


def simulate(analysis: Analysis, sharding: ShardingPlan, plan: RssPlan,
             chunks: Iterable[tuple[PacketFields, np.ndarray]], rebalance_reta: bool = False) -> SimulationReport:
    """Simulate ``chunks`` of ``(fields, devices)`` in trace order."""
    started = time.perf_counter()
    sim = Simulation(analysis, sharding, plan)
    for fields, devices in chunks:
        sim.add(fields, devices)
    return sim.report(rebalance_reta, started)
