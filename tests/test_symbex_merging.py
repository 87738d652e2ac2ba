"""Statement merging: paths through a statement that end in the same state become one path.

The merged analysis must describe exactly the same behaviour as the unmerged one: for any input
(packet fields and library results) exactly one merged path holds when an unmerged path holds, and
both make the same state calls (keys evaluated), write the same fields and give the same verdict.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import z3

from explorer import ir
from explorer.symbex import analyze, merging
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


@pytest.mark.parametrize("nf", ["acl_fw", "acl_count"])
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
    assert (len(merged.paths), len(plain.paths)) == (23, 89)
    # the LAN path that no rule matches and that creates a flow: one negated rule per iteration (the
    # rule for any protocol and port is a prefix test alone)
    last = [p for p in merged.paths if p.devices == (0,) and p.verdict.device == 1][-2]
    assert last.condition_text.count("!(p.ipv4.src & ") == 7
    assert "p.ipv4.src & 0xffff0000 != 10.2.0.0 &&" in last.condition_text
    assert [x.call for x in last.accesses] == ["nf_expire_items", "nf_map_get", "nf_dchain_allocate_new_index",
                                              "nf_map_put", "nf_vector_borrow", "nf_vector_return"]


def test_paths_without_merges_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parent.parent
    for nf in ("fw", "lb", "psd"):
        merged = analyze(root / "sample_nfs" / f"{nf}.c")
        plain = _unmerged(root / "sample_nfs" / f"{nf}.c", monkeypatch)
        assert merged.to_dict() == plain.to_dict()


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
