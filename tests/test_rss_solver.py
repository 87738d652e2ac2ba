"""The key solver: Maestro's NFs' constraint shapes solved, checked by hashing packets; conflicts
explained; seeds; user keys; counterexamples confirmed by hashing."""
from __future__ import annotations

import ipaddress
import json
import statistics
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.errors import ConfigError, ShardingError, SolverError
from explorer.rss import key_solver as solver_module
from explorer.rss.hash_input import FIELD_BITS, FIELD_NAMES
from explorer.rss.nic import nic_profile
from explorer.rss.problem import KeyProblem, PairConstraint
from explorer.rss.quality import field_ranks, low_bits_rank
from explorer.rss.key_solver import (RssPlan, find_counterexample, plan_with_keys, solve_keys,
                                 verify_plan)
from explorer.rss.toeplitz import hash_fields

SWAP = {"src_ip": "dst_ip", "dst_ip": "src_ip", "src_port": "dst_port", "dst_port": "src_port"}


def relate(dev1: int, dev2: int, pairs, origin: str, bits=None) -> PairConstraint:
    """p1.a == p2.b for every (a, b) in pairs (all bits, or the given bit indices)."""
    equal = tuple(((a, i), (b, i)) for a, b in pairs for i in (bits if bits is not None else range(FIELD_BITS[a])))
    return PairConstraint(dev1, dev2, equal, origin)


def firewall() -> tuple[PairConstraint, ...]:
    same = [(f, f) for f in FIELD_NAMES]
    return (relate(0, 0, same, "flows: lan lookup ~ lan insert (fw.c:40:5)"),
            relate(0, 1, [(f, SWAP[f]) for f in FIELD_NAMES], "flows: lan insert (device 0) ~ wan lookup (fw.c:52:9)"),
            relate(1, 1, same, "flows: wan lookup ~ wan lookup (fw.c:52:9)"))


def problem(constraints, nic="e810", hashed=None, cores=16, seed=0, devices=(0, 1)) -> KeyProblem:
    hashed = hashed or {d: FIELD_NAMES for d in devices}
    return KeyProblem(devices=devices, constraints=tuple(constraints), hashed=tuple(sorted(hashed.items())),
                      nic=nic_profile(nic), cores=cores, seed=seed)


def packets(rng, n):
    return {"src_ip": rng.integers(0, 2**32, n, dtype=np.uint32), "dst_ip": rng.integers(0, 2**32, n, dtype=np.uint32),
            "src_port": rng.integers(0, 2**16, n, dtype=np.uint16),
            "dst_port": rng.integers(0, 2**16, n, dtype=np.uint16)}


def cores_of(plan: RssPlan, dev: int, arrays) -> np.ndarray:
    d = plan.device(dev)
    index = hash_fields(d.key, d.fields, arrays) & np.uint32(len(d.reta) - 1)
    return np.asarray(d.reta)[index]


@pytest.mark.parametrize("nic", ["e810", "x710", "cx5", "82599"])
def test_firewall_symmetric(nic):
    plan = solve_keys(problem(firewall(), nic))
    rng = np.random.default_rng(42)
    lan = packets(rng, 5000)
    wan = {SWAP[f]: v for f, v in lan.items()}  # the reply: (d, s, dp, sp)
    d0, d1 = plan.device(0), plan.device(1)
    i0 = hash_fields(d0.key, d0.fields, lan) & np.uint32(nic_profile(nic).reta_size - 1)
    i1 = hash_fields(d1.key, d1.fields, wan) & np.uint32(nic_profile(nic).reta_size - 1)
    assert np.array_equal(i0, i1)  # same RETA bucket, not just the same core
    assert d0.rank == d1.rank == nic_profile(nic).index_bits
    # unrelated traffic still spreads evenly over the 16 cores
    counts = np.bincount(cores_of(plan, 0, packets(rng, 32000)), minlength=16)
    assert counts.max() / counts.mean() < 1.15
    assert find_counterexample(plan, firewall()) is None


def test_policer_with_field_selection_hashes_dst_ip_only():
    pol = relate(1, 1, [("dst_ip", "dst_ip")], "buckets: wan packets by dst ip (pol.c:30:3)")
    plan = solve_keys(problem([pol], "e810", hashed={0: FIELD_NAMES, 1: ("dst_ip",)}))
    d1 = plan.device(1)
    assert d1.fields == ("dst_ip",)
    assert d1.rss_hf_names == ("RTE_ETH_RSS_IPV4", "RTE_ETH_RSS_L3_DST_ONLY")
    assert d1.rank == 9 and len(d1.key) == 52
    # the whole key mixes the address: one /16 reaches every RETA entry
    assert low_bits_rank(d1.key, d1.fields, 512, "dst_ip") == 9
    rng = np.random.default_rng(1)
    a, b = packets(rng, 3000), packets(rng, 3000)
    b["dst_ip"] = a["dst_ip"]
    assert np.array_equal(cores_of(plan, 1, a), cores_of(plan, 1, b))


def test_policer_without_field_selection_constrains_the_key():
    pol = relate(1, 1, [("dst_ip", "dst_ip")], "buckets: wan packets by dst ip (pol.c:30:3)")
    plan = solve_keys(problem([pol], "82599"))
    d1 = plan.device(1)
    assert d1.fields == FIELD_NAMES and len(d1.key) == 40
    assert d1.rss_hf_names == ("RTE_ETH_RSS_IPV4", "RTE_ETH_RSS_NONFRAG_IPV4_TCP", "RTE_ETH_RSS_NONFRAG_IPV4_UDP")
    ranks = field_ranks(d1.key, d1.fields, 128)
    assert ranks == {"src_ip": 0, "dst_ip": 7, "src_port": 0, "dst_port": 0}
    # better than Maestro's bit-reversed-address key: hosts inside one /16 still reach all 128 entries
    assert low_bits_rank(d1.key, d1.fields, 128, "dst_ip") == 7
    rng = np.random.default_rng(2)
    a, b = packets(rng, 3000), packets(rng, 3000)
    b["dst_ip"] = a["dst_ip"]
    assert np.array_equal(cores_of(plan, 1, a), cores_of(plan, 1, b))
    assert plan.device(0).rank == 7  # device 0 is unconstrained: full 4-tuple mixing


def test_nat_cross_device_fields():
    """LAN (device 0) dst ip:port ~ WAN (device 1) src ip:port."""
    nat = relate(0, 1, [("dst_ip", "src_ip"), ("dst_port", "src_port")], "flows: nat (nat.c:60:7)")
    for nic, hashed in (("e810", {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}), ("82599", None)):
        plan = solve_keys(problem([nat], nic, hashed=hashed))
        rng = np.random.default_rng(3)
        lan, wan = packets(rng, 3000), packets(rng, 3000)
        wan["src_ip"], wan["src_port"] = lan["dst_ip"], lan["dst_port"]
        assert np.array_equal(cores_of(plan, 0, lan), cores_of(plan, 1, wan)), nic


def test_partial_field_relation():
    """Only the low byte of the destination port is related; the high byte must not matter."""
    c = relate(1, 1, [("dst_port", "dst_port")], "low byte of dport", bits=range(8, 16))
    plan = solve_keys(problem([c], "82599", devices=(1,)))
    rng = np.random.default_rng(4)
    a, b = packets(rng, 3000), packets(rng, 3000)
    b["dst_port"] = (b["dst_port"] & 0xFF00) | (a["dst_port"] & 0x00FF)
    assert np.array_equal(cores_of(plan, 1, a), cores_of(plan, 1, b))
    assert plan.device(1).rank == 7


def test_degenerate_draws_are_rejected(monkeypatch):
    """Few free key bits: random solutions often have low rank; the solver redraws."""
    c = relate(1, 1, [("dst_port", "dst_port")], "low byte of dport", bits=range(8, 16))
    ranks = [solve_keys(problem([c], "82599", devices=(1,), seed=s)).device(1).rank for s in range(8)]
    assert ranks == [7] * 8
    monkeypatch.setattr(solver_module, "MAX_DRAWS", 1)
    first_draws = [solve_keys(problem([c], "82599", devices=(1,), seed=s)).device(1).rank for s in range(8)]
    assert min(first_draws) < 7  # without redrawing, some seeds would keep a weak key


def test_unsatisfiable_problem_names_the_conflict():
    by_src = relate(0, 0, [("src_ip", "src_ip")], "per_src: path 1 nf_map_get at psd.c:20:5 (device 0)")
    by_dst = relate(0, 0, [("dst_ip", "dst_ip")], "per_dst: path 2 nf_map_get at psd.c:31:5 (device 0)")
    unrelated = relate(1, 1, [(f, f) for f in FIELD_NAMES], "flows: device 1 only")
    with pytest.raises(ShardingError) as info:
        solve_keys(problem([unrelated, by_src, by_dst], "82599"))
    message = str(info.value)
    assert "per_src: path 1 nf_map_get at psd.c:20:5" in message
    assert "per_dst: path 2 nf_map_get at psd.c:31:5" in message
    assert "device 0" in message and "flows: device 1 only" not in message
    assert "must ignore dst_ip, src_port, dst_port" in message
    conflict = info.value.conflict
    assert conflict.devices == (0,)
    assert [p.origin for p in conflict.parts] == [by_src.origin, by_dst.origin]
    assert conflict.parts[0].related == (("src_ip", "src_ip"),)
    assert conflict.parts[0].ignored == ((0, ("dst_ip", "src_port", "dst_port")),)
    json.dumps(conflict.to_dict())


def test_device_hashing_nothing_gets_rss_off():
    plan = solve_keys(problem([], "e810", hashed={0: (), 1: FIELD_NAMES}))
    assert plan.device(0).rss_hf == 0 and plan.device(0).rank == 0 and plan.device(0).fields == ()
    assert plan.device(1).rank == 9


def test_fields_the_nic_cannot_select_are_widened_and_ignored():
    c = relate(0, 0, [("src_ip", "src_ip"), ("dst_ip", "dst_ip"), ("src_port", "src_port")], "flows: 3-tuple")
    plan = solve_keys(problem([c], "e810", hashed={0: ("src_ip", "dst_ip", "src_port"), 1: FIELD_NAMES}))
    d0 = plan.device(0)
    assert d0.fields == FIELD_NAMES  # ice cannot hash exactly (src_ip, dst_ip, src_port)
    assert field_ranks(d0.key, d0.fields, 512)["dst_port"] == 0
    assert all(field_ranks(d0.key, d0.fields, 512)[f] > 0 for f in ("src_ip", "dst_ip", "src_port"))


def test_same_seed_same_plan_other_seed_other_keys():
    first = solve_keys(problem(firewall(), seed=7))
    again = solve_keys(problem(firewall(), seed=7))
    assert first == again and first.to_dict() == again.to_dict()
    keys = {solve_keys(problem(firewall(), seed=s)).device(0).key for s in range(6)}
    assert len(keys) == 6


def test_plan_shape_and_json():
    plan = solve_keys(problem(firewall(), "cx5", cores=6))
    data = plan.to_dict()
    json.dumps(data)
    d0 = data["devices"]["0"]
    assert d0["key"] == plan.device(0).key.hex() and len(bytes.fromhex(d0["key"])) == 40
    assert d0["fields"] == list(FIELD_NAMES) and d0["reta_size"] == 512
    assert d0["reta"][:8] == [0, 1, 2, 3, 4, 5, 0, 1]
    assert data["cores"] == 6 and data["nic"] == "cx5"
    with pytest.raises(ConfigError, match="no device 5"):
        plan.device(5)


def test_solve_time():
    """The design target is under 50 ms per problem; the bound here only catches regressions on a
    loaded machine (measured figures are in the benchmark and the report)."""
    times = []
    for seed in range(5):
        started = time.perf_counter()
        solve_keys(problem(firewall(), seed=seed))
        times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.5


def test_verify_plan_catches_a_broken_plan():
    plan = solve_keys(problem(firewall()))
    verify_plan(plan, firewall())
    broken = plan_with_keys(plan, {1: bytes(range(52))})
    with pytest.raises(SolverError, match="plan check failed"):
        verify_plan(broken, firewall())


def test_counterexample_for_user_key_is_confirmed_by_hashing():
    fw = firewall()
    plan = plan_with_keys(problem(fw), {0: "6d5a" * 26, 1: bytes(range(7, 59))})
    example = find_counterexample(plan, fw)
    assert example is not None
    data = example.to_dict()
    json.dumps(data)
    assert data["object"] == "flows"
    assert example.cores[0] != example.cores[1]
    p1, p2 = example.p1, example.p2
    # the packets satisfy the violated constraint's equalities ...
    c = next(c for c in fw if c.origin == example.origin)
    value = {1: p1, 2: p2}
    for (f1, i1), (f2, i2) in c.equal:
        def bit(p, f, i):
            v = int(ipaddress.IPv4Address(p[f])) if f.endswith("_ip") else p[f]
            return v >> (FIELD_BITS[f] - 1 - i) & 1
        assert bit(value[1], f1, i1) == bit(value[2], f2, i2)
    # ... and hashing them independently puts them on the reported, different cores
    for p, core in ((p1, example.cores[0]), (p2, example.cores[1])):
        arrays = {f: np.array([int(ipaddress.IPv4Address(p[f])) if f.endswith("_ip") else p[f]], np.uint32)
                  for f in FIELD_NAMES}
        assert cores_of(plan, p["device"], arrays)[0] == core


def test_counterexample_respects_the_reta():
    """With one core every packet lands on core 0: no counterexample although buckets differ."""
    fw = firewall()
    plan = plan_with_keys(problem(fw, cores=1), {0: bytes(range(52)), 1: bytes(range(3, 55))})
    assert find_counterexample(plan, fw) is None


def test_plan_with_keys_validation():
    p = problem(firewall(), "e810")
    with pytest.raises(ConfigError, match="40 bytes, e810"):
        plan_with_keys(p, {0: bytes(40), 1: bytes(52)})
    with pytest.raises(ConfigError, match="the key has 1 byte, e810"):
        plan_with_keys(p, {0: "00", 1: bytes(52)})
    with pytest.raises(ConfigError, match="not hexadecimal"):
        plan_with_keys(p, {0: "zz" * 52, 1: bytes(52)})
    with pytest.raises(ConfigError, match="device 3"):
        plan_with_keys(p, {3: bytes(52)})
    # keys for every device: nothing is solved, so even an unsatisfiable problem yields a plan
    by_src = relate(0, 0, [("src_ip", "src_ip")], "a")
    by_dst = relate(0, 0, [("dst_ip", "dst_ip")], "b")
    plan = plan_with_keys(problem([by_src, by_dst], "82599"), {0: bytes(40), 1: "ff" * 40})
    assert plan.device(0).rank == 0 and plan.device(1).key == b"\xff" * 40
    # a partial set of keys keeps the solved keys of the other devices
    solved = solve_keys(p)
    mixed = plan_with_keys(p, {1: "00" * 52})
    assert mixed.device(0).key == solved.device(0).key and mixed.device(1).key == bytes(52)


def test_problem_validation():
    with pytest.raises(ConfigError, match="cores"):
        problem([], cores=0)
    with pytest.raises(ConfigError, match="cores"):
        problem([], "82599", cores=129)
    with pytest.raises(ConfigError, match="every device"):
        KeyProblem(devices=(0, 1), constraints=(), hashed=((0, FIELD_NAMES),), nic=nic_profile("e810"), cores=2)
    with pytest.raises(ConfigError, match="device 2"):
        problem([relate(0, 2, [("src_ip", "src_ip")], "x")])
    with pytest.raises(ConfigError, match="not a bit"):
        PairConstraint(0, 0, ((("src_ip", 32), ("src_ip", 0)),), "bad")
    with pytest.raises(ConfigError, match="not an RSS field"):
        problem([], hashed={0: ("src_mac",), 1: FIELD_NAMES})
    with pytest.raises(TypeError):
        KeyProblem((0,), (), ((0, FIELD_NAMES),), nic_profile("e810"), 2, 0)  # keywords only


# ---- property: any solvable random problem keeps related packets together ----------------------------

relations = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), st.sampled_from(FIELD_NAMES)), min_size=1, max_size=3)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), relations), min_size=1, max_size=3),
       nic=st.sampled_from(["e810", "cx5", "82599"]), seed=st.integers(0, 2**16))
def test_solved_keys_keep_related_packets_together(specs, nic, seed):
    constraints = [relate(d1, d2, [(a, b) for a, b in rel if FIELD_BITS[a] == FIELD_BITS[b]] or [("src_ip", "src_ip")],
                          f"obj{n}: random") for n, (d1, d2, rel) in enumerate(specs)]
    try:
        plan = solve_keys(problem(constraints, nic, seed=seed))
    except ShardingError as error:
        assert error.conflict.parts and error.conflict.devices
        return
    rng = np.random.default_rng(seed)
    for c in constraints:
        a, b = packets(rng, 500), packets(rng, 500)
        pairs = sorted({(x[0], y[0]) for x, y in c.equal})
        if len({f2 for _, f2 in pairs}) < len(pairs):
            continue  # two p1 fields tied to one p2 field also ties them in p1: not a plain copy
        for f1, f2 in pairs:
            b[f2] = a[f1].astype(b[f2].dtype)
        assert np.array_equal(cores_of(plan, c.dev1, a), cores_of(plan, c.dev2, b))
    assert find_counterexample(plan, constraints) is None


# ---- the field list is exactly what the RETA index depends on (issue 10, item 9) ----------------

def flips_change_index(plan: RssPlan, dev: int, rng, count: int = 64) -> dict[str, set[int]]:
    """Per RSS field, the bits (0 = most significant) whose flip changed some packet's RETA index,
    by hashing random packets and their one-bit variants as the NIC does (its hashed fields)."""
    d = plan.device(dev)
    size = len(d.reta)
    base = packets(rng, count)
    before = hash_fields(d.key, d.fields, base) & np.uint32(size - 1) if d.fields else np.zeros(count, np.uint32)
    changed: dict[str, set[int]] = {}
    for name in FIELD_NAMES:
        width = FIELD_BITS[name]
        for i in range(width):
            flipped = dict(base)
            flipped[name] = base[name] ^ base[name].dtype.type(1 << (width - 1 - i))
            after = hash_fields(d.key, d.fields, flipped) & np.uint32(size - 1) if d.fields else before
            if np.any(after != before):
                changed.setdefault(name, set()).add(i)
    return changed


def listed_bits(plan: RssPlan, dev: int) -> dict[str, set[int]]:
    out = {}
    for name, bits in plan.device(dev).depends:
        width = FIELD_BITS[name]
        out[name] = {i for i in range(width) if bits >> (width - 1 - i) & 1}
    return out


@pytest.mark.parametrize("nic", ["e810", "cx5", "82599"])
def test_a_field_the_constraints_zero_is_not_hashed_and_not_listed(nic):
    # The NAT's shape with the LAN side narrowed to dst_ip: the WAN side's src_port then relates to
    # nothing the LAN hashes, so the key must zero it; a NIC that selects fields drops it.
    nat = relate(0, 1, [("dst_ip", "src_ip")], "external: lan (dst ip) ~ wan (src ip)")
    plan = solve_keys(problem([nat], nic, hashed={0: ("dst_ip",) if nic != "82599" else FIELD_NAMES,
                                                  1: ("src_ip", "src_port") if nic != "82599" else FIELD_NAMES}))
    rng = np.random.default_rng(3)
    for dev in (0, 1):
        assert flips_change_index(plan, dev, rng) == listed_bits(plan, dev), (dev, plan.device(dev).depends_text)
    assert set(listed_bits(plan, 1)) == {"src_ip"}
    if nic != "82599":
        assert plan.device(1).fields == ("src_ip",)  # the NIC hashes only what matters
    else:
        assert plan.device(1).fields == FIELD_NAMES and plan.device(1).depends_text == "src_ip"


def test_a_masked_key_lists_the_bits_it_depends_on():
    # Per /24 state: packets agree on the top 24 bits of dst_ip only.
    pol = relate(1, 1, [("dst_ip", "dst_ip")], "subnets: wan /24 (t.c:1:1)", bits=range(24))
    plan = solve_keys(problem([pol], "e810", hashed={0: FIELD_NAMES, 1: ("dst_ip",)}))
    rng = np.random.default_rng(5)
    assert listed_bits(plan, 1) == {"dst_ip": set(range(24))}
    assert flips_change_index(plan, 1, rng) == listed_bits(plan, 1)
    assert plan.device(1).depends_text == "dst_ip (its top 24 bits)"  # a /24 prefix
    assert plan.to_dict()["devices"]["1"]["depends"] == {"dst_ip": "ffffff00"}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_listed_bit_can_move_a_packet_and_no_other_bit_can(seed):
    plan = solve_keys(problem(firewall(), "e810", seed=seed))
    rng = np.random.default_rng(seed)
    for dev in (0, 1):
        assert flips_change_index(plan, dev, rng) == listed_bits(plan, dev)
        assert set(listed_bits(plan, dev)) == set(FIELD_NAMES)
