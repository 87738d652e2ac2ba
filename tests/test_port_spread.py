"""State keyed by part of a port spreads over the cores, and what cannot spread is said.

``tests/nfs/port_buckets.c`` keys on a client port's top six bits (``>> 10``), ``port_stripes.c`` on
its low six (``% 64``, ``& 63``), ``port_mask_hosts.c`` on a client port's top byte (``& 0xff00``)
beside a per-host table on the other device, ``port_blocks.c`` on a server port's top byte. Toeplitz
gives a field's top bits to the RETA index's low bits, and a round-robin RETA split the cores there:
every ephemeral port (32768-60999) has the top bit set, so port_buckets put all its traffic on one
core, port_blocks all of bidir on one of 2, and port_mask_hosts every LAN packet on core 0 of 2 (its
WAN device set the index bit that its LAN device never did). ``explorer/rss/reta.py`` deals cores
out by block; ``explorer/rss/spread.py`` names what no RETA can spread.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from explorer import pipeline
from explorer.cli import main

ROOT = Path(__file__).resolve().parent.parent
NFS = ROOT / "tests" / "nfs"
SPREAD = 1.15  # max/mean per-core packets that bidir and uniform traffic must stay within
PACKETS, FLOWS = 40_000, 4_000


@functools.lru_cache(maxsize=None)
def _solution(nf: str, cores: int):
    return pipeline.solve(NFS / f"{nf}.c", cores=cores, quality=False)


def _cli(capsys, *argv) -> tuple[int, str]:
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out


@pytest.mark.parametrize("traffic", ["bidir", "uniform"])
@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf", ["port_buckets", "port_stripes", "port_mask_hosts"])
def test_partial_port_keys_spread_client_traffic(nf, cores, traffic):
    """Before: port_buckets 2.0 (2 cores) and 2.3 (4), port_mask_hosts 1.5 and 2.5; port_stripes,
    whose low bits already steered, was even and stays so."""
    solution = _solution(nf, cores)
    assert solution.strategy == "shared-nothing"
    report = pipeline.simulate(solution, traffic, packets=PACKETS, flows=FLOWS)
    assert report.violation_count == 0
    assert report.imbalance <= SPREAD, report.per_core
    assert report.warnings == ()


def test_port_blocks_deal_server_port_blocks_in_turn():
    """The reproducer: bidir put 100000 packets on one core of 2. Block b (the port's top byte) now
    goes to core b % cores on both devices; bidir's server ports are 443 (block 1) half the time and
    80, 53, 22, 25, 123 (block 0) most of the rest, so 2 cores split about 62/38."""
    from explorer.rss.quality import reta_rows

    for cores in (2, 4):
        plan = _solution("port_blocks", cores).plan
        for d in plan.devices:
            rows = reta_rows(d.key, d.fields, len(d.reta))
            index = [sum(((row & port).bit_count() & 1) << j for j, row in enumerate(rows)) for port in range(65536)]
            assert all(d.reta[index[port]] == (port >> 8) % cores for port in range(65536))
    report = pipeline.simulate(_solution("port_blocks", 2), "bidir", packets=PACKETS, flows=FLOWS)
    assert min(report.per_core) > 0.35 * PACKETS and report.violation_count == 0


def test_an_address_prefix_key_spreads_one_prefix_of_clients():
    """subnet_quota keys LAN frames by the top 24 bits of src_ip, the WAN hashes the whole 4-tuple:
    the LAN's index had a dead lowest bit the WAN's did not, and prefix traffic (clients in one /16)
    put every LAN packet on one core of 2 (1.5)."""
    report = pipeline.simulate(pipeline.solve(NFS / "subnet_quota.c", cores=2, quality=False), "prefix",
                               packets=PACKETS, flows=FLOWS)
    assert report.imbalance <= SPREAD, report.per_core


def test_solve_warns_where_typical_ports_share_a_bucket(capsys):
    """port_buckets: every port below 1024 is in bucket 0, on either device."""
    warnings = _solution("port_buckets", 2).warnings
    assert len(warnings) == 2
    assert warnings[0].startswith("device 0: buckets keeps only src_port bits 0-5 (bit 0 the most significant)")
    assert "the 1024 src_port values 0-1023 (well-known services) share 1 RETA entry" in warnings[0]
    assert "at most 1 of 2 cores" in warnings[0]
    assert warnings[1].startswith("device 1: buckets keeps only dst_port bits 0-5")
    assert _solution("port_stripes", 2).warnings == ()
    assert _solution("port_blocks", 4).warnings == ()  # blocks 0-3 hold the well-known ports: 4 cores
    assert "share 4 RETA entries" in _solution("port_blocks", 16).warnings[0]
    status, out = _cli(capsys, "solve", NFS / "port_buckets.c", "--cores", "4")
    assert status == 0
    assert "\nwarning: device 0: buckets keeps only src_port bits 0-5" in out
    status, out = _cli(capsys, "solve", NFS / "port_buckets.c", "--cores", "4", "--json")
    assert len(json.loads(out)["warnings"]) == 2


def test_simulate_warns_when_a_trace_shares_the_kept_bits(capsys):
    """heartbeat traffic sends every LAN frame to one port (9999): port_blocks' LAN key keeps only its
    top byte, so all of them share one RETA entry and one core, which the report says."""
    report = pipeline.simulate(_solution("port_blocks", 2), "heartbeat", packets=PACKETS, flows=FLOWS)
    reach = {dev: (packets, entries) for dev, packets, entries in report.reach}
    assert reach[0][1] == 1 and reach[1][1] > 2
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(f"device 0: its {reach[0][0]} packets in the trace reach only 1 RETA entry, "
                                         "hence at most 1 of 2 cores whatever the RETA: blocks keeps only dst_port "
                                         "bits 0-7 (bit 0 the most significant)")
    status, out = _cli(capsys, "simulate", NFS / "port_blocks.c", "--traffic", "heartbeat", "--cores", "2")
    assert status == 0 and "\nwarning: device 0: its " in out and "blocks keeps only dst_port bits 0-7" in out
    status, out = _cli(capsys, "simulate", NFS / "port_blocks.c", "--traffic", "bidir", "--cores", "2", "--json")
    data = json.loads(out)
    assert data["warnings"] == [] and data["reach"]["0"]["reta_entries"] > 2


@pytest.mark.dpdk
@pytest.mark.slow
@pytest.mark.parametrize("cores", [2, 4])
@pytest.mark.parametrize("nf", ["port_buckets", "port_stripes", "port_mask_hosts"])
def test_check_finds_the_parallel_build_equivalent(capsys, nf, cores):
    status, out = _cli(capsys, "check", NFS / f"{nf}.c", "--traffic", "bidir", "--cores", cores, "--json")
    data = json.loads(out)
    assert status == 0 and data["verdict"] == "equivalent", data["differences"]
    assert min(data["per_core"]) > 0.15 * data["packets"]  # the built program spreads as the simulation does


def test_simulate_deals_the_reta_for_the_users_keys(capsys):
    """``nfx simulate --key`` kept the RETA dealt for the solver's keys (and from a key problem, the
    round robin, which put all of bidir on one core of 2): a user's top-byte keys then split on index
    bits their ports hardly set. The table is now the one a solve deals for those keys."""
    for seed in (0, 1):  # the solver's own keys, then another seed's
        status, out = _cli(capsys, "solve", NFS / "port_blocks.c", "--cores", "2", "--seed", seed, "--json")
        solved = json.loads(out)
        keys = [a for dev, d in sorted(solved["devices"].items()) for a in ("--key", f"{dev}={d['key']}")]
        status, out = _cli(capsys, "simulate", NFS / "port_blocks.c", "--traffic", "bidir", "--cores", "2",
                           "--packets", PACKETS, "--flows", FLOWS, "--json", *keys)
        data = json.loads(out)
        assert status == 0 and data["keys"] == {dev: d["key"] for dev, d in solved["devices"].items()}
        assert data["reta"] == solved["devices"]["0"]["reta"] == solved["devices"]["1"]["reta"]
        assert min(data["per_core"]) > 0.35 * PACKETS and data["violations"]["count"] == 0


def test_a_users_reta_is_kept_and_new_hashed_fields_get_a_dealt_one():
    """``reta`` fixes the table beside user keys (the round robin puts port_blocks' bidir on one core,
    as it did before the RETA was dealt); hashed fields a user replaces get the table dealt for them."""
    from explorer.rss.reta import deal

    solution = _solution("port_blocks", 2)
    round_robin = tuple(i % 2 for i in range(len(solution.plan.devices[0].reta)))
    keys = {d.device: d.key for d in solution.plan.devices}
    fixed = pipeline.simulate(solution, "bidir", packets=PACKETS, flows=FLOWS, keys=keys, reta=round_robin)
    assert fixed.reta == round_robin and min(fixed.per_core) == 0
    every = ("src_ip", "dst_ip", "src_port", "dst_port")
    plan = pipeline.with_keys(solution.plan, fields={0: every})
    assert plan.device(0).fields == every
    dealt = deal([(d.key, d.fields) for d in plan.devices], len(round_robin), 2)
    assert dealt != solution.plan.device(0).reta and {d.reta for d in plan.devices} == {dealt}
