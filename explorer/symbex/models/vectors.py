"""The vector: ``nf_vector_borrow`` hands out a cell (READ), ``nf_vector_return`` takes it back
(WRITE if its bytes changed, else READ). A borrowed cell is a memory region of its own."""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.ir import Op
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import Slice, bv, combine_be, from_state
from explorer.symbex.ctype import PointerType
from explorer.symbex.effects import Borrow, ObjectInfo
from explorer.symbex.memory import same_cell
from explorer.symbex.models.context import CallContext, StateCall, constant_index, symbol
from explorer.symbex.program import location_of
from explorer.symbex.render import Renderer
from explorer.symbex.values import Ptr, Value, to_signed


def _in_range(ctx: CallContext, obj: ObjectInfo, index: Any) -> None:
    """Refuse an index taken from the packet that can be past the vector: the runtime stops the NF
    there (one crafted packet would stop it in production). Indices from state (a dchain's, a map
    value) are the NF's to keep in range, as the library hands them out."""
    if from_state(index):
        return
    outside = z3.UGE(index, obj.capacity)
    if ctx.state.possible(outside):
        example = ctx.state.example(outside, index)
        raise ctx.fail(f"the index {Renderer().text(index)} of {obj.name} can be {to_signed(example, 32)} on this path, "
                       f"outside its capacity {obj.capacity} (the runtime would stop the NF there); test or "
                       f"reduce it first (e.g. % {obj.capacity})")


class VectorBorrow(StateCall):
    names = ("nf_vector_borrow",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        m = ctx.machine
        i = constant_index(ctx, obj, 1)
        name = m.fresh(f"initcell:{obj.name}")
        region = m.new_region(name, "cell", f"a cell of {obj.name}", obj.size)
        region.cells = list(obj.entries.get(i, (0,) * obj.size))
        m.effects.borrows[name] = Borrow(obj.name, i, tuple(region.cells))
        return Ptr(PointerType(ct.VOID), name, 0)

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        m = ctx.machine
        index = ctx.index(1)
        n = m.effects.next_call()
        cell = symbol(obj, "cell", n, 8 * obj.size)
        ctx.record(obj, Op.READ, index, (str(cell),))
        _in_range(ctx, obj, index)
        # Indices handed to the library are in range on every path the runtime does not abort.
        ctx.state.assume(z3.ULT(index, obj.capacity), fresh=False)
        self._recall(ctx, obj, index, cell)
        name = f"cell:{obj.name}#{n}"
        region = m.new_region(name, "cell", f"the cell of {obj.name} borrowed at call #{n}", obj.size)
        region.cells = [Slice(cell, obj.size - 1 - i) for i in range(obj.size)]  # memory order: byte 0 first
        m.effects.borrows[name] = Borrow(obj.name, index, tuple(region.cells), location_of(ctx.node))
        return Ptr(PointerType(ct.VOID), name, 0)

    @staticmethod
    def _recall(ctx: CallContext, obj: ObjectInfo, index: Any, cell: Any) -> None:
        """A cell borrowed again at an index this path returned it at holds what was returned (the
        runtime is sequential and nothing but nf_vector_return writes cells)."""
        for earlier in reversed(ctx.machine.effects.returned):
            if earlier.object != obj.name:
                continue
            if ctx.state.proves(index == earlier.index):
                ctx.state.assume(cell == bv(combine_be(earlier.cells), 8 * obj.size))
                return
            if ctx.state.possible(index == earlier.index):
                return  # maybe the same cell, maybe not: nothing is known


class VectorReturn(StateCall):
    names = ("nf_vector_return",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        m = ctx.machine
        i = constant_index(ctx, obj, 1)
        ptr = ctx.pointer(2, "the cell")
        borrow = m.effects.borrows.get(ptr.region or "")
        if borrow is None or borrow.object != obj.name or borrow.index != i or ptr.offset != 0:
            raise ctx.fail(f"nf_vector_return() must return the cell borrowed from {obj.name} at this index")
        region = m.own(ptr.region)
        if not all(isinstance(c, int) for c in region.cells):
            raise ctx.fail("nf_init stores a value that is not constant")
        obj.entries[i] = tuple(region.cells)
        region.alive = False
        del m.effects.borrows[ptr.region]
        return None

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        m = ctx.machine
        index = ctx.index(1)
        ptr = ctx.pointer(2, "the cell")
        borrow = m.effects.borrows.get(ptr.region or "")
        if borrow is None or borrow.object != obj.name or not isinstance(ptr.offset, int) or ptr.offset != 0:
            raise ctx.fail(f"nf_vector_return() must return a cell borrowed from {obj.name}")
        if not ctx.state.proves(index == borrow.index):
            raise ctx.fail("nf_vector_return() returns the cell at a different index than it was borrowed")
        region = m.own(ptr.region)
        if not region.alive:
            raise ctx.fail("the cell is returned twice")
        changed = any(not same_cell(a, b) for a, b in zip(region.cells, borrow.cells))
        content = bv(combine_be(region.cells), 8 * obj.size)
        if changed:
            changed = not ctx.state.proves(content == bv(combine_be(borrow.cells), 8 * obj.size))
        m.effects.next_call()
        ctx.record(obj, Op.WRITE if changed else Op.READ, index, (), value=content if changed else None)
        region.alive = False
        del m.effects.borrows[ptr.region]
        m.effects.returned.append(Borrow(obj.name, index, tuple(region.cells)))
        return None
