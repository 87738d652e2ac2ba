"""The analysis' key terms and path conditions over whole arrays of packets.

Evaluation itself is ``explorer.symbex.evaluate`` (Z3 terms compiled to numpy); this module only
cuts wide keys into 64-bit slices, so every slice stays a fast uint64 array, and keeps the
conjuncts of a path condition that the packets alone decide.
"""
from __future__ import annotations

import numpy as np
import z3

from explorer.symbex.bitvec import conjuncts
from explorer.symbex.evaluate import compile_term


class Unknown(Exception):
    """The term depends on a value the packets alone do not give (a state value, ``now``)."""


def key_slices(term: z3.BitVecRef, env: dict[str, np.ndarray], count: int) -> list[np.ndarray]:
    """``term`` per packet as uint64 slices of 64 bits, least significant first (read-only: a
    slice may be a broadcast constant or a symbol's own array)."""
    width = term.size()
    parts = [term] if width <= 64 else [z3.simplify(z3.Extract(min(lo + 63, width - 1), lo, term))
                                         for lo in range(0, width, 64)]
    return [np.broadcast_to(evaluate_term(p, env), (count,)).astype(np.uint64, copy=False) for p in parts]


def evaluate_term(term: z3.ExprRef, env: dict[str, np.ndarray]) -> np.ndarray:
    """``term`` over arrays; ``Unknown`` when it reads a symbol ``env`` lacks."""
    try:
        return compile_term(term)(env)
    except KeyError as missing:
        raise Unknown(str(missing).strip("'\"").removeprefix("no value for symbol ")) from None


def packet_guard(condition: z3.BoolRef, env: dict[str, np.ndarray], count: int,
                 memo: dict | None = None, split: dict | None = None) -> np.ndarray:
    """Packets that may take a path: its conjuncts over packet fields hold (the others, about state
    values, are assumed to). ``memo`` keeps conjunct values across paths of the same packets;
    ``split`` keeps each condition's conjuncts across calls (walking Z3 terms from Python costs
    more than evaluating them over a few hundred thousand packets)."""
    memo = {} if memo is None else memo
    mask = np.ones(count, dtype=bool)
    if split is None:
        parts = conjuncts(condition)
    else:
        ident = condition.get_id()
        if ident not in split:
            split[ident] = (condition, conjuncts(condition))  # the condition kept: its id stays its own
        parts = split[ident][1]
    for c in parts:
        key = c.get_id()
        if key not in memo:
            try:
                memo[key] = (c, np.broadcast_to(evaluate_term(c, env), (count,)))
            except Unknown:
                memo[key] = (c, None)
        value = memo[key][1]
        if value is not None:
            mask &= value
    return mask


def on_devices(devices: np.ndarray, wanted) -> np.ndarray:
    """Packets received on one of ``wanted`` (a few device numbers: a comparison each, where
    ``np.isin`` would sort millions of packets)."""
    mask = np.zeros(len(devices), dtype=bool)
    for d in wanted:
        mask |= devices == d
    return mask
