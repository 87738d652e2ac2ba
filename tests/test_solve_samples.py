"""Sharding and keys for the nine sample NFs: the strategy a careful engineer picks, keys that keep
state-sharing packets together (checked by hashing), quality targets, overrides and explanations."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer import pipeline
from explorer.errors import ShardingError
from explorer.rss.toeplitz import hash_fields

ROOT = Path(__file__).resolve().parent.parent
NF = {name: str(ROOT / "sample_nfs" / f"{name}.c") for name in
      ["nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb"]}
ALL4 = ("src_ip", "dst_ip", "src_port", "dst_port")
EXPECTED = {  # strategy, and the fields each device hashes on a NIC with field selection
    "nop": ("shared-nothing", {0: ALL4, 1: ALL4}),
    "sbridge": ("shared-nothing", {0: ALL4, 1: ALL4}),
    "bridge": ("locks", None),
    "pol": ("shared-nothing", {0: ALL4, 1: ("dst_ip",)}),
    "fw": ("shared-nothing", {0: ALL4, 1: ALL4}),
    "nat": ("shared-nothing", {0: ALL4, 1: ("dst_port",)}),  # by allocation: replies carry the pool's port
    "cl": ("shared-nothing", {0: ALL4, 1: ("src_ip", "dst_ip")}),
    "psd": ("shared-nothing", {0: ALL4, 1: ("src_ip",)}),
    "lb": ("shared-nothing", {0: ALL4, 1: ALL4}),  # the backend objects are replicated
}
SHARDABLE = [n for n, (s, _) in EXPECTED.items() if s == "shared-nothing"]


@pytest.fixture(scope="module")
def solutions():
    return {name: pipeline.solve(path) for name, path in NF.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_strategy_and_hashed_fields(solutions, name):
    strategy, hashed = EXPECTED[name]
    s = solutions[name]
    assert s.strategy == strategy and s.valid
    if hashed:
        assert {d.device: d.fields for d in s.plan.devices} == hashed


def test_locked_objects_say_why(solutions):
    bridge = solutions["bridge"].sharding
    assert bridge.decision("macs").decision == "lock" and "keyed by src_mac" in bridge.decision("macs").reason
    lb = solutions["lb"].sharding
    assert lb.decision("active").decision == "replicate" and "scans" in lb.decision("active").reason
    assert lb.decision("cht").decision == "replicate" and lb.decision("flows").decision == "shard"
    assert "cannot hash" in solutions["bridge"].to_dict()["objects"][0]["reason"]


def _bucket(solution, device, arrays):
    d = solution.plan.device(device)
    return hash_fields(d.key, d.fields, arrays) & np.uint32(solution.nic.reta_size - 1)


def _random_packets(rng, n):
    return {"src_ip": rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
            "dst_ip": rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32),
            "src_port": rng.integers(0, 2**16, n).astype(np.uint16),
            "dst_port": rng.integers(0, 2**16, n).astype(np.uint16)}


# Two packets that touch the same state entry, per NF: (device of p1, device of p2, p2 from p1).
RELATED = {
    "fw": [(0, 1, lambda p, q: {"src_ip": p["dst_ip"], "dst_ip": p["src_ip"], "src_port": p["dst_port"],
                                "dst_port": p["src_port"]})],
    "nat": [(1, 1, lambda p, q: {**q, "dst_port": p["dst_port"]})],  # pools: see test_allocation.py
    "pol": [(1, 1, lambda p, q: {**q, "dst_ip": p["dst_ip"]})],
    "psd": [(1, 1, lambda p, q: {**q, "src_ip": p["src_ip"]})],
    "cl": [(1, 1, lambda p, q: {**q, "src_ip": p["src_ip"], "dst_ip": p["dst_ip"]})],
}


@pytest.mark.parametrize("name", sorted(RELATED))
def test_thousands_of_related_pairs_share_a_reta_bucket(solutions, name):
    rng = np.random.default_rng(11)
    s = solutions[name]
    for dev1, dev2, relate in RELATED[name]:
        p, q = _random_packets(rng, 20_000), _random_packets(rng, 20_000)
        assert np.array_equal(_bucket(s, dev1, p), _bucket(s, dev2, relate(p, q)))


@pytest.mark.parametrize("name", sorted(RELATED))
def test_the_constraints_themselves_hold_for_random_related_pairs(solutions, name):
    from explorer.rss.key_solver import verify_plan
    s = solutions[name]
    verify_plan(s.plan, s.sharding.constraints)  # raises when a related pair lands apart


@pytest.mark.parametrize("name", SHARDABLE)
def test_quality_targets_on_16_cores(solutions, name):
    q = dict(solutions[name].quality)
    assert q["uniform"] <= 1.10, q
    assert q["prefix"] <= 1.25, q
    assert all(d.rank == 9 or not d.fields for d in solutions[name].plan.devices)


def test_override_breaking_the_firewall_gives_a_confirmed_counterexample():
    s = pipeline.solve(NF["fw"], overrides={"flows": {0: ("src_ip",), 1: ("src_ip",)}})
    assert not s.valid and "flows" in s.explanation
    ce = s.counterexample
    p1, p2 = ce["p1"], ce["p2"]
    assert (p1["device"], p2["device"]) == (0, 1)
    assert (p1["src_ip"], p1["dst_ip"], p1["src_port"], p1["dst_port"]) == \
        (p2["dst_ip"], p2["src_ip"], p2["dst_port"], p2["src_port"])  # a flow and its reply
    cores = []
    for p in (p1, p2):
        arrays = {"src_ip": np.array([int(ipaddress.IPv4Address(p["src_ip"]))], dtype=np.uint32),
                  "dst_ip": np.array([int(ipaddress.IPv4Address(p["dst_ip"]))], dtype=np.uint32),
                  "src_port": np.array([p["src_port"]], dtype=np.uint16),
                  "dst_port": np.array([p["dst_port"]], dtype=np.uint16)}
        bucket = int(_bucket(s, p["device"], arrays)[0])
        cores.append(s.plan.device(p["device"]).reta[bucket])
    assert cores[0] != cores[1] and cores == ce["cores"]


def test_an_override_that_keeps_correctness_is_accepted():
    s = pipeline.solve(NF["fw"], overrides={"flows": {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}})
    assert s.valid and {d.device: d.fields for d in s.plan.devices} == {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}


def test_unsatisfiable_override_is_explained_with_objects_and_fields():
    s = pipeline.solve(NF["psd"], overrides={"sources": {1: ("dst_ip",)}})
    assert not s.valid
    assert "the override of sources (device 1: dst_ip)" in s.explanation
    assert "agree only on device 1: src_ip" in s.explanation


def test_shared_nothing_for_the_learning_bridge_is_refused_with_the_reason():
    with pytest.raises(ShardingError, match=r"macs: bridge.c:68 `nf_map_get\(macs, &src, &index\)` is keyed by src_mac"):
        pipeline.solve(NF["bridge"], strategy="sn")


def _nfx(*args):
    return subprocess.run([sys.executable, "-m", "explorer.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_json_has_the_documented_shape():
    r = _nfx("solve", NF["fw"], "--json", "--cores", "8", "--nic", "cx5")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["strategy"] == "shared-nothing"
    assert {o["name"]: o["decision"] for o in data["objects"]} == {"flows": "shard", "keys": "shard", "chain": "shard"}
    for dev in ("0", "1"):
        d = data["devices"][dev]
        assert len(bytes.fromhex(d["key"])) == 40 and d["fields"] == list(ALL4)
        assert d["reta_size"] == 512 and d["rss_hf"] > 0
    assert "solve" in data["seconds"] and "prefix" in data["quality"]


def test_cli_counterexample_and_bad_override():
    r = _nfx("solve", NF["fw"], "--json", "--override", "flows:0=src_ip", "--override", "flows:1=src_ip")
    assert r.returncode == 2
    ce = json.loads(r.stdout)["counterexample"]
    assert set(ce["p1"]) >= {"device", "src_ip", "dst_ip", "src_port", "dst_port"}
    r = _nfx("solve", NF["fw"], "--override", "nothing:0=src_ip")
    assert r.returncode == 1 and "nothing" in r.stderr and "Traceback" not in r.stderr
    r = _nfx("solve", NF["fw"], "--override", "flows:0=mac")
    assert r.returncode == 1 and "not an RSS field" in r.stderr


def test_an_nf_whose_objects_share_no_field_falls_back_to_locks_and_says_why():
    from test_sharding import DST, SRC, access, analysis, path
    from explorer.ir import Op
    a = analysis([("by_src", "map"), ("by_dst", "map")],
                 path(0, [1], access("by_src", Op.WRITE, "nf_map_put", SRC),
                      access("by_dst", Op.WRITE, "nf_map_put", DST)))
    s = pipeline.solve(a)
    assert s.strategy == "locks" and s.valid
    assert "by_src needs {src_ip}" in s.explanation and "by_dst needs {dst_ip}" in s.explanation
    sn = pipeline.solve(a, strategy="sn")
    assert not sn.valid and sn.counterexample is not None


def test_an_override_that_hashes_too_much_splits_entries_and_is_shown():
    s = pipeline.solve(NF["pol"], overrides={"hosts": {1: ALL4}})
    assert not s.valid and "the override hashes src_ip, src_port, dst_port on device 1" in s.explanation
    p1, p2 = s.counterexample["p1"], s.counterexample["p2"]
    assert p1["device"] == p2["device"] == 1 and p1["dst_ip"] == p2["dst_ip"]  # same protected host
    assert s.counterexample["cores"][0] != s.counterexample["cores"][1]


# ---- issue 10 item 9: printed field lists are what the hash depends on ------------------------------

@pytest.mark.parametrize("name", sorted(NF))
@pytest.mark.parametrize("nic", ["e810", "82599"])
def test_field_lists_are_what_the_hash_depends_on(name, nic):
    from test_rss_solver import flips_change_index, listed_bits
    s = pipeline.solve(NF[name], nic=nic, cores=4, quality=False)
    rng = np.random.default_rng(7)
    for d in s.plan.devices:
        assert flips_change_index(s.plan, d.device, rng) == listed_bits(s.plan, d.device), (name, d.device)
        if s.nic.field_selection:  # the NIC hashes exactly what matters
            assert {f for f, _ in d.depends} == set(d.fields)


def test_nat_narrowed_by_an_override_hashes_only_what_matters():
    s = pipeline.solve(NF["nat"], overrides={"internal": {0: ("dst_ip",)}}, cores=4, quality=False)
    assert s.valid and {d.device: d.fields for d in s.plan.devices} == {0: ("dst_ip",), 1: ("dst_port",)}
    r = _nfx("solve", NF["nat"], "--override", "internal:0=dst_ip", "--cores", "4")
    assert r.returncode == 0 and "1: hash dst_port  rank" in r.stdout, r.stdout


# ---- issue 10 item 8: overrides are honoured and verified under every strategy ------------------------

def _confirmed(solution) -> bool:
    """The counterexample's packets satisfy the broken constraint and land on different cores."""
    ce = solution.counterexample
    constraint = next(c for c in solution.sharding.violated if c.origin == ce["origin"])
    values = {}
    for side in ("p1", "p2"):
        p = ce[side]
        values[side] = {"src_ip": int(ipaddress.IPv4Address(p["src_ip"])), "dst_ip": int(ipaddress.IPv4Address(p["dst_ip"])),
                        "src_port": p["src_port"], "dst_port": p["dst_port"]}
    width = {"src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16}
    for (f1, i1), (f2, i2) in constraint.equal:
        if (values["p1"][f1] >> (width[f1] - 1 - i1)) & 1 != (values["p2"][f2] >> (width[f2] - 1 - i2)) & 1:
            return False
    cores = []
    for side in ("p1", "p2"):
        arrays = {k: np.array([v], dtype=np.uint32 if width[k] == 32 else np.uint16) for k, v in values[side].items()}
        device = ce[side]["device"]
        cores.append(solution.plan.device(device).reta[int(_bucket(solution, device, arrays)[0])])
    return cores[0] != cores[1]


OVERRIDES = [  # (nf, strategy, overrides, valid)
    ("fw", "locks", {"flows": {0: ("src_ip",), 1: ("src_ip",)}}, False),
    ("fw", "locks", {"flows": {0: ("src_ip", "dst_ip"), 1: ("src_ip", "dst_ip")}}, True),
    ("fw", "tm", {"flows": {1: ("dst_port",)}}, True),
    ("nat", "auto", {"external": {0: ALL4}}, False),  # pair constraints (no allocation): four fields on one side
    ("nat", "locks", {"external": {1: ALL4}}, False),
    ("pol", "locks", {"hosts": {1: ALL4}}, False),
    ("psd", "auto", {"sources": {1: ALL4}}, False),
    ("cl", "tm", {"flows": {1: ALL4}}, False),
    ("lb", "locks", {"backends": "lock", "flows": {1: ("dst_port",)}}, True),  # decisions and fields together
    ("lb", "locks", {"flows": {1: ("src_ip", "dst_ip")}}, True),
]


@pytest.mark.parametrize("name,strategy,overrides,valid", OVERRIDES)
def test_every_override_is_honoured_and_every_wrong_one_shown(name, strategy, overrides, valid):
    from explorer.rss.key_solver import find_counterexample
    s = pipeline.solve(NF[name], cores=4, strategy=strategy, overrides=overrides, quality=False)
    assert s.valid is valid, s.explanation
    for obj, per_dev in overrides.items():  # honoured: each named device hashes exactly those fields
        if isinstance(per_dev, str):
            assert s.sharding.decision(obj).decision == per_dev and s.sharding.decision(obj).chosen
            continue
        for dev, fields in per_dev.items():
            assert set(s.plan.device(dev).fields) == set(s.nic.select_fields(fields)), (dev, s.plan.device(dev).fields)
    natural = [c for o in s.sharding.objects if o.decision == "shard" for c in o.natural]
    if valid:
        assert not s.explanation and s.counterexample is None
        assert find_counterexample(s.plan, natural) is None  # really correct, checked by Z3 and hashing
    else:
        assert "override" in s.explanation and s.counterexample is not None
        assert _confirmed(s)


def test_cli_locks_override_is_not_ignored():
    r = _nfx("solve", NF["fw"], "--strategy", "locks", "--json", "--override", "flows:0=src_ip",
             "--override", "flows:1=src_ip")
    data = json.loads(r.stdout)
    assert r.returncode == 2 and data["strategy"] == "locks" and not data["valid"]
    assert data["counterexample"]["cores"][0] != data["counterexample"]["cores"][1]


def test_the_analysis_time_is_the_analysis_own_figure_even_when_reused(capsys):
    """Issue 11 item 6: a solve given an earlier Analysis (the CLI, the explorer) reports how long
    that analysis took, not the 0 ms of not redoing it."""
    from explorer.cli import main

    analysis = pipeline.analyze("sample_nfs/fw.c")
    assert analysis.seconds > 0
    solution = pipeline.solve(analysis, cores=2, quality=False)
    assert dict(solution.seconds)["analysis"] == round(analysis.seconds, 4)
    assert main(["solve", "sample_nfs/fw.c", "--cores", "2"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("time: analysis ") and not line.startswith("time: analysis 0 ms")


def test_a_dchain_rejuvenating_the_index_it_just_handed_out_does_not_follow_itself():
    solution = pipeline.solve("tests/nfs/dns_limit.c", cores=4, quality=False)
    chain = next(o for o in solution.sharding.objects if o.name == "chain")
    assert chain.decision == "shard" and chain.follows == ("pairs",) and chain.reason == "follows pairs"
    keys = next(o for o in solution.sharding.objects if o.name == "keys")
    assert keys.follows == ("chain",)
