"""Constant tables read at a symbolic index (``CLASS[ip->tos]``): one value over runs of equal
entries, not a fork per index (the analysis refused any index that may take more than 16 values),
and every later stage (solve, the witnesses, generate, check) takes the NF as it is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.errors import UnsupportedError
from explorer.symbex import analyze
from explorer.symbex.evaluate import evaluate
from explorer.traffic.pcap import write_trace
from explorer.verify.witnesses import find_witnesses

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"


IPV4 = {"p.ether.type": 0x0800, "p.ipv4.version_ihl": 0x45, "p.ipv4.frag_off": 0, "p.len": 64}


def _table(nf: Path, name: str) -> list[int]:
    """The numbers of the brace initializer of ``name`` in the NF's source."""
    text = nf.read_text()
    body = text[text.index("{", text.index(f" {name}[")) + 1:]
    return [int(n) for n in body[:body.index("}")].replace("\n", " ").split(",") if n.strip()]


def test_a_256_entry_table_indexed_by_the_tos_is_one_value_per_tos() -> None:
    nf = NFS / "tos_lut.c"
    table = _table(nf, "CLASS")
    assert len(table) == 256
    analysis = analyze(nf)
    assert len(analysis.paths) == 4  # not IPv4, class 3 dropped, counted on either device
    keys = {a.key.sexpr(): a.key for p in analysis.paths for a in p.accesses if a.object == "counts"}
    tos = np.arange(256, dtype=np.uint64)
    for key in keys.values():
        assert evaluate(key, {"p.ipv4.tos": tos}).tolist() == table
    # printed as the table read the NF wrote, not as its runs of TOS values
    assert {a.key_text for p in analysis.paths for a in p.accesses} == {"CLASS[p.ipv4.tos]"}
    (drop,) = [p for p in analysis.paths if p.verdict.kind == "drop" and "p.ipv4.tos" in p.condition_text]
    env = {"p.ipv4.tos": tos, "p.device": np.zeros(256, dtype=np.uint64),
           **{name: np.full(256, value, dtype=np.uint64) for name, value in IPV4.items()}}
    assert evaluate(drop.condition, env).tolist() == [c == 3 for c in table]


def test_a_table_of_structs_reads_each_member_per_protocol() -> None:
    """POLICY[ip->protocol].allow: the path that drops a protocol nobody listed, before any state."""
    solution = pipeline.solve(pipeline.analyze(NFS / "proto_policy.c"), quality=False)
    stateless = [p for p in solution.analysis.paths if not p.accesses and "p.ipv4.proto" in p.condition_text]
    (refused,) = stateless
    proto = np.arange(256, dtype=np.uint64)
    env = {"p.ipv4.proto": proto, "p.device": np.zeros(256, dtype=np.uint64),
           **{name: np.full(256, value, dtype=np.uint64) for name, value in IPV4.items()}}
    assert np.flatnonzero(~evaluate(refused.condition, env)).tolist() == [1, 6, 17, 47, 50]
    texts = " ".join(p.condition_text for p in solution.analysis.paths)
    assert "used.cell#2 + POLICY[p.ipv4.proto].weight > POLICY[p.ipv4.proto].budget" in texts
    assert solution.strategy == "shared-nothing"
    assert dict(solution.sharding.decision("hosts").fields) == {0: ("src_ip",), 1: ("dst_ip",)}


def _write(tmp_path: Path, body: str, globals_: str = "") -> Path:
    path = tmp_path / "t.c"
    path.write_text('#include "nf.h"\n' + globals_ + "\nbool nf_init(void) { return true; }\n"
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    + body + "\n}\n")
    return path


TABLE = "static const uint8_t T[256] = {[7] = 1, [8] = 1, [200] = 1};"


def test_a_symbolic_read_branches_on_ranges_not_indices(tmp_path: Path) -> None:
    analysis = analyze(_write(tmp_path, "  return T[ip->ttl] ? 1 - device : NF_DROP;", TABLE))
    texts = sorted(p.condition_text for p in analysis.paths)
    assert len(analysis.paths) == 4, texts
    assert all("T[p.ipv4.ttl] != 0" in t for t in texts if "p.is_ipv4 &&" in t), texts  # as the NF reads it
    (drop,) = [p for p in analysis.paths if p.verdict.kind == "drop" and "p.ipv4.ttl" in p.condition_text]
    ttl = np.arange(256, dtype=np.uint64)
    env = {"p.ipv4.ttl": ttl, "p.device": np.zeros(256, dtype=np.uint64),
           **{name: np.full(256, value, dtype=np.uint64) for name, value in IPV4.items()}}
    assert np.flatnonzero(~evaluate(drop.condition, env)).tolist() == [7, 8, 200]  # the ranges of T's ones


def test_a_table_entry_compared_with_a_value_reads_as_the_nf_wrote_it() -> None:
    """``c == 3`` with ``c = CLASS[ip->tos]`` printed as the runs of TOS values that do not hold
    classes 1 and 2 and do hold 3, nested: ``!((tos >= 40 && tos <= 43) || ...) && !(...) && tos >= 224``."""
    texts = {p.condition_text for p in analyze(NFS / "tos_lut.c").paths}
    assert texts == {"!p.is_ipv4", "p.is_ipv4 && CLASS[p.ipv4.tos] == 3",
                     "p.is_ipv4 && CLASS[p.ipv4.tos] != 3 && p.device == 0",
                     "p.is_ipv4 && CLASS[p.ipv4.tos] != 3 && p.device == 1"}


def test_a_row_of_a_2d_table_and_a_byte_of_a_member_are_named_by_their_path(tmp_path: Path) -> None:
    """ACTION[class][device] with the class known would read as ACTION[p.device] (the row left out),
    and a byte of an array member as the ranges of a ladder."""
    texts = " ".join(p.condition_text for p in analyze(NFS / "dscp_remark.c").paths)
    assert "ACTION[1][p.device] != 255" in texts and "ACTION[p.device]" not in texts
    nf = _write(tmp_path, "  if (MARKS[ip->tos & 7].mark[1] == 5) return NF_DROP;\n  return 1 - device;",
                "struct entry { uint16_t id; uint8_t mark[2]; };\n"
                "static const struct entry MARKS[8] = {{1, {0, 5}}, {2, {0, 5}}, {3, {1, 0}}, {4, {1, 0}}};")
    texts = " ".join(p.condition_text for p in analyze(nf).paths)
    assert "MARKS[p.ipv4.tos & 7].mark[1] == 5" in texts and "MARKS[p.ipv4.tos & 7].mark[1] != 5" in texts


def test_an_unnamed_table_compared_with_a_value_reads_as_the_fewest_ranges(tmp_path: Path) -> None:
    """A string literal read at a symbolic index has no name: its test is the index ranges that hold
    (or the negated ones that fail, when fewer), not the ladder of the other values' ranges."""
    table = '"\\0\\0\\0\\0\\1\\1\\0\\0\\2\\2\\3\\3"[ip->tos % 12]'
    nf = _write(tmp_path, f"  if ({table} == 3) return NF_DROP;\n  if ({table} == 0) return 1;\n  return 0;")
    texts = {p.condition_text for p in analyze(nf).paths}
    three = "(p.ipv4.tos % 12 >= 10 && p.ipv4.tos % 12 <= 11)"
    # 0 is at 0-3, 6-7 and the terminating NUL (12): the two runs of other values are fewer
    others = "((p.ipv4.tos % 12 >= 4 && p.ipv4.tos % 12 <= 5) || (p.ipv4.tos % 12 >= 8 && p.ipv4.tos % 12 <= 11))"
    assert texts == {"!p.is_ipv4", f"p.is_ipv4 && {three}", f"p.is_ipv4 && !{three} && {others}",
                     f"p.is_ipv4 && !{three} && !{others}"}


@pytest.mark.parametrize("body, words", [
    # a local array may change later: its symbolic index still forks (and is refused past 16 values)
    ("  uint8_t local[256] = {0};\n  return local[ip->ttl];", "may take more than 16 values"),
    # the element's address escapes the read: still one pointer per index
    ("  const uint8_t *e = &T[ip->ttl];\n  return *e;", "may take more than 16 values"),
    ("  return T[ip->ttl + 1];", "index may be outside global variable T (256 elements)"),
])
def test_what_stays_refused(tmp_path: Path, body: str, words: str) -> None:
    with pytest.raises(UnsupportedError, match=words.replace("(", r"\(").replace(")", r"\)")):
        analyze(_write(tmp_path, body, TABLE))


@pytest.mark.parametrize("table, read", [("uint8_t", "*(T + ip->ttl)"), ("uint32_t", "*(T + ip->ttl)"),
                                         ("uint16_t", "T[ip->ttl]"), ("uint8_t", "*(&T[0] + ip->ttl)")])
def test_a_table_read_through_a_pointer_is_the_same_value(tmp_path: Path, table: str, read: str) -> None:
    """``*(T + i)`` was followed per index (refused past 16 values: "a pointer offset")."""
    values = [(k * 7) % 5 for k in range(256)]
    nf = _write(tmp_path, f"  int index;\n  uint32_t key = {read};\n  return nf_map_get(m, &key, &index);",
                f"static struct nf_map *m;\nstatic const {table} T[256] = {{{', '.join(map(str, values))}}};")
    nf.write_text(nf.read_text().replace("return true;", "return nf_map_allocate(4, 16, &m);"))
    (key,) = {a.key.sexpr(): a.key for p in analyze(nf).paths for a in p.accesses}.values()
    stored = evaluate(key, {"p.ipv4.ttl": np.arange(256, dtype=np.uint64)}).tolist()
    assert [int.from_bytes(int(k).to_bytes(4, "big"), "little") for k in stored] == values


def test_a_const_local_table_is_a_table_too(tmp_path: Path) -> None:
    """``static const`` inside nf_process (it was followed per index, refused past 16 values), and a
    const local indexed by its read."""
    values = ", ".join(str((t >> 5) & 3) for t in range(256))
    nf = _write(tmp_path, f"  static const uint8_t PREC[256] = {{{values}}};\n  const uint8_t pass[4] = {{0, 1, 1, 0}};\n"
                "  return pass[PREC[ip->tos]] ? 1 - device : NF_DROP;")
    texts = [p.condition_text for p in analyze(nf).paths]
    assert len(texts) == 4 and any("pass[PREC[p.ipv4.tos]] != 0" in t for t in texts), texts


def test_a_table_too_varied_for_one_value_says_so(tmp_path: Path) -> None:
    """Entries that change value at every index: past 512 runs the read forks per index, and past
    16 values the refusal says why the table was not read as one value."""
    values = ", ".join(str(k % 3) for k in range(65536))
    nf = _write(tmp_path, "  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);\n  if (l4 == NULL) return 0;\n"
                "  return R[nf_ntohs(l4->dst_port)] ? 1 : 0;", f"static const uint8_t R[65536] = {{{values}}};")
    with pytest.raises(UnsupportedError, match=r"the index into global variable R may take more than 16 values "
                                               r"here, and the entries it reaches change value 65,536 times"):
        analyze(nf)


@pytest.mark.dpdk
@pytest.mark.slow
def test_proto_policy_is_equivalent_on_traffic_that_runs_its_paths(tmp_path: Path, capsys) -> None:
    defines = {"PP_UNIT": "1", "PP_CAPACITY": "64"}
    analysis = pipeline.analyze(NFS / "proto_policy.c", defines)
    witnesses = find_witnesses(analysis, defines, seed=3)
    assert witnesses.coverage.covered >= 20
    paths = write_trace(witnesses.combined(kinds=("main", "sweep", "pump", "jump")), tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    args = [a for name, value in sorted(defines.items()) for a in ("-D", f"{name}={value}")]
    status = main(["check", str(NFS / "proto_policy.c"), *args, *inputs, "--cores", "2", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["equivalent"] is True and report["strategy"] == "sn", report
