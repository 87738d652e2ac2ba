"""A sharded dchain that nf_init takes indices from is not divided among the cores.

tests/nfs/vip_quota.c registers 24 VIP hosts in nf_init (dchain of 64). Every core runs nf_init, so
with 16 indices per core (64 / 4) nf_init failed on each core: solve and generate said sn, and
`nfx check --cores 4` said 'NOT equivalent: the parallel run failed: nf_init failed (returned
false) on core 3'. Such a dchain (and what follows it) now keeps its full capacity on every core."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.codegen import parallel_plan

NF = str(Path(__file__).resolve().parent / "nfs" / "vip_quota.c")


def test_the_analysis_counts_the_indices_nf_init_took():
    analysis = pipeline.analyze(NF)
    assert dict(analysis.object("chain").extra) == {"init_entries": 24}
    assert dict(pipeline.analyze(NF, defines={"PF_VIP": "3"}).object("chain").extra) == {"init_entries": 3}


def test_a_seeded_dchain_keeps_its_capacity_on_every_core():
    solution = pipeline.solve(NF, cores=4, quality=False)
    assert solution.strategy == "shared-nothing"
    plan = parallel_plan(solution, "sn", 4)
    assert {o.name: (o.divisible, o.per_core) for o in plan.objects} == {
        "hosts": (False, 64), "quota": (False, 64), "chain": (False, 64)}
    plain = parallel_plan(pipeline.solve(str(Path(NF).parent.parent.parent / "sample_nfs" / "fw.c"), cores=4,
                                         quality=False), "sn", 4)
    assert plain.object("chain").divisible  # nothing taken in nf_init: divided as before


@pytest.mark.dpdk
def test_the_parallel_build_starts_and_matches(capsys):
    status = main(["check", NF, "--traffic", "bidir", "--cores", "4", "--json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    report = json.loads(captured.out)
    assert "nf_init failed" not in json.dumps(report)
    assert status in (0, 3) and report["differences"] == [], json.dumps(report)[:2000]  # 3: partial (capacity drift)
