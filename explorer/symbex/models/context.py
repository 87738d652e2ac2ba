"""What a library model sees of a call (``CallContext``) and the two shapes of model.

A model is one small class per nf.h function, looked up by name (angr's SimProcedures). A
``StateCall`` runs concretely while nf_init fills state (``concrete``) and symbolically in
nf_process (``symbolic``): fresh result symbols named ``<object>.<what>#<n>``, one access recorded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import z3
from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.ir import Op
from explorer.state_api import STATE_CALLS
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv, combine_be
from explorer.symbex.ctype import ArrayType, CType, IntType, PointerType, StructType
from explorer.symbex.effects import ObjectInfo, RawAccess
from explorer.symbex.program import location_of
from explorer.symbex.values import Int, Ptr, Value

if TYPE_CHECKING:
    from explorer.symbex.machine import Machine
    from explorer.symbex.static_types import StaticTypes


@dataclass
class CallContext:
    """One call of an nf.h function: its name, evaluated arguments and their expressions, and the
    machine it runs on. The helpers turn arguments into what a model needs, failing with the call's
    location when the NF passes something else."""

    name: str
    args: list[Value]
    nodes: list[Any]  # the argument expressions
    node: Any  # the call
    machine: "Machine"
    static_types: "StaticTypes"

    @property
    def mode(self) -> str:
        return self.machine.mode

    @property
    def state(self) -> Any:
        return self.machine.state

    def fail(self, message: str, node: Any = None) -> UnsupportedError:
        return self.machine.fail(self.node if node is None else node, message)

    # -- arguments -------------------------------------------------------------------------------
    def integer(self, i: int, t: IntType) -> Int:
        converted = self.machine.convert(self.args[i], t, self.node)
        assert isinstance(converted, Int)
        return converted

    def constant(self, i: int, what: str, node: Any = None) -> int:
        v = self.machine.convert(self.args[i], ct.LONG, self.node if node is None else node)
        assert isinstance(v, Int)
        if not isinstance(v.v, int):
            raise self.fail(f"{what} must be a constant", node)
        return v.signed_value()

    def pointer(self, i: int, what: str) -> Ptr:
        value = self.args[i]
        if not isinstance(value, Ptr):
            raise self.fail(f"{what} must be a pointer")
        return value

    def state_object(self, i: int, kind: str) -> ObjectInfo:
        """The state object argument ``i`` names, which must be of ``kind``."""
        handle = self.args[i]
        node = self.node if i == 0 else self.nodes[i]
        if not isinstance(handle, Ptr) or handle.region is None or not handle.region.startswith("object:"):
            where = "its first argument" if i == 0 else f"argument {i + 1}"
            raise self.fail(f"{self.name}() needs a state object allocated by nf_init as {where}", node)
        obj = self.machine.objects[handle.region[len("object:"):]]
        if obj.kind != kind:
            raise self.fail(f"{self.name}() is called on {obj.name}, a {obj.kind}, not a {kind}", node)
        return obj

    def index(self, i: int) -> Any:
        """An index argument as a 32-bit term."""
        return bv(self.integer(i, ct.INT).v, 32)

    def key(self, i: int, obj: ObjectInfo) -> tuple[Any, tuple, Optional[CType]]:
        """A map or sketch key: the term of its bytes in memory order, the bytes and the key type."""
        ptr = self.pointer(i, "the key")
        cells = self.machine.read(ptr, obj.size, self.node)
        layout = ptr.ctype.target
        if not isinstance(layout, (StructType, ArrayType, IntType)) or layout.size != obj.size:
            layout = obj.layout
        if isinstance(layout, StructType) and layout.padding:
            offset, size = layout.padding[0]
            raise self.fail(f"the key {layout} has {size} padding byte(s) at offset {offset}; keys are compared "
                            "as raw bytes, so key structs must have no padding")
        region = self.machine.memory.get(ptr.region) if ptr.region is not None else None
        if region is not None and region.unset and isinstance(ptr.offset, int):
            unset = sorted(i - ptr.offset for i in region.unset if ptr.offset <= i < ptr.offset + obj.size)
            if unset:
                raise self.fail(f"{_bytes_text(unset, layout)} of the key {'(' + str(layout) + ') ' if layout else ''}"
                                f"are never set on this path: C leaves them as the stack held them, so two packets "
                                f"of one flow can make different keys; set them (memset the key to 0 first)")
        if obj.layout is None and layout is not None:
            obj.layout = layout
        term = combine_be(cells)
        return (bv(term, 8 * obj.size) if isinstance(term, int) else term), cells, layout

    def sizeof_type(self, i: int) -> Optional[CType]:
        """The type argument ``i`` takes the size of, when it is ``sizeof(...)``."""
        node = self.nodes[i]
        if isinstance(node, c_ast.UnaryOp) and node.op == "sizeof":
            try:
                if isinstance(node.expr, c_ast.Typename):
                    return self.machine.resolve_type(node.expr)
                return self.static_types.type_of(node.expr)
            except UnsupportedError:
                return None
        return None

    # -- results ---------------------------------------------------------------------------------
    def write_int(self, i: int, t: IntType, term: Any) -> None:
        """Store ``term`` through the output pointer argument ``i``."""
        ptr = self.pointer(i, "the output argument")
        self.machine.store(ptr.retype(PointerType(t)), t, Int(t, term), self.node)

    def flag(self, symbol: Any) -> bool:
        """Fork on a 0/1 library result, returning the side this path takes."""
        self.state.assume(z3.ULE(symbol, 1))
        return self.state.branch(symbol != 0, self.machine.loc(self.node))

    def record(self, obj: ObjectInfo, op: Op, key: Any, results: tuple[str, ...], key_cells: Optional[tuple] = None,
               key_layout: Optional[CType] = None, related: tuple[str, ...] = (), value: Any = None,
               time: Any = None) -> None:
        self.machine.effects.record(RawAccess(obj.name, op, self.name, key, key_cells, key_layout, results,
                                              location_of(self.node), related, value, time))


def symbol(obj: ObjectInfo, what: str, n: int, bits: int) -> z3.BitVecRef:
    """The result symbol ``<object>.<what>#<n>``."""
    return z3.BitVec(f"{obj.name}.{what}#{n}", bits)


class Model:
    """An nf.h function; ``names`` are the functions it models."""

    names: ClassVar[tuple[str, ...]] = ()
    forks: ClassVar[bool] = False  # whether a call may fork the path (a 0/1 result guarding an output)
    evaluates_arguments: ClassVar[bool] = True  # False: the model reads the argument expressions only

    def call(self, ctx: CallContext) -> Optional[Value]:
        raise NotImplementedError


class StateCall(Model):
    """A call on a state object (its first argument), concrete in nf_init and symbolic in nf_process."""

    def call(self, ctx: CallContext) -> Optional[Value]:
        obj = ctx.state_object(0, STATE_CALLS[ctx.name])
        return self.concrete(ctx, obj) if ctx.mode == "init" else self.symbolic(ctx, obj)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        raise NotImplementedError

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        raise NotImplementedError


def constant_key(ctx: CallContext, obj: ObjectInfo, i: int) -> bytes:
    """The key argument ``i`` of a call in nf_init, where keys must be constants."""
    ptr = ctx.pointer(i, "the key")
    cells = ctx.machine.read(ptr, obj.size, ctx.node)
    if not all(isinstance(c, int) for c in cells):
        raise ctx.fail("nf_init uses a key that is not constant")
    obj.init_calls += 1
    return bytes(cells)


def constant_index(ctx: CallContext, obj: ObjectInfo, i: int) -> int:
    """The index argument ``i`` of a call in nf_init, where indices must be constants in range."""
    index = ctx.integer(i, ct.INT)
    if not isinstance(index.v, int):
        raise ctx.fail("nf_init uses an index that is not constant")
    value = index.signed_value()
    if not 0 <= value < obj.capacity:
        raise ctx.fail(f"index {value} is outside {obj.name} (capacity {obj.capacity})")
    obj.init_calls += 1
    return value


def _bytes_text(offsets: list[int], layout: Any) -> str:
    """``byte 4`` / ``bytes 5..7`` of a key, with the struct fields they belong to."""
    runs, start = [], offsets[0]
    for a, b in zip(offsets, offsets[1:] + [None]):
        if b != a + 1:
            runs.append((start, a))
            start = b
    text = ", ".join(f"{lo}" if lo == hi else f"{lo}..{hi}" for lo, hi in runs)
    text = f"byte{'s' if len(offsets) > 1 else ''} {text}"
    if isinstance(layout, StructType):
        names = [f.name for f in layout.fields if any(f.offset <= i < f.offset + f.ctype.size for i in offsets)]
        if names:
            text += f" ({', '.join(names)})"
    return text
