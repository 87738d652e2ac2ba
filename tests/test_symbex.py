"""The path explorer on small NFs: one test per construct, library model and IR property."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pytest
import z3

from explorer import ir
from explorer.frontend import parse_nf
from explorer.symbex import analyze
from explorer.symbex.evaluate import compile_term
from explorer.symbex.path_search import explore

NFS = Path(__file__).resolve().parent / "nfs_analysis"

HEADERS = """\
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) return NF_DROP;
"""


def nf(tmp_path: Path, body: str, globals_: str = "", init: str = "return true;",
       defines: Optional[dict[str, str]] = None, name: str = "t") -> ir.Analysis:
    """Analyse an NF whose nf_process body is ``body`` (with ``globals_`` before it)."""
    path = tmp_path / f"{name}.c"
    path.write_text('#include "nf.h"\n' + globals_ + "\nbool nf_init(void) {\n" + init + "\n}\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    + body + "\n}\n")
    return analyze(path, defines)


OUT = """\
struct nf_map *out;
#define OUT(...) do { uint64_t v_ = (uint64_t)(__VA_ARGS__); nf_map_put(out, &v_, 0); } while (0)
"""
OUT_INIT = "return nf_map_allocate(8, 16, &out);"


def outs(path: ir.CallPath) -> list[int]:
    """The concrete values a path stored with OUT(...)."""
    values = []
    for access in path.accesses:
        if access.call == "nf_map_put" and access.object == "out":
            values.append(int.from_bytes(z3.simplify(access.key).as_long().to_bytes(8, "big"), "little"))
    return values


def conditions(analysis: ir.Analysis) -> list[str]:
    return [p.condition_text for p in analysis.paths]


# ---- the analysis as a whole ------------------------------------------------------------------
def test_firewall_objects_paths_and_keys() -> None:
    a = analyze(NFS / "fw_small.c")
    assert a.nf == "fw_small" and a.devices == 2
    assert [(o.name, o.kind, o.alloc_index, o.capacity, o.size, o.layout) for o in a.objects] == [
        ("flows", "map", 0, 1024, 16, "struct flow_key"), ("keys", "vector", 1, 1024, 16, "struct flow_key"),
        ("chain", "dchain", 2, 1024, 0, "")]
    assert conditions(a) == [
        "!p.is_ipv4", "p.is_ipv4 && !p.is_tcpudp",
        "p.is_ipv4 && p.is_tcpudp && p.device != 0 && !flows.found#2",
        "p.is_ipv4 && p.is_tcpudp && p.device != 0 && flows.found#2",
        "p.is_ipv4 && p.is_tcpudp && p.device == 0 && !flows.found#2 && !chain.ok#3",
        "p.is_ipv4 && p.is_tcpudp && p.device == 0 && !flows.found#2 && chain.ok#3",
        "p.is_ipv4 && p.is_tcpudp && p.device == 0 && flows.found#2"]
    assert [p.devices for p in a.paths] == [(0, 1), (0, 1), (1,), (1,), (0,), (0,), (0,)]
    assert [str(p.verdict) for p in a.paths] == ["drop", "drop", "drop", "forward to 0", "forward to 1",
                                                 "forward to 1", "forward to 1"]
    wan_get = a.paths[2].accesses[1]
    assert (wan_get.object, wan_get.op, wan_get.call, wan_get.results) == (
        "flows", ir.Op.READ, "nf_map_get", ("flows.found#2", "flows.value#2"))
    assert wan_get.key_text == ("{src_addr: p.ipv4.dst, dst_addr: p.ipv4.src, src_port: p.l4.dport, "
                                "dst_port: p.l4.sport, protocol: p.ipv4.proto, pad: 0}")
    assert wan_get.location == ir.Location(str(NFS / "fw_small.c"), 58, 8)
    new_flow = a.paths[5]
    assert [(x.object, x.op.value, x.call) for x in new_flow.accesses] == [
        ("chain", "EXPIRE", "nf_expire_items"), ("flows", "READ", "nf_map_get"),
        ("chain", "CREATE", "nf_dchain_allocate_new_index"), ("keys", "READ", "nf_vector_borrow"),
        ("flows", "WRITE", "nf_map_put"), ("keys", "WRITE", "nf_vector_return")]
    assert new_flow.accesses[0].related == ("keys", "flows")
    assert new_flow.accesses[3].key_text == "chain.index#3"
    assert a.fields_read == tuple(sorted(a.fields_read))
    assert {"p.ipv4.src", "p.ipv4.dst", "p.l4.sport", "p.l4.dport", "p.ipv4.proto"} <= set(a.fields_read)


def test_key_terms_follow_the_symbol_conventions() -> None:
    a = analyze(NFS / "fw_small.c")
    key = a.paths[6].accesses[1].key  # LAN lookup: the key bytes in memory order
    src, dst = z3.BitVec("p.ipv4.src", 32), z3.BitVec("p.ipv4.dst", 32)
    sport, dport, proto = z3.BitVec("p.l4.sport", 16), z3.BitVec("p.l4.dport", 16), z3.BitVec("p.ipv4.proto", 8)
    expected = z3.Concat(src, dst, sport, dport, proto, z3.BitVecVal(0, 24))
    solver = z3.Solver()
    solver.add(key != expected)
    assert solver.check() == z3.unsat


def test_analysis_is_deterministic_and_json_ready() -> None:
    import json
    first, second = analyze(NFS / "fw_small.c"), analyze(NFS / "fw_small.c")
    assert json.dumps(first.to_dict(), sort_keys=True) == json.dumps(second.to_dict(), sort_keys=True)
    assert first == second


def test_paths_are_ordered_false_before_true(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  if (ip->ttl > 5) { if (l4->dst_port == nf_htons(80)) return 1; return 0; }\n"
           "  return NF_DROP;")
    assert conditions(a)[2:] == ["p.is_ipv4 && p.is_tcpudp && p.ipv4.ttl <= 5",
                                 "p.is_ipv4 && p.is_tcpudp && p.ipv4.ttl > 5 && p.l4.dport != 80",
                                 "p.is_ipv4 && p.is_tcpudp && p.ipv4.ttl > 5 && p.l4.dport == 80"]
    assert [p.index for p in a.paths] == list(range(len(a.paths)))


def test_the_header_accessors_fork_on_nf_h_conditions(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  return 0;")
    not_ipv4, not_l4, both = (p.condition for p in a.paths)
    f = {n: z3.BitVec(n, b) for n, b in (("p.ether.type", 16), ("p.ipv4.version_ihl", 8), ("p.len", 16),
                                          ("p.ipv4.frag_off", 16), ("p.ipv4.proto", 8), ("p.device", 16))}
    ihl = z3.ZeroExt(24, f["p.ipv4.version_ihl"] & 0xF)
    length = z3.ZeroExt(16, f["p.len"])
    ipv4 = z3.And(f["p.ether.type"] == 0x0800, z3.LShR(f["p.ipv4.version_ihl"], 4) == 4, ihl >= 5,
                  z3.UGE(length, 14 + 4 * ihl))
    l4 = z3.And(ipv4, f["p.ipv4.frag_off"] & 0x3FFF == 0,
                z3.Or(z3.And(f["p.ipv4.proto"] == 6, z3.UGE(length, 14 + 4 * ihl + 20)),
                      z3.And(f["p.ipv4.proto"] == 17, z3.UGE(length, 14 + 4 * ihl + 8))))
    assumptions = z3.And(z3.UGE(f["p.len"], 14), z3.ULT(f["p.device"], 2))
    solver = z3.Solver()
    for condition, expected in ((not_ipv4, z3.Not(ipv4)), (not_l4, z3.And(ipv4, z3.Not(l4))), (both, l4)):
        solver.push()
        solver.add(z3.Not(condition == z3.And(assumptions, expected)))
        assert solver.check() == z3.unsat
        solver.pop()


def test_devices_of_each_path(tmp_path: Path) -> None:
    a = nf(tmp_path, "  if (device == 2) return 0;\n  return device < 2 ? NF_FLOOD : NF_DROP;",
           defines={"NF_DEVICES": "3"})
    assert [(p.condition_text, p.devices, str(p.verdict)) for p in a.paths] == [
        ("p.device != 2", (0, 1), "flood"), ("p.device == 2", (2,), "forward to 0")]


# ---- control flow ---------------------------------------------------------------------------
def test_helpers_are_inlined_with_their_own_locals(tmp_path: Path) -> None:
    globals_ = OUT + "static int twice(int x) { int y = x * 2; return y; }\n" \
                     "static void store(int *p, int v) { *p = v; }\n"
    a = nf(tmp_path, "  int y = 1; int z; store(&z, twice(21)); OUT(z); OUT(y); OUT(twice(twice(3)));\n  return 0;",
           globals_, OUT_INIT)
    assert outs(a.paths[0]) == [42, 1, 12]


def test_early_returns_and_nested_blocks(tmp_path: Path) -> None:
    a = nf(tmp_path, "  for (int i = 0; i < 10; i++) { if (i == 3) { OUT(i); return 1; } }\n  return 0;",
           OUT, OUT_INIT)
    assert len(a.paths) == 1 and outs(a.paths[0]) == [3] and a.paths[0].verdict.device == 1


def test_switch_with_fallthrough_and_default(tmp_path: Path) -> None:
    a = nf(tmp_path, """
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) return NF_DROP;
  int v = 0;
  switch (ip->protocol) {
    case NF_IP_PROTO_TCP: v += 1;
    case NF_IP_PROTO_UDP: v += 10; break;
    case 1: return NF_FLOOD;
    default: v = 100;
  }
  OUT(v);
  return 0;""", OUT, OUT_INIT)
    # a case's path is its label's test alone: the labels are distinct constants
    assert [(p.condition_text.split(" && ")[1:], outs(p), str(p.verdict)) for p in a.paths[1:]] == [
        (["p.ipv4.proto != 6", "p.ipv4.proto != 17", "p.ipv4.proto != 1"], [100], "forward to 0"),
        (["p.ipv4.proto == 1"], [], "flood"),
        (["p.ipv4.proto == 17"], [10], "forward to 0"),
        (["p.ipv4.proto == 6"], [11], "forward to 0")]


def test_a_case_the_path_rules_out_is_not_a_fork(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  switch (ip->protocol) { case 6: return 1; case 17: return 2; default: return 3; }",
           defines={"NF_DEVICES": "4"})
    assert [(p.condition_text.split(" && ")[2:], str(p.verdict)) for p in a.paths[2:]] == [
        (["p.ipv4.proto == 17"], "forward to 2"), (["p.ipv4.proto == 6"], "forward to 1")]


def test_switch_on_a_constant_does_not_fork(tmp_path: Path) -> None:
    a = nf(tmp_path, "  switch (3) { case 1: return 1; case 3: OUT(3); default: OUT(4); }\n  return 0;",
           OUT, OUT_INIT)
    assert len(a.paths) == 1 and outs(a.paths[0]) == [3, 4]


def test_pure_short_circuit_makes_one_fork(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  if (ip->ttl > 1 && (l4->dst_port == nf_htons(53) || ip->tos == 0)) return 1;\n"
           "  return 0;")
    assert [p.condition_text.split(" && ", 2)[2] for p in a.paths[2:]] == [
        "!(p.ipv4.ttl > 1 && (p.l4.dport == 53 || p.ipv4.tos == 0))",
        "p.ipv4.ttl > 1 && (p.l4.dport == 53 || p.ipv4.tos == 0)"]


def test_short_circuit_with_a_side_effect_forks_and_skips_the_call(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  int v = 0;\n  if (ip->ttl > 1 && nf_map_get(out, &v, &v)) return 1;\n  return 0;",
           "struct nf_map *out;", "return nf_map_allocate(4, 16, &out);")
    tail = a.paths[2:]
    assert [p.condition_text.split(" && ")[2:] for p in tail] == [
        ["p.ipv4.ttl <= 1"], ["p.ipv4.ttl > 1", "!out.found#1"], ["p.ipv4.ttl > 1", "out.found#1"]]
    assert [len(p.accesses) for p in tail] == [0, 1, 1]


def test_pure_ternary_is_a_value_not_a_fork(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  return ip->ttl > 64 ? 1 : 0;")
    last = a.paths[-1]
    assert len(a.paths) == 3 and last.verdict.kind == "forward" and last.verdict.device is None
    assert last.verdict.device_text == "(p.ipv4.ttl > 64)"
    values = compile_term(last.verdict.device_term)({"p.ipv4.ttl": [1, 65]})
    assert values.tolist() == [0, 1]


def test_a_comparison_kept_in_a_bool_and_tested_reads_as_the_comparison(tmp_path: Path) -> None:
    """``bool low = ttl < 5; if (low)`` read ``(p.ipv4.ttl < 5) != 0`` / ``== 0``: the 0/1 the bool
    holds, compared with 0. The text is the comparison or its negation; the terms are unchanged."""
    a = nf(tmp_path, HEADERS + "  bool low = ip->ttl < 5;\n  if (low) return NF_DROP;\n"
           "  int odd = (ip->ttl & 1) == 1 || ip->ttl == 64;\n  if (odd == 1) return 1;\n"
           "  if (!(ip->ttl > 100) == 0) return NF_FLOOD;\n  return 0;")
    assert [p.condition_text.split(" && ")[2:] for p in a.paths[2:]] == [
        ["p.ipv4.ttl >= 5", "!((p.ipv4.ttl & 1) == 1 || p.ipv4.ttl == 64)", "p.ipv4.ttl <= 100"],
        ["p.ipv4.ttl >= 5", "!((p.ipv4.ttl & 1) == 1 || p.ipv4.ttl == 64)", "p.ipv4.ttl > 100"],
        ["p.ipv4.ttl >= 5", "((p.ipv4.ttl & 1) == 1 || p.ipv4.ttl == 64)"],
        ["p.ipv4.ttl < 5"]]
    assert "(ite " in a.paths[-1].condition.sexpr()  # the term still compares the bool's 0/1 with 0
    # A cell's count kept in a bool (host_union.c, syn_guard.c: `bool over = *count >= MAX; if (over)`).
    cells = Path(__file__).resolve().parent / "nfs"
    host_union = [p.condition_text for p in analyze(cells / "host_union.c").paths]
    assert host_union[3].endswith("&& hosts.found#2 && used.cell#4 >= 100")
    assert host_union[4].endswith("&& hosts.found#2 && used.cell#4 < 100")
    syn_guard = [p.condition_text for p in analyze(cells / "syn_guard.c").paths]
    assert syn_guard[4].endswith("&& sources.found#2 && counts.cell#3 >= 8")
    assert syn_guard[5].endswith("&& sources.found#2 && counts.cell#3 < 8")


def test_a_verdict_decided_by_the_path_is_a_number(tmp_path: Path) -> None:
    a = nf(tmp_path, "  if (device == 1) return device - 1;\n  return NF_DROP;")
    assert [str(p.verdict) for p in a.paths] == ["drop", "forward to 0"]


def test_a_symbolic_verdict_that_may_drop_forks(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + "  return (int)(ip->ttl & 3) - 2;")
    assert [(p.condition_text.split(" && ")[2:], str(p.verdict)) for p in a.paths[2:]] == [
        (["(p.ipv4.ttl & 3) - 2 != -1", "(p.ipv4.ttl & 3) - 2 != -2"], "forward to (p.ipv4.ttl & 3) - 2"),
        (["(p.ipv4.ttl & 3) - 2 != -1", "(p.ipv4.ttl & 3) - 2 == -2"], "flood"),
        (["(p.ipv4.ttl & 3) - 2 == -1"], "drop")]


def test_masks_read_in_hex_and_masked_addresses_as_prefixes(tmp_path: Path) -> None:
    """A constant operand of &, | or ^ is a mask, written in hex as the C code writes it, and a
    masked address compares with a dotted quad: 0xffffff00 showed as -256, 10.0.0.0 as 167772160."""
    a = nf(tmp_path, HEADERS + """  if ((nf_ntohl(ip->src_addr) & 0xffffff00u) == NF_IPV4(10, 0, 0, 0)) return NF_DROP;
  if ((ip->ttl ^ 0x3c) == 1) return 1;
  return 0;""")
    assert [p.condition_text.split(" && ")[2:] for p in a.paths[2:]] == [
        ["p.ipv4.src & 0xffffff00 != 10.0.0.0", "(p.ipv4.ttl ^ 0x3c) != 1"],
        ["p.ipv4.src & 0xffffff00 != 10.0.0.0", "(p.ipv4.ttl ^ 0x3c) == 1"],
        ["p.ipv4.src & 0xffffff00 == 10.0.0.0"]]


@pytest.mark.parametrize("loop", [
    "for (int i = 0; i < 6; i++) s += i;",
    "int i = 0; while (i < 6) { s += i; i++; }",
    "int i = 0; do { s += i; i++; } while (i < 6);",
    "for (int i = 0; ; i++) { if (i == 6) break; if (i == 2) { s += 2; continue; } s += i; }",
])
def test_bounded_loops_are_unrolled(tmp_path: Path, loop: str) -> None:
    a = nf(tmp_path, f"  int s = 0;\n  {loop}\n  OUT(s);\n  return 0;", OUT, OUT_INIT)
    assert outs(a.paths[0]) == [15]


def test_a_loop_over_header_bytes_with_a_fork_inside(tmp_path: Path) -> None:
    a = nf(tmp_path, """
  struct nf_ether_hdr *eth = nf_ether_header(packet);
  uint8_t mac[6];
  for (int i = 0; i < 6; i++) mac[i] = eth->src[5 - i];
  if (mac[0] == 0xff) return NF_DROP;
  nf_map_put(out, mac, 0);
  return 0;""", "struct nf_map *out;", "return nf_map_allocate(6, 16, &out);")
    assert conditions(a) == ["p.ether.src[7:0] != 255", "p.ether.src[7:0] == 255"]
    assert a.paths[0].accesses[0].key_text == "bswap48(p.ether.src)"



@pytest.mark.parametrize("rounds", [4, 12])
def test_a_loop_summing_many_state_cells_is_analysed(rounds: int) -> None:
    """tests/nfs/cell_sum.c reads 16 counters ``rounds`` times over and compares their sum. At 4
    rounds Z3 gave up (its 20 s timeout, "could not decide a path condition") and 12 rounds took
    minutes: the sum is a heavy term now, which a fresh, preprocessing solver answers when the
    incremental one cannot at once."""
    a = analyze(Path(__file__).resolve().parent / "nfs" / "cell_sum.c", {"CS_ROUNDS": str(rounds)})
    assert len(a.paths) == 8
    data = [p for p in a.paths if p.accesses and p.accesses[0].call == "nf_vector_borrow"
            and all(x.op is ir.Op.READ for x in p.accesses)]
    assert sorted((p.devices, str(p.verdict)) for p in data) == [
        ((0,), "forward to 1"), ((0, 1), "drop"), ((1,), "forward to 0")]
    assert all(len(p.accesses) == 2 * 16 * rounds for p in data)
    forward, drop = next(p for p in data if p.devices == (0,)), next(p for p in data if p.devices == (0, 1))
    cells = sorted({r for p in data for x in p.accesses for r in x.results})
    for per_cell, follows in ((0, forward), (100, drop)):  # 16 x rounds cells of 100 pass the limit of 1000
        solver = z3.Solver()
        solver.add(z3.BitVec("p.device", 16) == 0, *[z3.BitVec(c, 32) == (per_cell << 24) for c in cells])
        for p in (forward, drop):
            solver.push()
            solver.add(p.condition)
            assert (solver.check() == z3.sat) == (p is follows), (per_cell, p.index)
            solver.pop()


# ---- data ------------------------------------------------------------------------------------
def test_structs_unions_arrays_and_initialisers(tmp_path: Path) -> None:
    globals_ = OUT + """
struct inner { uint8_t x[3]; uint16_t y; };
struct outer { uint32_t a; struct inner in; union { uint32_t w; uint8_t b[4]; } u; };
static const uint16_t table[2][3] = {{1, 2, 3}, {4, 5, 6}};
"""
    a = nf(tmp_path, """
  struct outer o = {.a = 7, .in = {.x = {1, 2}, .y = 9}};
  o.u.w = 0x11223344;
  struct outer copy = o;
  struct outer *p = &copy;
  OUT(p->in.x[1]); OUT(p->in.x[2]); OUT(o.in.y); OUT(copy.u.b[0]); OUT(copy.u.b[3]); OUT(sizeof o);
  OUT(table[1][2]); OUT(sizeof table); OUT(((struct inner){{4, 5, 6}, 7}).y);
  int arr[4] = {[2] = 5, 6};
  int *q = arr + 1;
  OUT(q[1] + q[2]); OUT(&arr[3] - &arr[0]); OUT(*(q - 1));
  return 0;""", globals_, OUT_INIT)
    assert outs(a.paths[0]) == [2, 0, 9, 0x44, 0x11, 16, 6, 12, 7, 11, 3, 0]


def test_pointers_to_header_fields_write_the_packet(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + """
  uint16_t *port = &l4->dst_port;
  *port = nf_htons(8080);
  ip->src_addr = ip->src_addr;          /* the same value: not a write */
  ip->ttl = ip->ttl - 1;
  nf_update_checksums(packet, len);
  return 1;""")
    writes = a.paths[-1].writes
    assert [(w.field, w.value_text) for w in writes] == [
        ("p.ipv4.ttl", "p.ipv4.ttl - 1"), ("p.l4.dport", "8080"),
        ("p.ipv4.checksum", "recomputed by nf_update_checksums")]
    assert writes[1].location is not None and writes[1].location.line == 13
    assert z3.simplify(writes[1].value).as_long() == 8080


def test_memcpy_memset_memcmp(tmp_path: Path) -> None:
    a = nf(tmp_path, """
  struct nf_ether_hdr *eth = nf_ether_header(packet);
  static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  uint8_t mac[8];
  memset(mac, 0xab, sizeof mac);
  memcpy(mac, eth->dst, 6);
  if (memcmp(mac, broadcast, 6) == 0) return NF_FLOOD;
  nf_map_put(out, mac, 0);
  return 0;""", "struct nf_map *out;", "return nf_map_allocate(8, 16, &out);")
    assert [str(p.verdict) for p in a.paths] == ["forward to 0", "flood"]
    assert a.paths[0].accesses[0].key_text == "concat(p.ether.dst, 43947)"
    flood = a.paths[1].condition
    solver = z3.Solver()
    solver.add(flood, z3.BitVec("p.ether.dst", 48) != 0xFFFFFFFFFFFF)
    assert solver.check() == z3.unsat


def test_symbolic_index_of_a_small_table_forks_per_value(tmp_path: Path) -> None:
    a = nf(tmp_path, "  static const int port_of[2] = {1, 0};\n  return port_of[device];")
    assert [(p.condition_text, p.devices, p.verdict.device) for p in a.paths] == [
        ("p.device == 0", (0,), 1), ("p.device == 1", (1,), 0)]


def test_nf_init_fills_read_only_state_concretely(tmp_path: Path) -> None:
    globals_ = "struct nf_map *macs; struct nf_vector *ports;\nstruct mac { uint8_t b[6]; };\n"
    init = """
  if (!nf_map_allocate(sizeof(struct mac), 4, &macs) || !nf_vector_allocate(2, 4, &ports)) return false;
  for (int i = 0; i < 3; i++) {
    struct mac m = {{2, 0, 0, 0, 0, (uint8_t)i}};
    int index;
    if (nf_map_get(macs, &m, &index)) return false;     /* the concrete model: not there yet */
    nf_map_put(macs, &m, i);
    if (!nf_map_get(macs, &m, &index) || index != i) return false;
    uint16_t *cell = nf_vector_borrow(ports, i);
    *cell = (uint16_t)(i % 2);
    nf_vector_return(ports, i, cell);
  }
  return true;"""
    a = nf(tmp_path, """
  struct mac m;
  memcpy(m.b, nf_ether_header(packet)->dst, 6);
  int index;
  if (!nf_map_get(macs, &m, &index)) return NF_FLOOD;
  uint16_t *cell = nf_vector_borrow(ports, index);
  int port = *cell;
  nf_vector_return(ports, index, cell);
  return port;""", globals_, init)
    assert [(o.name, o.kind, o.capacity, o.size, o.layout) for o in a.objects] == [
        ("macs", "map", 4, 6, "struct mac"), ("ports", "vector", 4, 2, "")]
    assert [x.op for x in a.paths[1].accesses] == [ir.Op.READ, ir.Op.READ, ir.Op.READ]
    assert a.paths[1].verdict.device_text == "ports.cell#2"  # `int port = *cell;`, no byte swap


# ---- the state library --------------------------------------------------------------------
LIB = """
struct entry { uint32_t count; uint32_t seen; };
struct nf_map *m; struct nf_vector *v; struct nf_vector *keys; struct nf_dchain *d; struct nf_sketch *s;
struct nf_cht *c; struct nf_dchain *alive;
"""
LIB_INIT = """
  return nf_map_allocate(4, 64, &m) && nf_vector_allocate(sizeof(struct entry), 64, &v) &&
         nf_vector_allocate(4, 64, &keys) && nf_dchain_allocate(64, &d) && nf_sketch_allocate(4, 128, &s) &&
         nf_cht_allocate(97, 8, &c) && nf_dchain_allocate(8, &alive);"""


def test_vector_return_is_a_write_only_when_the_cell_changes(tmp_path: Path) -> None:
    a = nf(tmp_path, """
  struct entry *e = nf_vector_borrow(v, 1);
  uint32_t n = e->count;
  e->count = n;                                   /* rewrites the same value */
  nf_vector_return(v, 1, e);
  e = nf_vector_borrow(v, 2);
  e->seen = e->seen + 1;
  nf_vector_return(v, 2, e);
  e = nf_vector_borrow(v, 3);
  if (e->count == 0) e->count = 0;                /* changes nothing on any path */
  nf_vector_return(v, 3, e);
  return 0;""", LIB, LIB_INIT)
    ops = [[(x.call, x.op.value, x.key_text) for x in p.accesses] for p in a.paths]
    for path_ops in ops:
        assert path_ops[:4] == [("nf_vector_borrow", "READ", "1"), ("nf_vector_return", "READ", "1"),
                                ("nf_vector_borrow", "READ", "2"), ("nf_vector_return", "WRITE", "2")]
        assert path_ops[5] == ("nf_vector_return", "READ", "3")
    assert a.paths[0].condition_text == "v.cell#5.count != 0"


def test_library_calls_results_and_operations(tmp_path: Path) -> None:
    a = nf(tmp_path, HEADERS + """
  int n = nf_expire_items(d, keys, m, now);
  nf_sketch_expire(s, now);
  uint32_t key = ip->src_addr;
  nf_sketch_touch(s, &key, now);
  if (nf_sketch_estimate(s, &key) > 10) return NF_DROP;
  int index;
  if (!nf_dchain_allocate_new_index(d, &index, now)) return NF_DROP;
  nf_dchain_rejuvenate_index(d, index, now);
  if (!nf_dchain_is_index_allocated(d, index)) return NF_DROP;
  nf_dchain_free_index(d, index);
  nf_map_erase(m, &key);
  int backend;
  if (!nf_cht_find_backend(c, nf_hash(&key, sizeof key), alive, &backend)) return NF_DROP;
  return backend == n ? 0 : 1;""", LIB, LIB_INIT)
    full = [p for p in a.paths if len(p.accesses) == 10]
    assert full
    calls = [(x.object, x.op.value, x.call, x.key_text, x.results, x.related) for x in full[0].accesses]
    assert calls == [
        ("d", "EXPIRE", "nf_expire_items", "", ("d.count#1",), ("keys", "m")),
        ("s", "EXPIRE", "nf_sketch_expire", "", (), ()),
        ("s", "WRITE", "nf_sketch_touch", "p.ipv4.src", (), ()),
        ("s", "READ", "nf_sketch_estimate", "p.ipv4.src", ("s.estimate#4",), ()),
        ("d", "CREATE", "nf_dchain_allocate_new_index", "", ("d.ok#5", "d.index#5"), ()),
        ("d", "UPDATE", "nf_dchain_rejuvenate_index", "d.index#5", ("d.ok#6",), ()),
        ("d", "VERIFY", "nf_dchain_is_index_allocated", "d.index#5", ("d.ok#7",), ()),
        ("d", "DESTROY", "nf_dchain_free_index", "d.index#5", ("d.ok#8",), ()),
        ("m", "WRITE", "nf_map_erase", "p.ipv4.src", (), ()),
        ("c", "READ", "nf_cht_find_backend", "nf_hash(p.ipv4.src) % 97", ("c.found#10", "c.backend#10"), ("alive",)),
    ]
    assert full[0].accesses[9].key.size() == 32
    assert "c.found#10" in full[0].condition_text and "d.ok#7" in full[0].condition_text


def test_nf_hash_is_fnv1a_when_concrete(tmp_path: Path) -> None:
    a = nf(tmp_path, '  uint8_t a = 0x61;\n  OUT(nf_hash(&a, 1)); OUT(nf_hash("foobar", 6));\n  return 0;',
           OUT, OUT_INIT)
    assert outs(a.paths[0]) == [0xE40C292C, 0xBF9CF968]  # FNV-1a 32 known answers ("a", "foobar")


def test_padding_in_a_key_struct_is_refused(tmp_path: Path) -> None:
    from explorer.errors import UnsupportedError
    with pytest.raises(UnsupportedError, match="padding byte"):
        nf(tmp_path, "  struct k { uint8_t a; uint32_t b; } key = {0};\n  nf_map_put(m, &key, 0);\n  return 0;",
           "struct nf_map *m;", "return nf_map_allocate(8, 4, &m);")


# ---- stashes ----------------------------------------------------------------------------------
def test_an_unsupported_path_is_a_record_in_the_errored_stash(tmp_path: Path) -> None:
    path = tmp_path / "half.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  if (device == 1) return mystery(device);\n  return 0;\n}\n")
    _, exploration = explore(parse_nf(path, {}))
    assert len(exploration.finished) == 1 and len(exploration.errored) == 1
    trace, error = exploration.errored[0]
    assert trace == (("b", True, True),)
    assert str(error) == f"{path}:4:27: call to unknown function mystery(); an NF may call only nf.h's " \
                         "functions, memcpy/memset/memcmp, __builtin_expect, __builtin_bswap16/32/64, " \
                         "__builtin_popcount(l/ll), __builtin_clz(l/ll), __builtin_ctz(l/ll), __builtin_constant_p " \
                         "and functions it defines"


def test_likely_unlikely_and_builtin_byte_swaps_read_as_gcc_computes_them(tmp_path: Path) -> None:
    """DPDK-style ``if (unlikely(ip == NULL))`` was 'call to unknown function __builtin_expect()'."""
    path = tmp_path / "hints.c"
    path.write_text('#include "nf.h"\n#define likely(x) __builtin_expect(!!(x), 1)\n'
                    "#define unlikely(x) __builtin_expect(!!(x), 0)\nbool nf_init(void) { return true; }\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n"
                    "  if (unlikely(ip == NULL)) return NF_DROP;\n"
                    "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n"
                    "  if (likely(l4 != NULL) && __builtin_bswap16(l4->dst_port) == 23) return NF_DROP;\n"
                    "  if (__builtin_bswap32(ip->dst_addr) == NF_IPV4(10, 0, 0, 1)) return NF_DROP;\n"
                    "  return !device;\n}\n")
    texts = {p.condition_text for p in analyze(path).paths if p.verdict.kind == "drop"}
    assert texts == {"!p.is_ipv4", "p.is_ipv4 && p.is_tcpudp && p.l4.dport == 23",
                     "p.is_ipv4 && !p.is_tcpudp && p.ipv4.dst == 10.0.0.1",
                     "p.is_ipv4 && p.is_tcpudp && p.l4.dport != 23 && p.ipv4.dst == 10.0.0.1"}


def test_builtin_popcounts_and_bswap64_read_as_gcc_computes_them(tmp_path: Path) -> None:
    """``__builtin_popcount``, ``__builtin_popcountll`` and ``__builtin_bswap64`` were 'call to unknown
    function'; the path condition now holds for the addresses where a gcc-built program says so."""
    import random
    import subprocess

    import numpy as np

    from explorer.symbex.evaluate import evaluate

    test = ("__builtin_popcount(src) + __builtin_popcountll(__builtin_bswap64(((uint64_t)src << 32) | dst) ^ 0xffu)"
            " + __builtin_popcountl((unsigned long)(dst & 0xf0f0u)) > 58")
    path = tmp_path / "bits.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  uint32_t src = ip->src_addr, dst = ip->dst_addr;\n"
                    f"  if ({test}) return NF_DROP;\n  return 1 - device;\n}}\n")
    (drop,) = [p for p in analyze(path).paths if p.verdict.kind == "drop" and p.condition_text != "!p.is_ipv4"]
    rng = random.Random(5)
    pairs = [(rng.getrandbits(32) | rng.choice([0, 0xffff0000]), rng.getrandbits(32) | rng.choice([0, 0xffffff]))
             for _ in range(200)]
    program = tmp_path / "bits_gcc.c"
    program.write_text("#include <stdio.h>\n#include <stdint.h>\nint main(void) {\n  uint32_t src, dst;\n"
                       f"  while (scanf(\"%u %u\", &src, &dst) == 2) printf(\"%d\\n\", {test});\n  return 0;\n}}\n")
    subprocess.run(["gcc", "-O2", "-w", "-o", str(tmp_path / "bits_gcc"), str(program)], check=True)
    printed = subprocess.run([str(tmp_path / "bits_gcc")], input="".join(f"{a} {b}\n" for a, b in pairs),
                             check=True, capture_output=True, text=True).stdout.split()
    wire = lambda values: np.array(values, dtype=np.uint32).byteswap().astype(np.uint64)  # noqa: E731
    ipv4 = {"p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x45, "p.ipv4.frag_off": 0, "p.len": 64, "p.device": 0}
    env = {"p.ipv4.src": wire([a for a, _ in pairs]), "p.ipv4.dst": wire([b for _, b in pairs]),
           **{name: np.full(len(pairs), value, dtype=np.uint64) for name, value in ipv4.items()}}
    held = evaluate(drop.condition, env).tolist()
    assert held == [p == "1" for p in printed] and 0 < sum(held) < len(pairs)


def test_symbol_names_of_many_terms_are_the_union_of_each_terms_symbols():
    """The one-walk C-API version (``fields_read``'s) against the per-term one, on every term of
    every sample NF's paths: conditions, keys, written values and device terms."""
    from explorer.symbex.bitvec import symbol_names, symbols_of
    for nf in ("fw", "nat", "lb", "psd", "bridge"):
        analysis = analyze(NFS.parent.parent / "sample_nfs" / f"{nf}.c")
        terms = [t for p in analysis.paths for t in [p.condition, p.verdict.device_term]
                 + [a.key for a in p.accesses] + [w.value for w in p.writes] if t is not None]
        assert symbol_names(terms) == set().union(*(symbols_of(t) for t in terms))
        assert symbol_names(terms[:1]) == symbols_of(terms[0])
    assert symbol_names([]) == set() and symbol_names([z3.BitVecVal(3, 8)]) == set()


def test_key_bytes_never_set_are_refused_with_their_fields(tmp_path: Path) -> None:
    """A key C leaves partly indeterminate (an explicit pad never written, a field set on one branch
    only) was analysed as if those bytes were 0, while the built NF hashed the stack. Set on every
    path (a memset, an initializer, every field), it is accepted."""
    import re

    from explorer.errors import UnsupportedError
    key = "struct k { uint8_t proto; uint8_t pad[3]; uint32_t src; };"
    get = "  int v;\n  return nf_map_get(m, &key, &v) ? 1 : 0;"
    decl, init = "struct nf_map *m;", "return nf_map_allocate(sizeof(struct k), 16, &m);"
    cases = {
        "  struct k key;\n  key.proto = ip->protocol;\n  key.src = ip->src_addr;\n":
            "bytes 1..3 (pad) of the key (struct k) are never set on this path",
        "  struct k key;\n  memset(&key, 0, 4);\n  if (ip->ttl > 64) key.src = ip->src_addr;\n":
            "bytes 4..7 (src) of the key (struct k) are never set on this path",
    }
    for body, error in cases.items():
        with pytest.raises(UnsupportedError, match=re.escape(error)):
            nf(tmp_path, HEADERS + body + get, key + "\n" + decl, init)
    for body in ("  struct k key;\n  memset(&key, 0, sizeof key);\n  key.src = ip->src_addr;\n",
                 "  struct k key = {ip->protocol, {0}, ip->src_addr};\n",
                 "  struct k key;\n  key.proto = 6;\n  key.pad[0] = key.pad[1] = key.pad[2] = 0;\n  key.src = 1;\n"):
        assert nf(tmp_path, HEADERS + body + get, key + "\n" + decl, init).paths


def test_a_cell_of_a_few_kib_is_analysed_and_larger_entries_are_refused(tmp_path: Path) -> None:
    """Z3's Python API turns bit-vector values into decimal strings, which Python refuses past 4,300
    digits by default: a 2,400-byte cell (5,780 digits) failed with a ValueError traceback when a
    path's value of the whole cell was asked for. Entries past the analysis's bound (16 KiB) are
    refused with the call's location."""
    from explorer.errors import UnsupportedError

    cell = "struct big { uint32_t words[%d]; };\nstruct nf_vector *v;\n"
    body = """struct big *b = nf_vector_borrow(v, 0);
  uint32_t sum;
  if (device == 0) {
    sum = b->words[0] + b->words[599 - (len & 3)];
  } else {
    b->words[0] += 1;
    sum = b->words[0];
  }
  nf_vector_return(v, 0, b);
  return sum % 2 == 0 ? 1 - device : NF_DROP;"""
    init = "return nf_vector_allocate(sizeof(struct big), 1, &v);"
    analysis = nf(tmp_path, body, cell % 600, init)
    assert {o.name: o.size for o in analysis.objects} == {"v": 2400} and len(analysis.paths) >= 2
    with pytest.raises(UnsupportedError, match=r"t\.c:\d+:\d+: nf_vector_allocate\(\) with entries of 16,388 bytes: "
                                               r"nfx analyses entries \(keys, cells\) of at most 16,384 bytes"):
        nf(tmp_path, body, cell % 4097, init)


def test_operator_predicates_answer_as_z3s_own():
    """bitvec's is_and / is_or / ... (asked through Z3's C API, memoized per object) answer as z3.py's
    predicates of the same names, for applications, numerals, quantifiers, variables and non-terms."""
    from explorer.symbex import bitvec

    x, y = z3.BitVecs("x y", 8)
    a, b = z3.Bools("a b")
    terms = [z3.And(a, b), z3.Or(a, b), z3.Not(a), z3.BoolVal(True), z3.BoolVal(False), x == y, x + y,
             z3.BitVecVal(3, 8), a, z3.ForAll([x], x == x), z3.Var(0, z3.BitVecSort(8)), 3, True, None]
    predicates = ("is_and", "is_or", "is_not", "is_true", "is_false", "is_eq")
    table = {name: [getattr(bitvec, name)(t) for t in terms] for name in predicates}
    assert table == {name: [getattr(z3, name)(t) for t in terms] for name in predicates}
    assert sum(map(sum, table.values())) == 6  # each predicate holds of its own term, and only it
    assert bitvec.op_kind(x + y) == z3.Z3_OP_BADD and bitvec.op_kind(3) is None


def test_device_statements_asked_once_per_decision(monkeypatch):
    """Whether a decision states the path's device is asked once per analysis, not once per path
    that shares the decision (16 rules' decisions shared by 39 paths asked it 582 times)."""
    from collections import Counter

    from explorer.symbex import bitvec, call_paths

    asked: Counter = Counter()
    walk = call_paths._states_device

    def counting(cond, *args):
        asked[bitvec.ast_id(cond)] += 1
        return walk(cond, *args)

    monkeypatch.setattr(call_paths, "_states_device", counting)
    analysis = analyze(Path(__file__).parent / "nfs" / "acl_count.c")
    assert len(analysis.paths) > 30 and asked
    assert sum(asked.values()) < 2 * len(asked)  # a subterm two decisions share may be walked twice
