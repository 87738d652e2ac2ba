"""A dchain whose released indices hand a new entry the cells their last holder left is not sharded
(explorer/sharding/recycling.py).

tests/nfs/recycled_counter.c counts frames per address pair in a vector at the pair's dchain index
and never resets the counter of a new pair: sequentially a new pair adds to what the last holder of
its index left, sharded to what the last holder on its own core left (each core has its own dchain
and hands indices out in another order). It was sharded and nfx check on bidir at 3 cores with a
1 ms age found 626 of 20000 packets with other verdicts (tests/nfs/byte_quota.c the same: 2046 of
20000). A counter reset when the index is handed out, or a cell whose kept bytes nothing reads (the
pad of tests/nfs/one_port.c's counter), still shards."""
from __future__ import annotations

from pathlib import Path

from explorer import pipeline
from explorer.sharding.recycling import followers_of

NFS = Path(__file__).resolve().parent / "nfs"
NF = str(NFS / "recycled_counter.c")


def _objects(path: str, defines: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    solution = pipeline.solve(path, defines=defines, cores=3, quality=False)
    return {o.name: (o.decision, o.reason) for o in solution.sharding.objects}


def test_a_counter_a_new_entry_adds_to_is_locked():
    found = _objects(NF)
    assert found["chain"][0] == "lock"
    assert ("recycled_counter.c:60 `nf_dchain_allocate_new_index(chain, &index, now)` hands out an index of chain"
            in found["chain"][1]
            and "computes with counts' cell at it (recycled_counter.c:76 `nf_vector_borrow(counts, index)`) before "
                "overwriting it" in found["chain"][1]), found["chain"][1]
    assert found["counts"][0] == "lock"
    assert found["counts"][1].startswith("its indices come from chain, which is locked")
    assert found["keys"][0] == "lock"


def test_a_counter_only_hits_read_is_locked():
    found = _objects(NF, {"RC_HITS_ONLY": "1"})
    assert found["chain"][0] == "lock"
    assert "and does not write counts' cell at it, which other paths read" in found["chain"][1], found["chain"][1]


def test_a_counter_reset_when_its_index_is_handed_out_shards():
    found = _objects(NF, {"RC_RESET": "1"})
    assert {name: d for name, (d, _) in found.items()} == {
        "pairs": "shard", "keys": "shard", "chain": "shard", "counts": "shard"}


def test_a_counter_nothing_reads_shards():
    """Counted into itself and never looked at: what a new pair inherits decides no output."""
    found = _objects(NF, {"RC_UNREAD": "1"})
    assert found["chain"][0] == "shard" and found["counts"][0] == "shard"


def test_kept_bytes_that_no_path_reads_do_not_lock():
    """one_port's allocation writes since and frames but leaves the pad as it was: nothing reads it."""
    found = _objects(str(NFS / "one_port.c"), {"OP_CAPACITY": "64", "OP_MAX": "3"})
    assert found["chain"][0] == "shard" and found["counts"][0] == "shard"


def test_the_sample_nfs_still_shard():
    root = NFS.parent.parent / "sample_nfs"
    for nf in ("fw", "pol", "psd", "nat", "cl", "lb"):
        solution = pipeline.solve(str(root / f"{nf}.c"), cores=3, quality=False)
        assert solution.strategy == "shared-nothing", nf


SVC = str(NFS / "svc_conn_limit.c")


def test_a_vector_indexed_by_what_a_followers_cell_holds_does_not_follow_the_chain():
    """svc_conn_limit's svc_open is indexed by the service slot conn_svc's cell holds, not by a
    connection slot: a recycled connection slot hands a new connection no svc_open cell (conn_svc,
    written when the slot is handed out, is the follower checked). It was locked with the reason
    'does not write svc_open's cell at it'."""
    analysis = pipeline.analyze(SVC)
    solution = pipeline.solve(analysis, cores=3, quality=False)
    follows = {o.name: o.follows for o in solution.sharding.objects}
    kinds = {o.name: o.kind for o in solution.sharding.objects}
    followers = followers_of(analysis, frozenset({"conn_slots", "svc_slots"}), follows, kinds)
    assert followers == {"conn_slots": frozenset({"conn_keys", "conn_svc"}),
                         "svc_slots": frozenset({"svc_keys", "svc_open"})}
    assert {o.name: o.decision for o in solution.sharding.objects} == dict.fromkeys(follows, "shard")


def test_a_service_slot_a_new_connection_inherits_is_locked():
    found = _objects(SVC, {"SCL_STALE_SERVICE": "1"})
    assert found["conn_slots"][0] == "lock"
    assert "computes with conn_svc's cell at it" in found["conn_slots"][1], found["conn_slots"][1]
    assert found["svc_open"][0] == "lock"
    assert found["svc_open"][1].startswith("its indices come from conn_svc, which is locked"), found["svc_open"][1]


def test_a_vector_indexed_by_a_chain_index_another_vector_keeps_follows_the_chain():
    """conn_svc stores the connection slot itself: svc_open at the value it holds is at a connection
    slot, which no new connection writes (a vector that keeps the chain's indices, as a map does)."""
    found = _objects(SVC, {"SCL_OPEN_BY_CONN": "1"})
    assert found["conn_slots"][0] == "lock"
    assert "does not write svc_open's cell at it, which other paths read" in found["conn_slots"][1], \
        found["conn_slots"][1]
