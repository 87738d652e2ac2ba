"""Contention under the locks and tm strategies: which packets take the write lock.

Those builds keep one shared copy of every object, so no state entry can be split between cores
and nothing breaks the way a wrong shared-nothing key does; what they cost is contention. The
runtime (``explorer/runtime/nf_parallel.h``) runs every packet as a reader first; its first state
mutation aborts the pass and the packet reruns under the write lock. Mutations are what the
analysis marks WRITE (a map put or erase, a vector cell returned changed), CREATE (a dchain
allocation) and DESTROY, except that a vector cell returned changed is written in the reader pass,
under its cell lock (after the first such write of the vector): a path whose only mutations are
vector cells takes no write lock, and the model counts its packets apart ("cells"). Refreshing a
dchain index (UPDATE) is a read in that runtime. Expiry mutates only when entries expire, which
depends on time: this model leaves it out.

Which path a packet takes often depends on state ("is this flow known?"). Per packet class the
model looks at the paths its headers allow: if all of them mutate, every packet writes; if none
does, every packet reads; if both kinds are possible, the first packet with the writing path's
*creation key* writes (it creates the entry) and the later ones read. The creation key is the
first state key on the writing path that the packet's headers determine (e.g. the firewall's
flow-table lookup), counted per object, in trace order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import z3

from explorer.ir import Analysis, CallPath, Op
from explorer.sharding.constraints import symbols_of

WRITE_OPS = (Op.WRITE, Op.CREATE, Op.DESTROY)


@dataclass(frozen=True)
class Contention:
    """Packets that take the write lock, in all and per core."""

    packets: int
    writes: int
    per_core: tuple[int, ...]
    notes: tuple[str, ...] = ()  # where the model had to guess
    cells: int = 0  # packets that write only vector cells (under cell locks, no write lock)

    @property
    def share(self) -> float:
        return self.writes / self.packets if self.packets else 0.0

    @property
    def cell_share(self) -> float:
        return self.cells / self.packets if self.packets else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"writes": self.writes, "share": round(self.share, 6), "per_core": list(self.per_core),
                "notes": list(self.notes), "cells": self.cells, "cell_share": round(self.cell_share, 6)}


@dataclass(frozen=True)
class PathWrites:
    """One path of nf_process as the write model sees it."""

    path: CallPath
    writes: bool  # takes the write lock
    creation: Optional[tuple[str, Any]]  # (object, key term) of a writing path, when packets determine one
    cells: bool = False  # writes vector cells, and nothing else (cell locks)


def path_writes(analysis: Analysis) -> tuple[PathWrites, ...]:
    vectors = {o.name for o in analysis.objects if o.kind == "vector"}
    out = []
    for path in analysis.paths:
        mutations = [a for a in path.accesses if a.op in WRITE_OPS]
        if mutations and all(a.op == Op.WRITE and a.object in vectors for a in mutations):
            out.append(PathWrites(path, False, None, cells=True))
            continue
        writes = bool(mutations)
        creation = None
        if writes:
            for access in path.accesses:
                if access.key is None:
                    continue
                symbols = symbols_of(access.key)
                if symbols and all(s.startswith("p.") for s in symbols):
                    creation = (access.object, access.key)
                    break
        out.append(PathWrites(path, writes, creation))
    return tuple(out)


def conditions(model: tuple[PathWrites, ...]) -> list[z3.BoolRef]:
    return [p.path.condition for p in model]


def key_terms(model: tuple[PathWrites, ...]) -> list[z3.ExprRef]:
    return [p.creation[1] for p in model if p.creation is not None]
