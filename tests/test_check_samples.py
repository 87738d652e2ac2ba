"""nfx check on every sample NF under its chosen strategy (and tm), with 2 and 4 cores, on mixed
traffic of 20,000 packets (100,000 in the slow test), plus closed-loop replies for the NAT."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer.verify.equivalence import check
from explorer.traffic.trace import Trace

import codegen_fixtures as fixtures
from codegen_fixtures import solution

ROOT = Path(__file__).resolve().parent.parent
SHARED_NOTHING = ("nop", "sbridge", "pol", "fw", "nat", "cl", "psd")
PACKETS = 20_000


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def traffic(kind: str = "mixed", packets: int = PACKETS, seed: int = 1) -> Trace:
    return fixtures.traffic(kind, packets, seed, packets_per_flow=20)


# ---- the sample NFs ------------------------------------------------------------------------------

@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf", SHARED_NOTHING)
def test_shared_nothing_samples_are_equivalent(nf, cores):
    report = check(solution(nf), traffic(), cores)
    assert report.equivalent, report.render()
    assert report.strategy == "sn" and report.packets == PACKETS + report.replies == sum(report.per_core)
    assert min(report.per_core) > report.packets / cores / 3  # the key spreads the traffic
    if nf == "nat":  # it rewrites: closed-loop replies reach its WAN -> LAN path
        assert report.renamed > 1000 and report.replies > 1000  # external ports come from per-core pools
    else:
        assert report.renamed == 0 and report.replies == 0
    assert report.capacity_drift == 0


@pytest.mark.dpdk
@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf,kind", [("bridge", "mixed"), ("lb", "heartbeat")])
def test_locks_samples_are_equivalent_in_the_locks_order(nf, kind, cores):
    report = check(solution(nf, "locks"), traffic(kind), cores)
    assert report.equivalent, report.render()
    assert report.strategy == "locks" and report.write_passes > 0
    # compared in the run's own order, every packet counts, with the replies of one round (lb's
    # cores interleave differently each run: it never settled, and 75% of its packets were set aside)
    assert report.settled == -1 and report.unsettled == 0 and "did not settle" not in report.render()
    assert (report.replies > 1000) == (nf == "lb")
    assert report.write_passes < PACKETS / 5  # read-mostly: refreshing is a read


@pytest.mark.dpdk
def test_tm_is_equivalent_on_its_fallback_path():
    report = check(solution("bridge", "tm"), traffic(), 4, "tm")
    assert report.equivalent, report.render()
    assert report.strategy == "tm"


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("nf", ["nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb"])
def test_every_sample_is_equivalent_on_100k_packets(nf, cores=4):  # 2 cores: the 20k-packet tests above
    kind = "heartbeat" if nf == "lb" else "mixed"
    # pol's 1,024 buckets hold fewer hosts than this trace has: the sequential table fills too, and
    # the packets after a core's share runs out go uncompared (partial, tested apart)
    defines = (("POL_CAPACITY", "16384"),) if nf == "pol" else ()
    report = check(solution(nf, "auto", 4, defines), traffic(kind, 100_000), cores)
    assert report.equivalent, report.render()
