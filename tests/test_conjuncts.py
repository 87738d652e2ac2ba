"""Path texts leave out the conjuncts the path's earlier ones decide (explorer.symbex.conjuncts):
a mask macro of 0, a test a helper already made, a signed comparison of promoted unsigned values
with the type's bound; the path condition itself keeps every test."""
from __future__ import annotations

from pathlib import Path

import z3

from explorer import pipeline
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.conjuncts import Conjuncts

NFS = Path(__file__).resolve().parent / "nfs"


def test_decided_tests_are_left_out_of_the_path_texts() -> None:
    """They read ``!((p.ipv4.tos & 0) != 0 || p.ipv4.ttl <= 1) && !(p.ipv4.proto == 17 &&
    p.ipv4.proto != 6) && ...``."""
    analysis = pipeline.analyze(NFS / "tos_classes.c")
    texts = {p.condition_text for p in analysis.paths}
    assert texts == {
        "!p.is_ipv4",
        "p.is_ipv4 && p.ipv4.ttl <= 1",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto == 17 && p.device == 0",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto == 17 && p.device == 1",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto != 17 && p.ipv4.proto == 6 && p.device == 0",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto != 17 && p.ipv4.proto == 6 && p.device == 1",
        # a switch's case is its label's test alone (no "p.ipv4.proto != 6" from the case above it)
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto != 17 && p.ipv4.proto == 1 && p.device == 0",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto != 17 && p.ipv4.proto == 1 && p.device != 0",
        "p.is_ipv4 && p.ipv4.ttl > 1 && p.ipv4.proto != 17 && p.ipv4.proto != 6 && p.ipv4.proto != 1",
    }
    # the conditions keep what the NF tested
    assert all("p.ipv4.tos" in symbols_of(p.condition) for p in analysis.paths if "p.ipv4.ttl" in p.condition_text)


def test_a_mask_that_is_not_zero_is_shown() -> None:
    analysis = pipeline.analyze(NFS / "tos_classes.c", {"TC_ECN_MASK": "3"})
    assert any(p.condition_text.startswith("p.is_ipv4 && ((p.ipv4.tos & 3) != 0 || p.ipv4.ttl <= 1)")
               for p in analysis.paths)
    assert any(p.condition_text.startswith("p.is_ipv4 && !((p.ipv4.tos & 3) != 0 || p.ipv4.ttl <= 1)")
               for p in analysis.paths)


def test_what_each_condition_shows() -> None:
    port, proto, flag = z3.BitVec("p.l4.dport", 16), z3.BitVec("p.ipv4.proto", 8), z3.Bool("flows.found#1")
    wide = z3.ZeroExt(16, port)
    any_port = z3.And(wide >= 0, wide <= 0xFFFF)  # C's int comparison of a promoted uint16_t
    conditions = [proto == 17, z3.Not(z3.And(proto == 17, port == 53)), z3.Or(proto == 6, port == 80), any_port,
                  flag, z3.Or(z3.Not(flag), port == 443), z3.Not(proto == 17)]
    shown = Conjuncts().shown(conditions)
    assert shown[0] is conditions[0]
    assert z3.eq(shown[1], z3.Not(port == 53))  # proto == 17 holds
    assert z3.eq(shown[2], port == 80)  # proto == 6 cannot
    assert shown[3] is None  # the bounds of a uint16_t
    assert shown[4] is conditions[4]
    assert z3.eq(shown[5], port == 443)  # the flag holds
    assert shown[6] is conditions[6]  # false under the first: the path's own business, shown as is
