"""Sharding by allocation: state keyed by a value the NF allocates and packets carry back.

A NAT picks each flow's external port itself (``NAT_START_PORT + index``, the index from a dchain)
and keys its WAN-side table by it; the WAN packets that reach that entry carry the port back in
their destination port. Maestro relates the two sides through the remote endpoint (LAN ``dst`` ~
WAN ``src``), which puts every flow to one server on one core. When the allocator is per core and
hands out only indices whose value the other device steers back to the same core, that pair
constraint is not needed:

* the device that reads the value back from a packet field hashes that field only;
* each core's allocator keeps the indices i whose field value ``offset + stride * i`` the NIC (key
  and RETA) sends to that core: a pool per core (``explorer.sharding.pools``);
* so the allocating device is free to hash whatever its other state needs (a NAT's LAN side: the
  full 4-tuple, the most entropy there is).

``allocated_keys(analysis)`` finds such keys in the analysis (the one place that derives them; the
path explorer may record them itself one day, and this function then reads that record);
``by_allocation`` turns an object's pair constraints into the allocation's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Optional, Sequence

import z3

from explorer.ir import Access, Analysis, CallPath, Op
from explorer.rss.problem import PairConstraint
from explorer.sharding.constraints import KeyedAccess, pair_constraints
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.render import Renderer
from explorer.wire import FIELD_BY_NAME, RSS_BITS, RSS_SYMBOL

ALLOCATE_CALL = "nf_dchain_allocate_new_index"
Z3_TIMEOUT_MS = 10_000
Site = tuple[int, int]  # (path index, access position on the path)


@dataclass(frozen=True)
class AllocatedKey:
    """Entries of ``object`` whose key holds, at key bits ``span`` (lo, hi; 0 = least
    significant), a value computed from an index ``allocator`` hands out (at the ``allocating``
    accesses' paths). Packets on ``devices`` name the same entry (``reading`` accesses) through
    the header field ``field`` exactly when ``field == (offset + stride * i) mod 2**width``, for
    every index i below ``capacity``, and those values are distinct."""

    object: str
    allocator: str
    capacity: int
    field: str  # RSS name, e.g. "dst_port"
    devices: tuple[int, ...]
    offset: int
    stride: int
    span: tuple[int, int]
    allocating: tuple[Site, ...]
    reading: tuple[Site, ...]
    value_text: str  # the allocating side's value, e.g. "1024 + chain.index#3[15:0]"
    written: tuple[str, ...] = ()  # where allocating paths write the value into the packet
    emitting: tuple[int, ...] = ()  # the allocating paths that write it into the packet they forward

    @property
    def width(self) -> int:
        return RSS_BITS[self.field]

    def value(self, index: int) -> int:
        """The field value that names the entry of index ``index``."""
        return (self.offset + self.stride * index) % (1 << self.width)

    @property
    def formula(self) -> str:
        """``"1024 + i"``: the field value of index i, for people."""
        if self.stride == 1:
            return f"{self.offset} + i" if self.offset else "i"
        return f"({self.offset} + {self.stride} * i) mod {1 << self.width}"

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "allocator": self.allocator, "capacity": self.capacity,
                "field": self.field, "devices": list(self.devices), "offset": self.offset, "stride": self.stride,
                "span": list(self.span), "allocating": [list(s) for s in self.allocating],
                "reading": [list(s) for s in self.reading], "value": self.value_text,
                "written": list(self.written)}


# ---- finding allocated keys in an analysis ----------------------------------------------------------

def allocated_keys(analysis: Analysis) -> tuple[AllocatedKey, ...]:
    """Every object entry keyed by an allocated value that packets of some device carry back in one
    RSS-hashable field (see ``AllocatedKey``), sorted by object."""
    capacities = {o.name: o.capacity for o in analysis.objects if o.kind == "dchain"}
    candidates: dict[tuple, dict[str, Any]] = {}
    for path in analysis.paths:
        for position, access in enumerate(path.accesses):
            if access.call != ALLOCATE_CALL or access.object not in capacities or len(access.results) < 2:
                continue
            index = z3.BitVec(access.results[1], 32)
            for site, keyed in _keyed_by(path, index, access, position):
                for span, value in _spans(keyed.key, index.decl().name()):
                    ident = (keyed.object, access.object, span, keyed.key.size())
                    entry = candidates.setdefault(ident, {"values": [], "sites": [], "written": [], "emitting": []})
                    entry["values"].append((index, value))
                    entry["sites"].append((path.index, site))
                    writes = _writes(path, index.decl().name())
                    entry["written"].extend(writes)
                    if writes and path.verdict.kind == "forward":
                        entry["emitting"].append(path.index)
    found = []
    for (obj, allocator, span, width), entry in sorted(candidates.items(), key=lambda kv: kv[0][:3]):
        key = _reading(analysis, obj, allocator, span, width, entry, capacities[allocator])
        if key is not None:
            found.append(key)
    return tuple(found)


def _keyed_by(path: CallPath, index: z3.BitVecRef, allocation: Access, position: int):
    """The accesses of ``path`` whose key mentions the fresh ``index`` (the allocation itself
    counts, keyed by the index it returns), with their positions."""
    name = index.decl().name()
    yield position, replace(allocation, key=index, key_text=name)
    for at, access in enumerate(path.accesses):
        if at > position and access.key is not None and name in symbols_of(access.key):
            yield at, access


def _parts(term: z3.ExprRef) -> list[z3.ExprRef]:
    """A key as its concatenated parts, most significant first."""
    if z3.is_app_of(term, z3.Z3_OP_CONCAT):
        return [p for child in term.children() for p in _parts(child)]
    return [term]


def _spans(key: z3.ExprRef, index: str) -> list[tuple[tuple[int, int], z3.ExprRef]]:
    """Runs of a key's parts made only of the fresh index (and constants): ((lo, hi), value)."""
    out, run, hi = [], [], key.size() - 1
    top = hi
    for part in _parts(key) + [None]:
        symbols = symbols_of(part) if part is not None else None
        if part is not None and symbols == {index}:
            if not run:
                top = hi
            run.append(part)
        elif run:
            lo = top - sum(p.size() for p in run) + 1
            value = run[0] if len(run) == 1 else z3.Concat(*run)
            out.append(((lo, top), z3.simplify(value)))
            run = []
        if part is not None:
            hi -= part.size()
    return out


def _writes(path: CallPath, index: str) -> list[str]:
    return [f"path {path.index} writes {w.field} = {w.value_text}" for w in path.writes
            if w.value is not None and symbols_of(w.value) == {index}]


def _reading(analysis: Analysis, obj: str, allocator: str, span: tuple[int, int], width: int,
             entry: dict[str, Any], capacity: int) -> Optional[AllocatedKey]:
    """The packet-keyed accesses of ``obj`` that name the allocated value through one header field,
    when every allocating site's value maps to that field by one affine bijection."""
    lo, hi = span
    by_field: dict[str, list[tuple[CallPath, int, z3.ExprRef]]] = {}
    for path in analysis.paths:
        for position, access in enumerate(path.accesses):
            if access.object != obj or access.key is None or access.key.size() != width:
                continue
            part = z3.simplify(z3.Extract(hi, lo, access.key))
            symbols = symbols_of(part)
            if len(symbols) == 1 and next(iter(symbols)) in FIELD_BY_NAME:
                field = FIELD_BY_NAME[next(iter(symbols))]
                if field.rss_name is not None:
                    by_field.setdefault(field.rss_name, []).append((path, position, part))
    if len(by_field) != 1:
        return None  # no packet names the value, or several fields do (not one thing to hash)
    name, readers = next(iter(by_field.items()))
    if any(not part.eq(readers[0][2]) for _, _, part in readers):
        return None  # readers that compute the key part differently might name one entry apart
    symbol = z3.BitVec(RSS_SYMBOL[name], RSS_BITS[name])
    mapping = None
    for index, value in entry["values"]:
        for _, _, part in readers:
            found = _affine_field(value, index, part, symbol, capacity)
            if found is None or (mapping is not None and found != mapping):
                return None
            mapping = found
    offset, stride = mapping
    value_text = _text(entry["values"][0][1])
    return AllocatedKey(
        obj, allocator, capacity, name, tuple(sorted({d for path, _, _ in readers for d in path.devices})), offset,
        stride, span, tuple(sorted(set(entry["sites"]))), tuple(sorted({(p.index, at) for p, at, _ in readers})),
        value_text, tuple(sorted(set(entry["written"]))), tuple(sorted(set(entry["emitting"]))))


def _text(term: z3.ExprRef) -> str:
    return Renderer().text(term)


def _solver() -> z3.Solver:
    solver = z3.Solver()
    solver.set("timeout", Z3_TIMEOUT_MS)
    return solver


def _affine_field(value: z3.ExprRef, index: z3.BitVecRef, part: z3.ExprRef, field: z3.BitVecRef,
                  capacity: int) -> Optional[tuple[int, int]]:
    """(offset, stride) such that, for every index i < capacity, ``part(field) == value(i)`` holds
    exactly when ``field == offset + stride * i`` (mod 2**width), those field values are distinct,
    and ``part`` never names one entry by two field values; None when no such map exists."""
    width = field.size()
    i = z3.BitVec("nfx.i", 32)
    j = z3.BitVec("nfx.j", 32)
    at = lambda k: z3.substitute(value, (index, k))  # noqa: E731

    def unique_field(k: int) -> Optional[int]:
        solver = _solver()
        solver.add(part == at(z3.BitVecVal(k, 32)))
        if solver.check() != z3.sat:
            return None
        found = solver.model().eval(field, model_completion=True).as_long()
        solver.add(field != found)
        return found if solver.check() == z3.unsat else None

    first = unique_field(0)
    second = unique_field(1) if capacity > 1 else first
    if first is None or second is None:
        return None
    stride = (second - first) % (1 << width)
    narrow = lambda k: z3.Extract(width - 1, 0, k) if width < 32 else k  # noqa: E731
    image = lambda k: z3.BitVecVal(first, width) + z3.BitVecVal(stride, width) * narrow(k)  # noqa: E731
    limit = z3.BitVecVal(capacity, 32)
    checks = [
        # the field names the entry exactly at the image of the index
        [z3.ULT(i, limit), (part == at(i)) != (field == image(i))],
        # distinct indices, distinct field values
        [z3.ULT(i, limit), z3.ULT(j, limit), i != j, image(i) == image(j)],
        # two field values never name one entry (reading packets that share one agree on the field)
        [field != z3.BitVec("nfx.other", width), part == z3.substitute(part, (field, z3.BitVec("nfx.other", width)))],
    ]
    for formulas in checks:
        solver = _solver()
        solver.add(*formulas)
        if solver.check() != z3.unsat:
            return None
    return first, stride


# ---- the sharding decision ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Allocation:
    """How one allocator is split into per-core pools: its indices i go to the core that the
    RSS plan of each of ``devices`` steers ``field = offset + stride * i`` to."""

    allocator: str
    capacity: int
    field: str
    devices: tuple[int, ...]
    offset: int
    stride: int
    objects: tuple[str, ...]  # the objects keyed by the allocated value
    reason: str
    emitting: tuple[int, ...] = ()  # paths that allocate and write the value into the packet they forward

    @property
    def width(self) -> int:
        return RSS_BITS[self.field]

    def value(self, index: int) -> int:
        return (self.offset + self.stride * index) % (1 << self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"allocator": self.allocator, "capacity": self.capacity, "field": self.field,
                "devices": list(self.devices), "offset": self.offset, "stride": self.stride,
                "objects": list(self.objects), "reason": self.reason, "emitting": list(self.emitting)}


def field_constraint(device: int, field: str, origin: str) -> PairConstraint:
    """Packets of ``device`` that agree on ``field`` reach the same core (and nothing else may move
    the RETA index): what steering by an allocated value needs."""
    bits = tuple(((field, i), (field, i)) for i in range(RSS_BITS[field]))
    return PairConstraint(device, device, bits, origin)


def by_allocation(analysis: Analysis, decisions: Sequence[Any], keyed: Mapping[str, tuple[KeyedAccess, ...]],
                  skip: Iterable[str] = ()) -> tuple[list[Any], tuple[Allocation, ...]]:
    """The decisions with every object keyed by an allocated value sharded by allocation (objects in
    ``skip``, e.g. overridden by the user, keep their pair constraints), and the allocations.

    An object qualifies when every packet-keyed access to it either uses the fresh index (on the
    path that allocates it) or reads the value back from the one field, and it is sharded, or
    locked only because of how those packets name its entries (a NAT that reads its state at
    ``ntohs(dst_port) - base`` relates no field Maestro's way); its allocator must end up sharded
    too."""
    decisions = list(decisions)
    position = {d.name: n for n, d in enumerate(decisions)}
    skipped = set(skip)
    per_allocator: dict[str, list[AllocatedKey]] = {}
    for key in allocated_keys(analysis):
        if key.object in skipped or not _may_allocate(decisions[position[key.object]], keyed[key.object]):
            continue
        sites = set(key.allocating) | set(key.reading)
        packet = [k for k in keyed[key.object] if k.kind == "packet"]
        if any((k.path.index, k.position) not in sites for k in packet):
            continue  # some access names these entries by other packet fields: pair constraints stay
        per_allocator.setdefault(key.allocator, []).append(key)
    # The allocator itself must end up sharded: by allocation too, or following other objects.
    per_allocator = {name: keys for name, keys in per_allocator.items()
                     if decisions[position[name]].decision == "shard" or any(k.object == name for k in keys)}

    allocations = []
    for allocator, keys in sorted(per_allocator.items()):
        if len({(k.field, k.offset, k.stride) for k in keys}) != 1:
            continue  # two objects read the value back differently: one pool cannot serve both
        first = keys[0]
        devices = tuple(sorted({d for k in keys for d in k.devices}))
        hashed = "; ".join(f"device {d}" for d in devices)
        written = sorted({w for k in keys for w in k.written})
        carried = f" ({'; '.join(written)})" if written else ""
        for k in keys:
            d = decisions[position[k.object]]
            origin = (f"{k.object}: keyed by {k.value_text} with i from {allocator}; device "
                      f"{', '.join(map(str, k.devices))} reads it back as {k.field} = {k.formula}")
            readers = [a for a in keyed[k.object] if a.kind == "packet" and (a.path.index, a.position) in k.reading]
            constraints = tuple(field_constraint(dev, k.field, origin) for dev in k.devices)
            constraints += tuple(_with_field(c, k.field) for c in pair_constraints(k.object, tuple(readers)))
            reason = (f"by allocation: its entries are keyed by {k.value_text}, an index i that {allocator} "
                      f"hands out{carried}; packets on {hashed} name them by {k.field} = {k.formula}, so "
                      f"{hashed} hashes {k.field} only and each core allocates only the i whose {k.field} "
                      f"it receives ({_maestro(d)})")
            decisions[position[k.object]] = replace(
                d, decision="shard", reason=reason, fields=tuple((dev, (k.field,)) for dev in k.devices), constraints=constraints,
                natural=constraints, allocation=allocator)
        a = decisions[position[allocator]]
        pools = (f"per-core pools: core c allocates only the indices i whose {first.field} {first.formula} "
                 f"{hashed} steers to c (capacity per core = its pool)")
        own = next((k for k in keys if k.object == allocator), None)
        if own is not None:  # its entries are named by the value itself (state at dport - base)
            pools += f"; packets on {hashed} name its indices by {own.field} = {own.formula}"
        elif a.reason:
            pools += f"; {a.reason}"
        decisions[position[allocator]] = replace(a, reason=pools, allocation=allocator)
        allocations.append(Allocation(allocator, first.capacity, first.field, devices, first.offset, first.stride,
                                      tuple(k.object for k in keys), pools,
                                      tuple(sorted({p for k in keys for p in k.emitting}))))
    return decisions, tuple(allocations)


def _may_allocate(decision: Any, keyed: tuple[KeyedAccess, ...]) -> bool:
    """Sharded, or locked only for how packets name its entries (pair constraints that relate no
    hashable field, keys of non-RSS fields), which the allocation's constraints replace; never an
    object some access scans or names by a key no packet determines."""
    if decision.decision == "shard":
        return True
    return decision.decision == "lock" and not any(k.kind in ("scan", "global") for k in keyed)


def _with_field(c: PairConstraint, field: str) -> PairConstraint:
    """A constraint between two reading accesses, with the field both read the value from related
    (the keys agree there exactly when the field does, which the bit walk cannot see through sums)."""
    extra = tuple(((field, i), (field, i)) for i in range(RSS_BITS[field]))
    return PairConstraint(c.dev1, c.dev2, tuple(sorted(set(c.equal) | set(extra))), c.origin)


def _maestro(decision: Any) -> str:
    """What pair-constraint sharding would do, from the decision it replaces."""
    if decision.decision == "lock":
        return f"pair constraints alone would lock it: {decision.reason}"
    fields = "; ".join(f"device {d}: {', '.join(f) or 'nothing'}" for d, f in decision.fields)
    return f"instead of pair constraints on {fields}" if fields else "instead of pair constraints"


def explain(allocation: Allocation, hashed: Mapping[int, Sequence[str]]) -> str:
    """Why an NF is sharded by allocation, in words: which objects, which field, which allocator,
    which devices."""
    devices = ", ".join(map(str, allocation.devices))
    others = [d for d in sorted(hashed) if d not in allocation.devices]
    free = "; ".join(f"device {d} hashes {', '.join(hashed[d]) or 'nothing'}" for d in others)
    return (f"{', '.join(allocation.objects)} {'is' if len(allocation.objects) == 1 else 'are'} keyed by a value the "
            f"NF allocates itself ({allocation.allocator} index i), which packets on device {devices} carry back in "
            f"{allocation.field} = {_formula_text(allocation)}: device {devices} hashes {allocation.field} only, and "
            f"each core's {allocation.allocator} hands out only the i whose {allocation.field} the NIC sends to that "
            f"core, so the other side needs no pair constraint with it"
            + (f" ({free}, as its own state needs)" if free else "")
            + "; the cost: a pool per core (capacity per core = its pool), and no value shared across cores")


def _formula_text(allocation: Allocation) -> str:
    if allocation.stride == 1:
        return f"{allocation.offset} + i" if allocation.offset else "i"
    return f"({allocation.offset} + {allocation.stride} * i) mod {1 << allocation.width}"


def summary(allocation: Allocation, name: str) -> str:
    """A sentence for people about ``name``, which ``allocation`` shards (the allocator or an object
    keyed by what it allocates)."""
    devices = ", ".join(map(str, allocation.devices))
    value = f"{allocation.field} = {_formula_text(allocation)}"
    if name == allocation.allocator and name not in allocation.objects:
        return (f"Allocates from a pool per core: core c hands out only the indices i whose {value} the NIC sends "
                f"back to core c (device {devices} hashes {allocation.field} only); its capacity per core is its "
                "pool.")
    return (f"Keyed by a value {allocation.allocator} allocates, which packets on device {devices} carry back in "
            f"{value}: device {devices} hashes {allocation.field} only, and each core allocates only the i whose "
            f"{allocation.field} comes back to it, so every entry and the packets that name it meet on one core "
            "without a pair constraint between the devices (sharded by allocation).")
