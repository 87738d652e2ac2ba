"""A long else-if chain of match rules is analysed in time about linear in its rules: each
``else if`` merges its own paths, as ``else { if ... }`` did, instead of every rule's path merging
at the chain's first ``if`` and replaying the tests of all the rules above it (100 rules took
2.6-3.7 s of CPU, 300 rules 19 s)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import z3

from explorer.symbex import analyze, merging
from explorer.symbex.state import PathState


def rule_chain(folder: Path, rules: int) -> Path:
    """An NF that forwards a frame by the first of ``rules`` (destination address, port) rules it
    matches, written as one if / else-if chain, and drops the others."""
    arms = "\n".join(f"  {'if' if i == 0 else 'else if'} (ip->dst_addr == {0x0A000001 + i}u && "
                     f"nf_ntohs(l4->dst_port) == {1000 + i}) {{\n    return {i % 2};\n  }}" for i in range(rules))
    path = folder / f"rule_chain_{rules}.c"
    path.write_text(f"""#include "nf.h"
bool nf_init(void) {{
  return true;
}}
int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now) {{
  (void)now;
  (void)device;
  struct nf_ipv4_hdr *ip = nf_ipv4_header(packet, len);
  if (ip == NULL) {{
    return NF_DROP;
  }}
  struct nf_tcpudp_hdr *l4 = nf_tcpudp_header(packet, len);
  if (l4 == NULL) {{
    return NF_DROP;
  }}
{arms}
  return NF_DROP;
}}
""")
    return path


def _tests_run(nf: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many times the analysis decides a condition (every replay of a path decides its own again)."""
    calls = [0]
    branch = PathState.branch

    def counted(self: PathState, *args: object, **kwargs: object) -> bool:
        calls[0] += 1
        return branch(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(PathState, "branch", counted)
        analyze(nf)
    return calls[0]


def test_each_rule_is_tested_a_bounded_number_of_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = 80
    decided = _tests_run(rule_chain(tmp_path, rules), monkeypatch)
    # merged at the first if, rule i's path replayed the i tests above it: about rules ** 2 / 2 (3,300)
    assert decided <= 6 * rules, decided


def test_the_merged_chain_means_what_each_rule_path_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nf = rule_chain(tmp_path, 9)
    merged = analyze(nf)
    with monkeypatch.context() as m:
        m.setattr(merging, "ENABLED", False)
        alone = analyze(nf)
    assert len(alone.paths) == 9 + 3
    for verdict in {p.verdict for p in alone.paths}:
        ours = [p.condition for p in merged.paths if p.verdict == verdict]
        theirs = [p.condition for p in alone.paths if p.verdict == verdict]
        solver = z3.Solver()
        solver.add(z3.Or(*ours) != z3.Or(*theirs))
        assert solver.check() == z3.unsat, verdict
    texts = [p.condition_text for p in merged.paths if p.verdict.kind == "forward" and p.verdict.device == 0]
    assert len(texts) == 1 and "p.l4.dport == 1000" in texts[0], texts


def test_a_hundred_rules_take_about_a_second(tmp_path: Path) -> None:
    nf = rule_chain(tmp_path, 100)
    start = time.process_time()
    analysis = analyze(nf)
    seconds = time.process_time() - start
    assert seconds < 2, f"{seconds:.1f} s of CPU"  # about 1.4 s on the 2-core development machine
    assert sorted(str(p.verdict) for p in analysis.paths) == ["drop", "drop", "drop", "forward to 0", "forward to 1"]


def test_a_chain_nested_deeper_than_pythons_default_limit_is_analysed(tmp_path: Path) -> None:
    # each else-if merges one level deeper: 220 of them pass Python's default 1,000 frames
    analysis = analyze(rule_chain(tmp_path, 220))
    assert len(analysis.paths) == 5
