"""Who writes an object, and which packets those writers are: the facts the replicate decision needs.

An object's *packet-driven* writes are its mutating accesses other than expiry (a map put, a vector
cell that changes, a dchain index allocated, refreshed or freed); *time-driven* writes are expiry
(``nf_expire_items``), which depends on ``now`` and the stored timestamps, not on the packet. The
paths with packet-driven writes are the object's writers. Their *packet class* is what the header
fields alone say about them: the path condition's conjuncts over packet fields, and the fields those
conjuncts pin to one value (Z3 decides "pinned": a model's value, then no other value is possible).

A class that pins a port, an address, a MAC or a non-IPv4 EtherType is *narrow*: control traffic
such as a load balancer's heartbeats (UDP to ``LB_HEARTBEAT_PORT`` on the backend side) or a
firewall's rule updates. Narrow classes are assumed rare; the simulator measures the share of a
trace's packets that fall into them (the write share), so the assumption can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import z3

from explorer import z3_check
from explorer.ir import Analysis, CallPath, Location, Op
from explorer.nf_terms import site
from explorer.sharding.analysis_memo import memo
from explorer.symbex.bitvec import conjuncts, symbols_of
from explorer.wire import ETHER_TYPE_IPV4, PROTO_TCP, PROTO_UDP

# Fields whose value, when a class pins it, names a narrow class (plus a non-IPv4 EtherType).
NARROW_FIELDS = ("p.l4.dport", "p.l4.sport", "p.ipv4.dst", "p.ipv4.src", "p.ether.dst", "p.ether.src")
# Fields reported when pinned, in this order.
PINNABLE = ("p.ether.type", "p.ipv4.proto", *NARROW_FIELDS)
_PROTOCOLS = {PROTO_TCP: "TCP", PROTO_UDP: "UDP"}
_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class PacketClass:
    """The packets that may take one path, as far as the header fields tell."""

    devices: tuple[int, ...]
    pinned: tuple[tuple[str, int], ...]  # (field symbol, value), in PINNABLE order

    @property
    def narrow(self) -> bool:
        return any(name in NARROW_FIELDS or (name == "p.ether.type" and value != ETHER_TYPE_IPV4)
                   for name, value in self.pinned)

    @property
    def text(self) -> str:
        parts = [f"device {', '.join(map(str, self.devices))}"]
        for name, value in self.pinned:
            if name == "p.ether.type" and value == ETHER_TYPE_IPV4:
                continue
            shown = _value_text(name, value)
            parts.append(f"{name} == {shown}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"devices": list(self.devices), "pinned": {n: v for n, v in self.pinned}, "narrow": self.narrow,
                "text": self.text}


def _value_text(name: str, value: int) -> str:
    if name in ("p.ipv4.src", "p.ipv4.dst"):
        return ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))
    if name == "p.ipv4.proto":
        return f"{value} ({_PROTOCOLS[value]})" if value in _PROTOCOLS else str(value)
    if name in ("p.ether.src", "p.ether.dst"):
        return ":".join(f"{value >> s & 255:02x}" for s in range(40, -8, -8))
    if name == "p.ether.type":
        return f"0x{value:04x}"
    return str(value)


@dataclass(frozen=True)
class Write:
    """One packet-driven write of an object on a path."""

    path: int
    call: str
    location: Location
    refresh: bool  # a dchain index's timestamp refreshed (nf_dchain_rejuvenate_index): only expiry reads it

    @property
    def where(self) -> str:
        return f"path {self.path} {self.call} at {self.location}"

    @property
    def site(self) -> str:
        """The write in the NF's terms: ``lb.c:250 `nf_vector_return(backend_info, i, b)```."""
        return site(self.location, self.call)


@dataclass(frozen=True)
class Writers:
    """Every packet-driven write of one object, and the classes of the packets that make them."""

    object: str
    writes: tuple[Write, ...]
    classes: tuple[tuple[int, PacketClass], ...]  # (path, its class) for every writing path
    expired: bool  # expiry (time-driven) changes it too

    @property
    def paths(self) -> tuple[int, ...]:
        return tuple(sorted({w.path for w in self.writes}))

    def without_refreshes(self) -> "Writers":
        """The writers left if refreshes stayed core-local (a per-replica timestamp)."""
        writes = tuple(w for w in self.writes if not w.refresh)
        paths = {w.path for w in writes}
        return Writers(self.object, writes, tuple((p, c) for p, c in self.classes if p in paths), self.expired)

    @property
    def rare(self) -> bool:
        """Every writing path is a narrow packet class (an object only expiry writes is rare too)."""
        return all(c.narrow for _, c in self.classes)

    @property
    def class_text(self) -> str:
        texts = sorted({c.text for _, c in self.classes})
        return "; ".join(texts) or "none"

    def frequent(self) -> tuple[Write, ...]:
        """The writes made on paths whose packet class is not narrow."""
        wide = {p for p, c in self.classes if not c.narrow}
        return tuple(w for w in self.writes if w.path in wide)

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "paths": list(self.paths), "writes": [w.where for w in self.writes],
                "classes": {str(p): c.to_dict() for p, c in self.classes}, "expired": self.expired,
                "rare": self.rare}


def writers_of(analysis: Analysis) -> dict[str, Writers]:
    """Per object of the analysis, its packet-driven writes and their packet classes (computed once
    per analysis: each remedy nfx solve checks shards again and asks)."""
    kept = memo(analysis)
    if "writers" not in kept:
        kept["writers"] = _writers_of(analysis)
    return dict(kept["writers"])


def _writers_of(analysis: Analysis) -> dict[str, Writers]:
    writes: dict[str, list[Write]] = {o.name: [] for o in analysis.objects}
    expired: set[str] = set()
    for path in analysis.paths:
        for access in path.accesses:
            if access.op == Op.EXPIRE:
                expired.add(access.object)
                expired.update(access.related)
            elif access.op.mutates and access.object in writes:
                writes[access.object].append(Write(path.index, access.call, access.location,
                                                   access.call == "nf_dchain_rejuvenate_index"))
    classes: dict[int, PacketClass] = {}
    by_index = {p.index: p for p in analysis.paths}
    out = {}
    for name, found in writes.items():
        unique = tuple(dict.fromkeys(found))
        for w in unique:
            if w.path not in classes:
                classes[w.path] = packet_class(by_index[w.path])
        paths = sorted({w.path for w in unique})
        out[name] = Writers(name, unique, tuple((p, classes[p]) for p in paths), name in expired)
    return out


def packet_class(path: CallPath) -> PacketClass:
    """What the header fields alone say about the packets that take ``path``."""
    packet_only = [c for c in conjuncts(path.condition)
                   if all(s.startswith("p.") for s in symbols_of(c))]
    formula = z3.And(*packet_only) if packet_only else z3.BoolVal(True)
    solver = z3.Solver()
    solver.set("timeout", _TIMEOUT_MS)
    solver.add(formula)
    if z3_check.check(solver, timeout_ms=_TIMEOUT_MS) != z3.sat:
        return PacketClass(path.devices, ())
    model = solver.model()
    present = set().union(*(symbols_of(c) for c in packet_only)) if packet_only else set()
    pinned = []
    for name in PINNABLE:
        if name not in present:
            continue
        term = next(_find_symbol(c, name) for c in packet_only if name in symbols_of(c))
        value = model.eval(term, model_completion=True)
        solver.push()
        solver.add(term != value)
        if z3_check.check(solver, timeout_ms=_TIMEOUT_MS) == z3.unsat:
            pinned.append((name, value.as_long()))
        solver.pop()
    return PacketClass(path.devices, tuple(pinned))


def _find_symbol(term: z3.ExprRef, name: str) -> z3.ExprRef:
    """The constant named ``name`` inside ``term`` (it is there: symbols_of said so)."""
    todo = [term]
    while todo:
        t = todo.pop()
        if z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED and t.decl().name() == name:
            return t
        todo.extend(t.children())
    raise KeyError(name)


def writer_traffic(analysis: Analysis, sharding: Any, share: float = 0.001) -> Optional[dict[str, Any]]:
    """Traffic that exercises an NF with replicated objects as it is meant to run: when the rare
    writers are UDP packets to one port on one device and the packets that read the replicated
    objects go to one address on another (a load balancer's heartbeats and its virtual IP), the
    ``heartbeat`` generator with those values and ``share`` of heartbeats; else None."""
    names = {o.name for o in sharding.replicated}
    if not names:
        return None
    writers = writers_of(analysis)
    classes = [c for n in sorted(names) for _, c in writers[n].classes]
    pinned = [dict(c.pinned) for c in classes]
    if not pinned or any(p.get("p.ipv4.proto") != PROTO_UDP or "p.l4.dport" not in p for p in pinned):
        return None
    ports = {p["p.l4.dport"] for p in pinned}
    devices = {d for c in classes for d in c.devices}
    if len(ports) != 1 or len(devices) != 1:
        return None
    readers = [p for p in analysis.paths if set(p.devices) - devices
               and any(a.object in names or set(a.related) & names for a in p.accesses if not a.op.mutates)]
    vips = {dict(packet_class(p).pinned).get("p.ipv4.dst") for p in readers} - {None}
    spec: dict[str, Any] = {"kind": "heartbeat", "heartbeat_share": share, "heartbeat_port": ports.pop(), "size": 64}
    if len(vips) == 1:
        spec["vip"] = _value_text("p.ipv4.dst", vips.pop())
    return spec
