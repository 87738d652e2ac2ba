"""Models of nf.h's functions: the state library, header accessors, byte order, nf_hash, memcpy & co.

In nf_init everything is concrete: allocations create the state objects (bound to the global handle
whose address is passed) and calls on them run on small concrete models. In nf_process every state
call returns fresh symbols named ``<object>.<what>#<n>`` (n counts state calls along the path) and
is recorded as an access; results that guard an out-parameter (found, ok) fork at the call so that
the out-parameter is either written or untouched on each path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import z3
from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.ir import Location, Op
from explorer.symbex import ctype as ct
from explorer.symbex.ctype import ArrayType, CType, IntType, PointerType, StructType
from explorer.symbex.memory import Region
from explorer.symbex.packet import PacketSymbols
from explorer.symbex.program import location_of
from explorer.symbex.bitvec import Slice, bv, bswap, bytes_of, combine_be, fnv1a, hash_function
from explorer.symbex.values import Int, Ptr, Value, convert_int
from explorer.state_api import KINDS, OTHER_CALLS, STATE_CALLS
from explorer.wire import field_at

SKETCH_DEPTH = 4


@dataclass
class ObjectInfo:
    """A state object as nf_init allocates it (mutable while the analysis learns its layout)."""

    name: str
    kind: str
    alloc_index: int
    capacity: int
    size: int
    layout: Optional[CType]
    extra: tuple[tuple[str, int], ...]
    location: Optional[Location]
    # concrete contents while nf_init runs, and how many calls nf_init made on the object (a record:
    # state filled there is read-only for nf_process unless nf_process writes it)
    entries: dict = field(default_factory=dict)
    init_calls: int = 0


@dataclass
class RawAccess:
    """An access as recorded during a run; the explorer renders it into an ir.Access."""

    object: str
    op: Op
    call: str
    key: Any  # Z3 term or None
    key_cells: Optional[tuple]  # the key bytes (maps, sketches), for per-member text
    key_layout: Optional[CType]
    results: tuple[str, ...]
    location: Optional[Location]
    related: tuple[str, ...] = ()


@dataclass
class Borrow:
    object: str
    index: Any
    original: tuple


class Library:
    """The library seen by one run (nf_init or one path of nf_process)."""

    def __init__(self, mode: str, objects: dict[str, ObjectInfo], packet: Optional[PacketSymbols] = None):
        self.mode = mode
        self.objects = objects  # by name; shared with the explorer
        self.packet = packet
        self.calls = 0
        self.accesses: list[RawAccess] = []
        self.borrows: dict[str, Borrow] = {}
        self.returned: list[Borrow] = []  # cells handed back on this path, latest last (content as returned)
        self.fields_read: set[str] = set()
        self.checksum_writes: list[Optional[Location]] = []

    def handles(self, name: str) -> bool:
        return name in KINDS or name in STATE_CALLS or name in OTHER_CALLS

    def note_read(self, region: Region, offset: int, n: int) -> None:
        if region.kind == "header":
            for i in range(offset, offset + n):
                self.fields_read.add(field_at(region.name, i))

    # ------------------------------------------------------------------ dispatch
    def call(self, it: Any, name: str, args: list[Value], nodes: list[Any], node: Any) -> Optional[Value]:
        ft = it.program.prototypes.get(name)
        if ft is not None and len(args) != len(ft.params):
            raise it.fail(node, f"{name}() takes {len(ft.params)} arguments, {len(args)} given")
        if name in KINDS:
            return self._allocate(it, name, args, nodes, node)
        if name in STATE_CALLS:
            obj = self._object(it, args[0], STATE_CALLS[name], name, node)
            method = getattr(self, ("init_" if self.mode == "init" else "sym_") + name[3:])
            return method(it, obj, args, nodes, node)
        return getattr(self, "do_" + name)(it, args, nodes, node)

    def _object(self, it: Any, handle: Value, kind: str, name: str, node: Any) -> ObjectInfo:
        if not isinstance(handle, Ptr) or handle.region is None or not handle.region.startswith("object:"):
            raise it.fail(node, f"{name}() needs a state object allocated by nf_init as its first argument")
        obj = self.objects[handle.region[len("object:"):]]
        if obj.kind != kind:
            raise it.fail(node, f"{name}() is called on {obj.name}, a {obj.kind}, not a {kind}")
        return obj

    def _int(self, it: Any, value: Value, t: IntType, node: Any) -> Int:
        converted = it.convert(value, t, node)
        assert isinstance(converted, Int)
        return converted

    def _concrete(self, it: Any, value: Value, node: Any, what: str) -> int:
        v = self._int(it, value, ct.LONG, node)
        if not isinstance(v.v, int):
            raise it.fail(node, f"{what} must be a constant")
        return v.signed_value()

    def _pointer(self, it: Any, value: Value, node: Any, what: str) -> Ptr:
        if not isinstance(value, Ptr):
            raise it.fail(node, f"{what} must be a pointer")
        return value

    def _next(self, obj: ObjectInfo) -> int:
        self.calls += 1
        return self.calls

    def _symbol(self, obj: ObjectInfo, what: str, n: int, bits: int) -> z3.BitVecRef:
        return z3.BitVec(f"{obj.name}.{what}#{n}", bits)

    def _record(self, obj: ObjectInfo, op: Op, call: str, key: Any, results: tuple[str, ...], node: Any,
                key_cells: Optional[tuple] = None, key_layout: Optional[CType] = None,
                related: tuple[str, ...] = ()) -> None:
        self.accesses.append(RawAccess(obj.name, op, call, key, key_cells, key_layout, results, location_of(node),
                                       related))

    def _key(self, it: Any, obj: ObjectInfo, value: Value, node: Any) -> tuple[Any, tuple, Optional[CType]]:
        """A map or sketch key: its bytes, the term in memory order and the static key type."""
        ptr = self._pointer(it, value, node, "the key")
        cells = it.read(ptr, obj.size, node)
        layout = ptr.ctype.target
        if not isinstance(layout, (StructType, ArrayType, IntType)) or layout.size != obj.size:
            layout = obj.layout
        if isinstance(layout, StructType) and layout.padding:
            offset, size = layout.padding[0]
            raise it.fail(node, f"the key {layout} has {size} padding byte(s) at offset {offset}; keys are "
                                "compared as raw bytes, so key structs must have no padding")
        if obj.layout is None and layout is not None:
            obj.layout = layout
        term = combine_be(cells)
        return (bv(term, 8 * obj.size) if isinstance(term, int) else term), cells, layout

    def _index(self, it: Any, value: Value, node: Any) -> Any:
        index = self._int(it, value, ct.INT, node)
        return bv(index.v, 32)

    def _write_int(self, it: Any, ptr_value: Value, t: IntType, term: Any, node: Any) -> None:
        ptr = self._pointer(it, ptr_value, node, "the output argument")
        it.store(ptr.retype(PointerType(t)), t, Int(t, term), node)

    def _flag(self, it: Any, symbol: Any, node: Any) -> bool:
        """Fork on a 0/1 library result, returning the side this path takes."""
        it.state.assume(z3.ULE(symbol, 1))
        return it.state.branch(symbol != 0, it.loc(node))

    # ------------------------------------------------------------------ allocation (nf_init)
    def _allocate(self, it: Any, name: str, args: list[Value], nodes: list[Any], node: Any) -> Value:
        if self.mode != "init":
            raise it.fail(node, f"{name}() is called from nf_process; state objects are allocated only by nf_init")
        kind = KINDS[name]
        out = self._pointer(it, args[-1], node, "the handle argument")
        region = it.memory.get(out.region) if out.region else None
        if region is None or region.kind != "global" or out.offset != 0 or region.size != 8:
            raise it.fail(node, f"{name}() must store the handle in a global variable (pass &global)")
        var = region.name[len("global:"):]
        if var in self.objects:
            raise it.fail(node, f"{var} is allocated twice")
        numbers = [self._concrete(it, a, n, f"argument {i + 1} of {name}()")
                   for i, (a, n) in enumerate(zip(args[:-1], nodes[:-1]))]
        size, capacity, extra, layout = 0, 0, (), None
        if kind in ("map", "vector", "sketch"):
            size, capacity = numbers
            layout = self._sizeof_type(it, nodes[0])
            if kind == "sketch":
                extra = (("depth", SKETCH_DEPTH),)
        elif kind == "dchain":
            (capacity,) = numbers
        else:
            capacity, backends = numbers
            extra = (("backends", backends),)
        if capacity <= 0 or size < 0 or (kind in ("map", "vector", "sketch") and size <= 0):
            raise it.fail(node, f"{name}() with size {size} and capacity {capacity}")
        obj = ObjectInfo(var, kind, len(self.objects), capacity, size, layout, extra, it.loc(node))
        self.objects[var] = obj
        handle = Ptr(PointerType(ct.VOID), f"object:{var}", 0)
        it.write(out, tuple(Slice(handle, i) for i in range(8)), node)
        it.memory[f"object:{var}"] = Region(f"object:{var}", "handle", var, 0)
        return Int(ct.BOOL, 1)

    def _sizeof_type(self, it: Any, node: Any) -> Optional[CType]:
        if isinstance(node, c_ast.UnaryOp) and node.op == "sizeof":
            try:
                if isinstance(node.expr, c_ast.Typename):
                    return it.resolve_type(node.expr)
                return it.static_type(node.expr)
            except UnsupportedError:
                return None
        return None

    # ------------------------------------------------------------------ concrete models (nf_init)
    def _init_key(self, it: Any, obj: ObjectInfo, value: Value, node: Any) -> bytes:
        ptr = self._pointer(it, value, node, "the key")
        cells = it.read(ptr, obj.size, node)
        if not all(isinstance(c, int) for c in cells):
            raise it.fail(node, "nf_init uses a key that is not constant")
        obj.init_calls += 1
        return bytes(cells)

    def init_map_get(self, it, obj, args, nodes, node):
        key = self._init_key(it, obj, args[1], node)
        if key in obj.entries:
            self._write_int(it, args[2], ct.INT, obj.entries[key], node)
            return Int(ct.BOOL, 1)
        return Int(ct.BOOL, 0)

    def init_map_put(self, it, obj, args, nodes, node):
        key = self._init_key(it, obj, args[1], node)
        value = self._int(it, args[2], ct.INT, node)
        if not isinstance(value.v, int):
            raise it.fail(node, "nf_init puts a value that is not constant")
        obj.entries[key] = value.v
        return None

    def init_map_erase(self, it, obj, args, nodes, node):
        obj.entries.pop(self._init_key(it, obj, args[1], node), None)
        return None

    def _init_index(self, it, obj, value, node) -> int:
        index = self._int(it, value, ct.INT, node)
        if not isinstance(index.v, int):
            raise it.fail(node, "nf_init uses an index that is not constant")
        i = index.signed_value()
        if not 0 <= i < obj.capacity:
            raise it.fail(node, f"index {i} is outside {obj.name} (capacity {obj.capacity})")
        obj.init_calls += 1
        return i

    def init_vector_borrow(self, it, obj, args, nodes, node):
        i = self._init_index(it, obj, args[1], node)
        name = it.fresh(f"initcell:{obj.name}")
        region = it.new_region(name, "cell", f"a cell of {obj.name}", obj.size)
        region.cells = list(obj.entries.get(i, (0,) * obj.size))
        self.borrows[name] = Borrow(obj.name, i, tuple(region.cells))
        return Ptr(PointerType(ct.VOID), name, 0)

    def init_vector_return(self, it, obj, args, nodes, node):
        i = self._init_index(it, obj, args[1], node)
        ptr = self._pointer(it, args[2], node, "the cell")
        borrow = self.borrows.get(ptr.region or "")
        if borrow is None or borrow.object != obj.name or borrow.index != i or ptr.offset != 0:
            raise it.fail(node, f"nf_vector_return() must return the cell borrowed from {obj.name} at this index")
        region = it.memory[ptr.region]
        if not all(isinstance(c, int) for c in region.cells):
            raise it.fail(node, "nf_init stores a value that is not constant")
        obj.entries[i] = tuple(region.cells)
        region.alive = False
        del self.borrows[ptr.region]
        return None

    def init_dchain_allocate_new_index(self, it, obj, args, nodes, node):
        obj.init_calls += 1
        for i in range(obj.capacity):
            if i not in obj.entries:
                obj.entries[i] = True
                self._write_int(it, args[1], ct.INT, i, node)
                return Int(ct.BOOL, 1)
        return Int(ct.BOOL, 0)

    def init_dchain_rejuvenate_index(self, it, obj, args, nodes, node):
        i = self._init_index(it, obj, args[1], node)
        return Int(ct.BOOL, int(i in obj.entries))

    def init_dchain_is_index_allocated(self, it, obj, args, nodes, node):
        i = self._init_index(it, obj, args[1], node)
        return Int(ct.BOOL, int(i in obj.entries))

    def init_dchain_free_index(self, it, obj, args, nodes, node):
        i = self._init_index(it, obj, args[1], node)
        return Int(ct.BOOL, int(obj.entries.pop(i, None) is not None))

    def init_expire_items(self, it, obj, args, nodes, node):
        return Int(ct.INT, 0)  # nothing is older than "now" during nf_init

    init_expire_items2 = init_expire_items

    def init_sketch_touch(self, it, obj, args, nodes, node):
        key = self._init_key(it, obj, args[1], node)
        obj.entries[key] = obj.entries.get(key, 0) + 1
        return None

    def init_sketch_estimate(self, it, obj, args, nodes, node):
        return Int(ct.UINT, obj.entries.get(self._init_key(it, obj, args[1], node), 0))

    def init_sketch_expire(self, it, obj, args, nodes, node):
        return None

    def init_cht_find_backend(self, it, obj, args, nodes, node):
        raise it.fail(node, "nf_cht_find_backend() in nf_init is not supported")

    # ------------------------------------------------------------------ symbolic models (nf_process)
    def sym_map_get(self, it, obj, args, nodes, node):
        key, cells, layout = self._key(it, obj, args[1], node)
        n = self._next(obj)
        found, value = self._symbol(obj, "found", n, 8), self._symbol(obj, "value", n, 32)
        self._record(obj, Op.READ, "nf_map_get", key, (str(found), str(value)), node, cells, layout)
        if self._flag(it, found, node):
            self._write_int(it, args[2], ct.INT, value, node)
            return Int(ct.BOOL, 1)
        it.state.assume(value == 0)
        return Int(ct.BOOL, 0)

    def sym_map_put(self, it, obj, args, nodes, node):
        key, cells, layout = self._key(it, obj, args[1], node)
        self._int(it, args[2], ct.INT, node)
        self._next(obj)
        self._record(obj, Op.WRITE, "nf_map_put", key, (), node, cells, layout)
        return None

    def sym_map_erase(self, it, obj, args, nodes, node):
        key, cells, layout = self._key(it, obj, args[1], node)
        self._next(obj)
        self._record(obj, Op.WRITE, "nf_map_erase", key, (), node, cells, layout)
        return None

    def sym_vector_borrow(self, it, obj, args, nodes, node):
        index = self._index(it, args[1], node)
        n = self._next(obj)
        cell = self._symbol(obj, "cell", n, 8 * obj.size)
        self._record(obj, Op.READ, "nf_vector_borrow", index, (str(cell),), node)
        self._bounded(it, index, obj, node)
        self._recall(it, obj, index, cell)
        name = f"cell:{obj.name}#{n}"
        region = it.new_region(name, "cell", f"the cell of {obj.name} borrowed at call #{n}", obj.size)
        region.cells = [Slice(cell, obj.size - 1 - i) for i in range(obj.size)]  # memory order: byte 0 first
        self.borrows[name] = Borrow(obj.name, index, tuple(region.cells))
        return Ptr(PointerType(ct.VOID), name, 0)

    def sym_vector_return(self, it, obj, args, nodes, node):
        index = self._index(it, args[1], node)
        ptr = self._pointer(it, args[2], node, "the cell")
        borrow = self.borrows.get(ptr.region or "")
        if borrow is None or borrow.object != obj.name or not isinstance(ptr.offset, int) or ptr.offset != 0:
            raise it.fail(node, f"nf_vector_return() must return a cell borrowed from {obj.name}")
        if not it.state.proves(index == borrow.index):
            raise it.fail(node, "nf_vector_return() returns the cell at a different index than it was borrowed")
        region = it.memory[ptr.region]
        if not region.alive:
            raise it.fail(node, "the cell is returned twice")
        changed = any(not _same_cell(a, b) for a, b in zip(region.cells, borrow.original))
        if changed:
            new, old = combine_be(region.cells), combine_be(borrow.original)
            changed = not it.state.proves(bv(new, 8 * obj.size) == bv(old, 8 * obj.size))
        self._next(obj)
        self._record(obj, Op.WRITE if changed else Op.READ, "nf_vector_return", index, (), node)
        region.alive = False
        del self.borrows[ptr.region]
        self.returned.append(Borrow(obj.name, index, tuple(region.cells)))
        return None

    def _recall(self, it: Any, obj: ObjectInfo, index: Any, cell: Any) -> None:
        """A cell borrowed again at an index this path returned it at holds what was returned (the
        runtime is sequential and nothing but nf_vector_return writes cells)."""
        for earlier in reversed(self.returned):
            if earlier.object != obj.name:
                continue
            if it.state.proves(index == earlier.index):
                it.state.assume(cell == bv(combine_be(earlier.original), 8 * obj.size))
                return
            if it.state.possible(index == earlier.index):
                return  # maybe the same cell, maybe not: nothing is known

    def _bounded(self, it: Any, index: Any, obj: ObjectInfo, node: Any) -> None:
        """Indices handed to the library are in range on every path the runtime does not abort."""
        it.state.assume(z3.ULT(index, obj.capacity), fresh=False)

    def sym_dchain_allocate_new_index(self, it, obj, args, nodes, node):
        n = self._next(obj)
        ok, index = self._symbol(obj, "ok", n, 8), self._symbol(obj, "index", n, 32)
        self._record(obj, Op.CREATE, "nf_dchain_allocate_new_index", None, (str(ok), str(index)), node)
        if self._flag(it, ok, node):
            it.state.assume(z3.ULT(index, obj.capacity))
            self._write_int(it, args[1], ct.INT, index, node)
            return Int(ct.BOOL, 1)
        it.state.assume(index == 0)
        return Int(ct.BOOL, 0)

    def _dchain_index_call(self, it, obj, args, node, op: Op, call: str) -> Value:
        index = self._index(it, args[1], node)
        n = self._next(obj)
        ok = self._symbol(obj, "ok", n, 8)
        self._record(obj, op, call, index, (str(ok),), node)
        it.state.assume(z3.ULE(ok, 1))
        return Int(ct.BOOL, ok)

    def sym_dchain_rejuvenate_index(self, it, obj, args, nodes, node):
        return self._dchain_index_call(it, obj, args, node, Op.UPDATE, "nf_dchain_rejuvenate_index")

    def sym_dchain_is_index_allocated(self, it, obj, args, nodes, node):
        return self._dchain_index_call(it, obj, args, node, Op.VERIFY, "nf_dchain_is_index_allocated")

    def sym_dchain_free_index(self, it, obj, args, nodes, node):
        return self._dchain_index_call(it, obj, args, node, Op.DESTROY, "nf_dchain_free_index")

    def _expire(self, it, obj, args, nodes, node, call: str, pairs: list[tuple[int, int]]) -> Value:
        related: list[str] = []
        for vi, mi in pairs:
            keys = self._object(it, args[vi], "vector", call, nodes[vi])
            table = self._object(it, args[mi], "map", call, nodes[mi])
            if keys.size != table.size:
                raise it.fail(node, f"{call}(): the cells of {keys.name} ({keys.size} bytes) are not keys of "
                                    f"{table.name} ({table.size} bytes)")
            related += [keys.name, table.name]
        self._int(it, args[-1], ct.ULLONG, node)
        n = self._next(obj)
        count = self._symbol(obj, "count", n, 32)
        self._record(obj, Op.EXPIRE, call, None, (str(count),), node, related=tuple(related))
        it.state.assume(z3.And(count >= 0, count <= obj.capacity))
        return Int(ct.INT, count)

    def sym_expire_items(self, it, obj, args, nodes, node):
        return self._expire(it, obj, args, nodes, node, "nf_expire_items", [(1, 2)])

    def sym_expire_items2(self, it, obj, args, nodes, node):
        return self._expire(it, obj, args, nodes, node, "nf_expire_items2", [(1, 2), (3, 4)])

    def sym_sketch_touch(self, it, obj, args, nodes, node):
        key, cells, layout = self._key(it, obj, args[1], node)
        self._next(obj)
        self._record(obj, Op.WRITE, "nf_sketch_touch", key, (), node, cells, layout)
        return None

    def sym_sketch_estimate(self, it, obj, args, nodes, node):
        key, cells, layout = self._key(it, obj, args[1], node)
        n = self._next(obj)
        estimate = self._symbol(obj, "estimate", n, 32)
        self._record(obj, Op.READ, "nf_sketch_estimate", key, (str(estimate),), node, cells, layout)
        return Int(ct.UINT, estimate)

    def sym_sketch_expire(self, it, obj, args, nodes, node):
        self._int(it, args[1], ct.ULLONG, node)
        self._next(obj)
        self._record(obj, Op.EXPIRE, "nf_sketch_expire", None, (), node)
        return None

    def sym_cht_find_backend(self, it, obj, args, nodes, node):
        hash_value = self._int(it, args[1], ct.UINT, node)
        active = self._object(it, args[2], "dchain", "nf_cht_find_backend", nodes[2])
        row = z3.URem(bv(hash_value.v, 32), obj.capacity) if not isinstance(hash_value.v, int) \
            else z3.BitVecVal(hash_value.v % obj.capacity, 32)
        n = self._next(obj)
        found, backend = self._symbol(obj, "found", n, 8), self._symbol(obj, "backend", n, 32)
        self._record(obj, Op.READ, "nf_cht_find_backend", row, (str(found), str(backend)), node,
                     related=(active.name,))
        if self._flag(it, found, node):
            it.state.assume(z3.ULT(backend, dict(obj.extra)["backends"]))
            self._write_int(it, args[3], ct.INT, backend, node)
            return Int(ct.BOOL, 1)
        it.state.assume(backend == 0)
        return Int(ct.BOOL, 0)

    # ------------------------------------------------------------------ packet, byte order, libc
    def _packet_arg(self, it: Any, value: Value, node: Any, name: str) -> None:
        if not isinstance(value, Ptr) or value.region != "packet" or value.offset != 0:
            raise it.fail(node, f"{name}() must be given nf_process's packet argument")
        if self.mode != "process":
            raise it.fail(node, f"{name}() is only available in nf_process")

    def _header(self, it: Any, region: str, struct_tag: str) -> Ptr:
        tag = it.types.lookup_tag(it.scopes, struct_tag)
        if tag is None:
            raise UnsupportedError(f"struct {struct_tag} is not declared (include nf.h)")
        return Ptr(PointerType(tag), region, 0)

    def do_nf_ether_header(self, it, args, nodes, node):
        self._packet_arg(it, args[0], node, "nf_ether_header")
        return self._header(it, "ether", "nf_ether_hdr")

    def _header_condition(self, it, args, node, which: str) -> Any:
        self._packet_arg(it, args[0], node, f"nf_{which}_header")
        length = self._int(it, args[1], ct.USHORT, node)
        assert self.packet is not None
        cond = self.packet.ipv4_ok if which == "ipv4" else self.packet.tcpudp_ok
        if isinstance(length.v, int) or length.v.get_id() != self.packet.len.get_id():
            cond = z3.substitute(cond, (self.packet.len, bv(length.v, 16)))
            return cond, None
        return cond, (f"!p.is_{which}", f"p.is_{which}")

    def do_nf_ipv4_header(self, it, args, nodes, node):
        cond, labels = self._header_condition(it, args, node, "ipv4")
        if it.state.branch(cond, it.loc(node), labels):
            return self._header(it, "ipv4", "nf_ipv4_hdr")
        return Ptr(PointerType(self._header(it, "ipv4", "nf_ipv4_hdr").ctype.target), None, 0)

    def do_nf_tcpudp_header(self, it, args, nodes, node):
        cond, labels = self._header_condition(it, args, node, "tcpudp")
        if it.state.branch(cond, it.loc(node), labels):
            return self._header(it, "l4", "nf_tcpudp_hdr")
        return Ptr(PointerType(self._header(it, "l4", "nf_tcpudp_hdr").ctype.target), None, 0)

    def do_nf_update_checksums(self, it, args, nodes, node):
        self._packet_arg(it, args[0], node, "nf_update_checksums")
        self._int(it, args[1], ct.USHORT, node)
        assert self.packet is not None
        if it.state.possible(self.packet.ipv4_ok):
            self.checksum_writes.append(it.loc(node))
        return None

    def _swap(self, it, args, node, bits: int) -> Value:
        t = ct.USHORT if bits == 16 else ct.UINT
        value = self._int(it, args[0], t, node)
        return Int(t, bswap(value.v, bits))

    def do_nf_ntohs(self, it, args, nodes, node):
        return self._swap(it, args, node, 16)

    do_nf_htons = do_nf_ntohs

    def do_nf_ntohl(self, it, args, nodes, node):
        return self._swap(it, args, node, 32)

    do_nf_htonl = do_nf_ntohl

    def do_nf_hash(self, it, args, nodes, node):
        ptr = self._pointer(it, args[0], node, "nf_hash()'s data")
        size = self._concrete(it, args[1], nodes[1], "nf_hash()'s size")
        if not 0 < size <= 64:
            raise it.fail(node, f"nf_hash() of {size} bytes is not supported (1..64)")
        cells = it.read(ptr, size, node)
        if all(isinstance(c, int) for c in cells):
            return Int(ct.UINT, fnv1a(bytes(cells)))
        return Int(ct.UINT, hash_function(size)(bv(combine_be(cells), 8 * size)))

    def _size(self, it, value, node, name) -> int:
        size = self._concrete(it, value, node, f"the size given to {name}()")
        if size < 0 or size > 1 << 20:
            raise it.fail(node, f"{name}() of {size} bytes")
        return size

    def do_memcpy(self, it, args, nodes, node):
        dst = self._pointer(it, args[0], node, "memcpy()'s destination")
        src = self._pointer(it, args[1], node, "memcpy()'s source")
        size = self._size(it, args[2], nodes[2], "memcpy")
        if size:
            it.write(dst, it.read(src, size, node), node)
        return dst

    def do_memset(self, it, args, nodes, node):
        dst = self._pointer(it, args[0], node, "memset()'s destination")
        byte = convert_int(self._int(it, args[1], ct.INT, node), ct.UCHAR)
        size = self._size(it, args[2], nodes[2], "memset")
        if size:
            cell = byte.v if isinstance(byte.v, int) else bytes_of(byte.v, 1)[0]
            it.write(dst, (cell,) * size, node)
        return dst

    def do_memcmp(self, it, args, nodes, node):
        a = self._pointer(it, args[0], node, "memcmp()'s first argument")
        b = self._pointer(it, args[1], node, "memcmp()'s second argument")
        size = self._size(it, args[2], nodes[2], "memcmp")
        xs, ys = it.read(a, size, node), it.read(b, size, node)
        if all(isinstance(c, int) for c in xs + ys):
            for x, y in zip(xs, ys):
                if x != y:
                    return Int(ct.INT, (-1 if x < y else 1) & 0xFFFFFFFF)
            return Int(ct.INT, 0)
        result: Any = z3.BitVecVal(0, 32)
        for x, y in reversed(list(zip(xs, ys))):
            xt, yt = bv(combine_be((x,)), 8), bv(combine_be((y,)), 8)
            result = z3.If(xt == yt, result, z3.If(z3.ULT(xt, yt), z3.BitVecVal(-1, 32), z3.BitVecVal(1, 32)))
        return Int(ct.INT, result)


def _same_cell(a: Any, b: Any) -> bool:
    if isinstance(a, int) or isinstance(b, int):
        return a == b if isinstance(a, int) and isinstance(b, int) else False
    return a.index == b.index and (a.source is b.source or (hasattr(a.source, "get_id") and hasattr(b.source, "get_id")
                                                            and a.source.get_id() == b.source.get_id()))

