"""Comparisons of ``&``, ``|`` and ``^`` results read as C reads them (explorer/symbex/render.py).

A path of an NF testing ``(dport & 0xff00) == 0x1900`` read ``p.l4.dport & 0xff00 != 6400``, which in
C is ``p.l4.dport & (0xff00 != 6400)``; such a side is now parenthesised."""
from __future__ import annotations

import z3

from explorer.symbex.render import Renderer

DPORT = z3.BitVec("p.l4.dport", 16)
SRC = z3.BitVec("p.ipv4.src", 32)


def test_a_bitwise_side_of_a_comparison_is_parenthesised():
    assert Renderer().text((DPORT & 0xff00) != 6400) == "(p.l4.dport & 0xff00) != 6400"
    assert Renderer().text((DPORT | 1) == 7) == "(p.l4.dport | 1) == 7"
    assert Renderer().text(z3.ULT(DPORT ^ 3, 9)) == "(p.l4.dport ^ 3) < 9"


def test_arithmetic_and_address_prefixes_read_as_before():
    assert Renderer().text(z3.ULT(DPORT + 3, 9)) == "p.l4.dport + 3 < 9"
    assert Renderer().text((SRC & 0xffff0000) == 0x0a000000) == "p.ipv4.src & 0xffff0000 == 10.0.0.0"
