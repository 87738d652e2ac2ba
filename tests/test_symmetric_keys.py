"""A key that orders two fields, so that both directions of a conversation share one entry
(``tests/nfs/pair_quota.c``: the lower and the higher address of a frame): sharding relates each
way the key's if-then-else can go with each other way, so RSS must hash the swapped addresses
alike on both devices (a symmetric Toeplitz key), where before the key was opaque and the NF
fell back to locks. Also: keys that differ in a constant bit (``tests/nfs/port_hosts.c``, keyed by
the input device) relate nothing."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.cli import main
from explorer.explain import key_fields
from explorer.rss.toeplitz import toeplitz_hash
from explorer.run import run_trace
from explorer.sharding import constraints as sharding_constraints
from explorer.sharding.keybits import key_alternatives, key_bits
from explorer.traffic.pcap import write_trace
from explorer.traffic.trace import Trace

import nf_packets as pk

ROOT = Path(__file__).resolve().parent.parent
NF = ROOT / "tests" / "nfs" / "pair_quota.c"
DEFINES = {"PQ_CAPACITY": "1024", "PQ_QUOTA": "12"}


def conversations(packets: int = 6_000, pairs: int = 150, seed: int = 7) -> Trace:
    """UDP frames between pairs of hosts, each frame in either direction on either device."""
    rng = random.Random(seed)
    hosts = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(80)] + \
            [f"172.16.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(80)]
    chosen = [tuple(rng.sample(hosts, 2)) for _ in range(pairs)]
    events = []
    for k in range(packets):
        a, b = rng.choice(chosen)
        if rng.random() < 0.5:
            a, b = b, a
        frame = pk.udp(a, rng.randrange(1024, 65536), b, rng.choice([53, 443, 9999]), payload=b"q" * 18)
        events.append((10**9 + 10_000 * (k + 1), rng.randrange(2), frame))
    return pk.trace(events)


@pytest.fixture(scope="module")
def analysis():
    return pipeline.analyze(NF, DEFINES)


@pytest.fixture(scope="module")
def solution(analysis):
    return pipeline.solve(analysis, cores=4, quality=False)


def _pairs_get(analysis):
    return next(a for p in analysis.paths for a in p.accesses if a.object == "pairs" and a.call == "nf_map_get")


def test_the_ordered_key_is_one_of_two_concatenations(analysis):
    key = _pairs_get(analysis).key
    assert all(bit.symbol is None for bit in key_bits(key))  # chosen by a comparison: opaque as one term
    ways = key_alternatives(key)
    assert len(ways) == 2
    sources = [{bit.symbol for bit in way[32:]} for way in ways]  # the first struct member: the top 32 bits
    assert sources == [{"p.ipv4.src"}, {"p.ipv4.dst"}] or sources == [{"p.ipv4.dst"}, {"p.ipv4.src"}]
    assert [bit.index for bit in ways[0]] == [bit.index for bit in ways[1]]  # the same bits, swapped fields
    assert key_fields(_pairs_get(analysis)) == ("src_ip", "dst_ip (in either order)")


def test_it_shards_on_both_addresses_with_a_symmetric_hash(solution):
    assert solution.strategy == "shared-nothing"
    assert dict(solution.sharding.hashed) == {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}
    rng = random.Random(1)
    for _ in range(200):
        a, b = rng.getrandbits(32).to_bytes(4, "big"), rng.getrandbits(32).to_bytes(4, "big")
        cores = set()
        for device in (0, 1):
            plan = solution.plan.device(device)
            for data in (a + b, b + a):
                cores.add(plan.reta[toeplitz_hash(plan.key, data) % len(plan.reta)])
        assert len(cores) == 1  # both directions, both devices: one core


def test_without_the_alternatives_it_was_locks(analysis, monkeypatch):
    monkeypatch.setattr(sharding_constraints, "key_alternatives", lambda term, xor=False: (key_bits(term),))
    solution = pipeline.solve(analysis, cores=4, quality=False)
    assert solution.strategy == "locks"
    assert "share no RSS-hashable field" in solution.sharding.decision("pairs").reason


def test_the_simulator_sees_no_violation_and_an_asymmetric_key_splits_pairs(solution):
    trace = conversations()
    assert pipeline.simulate(solution, trace).violation_count == 0
    broken = pipeline.simulate(solution, trace, keys={0: bytes(range(52)), 1: bytes(range(52))})
    assert broken.violation_count > 0 and {v.object for v in broken.violations} == {"pairs"}


@pytest.mark.dpdk
def test_check_is_equivalent_at_4_cores_on_both_directions(tmp_path, capsys):
    trace = conversations()
    summary = run_trace(NF, trace, DEFINES).summary()
    assert 0.2 < summary["dropped"] / summary["in"] < 0.8  # the quota decides: counts must be shared exactly
    paths = write_trace(trace, tmp_path / "traffic")
    inputs = [arg for d, p in sorted(paths.items()) for arg in ("--in", f"{d}={p}")]
    defines = [arg for name, value in sorted(DEFINES.items()) for arg in ("-D", f"{name}={value}")]
    assert main(["check", str(NF), *defines, *inputs, "--cores", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["equivalent"] is True and report["strategy"] == "sn"


def test_alternatives_of_hand_made_keys():
    import z3

    src, dst, port = z3.BitVec("p.ipv4.src", 32), z3.BitVec("p.ipv4.dst", 32), z3.BitVec("p.l4.dport", 16)
    tcp = z3.BitVec("p.ipv4.proto", 8) == 6
    # a port only for TCP: the key is (dst, port) or (dst, 0)
    ways = key_alternatives(z3.Concat(dst, z3.If(tcp, port, z3.BitVecVal(0, 16))))
    assert len(ways) == 2
    assert {tuple(b.symbol for b in way[:16]) for way in ways} == {("p.l4.dport",) * 16, (None,) * 16}
    assert all(all(b.symbol == "p.ipv4.dst" for b in way[16:]) for way in ways)
    # the same condition twice is one choice; a key without a choice is its plain bits
    low, high = z3.If(z3.ULT(src, dst), src, dst), z3.If(z3.ULT(src, dst), dst, src)
    assert len(key_alternatives(z3.Concat(low, high))) == 2
    assert key_alternatives(z3.Concat(src, dst)) == (key_bits(z3.Concat(src, dst)),)
    # past CHOICES distinct conditions the key stays opaque (one way, every chosen bit opaque)
    many = z3.Concat(*[z3.If(z3.Extract(i, i, src) == 1, z3.Extract(7, 0, dst), z3.BitVecVal(0, 8)) for i in range(4)])
    assert len(key_alternatives(many)) == 1
    assert all(b.symbol is None and b.const is None for b in key_alternatives(many)[0])


def test_keys_that_differ_in_a_constant_bit_relate_nothing():
    """tests/nfs/port_hosts.c keys its table by (input device, source address): entries of one
    device never meet the other's, so the devices need no common hash (before, the two devices'
    source addresses were related as if a host's frames on either port shared an entry)."""
    analysis = pipeline.analyze(ROOT / "tests" / "nfs" / "port_hosts.c")
    solution = pipeline.solve(analysis, cores=4, quality=False)
    assert solution.strategy == "shared-nothing"
    assert dict(solution.sharding.hashed) == {0: ("src_ip",), 1: ("src_ip",)}
    constraints = solution.sharding.constraints
    assert constraints and all(c.dev1 == c.dev2 for c in constraints)
    both = conversations(packets=4_000, pairs=60)  # the same hosts on both ports
    assert pipeline.simulate(solution, both).violation_count == 0


def test_a_key_choosing_on_too_many_conditions_is_locked_and_says_so(tmp_path):
    """Four ?: in a key (each byte of the address kept or zeroed by a bit of the port) are past
    what sharding splits into ways: the table is locked, and the reason names the choice."""
    source = NF.read_text().replace(
        "  key.low = a < b ? a : b;\n  key.high = a < b ? b : a;\n",
        "  key.low = ((b & 1) ? a & 0xff000000u : 0) | ((b & 2) ? a & 0xff0000u : 0) |\n"
        "            ((b & 4) ? a & 0xff00u : 0) | ((b & 8) ? a & 0xffu : 0);\n  key.high = 0;\n")
    assert "b & 8" in source
    nf = tmp_path / "choosy.c"
    nf.write_text(source)
    solution = pipeline.solve(nf, cores=4, quality=False)
    assert solution.strategy == "locks"
    reason = solution.sharding.decision("pairs").reason
    assert "share no RSS-hashable field (a choice among more than 3 conditions)" in reason, reason
