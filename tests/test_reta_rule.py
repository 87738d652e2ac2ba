"""A dealt RETA reads as its rule in a plan's text (``explorer/rss/reta_rule.py``), not as 512 numbers.

``plan.txt`` (and ``nfx generate``'s output, and the explorer's project view, which shows the file)
printed a table with no short period in full: every dealt table (tests/nfs/port_blocks.c on any
number of cores) and every round robin over a number of cores that does not divide the table (3
cores on 512 entries). The text must stay exact: each form is read back here into a table.
"""
from __future__ import annotations

import functools
import random
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, render
from explorer.codegen.planning import plan_from_dict
from explorer.rss.nic import nic_profile
from explorer.rss.reta import deal, dealing
from explorer.rss.reta_rule import SHOWN, reta_text, rule_of
from explorer.wire import RSS_NAMES

NFS = Path(__file__).resolve().parent / "nfs"
E810 = nic_profile("e810")


def _parity(entry: int, mask: int) -> int:
    return (entry & mask).bit_count() & 1


def read_back(text: str, entries: int) -> tuple[int, ...]:
    """The table a rule's words describe (the test's own reading of them)."""
    assert text.startswith("entry e -> core "), text
    rule = text[len("entry e -> core "):]
    if rule.startswith("parity("):  # core = parity(e & m0) + 2*parity(e & m1) + ...
        masks = [int(term.split("*")[-1][len("parity(e & "):-1], 16) for term in rule.split(" + ")]
        assert rule == " + ".join((f"{1 << i}*" if i else "") + f"parity(e & 0x{m:03x})" for i, m in enumerate(masks))
        return tuple(sum(_parity(e, m) << i for i, m in enumerate(masks)) for e in range(entries))
    if rule.startswith("x mod "):
        cores = int(rule[len("x mod "):].split(",")[0])
        masks = [int(m, 16) for m in rule.split(" m = ")[1].split()]
        return tuple(sum(_parity(e, m) << i for i, m in enumerate(masks)) % cores for e in range(entries))
    value, cores = rule.split(" mod ")
    shift = 0 if value == "e" else int(value[len("(e >> "):-1])
    return tuple((e >> shift) % int(cores) for e in range(entries))


def _top_byte_planes(cores: int) -> list[tuple[bytes, tuple[str, ...]]]:
    from explorer.rss.key_solver import solve_keys
    from explorer.rss.problem import KeyProblem, PairConstraint

    equal = tuple((("dst_port", i), ("src_port", i)) for i in range(8))
    problem = KeyProblem(devices=(0, 1), constraints=(PairConstraint(0, 1, equal, "blocks: test"),),
                         hashed=((0, ("dst_port",)), (1, ("src_port",))), nic=E810, cores=cores)
    return [(d.key, d.fields) for d in solve_keys(problem).devices]


@pytest.mark.parametrize("cores", [2, 3, 4, 5, 6, 8, 12, 16])
def test_a_dealt_table_reads_as_its_rule_exactly(cores):
    planes = _top_byte_planes(cores)
    table = deal(planes, E810.reta_size, cores)
    assert table == dealing(planes, E810.reta_size, cores).table()
    text = reta_text(table, lambda: dealing(planes, E810.reta_size, cores))
    assert len(text) < 160 and read_back(text, E810.reta_size) == table, text
    if cores & (cores - 1) == 0:  # the table alone gives the rule: each core bit is a parity of entry bits
        assert rule_of(table) is not None and reta_text(table) == text
        assert text.count("parity(") == (cores - 1).bit_length()


@pytest.mark.parametrize("cores", [3, 5, 7, 12])
def test_a_round_robin_that_does_not_repeat_evenly_reads_as_e_mod_cores(cores):
    rng = random.Random(cores)
    planes = [(rng.getrandbits(E810.key_bytes * 8).to_bytes(E810.key_bytes, "big"), RSS_NAMES)]
    table = deal(planes, E810.reta_size, cores)
    assert reta_text(table) == f"entry e -> core e mod {cores}"
    shifted = tuple((e >> 2) % cores for e in range(E810.reta_size))  # two dead low index bits skipped
    assert reta_text(shifted) == f"entry e -> core (e >> 2) mod {cores}"
    assert read_back(reta_text(shifted), E810.reta_size) == shifted


def test_short_periods_keep_their_form_and_other_tables_point_at_the_whole_one():
    assert reta_text(tuple(e % 4 for e in range(512))) == "0 1 2 3 x128"
    assert reta_text((0, 1, 1, 0)) == "0 1 1 0"
    rng = random.Random(7)
    rebalanced = tuple(rng.randrange(3) for _ in range(512))
    text = reta_text(rebalanced, lambda: dealing(_top_byte_planes(3), 512, 3))  # a rule, but not this table's
    assert text == " ".join(map(str, rebalanced[:SHOWN])) + " ... (512 entries: plan.json and nf_plan.c list them all)"


@functools.lru_cache(maxsize=None)
def _solution(cores: int):
    return pipeline.solve(NFS / "port_blocks.c", cores=cores, quality=False)


@pytest.mark.parametrize("cores", [2, 3])
def test_the_plan_text_says_the_rule_and_the_generated_c_keeps_the_table(cores):
    """port_blocks' plan.txt printed both devices' 512 entries; nf_plan.c must still list them."""
    plan = parallel_plan(_solution(cores), "sn")
    text = plan.text()
    reta_lines = [line for line in text.splitlines() if line.startswith("  reta ")]
    assert len(reta_lines) == 2 and max(len(line) for line in text.splitlines()) < 170
    for line, d in zip(reta_lines, plan.steering):
        assert read_back(line[len("  reta "):], plan.reta_size) == d.reta
    assert plan_from_dict(plan.to_dict()).text() == text  # a plan.json read back says the same
    files = render(plan)
    assert files["plan.txt"].decode() == text
    tables = files["nf_plan.c"].decode().split(".reta = {")[1:]
    assert [tuple(int(c) for c in t.split("}")[0].replace(",", " ").split()) for t in tables] == \
        [d.reta for d in plan.steering]
