"""ParallelPlan: everything a generated project needs, collected from a Solution before printing.

The plan is a frozen value with a compact text form (``ParallelPlan.text()``) that tests compare
with golden files, without a compiler: strategy, cores, per-object treatment and per-core
capacity, and per device the RSS key, hashed fields, ``rss_hf``, RETA and flow rules.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any, Optional

from explorer.codegen.pooling import pooled_objects, pools_for
from explorer.errors import GenerateError
from explorer.ir import Location
from explorer.rss.hash_input import L3_FIELDS
from explorer.rss.nic import nic_profile
from explorer.rss.reta import dealing
from explorer.rss.reta_rule import reta_text
from explorer.sharding.constraints import keyed_accesses, written_objects
from explorer.sharding.pools import Pools, pools_from_dict

STRATEGIES = ("seq", "sn", "locks", "tm")
# The strategy names a Solution uses, and ours (the CLI's and the C runtime's).
_FROM_SOLUTION = {"shared-nothing": "sn", "locks": "locks", "tm": "tm"}
# Kinds whose capacity counts entries: sn gives each core capacity / cores of a sharded one whose
# entries come from a per-core allocator (see per_core_allocated). A sketch's width and a cht's
# height are hash ranges, not entry counts.
DIVIDED_KINDS = ("map", "vector", "dchain")


@dataclass(frozen=True)
class ObjectPlan:
    """One state object and what the generated code does with it."""

    name: str
    kind: str
    alloc_index: int
    decision: str  # the sharding plan's: "shard" | "replicate" | "lock"
    capacity: int  # as the NF allocates it
    per_core: int  # entries each core allocates (sn), else the capacity
    treatment: str  # one line for people
    divisible: bool = False  # its entries come from a per-core allocator: sn may give each core a share
    pool: int = -1  # sn by allocation: this dchain allocates from ParallelPlan.pools[pool]
    broadcast: bool = False  # sn: replicated and written, so writes are broadcast to every core's copy
    location: Optional[Location] = None  # its allocation call (one call may allocate several: a loop, a helper)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "alloc_index": self.alloc_index, "decision": self.decision,
                "capacity": self.capacity, "per_core": self.per_core, "treatment": self.treatment,
                "divisible": self.divisible, "pool": self.pool, "broadcast": self.broadcast,
                "location": self.location.to_dict() if self.location is not None else None}


@dataclass(frozen=True)
class DeviceSteering:
    """How the NIC spreads one input device's packets over the cores."""

    device: int
    key: bytes
    fields: tuple[str, ...]  # hashed, in hash-input order
    rss_hf: int
    rss_hf_names: tuple[str, ...]
    reta: tuple[int, ...]  # RETA entry -> core
    flow_rules: tuple[tuple[str, int], ...]  # (pattern, RSS types) where the NIC selects fields by rte_flow
    portless: tuple[str, ...]  # hashed of IPv4 frames without TCP/UDP ports (NicProfile.portless_fields)
    port_hf: int  # the port's rss_conf.rss_hf on the plan's NIC (NicProfile.port_rss_hf)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "key": self.key.hex(), "fields": list(self.fields), "rss_hf": self.rss_hf,
                "rss_hf_names": list(self.rss_hf_names), "reta": list(self.reta),
                "flow_rules": [list(r) for r in self.flow_rules], "portless_fields": list(self.portless),
                "port_hf": self.port_hf}


@dataclass(frozen=True)
class ParallelPlan:
    nf: str
    source: str  # the NF's C file
    strategy: str  # one of STRATEGIES
    cores: int
    devices: int
    nic: str
    driver: str
    key_bytes: int
    reta_size: int
    objects: tuple[ObjectPlan, ...]  # in allocation order
    steering: tuple[DeviceSteering, ...]  # per device, in device order
    defines: tuple[tuple[str, str], ...]  # the effective configuration, sorted
    overrides: tuple[tuple[str, str], ...]  # the --defines that differ from the NF's defaults, sorted
    seed: int = 0
    pools: tuple[Pools, ...] = ()  # sn by allocation: per-core pools under this plan's steering
    replication: str = ""  # sn with broadcast objects: "strict" or "lagged" (nf_replica.h); else ""

    @property
    def broadcast(self) -> tuple[ObjectPlan, ...]:
        return tuple(o for o in self.objects if o.broadcast)

    def object(self, name: str) -> ObjectPlan:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)

    def device(self, device: int) -> DeviceSteering:
        return self.steering[device]

    def shares(self, name: str) -> tuple[int, ...]:
        """How many entries of object ``name`` each core holds, in core order: its pool's size for a
        pooled dchain, the core's share of a divided object (``core_shares``), else all of them."""
        o = self.object(name)
        if o.pool >= 0:
            return self.pools[o.pool].sizes
        if o.per_core == o.capacity:
            return (o.capacity,) * self.cores
        shares = core_shares(o.capacity, self.cores)
        if self.pools and o.kind == "map":  # nf_pool_capacity: the share or the core's largest pool
            return tuple(min(o.capacity, max([share, *(p.sizes[core] for p in self.pools)]))
                         for core, share in enumerate(shares))
        return shares

    def with_cores(self, cores: int) -> "ParallelPlan":
        """The same plan on ``cores`` cores. Every RETA entry becomes ``entry % cores``: any RETA
        content keeps related packets together (they share a RETA entry), so this stays correct."""
        if cores < 1:
            raise GenerateError(f"cores must be at least 1, not {cores}")
        if self.strategy == "seq" and cores != 1:
            raise GenerateError("the seq strategy runs on one core")
        steering = tuple(replace(d, reta=tuple(c % cores for c in d.reta)) for d in self.steering)
        objects = tuple(replace(o, per_core=_per_core(self.strategy, o.divisible, o.capacity, cores))
                        for o in self.objects)
        if self.pools:  # a new RETA gives new pools
            pools = pools_for(self.pools, steering, cores)
            return replace(self, cores=cores, steering=steering, objects=pooled_objects(objects, pools), pools=pools)
        return replace(self, cores=cores, steering=steering, objects=objects)

    def with_keys(self, keys: dict[int, bytes]) -> "ParallelPlan":
        """The plan with some devices' keys replaced (tests force wrong keys with it)."""
        for device, key in keys.items():
            if len(key) != self.key_bytes:
                raise GenerateError(f"device {device}: a {self.nic} key has {self.key_bytes} bytes, not {len(key)}")
        return replace(self, steering=tuple(replace(d, key=keys.get(d.device, d.key)) for d in self.steering))

    def text(self) -> str:
        """The plan as compact, stable text (golden files, ``plan.txt`` in generated projects)."""
        lines = [f"nfx parallel plan: {self.nf} ({self.source})",
                 f"strategy {self.strategy}, {self.cores} core{'s' if self.cores != 1 else ''}, "
                 f"{self.devices} device{'s' if self.devices != 1 else ''}, NIC {self.nic} ({self.driver}): "
                 f"{self.key_bytes}-byte keys, RETA of {self.reta_size}",
                 "config " + (" ".join(f"{n}={v}" for n, v in self.defines) or "-"),
                 "overrides " + (" ".join(f"{n}={v}" for n, v in self.overrides) or "-")]
        width = max((len(o.name) for o in self.objects), default=0)
        for o in self.objects:
            share = f"{o.capacity} -> {share_text(self.shares(o.name))} per core" if o.per_core != o.capacity \
                else f"{o.capacity}"
            lines.append(f"object #{o.alloc_index} {o.name:<{width}} {o.kind:<6} {o.decision:<9} {share:<24} "
                         f"{o.treatment}")
        if not self.objects:
            lines.append("objects none")
        if self.replication:
            lines.append(f"replication {self.replication}: writes to {', '.join(o.name for o in self.broadcast)} are "
                         "broadcast to every core through per-core rings")
        dealt = functools.cache(lambda: dealing([(d.key, d.fields) for d in self.steering if d.fields],
                                                self.reta_size, self.cores))
        for d in self.steering:
            lines.append(f"device {d.device} hashes {','.join(d.fields) or '-'}")
            lines.append(f"  rss_hf {' | '.join(d.rss_hf_names) or '0'} (0x{d.rss_hf:x})")
            if d.port_hf & ~d.rss_hf:  # the driver names those packet types otherwise (i40e)
                lines.append(f"  port rss_hf 0x{d.port_hf:x} (the {self.driver} port's own types for them)")
            if not set(d.portless) <= set(d.fields):
                lines.append(f"  frames without ports (fragments, ICMP, ...) hash {','.join(d.portless)}")
            lines.append(f"  key {d.key.hex()}")
            lines.append(f"  reta {reta_text(d.reta, dealt)}")  # the rule it was dealt by, not 512 numbers
            for pattern, types in d.flow_rules:
                lines.append(f"  flow rule {pattern}: types 0x{types:x}")
        for k, p in enumerate(self.pools):
            lines.append(f"pool {k} {p.text()}, digest {p.digest:016x}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"nf": self.nf, "source": self.source, "strategy": self.strategy, "cores": self.cores,
                "devices": self.devices, "nic": self.nic, "driver": self.driver, "key_bytes": self.key_bytes,
                "reta_size": self.reta_size, "objects": [o.to_dict() for o in self.objects],
                "steering": [d.to_dict() for d in self.steering], "defines": dict(self.defines),
                "overrides": dict(self.overrides), "seed": self.seed, "pools": [p.to_dict() for p in self.pools],
                "replication": self.replication}


def _portless_of(fields: list[str]) -> tuple[str, ...]:
    """What a plan.json written before it named its portless fields assumed: the L3 fields."""
    return tuple(f for f in fields if f in L3_FIELDS)


def plan_from_dict(data: dict[str, Any]) -> ParallelPlan:
    """The inverse of ``ParallelPlan.to_dict`` (generated projects keep their plan as plan.json)."""
    objects = tuple(ObjectPlan(o["name"], o["kind"], int(o["alloc_index"]), o["decision"], int(o["capacity"]),
                               int(o["per_core"]), o["treatment"], bool(o.get("divisible", False)),
                               int(o.get("pool", -1)), bool(o.get("broadcast", False)),
                               Location(**o["location"]) if o.get("location") else None)
                    for o in data["objects"])
    steering = tuple(DeviceSteering(int(d["device"]), bytes.fromhex(d["key"]), tuple(d["fields"]), int(d["rss_hf"]),
                                    tuple(d["rss_hf_names"]), tuple(int(c) for c in d["reta"]),
                                    tuple((str(p), int(t)) for p, t in d["flow_rules"]),
                                    tuple(d.get("portless_fields", _portless_of(d["fields"]))),
                                    int(d.get("port_hf", nic_profile(data["nic"]).port_rss_hf(int(d["rss_hf"])))))
                     for d in data["steering"])
    return ParallelPlan(data["nf"], data["source"], data["strategy"], int(data["cores"]), int(data["devices"]),
                        data["nic"], data["driver"], int(data["key_bytes"]), int(data["reta_size"]), objects, steering,
                        tuple(sorted(data["defines"].items())), tuple(sorted(data["overrides"].items())),
                        int(data.get("seed", 0)), tuple(pools_from_dict(p) for p in data.get("pools", ())),
                        str(data.get("replication", "")))


def per_core_allocated(analysis: Any, decisions: dict[str, str]) -> frozenset[str]:
    """The sharded maps, vectors and dchains whose entries come from a per-core allocator: only
    these may get capacity / cores entries per core. A dchain allocates its own indices, so each
    core's share is its own; a vector follows it when every index it is used with is such an
    index (or a value of a map that holds them); a map follows it when the dchain expires its keys
    or is used with its values. An object named by packet fields instead (per-port counters
    indexed by ``nf_ntohs(l4->dst_port)``) keeps every entry on every core: a packet may name any
    of them, and so does a dchain nf_init takes indices from (with what follows it). Computed as
    the largest set that satisfies these rules (they refer to each other)."""
    written = written_objects(analysis)
    kinds = {o.name: o.kind for o in analysis.objects}
    keyed: dict[str, list] = {}
    expired_with: dict[str, set[str]] = {}  # vector or map -> the dchains whose expiry names it
    for path in analysis.paths:
        for access in path.accesses:
            if access.call.startswith("nf_expire_items"):
                for name in access.related:
                    expired_with.setdefault(name, set()).add(access.object)
    # A dchain nf_init took indices from keeps them on every core (each core runs nf_init): a share
    # smaller than what nf_init takes would make nf_init fail (tests/nfs/vip_quota.c).
    seeded = {o.name for o in analysis.objects if o.kind == "dchain" and dict(o.extra).get("init_entries")}
    chosen = {name for name, kind in kinds.items()
              if kind in DIVIDED_KINDS and decisions.get(name) == "shard" and name not in seeded}
    for name in chosen:
        keyed[name] = list(keyed_accesses(analysis, name, written))

    def indexed_by_allocators(name: str) -> bool:
        accesses = keyed[name]
        return all(k.kind == "follows" and set(k.follows) <= chosen for k in accesses)

    changed = True
    while changed:
        keep = set()
        for name in chosen:
            kind = kinds[name]
            if kind == "dchain":
                ok = indexed_by_allocators(name)
            elif kind == "vector":
                ok = indexed_by_allocators(name) and expired_with.get(name, set()) <= chosen and bool(
                    keyed[name] or expired_with.get(name))
            else:  # a map: its entries are as many as a chosen dchain's indices
                paired = {d for d in chosen if kinds[d] == "dchain" and any(name in k.follows for k in keyed[d])}
                ok = bool(paired | (expired_with.get(name, set()) & chosen))
            if ok:
                keep.add(name)
        changed = keep != chosen
        chosen = keep
    return frozenset(chosen)


def core_shares(capacity: int, cores: int) -> tuple[int, ...]:
    """Each core's share of a divided object, as the generated ``nf_sn_capacity`` (nf_parallel.h)
    gives it: shares that add up to the capacity, the first ``capacity % cores`` cores one more
    (64 on 3 cores: 22, 21, 21), so the parallel build never holds more entries than the
    sequential NF; at least 1 each (a capacity below the cores is the one case the sum exceeds it)."""
    base, extra = divmod(capacity, cores)
    return tuple(max(1, base + (1 if core < extra else 0)) for core in range(cores))


def share_text(shares: tuple[int, ...]) -> str:
    """``"16384"``, or ``"21-22"`` where the shares differ."""
    low, high = min(shares), max(shares)
    return str(high) if low == high else f"{low}-{high}"


def _per_core(strategy: str, divisible: bool, capacity: int, cores: int) -> int:
    """The largest share of an object on one core (``core_shares``)."""
    if strategy == "sn" and divisible:
        return max(core_shares(capacity, cores))
    return capacity


def _treatment(strategy: str, decision: str, kind: str, divisible: bool, broadcast: bool = False) -> str:
    if strategy == "seq":
        return "one copy on one core"
    if strategy in ("locks", "tm"):
        lock = "big-reader lock" if strategy == "locks" else "rte_rwlock_*_tm (RTM, else the lock)"
        return f"shared, {lock}"
    if broadcast:
        return "per core: a full copy; the rare packets that write it broadcast the write to every copy"
    if decision == "replicate":
        return "per core: a full copy, filled by each core's nf_init"
    if divisible:
        return "per core: its share of the entries (capacity / cores)"
    if kind in DIVIDED_KINDS:
        return "per core: full size (packets name its entries, no per-core allocator hands them out)"
    return "per core: full size"


def overrides_of(source: str, defines: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The configuration values that differ from the NF's own defaults: the --defines to parse the
    NF with again."""
    from explorer.nfsource import read_nf

    defaults = dict(read_nf(source).configuration)  # preprocessed, not parsed: only its macros are read
    return tuple(sorted((n, v) for n, v in defines if defaults.get(n) != v))


REPLICATIONS = ("lagged", "strict")


def parallel_plan(solution: Any, strategy: str = "auto", cores: Optional[int] = None,
                  replication: str = "lagged") -> ParallelPlan:
    """Collect the plan for ``strategy`` ("auto" takes the solution's) from a ``pipeline.Solution``.

    ``cores`` defaults to the solution's; seq always runs on one core. ``replication`` is how sn
    builds broadcast writes to replicated objects (see nf_replica.h). Raises GenerateError when
    the solution is not valid (overrides that break correctness) or when shared-nothing is asked
    of an NF that needs locks."""
    if replication not in REPLICATIONS:
        raise GenerateError(f"unknown replication {replication!r}: choose {' or '.join(REPLICATIONS)}")
    analysis = solution.analysis
    if not solution.valid:
        raise GenerateError(f"{analysis.nf}: the requested sharding is not correct, so no code is generated: "
                            f"{solution.explanation}")
    chosen = _FROM_SOLUTION.get(solution.strategy, solution.strategy) if strategy == "auto" else strategy
    if chosen not in STRATEGIES:
        raise GenerateError(f"unknown strategy {strategy!r}: choose from auto, {', '.join(STRATEGIES)}")
    if chosen == "sn" and solution.strategy != "shared-nothing":
        from explorer.explain import why_not_sharded  # the NF's terms, as nfx solve's why

        why = why_not_sharded(solution) or solution.explanation
        raise GenerateError(f"{analysis.nf} cannot run shared-nothing: {why}")
    count = 1 if chosen == "seq" else (cores if cores is not None else solution.cores)
    if count < 1:
        raise GenerateError(f"cores must be at least 1, not {count}")

    decisions = {o.name: o.decision for o in solution.sharding.objects}
    broadcast = {o.name for o in solution.sharding.replicated} if chosen == "sn" else set()
    divisible = per_core_allocated(analysis, decisions) - broadcast  # replicas are whole copies
    objects = tuple(ObjectPlan(o.name, o.kind, o.alloc_index, decisions.get(o.name, "replicate"), o.capacity,
                               _per_core(chosen, o.name in divisible, o.capacity, count),
                               _treatment(chosen, decisions.get(o.name, "replicate"), o.kind, o.name in divisible,
                                          o.name in broadcast),
                               o.name in divisible, broadcast=o.name in broadcast, location=o.location)
                    for o in sorted(analysis.objects, key=lambda o: o.alloc_index))
    nic = solution.nic
    # On as many cores as the solution was solved for, its RETA; on another count, the table dealt
    # again for that count (c % count of a 4-core table sent half of 3 cores' traffic to core 0, and
    # a 2-core table left cores 2 and 3 of 4 idle). Any table keeps packets that share state together.
    redealt = None
    if chosen != "seq" and count != solution.plan.cores:
        redealt = dealing([(d.key, d.fields) for d in solution.plan.devices if d.fields], nic.reta_size,
                          count).table()
    steering = []
    for device in range(analysis.devices):
        d = solution.plan.device(device)
        rules = nic.flow_rules(d.rss_hf)
        reta = tuple(0 for _ in d.reta) if chosen == "seq" else redealt or tuple(d.reta)
        steering.append(DeviceSteering(device, bytes(d.key), tuple(d.fields), d.rss_hf, tuple(d.rss_hf_names),
                                       reta, tuple(rules), nic.portless_fields(d.fields), nic.port_rss_hf(d.rss_hf)))
    pools = pools_for(solution.pools, steering, count) if chosen == "sn" else ()
    return ParallelPlan(nf=analysis.nf, source=analysis.source, strategy=chosen, cores=count,
                        devices=analysis.devices, nic=nic.name, driver=nic.driver, key_bytes=nic.key_bytes,
                        reta_size=nic.reta_size, objects=pooled_objects(objects, pools) if pools else objects,
                        steering=tuple(steering), defines=tuple(sorted(analysis.defines)),
                        overrides=overrides_of(analysis.source, analysis.defines), seed=solution.seed, pools=pools,
                        replication=replication if broadcast else "")
