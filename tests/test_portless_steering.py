"""Frames without TCP/UDP ports (ICMP, IPv4 fragments, non-IPv4) on a plan that hashes ports alone:
ice and i40e hash the IPv4 ones on both addresses (the "eth / ipv4" rule's RTE_ETH_RSS_IPV4 has no
L3 flag), and the simulator, the generated C and the per-queue split must steer them that way too
(they gave them hash 0: every such frame on one core). Traffic is a real pcap written with dpkt."""
from __future__ import annotations

import socket
from pathlib import Path

import dpkt
import numpy as np
import pytest

from explorer import pipeline
from explorer.codegen import parallel_plan, write_project
from explorer.rss.nic import (RSS_HF_BITS, RssAction, flow_rule_types, hashed_fields, nic_profile,
                              rss_action_problems)
from explorer.run import load_trace
from explorer.simulate.steering import steer
from explorer.traffic.field_arrays import fields_of
from explorer.verify.split import cores_of

ROOT = Path(__file__).resolve().parent.parent
NF = "tests/nfs/service_meter.c"


def _toeplitz(key: bytes, data: bytes) -> int:
    """Bit by bit, as the Microsoft RSS document describes it (independent of explorer.rss)."""
    k = int.from_bytes(key, "big")
    width = len(key) * 8
    out = 0
    for i in range(len(data) * 8):
        if data[i // 8] >> (7 - i % 8) & 1:
            out ^= (k >> (width - 32 - i)) & 0xFFFFFFFF
    return out


def _write_pcap(path: Path) -> dict[str, list[int]]:
    """ICMP echoes, first and later UDP fragments, ARP and TCP from 100 LAN hosts; returns the frame
    numbers of each kind."""
    kinds: dict[str, list[int]] = {"icmp": [], "first_fragment": [], "later_fragment": [], "arp": [], "tcp": []}
    rng = np.random.default_rng(11)
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for n in range(500):
            src = socket.inet_aton(f"10.0.{rng.integers(256)}.{rng.integers(1, 255)}")
            dst = socket.inet_aton(f"198.51.{rng.integers(256)}.{rng.integers(1, 255)}")
            kind = list(kinds)[n % 5]
            if kind == "arp":
                payload, ether_type = dpkt.arp.ARP(spa=src, tpa=dst), dpkt.ethernet.ETH_TYPE_ARP
            else:
                if kind == "icmp":
                    proto, body = dpkt.ip.IP_PROTO_ICMP, dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=n, seq=1))
                    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=body, id=n, ttl=64)
                elif kind == "tcp":
                    body = dpkt.tcp.TCP(sport=1024 + n, dport=int(rng.choice([22, 80, 443, 8080])), flags=2)
                    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, data=body, id=n, ttl=64)
                elif kind == "first_fragment":  # carries the UDP header, but is a fragment
                    udp = dpkt.udp.UDP(sport=4000 + n, dport=53, data=b"q" * 24, ulen=1408)
                    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP, data=bytes(udp), id=n, mf=1, ttl=64)
                else:
                    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP, data=b"r" * 32, id=n, offset=1480,
                                    ttl=64)
                ip.len = 20 + len(bytes(ip.data))
                payload, ether_type = ip, dpkt.ethernet.ETH_TYPE_IP
            frame = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                           type=ether_type, data=payload)
            writer.writepkt(bytes(frame), ts=1.0 + n * 1e-4)
            kinds[kind].append(n)
    return kinds


@pytest.fixture(scope="module")
def lan(tmp_path_factory):
    path = tmp_path_factory.mktemp("portless") / "lan.pcap"
    kinds = _write_pcap(path)
    return load_trace([f"0={path}"]), kinds


def test_each_nic_hashes_portless_frames_as_its_ipv4_type_does():
    e810, x710, cx5, ixgbe = (nic_profile(n) for n in ("e810", "x710", "cx5", "82599"))
    for intel in (e810, x710):
        assert intel.portless_fields(["dst_port"]) == ("src_ip", "dst_ip")
        assert intel.portless_fields(["src_port"]) == ("src_ip", "dst_ip")
        assert intel.portless_fields(["src_ip", "dst_port"]) == ("src_ip",)
        assert intel.portless_fields(["dst_ip"]) == ("dst_ip",)
        assert intel.portless_fields([]) == ()
    assert cx5.portless_fields(["src_ip", "dst_port"]) == ("src_ip",)
    assert ixgbe.portless_fields(["src_ip", "dst_ip", "src_port", "dst_port"]) == ("src_ip", "dst_ip")


@pytest.mark.parametrize("nic", ["e810", "x710"])
def test_portless_fields_are_what_the_generated_ipv4_rule_hashes(nic):
    """The plan's "eth / ipv4" flow rule (what the generated program programs) hashes exactly the
    fields the simulator uses for frames without ports, and the driver takes the rule."""
    plan = parallel_plan(pipeline.solve(NF, nic=nic, cores=4, quality=False), "sn", 4)
    lan = plan.steering[0]
    assert lan.fields == ("dst_port",)
    rules = dict(lan.flow_rules)
    assert hashed_fields(rules["eth / ipv4"], "eth / ipv4") == lan.portless == ("src_ip", "dst_ip")
    for pattern, types in lan.flow_rules:
        action = RssAction(pattern, 0, 0, types, 0, False, 0, False)
        assert rss_action_problems(nic, action) == ()


@pytest.mark.parametrize("nic", ["e810", "x710"])
def test_the_simulator_hashes_icmp_and_fragments_on_their_addresses(lan, nic):
    trace, kinds = lan
    solution = pipeline.solve(NF, nic=nic, cores=4, quality=False)
    d = solution.plan.device(0)
    assert d.fields == ("dst_port",)
    fields = fields_of(trace)
    steering = steer(solution.plan, fields, trace.devices)
    portless = kinds["icmp"] + kinds["first_fragment"] + kinds["later_fragment"]
    for i in portless:
        data = int(fields.src_ip[i]).to_bytes(4, "big") + int(fields.dst_ip[i]).to_bytes(4, "big")
        assert int(steering.hashes[i]) == _toeplitz(d.key, data)
    for i in kinds["tcp"]:
        assert int(steering.hashes[i]) == _toeplitz(d.key, int(fields.dst_port[i]).to_bytes(2, "big"))
    assert not steering.hashes[kinds["arp"]].any()  # not IPv4: not hashed
    assert len(set(steering.cores[portless].tolist())) == 4  # spread, not all on RETA entry 0's core


@pytest.mark.parametrize("nic,fields", [("cx5", "src_ip"), ("82599", "src_ip, dst_ip")])
def test_solve_warns_when_every_portless_frame_reaches_one_core(lan, nic, fields):
    """cx5 hashes an address with the port (never a port alone) and 82599 all four fields; the key
    keeps the addresses out of the RETA index for TCP/UDP, so ICMP and fragments, hashed on the
    addresses alone, all reach RETA entry 0. solve said nothing while simulate put them on one core."""
    trace, kinds = lan
    solution = pipeline.solve(NF, nic=nic, cores=4, quality=False)
    core = solution.plan.device(0).reta[0]
    assert solution.warnings == (f"device 0: frames without TCP/UDP ports (ICMP, IPv4 fragments) all reach RETA "
                                 f"entry 0, core {core}: {nic} hashes only {fields} of them, which the key keeps out "
                                 "of the RETA index for the TCP/UDP frames",)
    steering = steer(solution.plan, fields_of(trace), trace.devices)
    portless = kinds["icmp"] + kinds["first_fragment"] + kinds["later_fragment"]
    assert set(steering.cores[portless].tolist()) == {core}
    assert pipeline.solve(NF, nic="e810", cores=4, quality=False).warnings == ()


def test_ice_refuses_to_be_told_frag_ipv4():
    """ice takes RTE_ETH_RSS_FRAG_IPV4 but then hashes fragments alone, with their IPv4 ID."""
    types = RSS_HF_BITS["RTE_ETH_RSS_IPV4"] | RSS_HF_BITS["RTE_ETH_RSS_FRAG_IPV4"]
    (problem,) = rss_action_problems("e810", RssAction("eth / ipv4", 0, 0, types, 0, False, 0, False))
    assert "IPv4 identification" in problem
    assert rss_action_problems("x710", RssAction("eth / ipv4", 0, 0, types, 0, False, 0, False)) == ()
    assert all(not t & RSS_HF_BITS["RTE_ETH_RSS_FRAG_IPV4"]
               for _, t in flow_rule_types(RSS_HF_BITS["RTE_ETH_RSS_IPV4"] | RSS_HF_BITS["RTE_ETH_RSS_L4_DST_ONLY"]
                                           | RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_TCP"]))


@pytest.mark.dpdk
def test_the_generated_c_steers_portless_frames_as_the_simulator(tmp_path, lan, monkeypatch):
    """The replay harness (nf_rss_core with the plan's portless_fields) gives every frame of the
    pcap the hash and core the simulator and the per-queue split give it."""
    from explorer.verify.replay import run_replay

    monkeypatch.chdir(ROOT)
    trace, kinds = lan
    plan = parallel_plan(pipeline.solve(NF, nic="e810", cores=4, quality=False), "sn", 4)
    project = write_project(plan, tmp_path / "service_meter")
    assert ".portless_fields = NF_FIELD_SRC_IP | NF_FIELD_DST_IP," in (project.folder / "nf_plan.c").read_text()
    run = run_replay(project, trace)
    expected = cores_of(plan, trace)
    assert np.array_equal(run.cores, expected)
    portless = kinds["icmp"] + kinds["first_fragment"] + kinds["later_fragment"]
    assert len(set(run.cores[portless].tolist())) == 4


def _run_split(project, trace, cores, folder: Path):
    """nfx-nf on net_pcap ports whose rx queue c of device d reads the frames ``cores`` gives c."""
    from explorer.codegen.compile import build_program
    from explorer.processes import eal_prefix, run_child
    from explorer.traffic.pcap import write_pcap
    from explorer.verify.replay import eal_args

    plan = project.plan
    (folder / "out").mkdir(parents=True)
    vdevs = []
    for d in range(plan.devices):
        for c in range(plan.cores):
            picked = np.flatnonzero((trace.devices == d) & (cores == c))
            write_pcap(folder / f"in{d}-{c}.pcap", trace.timestamps[picked], [trace.frames[i] for i in picked])
        rx = ",".join(f"rx_pcap={folder / f'in{d}-{c}.pcap'}" for c in range(plan.cores))
        tx = ",".join(f"tx_pcap={folder / 'out' / f'{d}-{c}.pcap'}" for c in range(plan.cores))
        vdevs += ["--vdev", f"net_pcap{d},{rx},{tx}"]
    with eal_prefix("portless") as prefix:
        return run_child([str(build_program(project, "nf")), *eal_args(plan.cores, prefix), *vdevs, "--",
                          "--rx-time", "--ordered"], timeout=120)


@pytest.mark.dpdk
def test_the_program_checks_the_core_of_portless_frames(tmp_path, lan, monkeypatch):
    """net_pcap does not hash, so each lcore checks its frames against the plan: frames without ports
    on a ports-only plan are checked too (they were let through unchecked), so a split that puts one
    ICMP echo on another core stops the run naming it, and the simulator's split runs clean."""
    from explorer.traffic.pcap import read_pcap
    from explorer.verify.pcap_run import microsecond_trace

    monkeypatch.chdir(ROOT)
    trace, kinds = lan
    trace = microsecond_trace(trace)
    plan = parallel_plan(pipeline.solve(NF, nic="e810", cores=4, quality=False), "sn", 4)
    project = write_project(plan, tmp_path / "service_meter")
    cores = cores_of(plan, trace)
    done = _run_split(project, trace, cores, tmp_path / "right")
    assert done.returncode == 0, done.stderr
    for c in range(4):  # every LAN frame forwarded to the WAN by the core the plan gives it
        sent = read_pcap(tmp_path / "right" / "out" / f"1-{c}.pcap")[1]
        assert list(sent) == [trace.frames[i] for i in np.flatnonzero(cores == c)]
    wrong = cores.copy()
    echo = kinds["icmp"][3]
    wrong[echo] = (wrong[echo] + 1) % 4
    done = _run_split(project, trace, wrong, tmp_path / "wrong")
    assert done.returncode == 1
    assert "a packet of IP protocol 1" in done.stderr, done.stderr[-2000:]
