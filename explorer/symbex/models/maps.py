"""The map: ``nf_map_get`` (READ), ``nf_map_put`` and ``nf_map_erase`` (WRITE), by raw-byte key."""
from __future__ import annotations

from typing import Optional

from explorer.ir import Op
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv
from explorer.symbex.effects import ObjectInfo
from explorer.symbex.models.context import CallContext, StateCall, constant_key, symbol
from explorer.symbex.values import Int, Value


class MapGet(StateCall):
    names = ("nf_map_get",)
    forks = True

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key = constant_key(ctx, obj, 1)
        if key in obj.entries:
            ctx.write_int(2, ct.INT, obj.entries[key])
            return Int(ct.BOOL, 1)
        return Int(ct.BOOL, 0)

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key, cells, layout = ctx.key(1, obj)
        n = ctx.machine.effects.next_call()
        found, value = symbol(obj, "found", n, 8), symbol(obj, "value", n, 32)
        ctx.record(obj, Op.READ, key, (str(found), str(value)), cells, layout)
        if ctx.flag(found):
            ctx.write_int(2, ct.INT, value)
            return Int(ct.BOOL, 1)
        ctx.state.assume(value == 0)
        return Int(ct.BOOL, 0)


class MapPut(StateCall):
    names = ("nf_map_put",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key = constant_key(ctx, obj, 1)
        value = ctx.integer(2, ct.INT)
        if not isinstance(value.v, int):
            raise ctx.fail("nf_init puts a value that is not constant")
        obj.entries[key] = value.v
        return None

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key, cells, layout = ctx.key(1, obj)
        value = ctx.integer(2, ct.INT)
        ctx.machine.effects.next_call()
        ctx.record(obj, Op.WRITE, key, (), cells, layout, value=bv(value.v, 32))
        return None


class MapErase(StateCall):
    names = ("nf_map_erase",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        obj.entries.pop(constant_key(ctx, obj, 1), None)
        return None

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key, cells, layout = ctx.key(1, obj)
        ctx.machine.effects.next_call()
        ctx.record(obj, Op.WRITE, key, (), cells, layout)
        return None
