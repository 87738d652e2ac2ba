"""``nf_<kind>_allocate``: nf_init creates a state object and binds it to a global handle."""
from __future__ import annotations

import warnings
from typing import Optional

from explorer.errors import AnalysisWarning
from explorer.state_api import ALLOCATIONS
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import MAX_ENTRY_BYTES, Slice
from explorer.symbex.ctype import ArrayType, CType, PointerType, StructType
from explorer.symbex.effects import ObjectInfo
from explorer.symbex.memory import Region
from explorer.symbex.models.context import CallContext, Model
from explorer.symbex.values import Int, Ptr, Value

SKETCH_DEPTH = 4  # nf.h's NF_SKETCH_DEPTH
MAX_MAP_ENTRIES = (1 << 30) // 2  # nf_state.c refuses more: RTE_HASH_ENTRIES_MAX / 2
MAX_INDEX = (1 << 31) - 1  # nf_dchain_allocate refuses more: its indices are ints


class Allocate(Model):
    """Every allocation: map, vector, dchain, sketch and cht (``explorer.state_api.ALLOCATIONS``)."""

    names = tuple(ALLOCATIONS)

    def call(self, ctx: CallContext) -> Optional[Value]:
        m = ctx.machine
        if ctx.mode != "init":
            raise ctx.fail(f"{ctx.name}() is called from nf_process; state objects are allocated only by nf_init")
        kind = ALLOCATIONS[ctx.name].kind
        out = ctx.pointer(len(ctx.args) - 1, "the handle argument")
        region = m.memory.get(out.region) if out.region else None
        var = None
        if region is not None and region.kind == "global" and isinstance(out.offset, int):
            declared = next((g for g in m.program.globals if f"global:{g.name}" == region.name), None)
            if declared is not None:
                var = handle_path(declared.name, declared.ctype, out.offset)
        if var is None:
            raise ctx.fail(f"{ctx.name}() must store the handle in a global pointer variable or a pointer member of "
                           "a global struct or array (pass &global, &global.member or &global[constant])")
        if var in m.objects:
            raise ctx.fail(f"{var} is allocated twice")
        numbers = [ctx.constant(i, f"argument {i + 1} of {ctx.name}()", ctx.nodes[i]) for i in range(len(ctx.args) - 1)]
        size, capacity, extra, layout = 0, 0, (), None
        if kind in ("map", "vector", "sketch"):
            size, capacity = numbers
            layout = ctx.sizeof_type(0)
            if kind == "sketch":
                extra = (("depth", SKETCH_DEPTH),)
        elif kind == "dchain":
            (capacity,) = numbers
        else:
            capacity, backends = numbers
            extra = (("backends", backends),)
        if capacity <= 0:
            raise ctx.fail(f"{ctx.name}() with a capacity of {capacity}: a {kind} needs a capacity of at least 1 "
                           f"(is a -D or #define of it 0?)")
        if size <= 0 and kind in ("map", "vector", "sketch"):
            raise ctx.fail(f"{ctx.name}() with {'keys' if kind != 'vector' else 'cells'} of {size} bytes: they need at "
                           f"least 1 byte")
        # Past what the state library takes, nf_init fails when run (tests/nfs/init_refuses.c): legal C,
        # analysed as written, but said now rather than at the first run.
        too_many = None
        if kind == "map" and capacity > MAX_MAP_ENTRIES:
            too_many = (f"the state library's maps (DPDK's rte_hash) hold at most {MAX_MAP_ENTRIES:,} entries",
                        "map capacity over the library's limit")
        if kind == "dchain" and capacity > MAX_INDEX:
            too_many = f"its indices are C ints, at most {MAX_INDEX:,}", "dchain range over INT32_MAX"
        if too_many is not None:
            location = m.loc(ctx.node)
            warnings.warn(AnalysisWarning(f"{location}: {ctx.name}() with a capacity of {capacity:,}: {too_many[0]}, so "
                                          f"nf_init will fail when the NF runs", location, f"warning: {too_many[1]}"),
                          stacklevel=2)
        if size > MAX_ENTRY_BYTES:
            raise ctx.fail(f"{ctx.name}() with entries of {size:,} bytes: nfx analyses entries (keys, cells) of at most "
                           f"{MAX_ENTRY_BYTES:,} bytes")
        m.objects[var] = ObjectInfo(var, kind, len(m.objects), capacity, size, layout, extra, m.loc(ctx.node))
        handle = Ptr(PointerType(ct.VOID), f"object:{var}", 0)
        m.write(out, tuple(Slice(handle, i) for i in range(8)), ctx.node)
        m.memory[f"object:{var}"] = Region(f"object:{var}", "handle", var, 0)
        return Int(ct.BOOL, 1)


def handle_path(var: str, ctype: CType, offset: int) -> Optional[str]:
    """The C lvalue of the pointer at ``offset`` in global ``var``: ``flows``, ``st.flows``,
    ``tables[1]``; the object's name, which generate finds again in the allocation's argument
    (``explorer.codegen.transform``). None when no pointer starts there (a union's members have no
    one name)."""
    name, t = var, ctype
    while True:
        if isinstance(t, PointerType):
            return name if offset == 0 else None
        if isinstance(t, ArrayType) and t.elem.size > 0 and 0 <= offset < t.size:
            i, offset = divmod(offset, t.elem.size)
            name, t = f"{name}[{i}]", t.elem
        elif isinstance(t, StructType) and not t.union:
            member = next((f for f in t.fields if f.offset <= offset < f.offset + f.ctype.size), None)
            if member is None:
                return None
            name, t, offset = f"{name}.{member.name}", member.ctype, offset - member.offset
        else:
            return None
