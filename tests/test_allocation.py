"""Sharding by allocation: finding state keyed by an allocated value, the decision, per-core pools."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import z3

from explorer import pipeline
from dataclasses import replace

from explorer.ir import (
    Access, AllocatedField, Analysis, CallPath, FieldWrite, KeyedBy, Location, Op, StateObject, Verdict)
from explorer.rss.nic import nic_profile
from explorer.rss.toeplitz import toeplitz_hash
from explorer.sharding.allocation import allocated_keys
from explorer.sharding.decisions import shard
from explorer.sharding.pools import owner_digest, owners, pools_of
from explorer.simulate.steering import device_hashes
from explorer.traffic.field_arrays import PacketFields

ROOT = Path(__file__).resolve().parent.parent
NAT = ROOT / "sample_nfs" / "nat.c"
CONE = ROOT / "tests" / "nfs" / "cone_nat.c"
ALL4 = ("src_ip", "dst_ip", "src_port", "dst_port")

SRC, DST = z3.BitVec("p.ipv4.src", 32), z3.BitVec("p.ipv4.dst", 32)
SPORT, DPORT = z3.BitVec("p.l4.sport", 16), z3.BitVec("p.l4.dport", 16)
PROTO = z3.BitVec("p.ipv4.proto", 8)
INDEX = z3.BitVec("chain.index#2", 32)
LOC = Location("t.c", 1, 1)


def access(obj, op, call, key, results=()):
    return Access(obj, op, call, key, str(key), tuple(results), LOC)


def path(index, devices, *accesses, writes=()):
    return CallPath(index, z3.BoolVal(True), "true", tuple(devices), tuple(accesses), tuple(writes), Verdict("drop"))


def analysis(capacity, *paths, objects=(("ports", "map"), ("chain", "dchain"))):
    objs = tuple(StateObject(name, kind, i, capacity) for i, (name, kind) in enumerate(objects))
    return Analysis("t", "t.c", (), 2, objs, tuple(paths), ())


def port_table(lan_port, wan_key, capacity=16384, written=None):
    """A NAT-like NF: the LAN path allocates an index, keys ``ports`` by (remote, ``lan_port``) and
    sends ``written`` (default: ``lan_port``) out in the source port; the WAN path looks ``ports`` up
    by ``wan_key``. With the analysis' record of the allocated field, as the path explorer makes it."""
    written = lan_port if written is None else written
    allocate = access("chain", Op.CREATE, "nf_dchain_allocate_new_index", None, ["chain.ok#2", "chain.index#2"])
    lan = path(0, [0], allocate, access("ports", Op.WRITE, "nf_map_put", z3.Concat(DST, DPORT, lan_port, PROTO)),
               writes=(FieldWrite("p.l4.sport", str(written), written, LOC),))
    lan = CallPath(0, lan.condition, "true", (0,), lan.accesses, lan.writes, Verdict("forward", 1))
    wan = path(1, [1], access("ports", Op.READ, "nf_map_get", wan_key, ["ports.found#1", "ports.value#1"]))
    value = z3.substitute(written, (INDEX, z3.BitVec("chain.index", 32)))
    record = AllocatedField("chain", "p.l4.sport", value, str(value), (0,), (1,), (0,), (), (LOC,), (LOC,),
                            "p.l4.dport", (KeyedBy("ports", (1,), (1,)),), (KeyedBy("ports", (0,), (0,)),))
    return replace(analysis(capacity, lan, wan), allocated=(record,))


NAT_PORT = z3.BitVecVal(1024, 16) + z3.Extract(15, 0, INDEX)


def test_a_nat_port_table_is_keyed_by_the_allocated_port():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    (key,) = allocated_keys(a)
    assert (key.object, key.allocator, key.field, key.devices) == ("ports", "chain", "dst_port", (1,))
    assert (key.offset, key.stride, key.span) == (1024, 1, (8, 23))
    assert [key.value(i) for i in (0, 1, 16383)] == [1024, 1025, 17407]
    assert key.allocating == ((0, 1),) and key.reading == ((1, 0),) and key.emitting == (0,)
    assert key.written == ("t.c:1 writes src_port = 1024 + i",)  # the NF's field and line, the index as i


def test_without_the_analysis_record_nothing_is_allocated():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    assert allocated_keys(replace(a, allocated=())) == ()


@pytest.mark.parametrize("lan_port,wan_port,written,offset,stride", [
    (z3.Extract(15, 0, INDEX), DPORT, None, 0, 1),  # the index itself
    (z3.BitVecVal(5000, 16) + z3.Extract(15, 0, INDEX) * 2, DPORT, None, 5000, 2),  # every other port
    (z3.RotateLeft(NAT_PORT, 8), z3.RotateLeft(DPORT, 8), NAT_PORT, 1024, 1),  # keys in host order on both sides
    (z3.Extract(15, 0, INDEX), DPORT - 7000, z3.BitVecVal(7000, 16) + z3.Extract(15, 0, INDEX), 7000, 1),  # port - base
])
def test_the_field_value_of_each_index_is_checked_against_the_keys(lan_port, wan_port, written, offset, stride):
    (key,) = allocated_keys(port_table(lan_port, z3.Concat(SRC, SPORT, wan_port, PROTO), capacity=1000,
                                       written=written))
    assert (key.offset, key.stride) == (offset, stride)


def test_a_key_that_disagrees_with_the_carried_value_is_not_allocated():
    """The packet carries 1024 + i, but the WAN key reads dst_port - 2048: they name other entries."""
    a = port_table(z3.Extract(15, 0, INDEX), z3.Concat(SRC, SPORT, DPORT - 2048, PROTO), capacity=1000,
                   written=NAT_PORT)
    assert allocated_keys(a) == ()


@pytest.mark.parametrize("lan_port,wan_port,capacity", [
    (NAT_PORT, DPORT ^ SPORT, 1000),  # two fields name it: not one thing to hash
    (NAT_PORT, DPORT & 0xFF00, 1000),  # the field is read only in part: many ports, one entry
    (NAT_PORT, DPORT, 70000),  # more indices than ports: two indices share a port
    (NAT_PORT ^ z3.Extract(15, 0, INDEX) * 3, DPORT, 1000),  # not an affine map of the index
])
def test_no_allocated_key_when_the_field_does_not_name_one_index(lan_port, wan_port, capacity):
    assert allocated_keys(port_table(lan_port, z3.Concat(SRC, SPORT, wan_port, PROTO), capacity=capacity)) == ()


def test_sharding_by_allocation_frees_the_allocating_device():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    maestro = shard(a, nic_profile("e810"), allocation=False)
    assert dict(maestro.hashed) == {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}
    plan = shard(a, nic_profile("e810"))
    ports, chain = plan.decision("ports"), plan.decision("chain")
    assert ports.decision == chain.decision == "shard" and ports.allocation == chain.allocation == "chain"
    assert dict(plan.hashed) == {0: ALL4, 1: ("dst_port",)}
    assert "by allocation" in ports.reason and "dst_port = 1024 + i" in ports.reason
    assert "per-core pools" in chain.reason
    (alloc,) = plan.allocations
    assert (alloc.allocator, alloc.field, alloc.devices, alloc.offset, alloc.objects) == (
        "chain", "dst_port", (1,), 1024, ("ports",))


def test_an_override_of_the_fields_asks_for_pair_constraints():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    plan = shard(a, nic_profile("e810"), {"ports": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}},
                 allocation=True)
    assert plan.allocations == () and plan.decision("ports").allocation == ""
    assert dict(plan.hashed) == {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}


def test_an_override_that_stops_the_reading_device_hashing_the_field_breaks_the_allocation():
    """Overriding another object's fields on the reading device (the explorer's toggles on nat's
    ``internal``, device 1) leaves the allocated port unhashed: a wrong plan with the allocation's
    constraint violated and no pools (computing them failed: 'the device hashes src_ip, not
    dst_port'), so the solve shows two packets instead of an error naming no object."""
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    hosts = path(2, [1], access("hosts", Op.WRITE, "nf_map_put", SRC))
    objects = (("ports", "map"), ("chain", "dchain"), ("hosts", "map"))
    a = replace(analysis(16384, *a.paths, hosts, objects=objects), allocated=a.allocated)
    plan = shard(a, nic_profile("e810"), {"hosts": {1: ("src_ip",)}})
    assert plan.allocations == () and plan.conflicts
    assert any("ports" in c for c in plan.conflicts) and any(v.dev1 == 1 for v in plan.violated)
    # Their reasons described the pools the plan no longer has ("each core allocates only the i whose
    # dst_port it receives", "per-core pools: core c allocates ..."), and the JSON said "by allocation".
    ports, chain = plan.decision("ports"), plan.decision("chain")
    assert ports.reason.startswith("not by allocation: its entries are keyed by an index of chain that packets "
                                   "on device 1 carry back in dst_port, and the override makes device 1 hash src_ip")
    assert chain.reason == ("no per-core pools: device 1 must hash dst_port for them (packets carry chain's indices "
                            "back in it), and the override makes device 1 hash src_ip")
    assert ports.to_dict()["by"] == chain.to_dict()["by"] == "fields"


def test_nat_with_device_1_overridden_off_the_allocated_port_is_wrong_not_an_error():
    s = pipeline.solve(NAT, cores=4, quality=False, overrides={"internal": {0: ("src_ip",), 1: ("src_ip",)}})
    assert not s.valid and s.counterexample is not None and s.pools == ()
    assert "external" in s.explanation and "device 1" in s.explanation and "dst_port" in s.explanation
    assert not any("core c allocates" in o.reason or "allocates only" in o.reason for o in s.sharding.objects)


def test_another_packet_access_keeps_pair_constraints():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    other = path(2, [1], access("ports", Op.WRITE, "nf_map_put", z3.Concat(SRC, SPORT, SPORT, PROTO)))
    assert shard(a, nic_profile("e810")).allocations != ()
    a = replace(a, paths=a.paths + (other,))
    assert shard(a, nic_profile("e810")).allocations == ()


def test_allocation_falls_back_when_the_reading_device_needs_other_fields():
    a = port_table(NAT_PORT, z3.Concat(SRC, SPORT, DPORT, PROTO))
    counters = path(2, [1], access("hosts", Op.WRITE, "nf_map_put", SRC))
    objects = (("ports", "map"), ("chain", "dchain"), ("hosts", "map"))
    a = replace(analysis(16384, *a.paths, counters, objects=objects), allocated=a.allocated)
    plan = shard(a, nic_profile("e810"))
    assert plan.allocations == () and not plan.conflicts
    assert "sharding by allocation conflicts" in plan.unallocated and "hosts needs {src_ip}" in plan.unallocated
    assert dict(plan.hashed)[1] == ("src_ip",)


# ---- the sample NAT and the cone NAT --------------------------------------------------------------

@pytest.fixture(scope="module")
def nat():
    return pipeline.solve(NAT, cores=16, quality=False)


def test_nat_is_sharded_by_the_port_it_allocates(nat):
    assert nat.strategy == "shared-nothing"
    assert nat.sharding.decision("external").allocation == "chain"
    assert {d.device: d.fields for d in nat.plan.devices} == {0: ALL4, 1: ("dst_port",)}
    data = nat.to_dict()
    for words in ("external", "chain", "dst_port = 1024 + i", "device 1 hashes dst_port only", "a pool per core"):
        assert words in data["allocation"]
    (pools,) = nat.pools
    assert pools.sizes == (1024,) * 16 and not pools.uneven


def test_the_remote_endpoint_override_is_maestros_sharding():
    s = pipeline.solve(NAT, cores=16, quality=False,
                       overrides={"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}})
    assert s.valid and s.strategy == "shared-nothing" and s.pools == ()
    assert {d.device: d.fields for d in s.plan.devices} == {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}


def test_cone_nat_is_locked_by_pair_constraints_and_sharded_by_allocation():
    locked = pipeline.solve(CONE, cores=4, quality=False, allocation=False)
    assert locked.strategy == "locks" and locked.sharding.decision("ports").decision == "lock"
    s = pipeline.solve(CONE, cores=4, quality=False)
    assert s.strategy == "shared-nothing"
    for name in ("ports", "mappings"):
        assert s.sharding.decision(name).allocation == "ports"
    assert "pair constraints alone would lock it" in s.sharding.decision("mappings").reason
    (alloc,) = s.sharding.allocations
    assert (alloc.field, alloc.offset, alloc.stride, alloc.capacity) == ("dst_port", 20000, 1, 4096)
    assert s.pools[0].sizes == (1024,) * 4


# ---- pools -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("nic,cores", [("e810", 16), ("e810", 3), ("cx5", 4), ("82599", 8)])
def test_every_reply_to_a_pool_port_reaches_the_pools_core(nic, cores):
    """Whatever else a reply carries (other fields hashed by NICs that cannot select), the NIC sends
    a packet to port 1024 + i to the core that owns i."""
    s = pipeline.solve(NAT, nic=nic, cores=cores, quality=False)
    (alloc,) = s.sharding.allocations
    d = s.plan.device(1)
    owner = owners(alloc.capacity, alloc.offset, alloc.stride, alloc.field, d.key, d.fields, d.reta)
    rng = np.random.default_rng(7)
    n = 4000
    index = rng.integers(0, alloc.capacity, n)
    fields = _tcp(src_ip=rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
                  dst_ip=rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
                  src_port=rng.integers(0, 1 << 16, n).astype(np.uint16), dst_port=(1024 + index).astype(np.uint16))
    cores_hit = np.asarray(d.reta)[device_hashes(d, fields, s.plan.nic) & np.uint32(len(d.reta) - 1)]
    assert np.array_equal(cores_hit, owner[index])
    assert sum(s.pools[0].sizes) == alloc.capacity and len(s.pools[0].sizes) == cores


def _tcp(**addresses):
    """Unfragmented IPv4 TCP packets with these addresses and ports."""
    n = len(addresses["src_ip"])
    values = {"length": np.full(n, 64, np.uint32), "ether_type": np.full(n, 0x0800, np.uint16),
              "eth_src": np.zeros(n, np.uint64), "eth_dst": np.zeros(n, np.uint64), "ihl": np.full(n, 5, np.uint8),
              "proto": np.full(n, 6, np.uint8), "frag": np.zeros(n, bool)}
    for name in PacketFields.__dataclass_fields__:
        if name.startswith("is_"):
            values[name] = np.ones(n, dtype=bool)
        elif name not in values and name not in addresses:
            values[name] = np.zeros(n, dtype=np.uint32)
    return PacketFields(**values, **addresses)


def test_pool_owners_known_answer():
    """Owners against the bit-by-bit reference Toeplitz, and the digest against a plain loop."""
    key = bytes(range(1, 53))
    reta = [i % 5 for i in range(512)]
    owner = owners(300, 1024, 1, "dst_port", key, ("dst_port",), reta)
    for i in (0, 1, 77, 299):
        expected = reta[toeplitz_hash(key, (1024 + i).to_bytes(2, "big")) & 511]
        assert owner[i] == expected
    mask = (1 << 64) - 1
    total = 0
    for i, core in enumerate(owner.tolist()):
        x = (i << 16) | core
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        total = (total + (x ^ (x >> 31))) & mask
    assert owner_digest(owner) == total


def test_a_rebalanced_reta_gives_new_pools(nat):
    (alloc,) = nat.sharding.allocations
    moved = list(nat.plan.device(1).reta)
    moved[:64] = [0] * 64  # core 0 takes over 64 entries
    before, after = nat.pools[0], pools_of(alloc, nat.plan, reta=moved)
    assert after.sizes[0] > before.sizes[0] and sum(after.sizes) == sum(before.sizes)
    assert after.digest != before.digest and after.uneven


def test_explain_says_sharded_by_allocation(nat):
    objects = pipeline.explain(nat)["objects"]
    assert "sharded by allocation" in objects["external"]["summary"]
    assert "dst_port = 1024 + i" in objects["external"]["summary"]
    assert "pool per core" in objects["chain"]["summary"]
