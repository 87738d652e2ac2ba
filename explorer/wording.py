"""Counted nouns in what nfx prints: ``1 core``, ``16 cores``, ``1 packet``."""
from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun``, in the plural (``plural``, or ``noun`` + s) unless ``n`` is 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
