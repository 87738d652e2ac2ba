"""Sharding decisions and key problems from hand-built analyses (independent of the path explorer)."""
from __future__ import annotations

import z3

from explorer.ir import Access, Analysis, CallPath, Location, Op, StateObject, Verdict
from explorer.rss.nic import nic_profile
from explorer.sharding.decisions import shard

SRC, DST = z3.BitVec("p.ipv4.src", 32), z3.BitVec("p.ipv4.dst", 32)
SPORT, DPORT = z3.BitVec("p.l4.sport", 16), z3.BitVec("p.l4.dport", 16)
MAC = z3.BitVec("p.ether.src", 48)
LOC = Location("t.c", 1, 1)


def access(obj, op, call, key, results=()):
    return Access(obj, op, call, key, str(key), tuple(results), LOC)


def path(index, devices, *accesses):
    return CallPath(index, z3.BoolVal(True), "true", tuple(devices), tuple(accesses), (), Verdict("drop"))


def analysis(objects, *paths):
    objs = tuple(StateObject(name, kind, i, 1024) for i, (name, kind) in enumerate(objects))
    return Analysis("t", "t.c", (), 2, objs, tuple(paths), ())


def five_tuple(s, d, sp, dp):
    return z3.Concat(s, d, sp, dp)


def fw_like():
    lan_key = five_tuple(SRC, DST, SPORT, DPORT)
    wan_key = five_tuple(DST, SRC, DPORT, SPORT)
    value = z3.BitVec("flows.value#1", 32)
    return analysis(
        [("flows", "map"), ("chain", "dchain")],
        path(0, [0], access("flows", Op.READ, "nf_map_get", lan_key, ["flows.found#1", "flows.value#1"]),
             access("chain", Op.UPDATE, "nf_dchain_rejuvenate_index", value, ["chain.ok#2"])),
        path(1, [0], access("flows", Op.READ, "nf_map_get", lan_key, ["flows.found#1", "flows.value#1"]),
             access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#2", "chain.index#2"]),
             access("flows", Op.WRITE, "nf_map_put", lan_key)),
        path(2, [1], access("flows", Op.READ, "nf_map_get", wan_key, ["flows.found#1", "flows.value#1"]),
             access("chain", Op.UPDATE, "nf_dchain_rejuvenate_index", value, ["chain.ok#2"])),
    )


def test_firewall_is_sharded_on_the_five_tuple_both_ways():
    plan = shard(fw_like(), nic_profile("e810"))
    flows, chain = plan.decision("flows"), plan.decision("chain")
    assert flows.decision == "shard" and chain.decision == "shard"
    assert dict(flows.fields) == {0: ("src_ip", "dst_ip", "src_port", "dst_port"),
                                  1: ("src_ip", "dst_ip", "src_port", "dst_port")}
    assert "follows flows" in chain.reason
    assert plan.shared_nothing
    cross = [c for c in plan.constraints if (c.dev1, c.dev2) == (0, 1)]
    assert cross and (("src_ip", 0), ("dst_ip", 0)) in cross[0].equal
    assert (("src_port", 15), ("dst_port", 15)) in cross[0].equal


def test_per_host_and_per_host_port_state_intersect_to_the_host():
    counters = SRC
    ports = z3.Concat(SRC, DPORT)
    a = analysis([("hosts", "map"), ("ports", "map")],
                 path(0, [1], access("hosts", Op.WRITE, "nf_map_put", counters),
                      access("ports", Op.WRITE, "nf_map_put", ports)))
    plan = shard(a, nic_profile("e810"))
    assert dict(plan.hashed)[1] == ("src_ip",)
    assert dict(plan.hashed)[0] == ("src_ip", "dst_ip", "src_port", "dst_port")  # nothing constrains the LAN
    assert dict(shard(a, nic_profile("82599")).hashed)[1] == ("src_ip", "dst_ip", "src_port", "dst_port")


def test_mac_keyed_table_must_be_locked():
    a = analysis([("macs", "map")], path(0, [0, 1], access("macs", Op.WRITE, "nf_map_put", MAC)))
    plan = shard(a, nic_profile("e810"))
    assert plan.decision("macs").decision == "lock"
    assert "p.ether.src" in plan.decision("macs").reason and not plan.shared_nothing


def test_global_index_and_read_only_objects():
    backend = z3.BitVec("cht.backend#1", 32)
    a = analysis([("cht", "cht"), ("backends", "dchain")],
                 path(0, [1], access("cht", Op.READ, "nf_cht_find_backend", z3.Extract(31, 0, SRC),
                                     ["cht.found#1", "cht.backend#1"]),
                      access("backends", Op.VERIFY, "nf_dchain_is_index_allocated", backend)),
                 path(1, [0], access("backends", Op.UPDATE, "nf_dchain_rejuvenate_index", SRC)))
    plan = shard(a, nic_profile("e810"))
    assert plan.decision("cht").decision == "replicate"
    assert plan.decision("backends").decision == "lock"
    assert "depends on no packet field" in plan.decision("backends").reason


def test_conflicting_fields_on_one_device_are_explained():
    a = analysis([("by_src", "map"), ("by_dst", "map")],
                 path(0, [1], access("by_src", Op.WRITE, "nf_map_put", SRC),
                      access("by_dst", Op.WRITE, "nf_map_put", DST)))
    plan = shard(a, nic_profile("e810"))
    assert not plan.shared_nothing
    assert "by_src needs {src_ip}" in plan.conflicts[0] and "by_dst needs {dst_ip}" in plan.conflicts[0]


def test_override_that_breaks_the_firewall_is_a_conflict():
    plan = shard(fw_like(), nic_profile("e810"), {"flows": {0: ("src_ip",), 1: ("src_ip",)}})
    assert plan.conflicts and plan.violated
    assert plan.decision("flows").overridden
