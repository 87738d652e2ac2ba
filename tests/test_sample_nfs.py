"""The nine sample NFs do their jobs: each is built and run sequentially on frames crafted with dpkt,
and every packet's verdict (output device, -1 drop, -2 flood) is checked where the NF defines it.

Thresholds are made small with ``defines=`` (the API behind ``--define NAME=VALUE``). Timestamps are
nanoseconds; an entry last used at t is alive at t + EXPIRATION and gone at t + EXPIRATION + 1.
Runs are marked ``dpdk``: the sequential harness links DPDK's EAL.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import nf_packets as P
from explorer.errors import NfxError
from explorer.frontend.parsed import parse_nf
from explorer.run import run_trace

ROOT = Path(__file__).resolve().parents[1]
NFS = ROOT / "sample_nfs"
INCLUDE = ROOT / "explorer" / "runtime" / "include"
NF_NAMES = ("nop", "sbridge", "bridge", "pol", "fw", "nat", "cl", "psd", "lb")
LAN, WAN, DROP, FLOOD = 0, 1, -1, -2
MS = 1_000_000  # ns

# Every configuration macro of every NF, with a valid value different from its default: each must
# be overridable (wrapped in #ifndef), and no NF may have configuration this table does not list.
OVERRIDES = {
    "nop": {},
    "sbridge": {"SBRIDGE_MAC0": "0x0a0000000001ULL", "SBRIDGE_PORT0": "1",
                "SBRIDGE_MAC1": "0x0a0000000002ULL", "SBRIDGE_PORT1": "1",
                "SBRIDGE_MAC2": "0x0a0000000003ULL", "SBRIDGE_PORT2": "0",
                "SBRIDGE_MAC3": "0x0a0000000004ULL", "SBRIDGE_PORT3": "0"},
    "bridge": {"BRIDGE_CAPACITY": "7", "BRIDGE_EXPIRATION_NS": "7"},
    "pol": {"POL_RATE_BPS": "7", "POL_BURST": "7", "POL_CAPACITY": "7", "POL_EXPIRATION_NS": "7"},
    "fw": {"FW_CAPACITY": "7", "FW_EXPIRATION_NS": "7"},
    "nat": {"NAT_EXTERNAL_IP": "NF_IPV4(10, 9, 8, 7)", "NAT_START_PORT": "7", "NAT_CAPACITY": "7",
            "NAT_EXPIRATION_NS": "7"},
    "cl": {"CL_MAX_CONNECTIONS": "7", "CL_CAPACITY": "7", "CL_EXPIRATION_NS": "7",
           "CL_SKETCH_WIDTH": "7", "CL_SKETCH_EXPIRATION_NS": "7"},
    "psd": {"PSD_MAX_PORTS": "7", "PSD_CAPACITY": "7", "PSD_EXPIRATION_NS": "7"},
    "lb": {"LB_VIRTUAL_IP": "NF_IPV4(10, 9, 8, 7)", "LB_HEARTBEAT_PORT": "7", "LB_BACKEND_CAPACITY": "7",
           "LB_BACKEND_EXPIRATION_NS": "7", "LB_CHT_HEIGHT": "7", "LB_FLOW_CAPACITY": "7",
           "LB_FLOW_EXPIRATION_NS": "7"},
}
# Macros an NF defines for itself, not configuration.
INTERNAL_MACROS = {"LAN", "WAN", "SBRIDGE_ENTRIES"}


def run(nf: str, events, **defines):
    """Run sample NF ``nf`` on ``(timestamp, device, frame)`` events, in order."""
    return run_trace(str(NFS / f"{nf}.c"), P.trace(events),
                     defines={name: str(value) for name, value in defines.items()} or None)


def verdicts(result) -> list[int]:
    return [v.verdict for v in result.verdicts]


def outputs(result) -> dict[int, bytes]:
    """Packet index -> the frame after processing, for the packets not dropped."""
    return {index: frame for index, _verdict, frame in result.outputs}


# ---- the sources themselves --------------------------------------------------------------------

def _gcc(nf: str, *flags: str) -> subprocess.CompletedProcess:
    """Strict C99 syntax check; -Wpadded enforces the no-implicit-padding rule for keys and cells."""
    argv = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Wpadded", "-pedantic", "-fsyntax-only",
            f"-I{INCLUDE}", *flags, str(NFS / f"{nf}.c")]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _nf_macros(nf: str) -> set[str]:
    """Macros the NF file itself defines (gcc's -dM listing minus what nf.h and gcc define)."""
    def listing(source: str) -> set[str]:
        out = subprocess.run(["gcc", "-std=c99", "-E", "-dM", f"-I{INCLUDE}", "-x", "c", "-"], input=source,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return {line.split()[1].split("(")[0] for line in out.splitlines() if line.startswith("#define ")}
    return listing((NFS / f"{nf}.c").read_text()) - listing('#include "nf.h"\n')


@pytest.mark.parametrize("nf", NF_NAMES)
def test_compiles_cleanly(nf):
    done = _gcc(nf)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("nf", NF_NAMES)
def test_parses_with_the_frontend(nf):
    parsed = parse_nf(NFS / f"{nf}.c")
    assert parsed.devices == 2
    assert set(OVERRIDES[nf]) <= {name for name, _ in parsed.defines}


@pytest.mark.parametrize("nf", NF_NAMES)
def test_configuration_is_overridable(nf):
    """Every configuration macro is wrapped in #ifndef (a redefinition would fail under -Werror)."""
    assert _nf_macros(nf) - INTERNAL_MACROS == set(OVERRIDES[nf])
    done = _gcc(nf, *(f"-D{name}={value}" for name, value in OVERRIDES[nf].items()))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("nf", NF_NAMES)
def test_starts_with_a_documenting_comment(nf):
    text = (NFS / f"{nf}.c").read_text()
    assert text.startswith(f"/*\n * {nf}: ")
    comment = text[:text.index("*/")]
    if OVERRIDES[nf]:
        assert "State" in comment and "Configuration" in comment
        for name in OVERRIDES[nf]:
            assert name.rstrip("0123456789") in comment, name


def test_readme_lists_every_nf_and_macro():
    readme = (NFS / "README.md").read_text()
    for nf in NF_NAMES:
        assert f"`{nf}.c`" in readme
        for name in OVERRIDES[nf]:
            assert name.rstrip("0123456789") in readme, name


# ---- nop ---------------------------------------------------------------------------------------

@pytest.mark.dpdk
def test_nop_forwards_both_ways_untouched():
    frames = [P.udp("10.0.0.1", 1, "10.0.0.2", 2), P.ethernet("02:00:00:00:00:01", P.BROADCAST),
              P.tcp("1.2.3.4", 80, "10.0.0.1", 4000)]
    events = [(0, LAN, frames[0]), (1, WAN, frames[1]), (2, WAN, frames[2]), (3, LAN, frames[1])]
    result = run("nop", events)
    assert verdicts(result) == [WAN, LAN, LAN, WAN]
    assert outputs(result) == {i: frame for i, (_, _, frame) in enumerate(events)}
    assert result.summary()["dropped"] == 0


# ---- sbridge -----------------------------------------------------------------------------------

def _to(dst: str, src: str = "02:00:00:00:00:99") -> bytes:
    return P.ethernet(src, dst)


@pytest.mark.dpdk
def test_sbridge_forwards_by_its_table():
    events = [
        (0, LAN, _to("02:00:00:00:00:03")),  # table: port 1
        (1, WAN, _to("02:00:00:00:00:01")),  # table: port 0
        (2, WAN, _to("02:00:00:00:00:02")),  # table: port 0
        (3, LAN, _to("02:00:00:00:00:02")),  # on the input port: drop
        (4, WAN, _to("02:00:00:00:00:04")),  # on the input port: drop
        (5, LAN, _to("02:00:00:00:00:99")),  # unknown: flood
        (6, LAN, _to(P.BROADCAST)),
        (7, WAN, _to("02:00:00:00:00:05", src="02:00:00:00:00:77")),
        (8, LAN, _to("02:00:00:00:00:77")),  # a static bridge learns nothing
    ]
    result = run("sbridge", events)
    assert verdicts(result) == [WAN, LAN, LAN, DROP, DROP, FLOOD, FLOOD, FLOOD, FLOOD]
    assert all(frame == events[i][2] for i, frame in outputs(result).items())


@pytest.mark.dpdk
def test_sbridge_table_comes_from_the_configuration():
    events = [(0, LAN, _to("0a:0b:0c:0d:0e:0f")), (1, WAN, _to("0a:0b:0c:0d:0e:0f")),
              (2, LAN, _to("02:00:00:00:00:03")), (3, WAN, _to("02:00:00:00:00:01"))]
    result = run("sbridge", events, SBRIDGE_MAC0="0x0a0b0c0d0e0fULL", SBRIDGE_PORT0=1, SBRIDGE_PORT2=0)
    assert verdicts(result) == [WAN, DROP, DROP, FLOOD]


@pytest.mark.dpdk
def test_sbridge_rejects_a_port_beyond_the_devices():
    with pytest.raises(NfxError, match="SBRIDGE_PORT"):
        run("sbridge", [(0, LAN, _to(P.BROADCAST))], SBRIDGE_PORT1=2)


# ---- bridge ------------------------------------------------------------------------------------

A, B, C, D, E = (f"02:00:00:00:00:0{x}" for x in "abcde")


@pytest.mark.dpdk
def test_bridge_learns_forwards_floods_and_follows_moves():
    events = [
        (0, LAN, _to(B, src=A)),  # B unknown: flood; A learnt on 0
        (1, WAN, _to(A, src=B)),  # A on 0; B learnt on 1
        (2, LAN, _to(B, src=A)),
        (3, LAN, _to(A, src=C)),  # A on the input port: drop; C learnt on 0
        (4, LAN, _to(P.BROADCAST, src=A)),
        (5, WAN, _to(C, src=A)),  # A moves to 1; C on 0
        (6, WAN, _to(A, src=B)),  # A now on the input port
        (7, LAN, _to(A, src=D)),  # table full (capacity 3): D not learnt; A on 1
        (8, WAN, _to(D, src=B)),  # so D is still unknown
    ]
    result = run("bridge", events, BRIDGE_CAPACITY=3)
    assert verdicts(result) == [FLOOD, LAN, WAN, DROP, FLOOD, LAN, DROP, WAN, FLOOD]


@pytest.mark.dpdk
def test_bridge_expires_macs_not_seen_as_source():
    events = [
        (0, LAN, _to(B, src=A)),
        (1000, WAN, _to(A, src=B)),  # A last seen at 0: alive at 0 + 1000
        (1001, WAN, _to(A, src=C)),  # ... gone at 1001
        (2000, LAN, _to(B, src=D)),  # B last seen at 1000
        (2001, LAN, _to(B, src=E)),
        (2002, WAN, _to(E, src=B)),  # E, learnt at 2001 on the LAN
    ]
    result = run("bridge", events, BRIDGE_EXPIRATION_NS=1000)
    assert verdicts(result) == [FLOOD, LAN, FLOOD, WAN, FLOOD, LAN]


# ---- pol ---------------------------------------------------------------------------------------

def _down(host: str, size: int = 100) -> bytes:
    return P.udp("198.51.100.1", 53, host, 5000, size=size)


@pytest.mark.dpdk
def test_pol_limits_each_lan_host_to_its_bucket():
    h1, h2, h3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
    up = P.udp(h1, 5000, "198.51.100.1", 53, size=100)
    events = [
        (0, WAN, _down(h2, size=400)),  # longer than the burst: drop, no bucket
        (0, WAN, _down(h1)), (0, WAN, _down(h1)), (0, WAN, _down(h1)),  # 300 bytes of burst
        (0, WAN, _down(h1)),
        (0, WAN, _down(h2)),  # another host has its own bucket
        *[(0, LAN, up)] * 5,  # LAN -> WAN is not policed
        (50 * MS, WAN, _down(h1)),  # 50 bytes refilled at 1000 B/s: not enough
        (100 * MS, WAN, _down(h1)),  # 100 bytes now
        (100 * MS, WAN, _down(h1)),
        (100 * MS, WAN, _down(h3)),  # capacity 2: no bucket for a third host
        (100 * MS, WAN, _down(h2, size=400)),
        (100 * MS, WAN, P.ethernet("02:00:00:00:00:01", "02:00:00:00:00:02")),  # not IPv4
        (100 * MS, LAN, P.ethernet("02:00:00:00:00:02", "02:00:00:00:00:01")),
        (900 * MS, WAN, _down(h1)), (900 * MS, WAN, _down(h1)), (900 * MS, WAN, _down(h1)),  # refill
        (900 * MS, WAN, _down(h1)),  # capped at the burst
        (1200 * MS, WAN, _down(h3)),  # h2, idle since 100 ms, expired at 1100 ms: room for h3
        (1200 * MS, WAN, _down(h2)),  # and now none for h2
    ]
    result = run("pol", events, POL_RATE_BPS=1000, POL_BURST=300, POL_CAPACITY=2,
                 POL_EXPIRATION_NS=1000 * MS)
    assert verdicts(result) == [DROP, LAN, LAN, LAN, DROP, LAN, *[WAN] * 5,
                                DROP, LAN, DROP, DROP, DROP, DROP, WAN,
                                LAN, LAN, LAN, DROP, LAN, DROP]
    assert all(frame == events[i][2] for i, frame in outputs(result).items())


# ---- fw ----------------------------------------------------------------------------------------

@pytest.mark.dpdk
def test_fw_passes_replies_only_and_expires_flows():
    out = P.udp("10.0.0.1", 1234, "8.8.8.8", 53)
    reply = P.udp("8.8.8.8", 53, "10.0.0.1", 1234)
    third = P.udp("10.0.0.3", 1, "9.9.9.9", 9)
    third_reply = P.udp("9.9.9.9", 9, "10.0.0.3", 1)
    tcp_out = P.tcp("10.0.0.1", 40000, "1.1.1.1", 443)
    tcp_reply = P.tcp("1.1.1.1", 443, "10.0.0.1", 40000)
    events = [
        (0, WAN, reply),  # unsolicited
        (1, LAN, out),
        (2, WAN, reply),
        (3, WAN, P.udp("8.8.8.8", 54, "10.0.0.1", 1234)),  # wrong remote port
        (4, WAN, P.udp("8.8.4.4", 53, "10.0.0.1", 1234)),  # wrong remote host
        (5, WAN, P.udp("8.8.8.8", 53, "10.0.0.1", 1235)),  # wrong local port
        (6, WAN, P.udp("8.8.8.8", 53, "10.0.0.2", 1234)),  # wrong local host
        (7, WAN, P.tcp("8.8.8.8", 53, "10.0.0.1", 1234)),  # wrong protocol
        (8, WAN, out),  # the LAN's own tuple arriving from the WAN is not a reply
        (9, LAN, tcp_out),
        (10, WAN, tcp_reply),
        (11, LAN, third),  # capacity 2: goes out unrecorded
        (12, WAN, third_reply),
        (13, LAN, P.ipv4("10.0.0.1", "8.8.8.8", P.ICMP, payload=b"\x08\0\0\0\0\0\0\0")),
        (14, LAN, P.ethernet("02:00:00:00:00:01", P.BROADCAST)),
        (15, LAN, P.udp("10.0.0.1", 1234, "8.8.8.8", 53, more_fragments=True)),
        (900, WAN, reply),  # refreshes the flow (last used at 2)
        (950, LAN, tcp_out),  # the LAN refreshes its flows too
        (1900, WAN, reply),  # alive: last used at 900
        (1949, WAN, tcp_reply),  # alive: last used at 950
        (2901, WAN, reply),  # gone: idle since 1900
        (2902, LAN, third),  # room again: recorded now
        (2903, WAN, third_reply),
    ]
    result = run("fw", events, FW_CAPACITY=2, FW_EXPIRATION_NS=1000)
    assert verdicts(result) == [DROP, WAN, LAN, DROP, DROP, DROP, DROP, DROP, DROP, WAN, LAN,
                                WAN, DROP, DROP, DROP, DROP, LAN, WAN, LAN, LAN, DROP, WAN, LAN]
    assert all(frame == events[i][2] for i, frame in outputs(result).items())


# ---- nat ---------------------------------------------------------------------------------------

EXTERNAL = "192.0.2.1"
SERVER = "93.184.216.34"


def _without_udp_checksum(frame: bytes) -> bytes:
    return frame[:40] + b"\0\0" + frame[42:]


@pytest.mark.dpdk
def test_nat_translates_both_ways_with_valid_checksums():
    l1 = P.tcp("10.0.0.5", 5555, SERVER, 80)
    l2 = P.tcp("10.0.0.6", 5555, SERVER, 80)
    l3 = P.udp("10.0.0.7", 7777, "1.2.3.4", 53, payload=b"query")
    events = [
        (0, LAN, l1), (1, LAN, l2), (2, LAN, l1),
        (3, WAN, P.tcp(SERVER, 80, EXTERNAL, 1000)),
        (4, WAN, P.tcp(SERVER, 80, EXTERNAL, 1001)),
        (5, WAN, P.tcp("1.2.3.4", 80, EXTERNAL, 1000)),  # another remote host
        (6, WAN, P.tcp(SERVER, 81, EXTERNAL, 1000)),  # another remote port
        (7, WAN, P.tcp(SERVER, 80, EXTERNAL, 1002)),  # no such flow
        (8, WAN, P.tcp(SERVER, 80, "192.0.2.2", 1000)),  # not the external address
        (9, WAN, P.udp(SERVER, 80, EXTERNAL, 1000)),  # another protocol
        (10, LAN, l3),  # capacity 2: no port left
        (11, LAN, P.ethernet("02:00:00:00:00:01", P.BROADCAST)),
        (12, WAN, P.ipv4(SERVER, EXTERNAL, P.ICMP, payload=b"\0" * 8)),
        (500, LAN, l2),  # keeps the second flow alive
        (1005, WAN, P.tcp(SERVER, 80, EXTERNAL, 1000)),  # the first flow expired (idle since 3)
        (1006, LAN, l3),  # and its port is reused
        (1007, WAN, P.udp("1.2.3.4", 53, EXTERNAL, 1000, payload=b"answer")),
        (1008, WAN, P.tcp(SERVER, 80, EXTERNAL, 1001)),
        (1009, LAN, _without_udp_checksum(l3)),
    ]
    result = run("nat", events, NAT_START_PORT=1000, NAT_CAPACITY=2, NAT_EXPIRATION_NS=1000)
    assert verdicts(result) == [WAN, WAN, WAN, LAN, LAN, DROP, DROP, DROP, DROP, DROP, DROP, DROP, DROP,
                                WAN, DROP, WAN, LAN, LAN, WAN]
    out = outputs(result)
    expected = {  # index: (src, sport, dst, dport) after translation
        0: (EXTERNAL, 1000, SERVER, 80), 1: (EXTERNAL, 1001, SERVER, 80), 2: (EXTERNAL, 1000, SERVER, 80),
        3: (SERVER, 80, "10.0.0.5", 5555), 4: (SERVER, 80, "10.0.0.6", 5555),
        13: (EXTERNAL, 1001, SERVER, 80), 15: (EXTERNAL, 1000, "1.2.3.4", 53),
        16: ("1.2.3.4", 53, "10.0.0.7", 7777), 17: (SERVER, 80, "10.0.0.6", 5555),
        18: (EXTERNAL, 1000, "1.2.3.4", 53),
    }
    assert sorted(out) == sorted(expected)
    for index, (src, sport, dst, dport) in expected.items():
        h, original = P.headers(out[index]), P.headers(events[index][2])
        assert (h.src, h.sport, h.dst, h.dport) == (src, sport, dst, dport), index
        assert (h.proto, h.src_mac, h.dst_mac) == (original.proto, original.src_mac, original.dst_mac)
        assert P.checksums_ok(out[index]), index
        assert len(out[index]) == len(events[index][2])
    assert out[18][40:42] == b"\0\0"  # a UDP checksum of 0 ("none") stays 0
    assert out[15][40:42] != b"\0\0"


@pytest.mark.dpdk
def test_nat_external_address_is_a_c_expression_define():
    events = [(0, LAN, P.udp("10.0.0.5", 5555, SERVER, 53)),
              (1, WAN, P.udp(SERVER, 53, EXTERNAL, 1024)),  # the default address is not ours now
              (2, WAN, P.udp(SERVER, 53, "10.9.8.7", 1024))]
    result = run("nat", events, NAT_EXTERNAL_IP="NF_IPV4(10, 9, 8, 7)")
    assert verdicts(result) == [WAN, DROP, LAN]
    out = outputs(result)
    assert (P.headers(out[0]).src, P.headers(out[0]).sport) == ("10.9.8.7", 1024)  # default NAT_START_PORT
    assert (P.headers(out[2]).dst, P.headers(out[2]).dport) == ("10.0.0.5", 5555)


@pytest.mark.dpdk
def test_nat_rejects_a_port_range_beyond_16_bits():
    with pytest.raises(NfxError, match="NAT_START_PORT"):
        run("nat", [(0, LAN, P.tcp("10.0.0.5", 5555, SERVER, 80))], NAT_START_PORT=65000, NAT_CAPACITY=1000)


# ---- cl ----------------------------------------------------------------------------------------

def _conn(src: str, sport: int, dst: str = "10.0.0.1") -> bytes:
    return P.tcp(src, sport, dst, 80)


@pytest.mark.dpdk
def test_cl_admits_up_to_the_limit_per_address_pair():
    events = [
        (0, WAN, _conn("1.1.1.1", 1)), (1, WAN, _conn("1.1.1.1", 2)),
        (2, WAN, _conn("1.1.1.1", 3)),  # third connection of the pair
        (3, WAN, _conn("1.1.1.1", 1)),  # established
        (4, WAN, _conn("1.1.1.1", 4, dst="10.0.0.2")),  # another pair: another destination
        (5, WAN, _conn("2.2.2.2", 1)),  # another pair: another source
        (6, LAN, P.tcp("10.0.0.1", 80, "1.1.1.1", 3)),  # the LAN is not limited ...
        (7, WAN, _conn("1.1.1.1", 3)),  # ... and does not open flows for the WAN
        (8, WAN, P.ipv4("1.1.1.1", "10.0.0.1", P.ICMP, payload=b"\0" * 8)),
        (9, WAN, P.ethernet("02:00:00:00:00:01", P.BROADCAST)),
        (10, LAN, P.ethernet("02:00:00:00:00:01", P.BROADCAST)),
        (11, WAN, _conn("1.1.1.1", 5, dst="10.0.0.2")),
        (12, WAN, _conn("1.1.1.1", 6, dst="10.0.0.2")),  # third for (1.1.1.1, 10.0.0.2)
        (1500, WAN, _conn("1.1.1.1", 1)),  # flow expired (idle since 3): a new connection, over the limit
        (5100, WAN, _conn("1.1.1.1", 3)),  # the pair's counters, untouched since 1, expired at 5001
        (5101, WAN, _conn("1.1.1.1", 4)),
        (5102, WAN, _conn("1.1.1.1", 5)),
    ]
    result = run("cl", events, CL_MAX_CONNECTIONS=2, CL_EXPIRATION_NS=1000, CL_SKETCH_EXPIRATION_NS=5000)
    assert verdicts(result) == [LAN, LAN, DROP, LAN, LAN, LAN, WAN, DROP, DROP, DROP, WAN, LAN, DROP,
                                DROP, LAN, LAN, DROP]


# ---- psd ---------------------------------------------------------------------------------------

def _probe(src: str, dport: int) -> bytes:
    return P.tcp(src, 5000, "10.0.0.1", dport)


@pytest.mark.dpdk
def test_psd_blocks_a_scanner_and_not_normal_clients():
    scanner, client = "6.6.6.6", "7.7.7.7"
    events = [
        *[(port - 1, WAN, _probe(scanner, port)) for port in range(1, 7)],  # ports 1..6 at t = 0..5
        (6, WAN, _probe(scanner, 2)),  # a port it already touched still works
        *[(7 + i, WAN, _probe(client, 80)) for i in range(10)],  # one service, many packets
        (17, WAN, _probe(client, 443)), (18, WAN, _probe(client, 22)),  # three distinct ports: fine
        (19, LAN, P.tcp("10.0.0.1", 80, scanner, 5000)),
        (20, WAN, P.ipv4(scanner, "10.0.0.1", P.ICMP, payload=b"\0" * 8)),
        (900, WAN, _probe(scanner, 7)),  # still scanning: still blocked (and refreshed)
        (1800, WAN, _probe(scanner, 1)),  # (scanner, 1) expired, so it is a new port: blocked
        (2801, WAN, _probe(scanner, 7)),  # silent since 1800: forgotten, counting from zero
        (2802, WAN, _probe(client, 8080)),  # the client's count restarted too
    ]
    result = run("psd", events, PSD_MAX_PORTS=3, PSD_EXPIRATION_NS=1000)
    assert verdicts(result) == [LAN, LAN, LAN, DROP, DROP, DROP, LAN, *[LAN] * 10, LAN, LAN, WAN, DROP,
                                DROP, DROP, LAN, LAN]


# ---- lb ----------------------------------------------------------------------------------------

VIP = "203.0.113.1"
BACKENDS = {"10.0.0.10": "02:00:00:00:10:10", "10.0.0.11": "02:00:00:00:11:11"}


def _heartbeat(backend: str) -> bytes:
    return P.udp(backend, 1, "10.0.0.1", 9999, src_mac=BACKENDS[backend], payload=b"alive")


def _client(i: int) -> bytes:
    return P.tcp(f"198.51.100.{i}", 40000 + i, VIP, 80, src_mac="02:00:00:00:ee:ee",
                 dst_mac="02:00:00:00:ff:ff")


def _backends_of(result, first: int, count: int) -> list[str]:
    """The backend each of packets first .. first + count - 1 was sent to, checking the rewrite."""
    out = outputs(result)
    chosen = []
    for index in range(first, first + count):
        h = P.headers(out[index])
        assert h.dst in BACKENDS and h.dst_mac == BACKENDS[h.dst], index
        assert (h.src, h.sport, h.dport) == (f"198.51.100.{index - first + 1}", 40000 + index - first + 1, 80)
        assert P.checksums_ok(out[index]), index
        chosen.append(h.dst)
    return chosen


@pytest.mark.dpdk
def test_lb_balances_on_heartbeats_and_keeps_flows_on_live_backends():
    n = 16
    a, b = BACKENDS
    first = [
        (0, WAN, _client(1)),  # no backend yet
        (1, LAN, _heartbeat(a)), (1, LAN, _heartbeat(b)),  # consumed
        *[(10, WAN, _client(i)) for i in range(1, n + 1)],
        *[(20, WAN, _client(i)) for i in range(1, n + 1)],
    ]
    result = run("lb", first, LB_BACKEND_EXPIRATION_NS=1000)
    assert verdicts(result) == [DROP, DROP, DROP] + [LAN] * (2 * n)
    initial = _backends_of(result, 3, n)
    assert _backends_of(result, 3 + n, n) == initial  # each flow stays on its backend
    assert set(initial) == {a, b}  # and both backends get flows

    # Backend `a` stops sending heartbeats; `b` keeps going.
    second = [
        *first[:3 + n],
        (500, LAN, _heartbeat(b)),
        *[(1200, WAN, _client(i)) for i in range(1, n + 1)],  # a, silent since 1, is dead: all on b
        (1300, LAN, _heartbeat(a)),  # a is back ...
        # ... but flows moved to b stay there, though the table picks a for some (see `initial`)
        *[(1400, WAN, _client(i)) for i in range(1, n + 1)],
        *[(1400, WAN, _client(i)) for i in range(n + 1, 3 * n + 1)],  # new flows use a again
        (1500, WAN, P.tcp("198.51.100.1", 40001, "203.0.113.2", 80)),  # not the virtual IP
        (1500, WAN, P.ipv4("198.51.100.1", VIP, P.ICMP, payload=b"\0" * 8)),
        (1500, LAN, P.tcp(b, 80, "198.51.100.1", 40001)),  # replies go out untouched
        (1500, LAN, P.tcp(a, 1, "10.0.0.1", 9999)),  # TCP to the heartbeat port is no heartbeat
    ]
    result = run("lb", second, LB_BACKEND_EXPIRATION_NS=1000)
    got = verdicts(result)
    start = 3 + n + 1
    assert got[:3 + n + 1] == [DROP, DROP, DROP] + [LAN] * n + [DROP]
    assert got[start:start + n] == [LAN] * n and _backends_of(result, start, n) == [b] * n
    assert got[start + n] == DROP
    start += n + 1
    assert got[start:start + 3 * n] == [LAN] * (3 * n)
    assert _backends_of(result, start, n) == [b] * n  # including the flows that chose a at first
    assert a in _backends_of(result, start, 3 * n)[n:]
    assert got[start + 3 * n:] == [DROP, DROP, WAN, WAN]
    out = outputs(result)
    assert out[len(second) - 2] == second[-2][2]
