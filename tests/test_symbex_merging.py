"""Statement merging: paths through a statement that end in the same state become one path.

The merged analysis must describe exactly the same behaviour as the unmerged one: for any input
(packet fields and library results) exactly one merged path holds when an unmerged path holds, and
both make the same state calls (keys evaluated), write the same fields and give the same verdict.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import z3

from explorer import ir
from explorer.errors import NfxError
from explorer.symbex import analyze, merging, statements
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.evaluate import compile_term

NFS = Path(__file__).resolve().parent / "nfs"
SAMPLES = 6000


def _unmerged(path: Path, monkeypatch: pytest.MonkeyPatch) -> ir.Analysis:
    with monkeypatch.context() as m:
        m.setattr(merging, "ENABLED", False)
        return analyze(path)


def _models(analyses: list[ir.Analysis]) -> list[dict[str, int]]:
    """A satisfying assignment of every path's condition (Z3's model), so that every path gets inputs."""
    out = []
    for a in analyses:
        for p in a.paths:
            solver = z3.Solver()
            solver.add(p.condition)
            assert solver.check() == z3.sat
            model = solver.model()
            out.append({d.name(): model[d].as_long() for d in model.decls() if z3.is_bv_value(model[d])})
    return out


def _environment(analyses: list[ir.Analysis], rng: random.Random) -> dict[str, np.ndarray]:
    """Values for every symbol: each path's Z3 model, then random values drawn mostly from values the
    NFs test (rule prefixes, port bounds, 0/1 library results)."""
    names: set[str] = set()
    for a in analyses:
        for p in a.paths:
            names |= symbols_of(p.condition)
            for access in p.accesses:
                if access.key is not None:
                    names |= symbols_of(access.key)
    prefixes = [0x0A000000, 0x0A000100, 0x0A000200, 0x0A010000, 0x0A020000, 0xC0A80000, 0xCB007100, 0xC6336400,
                0xC0000200, 0x64400000, 0x08080808]
    choices = {
        "p.ipv4.src": lambda: rng.choice(prefixes) | rng.choice([0, 1, 0x37, 0x1234]),
        "p.l4.dport": lambda: rng.choice([0, 22, 23, 24, 52, 53, 79, 80, 443, 1023, 1024, 5000, 5999, 65535,
                                          rng.randrange(65536)]),
        "p.ipv4.proto": lambda: rng.choice([6, 17, 1]),
        "p.ether.type": lambda: rng.choice([0x0800, 0x0800, 0x0800, 0x86DD]),
        "p.ipv4.version_ihl": lambda: rng.choice([0x45, 0x45, 0x46, 0x35]),
        "p.ipv4.frag_off": lambda: rng.choice([0, 0, 0, 0x2000]),
        "p.ipv4.ttl": lambda: rng.choice([0, 1, 64]),
        "p.len": lambda: rng.choice([20, 60, 200]),
        "p.device": lambda: rng.choice([0, 1]),
    }
    models = _models(analyses)
    env: dict[str, np.ndarray] = {}
    for name in sorted(names):
        if name in choices:
            draw = choices[name]
        elif name.rsplit("#", 1)[0].endswith((".found", ".ok")):
            draw = lambda: rng.choice([0, 1])  # noqa: E731
        elif name.rsplit("#", 1)[0].endswith((".value", ".index", ".count")):
            draw = lambda: rng.choice([0, 1, 2])  # noqa: E731
        else:
            draw = lambda: rng.getrandbits(32)  # noqa: E731
        values = [m.get(name, 0) for m in models] + [draw() for _ in range(SAMPLES - len(models))]
        env[name] = np.array(values, dtype=object)
    return env


def _holding(a: ir.Analysis, env: dict[str, np.ndarray]) -> np.ndarray:
    """Per sample, the index of the path whose condition holds (-1: none); asserts at most one does."""
    which = np.full(SAMPLES, -1)
    for p in a.paths:
        holds = np.asarray(compile_term(p.condition)(env), dtype=bool) & np.ones(SAMPLES, dtype=bool)
        assert not (holds & (which >= 0)).any(), f"{a.nf}: two paths hold for one input"
        which[holds] = p.index
    return which


def _behaviour(p: ir.CallPath, env: dict[str, np.ndarray], i: int) -> tuple:
    one = {name: values[i:i + 1] for name, values in env.items()}
    calls = tuple((x.object, x.op.value, x.call, None if x.key is None else int(compile_term(x.key)(one)[0]))
                  for x in p.accesses)
    writes = tuple((w.field, None if w.value is None else int(compile_term(w.value)(one)[0])) for w in p.writes)
    return calls, writes, str(p.verdict)


@pytest.mark.parametrize("nf", ["acl_fw", "acl_count", "acl_long"])
def test_merged_paths_describe_the_same_behaviour(nf: str, monkeypatch: pytest.MonkeyPatch) -> None:
    merged, plain = analyze(NFS / f"{nf}.c"), _unmerged(NFS / f"{nf}.c", monkeypatch)
    env = _environment([merged, plain], random.Random(f"merge-{nf}"))
    which_merged, which_plain = _holding(merged, env), _holding(plain, env)
    assert ((which_merged >= 0) == (which_plain >= 0)).all()
    covered = set(which_merged[which_merged >= 0].tolist())
    assert covered == {p.index for p in merged.paths}, "some merged path got no input"
    for i in np.flatnonzero(which_merged >= 0)[:1500]:
        assert _behaviour(merged.paths[which_merged[i]], env, i) == _behaviour(plain.paths[which_plain[i]], env, i)


def test_an_acl_loop_merges_the_ways_a_rule_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    merged, plain = analyze(NFS / "acl_fw.c"), _unmerged(NFS / "acl_fw.c", monkeypatch)
    # the loop's ways out end in two states, allowed or denied, whatever rule decided: its breaks at
    # different rules leave different counters i, but i has ended with the loop (it kept 23 paths)
    assert (len(merged.paths), len(plain.paths)) == (8, 89)
    # the LAN path that no deny rule decides and that creates a flow: the denied ways negated,
    # factored so that each rule's test shows at most twice (matched or not) instead of once per
    # later rule
    last = [p for p in merged.paths if p.devices == (0,) and p.verdict.device == 1][-2]
    text = last.condition_text
    assert text.startswith("p.is_ipv4 && p.is_tcpudp && p.device == 0 && !((p.ipv4.src & 0xffffff00 == 10.0.0.0 && ")
    # rule 1 (deny 10.0.0.0/24) matched or not; rules 2 and 3 (allow 10.0.0.0/16) and 4 (allow
    # 10.0.1.0/24) only as not matched, on the way to a later deny
    assert text.count("== 10.0.0.0") == 4 and text.count("== 10.0.1.0") == 1
    assert [x.call for x in last.accesses] == ["nf_expire_items", "nf_map_get", "nf_dchain_allocate_new_index",
                                              "nf_map_put", "nf_vector_borrow", "nf_vector_return"]


def test_a_rule_loop_replays_from_the_iteration_a_path_was_queued_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """A path queued at rule k starts at rule k's iteration (``loop_heads``): a 64-rule ACL ran its
    first rule test 610 times when every queued path replayed the rules before."""
    runs = []
    original = statements.Statements.visit_If

    def counted(self: statements.Statements, node: Any) -> None:
        runs.append(node.coord.line)
        return original(self, node)

    monkeypatch.setattr(statements.Statements, "visit_If", counted)
    analysis = analyze(NFS / "acl_long.c")
    source = (NFS / "acl_long.c").read_text().splitlines()
    first_test = next(n for n, line in enumerate(source, 1) if "RULES[i].mask) != RULES[i].prefix" in line)
    rule_tests = [line for line in runs if line == first_test]
    assert rule_tests, "the rule loop's first test never ran"
    assert len(analysis.paths) == 8
    assert len(rule_tests) <= 2 * 64, f"the first rule test ran {len(rule_tests)} times for 64 rules"


def test_paths_without_merges_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parent.parent
    for nf in ("fw", "psd"):
        merged = analyze(root / "sample_nfs" / f"{nf}.c")
        plain = _unmerged(root / "sample_nfs" / f"{nf}.c", monkeypatch)
        assert merged.to_dict() == plain.to_dict()


def test_returns_that_differ_only_in_ended_locals_merge_with_their_labels() -> None:
    """lb's WAN side drops a frame that is not TCP/UDP and one not sent to the VIP at two returns of
    one helper, whose locals (the header pointers) differ but have ended: one path, whose text keeps
    the header accessors' labels."""
    root = Path(__file__).resolve().parent.parent
    texts = [p.condition_text for p in analyze(root / "sample_nfs" / "lb.c").paths]
    assert "p.device != 0 && p.is_ipv4 && (!p.is_tcpudp || (p.is_tcpudp && p.ipv4.dst != 203.0.113.1))" in texts
    assert len(texts) == 13


def test_a_pointer_to_a_local_of_an_ended_block_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dangling.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  int *out;\n  {\n    int port = 1;\n    out = &port;\n  }\n  return *out;\n}\n")
    with pytest.raises(NfxError) as error:
        analyze(path)
    assert "no longer exists" in str(error.value)
    assert error.value.location is not None and error.value.location.line == 9


def test_a_branch_whose_sides_end_alike_is_one_path(tmp_path: Path) -> None:
    path = tmp_path / "same.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  int out = 1;\n  if (len > 100) { out = 0; } else if (len < 60) { out = 0; }\n"
                    "  if (out == 0) return NF_DROP;\n  return 0;\n}\n")
    a = analyze(path)
    # the two ways to set out = 0 merge; their condition is written as the complement of the other
    # group's, the shorter form (the groups partition the inputs)
    assert [(p.condition_text, str(p.verdict)) for p in a.paths] == [
        ("p.len <= 100 && p.len >= 60", "forward to 0"),
        ("!(p.len <= 100 && p.len >= 60)", "drop"),
    ]


def test_ways_that_all_end_alike_add_no_condition() -> None:
    """syn_window.c: a switch whose UDP case falls through to the default read
    "p.ipv4.proto != 17 || p.ipv4.proto == 17" on its paths, and a SYN test that cannot hold on
    device 0 read "(!p.is_tcp || p.is_tcp)": a statement whose every way ends alike adds no
    condition, and ways that are a decision and its opposite read as nothing."""
    analysis = analyze(NFS / "syn_window.c")
    texts = [p.condition_text for p in analysis.paths]
    assert "p.is_ipv4 && p.ipv4.proto != 6 && p.device == 0" in texts
    assert "p.is_ipv4 && p.ipv4.proto == 6 && p.device == 0" in texts
    assert not any("17" in text for text in texts), texts


def test_a_statement_whose_ways_all_end_alike_adds_nothing_to_the_path(tmp_path: Path) -> None:
    """Three cases that all break: the one merged group holds wherever the switch starts, so the
    path's condition (the term the solver and the simulator read) does not mention the protocol."""
    path = tmp_path / "cases.c"
    path.write_text('#include "nf.h"\nbool nf_init(void) { return true; }\n'
                    "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {\n"
                    "  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);\n  if (ip == NULL) return NF_DROP;\n"
                    "  switch (ip->protocol) {\n  case NF_IP_PROTO_UDP:\n  case NF_IP_PROTO_TCP:\n"
                    "  default:\n    break;\n  }\n  return 1;\n}\n")
    a = analyze(path)
    assert [p.condition_text for p in a.paths] == ["!p.is_ipv4", "p.is_ipv4"]
    assert not any("p.ipv4.proto" in symbols_of(p.condition) for p in a.paths)
