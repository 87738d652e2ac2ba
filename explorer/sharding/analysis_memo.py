"""Answers computed from an analysis alone, kept while the analysis lives.

The sharding stage runs again for every override checked (``nfx solve`` checks each remedy
``OBJ=replicate`` by sharding and solving again), and most of what it computes depends on the
analysis only: the keys' parts and folds, each object's writers and their packet classes, the cell
bits paths read. Those are kept here, per analysis object, and dropped with it.
"""
from __future__ import annotations

import weakref

from explorer.ir import Analysis

# Per analysis (while it lives): a dict each caller keeps its own answers in, under its own key.
_MEMOS: dict[int, tuple[weakref.ref, dict]] = {}


def memo(analysis: Analysis) -> dict:
    """The dict of answers kept for ``analysis`` (empty at first; gone when the analysis is)."""
    kept = _MEMOS.get(id(analysis))
    if kept is not None and kept[0]() is analysis:
        return kept[1]
    answers: dict = {}
    _MEMOS[id(analysis)] = (weakref.ref(analysis, lambda _, key=id(analysis): _MEMOS.pop(key, None)), answers)
    return answers
