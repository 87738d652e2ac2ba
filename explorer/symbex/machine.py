"""The machine one run executes on: memory regions, the scopes of names, the call stack, the path
it follows and the effects it records.

The visitors (statements, expressions, lvalues, initializers, static types) and the library models
all act through one Machine, so that the rules every NF keeps (headers only through the accessors,
state only in the library, globals written only by nf_init) are checked in one place: ``read`` and
``write``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import z3

from explorer.errors import UnsupportedError
from explorer.ir import Location
from explorer.symbex.bitvec import bv
from explorer.symbex.ctype import ArrayType, CType, FunctionType, PointerType, StructType, VoidType
from explorer.symbex.effects import Effects, ObjectInfo
from explorer.symbex.memory import Region, cell_key, cells_of, value_of
from explorer.symbex.packet import PacketSymbols
from explorer.symbex.program import Program, Scope, TypeResolver, location_of
from explorer.symbex.state import PathState
from explorer.symbex.values import Ptr, SemanticsError, Value, convert

MAX_STEPS = 500_000  # statements per run (nf_init, or one path of nf_process)


@dataclass(frozen=True)
class Snapshot:
    """A machine's state between two statements of one function call, to come back to (also from
    another run that reached the same point the same way): memory, the names of the enclosing block
    scopes, the fresh-name and step counters and the effects."""

    memory: dict[str, Region]
    scopes: tuple[dict, ...]  # the variables of each scope, innermost last
    counter: int
    steps: int
    effects: Effects


class Machine:
    """One run: nf_init (mode "init", concrete) or one path of nf_process (mode "process")."""

    def __init__(self, program: Program, memory: dict[str, Region], state: PathState, mode: str,
                 objects: dict[str, ObjectInfo], packet: Optional[PacketSymbols],
                 constant: Callable[[Any], int]):
        self.program = program
        self.memory = memory
        self.state = state
        self.mode = mode
        self.objects = objects  # by name; shared by every run of one analysis
        self.packet = packet  # nf_process's inputs (None in nf_init)
        self.effects = Effects()
        self.scopes: list[Scope] = [program.file_scope]
        self.types = TypeResolver(constant)
        self.call_stack: list[str] = []
        self.returned_at: Any = None  # the return statement that ended the outermost call
        self.steps = 0
        self.counter = 0

    # ------------------------------------------------------------------ names and errors
    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}#{self.counter}"

    @staticmethod
    def loc(node: Any) -> Optional[Location]:
        return location_of(node)

    @staticmethod
    def fail(node: Any, message: str) -> UnsupportedError:
        return UnsupportedError(message, location=location_of(node))

    def step(self, node: Any) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"the analysis of this path exceeded {MAX_STEPS} steps")

    def resolve_type(self, node: Any) -> CType:
        return self.types.resolve(node, self.scopes)

    def declared_type(self, decl: Any) -> CType:
        """The type of a declared variable (an unsized array takes its initializer's length)."""
        return self.types.declared(decl.type, decl.init, self.scopes)

    def lookup_var(self, name: str) -> Optional[tuple[str, CType]]:
        for scope in reversed(self.scopes):
            hit = scope.vars.get(name)
            if hit is not None:
                return hit
        return None

    def lookup_enum(self, name: str) -> Optional[int]:
        for scope in reversed(self.scopes):
            if name in scope.enums:
                return scope.enums[name]
        return None

    def is_function(self, name: str) -> bool:
        return name in self.program.functions or name in self.program.prototypes

    # ------------------------------------------------------------------ memory
    def end_scope(self, scope: Scope) -> None:
        """Forget the local variables of a block that ended. C ends their lifetime there, so no later
        code may observe them (a pointer kept to one reads as a variable that no longer exists), and
        paths that differ only in them merge: a rule loop's ``break`` at rule 3 and at rule 40 leave
        different dead counters ``i``, which kept a 64-rule ACL's 25 ways out of its loop apart."""
        for region, _ in scope.vars.values():
            held = self.memory.get(region)
            if held is not None and held.kind == "local":
                del self.memory[region]

    def new_region(self, name: str, kind: str, label: str, size: int) -> Region:
        region = Region(name, kind, label, size)
        self.memory[name] = region
        return region

    def _region(self, ptr: Ptr, node: Any, n: int, write: bool) -> tuple[Region, int]:
        if ptr.region is None:
            raise self.fail(node, "dereference of a NULL or integer pointer (did a header accessor return NULL "
                                  "on this path?)")
        region = self.memory.get(ptr.region)
        if region is None:
            raise self.fail(node, "dereference of a pointer to a variable that no longer exists")
        if region.kind == "packet":
            raise self.packet_bytes(node)
        offset = ptr.offset
        if not isinstance(offset, int):
            offset = self.bounded_offset(region, offset, n, node)
        if region.kind == "handle":
            raise self.fail(node, f"the state object {region.label} is opaque; use the library's functions")
        if not region.alive:
            raise self.fail(node, f"{region.label} is used after nf_vector_return")
        if write:
            if region.shared:
                region = self.own(ptr.region)
            if region.readonly:
                raise self.fail(node, f"write to read-only {region.label}")
            if region.kind == "global" and self.mode == "process":
                raise self.fail(node, f"nf_process writes {region.label}; state that outlives a packet must live "
                                      "in the state library (globals are written only by nf_init)")
        try:
            region.check(offset, n)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        return region, offset

    def packet_bytes(self, node: Any) -> UnsupportedError:
        """The error for reading or writing the packet's bytes other than through a header accessor
        (whatever the index, bounded or not: the analysis names every field it reasons about)."""
        return self.fail(node, "the packet's bytes are read directly; use nf_ether_header(), nf_ipv4_header() "
                               "and nf_tcpudp_header() so that every header field has a name")

    def own(self, name: str) -> Region:
        """The region ``name``, copied first if a snapshot shares it (so that this run may change it)."""
        region = self.memory[name]
        if region.shared:
            region = self.memory[name] = region.copy()
        return region

    def bounded_offset(self, region: Region, offset: Any, n: int, node: Any) -> int:
        in_bounds = z3.ULE(bv(offset, 64), max(region.size - n, 0)) if region.size >= n else False
        if not self.state.proves(in_bounds):
            raise self.fail(node, f"a symbolic index into {region.label} cannot be bounded within its "
                                  f"{region.size} bytes")
        return self.state.concretize(offset, self.loc(node), "a pointer offset")

    def read(self, ptr: Ptr, n: int, node: Any) -> tuple:
        region, offset = self._region(ptr, node, n, write=False)
        self.effects.note_read(region.kind, region.name, offset, n)
        return tuple(region.cells[offset:offset + n])

    def write(self, ptr: Ptr, cells: tuple, node: Any) -> None:
        region, offset = self._region(ptr, node, len(cells), write=True)
        region.write(offset, cells, self.loc(node) if region.kind == "header" else None)

    def load(self, ptr: Ptr, t: CType, node: Any) -> Value:
        if isinstance(t, (VoidType, FunctionType)) or (isinstance(t, StructType) and not t.complete):
            raise self.fail(node, f"cannot read a value of type {t}")
        cells = self.read(ptr, t.size, node)
        if not isinstance(t, StructType):
            self._set_before_read(ptr, t, node)
        try:
            return value_of(cells, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def _set_before_read(self, ptr: Ptr, t: CType, node: Any) -> None:
        """A number or pointer read from a local that no path has set yet: the analysis would take
        it as 0, the built NF as whatever the stack held (a verdict, a key, a branch on it differ)."""
        region = self.memory.get(ptr.region or "")
        if region is None or not region.unset or not isinstance(ptr.offset, int):
            return
        if any(i in region.unset for i in range(ptr.offset, ptr.offset + t.size)):
            raise self.fail(node, f"{region.label} is read before it is set on this path: C leaves it as the "
                                  "stack held it; set it on every path first (or initialise it where it is declared)")

    def value_at(self, ptr: Ptr, t: CType, node: Any) -> Value:
        """The rvalue of the object of type ``t`` at ``ptr``: arrays decay to a pointer to their first
        element, anything else is loaded."""
        if isinstance(t, ArrayType):
            return Ptr(PointerType(t.elem), ptr.region, ptr.offset)
        if isinstance(t, FunctionType):
            raise self.fail(node, "function pointers are not supported")
        return self.load(ptr, t, node)

    def store(self, ptr: Ptr, t: CType, value: Value, node: Any) -> None:
        try:
            cells = cells_of(value, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        self.write(ptr, cells, node)

    def convert(self, value: Value, t: CType, node: Any) -> Value:
        try:
            return convert(value, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Snapshot:
        for region in self.memory.values():
            region.shared = True  # copied on the next write (see ``own``)
        return Snapshot(dict(self.memory), tuple(dict(scope.vars) for scope in self.scopes),
                        self.counter, self.steps, self.effects.copy())

    def restore(self, snapshot: Snapshot) -> None:
        """Come back to ``snapshot``; the scopes are this run's own, at the same depth as there."""
        self.memory.clear()
        self.memory.update(snapshot.memory)
        assert len(snapshot.scopes) == len(self.scopes), "a snapshot restored in another block"
        for scope, names in zip(self.scopes[1:], snapshot.scopes[1:]):
            scope.vars = dict(names)
        self.counter = snapshot.counter
        self.steps = snapshot.steps
        self.effects = snapshot.effects.copy()

    def fingerprint(self, since: Snapshot) -> tuple:
        """What later code can observe of how this machine differs from ``since`` (an earlier state
        of the same run), as a hashable value: two runs from ``since`` with equal fingerprints
        continue identically (given the same decisions)."""
        regions = []
        for name, r in sorted(self.memory.items()):
            old = since.memory.get(name)
            if r is not old and (old is None or r.alive != old.alive or r.cells != old.cells or r.writes != old.writes
                                 or r.unset != old.unset):
                regions.append((name, r.alive, tuple(cell_key(c) for c in r.cells), tuple(sorted(r.writes.items())),
                                tuple(sorted(r.unset))))
        names = tuple(tuple(sorted((name, region) for name, (region, _) in scope.vars.items()))
                      for scope in self.scopes[1:])
        return (self.counter, tuple(regions), names, self.effects.fingerprint(since.effects))

