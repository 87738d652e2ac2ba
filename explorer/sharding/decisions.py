"""Per-object sharding decisions and the RSS key problem they pose.

``shard(analysis, nic, overrides)`` decides, per state object, ``replicate`` (packets only read it,
or only rare packets write it: see ``replication``), ``shard`` (every entry is touched only by
packets that agree on some RSS-hashable fields) or ``lock`` (some access can touch an entry from
packets that share no hashable field), with the reason, and
collects the pair constraints of the sharded objects. Per device, the fields to hash are the
intersection of what every constraint allows; an empty intersection, or a constraint an override
leaves with no related field, is a conflict that rules out shared-nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Union

from explorer.errors import ConfigError
from explorer.ir import Access, Analysis, CallPath, Op
from explorer.nf_terms import access_site, fields_words, possessive
from explorer.rss.nic import NicProfile
from explorer.rss.problem import PairConstraint
from explorer.wire import RSS_NAMES
from explorer.sharding.allocation import Allocation, by_allocation
from explorer.sharding.constraints import (
    KeyedAccess, fields_on, keyed_accesses, pair_constraints, restrict, rss_bits, rss_parts, written_objects)
from explorer.sharding.expiry_times import uneven_expiries
from explorer.sharding.keybits import CHOICES, chooses_too_much, key_alternatives
from explorer.sharding.recycling import followers_of, inherited_cells
from explorer.sharding.replication import DECISIONS, replicate_rare_writers
from explorer.symbex.bitvec import symbols_of

# Per object: the fields each device hashes (which implies "shard"), or a decision: "shard",
# "replicate" or "lock".
Overrides = Mapping[str, Union[Mapping[int, tuple[str, ...]], str]]


@dataclass(frozen=True)
class ObjectDecision:
    name: str
    kind: str
    decision: str  # "shard" | "replicate" | "lock"
    reason: str
    fields: tuple[tuple[int, tuple[str, ...]], ...]  # per device: the RSS fields its entries agree on
    accesses: int  # accesses on all paths of nf_process
    constraints: tuple[PairConstraint, ...]  # after the overrides
    overridden: bool = False
    natural: tuple[PairConstraint, ...] = ()  # before the overrides: what correctness needs
    follows: tuple[str, ...] = ()  # objects whose values are this one's only keys (indices)
    allocation: str = ""  # sharded by allocation: the allocator whose per-core pools place its entries
    written: bool = False  # some path of nf_process changes it (expiry included)
    writers: tuple[int, ...] = ()  # paths that write it (not by expiry), for replicated and locked objects
    write_class: str = ""  # what the header fields say about those paths' packets
    chosen: bool = False  # the decision is the user's (an override OBJECT=shard|replicate|lock)

    @property
    def broadcast(self) -> bool:
        """Replicated and written: every core keeps a copy and writes are broadcast to them."""
        return self.decision == "replicate" and self.written

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "decision": self.decision,
            "reason": self.reason,
            "fields": {str(d): list(f) for d, f in self.fields},
            "accesses": self.accesses,
            "constraints": len(self.constraints),
            "overridden": self.overridden,
            "by": "allocation" if self.allocation else "fields",
            "written": self.written,
            "writers": list(self.writers),
            "write_class": self.write_class,
            "chosen": self.chosen,
        }


@dataclass(frozen=True)
class ShardingPlan:
    nf: str
    devices: tuple[int, ...]
    objects: tuple[ObjectDecision, ...]
    constraints: tuple[PairConstraint, ...]  # of the sharded objects, restricted to the hashed fields
    hashed: tuple[tuple[int, tuple[str, ...]], ...]  # per device, in hash-input order
    conflicts: tuple[str, ...]  # why no shared-nothing key exists (empty when one may)
    violated: tuple[PairConstraint, ...]  # constraints an override breaks (for counterexamples)
    allocations: tuple[Allocation, ...] = ()  # allocators split into per-core pools (sharding by allocation)
    unallocated: str = ""  # why sharding by allocation was possible but not used

    @property
    def locked(self) -> tuple[ObjectDecision, ...]:
        return tuple(o for o in self.objects if o.decision == "lock")

    @property
    def shared_nothing(self) -> bool:
        return not self.locked and not self.conflicts

    @property
    def replicated(self) -> tuple[ObjectDecision, ...]:
        """Written objects every core keeps a copy of, whose writes are broadcast."""
        return tuple(o for o in self.objects if o.broadcast)

    def decision(self, name: str) -> ObjectDecision:
        return next(o for o in self.objects if o.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.to_dict() for o in self.objects],
            "hashed": {str(d): list(f) for d, f in self.hashed},
            "conflicts": list(self.conflicts),
            "constraints": [c.origin for c in self.constraints],
            "allocations": [a.to_dict() for a in self.allocations],
        }


def parse_overrides(specs: list[str], analysis: Analysis) -> dict[str, Union[dict[int, tuple[str, ...]], str]]:
    """``["flows:1=src_ip,dst_ip", "active=lock", ...]`` -> ``{"flows": {1: ("src_ip", "dst_ip")},
    "active": "lock"}``, validated."""
    out: dict[str, Any] = {}
    for spec in specs:
        head, eq, tail = spec.partition("=")
        obj, colon, dev = head.partition(":")
        if eq and obj and not colon and tail.strip() in DECISIONS:
            if isinstance(out.get(obj), dict):
                raise ConfigError(f"override {spec!r}: {obj} already has fields (which mean shard)")
            if obj in out:  # one choice per object: a second one would silently win
                raise ConfigError(f"override {spec!r}: {obj} is already chosen to be {out[obj]}")
            out[obj] = tail.strip()
            continue
        if not (eq and colon and obj and dev.isdigit() and tail):
            raise ConfigError(f"bad override {spec!r}: expected OBJECT:DEVICE=FIELD[,FIELD...] or "
                              f"OBJECT=shard|replicate|lock")
        if isinstance(out.get(obj), str):
            raise ConfigError(f"override {spec!r}: {obj} is already chosen to be {out[obj]}")
        fields = tuple(f.strip() for f in tail.split(","))
        if int(dev) in out.get(obj, {}):  # one field set per object and device: a second would silently win
            raise ConfigError(f"override {spec!r}: {obj} on device {int(dev)} is already given fields "
                              f"{','.join(out[obj][int(dev)])}; list them all in one override")
        out.setdefault(obj, {})[int(dev)] = fields
    check_overrides(out, analysis)
    return out


def split_overrides(overrides: Overrides | None) -> tuple[dict[str, dict[int, tuple[str, ...]]], dict[str, str]]:
    """(fields per object and device, decision per object); fields imply the decision shard."""
    fields: dict[str, dict[int, tuple[str, ...]]] = {}
    chosen: dict[str, str] = {}
    for obj, value in (overrides or {}).items():
        if isinstance(value, str):
            chosen[obj] = value
        else:
            fields[obj] = dict(value)
            chosen[obj] = "shard"
    return fields, chosen


def check_overrides(overrides: Overrides, analysis: Analysis) -> None:
    names = [o.name for o in analysis.objects]
    for obj, per_dev in overrides.items():
        if obj not in names:
            raise ConfigError(f"override names {obj!r}, which is not a state object of {analysis.nf} "
                              f"(objects: {', '.join(names) or 'none'})")
        if isinstance(per_dev, str):
            if per_dev not in DECISIONS:
                raise ConfigError(f"override {obj}={per_dev}: choose shard, replicate or lock")
            continue
        for dev, fields in per_dev.items():
            if not 0 <= dev < analysis.devices:
                raise ConfigError(f"override for {obj!r} names device {dev}; {analysis.nf} has devices "
                                  f"0..{analysis.devices - 1}")
            if not fields:  # the explorer's toggles of a device all turned off
                raise ConfigError(f"override for {obj!r} on device {dev} names no field: shard it on at least "
                                  f"one of {', '.join(RSS_NAMES)}")
            bad = [f for f in fields if f not in RSS_NAMES]
            if bad:
                raise ConfigError(f"override for {obj!r} on device {dev}: {', '.join(bad)} "
                                  f"is not an RSS field ({', '.join(RSS_NAMES)})")


def shard(analysis: Analysis, nic: NicProfile, overrides: Overrides | None = None,
          allocation: bool = True, decided: Optional[dict] = None) -> ShardingPlan:
    """With ``allocation``, objects keyed by a value the NF allocates and packets carry back are
    sharded by allocation (``explorer.sharding.allocation``) unless that leaves a conflict that
    pair constraints would not; overriding such an object's fields asks for pair constraints.
    ``decided``: a dict shared by the shards of one analysis in one solve (the remedies nfx solve
    checks shard again), where each object's own decision, which depends on the analysis and its
    field override alone, is made once."""
    decided = {} if decided is None else decided
    plan = _shard(analysis, nic, overrides, allocation, decided)
    if plan.allocations and plan.conflicts:
        pairs = _shard(analysis, nic, overrides, False, decided)
        if not pairs.conflicts:
            return replace(pairs, unallocated="sharding by allocation conflicts: " + "; ".join(plan.conflicts))
    return plan


def _shard(analysis: Analysis, nic: NicProfile, overrides: Overrides | None, allocation: bool,
           decided: dict) -> ShardingPlan:
    check_overrides(overrides or {}, analysis)
    overrides, chosen = split_overrides(overrides)
    devices = tuple(range(analysis.devices))
    written = written_objects(analysis)
    counts = _access_counts(analysis)

    decisions: list[ObjectDecision] = []
    keyed_by: dict[str, tuple[KeyedAccess, ...]] = {}
    # An object's own decision depends on the analysis and its field override alone (``shard``)
    for obj in analysis.objects:
        override = overrides.get(obj.name, {})
        ident = (obj.name, tuple(sorted(override.items())))
        if ident not in decided:
            keyed = keyed_accesses(analysis, obj.name, written)
            decided[ident] = (keyed, replace(_decide(obj.name, obj.kind, obj.name in written, keyed,
                                                     counts.get(obj.name, 0), devices, override),
                                             written=obj.name in written))
        keyed_by[obj.name], decision = decided[ident]
        decisions.append(decision)
    allocations: tuple[Allocation, ...] = ()
    if allocation:
        decisions, allocations = by_allocation(analysis, decisions, keyed_by, skip=overrides)
    decisions = _lock_dangling_indices(analysis, decisions, keyed_by)
    decisions = _lock_inherited_cells(analysis, decisions)
    decisions = _lock_partial_expiry(analysis, decisions)
    decisions = _follow(decisions)
    decisions = replicate_rare_writers(analysis, decisions, chosen)
    allocations = tuple(a for a in allocations  # an allocator locked after all shares no pools
                        if all(d.decision == "shard" for d in decisions if d.allocation == a.allocator))

    if any(o.name in overrides and o.decision != "shard" for o in decisions):
        bad = next(o for o in decisions if o.name in overrides and o.decision != "shard")
        raise ConfigError(f"cannot override the fields of {bad.name!r}: it is not sharded ({bad.decision}: {bad.reason})")

    sharded = [o for o in decisions if o.decision == "shard"]
    conflicts: list[str] = []
    violated: list[PairConstraint] = []
    for o in sharded:
        for c, nat in zip(o.constraints, o.natural):
            if not c.equal and o.overridden:
                conflicts.append(_override_conflict(o.name, overrides[o.name], nat))
                violated.append(nat)
    forced: dict[int, frozenset[str]] = {}  # overrides name exactly what a device hashes
    for per_dev in overrides.values():
        for dev, fields in per_dev.items():
            forced[dev] = forced.get(dev, frozenset()) | frozenset(fields)
    hashed = []
    for dev in devices:
        per_obj = [(o.name, fields_on(c, dev)) for o in sharded for c in o.constraints if c.equal]
        per_obj = [(name, f) for name, f in per_obj if f is not None]
        if dev in forced:
            # Hashing a field that packets sharing an entry need not agree on splits the entry.
            for o in sharded:
                for c, nat in zip(o.constraints, o.natural):
                    agreed = fields_on(c, dev)
                    if c.equal and agreed is not None and not forced[dev] <= agreed:
                        conflicts.append(_widened(o.name, dev, forced[dev], agreed, nat))
                        violated.append(nat)
            common = forced[dev]
        elif not per_obj:
            hashed.append((dev, RSS_NAMES))
            continue
        else:
            common = frozenset.intersection(*(f for _, f in per_obj))
        if not common:
            conflicts.append(_no_common_field(dev, per_obj))
            violated.extend(nat for o in sharded for c, nat in zip(o.constraints, o.natural)
                            if fields_on(c, dev) is not None)
        # The smallest set the NIC can hash that holds the common fields (the key then zeroes extras).
        chosen = frozenset(nic.select_fields(common)) if nic.field_selection and common else frozenset(RSS_NAMES)
        hashed.append((dev, tuple(f for f in RSS_NAMES if f in chosen)))
    hashed_map = dict(hashed)
    # An override that fixes what a reading device hashes without the allocated field breaks that
    # allocation (its constraint is among the violated, and the counterexample shows it): no key
    # can steer its values, so it gets no pools, which could not be computed.
    broken = [a for a in allocations if not all(a.field in hashed_map.get(d, RSS_NAMES) for d in a.devices)]
    allocations = tuple(a for a in allocations if a not in broken)
    for a in broken:  # its objects' reasons described pools the plan no longer has
        decisions = [_unpooled(d, a, hashed_map) if d.allocation == a.allocator else d for d in decisions]
    constraints = tuple(_only_hashed(c, hashed_map) for o in sharded for c in o.constraints if c.equal)
    return ShardingPlan(analysis.nf, devices, tuple(decisions), constraints, tuple(hashed),
                        tuple(dict.fromkeys(conflicts)), tuple(dict.fromkeys(violated)), allocations)


def _unpooled(decision: ObjectDecision, allocation: Allocation, hashed: dict[int, tuple[str, ...]]) -> ObjectDecision:
    """``decision`` of an object sharded by ``allocation`` when an override made a reading device
    hash other fields than the allocated one: it has no pools, and its reason says why."""
    lacking = [d for d in allocation.devices if allocation.field not in hashed.get(d, RSS_NAMES)]
    overridden = "; ".join(f"device {d} hash {', '.join(hashed[d]) or 'nothing'}" for d in lacking)
    where = ", ".join(f"device {d}" for d in lacking)
    if decision.name == allocation.allocator:
        reason = (f"no per-core pools: {where} must hash {allocation.field} for them (packets carry "
                  f"{allocation.allocator}'s indices back in it), and the override makes {overridden}")
    else:
        reason = (f"not by allocation: its entries are keyed by an index of {allocation.allocator} that packets on "
                  f"{where} carry back in {allocation.field}, and the override makes {overridden}, so packets "
                  "that share an entry can land on different cores")
    return replace(decision, reason=reason, allocation="")


def _access_counts(analysis: Analysis) -> dict[str, int]:
    """Accesses per object, counting the objects a call reads besides its own (the dchain of live
    backends ``nf_cht_find_backend`` checks); expiry's are counted by the objects' own accesses."""
    counts: dict[str, int] = {}
    for path in analysis.paths:
        for access in path.accesses:
            for name in (access.object,) + (access.related if access.op != Op.EXPIRE else ()):
                counts[name] = counts.get(name, 0) + 1
    return counts


def _decide(name: str, kind: str, is_written: bool, keyed: tuple[KeyedAccess, ...], count: int,
            devices: tuple[int, ...], override: Mapping[int, tuple[str, ...]]) -> ObjectDecision:
    def decision(d: str, reason: str, fields=(), constraints=(), overridden=False, natural=(),
                 follows=()) -> ObjectDecision:
        return ObjectDecision(name, kind, d, reason, tuple(fields), count, tuple(constraints), overridden,
                              tuple(natural) or tuple(constraints), tuple(follows))

    if count == 0:
        return decision("replicate", "not used by nf_process: filled by nf_init, copied to every core")
    if not is_written:
        return decision("replicate", "packets only read it: filled by nf_init, copied to every core")
    for k in keyed:
        if k.kind == "scan":
            return decision("lock", f"{k.site} scans its entries (not one entry named by a key): "
                                    "every packet may touch every entry")
        if k.kind == "global" and k.by_device:
            return decision("lock", _by_device(k))
        if k.kind == "global" and symbols_of(k.access.key):  # a value read-only state gives (a table's pick)
            return decision("lock", f"{k.site} {k.uses_key}, which no packet field decides: any packet that "
                                    "takes that path may need any entry")
        if k.kind == "global":
            return decision("lock", f"{k.site} {k.uses_key}, which depends on no packet field: "
                                    "every packet that takes that path touches that one entry, whatever its flow")
        if k.kind == "folds":
            return decision("lock", _folding(k))
    mixed = _followed_and_named(keyed)
    if mixed is not None:
        return decision("lock", mixed)
    for k in keyed:
        if k.kind == "packet" and k.non_rss and all(b is None for b in rss_bits(k.access)):
            return decision("lock", _unhashable(k))
    constraints = pair_constraints(name, keyed)
    if not constraints:
        # An index it handed out itself (allocate, then rejuvenate) names an entry of its own core.
        follows = sorted({o for k in keyed for o in k.follows} - {name})
        return decision("shard", "follows " + ", ".join(follows) if follows else
                        "no keyed access: each core keeps its own entries", follows=follows)
    for c in constraints:
        if not c.equal:
            opaque = (f"a choice among more than {CHOICES} conditions"
                      if any(k.kind == "packet" and chooses_too_much(k.access.key) for k in keyed)
                      else "e.g. a hash or sum of fields")
            return decision("lock", f"{_pair_sites(name, keyed, c)}: the keys can be equal for packets that share no "
                                    f"RSS-hashable field ({opaque})")
    overridden = bool(override)
    natural = constraints
    for dev, fields in override.items():
        constraints = tuple(restrict(c, dev, frozenset(fields)) for c in constraints)
    def agreed(pairs) -> list[tuple[int, tuple[str, ...]]]:
        out = []
        for dev in devices:
            sets = [f for f in (fields_on(c, dev) for c in pairs) if f is not None]
            if sets:
                common = frozenset.intersection(*sets)
                out.append((dev, tuple(f for f in RSS_NAMES if f in common)))
        return out

    def text(per_dev) -> str:
        return "; ".join(f"device {d}: {', '.join(f) or 'no field'}" for d, f in per_dev)

    fields = agreed(constraints)
    reason = f"entries are touched only by packets that agree on {text(agreed(natural))}"
    xored = _xored_fields(keyed)
    if xored:
        reason += (f" (the key XORs {' and '.join(f'{a} with {b}' for a, b in xored)}: packets whose XORs are "
                   "equal share an entry)")
    if overridden:
        reason += f" (overridden to hash {text(sorted((d, tuple(f)) for d, f in override.items()))})"
    return decision("shard", reason, fields, constraints, overridden, natural)


def _pair_sites(name: str, keyed: tuple[KeyedAccess, ...], c: PairConstraint) -> str:
    """The two accesses of constraint ``c`` in the NF's terms (its origin names them as the engine
    does): ``fw.c:90 `...` (device 0) and fw.c:101 `...` (device 1)``."""
    packet = [k for k in keyed if k.kind == "packet"]
    for k1 in packet:
        for k2 in packet:
            for d1 in k1.path.devices:
                for d2 in k2.path.devices:
                    if c.origin == f"{name}: {k1.where} (device {d1}) ~ {k2.where} (device {d2})":
                        if k1.site != k2.site:
                            return f"{k1.site} (device {d1}) and {k2.site} (device {d2})"
                        return f"{k1.site} ({f'two device {d1} packets' if d1 == d2 else f'devices {d1} and {d2}'})"
    return name


def _xored_fields(keyed: tuple[KeyedAccess, ...]) -> list[tuple[str, str]]:
    """The pairs of RSS fields some packet key XORs bit by bit (``src ^ dst``), in field order."""
    found = set()
    for k in keyed:
        if k.kind != "packet":
            continue
        for way in key_alternatives(k.access.key, xor=True):
            for bit in way:
                parts = rss_parts(bit)
                if parts is not None:
                    found.add(tuple(sorted({parts[0][0], parts[1][0]}, key=RSS_NAMES.index)))
    return sorted((p for p in found if len(p) == 2), key=lambda p: (RSS_NAMES.index(p[0]), RSS_NAMES.index(p[1])))


def _by_device(k: KeyedAccess) -> str:
    """Why an entry picked by the input device alone locks its object. The device is no packet
    field: RSS hashes each device's packets over every core (a RETA per device, all of them filled
    with every core), so every core gets packets of that device and needs its one entry."""
    devices = " and ".join(str(d) for d in k.path.devices)
    via = ", ".join(k.device_via)
    # A global key's values come only from objects no packet writes: copied to every core.
    through = (f", through {via}, which the NF reads at the device's index and every core keeps a copy of "
               f"(packets only read it)," if via and not k.access.by_device else "")
    return (f"{k.site} {k.uses_key}, which depends on the input device (device {devices} on that "
            f"path){through} and on no packet field: every packet of device {devices} that takes that path touches "
            f"that one entry, whatever its flow, and RSS spreads each device's packets over every core")


def _folding(k: KeyedAccess) -> str:
    """Why a key that maps several values of another object to one entry locks its object."""
    named = all(possessive(o) in k.key_words for o in k.follows)  # "chain's index (x.c:9)" says whence
    return f"{k.site} {k.uses_key}{'' if named else ', a value from ' + ', '.join(k.follows)}: {k.folded}"


def _unhashable(k: KeyedAccess) -> str:
    """Why a key none of whose bits is an RSS field's bit locks its object. A key that mixes
    hashable fields in (a hash of the 5-tuple) is named as such: the fields RSS cannot hash are
    not the whole reason, since the hash alone would lock it."""
    hashable = sorted(s for s in symbols_of(k.access.key) if s.startswith("p.") and s not in k.non_rss)
    if not hashable:
        return f"{k.site} is keyed by {fields_words(k.non_rss)}, which RSS cannot hash"
    return (f"{k.site} is keyed by a mix of {fields_words(hashable + list(k.non_rss))} (no key bit is one "
            f"field's bit: a hash, a sum), so packets that share an entry need agree on no field RSS hashes "
            f"({fields_words(k.non_rss)}: not hashable at all)")


def _followed_and_named(keyed: tuple[KeyedAccess, ...]) -> Optional[str]:
    """Why an object some access names by another object's value and another by packet fields
    cannot be sharded by pair constraints, or None.

    An entry named by a value from another object (a port computed from a fresh index) lives on the
    core that owns that object's entry; one named by packet fields lives on the core RSS picks for
    the packet. No pair constraint relates the two, so a packet may look on its own core for an entry
    another core made (a NAT whose replies name the mapping by a port it derived from its index).
    Sharding by allocation, when the value maps back to one field, replaces this lock."""
    follows = next((k for k in keyed if k.kind == "follows"), None)
    named = next((k for k in keyed if k.kind == "packet"), None)
    if follows is None or named is None:
        return None
    fields = fields_words(sorted(s for s in symbols_of(named.access.key) if s.startswith("p.")))
    said = all(possessive(o) in follows.key_words for o in follows.follows)  # "pool's index (x.c:9)" says whence
    whence = "" if said else f", a value from {', '.join(follows.follows)}"
    return (f"{follows.site} names an entry by {follows.key_words}{whence} and by no packet field, while "
            f"{named.site} names entries by {fields}: "
            f"the first lives on the core of the packet that made {possessive(', '.join(follows.follows))} entry, the "
            f"second on the core RSS picks for {fields}, and no RSS key relates the two")


def _lock_dangling_indices(analysis: Analysis, decisions: list[ObjectDecision],
                           keyed_by: Mapping[str, tuple[KeyedAccess, ...]]) -> list[ObjectDecision]:
    """Lock a sharded dchain whose indices another object keeps past their release.

    An index the NF stores in an object that the dchain's expiry does not clear (a vector cell, a
    map value) dangles once the dchain expires or frees it; when the NF later looks the stored index
    up in the dchain, it may find it handed out again, to another entry. Which entry that is follows
    the order in which indices are handed out, and a sharded build gives every core its own dchain
    and order: it would differ from the sequential NF. Under a lock the dchain keeps the sequential
    order. (A dchain the NF never expires or frees has no dangling index: sharding it is safe.)"""
    by_name = {o.name: o for o in decisions}
    out = []
    for o in decisions:
        if o.kind == "dchain" and o.decision == "shard":
            stale = _dangling_use(analysis, o.name, keyed_by.get(o.name, ()), by_name)
            if stale is not None:
                keeper, where, how = stale
                o = replace(o, decision="lock", reason=(
                    f"{keeper} keeps indices of {o.name} that {how} ({where} looks one up): "
                    f"once {o.name} releases an index it may hand it out again, to another entry, and which one "
                    f"depends on the order indices are handed out, which sharding changes (a dchain per core)"))
        out.append(o)
    return out


def _lock_inherited_cells(analysis: Analysis, decisions: list[ObjectDecision]) -> list[ObjectDecision]:
    """Lock a sharded dchain whose reused indices hand a new entry its last holder's cells
    (explorer/sharding/recycling.py); what follows it is locked with it by ``_follow``."""
    chains = frozenset(o.name for o in decisions if o.kind == "dchain" and o.decision == "shard")
    if not chains:
        return decisions
    followers = followers_of(analysis, chains, {o.name: o.follows for o in decisions},
                             {o.name: o.kind for o in decisions})
    why = inherited_cells(analysis, chains, followers)
    return [replace(o, decision="lock", reason=why[o.name]) if o.name in why else o for o in decisions]


def _dangling_use(analysis: Analysis, chain: str, keyed: tuple[KeyedAccess, ...],
                  by_name: Mapping[str, ObjectDecision]) -> Optional[tuple[str, str, str]]:
    """(the object that keeps ``chain``'s indices, where one is looked up, what releases them), or None.

    A keeper lets an index go with it when the chain's expiry clears the keeper too, or when every
    path that frees an index erases from the keeper (a map) the key it found that index by: a
    connection table that erases a closed connection and frees its slot keeps no freed slot."""
    partners: set[str] = set()
    expired = False
    freeing = []
    for path in analysis.paths:
        for access in path.accesses:
            if access.object != chain:
                continue
            if access.call.startswith("nf_expire_items"):
                partners.update(access.related)
                expired = True
            elif access.call == "nf_dchain_free_index":
                freeing.append((path, access))
    if not expired and not freeing:
        return None
    for k in keyed:
        for keeper in k.follows:
            if keeper == chain or keeper not in by_name:
                continue
            if expired and keeper not in partners:
                return keeper, k.site, "its expiry does not clear"
            if not all(_erased_with(path, free, keeper) for path, free in freeing):
                return keeper, k.site, "it does not erase when nf_dchain_free_index frees them"
    return None


def _erased_with(path: CallPath, free: Access, keeper: str) -> bool:
    """Whether ``path``, which frees the index ``free`` names, erases from the map ``keeper`` the key
    by which it found that index (the same term: a key rebuilt another way is not recognised)."""
    index = str(free.key) if free.key is not None and free.key.num_args() == 0 else None
    found = [a.key for a in path.accesses if a.object == keeper and a.call == "nf_map_get"
             and len(a.results) > 1 and a.results[1] == index]
    return any(a.object == keeper and a.call == "nf_map_erase" and a.key is not None
               and any(a.key.eq(key) for key in found) for a in path.accesses)


def _lock_partial_expiry(analysis: Analysis, decisions: list[ObjectDecision]) -> list[ObjectDecision]:
    """Lock sharded objects that some path touches without expiring them first.

    Sharded, each core expires its own entries, and only when one of its own packets runs the
    expiry. That matches the sequential NF only if every packet that looks at the entries expires
    them first, at its own time (the usual expiry at the top of nf_process): then an entry is there
    exactly when it is young enough, whatever ran before. A path that reads them without expiring
    first sees whatever the last expiring packet left, and that was the last such packet of the
    whole NF sequentially but of its own core when sharded, so the two can differ (a reply let
    through one core that the sequential NF had expired on another flow's packet). The same holds
    when the expiries pass different ages (``expiry_times``)."""
    sharded = {o.name for o in decisions if o.decision == "shard"}
    groups: dict[str, frozenset[str]] = {}  # expired object -> the objects its expiry clears
    for path in analysis.paths:
        for access in path.accesses:
            if access.op == Op.EXPIRE:
                groups[access.object] = groups.get(access.object, frozenset({access.object})) | set(access.related)
    unsafe: dict[str, str] = {}  # object -> why
    for expired, group in sorted(groups.items()):
        if not group & sharded:
            continue
        for path in analysis.paths:
            for access in path.accesses:
                if access.op == Op.EXPIRE and access.object == expired:
                    break  # expired first on this path: what follows sees only young entries
                if access.object in group:
                    why = (f"{access_site(access)} uses {access.object} without "
                           f"expiring {expired} first, as other paths do: sharded, an entry expires only when a "
                           f"packet of its own core expires it, so that path could find one the sequential NF "
                           f"has already expired")
                    for name in group:
                        unsafe.setdefault(name, why)
                    break
            if expired in unsafe:
                break
    for expired, why in sorted(uneven_expiries(analysis).items()):
        if groups.get(expired, frozenset()) & sharded:
            for name in groups[expired]:
                unsafe.setdefault(name, why)
    return [replace(o, decision="lock", reason=unsafe[o.name]) if o.decision == "shard" and o.name in unsafe else o
            for o in decisions]


def _follow(decisions: list[ObjectDecision]) -> list[ObjectDecision]:
    """An object whose keys only follow other objects is locked when one of those is (to a fixpoint:
    following is transitive)."""
    changed = True
    while changed:
        locked = {o.name for o in decisions if o.decision == "lock"}
        changed = False
        out = []
        for o in decisions:
            sources = [name for name in o.follows if name in locked]
            if o.decision == "shard" and sources:
                o = replace(o, decision="lock", reason=f"its indices come from {', '.join(sources)}, which is locked")
                changed = True
            out.append(o)
        decisions = out
    return decisions


def _override_conflict(name: str, override: Mapping[int, tuple[str, ...]], natural: PairConstraint) -> str:
    """Why an override leaves two packets that share an entry of ``name`` with nothing to agree on."""
    asked = "; ".join(f"device {d}: {', '.join(f)}" for d, f in sorted(override.items()))
    needs = []
    for dev in sorted({natural.dev1, natural.dev2}):
        fields = fields_on(natural, dev) or frozenset()
        needs.append(f"device {dev}: {', '.join(f for f in RSS_NAMES if f in fields) or 'nothing hashable'}")
    return (f"the override of {name} ({asked}) breaks {natural.origin}: those packets agree only on "
            f"{'; '.join(needs)}, which the override does not hash")


def _widened(name: str, dev: int, asked: frozenset[str], agreed: frozenset[str], natural: PairConstraint) -> str:
    extra = ", ".join(f for f in RSS_NAMES if f in asked - agreed)
    return (f"the override hashes {extra} on device {dev}, but {natural.origin}: packets that share an entry of "
            f"{name} agree only on {', '.join(f for f in RSS_NAMES if f in agreed) or 'nothing hashable'} there")


def _no_common_field(dev: int, per_obj: list[tuple[str, frozenset[str]]]) -> str:
    merged: dict[str, frozenset[str]] = {}
    for name, fields in per_obj:
        merged[name] = merged[name] & fields if name in merged else fields
    parts = ", ".join(f"{name} needs {{{', '.join(f for f in RSS_NAMES if f in fields) or 'nothing hashable'}}}"
                      for name, fields in sorted(merged.items()))
    return f"device {dev}: no RSS field is common to every sharded object ({parts})"


def _only_hashed(c: PairConstraint, hashed: Mapping[int, tuple[str, ...]]) -> PairConstraint:
    keep = tuple((x, y) for x, y in c.equal if x[0] in hashed[c.dev1] and y[0] in hashed[c.dev2])
    return PairConstraint(c.dev1, c.dev2, keep, c.origin)
