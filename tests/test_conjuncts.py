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


def test_tests_of_the_device_read_as_decided_on_a_path_that_states_its_device(tmp_path: Path) -> None:
    """A path of device 1 read ``!(p.device == 1 && p.ipv4.ttl < 5) && ... && p.device == 1``: under the
    device its text states, the test reads ``p.ipv4.ttl >= 5``, and one the device makes true goes.
    The path's own test of the device stays, even inside a negated disjunction."""
    nf = tmp_path / "dev_and.c"
    nf.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                  "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                  "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                  "  if (device == 1 && ip->ttl < 5) return NF_DROP;\n"
                  "  if (device != 0 || ip->tos != 7) return 1 - device;\n  return NF_FLOOD;\n}\n")
    analysis = pipeline.analyze(nf)
    assert {(p.devices, p.condition_text) for p in analysis.paths} == {
        ((0, 1), "!p.is_ipv4"),
        ((0,), "p.is_ipv4 && !(p.device != 0 || p.ipv4.tos != 7)"),
        ((0,), "p.is_ipv4 && p.ipv4.tos != 7 && p.device == 0"),
        ((1,), "p.is_ipv4 && p.ipv4.ttl >= 5 && p.device == 1"),
        ((1,), "p.is_ipv4 && p.device == 1 && p.ipv4.ttl < 5"),
    }
    # the conditions keep every test
    assert all("p.device" in symbols_of(p.condition) for p in analysis.paths if p.devices != (0, 1))


def test_a_merged_way_reads_as_decided_on_the_paths_device() -> None:
    """syn_window.c's TCP case on device 1 read ``(!p.is_tcp || (p.is_tcp && !(p.device == 1 &&
    (p.tcp.flags & 0x12) == 2))) && p.device == 1``."""
    texts = [p.condition_text for p in pipeline.analyze(NFS / "syn_window.c").paths]
    assert ("p.is_ipv4 && p.ipv4.proto == 6 && (!p.is_tcp || (p.is_tcp && (p.tcp.flags & 0x12) != 2)) && p.device == 1"
            in texts), texts
