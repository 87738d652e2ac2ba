"""Counted nouns in what nfx prints (``1 core``, ``16 cores``, ``1 packet``), and captures named as given."""
from __future__ import annotations


def count(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun``, in the plural (``plural``, or ``noun`` + s) unless ``n`` is 1."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def captures_hold(names: list[str]) -> str:
    """``the capture 0=a.pcap holds`` or ``the captures 0=a.pcap, 1=b.pcap hold``."""
    many = len(names) > 1
    return f"the capture{'s' if many else ''} {', '.join(names)} hold{'' if many else 's'}"
