"""The array-table pool model hands out, readdresses and checks exactly as the former dict-based
one (``tests/reference_pools.py``), chunk by chunk, on NAT traffic with replies, used-up pools and
split flows."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.rss.key_solver import RssPlan
from explorer.simulate.pools import PoolModel
from explorer.simulate.steering import Hasher, steer
from explorer.traffic.generators import field_chunks

from reference_pools import PoolModel as ReferenceModel

NAT = Path(__file__).resolve().parent.parent / "sample_nfs" / "nat.c"


@pytest.fixture(scope="module")
def nat():
    return pipeline.solve(NAT, cores=4, quality=False)


def _stale(plan: RssPlan) -> RssPlan:
    """The plan with RETAs moved by one entry: pools computed for it split flows under the real one."""
    return replace(plan, devices=tuple(replace(d, reta=d.reta[1:] + d.reta[:1]) for d in plan.devices))


@pytest.mark.parametrize("kind, packets, flows, params, broken", [
    ("bidir", 30_000, 3_000, {}, False),
    ("bidir", 30_000, 3_000, {}, True),
    ("prefix", 30_000, 3_000, {"server_prefix": "172.16.0.10/32"}, False),
    ("uniform", 60_000, 60_000, {}, True),  # many LAN flows: some cores' pools run out
    ("bidir", 80_000, 40_000, {}, False),  # pools run out, and the flows that got no index have replies
])
def test_pool_model_matches_the_reference(nat, kind, packets, flows, params, broken):
    plan = nat.plan
    pools = _stale(plan) if broken else plan
    allocation = nat.sharding.allocations[0]
    new, old = PoolModel(nat.analysis, allocation, pools), ReferenceModel(nat.analysis, allocation, pools)
    hasher, first = Hasher(plan), 0
    for fields, devices in field_chunks(kind, packets, flows, seed=2, chunk_packets=7_000, **params):
        cores = steer(plan, fields, devices, hasher=hasher).cores
        a_fields, a_rows, a_flows = new.translate(fields, devices, first, cores)
        b_fields, b_rows, b_flows = old.translate(fields, devices, first, cores)
        assert a_fields == b_fields and np.array_equal(a_rows, b_rows) and len(a_flows) == len(b_flows)
        if len(a_rows):
            after = steer(plan, a_fields, devices, hasher=hasher).cores[a_rows]
            new.check(a_rows, a_flows, after, first)
            old.check(b_rows, b_flows, after, first)
        first += len(fields)
    a, b = new.report(), old.report()
    expected = b.to_dict()  # the reference has what sharding by allocation reports (not the words about it)
    assert {name: a.to_dict()[name] for name in expected} == expected and a.pooled
    assert a.replies > 0 and (a.violations > 0) == broken and (len(a.examples) == 5) == broken
    if flows > allocation.capacity:
        assert a.exhausted > 0
