"""The dchain, an index allocator with a last-use time per index: allocate (CREATE), rejuvenate
(UPDATE), is-allocated (VERIFY), free (DESTROY), and the expiry of old indices together with the
map entries their key cells name (EXPIRE)."""
from __future__ import annotations

from typing import Optional

import z3

from explorer.ir import Op
from explorer.symbex import ctype as ct
from explorer.symbex.effects import ObjectInfo
from explorer.symbex.models.context import CallContext, StateCall, constant_index, symbol
from explorer.symbex.values import Int, Value


class AllocateNewIndex(StateCall):
    names = ("nf_dchain_allocate_new_index",)
    forks = True

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        obj.init_calls += 1
        for i in range(obj.capacity):
            if i not in obj.entries:
                obj.entries[i] = True
                ctx.write_int(1, ct.INT, i)
                return Int(ct.BOOL, 1)
        return Int(ct.BOOL, 0)

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        n = ctx.machine.effects.next_call()
        ok, index = symbol(obj, "ok", n, 8), symbol(obj, "index", n, 32)
        ctx.record(obj, Op.CREATE, None, (str(ok), str(index)))
        if ctx.flag(ok):
            ctx.state.assume(z3.ULT(index, obj.capacity))
            ctx.write_int(1, ct.INT, index)
            return Int(ct.BOOL, 1)
        ctx.state.assume(index == 0)
        return Int(ct.BOOL, 0)


class IndexCall(StateCall):
    """A call on one index that answers whether the index was allocated."""

    op: Op

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        index = ctx.index(1)
        n = ctx.machine.effects.next_call()
        ok = symbol(obj, "ok", n, 8)
        ctx.record(obj, self.op, index, (str(ok),))
        ctx.state.assume(z3.ULE(ok, 1))
        return Int(ct.BOOL, ok)


class RejuvenateIndex(IndexCall):
    names = ("nf_dchain_rejuvenate_index",)
    op = Op.UPDATE

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return Int(ct.BOOL, int(constant_index(ctx, obj, 1) in obj.entries))


class IsIndexAllocated(IndexCall):
    names = ("nf_dchain_is_index_allocated",)
    op = Op.VERIFY

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return Int(ct.BOOL, int(constant_index(ctx, obj, 1) in obj.entries))


class FreeIndex(IndexCall):
    names = ("nf_dchain_free_index",)
    op = Op.DESTROY

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return Int(ct.BOOL, int(obj.entries.pop(constant_index(ctx, obj, 1), None) is not None))


class ExpireItems(StateCall):
    """``nf_expire_items(chain, keys, map, time)`` and ``nf_expire_items2`` with two (keys, map) pairs:
    (vector, map) argument positions per pair."""

    names = ("nf_expire_items", "nf_expire_items2")
    PAIRS = {"nf_expire_items": ((1, 2),), "nf_expire_items2": ((1, 2), (3, 4))}

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return Int(ct.INT, 0)  # nothing is older than "now" during nf_init

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        related: list[str] = []
        for vi, mi in self.PAIRS[ctx.name]:
            keys = ctx.state_object(vi, "vector")
            table = ctx.state_object(mi, "map")
            if keys.size != table.size:
                raise ctx.fail(f"{ctx.name}(): the cells of {keys.name} ({keys.size} bytes) are not keys of "
                               f"{table.name} ({table.size} bytes)")
            related += [keys.name, table.name]
        time = ctx.integer(len(ctx.args) - 1, ct.ULLONG)
        n = ctx.machine.effects.next_call()
        count = symbol(obj, "count", n, 32)
        ctx.record(obj, Op.EXPIRE, None, (str(count),), related=tuple(related), time=time.v)
        ctx.state.assume(z3.And(count >= 0, count <= obj.capacity))
        return Int(ct.INT, count)
