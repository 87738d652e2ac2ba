"""The values a path's condition fixes, substituted into the terms that leave the analysis.

A key chosen per device (``device == LAN ? ip->dst_addr : ip->src_addr``, or a helper's
``bool reversed`` parameter) is an ``If`` over ``p.device``; on a path that only one device takes,
that ``If`` has one live arm. Substituting the fixed value and simplifying gives the key the
if/else version of the NF has, so that sharding sees what the key really depends on.

Substituted are ``p.device`` wherever it occurs (the path's devices say whether it is fixed, without
asking the solver) and the symbols RSS cannot hash that choose between values inside a term (the
condition of an ``If``: a library flag, the protocol). A symbol that is plain data of the term stays
as it is, and a hashable field is never substituted: sharding relates the keys of different packets
through exactly those fields.
"""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.symbex.bitvec import TERM_MEMO, ast_id, constants_of, given
from explorer.symbex.state import PathState
from explorer.wire import RSS_SYMBOL

HASHABLE = frozenset(RSS_SYMBOL.values())
TRIED = 16  # symbols whose fixed value is looked for in one term: two solver calls each
DEVICE = "p.device"


class FixedValues:
    """Per path: which symbols its condition fixes, found on demand and remembered."""

    def __init__(self, state: PathState, devices: tuple[int, ...]):
        self.state = state
        self.devices = devices
        self._fixed: dict[str, Optional[int]] = {}
        self._consts: dict[str, Any] = {}
        self._constrained: Optional[set[str]] = None  # the symbols the path's constraints mention

    def value(self, name: str, const: Any) -> Optional[int]:
        """The value the path fixes ``const`` (a symbol named ``name``) to, or None."""
        if name not in self._fixed:
            self._consts[name] = const
            if self._constrained is None:
                self._constrained = set()
                for c in self.state.constraints + (self.state.assumptions or []):
                    self._constrained |= self.state.solver.symbols(c)
            if name == DEVICE:
                self._fixed[name] = self.devices[0] if len(self.devices) == 1 else None
            elif name not in self._constrained:  # no constraint mentions it: free (no solver call;
                self._fixed[name] = None         # a loop summing 200 cells made 400 of them)
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
        candidates = (_choosing(term) | ({DEVICE} & set(consts))) - HASHABLE
        if len(candidates) > TRIED:  # a term that chooses on many values (a sum of state cells
            candidates &= {DEVICE}   # compared): kept whole, which is equal under the path anyway
        values = [(consts[name], v) for name in sorted(candidates)
                  if (v := self.value(name, consts[name])) is not None]
        return given(term, values) if values else term


def _choosing(term: Any) -> frozenset[str]:
    """The symbols in the conditions of the ``If`` terms inside ``term`` (memoized per analysis)."""
    key = ("choosing", ast_id(term))
    hit = TERM_MEMO.get(key)
    if hit is None:
        names: set[str] = set()
        if z3.is_app(term):
            children = term.children()
            if z3.is_app_of(term, z3.Z3_OP_ITE):
                names |= set(constants_of(children[0])[0])
            for child in children:
                names |= _choosing(child)
        hit = TERM_MEMO[key] = frozenset(names)
    return hit
