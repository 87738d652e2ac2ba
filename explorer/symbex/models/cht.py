"""The consistent-hash table: ``nf_cht_find_backend`` reads row ``hash % height`` (READ) and walks
the backends that are live in a dchain (which the sharding sees as a scan of that dchain)."""
from __future__ import annotations

from typing import Optional

import z3

from explorer.ir import Op
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv
from explorer.symbex.effects import ObjectInfo
from explorer.symbex.models.context import CallContext, StateCall, symbol
from explorer.symbex.values import Int, Value


class ChtFindBackend(StateCall):
    names = ("nf_cht_find_backend",)
    forks = True

    def concrete(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        raise ctx.fail("nf_cht_find_backend() in nf_init is not supported")

    def symbolic(self, ctx: CallContext, obj: ObjectInfo) -> Optional[Value]:
        hash_value = ctx.integer(1, ct.UINT)
        active = ctx.state_object(2, "dchain")
        row = z3.URem(bv(hash_value.v, 32), obj.capacity) if not isinstance(hash_value.v, int) \
            else z3.BitVecVal(hash_value.v % obj.capacity, 32)
        n = ctx.machine.effects.next_call()
        found, backend = symbol(obj, "found", n, 8), symbol(obj, "backend", n, 32)
        ctx.record(obj, Op.READ, row, (str(found), str(backend)), related=(active.name,))
        if ctx.flag(found):
            ctx.state.assume(z3.ULT(backend, dict(obj.extra)["backends"]))
            ctx.write_int(3, ct.INT, backend)
            return Int(ct.BOOL, 1)
        ctx.state.assume(backend == 0)
        return Int(ct.BOOL, 0)
