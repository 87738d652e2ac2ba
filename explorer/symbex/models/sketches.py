"""The count-min sketch: touch (WRITE), estimate (READ) and expiry (EXPIRE), by raw-byte key."""
from __future__ import annotations

from typing import Optional

from explorer.ir import Op
from explorer.symbex import ctype as ct
from explorer.symbex.effects import ObjectInfo
from explorer.symbex.models.context import CallContext, StateCall, constant_key, symbol
from explorer.symbex.values import Int, Value


class SketchTouch(StateCall):
    names = ("nf_sketch_touch",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key = constant_key(ctx, obj, 1)
        obj.entries[key] = obj.entries.get(key, 0) + 1
        return None

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key, cells, layout = ctx.key(1, obj)
        ctx.machine.effects.next_call()
        ctx.record(obj, Op.WRITE, key, (), cells, layout)
        return None


class SketchEstimate(StateCall):
    names = ("nf_sketch_estimate",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return Int(ct.UINT, obj.entries.get(constant_key(ctx, obj, 1), 0))

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        key, cells, layout = ctx.key(1, obj)
        n = ctx.machine.effects.next_call()
        estimate = symbol(obj, "estimate", n, 32)
        ctx.record(obj, Op.READ, key, (str(estimate),), cells, layout)
        return Int(ct.UINT, estimate)


class SketchExpire(StateCall):
    names = ("nf_sketch_expire",)

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        return None

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        time = ctx.integer(1, ct.ULLONG)
        ctx.machine.effects.next_call()
        ctx.record(obj, Op.EXPIRE, None, (), time=time.v)
        return None
