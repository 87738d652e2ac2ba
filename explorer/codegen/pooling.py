"""Per-core pools in a generated sn project (sharding by allocation, ``explorer.sharding.pools``).

A pooled dchain keeps its whole index range on every core (its indices are the values packets
carry, e.g. external ports) and withholds the indices of the other cores' pools: the NF's
``nf_dchain_allocate`` of it becomes ``nf_pool_dchain_allocate(pool, ...)`` (``nf_pool.h``), and its
capacity per core is its pool. Vectors keep every cell: they are indexed by those global indices.
Maps get ``nf_pool_capacity``: at least the core's pool, so that one entry per allocated index fits.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from explorer.sharding.pools import Pools, repooled


def pools_for(pools: Sequence[Pools], steering: Sequence, cores: int) -> tuple[Pools, ...]:
    """The pools under the plan's steering (RETA entries already taken modulo ``cores``)."""
    out = []
    for p in pools:
        d = steering[p.device]
        out.append(repooled(p, d.key, d.fields, d.reta, cores))
    return tuple(out)


def pooled_objects(objects: Sequence, pools: Sequence[Pools]) -> tuple:
    """The objects of an sn plan with pools: a pooled dchain's per-core capacity is its largest pool,
    vectors keep every cell, maps at least the largest pool."""
    largest = {p.allocator: max(p.sizes) for p in pools}
    number = {p.allocator: k for k, p in enumerate(pools)}
    out = []
    for o in objects:
        if o.name in largest:
            o = replace(o, per_core=largest[o.name], pool=number[o.name],
                        treatment=f"per core: its pool of indices (pool {number[o.name]}), the whole range withheld "
                                  "but for them")
        elif o.decision == "shard" and o.kind == "vector":
            o = replace(o, per_core=o.capacity, treatment="per core: every cell (indexed by pooled indices)")
        elif o.decision == "shard" and o.kind == "map" and o.per_core != o.capacity:
            o = replace(o, per_core=min(o.capacity, max(o.per_core, max(largest.values()))),
                        treatment="per core: its share or its pool, whichever is larger (nf_pool_capacity)")
        out.append(o)
    return tuple(out)
