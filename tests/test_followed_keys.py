"""An object named on one path by another object's value and on another by packet fields.

``tests/nfs/scrambled_nat.c`` puts its WAN mapping under a port computed from the fresh index (no
packet field) and finds it by the reply's destination port. Sharded by pair constraints, the
mapping lives on the core of the LAN packet that made it while the reply goes wherever RSS hashes
its port: the solver used to say shared-nothing, and ``nfx check`` then found replies dropped on
the wrong core. Such an object is locked, unless the value maps back to one field affinely
(sharding by allocation, which still applies to the NATs that do).
"""
from __future__ import annotations

from pathlib import Path

from explorer import pipeline

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"


def test_a_mapping_named_by_an_index_and_by_a_port_is_locked():
    solution = pipeline.solve(NFS / "scrambled_nat.c", quality=False)
    wan = solution.sharding.decision("wan_map")
    assert solution.strategy == "locks"
    assert wan.decision == "lock" and not wan.allocation
    assert ("scrambled_nat.c:86 `nf_map_put(wan_map, &pk, index)` names an entry by a value computed from chain's "
            "index (scrambled_nat.c:78) and by no packet field" in wan.reason), wan.reason
    assert "names entries by dst_port" in wan.reason and "#" not in wan.reason
    assert "no RSS key relates the two" in wan.reason


def test_affine_allocations_are_still_sharded_by_allocation():
    for nf, obj in ((ROOT / "sample_nfs" / "nat.c", "external"), (NFS / "port_alloc.c", "ports"),
                    (NFS / "cone_nat.c", "mappings")):
        solution = pipeline.solve(nf, quality=False)
        assert solution.strategy == "shared-nothing", nf
        assert solution.sharding.decision(obj).allocation, (nf, obj)
