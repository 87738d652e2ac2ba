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


def test_a_ladder_of_byte_tests_reads_as_the_field_it_compares():
    """``memcmp(eth->src, banned, 6) == 0`` is a ``?:`` ladder over the bytes ending in 0, -1 or 1;
    it read ``(p.ether.src[47:40] == 2 ? (... : (p.ether.src[15:8] < 0 ? -1 : 1)) ...) != 0``."""
    from pathlib import Path

    from explorer import pipeline

    analysis = pipeline.analyze(Path(__file__).resolve().parent / "nfs" / "mac_ban.c")
    texts = [p.condition_text for p in analysis.paths]
    assert "p.ether.src == 02:00:00:00:00:01" in texts
    assert sum(t.startswith("p.ether.src != 02:00:00:00:00:01 && ") for t in texts) == 4


def test_a_ladder_with_several_ways_to_the_value_is_shown_whole():
    a, b = z3.BitVec("p.ipv4.ttl", 8), z3.BitVec("p.ipv4.tos", 8)
    three = z3.If(a == 1, z3.BitVecVal(0, 32), z3.If(b == 2, z3.BitVecVal(0, 32), z3.BitVecVal(5, 32)))
    assert Renderer().text(three == 5) == "(p.ipv4.ttl != 1 && p.ipv4.tos != 2)"  # it may stand in a &&
    assert Renderer().text(three == 0).startswith("(p.ipv4.ttl == 1 ? 0 : ")  # two ways: the tree itself


def test_byte_tests_are_joined_only_when_each_byte_is_tested_once():
    from explorer.symbex.render import _joined_bytes

    src = z3.BitVec("p.ether.src", 48)
    tests = [z3.Extract(47 - 8 * i, 40 - 8 * i, src) == v for i, v in enumerate([2, 0, 0, 0, 0, 1])]
    assert Renderer().text(_joined_bytes(tests)) == "p.ether.src == 02:00:00:00:00:01"
    # a byte tested twice (no packet passes): not one field value, which would hide the second test
    assert Renderer().text(_joined_bytes(tests + [z3.Extract(7, 0, src) == 2])).endswith("p.ether.src[7:0] == 2")


def test_a_range_of_one_value_reads_as_the_value():
    """An ACL rule for one port tests ``port >= lo && port <= hi`` with lo == hi: it read
    ``p.l4.dport >= 23 && p.l4.dport <= 23``, and its negation ``!(... >= 445 && ... <= 445)``."""
    wide = z3.ZeroExt(16, DPORT)
    one = z3.And(wide >= 23, wide <= 23)  # C compares the promoted port as an int
    assert Renderer().text(z3.And(SRC == 1, one)) == "p.ipv4.src == 0.0.0.1 && p.l4.dport == 23"
    assert Renderer().text(z3.Not(one)) == "p.l4.dport != 23"
    assert Renderer().text(z3.Not(z3.And(wide >= 23, wide <= 24))) == "!(p.l4.dport >= 23 && p.l4.dport <= 24)"
