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
    assert "is keyed by src_mac" in plan.decision("macs").reason and not plan.shared_nothing


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
    reason = plan.decision("backends").reason
    assert "uses cht's backend" in reason and "as its key, which no packet field decides" in reason, reason
    assert "#" not in reason, reason  # the engine's symbol cht.backend#1 stays out of the words


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
    # the reason names what the packets agree on, and what the override hashes instead (it said "no field")
    assert plan.decision("flows").reason.endswith("(overridden to hash device 0: src_ip; device 1: src_ip)")
    assert "agree on device 0: src_ip, dst_ip, src_port, dst_port" in plan.decision("flows").reason


# ---- the replicate decision (issue 15) -----------------------------------------------------------

UDP = z3.BitVec("p.ipv4.proto", 8)


def guarded(index, devices, condition, *accesses):
    return CallPath(index, condition, str(condition), tuple(devices), tuple(accesses), (), Verdict("drop"))


def control_path(index, *accesses):
    """A LAN path of UDP packets to port 7777: a narrow class of control packets."""
    return guarded(index, [0], z3.And(UDP == 17, DPORT == 7777), *accesses)


def global_table(writer_first=None, writer_path=None, reader_extra=()):
    """A table every packet reads at a constant index and a flow table sharded on the 5-tuple."""
    key = five_tuple(SRC, DST, SPORT, DPORT)
    reader = path(0, [1], access("table", Op.READ, "nf_vector_borrow", z3.BitVecVal(0, 32), ["table.cell#1"]),
                  *reader_extra, access("flows", Op.WRITE, "nf_map_put", key))
    writer = writer_path or control_path(1, *(writer_first or ()),
                                         access("table", Op.WRITE, "nf_vector_return", z3.BitVecVal(0, 32)))
    return analysis([("table", "vector"), ("flows", "map")], reader, writer)


def test_a_table_only_control_packets_write_is_replicated():
    plan = shard(global_table(), nic_profile("e810"))
    table = plan.decision("table")
    assert table.decision == "replicate" and table.broadcast and table.writers == (1,)
    assert "p.l4.dport == 7777" in table.write_class and "p.ipv4.proto == 17 (UDP)" in table.write_class
    assert plan.shared_nothing and plan.decision("flows").decision == "shard"
    assert [o.name for o in plan.replicated] == ["table"]


def test_a_table_any_packet_writes_stays_locked_with_the_reason():
    writer = path(1, [0], access("table", Op.WRITE, "nf_vector_return", z3.BitVecVal(0, 32)))
    plan = shard(global_table(writer_path=writer), nic_profile("e810"))
    table = plan.decision("table")
    assert table.decision == "lock" and not plan.shared_nothing
    assert "not replicated: table is written on paths whose packets no header field narrows" in table.reason


def test_a_writer_that_changes_sharded_state_first_cannot_rerun():
    first = [access("flows", Op.WRITE, "nf_map_put", five_tuple(SRC, DST, SPORT, DPORT))]
    plan = shard(global_table(writer_first=first), nic_profile("e810"))
    table = plan.decision("table")
    assert table.decision == "lock" and "rerun as a writer would repeat that change" in table.reason
    # Expiry before the write is fine: at the same `now` it finds nothing left the second time
    # (the readers expire flows before they use it too, or flows could not be sharded at all).
    expiry = [Access("flows", Op.EXPIRE, "nf_expire_items", None, "", (), LOC, ("flows",))]
    assert shard(global_table(writer_first=expiry, reader_extra=expiry), nic_profile("e810")).decision("table").broadcast


def test_a_replicated_object_may_not_be_keyed_by_a_per_core_index():
    writer = control_path(1, access("flows", Op.READ, "nf_map_get", five_tuple(SRC, DST, SPORT, DPORT),
                                    ["flows.found#1", "flows.value#1"]),
                          access("table", Op.WRITE, "nf_vector_return", z3.BitVec("flows.value#1", 32)))
    key = five_tuple(SRC, DST, SPORT, DPORT)
    reader = path(0, [1], access("table", Op.READ, "nf_vector_borrow", z3.BitVecVal(0, 32), ["table.cell#2"]),
                  access("flows", Op.READ, "nf_map_get", key, ["flows.found#3", "flows.value#3"]),
                  access("chain", Op.UPDATE, "nf_dchain_rejuvenate_index", z3.BitVec("flows.value#3", 32)))
    creator = path(2, [1], access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#4", "chain.index#4"]),
                   access("flows", Op.WRITE, "nf_map_put", key))
    a = analysis([("table", "vector"), ("flows", "map"), ("chain", "dchain")], reader, writer, creator)
    plan = shard(a, nic_profile("e810"))
    assert plan.decision("chain").decision == "shard"
    table = plan.decision("table")
    assert table.decision == "lock" and "allocates per core" in table.reason


def test_objects_one_expiry_changes_are_replicated_together():
    expire = Access("chain", Op.EXPIRE, "nf_expire_items", None, "", (), LOC, ("keys", "hosts"))
    writer = control_path(1, expire, access("hosts", Op.WRITE, "nf_map_put", SRC),
                          access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#1", "chain.index#1"]))
    reader = path(0, [1], expire, access("chain", Op.VERIFY, "nf_dchain_is_index_allocated", z3.BitVecVal(3, 32)))
    a = analysis([("hosts", "map"), ("keys", "vector"), ("chain", "dchain")], reader, writer)
    plan = shard(a, nic_profile("e810"))
    assert {o.name for o in plan.replicated} == {"hosts", "keys", "chain"}
    assert "goes with chain" in plan.decision("hosts").reason  # hosts alone could be sharded by source


def _flows_with_slots(expired: bool, keeper: str):
    """fw_like plus a per-host vector ``slots`` that keeps the flow's chain index; a later packet
    looks the kept index up in the chain. ``keeper``: which object the looked-up index comes from."""
    lan_key = five_tuple(SRC, DST, SPORT, DPORT)
    value = z3.BitVec("flows.value#1", 32)
    kept = z3.BitVec("slots.cell#2", 32) if keeper == "slots" else value
    expire = (Access("chain", Op.EXPIRE, "nf_expire_items", None, "", ("chain.count#0",), LOC, ("keys", "flows")),)
    return analysis(
        [("flows", "map"), ("keys", "vector"), ("chain", "dchain"), ("slots", "vector")],
        path(0, [0], *(expire if expired else ()),
             access("flows", Op.READ, "nf_map_get", lan_key, ["flows.found#1", "flows.value#1"]),
             access("slots", Op.READ, "nf_vector_borrow", SRC, ["slots.cell#2"]),
             access("chain", Op.VERIFY, "nf_dchain_is_index_allocated", kept, ["chain.ok#3"])),
        path(1, [0], *(expire if expired else ()),
             access("flows", Op.READ, "nf_map_get", lan_key, ["flows.found#1", "flows.value#1"]),
             access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#2", "chain.index#2"]),
             access("flows", Op.WRITE, "nf_map_put", lan_key),
             access("slots", Op.WRITE, "nf_vector_return", SRC)),
    )


def test_a_dchain_whose_indices_another_object_keeps_past_expiry_is_locked():
    # slots (keyed by host) keeps flow indices that the chain's expiry (keys, flows) never clears:
    # a stale index may name another flow later, and which one depends on the order of hand-out
    plan = shard(_flows_with_slots(expired=True, keeper="slots"), nic_profile("e810"))
    chain = plan.decision("chain")
    assert chain.decision == "lock" and "slots keeps indices of chain" in chain.reason
    assert "(t.c:1 `nf_dchain_is_index_allocated` looks one up)" in chain.reason
    # no release, no dangling index; and an index kept by the expiry's own map is cleared with it
    assert shard(_flows_with_slots(expired=False, keeper="slots"), nic_profile("e810")).decision("chain").decision \
        == "shard"
    assert shard(_flows_with_slots(expired=True, keeper="flows"), nic_profile("e810")).decision("chain").decision \
        == "shard"


def test_objects_a_path_uses_before_expiring_them_are_not_sharded():
    """The flow table is expired on LAN paths only; a WAN path reads it without expiring first:
    sharded, a core would expire only on its own LAN packets, so the WAN path could see an entry
    the sequential NF expired on another core's packet. Locked, with the path that does it; when
    every path expires first, the same objects shard."""
    lan_key, wan_key = five_tuple(SRC, DST, SPORT, DPORT), five_tuple(DST, SRC, DPORT, SPORT)
    expire = Access("chain", Op.EXPIRE, "nf_expire_items", None, "", (), LOC, ("flows",))

    def fw(wan_expires: bool):
        lan = path(0, [0], expire, access("flows", Op.READ, "nf_map_get", lan_key, ["flows.found#1", "flows.value#1"]),
                   access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#2", "chain.index#2"]),
                   access("flows", Op.WRITE, "nf_map_put", lan_key))
        wan = path(1, [1], *((expire,) if wan_expires else ()),
                   access("flows", Op.READ, "nf_map_get", wan_key, ["flows.found#3", "flows.value#3"]))
        return analysis([("flows", "map"), ("chain", "dchain")], lan, wan)

    plan = shard(fw(wan_expires=False), nic_profile("e810"))
    assert {o.name: o.decision for o in plan.objects} == {"flows": "lock", "chain": "lock"}
    assert plan.decision("flows").reason.startswith("t.c:1 `nf_map_get` uses flows without expiring chain first")
    plan = shard(fw(wan_expires=True), nic_profile("e810"))
    assert {o.name: o.decision for o in plan.objects} == {"flows": "shard", "chain": "shard"}


def test_an_object_read_only_through_another_call_is_used_not_unused():
    """nf_cht_find_backend checks the dchain of live backends on every new flow (a related object of
    the cht's access): that dchain is read by packets, not "not used by nf_process"."""
    key = five_tuple(SRC, DST, SPORT, DPORT)
    find = Access("cht", Op.READ, "nf_cht_find_backend", key, "", ("cht.found#1", "cht.backend#1"), LOC, ("active",))
    plan = shard(analysis([("cht", "cht"), ("active", "dchain")], path(0, [0], find)), nic_profile("e810"))
    assert plan.decision("active").decision == "replicate"
    assert plan.decision("active").reason.startswith("packets only read it")


def test_a_constant_key_says_the_packets_of_its_path_share_the_entry():
    """acl_count's hit counter of rule 0 is touched only by packets that match rule 0 (the path
    fixes the index): the reason said 'every packet may touch that entry', which reads as false
    next to the path's condition; what makes it unshardable is that all of that path's packets,
    whatever their flow, share the one entry."""
    from explorer.symbex import analyze

    from pathlib import Path

    plan = shard(analyze(Path(__file__).resolve().parent / "nfs" / "acl_count.c"), nic_profile("e810"))
    reason = plan.decision("hits").reason
    assert "depends on no packet field: every packet that takes that path touches that one entry" in reason
    assert "every packet may touch" not in reason


def test_an_entry_the_device_picks_is_explained_by_the_device():
    """device_counters writes the cell of its input device: the reason said the index 'depends on
    no packet field', as if one constant cell were shared, and did not say that the device is why
    (each device's packets share its cell, and RSS spreads them over every core)."""
    from explorer.symbex import analyze

    from pathlib import Path

    analysis = analyze(Path(__file__).resolve().parent / "nfs" / "device_counters.c")
    assert all(a.by_device for p in analysis.paths for a in p.accesses)
    decision = shard(analysis, nic_profile("e810")).decision("per_port")
    assert decision.decision == "lock"
    assert decision.reason.split("device_counters.c:31 `nf_vector_borrow(per_port, device)` ", 1)[1].startswith(
        "uses key 0, which depends on the input device "
        "(device 0 on that path) and on no packet field: every packet of device 0 that takes that path touches "
        "that one entry, whatever its flow, and RSS spreads each device's packets over every core")


def test_an_entry_picked_by_a_value_read_at_the_devices_index_is_explained_by_the_device():
    """zone_counters counts frames per zone, the zone read from a per-port configuration table at
    the input device's index: its key is a table value, not the device itself, and the reason said
    it 'depends on no packet field' without naming the device or the table."""
    from pathlib import Path

    from explorer.sharding.constraints import keyed_accesses, written_objects
    from explorer.symbex import analyze

    analysis = analyze(Path(__file__).resolve().parent / "nfs" / "zone_counters.c")
    keyed = [k for k in keyed_accesses(analysis, "frames", written_objects(analysis)) if k.access.key is not None]
    assert keyed and all(k.kind == "global" and k.device_via == ("zone_of",) and not k.access.by_device for k in keyed)
    plan = shard(analysis, nic_profile("e810"))
    assert plan.decision("zone_of").decision == "replicate"
    reason = plan.decision("frames").reason
    assert plan.decision("frames").decision == "lock"
    assert reason.split("zone_counters.c:51 `nf_vector_borrow(frames, zone)` ", 1)[1].startswith(
        "uses a value computed from zone_of's cell (zone_counters.c:48) as its key, which depends on the input device "
        "(device 0 on that path), through zone_of, "
        "which the NF reads at the device's index and every core keeps a copy of (packets only read it), and on no "
        "packet field: every packet of device 0 that takes that path touches that one entry")
