"""The RETA deals cores out over the index directions that follow the bits real traffic varies
(``explorer/rss/reta.py``): a key that keeps only a field's top bits gets its blocks dealt in turn,
on every device, and full-rank keys keep the round robin they always had."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from explorer.errors import ConfigError
from explorer.rss.key_solver import plan_with_keys, solve_keys
from explorer.rss.nic import nic_profile
from explorer.rss.problem import KeyProblem, PairConstraint
from explorer.rss.quality import reta_rows
from explorer.rss.reta import deal
from explorer.wire import RSS_NAMES

E810 = nic_profile("e810")


def _index(rows: list[int], value: int) -> int:
    """The RETA index of an input (as an integer whose most significant bit is input bit 0)."""
    return sum(((row & value).bit_count() & 1) << j for j, row in enumerate(rows))


def _same(dev1: int, field1: str, dev2: int, field2: str, bits, name: str = "blocks") -> PairConstraint:
    return PairConstraint(dev1, dev2, tuple(((field1, i), (field2, i)) for i in bits), f"{name}: test")


@pytest.mark.parametrize("cores", [2, 3, 4, 16])
@pytest.mark.parametrize("reta_size", [128, 512])
def test_full_rank_keys_keep_the_round_robin(cores, reta_size):
    rng = random.Random(cores * reta_size)
    for _ in range(20):
        planes = [(rng.getrandbits(E810.key_bytes * 8).to_bytes(E810.key_bytes, "big"), RSS_NAMES) for _ in range(2)]
        assert deal(planes, reta_size, cores) == tuple(i % cores for i in range(reta_size))


@pytest.mark.parametrize("shift", [8, 10, 13])
@pytest.mark.parametrize("cores", [2, 3, 4, 16])
def test_a_port_s_top_bits_deal_its_blocks_in_turn(shift, cores):
    """``nf_ntohs(port) >> shift`` on both devices: Toeplitz gives the port's most significant bit to
    the lowest live index bit, so round robin split on it and every port below 32768 (and every
    ephemeral one) shared a core. Now block b of either device goes to core b % cores."""
    kept = range(16 - shift)
    problem = KeyProblem(devices=(0, 1), constraints=(_same(0, "dst_port", 1, "src_port", kept),),
                         hashed=((0, ("dst_port",)), (1, ("src_port",))), nic=E810, cores=cores)
    plan = solve_keys(problem)
    assert plan.device(0).reta == plan.device(1).reta
    for d in plan.devices:
        rows = reta_rows(d.key, d.fields, E810.reta_size)
        assert all(d.reta[_index(rows, port)] == (port >> shift) % cores for port in range(65536))


def test_an_address_s_top_bits_deal_its_prefixes_in_turn():
    """The same for the /24 of an address (``tests/nfs/subnet_quota.c``): every four aligned /24s
    take the four cores (in an order the higher bits, which the 9-bit index cannot all follow, fix)."""
    problem = KeyProblem(devices=(0,), constraints=(_same(0, "src_ip", 0, "src_ip", range(24), "subnets"),),
                         hashed=((0, ("src_ip",)),), nic=E810, cores=4)
    d = solve_keys(problem).device(0)
    rows = reta_rows(d.key, d.fields, E810.reta_size)
    for base in (10 << 24, (172 << 24) | (16 << 16), (192 << 24) | (168 << 16)):
        cores = [d.reta[_index(rows, base + (k << 8) + 77)] for k in range(256)]
        assert all(set(cores[k:k + 4]) == {0, 1, 2, 3} for k in range(0, 256, 4))


@pytest.mark.parametrize("cores", [2, 4])
def test_a_device_whose_low_index_bits_are_dead_spreads_beside_one_whose_are_not(cores):
    """Device 0 keeps a port's top byte (its index's lowest bit is 0 for every packet), device 1 a
    whole address (every index bit live); nothing relates them, but they read one RETA. Only the low
    bits that NO device sets were skipped, so round robin split on a bit constant on device 0: every
    device-0 packet on core 0 of 2 (on 4, on cores 0 and 2)."""
    problem = KeyProblem(devices=(0, 1),
                         constraints=(_same(0, "dst_port", 0, "dst_port", range(8)),
                                      _same(1, "src_ip", 1, "src_ip", range(32), "hosts")),
                         hashed=((0, ("dst_port",)), (1, ("src_ip",))), nic=E810, cores=cores)
    plan = solve_keys(problem)
    ports = plan.device(0)
    rows = reta_rows(ports.key, ports.fields, E810.reta_size)
    assert rows[0] == 0  # why it matters
    assert Counter(ports.reta[_index(rows, p)] for p in range(65536)) == {c: 65536 // cores for c in range(cores)}
    hosts = plan.device(1)
    rows = reta_rows(hosts.key, hosts.fields, E810.reta_size)
    rng = random.Random(1)
    load = Counter(hosts.reta[_index(rows, rng.getrandbits(32))] for _ in range(20000))
    assert sorted(load) == list(range(cores)) and max(load.values()) < 1.1 * 20000 / cores


def test_the_table_is_deterministic_and_one_core_takes_everything():
    problem = KeyProblem(devices=(0, 1), constraints=(_same(0, "dst_port", 1, "src_port", range(8)),),
                         hashed=((0, ("dst_port",)), (1, ("src_port",))), nic=E810, cores=3)
    assert solve_keys(problem).device(0).reta == solve_keys(problem).device(0).reta
    planes = [(d.key, d.fields) for d in solve_keys(problem).devices]
    assert set(deal(planes, E810.reta_size, 1)) == {0}
    assert deal([], E810.reta_size, 4) == tuple(i % 4 for i in range(E810.reta_size))


@pytest.mark.parametrize("cores", [2, 3, 4])
def test_user_keys_get_the_table_dealt_for_them(cores):
    """Keys the user gives (``nfx simulate --key``) kept the round robin (every device's key given)
    or the table dealt for the solver's keys (some given): a top-byte key then split the cores on an
    index bit its ports hardly set, which put bidir on one core of 2 for port_blocks. The RETA is now
    dealt for the keys the plan ends up with, unless the user fixes the RETA too."""
    problem = KeyProblem(devices=(0, 1), constraints=(_same(0, "dst_port", 1, "src_port", range(8)),),
                         hashed=((0, ("dst_port",)), (1, ("src_port",))), nic=E810, cores=cores)
    other = solve_keys(replace(problem, seed=1))
    keys = {d.device: d.key for d in other.devices}
    for given in (plan_with_keys(problem, keys), plan_with_keys(solve_keys(problem), keys),
                  plan_with_keys(solve_keys(problem), {0: keys[0].hex(), 1: keys[1].hex()})):
        assert [d.key for d in given.devices] == [d.key for d in other.devices]
        assert [d.reta for d in given.devices] == [d.reta for d in other.devices]
        for d in given.devices:
            rows = reta_rows(d.key, d.fields, E810.reta_size)
            assert all(d.reta[_index(rows, port)] == (port >> 8) % cores for port in range(0, 65536, 97))
    round_robin = tuple(i % cores for i in range(E810.reta_size))
    for base in (problem, solve_keys(problem)):
        assert {d.reta for d in plan_with_keys(base, keys, reta=round_robin).devices} == {round_robin}
    with pytest.raises(ConfigError, match="the RETA has 4 entries, e810 .* has 512"):
        plan_with_keys(problem, keys, reta=(0, 1, 0, 1))
    with pytest.raises(ConfigError, match=f"the RETA names core {cores}, which is not one of the {cores} cores"):
        plan_with_keys(problem, keys, reta=(cores,) * E810.reta_size)
