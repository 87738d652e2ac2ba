"""The values passed between the engine's stages: an analysed NF, its state objects and call paths.

Every class is a frozen dataclass with ``to_dict()`` for JSON. Z3 terms are kept next to their
readable text (``condition`` / ``condition_text``, ``key`` / ``key_text``): the engine's later stages
use the terms, views and JSON only the text.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional

import z3


class Op(str, enum.Enum):
    """What an access does to a state object (Maestro's vocabulary)."""

    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    VERIFY = "VERIFY"
    DESTROY = "DESTROY"
    EXPIRE = "EXPIRE"

    @property
    def mutates(self) -> bool:
        return self in (Op.WRITE, Op.CREATE, Op.UPDATE, Op.DESTROY, Op.EXPIRE)


@dataclass(frozen=True)
class Location:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "col": self.col}


@dataclass(frozen=True)
class StateObject:
    """A state-library object allocated by nf_init, bound to a global handle variable."""

    name: str  # the global variable's name, e.g. "flows"
    kind: str  # "map" | "vector" | "dchain" | "sketch" | "cht"
    alloc_index: int  # order of allocation in nf_init (the runtime's call log uses it)
    capacity: int  # entries / cells / indices / sketch width / cht height
    size: int = 0  # key size (map, sketch) or cell size (vector) in bytes; 0 otherwise
    layout: str = ""  # the key or cell C type, e.g. "struct flow_key", when known
    extra: tuple[tuple[str, int], ...] = ()  # kind-specific parameters, e.g. (("backends", 32),)
    location: Optional[Location] = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "alloc_index": self.alloc_index,
            "capacity": self.capacity,
            "size": self.size,
            "layout": self.layout,
            "extra": dict(self.extra),
            "location": self.location.to_dict() if self.location else None,
        }


def result_parts(symbol: str) -> tuple[str, str]:
    """A state call's result symbol split into its object and what it is: ``flows.value#2`` ->
    (``flows``, ``value``), ``st.flows.found#3`` -> (``st.flows``, ``found``); ("", "") for any other
    symbol. Object names may hold dots (a handle in a global struct), results never do."""
    base, hash_, _ = symbol.rpartition("#")
    obj, dot, what = base.rpartition(".")
    return (obj, what) if hash_ and dot and obj else ("", "")


@dataclass(frozen=True)
class Access:
    """One state-library call on a path.

    ``key`` is the key (map, sketch) as the concatenation of its bytes in memory order (byte 0 most
    significant), or the index (vector, dchain, cht row) as a 32-bit term; None for calls without
    one (allocation of a new index, expiry). ``results`` names the fresh symbols the call returned
    (e.g. ``("flows.found#2", "flows.value#2")``), in the order the runtime's call log lists them.
    """

    object: str
    op: Op
    call: str  # the nf_* function, e.g. "nf_map_get"
    key: Optional[z3.ExprRef]
    key_text: str
    results: tuple[str, ...]
    location: Location
    related: tuple[str, ...] = ()  # other objects the call touches (expiry's vector and map, cht's dchain)
    # The NF picks the key by the input device (``nf_vector_borrow(per_port, device)``): on a path
    # that one device takes, ``key`` is that device's constant, but the entry is the device's own.
    by_device: bool = False
    # What a write stores: the value of an nf_map_put (32 bits), or the content an nf_vector_return
    # that changed the cell hands back (as wide as the cell, byte 0 most significant, like the
    # borrow's ``cell`` result); None for other calls. The witness search solves for a packet that
    # stores what a later path needs to read.
    value: Optional[z3.ExprRef] = field(default=None, compare=False)
    # What an expiry passes as its time (nf_expire_items, nf_sketch_expire: entries last used
    # strictly before it go), as a 64-bit term; None for other calls. Sharding an expired object
    # needs every expiry of it to pass the same function of ``now``.
    time: Optional[z3.ExprRef] = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "related": list(self.related),
            "op": self.op.value,
            "call": self.call,
            "key": self.key_text,
            "results": list(self.results),
            "location": self.location.to_dict(),
        }


@dataclass(frozen=True)
class Verdict:
    """Where a path sends the packet: ``forward`` to ``device`` (a number, or text when it is
    computed, e.g. from state), ``drop`` or ``flood``."""

    kind: str  # "forward" | "drop" | "flood"
    device: Optional[int] = None
    device_text: str = ""
    device_term: Optional[z3.ExprRef] = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.kind != "forward":
            return self.kind
        return f"forward to {self.device if self.device is not None else self.device_text}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "device": self.device, "device_text": self.device_text}


@dataclass(frozen=True)
class FieldWrite:
    """A header field the path writes, with the value written (host order)."""

    field: str  # "p.ipv4.src"
    value_text: str
    value: Optional[z3.ExprRef] = field(default=None, compare=False)
    location: Optional[Location] = None

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value_text,
                "location": self.location.to_dict() if self.location else None}


@dataclass(frozen=True)
class CallPath:
    """One feasible execution path of nf_process."""

    index: int
    condition: z3.BoolRef = field(compare=False)
    condition_text: str
    devices: tuple[int, ...]  # input devices for which the path is feasible
    accesses: tuple[Access, ...]
    writes: tuple[FieldWrite, ...]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "condition": self.condition_text,
            "devices": list(self.devices),
            "accesses": [a.to_dict() for a in self.accesses],
            "writes": [w.to_dict() for w in self.writes],
            "verdict": self.verdict.to_dict(),
        }


@dataclass(frozen=True)
class KeyedBy:
    """The accesses to ``object`` on ``paths`` (input ``devices``) whose keys contain a given value."""

    object: str
    devices: tuple[int, ...]
    paths: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "devices": list(self.devices), "paths": list(self.paths)}


@dataclass(frozen=True)
class AllocatedField:
    """A header field that carries a value the NF allocated, and where that value comes back.

    On ``paths`` (input ``devices``) the NF writes ``value`` into ``field`` and forwards the packet
    on ``out_devices``. ``value`` is a function of one index the dchain ``allocator`` hands out: a
    term over the symbol ``<allocator>.index`` (32 bits), e.g. ``1024 + chain.index[15:0]`` for the
    NAT's external port. The index is allocated on the path itself (``allocated_at``) or read back
    from a map that stores allocated indices (``via``). Replies to those packets arrive on
    ``out_devices`` with the value in ``reply_field`` (the mirror of ``field``: a reply's
    destination port is the source port it answers); ``reply_keys`` are the accesses on those
    devices whose keys contain ``reply_field``, and ``keyed`` the accesses on the writing paths whose
    keys contain the allocated value itself. Together they say "the object is keyed by an
    allocated value on one device and by the field carrying it on the other", what sharding by
    allocation needs (see docs/design.md).
    """

    allocator: str
    field: str
    value: z3.ExprRef = field(compare=False)
    value_text: str
    devices: tuple[int, ...]
    out_devices: tuple[int, ...]
    paths: tuple[int, ...]
    via: tuple[str, ...]  # maps whose stored values are the allocator's indices, when the index comes from one
    allocated_at: tuple[Location, ...]  # the allocating calls
    written_at: tuple[Location, ...]  # the writes of the field
    reply_field: Optional[str]  # None for a field no reply mirrors (e.g. the TOS)
    reply_keys: tuple[KeyedBy, ...]
    keyed: tuple[KeyedBy, ...]

    @property
    def text(self) -> str:
        """One line for people: "device 1 p.l4.dport is 1024 + chain.index[15:0], allocated on device-0 paths"."""
        origin = f"allocated by {self.allocator} on device-{','.join(map(str, self.devices))} paths"
        if self.reply_field is None:
            return f"{self.field} is {self.value_text} on the way out ({origin})"
        return f"device {','.join(map(str, self.out_devices))} {self.reply_field} is {self.value_text}, {origin}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "allocator": self.allocator,
            "field": self.field,
            "value": self.value_text,
            "devices": list(self.devices),
            "out_devices": list(self.out_devices),
            "paths": list(self.paths),
            "via": list(self.via),
            "allocated_at": [loc.to_dict() for loc in self.allocated_at],
            "written_at": [loc.to_dict() for loc in self.written_at],
            "reply_field": self.reply_field,
            "reply_keys": [k.to_dict() for k in self.reply_keys],
            "keyed": [k.to_dict() for k in self.keyed],
            "text": self.text,
        }


@dataclass(frozen=True)
class Analysis:
    """Everything the path explorer learned about one NF."""

    nf: str  # the NF's name (file stem)
    source: str  # path of the analysed file
    defines: tuple[tuple[str, str], ...]  # effective configuration macros, sorted
    devices: int  # NF_DEVICES
    objects: tuple[StateObject, ...]  # in allocation order
    paths: tuple[CallPath, ...]
    fields_read: tuple[str, ...]  # packet fields nf_process reads, sorted
    seconds: float = field(default=0.0, compare=False)
    allocated: tuple[AllocatedField, ...] = ()  # header fields carrying allocated values

    def object(self, name: str) -> StateObject:
        for obj in self.objects:
            if obj.name == name:
                return obj
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nf": self.nf,
            "source": self.source,
            "defines": dict(self.defines),
            "devices": self.devices,
            "objects": [o.to_dict() for o in self.objects],
            "paths": [p.to_dict() for p in self.paths],
            "fields_read": list(self.fields_read),
            "allocated": [a.to_dict() for a in self.allocated],
        }
