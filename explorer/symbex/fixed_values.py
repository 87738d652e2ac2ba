"""The values a path's condition fixes, substituted into the terms that leave the analysis.

A key chosen per device (``device == LAN ? ip->dst_addr : ip->src_addr``, or a helper's
``bool reversed`` parameter) is an ``If`` over ``p.device``; on a path that only one device takes,
that ``If`` has one live arm. Substituting the fixed value and simplifying gives the key the
if/else version of the NF has, so that sharding sees what the key really depends on.

Only symbols RSS cannot hash are substituted (the device, the other header fields, library
results): a hashable field fixed by the path (a port the NF tested) stays a field, because
sharding relates the keys of different packets through exactly those fields.
"""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.symbex.bitvec import constants_of
from explorer.symbex.state import PathState
from explorer.wire import RSS_SYMBOL

HASHABLE = frozenset(RSS_SYMBOL.values())
DEVICE = "p.device"


class FixedValues:
    """Per path: which symbols its condition fixes, found on demand and remembered."""

    def __init__(self, state: PathState, devices: tuple[int, ...]):
        self.state = state
        self.devices = devices
        self._fixed: dict[str, Optional[int]] = {}
        self._consts: dict[str, Any] = {}

    def value(self, name: str, const: Any) -> Optional[int]:
        """The value the path fixes ``const`` (a symbol named ``name``) to, or None."""
        if name not in self._fixed:
            self._consts[name] = const
            if name == DEVICE:
                self._fixed[name] = self.devices[0] if len(self.devices) == 1 else None
            else:
                v = self.state.solver.model_value(self.state.constraints, True, const)
                self._fixed[name] = v if v is not None and self.state.proves(const == v) else None
        return self._fixed[name]

    def simplify(self, term: Any) -> Any:
        """``term`` with the fixed values of its non-hashable symbols substituted, simplified (the term
        itself when the path fixes none of them)."""
        if term is None:
            return None
        consts = constants_of(term)[0]
        subs = []
        for name in sorted(set(consts) - HASHABLE):
            v = self.value(name, consts[name])
            if v is not None:
                subs.append((consts[name], z3.BitVecVal(v, consts[name].size())))
        if not subs:
            return term
        return z3.simplify(z3.substitute(term, *subs))
