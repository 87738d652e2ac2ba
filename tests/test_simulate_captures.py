"""nfx simulate on a user's capture with odd frames mixed in (802.1Q and QinQ tags, IPv6, ARP,
runts, frames cut inside the IPv4 or L4 header, IPv4 options, fragments, TCP options, a jumbo
frame), checked packet by packet against a reference written here from the wire format: the
bit-by-bit Toeplitz hash of the fields the plan says each device hashes, the low bits of the hash
into the plan's RETA. The rules the reference follows are nf.h's and the NIC model's
(explorer/simulate/steering.py): unfragmented TCP/UDP whose L4 header is present hashes every
field, other IPv4 its addresses only, anything else (tags included) hash 0; runts reach no core."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import dpkt
import pytest

from explorer import pipeline
from explorer.rss.toeplitz import toeplitz_hash
from explorer.traffic.pcap import TrafficWarning

ROOT = Path(__file__).resolve().parent.parent
MACS = bytes.fromhex("020000000002" "020000000001")


def _ipv4(rng: random.Random, proto: int, opts: bytes = b"", fragment: int = 0) -> dpkt.ip.IP:
    if proto == 6:
        l4 = dpkt.tcp.TCP(sport=rng.randrange(1024, 65536), dport=rng.choice((22, 80, 443)), flags=dpkt.tcp.TH_SYN,
                          opts=b"\x02\x04\x05\xb4\x01\x03\x03\x07" if rng.random() < 0.5 else b"")
        l4.off = 5 + len(l4.opts) // 4
    elif proto == 17:
        l4 = dpkt.udp.UDP(sport=rng.randrange(1024, 65536), dport=53, data=b"q" * rng.randrange(30))
        l4.ulen = len(l4)
    else:
        l4 = dpkt.icmp.ICMP(type=8, data=b"ping")
    ip = dpkt.ip.IP(src=bytes([10, 0, rng.randrange(256), rng.randrange(1, 255)]),
                    dst=bytes([192, 168, rng.randrange(4), rng.randrange(1, 255)]), p=proto, ttl=64, data=l4,
                    opts=opts)
    ip.hl = 5 + len(opts) // 4
    ip.offset = fragment
    ip.mf = 1 if proto == 17 and not fragment and rng.random() < 0.3 else 0  # a first fragment
    ip.len = len(ip)
    return ip


def _frames(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    frames = []
    for _ in range(600):
        kind = rng.randrange(12)
        ip = _ipv4(rng, rng.choice((6, 17, 1)), b"\x94\x04\x00\x00" if kind == 1 else b"", 64 if kind == 2 else 0)
        eth = MACS + b"\x08\x00" + bytes(ip)
        if kind == 3:
            eth = MACS + b"\x81\x00\x00\x05" + eth[12:]  # 802.1Q
        elif kind == 4:
            eth = MACS + b"\x88\xa8\x00\x05\x81\x00\x00\x07" + eth[12:]  # QinQ
        elif kind == 5:
            udp = dpkt.udp.UDP(sport=rng.randrange(65536), dport=53)
            udp.ulen = len(udp)
            eth = MACS + b"\x86\xdd" + bytes(dpkt.ip6.IP6(src=bytes(15) + b"\x01", dst=bytes(15) + b"\x02", nxt=17,
                                                            hlim=64, data=udp, plen=len(udp)))
        elif kind == 6:
            eth = MACS + b"\x08\x06" + bytes(dpkt.arp.ARP())
        elif kind == 7:
            eth = eth[:rng.randrange(14)]  # a runt
        elif kind == 8:
            eth = eth[:rng.randrange(14, 14 + 4 * (eth[14] & 15) + 20)]  # cut in the IPv4 or L4 header
        elif kind == 9 and rng.random() < 0.05:
            eth = eth + bytes(9018 - len(eth))  # the longest jumbo frame
        frames.append(eth)
    return frames


def _write(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 100 + i // 50, i % 50 * 1000, len(frame), len(frame)) + frame)


def _reference_core(device, frame: bytes) -> int | None:
    """The core RSS gives ``frame`` under the plan of ``device``; None for a runt."""
    if len(frame) < 14:
        return None
    data = b""
    version, ihl = (frame[14] >> 4, frame[14] & 15) if len(frame) > 14 else (0, 0)
    if frame[12:14] == b"\x08\x00" and version == 4 and ihl >= 5 and len(frame) >= 14 + 4 * ihl:
        l4 = 14 + 4 * ihl
        fragment = int.from_bytes(frame[20:22], "big") & 0x3FFF
        whole_l4 = not fragment and (frame[23] == 6 and len(frame) >= l4 + 20 or frame[23] == 17 and len(frame) >= l4 + 8)
        values = {"src_ip": frame[26:30], "dst_ip": frame[30:34], "src_port": frame[l4:l4 + 2],
                  "dst_port": frame[l4 + 2:l4 + 4]}
        data = b"".join(values[f] for f in device.fields if whole_l4 or f.endswith("_ip"))
    hashed = toeplitz_hash(device.key, data)
    return device.reta[hashed & (len(device.reta) - 1)]


@pytest.mark.parametrize("nf,nic,cores", [("fw", "e810", 4), ("psd", "x710", 5), ("pol", "82599", 16),
                                          ("fw", "cx5", 64)])
def test_per_core_counts_of_a_capture_with_odd_frames_match_a_reference(tmp_path, nf, nic, cores):
    lan, wan = _frames(1), _frames(2)
    _write(tmp_path / "lan.pcap", lan)
    _write(tmp_path / "wan.pcap", wan)
    solution = pipeline.solve(ROOT / "sample_nfs" / f"{nf}.c", nic=nic, cores=cores, quality=False)
    with pytest.warns(TrafficWarning) as warned:
        report = pipeline.simulate(solution, {0: tmp_path / "lan.pcap", 1: tmp_path / "wan.pcap"})
    said = " ".join(str(w.message) for w in warned)
    assert "carry a VLAN tag" in said and "shorter than an Ethernet header" in said
    expected = [0] * cores
    for number, frames in ((0, lan), (1, wan)):
        for frame in frames:
            core = _reference_core(solution.plan.device(number), frame)
            if core is not None:
                expected[core] += 1
    assert list(report.per_core) == expected
    assert report.packets == sum(expected) == sum(len(f) >= 14 for f in lan + wan)


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_the_frames_of_simulated_packets_are_their_numbers_in_their_captures(tmp_path, chunk):
    """``frames_at`` gives each packet the simulator numbers (runts left out) its device and frame
    number (runts counted, as Wireshark counts them): the same as ``nfx check`` gives a packet of
    the whole merged trace (``capture_frames``), at any chunk size and for any number asked."""
    import numpy as np

    from explorer.simulate.streams import frames_at
    from explorer.traffic.pcap import load_inputs
    from explorer.verify.report import capture_frames
    from explorer.wire import reaching_the_nf

    lan, wan = _frames(3)[:200], _frames(4)[:150]
    _write(tmp_path / "lan.pcap", lan)
    _write(tmp_path / "wan.pcap", wan)
    with pytest.warns(TrafficWarning):
        trace = load_inputs([f"0={tmp_path / 'lan.pcap'}", f"1={tmp_path / 'wan.pcap'}"])
    numbered = np.flatnonzero(reaching_the_nf(trace.frames))  # the simulator's packet n is trace packet numbered[n]
    frames = capture_frames(trace.devices, np.zeros(0, dtype=np.int64))
    expected = {n: (int(trace.devices[i]), int(frames[i])) for n, i in enumerate(numbered.tolist())}
    assert len(expected) < len(lan) + len(wan)  # runts are left out of the numbers, counted in the frames
    found = frames_at({0: tmp_path / "lan.pcap", 1: tmp_path / "wan.pcap"}, range(len(expected)), chunk)
    assert found == expected
    some = [len(expected) - 1, 0, 57, 57]
    assert frames_at({0: tmp_path / "lan.pcap", 1: tmp_path / "wan.pcap"}, some, chunk) == \
        {n: expected[n] for n in some}
    assert frames_at({0: tmp_path / "lan.pcap"}, [], chunk) == {}


def test_cli_simulate_names_the_frames_of_its_violation_examples(tmp_path):
    """Violation examples named packets by their number in the merged trace, which no capture
    shows; they now say which frame of which capture each packet is, as ``nfx check`` does."""
    import json
    import subprocess
    import sys

    from explorer.simulate.streams import frames_at
    from explorer.traffic.generators import generate

    trace = generate("bidir", packets=2000, flows=200, seed=1)  # requests and their replies
    for dev, name in ((0, "lan.pcap"), (1, "wan.pcap")):
        part = trace.for_device(dev)
        _write(tmp_path / name, list(part.frames))
    # a WAN key unrelated to the LAN's: the firewall's replies reach other cores than their requests
    args = [sys.executable, "-m", "explorer.cli", "simulate", "sample_nfs/fw.c", "--in", f"0={tmp_path / 'lan.pcap'}",
            "--in", f"1={tmp_path / 'wan.pcap'}", "--cores", "4", "--key", "1=" + "6d5a" * 26]
    data = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout)
    assert data["captures"] == {"0": "lan.pcap", "1": "wan.pcap"}
    examples = data["violations"]["examples"]
    assert examples and all(len(ex["frames"]) == len(ex["packets"]) for ex in examples)
    found = frames_at({0: tmp_path / "lan.pcap", 1: tmp_path / "wan.pcap"}, [p for ex in examples for p in ex["packets"]])
    assert [[(f["device"], f["frame"]) for f in ex["frames"]] for ex in examples] == \
        [[found[p] for p in ex["packets"]] for ex in examples]
    text = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    ex = examples[0]
    f = ex["frames"][0]
    assert ex["key_text"].startswith("{src_ip: 10.") and ex["key"] not in text  # the key's fields, not its bytes
    assert (f"{ex['object']} key {ex['key_text']}: packet {ex['packets'][0]} (frame {f['frame']} of "
            f"{('lan.pcap', 'wan.pcap')[f['device']]}) on core {ex['cores'][0]}") in text


def test_the_packets_behind_examples_read_from_captures_say_their_frame(tmp_path):
    """What the explorer shows for a simulation's examples (``packets_of``): from captures, each
    packet also says which frame of which file it is."""
    lan, wan = _frames(7)[:40], _frames(8)[:40]
    _write(tmp_path / "lan.pcap", lan)
    _write(tmp_path / "wan.pcap", wan)
    captures = {0: tmp_path / "lan.pcap", 1: tmp_path / "wan.pcap"}
    with pytest.warns(TrafficWarning):
        found = pipeline.packets_of(captures, [0, 1, 30])
    from explorer.simulate.streams import frames_at

    expected = frames_at(captures, [0, 1, 30])
    assert {n: (p["device"], p["frame"], p["capture"]) for n, p in found.items()} == \
        {n: (d, f, ("lan.pcap", "wan.pcap")[d]) for n, (d, f) in expected.items()}
    assert "frame" not in pipeline.packets_of("uniform", [3], packets=10, flows=5)[3]


def test_an_example_packet_the_captures_no_longer_hold_keeps_only_its_number(tmp_path):
    """A capture rewritten between the simulation and the naming of its frames (or any number past
    its end) leaves that example without frames, instead of failing the command."""
    from explorer.commands.simulate import name_frames

    _write(tmp_path / "lan.pcap", _frames(9)[:20])
    data = {"violations": {"count": 2, "examples": [
        {"object": "flows", "key": "ab", "cores": [0, 1], "packets": [3, 999]},
        {"object": "flows", "key": "cd", "cores": [0, 1], "packets": [1, 2]}]}}
    name_frames(data, {0: str(tmp_path / "lan.pcap")})
    first, second = data["violations"]["examples"]
    assert "frames" not in first and [f["device"] for f in second["frames"]] == [0, 0]
    assert data["captures"] == {"0": "lan.pcap"}
