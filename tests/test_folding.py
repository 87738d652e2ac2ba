"""A key made of another object's values that folds several of them into one entry, or of values that
are no allocated indices, is not sharded (explorer/sharding/folding.py).

tests/nfs/index_pairs.c counts frames per pair of flows: the counter cell is the flow's dchain index
/ 2. Sequentially flows 0 and 1 share cell 0; sharded, each core hands out its own indices, so the
flows sharing a cell differ: it was sharded ('follows chain, flows') and nfx check on bidir at 4
cores found 9 of 20000 packets with other verdicts. A one-to-one key (index ^ 1) still shards.
tests/nfs/port_memo.c counts frames per service in a vector indexed by a port a map stores per host:
hosts on different cores store the same port (216 of 20000 differed). tests/nfs/cell_memo.c does
the same through a flow's vector cell holding its port class."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import z3

import explorer.sharding.constraints as constraints
from explorer import pipeline
from explorer.cli import main
from explorer.explain import describe
from explorer.sharding.folding import folds

NFS = Path(__file__).resolve().parent / "nfs"
NF = str(NFS / "index_pairs.c")


def _objects(path: str) -> dict[str, tuple[str, str]]:
    solution = pipeline.solve(path, cores=4, quality=False)
    return {o.name: (o.decision, o.reason) for o in solution.sharding.objects}


def test_a_counter_per_pair_of_indices_is_locked():
    found = _objects(NF)
    assert found["buckets"][0] == "lock"
    assert ("index_pairs.c:30 `nf_vector_borrow(buckets, b)` uses a value computed from chain's index "
            "(index_pairs.c:26) as its key: it is the same for different values" in found["buckets"][1]), found["buckets"][1]
    summary = describe(pipeline.analyze(NF), pipeline.solve(NF, cores=4, quality=False))
    assert ("picks the entry with a value computed from chain's index (index_pairs.c:26): it is the same for "
            "different values") in json.dumps(summary)


def test_one_to_one_keys_still_follow(tmp_path):
    """index ^ 1 and 40000 + 2 * index (below the dchain's capacity) name one entry per index."""
    source = (NFS / "index_pairs.c").read_text().replace("int b = i / 2;", "int b = i ^ 1;")
    xor = tmp_path / "index_xor.c"
    xor.write_text(source)
    assert _objects(str(xor))["buckets"] == ("shard", "follows chain, flows")
    assert pipeline.solve(str(NFS / "port_alloc.c"), cores=4, quality=False).strategy == "shared-nothing"


def test_the_domain_of_an_index_decides():
    """Below port_alloc's 8192 indices, 16 bits of 2 * index are one-to-one, 16 bits of 16 * index not."""
    analysis = pipeline.analyze(str(NFS / "port_alloc.c"))
    path = next(p for p in analysis.paths if any(a.op.value == "CREATE" for a in p.accesses))
    index = next(z3.BitVec(n, 32) for a in path.accesses for n in a.results if ".index#" in n)
    key = z3.Extract(15, 0, index << 1)
    capacity = next(o.capacity for o in analysis.objects if o.kind == "dchain")
    assert capacity == 8192 and not folds(analysis, path, key)
    assert folds(analysis, path, z3.Extract(15, 0, index << 4))


def test_an_entry_named_by_a_stored_header_field_is_locked():
    found = _objects(str(NFS / "port_memo.c"))
    assert found["pinned"][0] == "shard" and found["per_service"][0] == "lock"
    assert ("port_memo.c:29 `nf_vector_borrow(per_service, port)` uses pinned's value (port_memo.c:26) as its key: "
            "the values pinned stores are not indices a dchain handed out" in found["per_service"][1]), found["per_service"][1]


def test_an_entry_named_by_a_header_field_a_cell_stores_is_locked():
    found = _objects(str(NFS / "cell_memo.c"))
    assert found["infos"][0] == "shard" and found["budget"][0] == "lock"
    assert ("uses a value computed from infos' cell (cell_memo.c:32) as its key: the cells of infos hold other "
            "values than indices a dchain handed out (cell_memo.c:30 `nf_vector_return(infos, i, in)` stores the low 6 "
            "bits of dst_port)" in found["budget"][1]), found["budget"][1]
    assert pipeline.solve(str(NFS.parent.parent / "sample_nfs" / "lb.c"), cores=4, quality=False).strategy == \
        "shared-nothing"  # its flows keep backend indices in their cells


@pytest.mark.dpdk
@pytest.mark.parametrize("nf", [NF, str(NFS / "port_memo.c"), str(NFS / "cell_memo.c")])
def test_the_parallel_build_is_equivalent(capsys, monkeypatch, nf):
    def check() -> tuple[int, dict]:
        status = main(["check", nf, "--traffic", "bidir", "--cores", "4", "--json"])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return status, json.loads(captured.out)

    status, report = check()
    assert report["strategy"] == "locks" and report["equivalent"] is True, json.dumps(report)[:2000]
    monkeypatch.setattr(constraints, "folding", lambda analysis, path, key, sources: "")
    status, report = check()
    assert status == 2 and report["strategy"] == "sn" and report["equivalent"] is False


def test_an_nf_whose_cell_keys_many_paths_read_is_sharded_in_seconds():
    """host_flow_limit's 27 paths read a host's flow slots, each a vector cell that keys the flow
    chain: every vector write was substituted into the key once per reading path (63,000
    substitutions, 19,700 Z3 checks) and each pair of key alternatives worked out once per pair of
    devices, 193 CPU-s to solve; about 9 now."""
    import time

    analysis = pipeline.analyze(NFS / "host_flow_limit.c")
    start = time.process_time()
    solution = pipeline.solve(analysis, cores=4, quality=False)
    seconds = time.process_time() - start
    assert solution.to_dict()["strategy"] == "locks"
    assert seconds < 60, f"{seconds:.0f} CPU-s"
