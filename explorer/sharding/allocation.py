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

``allocated_keys(analysis)`` takes what the path explorer recorded (``Analysis.allocated``: which
field carries which allocator's index, and which accesses key state by it on either side) and checks
it against the keys; ``by_allocation`` turns an object's pair constraints into the allocation's.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Optional, Sequence

import z3

from explorer import z3_check
from explorer.ir import Access, Analysis, CallPath
from explorer.nf_terms import FIELD_NAMES, bare_symbol, where
from explorer.rss.problem import PairConstraint
from explorer.sharding.constraints import KeyedAccess, pair_constraints
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.render import Renderer
from explorer.wire import FIELD_BY_NAME, RSS_BITS

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
    written: tuple[str, ...] = ()  # where allocating paths write the value into the packet (file:line, formula)
    emitting: tuple[int, ...] = ()  # the allocating paths that write it into the packet they forward
    words: str = "i"  # the allocating side's value in the NF's terms: "i", or "a value computed from i"

    @property
    def width(self) -> int:
        return RSS_BITS[self.field]

    def value(self, index: int) -> int:
        """The field value that names the entry of index ``index``."""
        return (self.offset + self.stride * index) % (1 << self.width)

    @property
    def formula(self) -> str:
        """``"1024 + i"``: the field value of index i, for people."""
        return _affine_text(self.offset, self.stride, self.width)

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "allocator": self.allocator, "capacity": self.capacity,
                "field": self.field, "devices": list(self.devices), "offset": self.offset, "stride": self.stride,
                "span": list(self.span), "allocating": [list(s) for s in self.allocating],
                "reading": [list(s) for s in self.reading], "value": self.value_text,
                "written": list(self.written)}


# ---- the analysis' allocated fields, checked against the keys -----------------------------------------

def allocated_keys(analysis: Analysis) -> tuple[AllocatedKey, ...]:
    """Every object entry keyed by an allocated value that packets of some device carry back in one
    RSS-hashable field (see ``AllocatedKey``), sorted by object.

    The analysis records where such values go (``ir.AllocatedField``: the allocator, the value
    ``f(index)`` a forwarded packet carries, the reply field that brings it back, the accesses keyed
    by either); here each object it names is checked against the keys themselves: on the allocating
    paths the key holds a function of the fresh index in some bits, the reading accesses hold the
    reply field in the same bits, and the two name one entry exactly when the field is ``f(i)``."""
    capacities = {o.name: o.capacity for o in analysis.objects if o.kind == "dchain"}
    paths = {p.index: p for p in analysis.paths}
    found: dict[str, AllocatedKey] = {}
    for record in analysis.allocated:
        reply = FIELD_BY_NAME.get(record.reply_field or "")
        if reply is None or reply.rss_name is None or record.allocator not in capacities:
            continue
        capacity = capacities[record.allocator]
        carried = _affine(record.value, z3.BitVec(f"{record.allocator}.index", 32), reply.bits, capacity)
        if carried is None:
            continue
        emitting = [paths[i] for i in record.paths if _fresh_index(paths[i], record.allocator) is not None]
        readers = {k.object: k for k in record.reply_keys}
        keyed = {k.object: set(k.paths) for k in record.keyed}
        for obj in sorted(readers):
            allocating = [(p, at, a) for p in emitting for at, a in _keyed_by(p, record.allocator)
                          if a.object == obj and (obj == record.allocator or p.index in keyed.get(obj, ()))]
            reading = [(paths[i], at, a) for i in readers[obj].paths for at, a in enumerate(paths[i].accesses)
                       if a.object == obj and a.key is not None and reply.name in symbols_of(a.key)]
            key = _checked(obj, record, reply, carried, capacity, allocating, reading)
            if key is not None and obj not in found:
                found[obj] = key
    return tuple(found[name] for name in sorted(found))


def _fresh_index(path: CallPath, allocator: str) -> Optional[tuple[int, Access]]:
    """The path's allocation from ``allocator`` (its position and access), if it has one."""
    for at, access in enumerate(path.accesses):
        if access.call == ALLOCATE_CALL and access.object == allocator and len(access.results) >= 2:
            return at, access
    return None


def _keyed_by(path: CallPath, allocator: str):
    """The accesses of ``path`` whose key mentions the index it allocates from ``allocator`` (the
    allocation itself counts, keyed by the index it returns), with their positions."""
    position, allocation = _fresh_index(path, allocator)
    name = allocation.results[1]
    yield position, replace(allocation, key=z3.BitVec(name, 32), key_text=name)
    for at, access in enumerate(path.accesses):
        if at > position and access.key is not None and name in symbols_of(access.key):
            yield at, access


def _affine(value: z3.ExprRef, index: z3.BitVecRef, bits: int, capacity: int) -> Optional[tuple[int, int]]:
    """(offset, stride) when ``value`` (a ``bits``-wide function of ``index``) is ``offset + stride * i``
    for every i below ``capacity``, with no two alike; else None."""
    if value.size() != bits:
        return None
    at = lambda k: z3.simplify(z3.substitute(value, (index, z3.BitVecVal(k, 32))))  # noqa: E731
    first, second = at(0), at(1 if capacity > 1 else 0)
    if not (z3.is_bv_value(first) and z3.is_bv_value(second)):
        return None
    offset, stride = first.as_long(), (second.as_long() - first.as_long()) % (1 << bits)
    i, j = z3.BitVec("nfx.i", 32), z3.BitVec("nfx.j", 32)
    line = lambda k: z3.BitVecVal(offset, bits) + z3.BitVecVal(stride, bits) * _narrow(k, bits)  # noqa: E731
    limit = z3.BitVecVal(capacity, 32)
    for formulas in ([z3.ULT(i, limit), z3.substitute(value, (index, i)) != line(i)],
                     [z3.ULT(i, limit), z3.ULT(j, limit), i != j, line(i) == line(j)]):
        solver = _solver()
        solver.add(*formulas)
        if z3_check.check(solver, timeout_ms=Z3_TIMEOUT_MS) != z3.unsat:
            return None
    return offset, stride


def _narrow(term: z3.BitVecRef, bits: int) -> z3.BitVecRef:
    return z3.Extract(bits - 1, 0, term) if bits < term.size() else term


def _checked(obj: str, record: Any, reply: Any, carried: tuple[int, int], capacity: int, allocating: list,
             reading: list) -> Optional[AllocatedKey]:
    """The allocated key of ``obj`` when every allocating access's key names an entry in the same
    bits as every reading access's, exactly when the reply field is the value packets carried."""
    if not allocating or not reading:
        return None
    width = {a.key.size() for _, _, a in allocating} | {a.key.size() for _, _, a in reading}
    if len(width) != 1:
        return None
    spans = {(span, value.sexpr()): (span, value, path, a) for path, _, a in allocating
             for span, value in _spans(a.key, _index_symbol(path, record))}
    if len({span for span, _ in spans}) != 1:
        return None  # the value sits in different bits on different paths (or nowhere): no one relation
    ((lo, hi), _), *_ = spans
    parts = {z3.simplify(z3.Extract(hi, lo, a.key)).sexpr(): z3.simplify(z3.Extract(hi, lo, a.key))
             for _, _, a in reading}
    if len(parts) != 1:
        return None  # readers that compute the key part differently might name one entry apart
    (part,) = parts.values()
    if symbols_of(part) != {reply.name}:
        return None
    field = z3.BitVec(reply.name, reply.bits)
    for span, value, path, _ in spans.values():
        index = z3.BitVec(_index_symbol(path, record), 32)
        if _affine_field(value, index, part, field, capacity) != carried:
            return None
    first = next(iter(spans.values()))
    formula = _affine_text(carried[0], carried[1], reply.bits)
    written = tuple(f"{where(loc)} writes {FIELD_NAMES.get(record.field, record.field)} = {formula}"
                    for loc in record.written_at)
    words = "i" if bare_symbol(first[1]) == _index_symbol(first[2], record) else "a value computed from i"
    return AllocatedKey(
        obj, record.allocator, capacity, reply.rss_name, tuple(sorted(record.out_devices)), carried[0], carried[1],
        (lo, hi), tuple(sorted({(p.index, at) for p, at, _ in allocating})),
        tuple(sorted({(p.index, at) for p, at, _ in reading})), _text(first[1]), written,
        tuple(sorted({p.index for p, _, _ in allocating})), words)


def _index_symbol(path: CallPath, record: Any) -> str:
    return _fresh_index(path, record.allocator)[1].results[1]


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
        if z3_check.check(solver, timeout_ms=Z3_TIMEOUT_MS) != z3.sat:
            return None
        found = solver.model().eval(field, model_completion=True).as_long()
        solver.add(field != found)
        return found if z3_check.check(solver, timeout_ms=Z3_TIMEOUT_MS) == z3.unsat else None

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
        if z3_check.check(solver, timeout_ms=Z3_TIMEOUT_MS) != z3.unsat:
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

    @property
    def formula(self) -> str:
        """``"1024 + i"``: the field value of index i, for people."""
        return _formula_text(self)

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
            keyed_by = "an index i" if k.words == "i" else "a value computed from an index i"
            reason = (f"by allocation: its entries are keyed by {keyed_by} that {allocator} "
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
    return decision.decision == "lock" and not any(k.kind in ("scan", "global", "folds") for k in keyed)


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


def _affine_text(offset: int, stride: int, width: int) -> str:
    """``1024 + i``, ``(7 + 3 * i) mod 65536``: a value of index i, for people."""
    if stride == 1:
        return f"{offset} + i" if offset else "i"
    return f"({offset} + {stride} * i) mod {1 << width}"


def _formula_text(allocation: Allocation) -> str:
    return _affine_text(allocation.offset, allocation.stride, allocation.width)


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
