"""Traffic: pcap/pcapng I/O, packet fields against a slow dpkt reference, seeded generators, `nfx traffic`."""
from __future__ import annotations

import inspect
import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import dpkt.pcapng as ng
import numpy as np
import pytest

from explorer.cli import main as nfx
from explorer.errors import ConfigError, OutputError, TrafficError
from explorer.traffic import pcap as pcap_module
from explorer.traffic.field_arrays import HEAD, PacketFields, extract_fields, fields_of
from explorer.traffic.frames import checksum
from explorer.traffic.generators import (GENERATORS, LAN, ROUTER_MAC, WAN, AddressPool, generate,
                                         generate_fields, generate_headers, host_mac,
                                         kind_parameters)
from explorer.traffic.pcap import TrafficWarning, iter_pcap, load_inputs, read_pcap, write_pcap, write_trace
from explorer.traffic.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
REAL = Path("/usr/share/doc/python3-dpkt/examples/data")  # Debian's python3-dpkt
REAL_CAPTURES = ("dns_icmp.pcap", "http.pcap", "nb6-http.pcap", "truncated_dns.pcap")
KINDS = sorted(GENERATORS)


def real(name: str) -> Path:
    path = REAL / name
    assert path.is_file(), f"{path} is missing: apt-get install python3-dpkt"
    return path


def assert_same_trace(a: Trace, b: Trace) -> None:
    assert np.array_equal(a.timestamps, b.timestamps)
    assert np.array_equal(a.devices, b.devices)
    assert a.frames == b.frames


def small_trace(n: int = 50, seed: int = 3) -> tuple[np.ndarray, tuple[bytes, ...]]:
    rng = np.random.default_rng(seed)
    stamps = np.sort(rng.integers(10**18, 2 * 10**18, n, dtype=np.uint64))
    frames = tuple(rng.bytes(int(k)) for k in rng.integers(0, 200, n))
    return stamps, frames


# ---- pcap I/O -------------------------------------------------------------------------------

@pytest.mark.parametrize("nano", [True, False])
def test_pcap_round_trip_and_dpkt_agrees(tmp_path, nano):
    stamps, frames = small_trace()
    path = tmp_path / "t.pcap"
    write_pcap(path, stamps, frames, nano=nano)
    ts, got = read_pcap(path)
    assert ts.dtype == np.uint64 and got == frames
    expected = stamps if nano else stamps // 1000 * 1000
    assert np.array_equal(ts, expected)
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        records = list(reader)
    assert [bytes(b) for _, b in records] == list(frames)
    if nano:  # dpkt gives nanosecond stamps as Decimal seconds
        assert [int(t * 10**9) for t, _ in records] == stamps.tolist()


@pytest.mark.parametrize("nano", [True, False])
def test_reads_what_dpkt_writes(tmp_path, nano):
    stamps, frames = small_trace(20)
    path = tmp_path / "d.pcap"
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, nano=nano, snaplen=65535)
        for t, frame in zip(stamps.tolist(), frames):
            writer.writepkt(frame, ts=t // 10**9 + (t % 10**9) / 1e9)
    ts, got = read_pcap(path)
    assert got == frames
    # dpkt goes through a float, which holds only about 0.25 us at this epoch.
    assert np.all(np.abs(ts.astype(np.int64) - stamps.astype(np.int64)) <= (1000 if nano else 1000))


def test_reads_big_endian_pcap(tmp_path):
    frames = (b"\x01" * 60, b"\x02" * 70)
    data = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    for k, frame in enumerate(frames):
        data += struct.pack(">IIII", 5 + k, 999_999_999, len(frame), len(frame)) + frame
    path = tmp_path / "be.pcap"
    path.write_bytes(data)
    ts, got = read_pcap(path)
    assert got == frames and ts.tolist() == [5_999_999_999, 6_999_999_999]


def test_frames_a_capture_says_end_with_their_fcs_lose_it(tmp_path):
    """The link-type word's F bit (26) and FCS length in 16-bit words (bits 28-31): a NIC strips the
    FCS before the NF sees a frame; a frame the capture truncated keeps its bytes (no FCS in them)."""
    frames = (b"\x01" * 60 + b"FCS!", b"\x02" * 70 + b"FCS!", b"\x03" * 40)
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1 | 1 << 26 | 2 << 28)
    for k, frame in enumerate(frames):
        wire = len(frame) if k < 2 else 200  # the third was cut at 40 bytes
        data += struct.pack("<IIII", 5 + k, 0, len(frame), wire) + frame
    path = tmp_path / "fcs.pcap"
    path.write_bytes(data)
    assert read_pcap(path)[1] == (b"\x01" * 60, b"\x02" * 70, b"\x03" * 40)
    data = data[:20] + struct.pack("<I", 1 | 2 << 28) + data[24:]  # no F bit: the length means nothing
    path.write_bytes(data)
    assert read_pcap(path)[1] == frames


def test_empty_but_valid_pcap_has_no_packets(tmp_path):
    path = tmp_path / "empty.pcap"
    write_pcap(path, [], ())
    assert path.stat().st_size == 24
    ts, frames = read_pcap(path)
    assert len(ts) == 0 and ts.dtype == np.uint64 and frames == ()
    assert list(iter_pcap(path, 10)) == []


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunked_reading_equals_whole_reading(tmp_path, monkeypatch, chunk):
    trace = generate("mixed", 600, 40, seed=5)
    path = tmp_path / "c.pcap"
    write_pcap(path, trace.timestamps, trace.frames)
    monkeypatch.setattr(pcap_module, "_READ_SIZE", 997)  # many read blocks, records split across them
    chunks = list(iter_pcap(path, chunk))
    assert all(len(f) == chunk for _, f in chunks[:-1]) and 0 < len(chunks[-1][1]) <= chunk
    assert np.array_equal(np.concatenate([t for t, _ in chunks]), trace.timestamps)
    assert sum((f for _, f in chunks), ()) == trace.frames
    ts, frames = read_pcap(path)
    assert np.array_equal(ts, trace.timestamps) and frames == trace.frames


def test_iter_pcap_checks_arguments_at_once(tmp_path):
    with pytest.raises(TrafficError, match="chunk size"):
        iter_pcap(tmp_path / "x.pcap", 0)
    with pytest.raises(TrafficError, match="no such file"):
        iter_pcap(tmp_path / "x.pcap", 10)


def test_every_truncation_is_reported(tmp_path):
    stamps, frames = small_trace(6, seed=8)
    path = tmp_path / "full.pcap"
    write_pcap(path, stamps, frames)
    data = path.read_bytes()
    boundaries = {24}
    for frame in frames:
        boundaries.add(max(boundaries) + 16 + len(frame))
    cut = tmp_path / "cut.pcap"
    for size in range(1, len(data)):
        cut.write_bytes(data[:size])
        if size in boundaries:  # a whole number of records: a valid, shorter capture
            ts, got = read_pcap(cut)
            assert got == frames[:len(got)] and np.array_equal(ts, stamps[:len(got)])
            continue
        with pytest.raises(TrafficError, match="truncated|too short") as info:
            read_pcap(cut)
        assert str(cut) in str(info.value)


def test_truncation_message_names_the_byte(tmp_path):
    stamps, frames = small_trace(3, seed=1)
    path = tmp_path / "t.pcap"
    write_pcap(path, stamps, frames)
    data = path.read_bytes()
    second = 24 + 16 + len(frames[0])
    path.write_bytes(data[:second + 16 + 1])
    with pytest.raises(TrafficError, match=f"truncated record at byte {second} \\(frame 2\\)"):
        read_pcap(path)
    path.write_bytes(data[:second + 5])
    with pytest.raises(TrafficError, match=f"truncated record header at byte {second}.*5 of 16"):
        read_pcap(path)


def test_real_truncated_capture():
    with pytest.raises(TrafficError, match="truncated record header at byte 240"):
        read_pcap(real("truncated_dns_2.pcap"))


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"<html>not a capture</html>", "bad magic 0x3c68746d, not a pcap"),
    (b"\xd4\xc3", "too short"),
    (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "truncated file header \\(8 of 24"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101),
     "link type 101 is not Ethernet; only Ethernet \\(link type 1\\) captures are supported; this is a raw IP "
     "capture: give it Ethernet headers with `tcprewrite --dlt=enet"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105), "link type 105 is not Ethernet; only Ethernet "
     "\\(link type 1\\) captures are supported$"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1), "version 3.0"),
    (struct.pack("<I", 0xA1B2CD34) + bytes(20), "modified"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 1, 0, 10**7, 60),
     "record at byte 24 \\(frame 1\\) claims 10000000 captured bytes.*corrupt"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 1, 10**6, 1, 1)
     + b"x", "1000000 microseconds, not below one second"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(TrafficError, match=message) as info:
        read_pcap(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_rejected(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "noise.pcap"
    path.write_bytes(rng.bytes(int(rng.integers(1, 3000))))
    with pytest.raises(TrafficError):
        read_pcap(path)
    # ... and with a valid pcap header in front, noise records are still caught.
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + rng.bytes(3000))
    with pytest.raises(TrafficError, match="corrupt|truncated"):
        read_pcap(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(TrafficError, match="no such file"):
        read_pcap(tmp_path / "nope.pcap")
    with pytest.raises(TrafficError, match="is a directory"):
        read_pcap(tmp_path)


def test_write_errors(tmp_path):
    with pytest.raises(TrafficError, match="2 timestamps for 1 frames"):
        write_pcap(tmp_path / "a.pcap", [1, 2], (b"x",))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="cannot write .*afile/a.pcap: .*afile is not a folder"):
        write_pcap(tmp_path / "afile" / "a.pcap", [1], (b"x",))
    (tmp_path / "link.pcap").symlink_to(tmp_path / "afile")
    with pytest.raises(OutputError, match="link.pcap: it is a symbolic link"):
        write_pcap(tmp_path / "link.pcap", [1], (b"x",))
    assert (tmp_path / "afile").read_text() == "x"
    with pytest.raises(TrafficError, match="2106"):
        write_pcap(tmp_path / "a.pcap", [2**63], (b"x",))


# ---- pcapng ---------------------------------------------------------------------------------

def _pcapng(blocks: list) -> bytes:
    return b"".join(bytes(b) for b in blocks)


def test_pcapng_from_dpkt_writer(tmp_path):
    stamps, frames = small_trace(10)
    path = tmp_path / "a.pcapng"
    with open(path, "wb") as f:
        writer = ng.Writer(f)
        for t, frame in zip(stamps.tolist(), frames):
            writer.writepkt(frame, ts=t / 1e9)
    ts, got = read_pcap(path)
    assert got == frames
    assert np.all(np.abs(ts.astype(np.int64) - stamps.astype(np.int64)) <= 1000)


def test_pcapng_resolutions_offsets_and_interfaces(tmp_path):
    nano = ng.InterfaceDescriptionBlockLE(opts=[ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09"),
                                                ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)])
    binary = ng.InterfaceDescriptionBlockLE(opts=[
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSRESOL, data=b"\x8a"),  # 1/1024 s
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSOFFSET, data=struct.pack("<q", 100)),
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)])
    t = 1_700_000_000_123_456_789
    blocks = [ng.SectionHeaderBlockLE(), nano, binary,
              ng.EnhancedPacketBlockLE(iface_id=0, ts_high=t >> 32, ts_low=t & 0xFFFFFFFF, pkt_data=b"a" * 60),
              ng.EnhancedPacketBlockLE(iface_id=1, ts_high=0, ts_low=3 * 1024 + 512, pkt_data=b"b" * 61)]
    path = tmp_path / "b.pcapng"
    path.write_bytes(_pcapng(blocks))
    with pytest.warns(TrafficWarning, match="1 of 2 packets have a timestamp earlier"):
        ts, frames = read_pcap(path)
    assert frames == (b"a" * 60, b"b" * 61)
    assert ts.tolist() == [t, 103_500_000_000]


def test_pcapng_big_endian(tmp_path):
    blocks = [ng.SectionHeaderBlock(), ng.InterfaceDescriptionBlock(),
              ng.EnhancedPacketBlock(ts_high=0, ts_low=2_000_001, pkt_data=b"c" * 64)]
    path = tmp_path / "be.pcapng"
    path.write_bytes(_pcapng(blocks))
    ts, frames = read_pcap(path)
    assert frames == (b"c" * 64,) and ts.tolist() == [2_000_001_000]


def test_pcapng_errors(tmp_path):
    path = tmp_path / "bad.pcapng"
    good = _pcapng([ng.SectionHeaderBlockLE(), ng.InterfaceDescriptionBlockLE(),
                    ng.EnhancedPacketBlockLE(pkt_data=b"d" * 64)])
    path.write_bytes(good[:-10])
    with pytest.raises(TrafficError, match="truncated block at byte"):
        read_pcap(path)
    path.write_bytes(_pcapng([ng.SectionHeaderBlockLE(), ng.InterfaceDescriptionBlockLE(linktype=113),
                              ng.EnhancedPacketBlockLE(pkt_data=b"d" * 64)]))
    with pytest.raises(TrafficError, match="link type 113, not Ethernet.*Linux cooked.*tcprewrite --dlt=enet"):
        read_pcap(path)
    path.write_bytes(_pcapng([ng.SectionHeaderBlockLE(), ng.EnhancedPacketBlockLE(pkt_data=b"e" * 64)]))
    with pytest.raises(TrafficError, match="names interface 0, which is not described"):
        read_pcap(path)
    path.write_bytes(good[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(TrafficError, match="different length"):
        read_pcap(path)


# ---- one frame-size rule; odd captures are kept and reported once --------------------------------

def _classic(records: list[tuple[int, int, bytes]]) -> bytes:
    """A little-endian microsecond pcap of (seconds, wire length, captured bytes) records."""
    out = struct.pack("<IHHiIII", dpkt.pcap.TCPDUMP_MAGIC, 2, 4, 0, 0, 262144, 1)
    for sec, wire, data in records:
        out += struct.pack("<IIII", sec, 0, len(data), wire) + data
    return out


@pytest.mark.parametrize("size,ok", [(9018, True), (9019, False), (70000, False)])
def test_frames_over_9018_bytes_are_refused_in_both_formats(tmp_path, size, ok):
    classic, ng_path = tmp_path / "big.pcap", tmp_path / "big.pcapng"
    classic.write_bytes(_classic([(1, 60, b"a" * 60), (2, size, b"b" * size)]))
    ng_path.write_bytes(_pcapng([ng.SectionHeaderBlockLE(), ng.InterfaceDescriptionBlockLE(snaplen=0),
                                 ng.EnhancedPacketBlockLE(pkt_data=b"a" * 60),
                                 ng.EnhancedPacketBlockLE(pkt_data=b"b" * size)]))
    for path in (classic, ng_path):
        if ok:
            assert [len(f) for f in read_pcap(path)[1]] == [60, size]
            continue
        with pytest.raises(TrafficError, match=rf"frame 2 has {size} bytes, more than the 9018 an NF takes"):
            read_pcap(path)
        with pytest.raises(TrafficError, match=rf"frame 2 has {size} bytes"):
            list(iter_pcap(path, 1))  # simulate's streaming path: the same rule


def test_snaplen_cuts_are_reported_once_with_counts(tmp_path, recwarn):
    path = tmp_path / "cut.pcap"
    path.write_bytes(_classic([(1, 1514, b"a" * 96), (2, 60, b"b" * 60), (3, 900, b"c" * 96)]))
    ts, frames = read_pcap(path)
    assert [len(f) for f in frames] == [96, 60, 96]  # kept as captured
    messages = [str(w.message) for w in recwarn if issubclass(w.category, TrafficWarning)]
    assert messages == [f"{path}: 2 of 3 packets were cut short by the capture's snapshot length (fewer bytes "
                        "captured than on the wire); the NF sees the captured bytes"]
    ng_path = tmp_path / "cut.pcapng"
    block = bytearray(bytes(ng.EnhancedPacketBlockLE(pkt_data=b"d" * 64)))
    block[24:28] = struct.pack("<I", 1000)  # the original length (dpkt's writer sets it to the captured one)
    ng_path.write_bytes(_pcapng([ng.SectionHeaderBlockLE(), ng.InterfaceDescriptionBlockLE()]) + bytes(block))
    with pytest.warns(TrafficWarning, match="1 of 1 packets were cut short"):
        read_pcap(ng_path)


def test_records_claiming_more_bytes_than_the_wire_had_are_reported(tmp_path, recwarn):
    path = tmp_path / "odd.pcap"
    path.write_bytes(_classic([(1, 40, b"a" * 96), (2, 60, b"b" * 60), (3, 20, b"c" * 64)]))
    assert [len(f) for f in read_pcap(path)[1]] == [96, 60, 64]  # kept as captured
    messages = [str(w.message) for w in recwarn if issubclass(w.category, TrafficWarning)]
    assert messages == [f"{path}: 2 of 3 packets claim more captured bytes than their length on the wire (a "
                        "damaged or hand-edited capture); the NF sees the captured bytes"]


def test_vlan_tagged_frames_are_kept_and_reported_once_with_counts(tmp_path, recwarn):
    """nf.h reads no VLAN tag: a tagged IPv4 frame is not IPv4 to the NF (fw drops it) and nfx
    steers it unhashed, so a capture with 802.1Q or QinQ tags says so instead of putting every
    packet on one core without a word."""
    ip = bytes(dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=17, data=dpkt.udp.UDP(sport=1, dport=2)))
    plain = b"\x02" * 12 + b"\x08\x00" + ip
    dot1q = b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + ip
    qinq = b"\x02" * 12 + b"\x88\xa8\x00\x05\x81\x00\x00\x07\x08\x00" + ip
    frames = (plain, dot1q, qinq, b"\x81\x00", plain)
    write_pcap(tmp_path / "tagged.pcap", range(5), frames)
    assert read_pcap(tmp_path / "tagged.pcap")[1] == frames  # kept as they are
    messages = [str(w.message) for w in recwarn if issubclass(w.category, TrafficWarning) and "VLAN" in str(w.message)]
    assert messages == [f"{tmp_path / 'tagged.pcap'}: 2 of 5 packets carry a VLAN tag (802.1Q/802.1ad); nf.h reads "
                        "no tag, so the NF sees them as non-IPv4 frames and nfx steers them unhashed (RETA entry 0); "
                        "remove the tags first, e.g. `tcprewrite --enet-vlan=del -i IN.pcap -o OUT.pcap`"]
    with open(tmp_path / "tagged.pcapng", "wb") as out:
        writer = dpkt.pcapng.Writer(out)
        for frame in frames:
            writer.writepkt(frame, ts=1)
    with pytest.warns(TrafficWarning, match="2 of 5 packets carry a VLAN tag"):
        read_pcap(tmp_path / "tagged.pcapng")
    recwarn.clear()
    write_pcap(tmp_path / "untagged.pcap", range(2), (plain, plain))
    read_pcap(tmp_path / "untagged.pcap")
    assert not [w for w in recwarn if "VLAN" in str(w.message)]


def test_out_of_order_timestamps_are_kept_in_file_order_and_reported(tmp_path, recwarn):
    write_pcap(tmp_path / "a.pcap", [10, 30, 20, 40, 5], (b"a0", b"a1", b"a2", b"a3", b"a4"))
    write_pcap(tmp_path / "b.pcap", [25, 35], (b"b0", b"b1"))
    trace = load_inputs([f"0={tmp_path / 'a.pcap'}", f"1={tmp_path / 'b.pcap'}"])
    assert trace.frames == (b"a0", b"b0", b"a1", b"a2", b"b1", b"a3", b"a4")  # a's order is the file's
    assert trace.timestamps.tolist() == [10, 25, 30, 30, 35, 40, 40]  # late packets at the latest time before them
    messages = [str(w.message) for w in recwarn  # (its 2-byte frames are runts too: said apart)
                if issubclass(w.category, TrafficWarning) and "have a timestamp" in str(w.message)]
    assert messages == [f"{tmp_path / 'a.pcap'}: 2 of 5 packets have a timestamp earlier than a packet before them; "
                        "they are kept in file order, at the latest time before them"]
    chunks = list(iter_pcap(tmp_path / "a.pcap", 2))  # counted across chunks too
    assert [c[1] for c in chunks] == [(b"a0", b"a1"), (b"a2", b"a3"), (b"a4",)]
    from explorer.simulate.streams import merged_pcaps  # simulate's streamed merge: the same order
    for chunk in (1, 2, 100):
        streamed = [f for frames, _ in merged_pcaps({0: tmp_path / "a.pcap", 1: tmp_path / "b.pcap"}, chunk)
                    for f in frames]
        assert tuple(streamed) == trace.frames


# ---- inputs and traces ----------------------------------------------------------------------

def test_load_inputs_merges_ties_by_device_then_file_order(tmp_path):
    write_pcap(tmp_path / "a.pcap", [5, 10, 10, 20], (b"a0", b"a1", b"a2", b"a3"))
    write_pcap(tmp_path / "b.pcap", [10, 10, 15], (b"b0", b"b1", b"b2"))
    trace = load_inputs([f"1={tmp_path / 'b.pcap'}", f"0={tmp_path / 'a.pcap'}"])
    assert trace.frames == (b"a0", b"a1", b"a2", b"b0", b"b1", b"b2", b"a3")
    assert trace.devices.tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert trace.timestamps.tolist() == [5, 10, 10, 10, 10, 15, 20]


@pytest.mark.parametrize("specs, message", [
    ([], "no input traffic"),
    (["x=a.pcap"], "device 'x' is not a number"),
    (["a.pcap"], "expected DEV=PCAP"),
    (["0="], "expected DEV=PCAP"),
    (["70000=a.pcap"], "from 0 to 65535"),
    (["-1=a.pcap"], "not a number"),
])
def test_bad_input_specs(specs, message):
    with pytest.raises(ConfigError, match=message):
        load_inputs(specs)


def test_duplicate_device_and_missing_file(tmp_path):
    write_pcap(tmp_path / "a.pcap", [1], (b"a",))
    with pytest.raises(ConfigError, match="device 0 is given twice"):
        load_inputs([f"0={tmp_path / 'a.pcap'}", f"0={tmp_path / 'a.pcap'}"])
    with pytest.raises(TrafficError, match="no such file"):
        load_inputs([f"0={tmp_path / 'missing.pcap'}"])


def test_write_trace_then_load_inputs_gives_the_trace_back(tmp_path):
    trace = generate("mixed", 3000, 200, seed=9)
    written = write_trace(trace, tmp_path / "out")
    assert written == {0: tmp_path / "out" / "dev0.pcap", 1: tmp_path / "out" / "dev1.pcap"}
    assert_same_trace(load_inputs([f"{d}={p}" for d, p in written.items()]), trace)


def test_write_trace_writes_requested_empty_devices(tmp_path):
    trace = Trace(np.array([1, 2], np.uint64), np.array([0, 0], np.uint16), (b"x" * 64, b"y" * 64))
    written = write_trace(trace, tmp_path, devices=(0, 1, 2))
    assert sorted(written) == [0, 1, 2]
    assert read_pcap(written[2])[1] == ()
    with pytest.raises(OutputError, match="exists and is not a folder"):
        write_trace(trace, written[0])
    # again over its own files (the marker says so): replaced; a file nfx did not write: kept, refused
    assert read_pcap(write_trace(trace, tmp_path, devices=(0, 1))[0])[1] == trace.frames
    assert not (tmp_path / "dev2.pcap").exists()  # of the earlier, larger set: removed
    (tmp_path / "dev1.pcap").write_bytes(b"edited")
    with pytest.raises(OutputError, match="dev1.pcap: it changed since nfx wrote it"):
        write_trace(trace, tmp_path, devices=(0, 1))
    assert (tmp_path / "dev1.pcap").read_bytes() == b"edited"


# ---- fields ---------------------------------------------------------------------------------

def reference_fields(frames) -> PacketFields:
    """nf.h's rules frame by frame with dpkt and struct: slow, obviously right, shares no code."""
    cols: dict[str, list] = {name: [] for name in PacketFields.__dataclass_fields__}
    for frame in frames:
        padded = frame + bytes(max(0, 14 - len(frame)))  # bytes past the end read as 0
        eth = dpkt.ethernet.Ethernet()  # the header layout only: dpkt's payload decoding
        dpkt.Packet.unpack(eth, padded)  # would follow VLAN tags and LLC, which nf.h does not
        ether_type = eth.type
        is_ipv4 = False
        ip = None
        if ether_type == 0x0800 and len(frame) >= 15:
            version, ihl = frame[14] >> 4, frame[14] & 15
            is_ipv4 = version == 4 and ihl >= 5 and len(frame) >= 14 + 4 * ihl
            if is_ipv4:  # dpkt's IPv4 header layout, without its option and payload parsing
                ip = dpkt.ip.IP()
                dpkt.Packet.unpack(ip, frame[14:])
                assert ip.hl == ihl
        frag = bool(is_ipv4 and (ip.mf or ip.offset))
        need = {6: 20, 17: 8}.get(ip.p if ip else -1)
        is_l4 = bool(is_ipv4 and not frag and need and len(frame) >= 14 + 4 * ip.hl + need)
        ports = struct.unpack_from(">HH", frame, 14 + 4 * ip.hl) if is_l4 else (0, 0)
        values = dict(length=len(frame), ether_type=ether_type,
                      eth_src=int.from_bytes(eth.src, "big"), eth_dst=int.from_bytes(eth.dst, "big"),
                      is_ipv4=is_ipv4, ihl=ip.hl if ip else 0, proto=ip.p if ip else 0, frag=frag,
                      src_ip=int.from_bytes(ip.src, "big") if ip else 0,
                      dst_ip=int.from_bytes(ip.dst, "big") if ip else 0,
                      is_l4=is_l4, src_port=ports[0], dst_port=ports[1])
        for name, value in values.items():
            cols[name].append(value)
    dtypes = dict(length=np.uint32, ether_type=np.uint16, eth_src=np.uint64, eth_dst=np.uint64,
                  is_ipv4=bool, ihl=np.uint8, proto=np.uint8, frag=bool, src_ip=np.uint32,
                  dst_ip=np.uint32, is_l4=bool, src_port=np.uint16, dst_port=np.uint16)
    return PacketFields(**{name: np.array(cols[name], dtype=dtypes[name]) for name in cols})


def assert_fields_equal(got: PacketFields, want: PacketFields) -> None:
    for name in PacketFields.__dataclass_fields__:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        bad = np.flatnonzero(a != b)
        assert len(bad) == 0, f"{name} differs at frames {bad[:5].tolist()}: {a[bad[:5]]} != {b[bad[:5]]}"
    assert got == want


@pytest.mark.parametrize("name", REAL_CAPTURES)
def test_fields_match_dpkt_on_real_captures(name):
    _, frames = read_pcap(real(name))
    assert len(frames) > 0
    fields = extract_fields(frames)
    assert_fields_equal(fields, reference_fields(frames))
    assert fields.is_l4.any()


def random_frames(n: int, seed: int) -> tuple[bytes, ...]:
    """Frames that probe every rule: runts, wrong versions, IHL 0..15 with and without room,
    fragments, TCP/UDP/other protocols, lengths around each threshold."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        length = int(rng.choice([rng.integers(0, 40), rng.integers(30, 100), rng.integers(60, 200)]))
        frame = bytearray(rng.bytes(length))
        if length >= 14 and rng.random() < 0.8:
            frame[12:14] = b"\x08\x00"
        if length >= 15 and rng.random() < 0.8:
            frame[14] = int(rng.choice([0x45, 0x46, 0x4F, 0x44, 0x40, 0x65, 0x5F]))
        if length >= 22 and rng.random() < 0.6:
            frame[20] &= int(rng.choice([0x40, 0x00, 0x20, 0xFF]))
            frame[21] = 0 if frame[20] & 0x1F == 0 and rng.random() < 0.8 else frame[21]
        if length >= 24:
            frame[23] = int(rng.choice([6, 17, 1, 47, int(rng.integers(256))]))
        frames.append(bytes(frame))
    return tuple(frames)


@pytest.mark.parametrize("seed", range(3))
def test_fields_match_dpkt_on_random_frames(seed):
    frames = random_frames(3000, seed)
    fields = extract_fields(frames)
    assert_fields_equal(fields, reference_fields(frames))
    # the sample exercises each rule both ways
    for flag in (fields.is_ipv4, fields.is_l4, fields.frag):
        assert flag.any() and not flag.all()
    assert (fields.ihl > 5).any() and (fields.length < 14).any()


def test_fields_read_ports_after_ip_options():
    frame = bytearray(82)  # 14 + 60 + 8: just room for the UDP header
    frame[12:14] = b"\x08\x00"
    frame[14] = 0x4F  # IHL 15: ports at byte 74, past the first 64 bytes
    frame[23] = 17
    frame[74:78] = struct.pack(">HH", 1234, 53)
    fields = extract_fields((bytes(frame), bytes(frame[:81])))
    assert fields.src_port.tolist() == [1234, 0] and fields.dst_port.tolist() == [53, 0]
    assert fields.is_l4.tolist() == [True, False] and HEAD >= 78


def test_fields_of_empty_and_select():
    empty = extract_fields(())
    assert len(empty) == 0 and empty.src_ip.dtype == np.uint32
    trace = generate("uniform", 100, 10, seed=1)
    fields = fields_of(trace)
    lan = fields.select(trace.devices == LAN)
    assert len(lan) == int((trace.devices == LAN).sum())
    assert PacketFields.concat([fields.select(slice(0, 40)), fields.select(slice(40, None))]) == fields


# ---- generators -----------------------------------------------------------------------------

def test_checksum_known_answers():
    rows = np.zeros((3, 20), dtype=np.uint8)
    rows[0, :8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]  # RFC 1071's example: sum 0xddf2
    rows[1] = list(bytes.fromhex("450000730000400040110000c0a80001c0a800c7"))  # a textbook IPv4 header
    rows[2, :6] = 0xFF  # words 0xffff x 3 and 0x0002 sum to 0x2ffff, which takes two folds
    rows[2, 7] = 0x02
    assert checksum(rows).tolist() == [0x220D, 0xB861, 0xFFFD]
    assert checksum(rows[:1], 0x10000).tolist() == [0x220C]  # the extra word sum is added



def flow_ids(fields: PacketFields, devices: np.ndarray) -> np.ndarray:
    """One id per connection whatever the direction: WAN packets are replies, so reverse them."""
    wan = devices == WAN
    client = np.where(wan, fields.dst_ip, fields.src_ip).astype(np.uint64)
    server = np.where(wan, fields.src_ip, fields.dst_ip).astype(np.uint64)
    cport = np.where(wan, fields.dst_port, fields.src_port).astype(np.uint64)
    sport = np.where(wan, fields.src_port, fields.dst_port).astype(np.uint64)
    keys = np.stack([client, server, cport, sport, fields.proto.astype(np.uint64)])
    return np.unique(keys, axis=1, return_inverse=True)[1].reshape(-1)


def in_prefix(ips: np.ndarray, prefix: str) -> np.ndarray:
    net = ipaddress.IPv4Network(prefix)
    mask = (0xFFFFFFFF << (32 - net.prefixlen)) & 0xFFFFFFFF
    return (ips.astype(np.uint64) & mask) == int(net.network_address)


def check_frame(frame: bytes) -> None:
    """dpkt parses the frame and every checksum it carries is valid."""
    assert len(frame) >= 64
    eth = dpkt.ethernet.Ethernet(frame)
    assert not eth.src[0] & 1, "source MAC is multicast"
    if eth.type == dpkt.ethernet.ETH_TYPE_ARP:
        assert isinstance(eth.data, dpkt.arp.ARP) and eth.data.sha == eth.src
        return
    if eth.type == dpkt.ethernet.ETH_TYPE_IP6:
        ip6 = eth.data
        assert isinstance(ip6, dpkt.ip6.IP6) and isinstance(ip6.data, dpkt.udp.UDP)
        l4 = frame[54:]
        pseudo = ip6.src + ip6.dst + struct.pack(">I", len(l4)) + b"\0\0\0\x11"
        assert dpkt.in_cksum(pseudo + l4) == 0
        return
    assert eth.type == dpkt.ethernet.ETH_TYPE_IP
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP) and ip.len == len(frame) - 14
    header = frame[14:14 + 4 * ip.hl]
    assert dpkt.in_cksum(header) == 0, "IPv4 header checksum"
    l4 = frame[14 + 4 * ip.hl:]
    if ip.offset:
        assert isinstance(ip.data, bytes)
        return
    pseudo = ip.src + ip.dst + struct.pack(">xBH", ip.p, len(l4))
    if ip.p == dpkt.ip.IP_PROTO_TCP:
        assert isinstance(ip.data, dpkt.tcp.TCP) and dpkt.in_cksum(pseudo + l4) == 0, "TCP checksum"
    elif ip.p == dpkt.ip.IP_PROTO_UDP:
        udp = dpkt.udp.UDP(l4)
        assert udp.sum == 0 if ip.mf else dpkt.in_cksum(pseudo + l4) == 0, "UDP checksum"
    else:
        assert ip.p == dpkt.ip.IP_PROTO_ICMP and dpkt.in_cksum(l4) == 0, "ICMP checksum"


@pytest.mark.parametrize("kind", KINDS)
def test_generated_frames_parse_with_valid_checksums(kind):
    trace = GENERATORS[kind](1500, 60, seed=4)
    assert len(trace) == 1500
    for frame in trace.frames:
        check_frame(frame)
    assert np.all(np.diff(trace.timestamps.astype(np.int64)) > 0)
    assert set(np.unique(trace.devices).tolist()) <= {LAN, WAN}


@pytest.mark.parametrize("kind", KINDS)
def test_generators_are_deterministic_and_fields_path_agrees(kind):
    a = generate(kind, 2000, 100, seed=11)
    assert_same_trace(a, generate(kind, 2000, 100, seed=11))
    assert a.frames != generate(kind, 2000, 100, seed=12).frames
    fields, devices = generate_fields(kind, 2000, 100, seed=11)
    assert np.array_equal(devices, a.devices)
    assert_fields_equal(fields, extract_fields(a.frames))


def test_generated_fields_match_dpkt():
    trace = generate("mixed", 1500, 100, seed=2)
    assert_fields_equal(fields_of(trace), reference_fields(trace.frames))


def test_timestamps_follow_rate_and_start():
    trace = generate("uniform", 20_000, 100, seed=1, rate_pps=2e6, start_ns=10**15)
    gaps = np.diff(trace.timestamps.astype(np.int64))
    assert abs(gaps.mean() - 500) < 25
    assert 10**15 < int(trace.timestamps[0]) < 10**15 + 10_000


def test_zero_packets():
    trace = generate("mixed", 0, 10, seed=0)
    assert len(trace) == 0
    fields, devices = generate_fields("scan", 0, 10, seed=0)
    assert len(fields) == 0 and len(devices) == 0


def test_uniform_uses_every_flow_evenly_and_lan_clients():
    fields, devices = generate_fields("uniform", 20_000, 100, seed=3, udp_share=0.3)
    ids = flow_ids(fields, devices)
    counts = np.bincount(ids)
    assert len(counts) == 100 and counts.min() > 120 and counts.max() < 290
    lan = devices == LAN
    assert in_prefix(fields.src_ip[lan], "10.0.0.0/8").all()
    assert in_prefix(fields.dst_ip[~lan], "10.0.0.0/8").all()
    assert not in_prefix(fields.dst_ip[lan], "10.0.0.0/8").any()
    assert abs(lan.mean() - 0.5) < 0.03
    assert abs((fields.proto == 17).mean() - 0.3) < 0.1
    assert ((fields.src_port[lan] >= 32768) & (fields.src_port[lan] < 61000)).all()


def test_zipf_top_flow_share_grows_with_skew():
    shares = []
    for skew in (0.0, 0.6, 1.1, 1.6):
        fields, devices = generate_fields("zipf", 30_000, 500, seed=7, skew=skew)
        counts = np.bincount(flow_ids(fields, devices))
        shares.append(counts.max() / counts.sum())
    assert shares == sorted(shares) and shares[0] < 0.01 and shares[-1] > 0.3
    harmonic = (np.arange(1, 501, dtype=float) ** -1.1).sum()
    assert abs(shares[2] - 1 / harmonic) < 0.02  # rank 1's Zipf probability


def test_prefix_traffic_stays_in_its_prefixes():
    fields, devices = generate_fields("prefix", 5000, 300, seed=1)
    lan = devices == LAN
    client = np.where(lan, fields.src_ip, fields.dst_ip)
    server = np.where(lan, fields.dst_ip, fields.src_ip)
    assert in_prefix(client, "10.1.0.0/16").all() and in_prefix(server, "172.16.0.0/20").all()
    several = ["192.168.1.0/24", "192.168.7.0/28"]
    fields, devices = generate_fields("prefix", 5000, 300, seed=1, client_prefix=several,
                                      server_prefix="198.51.100.0/24")
    client = np.where(devices == LAN, fields.src_ip, fields.dst_ip)
    inside = [in_prefix(client, p) for p in several]
    assert (inside[0] | inside[1]).all() and inside[0].any() and inside[1].any()
    assert not np.isin(client & 0xFF, [0, 255]).any()  # no network or broadcast address


def test_bidir_replies_are_exact_reversals():
    trace = generate("bidir", 2001, 50, seed=5)
    f = fields_of(trace)
    assert trace.devices.tolist() == [LAN, WAN] * 1000 + [LAN]
    req, rep = f.select(slice(0, 2000, 2)), f.select(slice(1, 2000, 2))
    assert np.array_equal(req.src_ip, rep.dst_ip) and np.array_equal(req.dst_ip, rep.src_ip)
    assert np.array_equal(req.src_port, rep.dst_port) and np.array_equal(req.dst_port, rep.src_port)
    assert np.array_equal(req.eth_src, rep.eth_dst) and np.array_equal(req.eth_dst, rep.eth_src)
    assert np.array_equal(req.proto, rep.proto) and (req.eth_dst == ROUTER_MAC).all()
    assert np.array_equal(req.eth_src, host_mac(req.src_ip))


def test_churn_flows_start_and_end():
    trace = generate("churn", 6000, 300, seed=2, udp_share=0.0, reply_share=0.3)
    f = fields_of(trace)
    ids = flow_ids(f, trace.devices)
    flags = np.array([dpkt.ethernet.Ethernet(x).data.data.flags for x in trace.frames])
    first = np.unique(ids, return_index=True)[1]
    assert (flags[first] == dpkt.tcp.TH_SYN).all() and (trace.devices[first] == LAN).all()
    early, late = set(ids[:600].tolist()), set(ids[-600:].tolist())
    assert len(early & late) < 0.2 * min(len(early), len(late))
    # at any moment only part of the flows is alive
    spans = [(np.flatnonzero(ids == k)[[0, -1]]) for k in np.unique(ids)]
    alive_mid = sum(1 for a, b in spans if a <= 3000 <= b)
    assert 0 < alive_mid < 0.5 * len(spans)
    multi = [k for k in np.unique(ids) if (ids == k).sum() > 1]
    last = {int(k): int(np.flatnonzero(ids == k)[-1]) for k in multi}
    assert all(flags[i] & dpkt.tcp.TH_FIN for i in last.values())


def test_scan_probes_many_ports_of_lan_hosts():
    fields, devices = generate_fields("scan", 6000, 200, seed=3, scan_share=0.25, scan_ports=512)
    syn_only = (devices == WAN) & (fields.dst_port <= 512) & in_prefix(fields.dst_ip, "10.0.0.0/8") \
        & ~in_prefix(fields.src_ip, "10.0.0.0/8") & (fields.src_port >= 32768)
    scanner_ips, counts = np.unique(fields.src_ip[syn_only], return_counts=True)
    top = scanner_ips[counts.argmax()]
    probes = syn_only & (fields.src_ip == top)
    assert probes.sum() == 1500
    assert len(np.unique(fields.dst_port[probes])) == 512
    targets = np.unique(fields.dst_ip[probes])
    lan_hosts = np.unique(fields.src_ip[devices == LAN])
    assert len(targets) == 3 and np.isin(targets, lan_hosts).all()
    positions = np.flatnonzero(probes)
    assert positions[0] < 300 and positions[-1] > 5700  # mixed in, not appended


def test_heartbeats_from_backends_and_clients_to_the_vip():
    fields, devices = generate_fields("heartbeat", 4000, 100, seed=1, backends=4, heartbeat_share=0.1,
                                      vip="198.51.100.7", vip_port=8080, heartbeat_port=7000)
    vip = int(ipaddress.IPv4Address("198.51.100.7"))
    beats = devices == LAN
    assert beats.sum() == 400
    assert (fields.proto[beats] == 17).all() and (fields.dst_ip[beats] == vip).all()
    assert (fields.dst_port[beats] == 7000).all()
    backends = ipaddress.IPv4Address("10.2.0.1")
    assert sorted(np.unique(fields.src_ip[beats]).tolist()) == [int(backends) + k for k in range(4)]
    gaps = np.diff(np.flatnonzero(beats))
    assert gaps.min() >= 9 and gaps.max() <= 11  # evenly spaced
    clients = ~beats
    assert (fields.proto[clients] == 6).all() and (fields.dst_ip[clients] == vip).all()
    assert (fields.dst_port[clients] == 8080).all() and len(np.unique(fields.src_ip[clients])) > 50


def test_mixed_holds_every_kind_of_frame():
    fields, devices = generate_fields("mixed", 8000, 700, seed=6, other_share=0.1, options_share=0.05)
    assert ((fields.ether_type == 0x0806).sum() > 100) and ((fields.ether_type == 0x86DD).sum() > 100)
    assert (fields.is_ipv4 & (fields.proto == 1)).sum() > 100
    assert fields.frag.sum() > 100 and (fields.ihl == 6).sum() > 200
    assert 0.8 < fields.is_l4.mean() < 0.95
    assert in_prefix(fields.src_ip[devices == LAN], "10.1.0.0/16").any()  # the prefix part
    assert (fields.dst_port == 9999).any()  # heartbeats (lb.c's LB_HEARTBEAT_PORT)


@pytest.mark.parametrize("kind, params, message", [
    ("nope", {}, "unknown traffic kind 'nope'"),
    ("uniform", {"skew": 1.0}, "unknown parameter skew for traffic kind 'uniform'"),
    ("uniform", {"packets": -1}, "packets=-1"),
    ("uniform", {"packets": True}, "packets=True"),
    ("uniform", {"flows": 0}, "flows=0"),
    ("uniform", {"seed": -2}, "seed=-2"),
    ("zipf", {"skew": -0.5}, "skew=-0.5"),
    ("zipf", {"skew": float("nan")}, "skew=nan"),
    ("uniform", {"reply_share": 1.5}, "reply_share=1.5"),
    ("uniform", {"size": 63}, "size=63"),
    ("uniform", {"size": "jumbo"}, "size='jumbo'"),
    ("uniform", {"rate_pps": 0}, "rate_pps=0"),
    ("prefix", {"client_prefix": "10.1.0.0/33"}, "client_prefix='10.1.0.0/33'"),
    ("prefix", {"server_prefix": "10.1.0.1/16"}, "server_prefix='10.1.0.1/16'"),
    ("prefix", {"client_prefix": []}, "client_prefix"),
    ("heartbeat", {"vip": "1.2.3"}, "vip='1.2.3'"),
    ("heartbeat", {"backends": 300}, "fewer than 300 backends"),
    ("scan", {"scan_ports": 0}, "scan_ports=0"),
])
def test_bad_traffic_parameters(kind, params, message):
    args = {"packets": 10, "flows": 5, "seed": 0}
    args.update(params)
    with pytest.raises(TrafficError, match=message.replace("(", "\\(").replace(".", "\\.")
                       .replace("[", "\\[")):
        generate(kind, **args)


def test_kind_parameters_and_signatures():
    assert kind_parameters("zipf")["skew"] == 1.1 and "client_prefix" in kind_parameters("prefix")
    assert all({"rate_pps", "start_ns"} <= set(kind_parameters(k)) for k in KINDS)
    signature = inspect.signature(GENERATORS["prefix"])
    assert list(signature.parameters)[:3] == ["packets", "flows", "seed"]
    assert signature.parameters["server_prefix"].default == "172.16.0.0/20"
    with pytest.raises(TrafficError, match="unknown traffic kind"):
        kind_parameters("nope")

    # each public generator is written out: its keyword parameters are exactly its kind's, same defaults
    for kind in KINDS:
        keywords = {name: p.default for name, p in inspect.signature(GENERATORS[kind]).parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert keywords == kind_parameters(kind), kind
        assert GENERATORS[kind].__name__ == kind and GENERATORS[kind].__doc__


def test_address_pool_draws_and_headers_columns():
    pool = AddressPool.parse(["10.0.0.0/31", "10.0.1.0/30"], "test")
    assert pool.count == (2, 2) and pool.size == 4
    drawn = pool.draw(np.random.default_rng(0), 2000)
    assert set(drawn.tolist()) == {0x0A000000, 0x0A000001, 0x0A000101, 0x0A000102}
    h = generate_headers("uniform", 10, 3, seed=0)
    assert len(h) == 10 and h.timestamps.dtype == np.uint64


# ---- nfx traffic ----------------------------------------------------------------------------

def test_cli_writes_one_pcap_per_device(tmp_path, capsys):
    out = tmp_path / "traffic"
    assert nfx(["traffic", "zipf", "--out", str(out), "--packets", "500", "--flows", "20",
                "--seed", "4", "--skew", "1.3"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'dev0.pcap'}" in printed and f"wrote {out / 'dev1.pcap'}" in printed
    trace = load_inputs([f"0={out / 'dev0.pcap'}", f"1={out / 'dev1.pcap'}"])
    assert_same_trace(trace, generate("zipf", 500, 20, seed=4, skew=1.3))


def test_cli_takes_any_parameter_of_the_kind_and_names_the_accepted_ones(tmp_path, capsys):
    out = tmp_path / "traffic"
    assert nfx(["traffic", "heartbeat", "--out", str(out), "--packets", "400", "--param", "heartbeat_share=0.25",
                "--param", "backends=3", "--seed", "2"]) == 0
    trace = load_inputs([f"0={out / 'dev0.pcap'}", f"1={out / 'dev1.pcap'}"])
    assert_same_trace(trace, generate("heartbeat", 400, 1000, seed=2, heartbeat_share=0.25, backends=3))
    capsys.readouterr()
    assert nfx(["traffic", "bidir", "--out", str(tmp_path / "b"), "--skew", "1.3", "--packets", "300"]) == 0
    assert_same_trace(load_inputs([f"0={tmp_path / 'b' / 'dev0.pcap'}", f"1={tmp_path / 'b' / 'dev1.pcap'}"]),
                      generate("bidir", 300, 1000, seed=0, skew=1.3))
    assert nfx(["traffic", "uniform", "--out", str(tmp_path / "u"), "--param", "nope=1"]) == 1
    err = capsys.readouterr().err
    assert "traffic uniform has no parameter 'nope'" in err and "accepted: rate_pps" in err
    assert not (tmp_path / "u").exists()


def test_cli_skew_names_itself_and_the_kinds_that_take_it(tmp_path, capsys):
    """``--skew`` on a kind without a Zipf exponent is an error about --skew (not a --param the user
    never typed), and the help lists exactly the kinds that take it."""
    from explorer.cli import build_parser
    from explorer.commands.traffic import skewed_kinds

    assert nfx(["traffic", "mixed", "--out", str(tmp_path / "m"), "--skew", "1.2"]) == 1
    err = capsys.readouterr().err
    assert "--skew: mixed traffic has no Zipf exponent; zipf, prefix, bidir have one" in err and "--param" not in err
    assert not (tmp_path / "m").exists()
    traffic = build_parser()._subparsers._group_actions[0].choices["traffic"]
    [skew] = [a for a in traffic._actions if "--skew" in a.option_strings]
    assert skew.help == f"Zipf exponent ({', '.join(skewed_kinds())})"


def test_cli_heartbeat_writes_both_devices_and_reports_errors(tmp_path, capsys):
    assert nfx(["traffic", "heartbeat", "--out", str(tmp_path), "--packets", "40"]) == 0
    assert (tmp_path / "dev0.pcap").is_file() and (tmp_path / "dev1.pcap").is_file()
    assert nfx(["traffic", "bogus", "--out", str(tmp_path)]) == 1
    assert "unknown traffic kind 'bogus'; known: bidir, churn" in capsys.readouterr().err
    assert nfx(["traffic", "uniform", "--out", str(tmp_path), "--flows", "0"]) == 1
    assert "--flows 0: expected an integer from 1 to 67108864" in capsys.readouterr().err


@pytest.mark.dpdk
def test_paths_traffic_follows_the_nfs_paths_and_checks_a_new_nf(tmp_path, capsys):
    """``nfx traffic paths``: packets for every path of an NF the search reaches (knock.c, a port
    knocking NF no generic kind exercises: its knocks must come in order), ready for ``nfx check``."""
    knock = str(ROOT / "tests" / "nfs" / "knock.c")
    out, again = tmp_path / "paths", tmp_path / "again"
    # The first run builds the NF, the second finds it built: CI once saw other packets then
    # (the build changed when Z3's terms were freed, and so its models).
    env = {**os.environ, "NFX_CACHE": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-m", "explorer.cli", "traffic", "paths", "--nf", knock, "--out", str(folder),
                            "--seed", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
            for folder in (out, again)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    printed = runs[0].stdout
    for dev in (0, 1):  # seeded: the same packets in every fresh process
        assert (again / f"dev{dev}.pcap").read_bytes() == (out / f"dev{dev}.pcap").read_bytes()
    head = printed.splitlines()[0]
    # every path: the two that no input reached (18 paths before) differed from reachable ones only in
    # locals of blocks that had ended, and now merge with them (13 paths)
    assert head.startswith("paths traffic for knock, seed 1: ") and "13 of 13 paths followed" in head, printed
    assert "not reached" not in printed
    inputs = [f"0={out / 'dev0.pcap'}", f"1={out / 'dev1.pcap'}"]
    trace = load_inputs(inputs)
    assert f"wrote {out / 'dev1.pcap'} ({int((trace.devices == 1).sum())} packets)" in printed
    knocks = [f for f, d in zip(trace.frames, trace.devices.tolist()) if d == 1 and f[23] == 17
              and struct.unpack("!H", f[36:38])[0] in (7001, 7002, 7003)]
    assert len(knocks) > 3  # the knock paths are followed, by UDP to the knock ports
    assert nfx(["check", knock, *[a for spec in inputs for a in ("--in", spec)], "--cores", "4", "--json"]) == 0
    assert '"equivalent": true' in capsys.readouterr().out


def test_paths_traffic_names_what_it_needs_and_what_it_cannot_reach(tmp_path, capsys):
    fw = str(ROOT / "sample_nfs" / "fw.c")
    assert nfx(["traffic", "paths", "--out", str(tmp_path / "a")]) == 1
    assert "`nfx traffic paths` needs --nf NF.c" in capsys.readouterr().err
    assert nfx(["traffic", "paths", "--nf", fw, "--out", str(tmp_path / "a"), "--packets", "5"]) == 1
    assert "paths traffic takes no --packets" in capsys.readouterr().err
    assert nfx(["traffic", "uniform", "--nf", fw, "--out", str(tmp_path / "a")]) == 1
    assert "--nf and --define are for `nfx traffic paths`" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert nfx(["traffic", "paths", "--nf", fw, "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "6 of 7 paths followed" in printed and ("path 4 not reached: needs chain full: 65536 entries, more than "
                                                  "the search fills (20000); a smaller FW_CAPACITY (e.g. "
                                                  "FW_CAPACITY=1000) lets the search fill it") in printed
    assert nfx(["traffic", "paths", "--nf", fw, "-D", "FW_CAPACITY=1000", "--out", str(tmp_path / "c")]) == 0
    assert "7 of 7 paths followed" in capsys.readouterr().out


def test_a_timestamp_rounded_up_by_dpkt_is_refused_with_the_likely_cause(tmp_path):
    """dpkt's Writer rounds 1.9999999 s to 1 s + 1,000,000 us, which no reader may take as a time:
    refused, saying which writer habit makes such files."""
    from explorer.errors import TrafficError
    from explorer.traffic.pcap import read_pcap

    path = tmp_path / "round.pcap"
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        writer.writepkt(bytes(60), ts=1.9999999)
    with pytest.raises(TrafficError, match=r"has 1000000 microseconds, not below one second: corrupt file; "
                                           r"a writer that rounds float timestamps up writes this"):
        read_pcap(path)


def test_every_command_takes_a_kind_with_its_parameters_as_bench_does(tmp_path, capsys):
    """``--traffic zipf:skew=1.3`` (bench's form) means ``--traffic zipf --param skew=1.3`` for traffic,
    simulate and check too; a part without ``=`` continues a list, and a name given twice is refused."""
    from explorer.commands.options import split_traffic

    assert split_traffic("zipf:skew=1.3, rate_pps=5", ["size=64"]) == ("zipf", ["skew=1.3", "rate_pps=5", "size=64"])
    assert split_traffic("prefix:server_prefix=10.0.0.0/8,172.16.0.0/12", []) == (
        "prefix", ["server_prefix=10.0.0.0/8,172.16.0.0/12"])
    assert split_traffic("uniform", ["skew=1"]) == ("uniform", ["skew=1"]) and split_traffic(None, []) == (None, [])
    assert nfx(["traffic", "heartbeat:heartbeat_share=0.25,backends=3", "--out", str(tmp_path / "h"),
                "--packets", "400", "--seed", "2"]) == 0
    assert_same_trace(load_inputs([f"0={tmp_path / 'h' / 'dev0.pcap'}", f"1={tmp_path / 'h' / 'dev1.pcap'}"]),
                      generate("heartbeat", 400, 1000, seed=2, heartbeat_share=0.25, backends=3))
    capsys.readouterr()
    fw = str(ROOT / "sample_nfs" / "fw.c")
    assert nfx(["simulate", fw, "--traffic", "zipf:skew=1.3", "--packets", "3000", "--json"]) == 0
    inline = json.loads(capsys.readouterr().out)
    assert nfx(["simulate", fw, "--traffic", "zipf", "--param", "skew=1.3", "--packets", "3000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == inline
    assert nfx(["simulate", fw, "--traffic", "zipf:skew=1.3", "--param", "skew=2"]) == 1
    assert "bad traffic parameter 'skew=2': skew is given twice" in capsys.readouterr().err
    assert nfx(["traffic", "zipf:skew=2,flows=3", "--out", str(tmp_path / "z")]) == 1  # inline: no --param to blame
    assert "bad traffic parameter 'flows=3': the flows count is an option of its own: --flows 3" in capsys.readouterr().err
    assert nfx(["check", fw, "--traffic", "uniform:nope=1", "--cores", "2"]) == 1
    assert "traffic uniform has no parameter 'nope'" in capsys.readouterr().err
