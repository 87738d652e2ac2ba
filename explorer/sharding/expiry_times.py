"""Whether every expiry of an object passes the same time, a function of ``now`` alone.

Sharded, each core expires its own entries when one of its own packets runs the expiry. With one
age for every packet (``now - AGE``), an entry is gone at time t exactly when it was last used
before t - AGE, whoever ran the expiry: the same on any core as sequentially. When the age
depends on the packet (a TCP frame expires what is idle for 30 s, any other frame what is idle for
2 s) or on state, a flow's entry goes when *some* packet with a shorter age comes: sequentially
any packet of the NF, sharded only one of its own core. A TCP reply the sequential NF drops,
because a UDP frame of another flow expired its entry, would pass on every other core.
"""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.ir import Access, Analysis, Op
from explorer.nf_terms import FIELD_NAMES, access_site, state_value
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.path_solver import PathSolver

NOW = "now"


def uneven_expiries(analysis: Analysis) -> dict[str, str]:
    """Expired object -> why its expiries do not all pass the same function of ``now`` (objects whose
    expiries do are left out)."""
    firsts: dict[str, tuple[int, Access]] = {}
    uneven: dict[str, str] = {}
    solver: Optional[PathSolver] = None
    for path in analysis.paths:
        for access in path.accesses:
            if access.op != Op.EXPIRE or access.time is None or access.object in uneven:
                continue
            others = sorted(symbols_of(access.time) - {NOW})
            if others:
                uneven[access.object] = (
                    f"{access_site(access)} expires {access.object} at a time "
                    f"that depends on {_names(others, path)}, not on now alone: sharded, an entry would go only "
                    f"when a packet of its own core with that age comes, sequentially when any packet does")
                continue
            first = firsts.setdefault(access.object, (path.index, access))
            if first[1].time is access.time or z3.eq(first[1].time, access.time):
                continue
            solver = solver or PathSolver()
            if solver.satisfiable([], access.time != first[1].time, witness=False):
                uneven[access.object] = (
                    f"{access_site(first[1])} and {access_site(access)} expire {access.object} with different "
                    f"ages: sharded, an entry would go only when a packet of its own core with the shorter age comes, "
                    f"sequentially when any packet does")
    return uneven


def _names(symbols: list[str], path: Any) -> str:
    """What an expiry time depends on besides now, in the NF's terms (a field, a value from state)."""
    return ", ".join(FIELD_NAMES.get(s, "the input device" if s == "p.device" else state_value(s, path))
                     for s in symbols)
