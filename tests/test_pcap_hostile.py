"""Captures nfx has never seen: valid but unusual ones are read, broken ones are refused naming the
file and the frame (from 1, as Wireshark counts) or byte where they break, never with a traceback."""
from __future__ import annotations

import bz2
import fcntl
import gzip
import lzma
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import warnings
from pathlib import Path

import dpkt.pcapng as ng
import numpy as np
import pytest

from explorer.errors import TrafficError
from explorer.simulate.streams import frames_at
from explorer.traffic.pcap import TrafficWarning, iter_pcap, read_pcap, write_pcap

ROOT = Path(__file__).resolve().parent.parent
T = 1_700_000_000  # seconds: a timestamp of 2023
ETHER = bytes.fromhex("020000000002" "020000000001" "0800")
UDP = ETHER + bytes.fromhex("4500002e000040004011" "0000" "0a000001" "0a000002" "04d2" "0035" "001a" "0000") + bytes(18)


def _ng(*blocks) -> bytes:
    return b"".join(bytes(b) for b in blocks)


def _idb(linktype: int = 1, snaplen: int = 0, tsresol: int | None = None) -> ng.InterfaceDescriptionBlockLE:
    if tsresol is None:
        return ng.InterfaceDescriptionBlockLE(linktype=linktype, snaplen=snaplen)
    return ng.InterfaceDescriptionBlockLE(linktype=linktype, snaplen=snaplen, opts=[
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSRESOL, data=bytes([tsresol])),
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)])


def _epb(data: bytes, ticks: int = T * 10**6, iface: int = 0) -> ng.EnhancedPacketBlockLE:
    return ng.EnhancedPacketBlockLE(iface_id=iface, ts_high=ticks >> 32, ts_low=ticks & 0xFFFFFFFF, pkt_data=data)


def _raw(kind: int, body: bytes) -> bytes:
    """A block of any type, padded as pcapng pads: type, length, body, length."""
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _spb(data: bytes, original: int | None = None) -> bytes:
    return _raw(ng.PCAPNG_BT_SPB, struct.pack("<I", len(data) if original is None else original) + data)


def _read(path: Path, data: bytes):
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stamps, frames = read_pcap(path)
    return stamps.tolist(), frames, [str(w.message) for w in caught if issubclass(w.category, TrafficWarning)]


# ---- pcapng interfaces: judged by the packets on them --------------------------------------------------------

@pytest.mark.parametrize("linktype", [101, 113, 276, 189])
def test_an_unused_interface_of_another_link_type_is_ignored(tmp_path, linktype):
    """dumpcap lists every interface it was given; one that captured nothing does not matter."""
    for blocks in ([_idb(), _idb(linktype)], [_idb(linktype), _idb()]):
        used = 0 if blocks[0].linktype == 1 else 1
        stamps, frames, said = _read(tmp_path / "two.pcapng", _ng(ng.SectionHeaderBlockLE(), *blocks,
                                                                   _epb(UDP, iface=used), _epb(UDP, iface=used)))
        assert frames == (UDP, UDP) and stamps == [T * 10**9] * 2 and said == []


def test_a_packet_on_an_interface_of_another_link_type_is_refused_naming_it(tmp_path):
    path = tmp_path / "cooked.pcapng"
    head = _ng(ng.SectionHeaderBlockLE(), _idb(), _idb(113))
    path.write_bytes(head + _ng(_epb(UDP), _epb(UDP, iface=1)))
    second = len(head) + len(bytes(_epb(UDP)))
    with pytest.raises(TrafficError, match=rf"^{path}: frame 2 \(block at byte {second}\) was captured on interface 1, "
                                           r"which has link type 113, not Ethernet; .*Linux cooked.*tcprewrite"):
        read_pcap(path)


def test_an_unused_interface_with_an_absurd_resolution_is_ignored_and_a_used_one_refused(tmp_path):
    path = tmp_path / "resol.pcapng"
    path.write_bytes(_ng(ng.SectionHeaderBlockLE(), _idb(), _idb(tsresol=0x7F), _epb(UDP)))
    assert read_pcap(path)[1] == (UDP,)
    path.write_bytes(_ng(ng.SectionHeaderBlockLE(), _idb(), _idb(tsresol=0x7F), _epb(UDP), _epb(UDP, iface=1)))
    with pytest.raises(TrafficError, match="frame 2 .* interface 1, which has an absurd timestamp resolution"):
        read_pcap(path)


@pytest.mark.parametrize("tsresol,ticks", [(6, T * 10**6 + 5), (9, T * 10**9 + 5_000), (3, T * 1000),
                                           (0x80 | 20, (T << 20) + (5 << 10)), (0x80 | 30, (T << 30) + 5_369)])
def test_timestamp_resolutions(tmp_path, tsresol, ticks):
    base = 10 if tsresol < 0x80 else 2
    units = base ** (tsresol & 0x7F)
    data = _ng(ng.SectionHeaderBlockLE(), _idb(tsresol=tsresol), _epb(UDP, ticks))
    stamps, frames, _ = _read(tmp_path / "r.pcapng", data)
    assert stamps == [ticks * 10**9 // units] and frames == (UDP,)


def test_comment_name_statistics_custom_and_unknown_blocks_are_skipped(tmp_path):
    comment = ng.PcapngOptionLE(code=ng.PCAPNG_OPT_COMMENT, data=b"a comment")
    end = ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)
    names = _raw(4, struct.pack("<HH", 1, 8) + bytes([10, 0, 0, 1]) + b"a.b\0" + struct.pack("<HH", 0, 0))
    statistics = _raw(5, struct.pack("<III", 0, 0, 0))
    custom = [_raw(kind, struct.pack("<I", 32473) + b"vendor data") for kind in (0x00000BAD, 0x40000BAD)]
    secrets = _raw(0x0A, struct.pack("<II", 0x544C534B, 4) + b"keys")
    data = _ng(ng.SectionHeaderBlockLE(opts=[comment, end]), _idb(), names, custom[0],
               ng.EnhancedPacketBlockLE(ts_high=0, ts_low=7, pkt_data=UDP, opts=[comment, end]),
               custom[1], secrets, _raw(0x12345678, b"unknown"), _epb(UDP, 9), statistics)
    stamps, frames, said = _read(tmp_path / "blocks.pcapng", data)
    assert frames == (UDP, UDP) and stamps == [7_000, 9_000] and said == []


# ---- simple packet blocks: interface 0's packets, without a timestamp ----------------------------------------

def test_simple_packet_blocks_are_read_with_the_time_before_them(tmp_path):
    other = UDP[:-1] + b"\x01"
    data = _ng(ng.SectionHeaderBlockLE(), _idb(), _spb(UDP), _epb(other, (T + 5) * 10**6), _spb(UDP), _spb(other))
    stamps, frames, said = _read(tmp_path / "spb.pcapng", data)
    assert frames == (UDP, other, UDP, other)
    assert stamps == [0, (T + 5) * 10**9, (T + 5) * 10**9, (T + 5) * 10**9]
    assert said == [f"{tmp_path / 'spb.pcapng'}: 3 of 4 packets are in simple packet blocks, which carry no "
                    "timestamp; each takes the time of the packet before it (0, i.e. 1970, at the start of the file)"]


def test_a_simple_packet_block_is_cut_to_its_interfaces_snapshot_length(tmp_path):
    data = _ng(ng.SectionHeaderBlockLE(), _idb(snaplen=40), _spb(UDP[:40], original=len(UDP)), _spb(UDP))
    _, frames, said = _read(tmp_path / "cut.pcapng", data)
    assert frames == (UDP[:40], UDP[:40])
    assert any("2 of 2 packets were cut short by the capture's snapshot length" in s for s in said)


def test_broken_simple_packet_blocks_are_refused_naming_the_frame(tmp_path):
    path = tmp_path / "bad.pcapng"
    path.write_bytes(_ng(ng.SectionHeaderBlockLE(), _spb(UDP)))
    with pytest.raises(TrafficError, match=r"frame 1 \(block at byte 28\) names interface 0, which is not described"):
        read_pcap(path)
    head = _ng(ng.SectionHeaderBlockLE(), _idb())
    path.write_bytes(head + _spb(UDP) + _spb(UDP, original=100))
    with pytest.raises(TrafficError, match=rf"frame 2 \(block at byte {len(head) + 16 + len(UDP)}\) should hold 100 "
                                           rf"bytes \(its original length\), its simple packet block holds 60"):
        read_pcap(path)


# ---- broken pcapng: the frame and the byte --------------------------------------------------------------------

@pytest.mark.parametrize("kind,fixed", [(ng.PCAPNG_BT_EPB, 32), (ng.PCAPNG_BT_PB, 32), (ng.PCAPNG_BT_SPB, 16)])
def test_a_packet_block_too_short_for_its_fields_is_refused(tmp_path, kind, fixed):
    """A 12- or 16-byte packet block: its fields were read from its trailing length ('announces 0
    captured bytes, its block has room for 0'; a simple one 'should hold 12 bytes ... holds -4')."""
    head = _ng(ng.SectionHeaderBlockLE(), _idb(), _epb(UDP))
    path = tmp_path / "tiny.pcapng"
    for body in (b"", bytes(4), bytes(16))[:(fixed - 12) // 8 + 1]:  # every length short of the fixed fields
        path.write_bytes(head + _raw(kind, body))
        with pytest.raises(TrafficError, match=rf"frame 2 \(block at byte {len(head)}\): its [a-z ]*packet block has "
                                               rf"{12 + len(body)} bytes, fewer than the {fixed} of its fixed fields"):
            read_pcap(path)


def test_pcapng_packet_errors_name_the_frame(tmp_path):
    head = _ng(ng.SectionHeaderBlockLE(), _idb(), _epb(UDP))
    bad = bytearray(bytes(_epb(UDP)))
    struct.pack_into("<I", bad, 20, 1 << 31)  # its captured length
    path = tmp_path / "caplen.pcapng"
    path.write_bytes(head + bytes(bad))
    with pytest.raises(TrafficError, match=rf"frame 2 \(block at byte {len(head)}\) announces 2147483648 captured "
                                           "bytes, its block has room for 60: corrupt file"):
        read_pcap(path)
    path.write_bytes(head + _ng(_epb(UDP, iface=3)))
    with pytest.raises(TrafficError, match=r"frame 2 \(block at byte \d+\) names interface 3, which is not described"):
        read_pcap(path)


@pytest.mark.parametrize("offset,ticks", [(0, (1 << 64) - 1), (0, (1 << 32) * 10**9), (-10**10, T * 10**6)])
def test_pcapng_timestamps_a_pcap_cannot_hold_are_refused_when_read(tmp_path, offset, ticks):
    """nfx run writes the packets back with their timestamps; a pcap's 32-bit seconds end in 2106. A
    timestamp past it was read and only the output's writing failed, naming the output file."""
    idb = ng.InterfaceDescriptionBlockLE(snaplen=0, opts=[
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09" if offset == 0 else b"\x06"),
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_IF_TSOFFSET, data=struct.pack("<q", offset)),
        ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT)])
    path = tmp_path / "late.pcapng"
    path.write_bytes(_ng(ng.SectionHeaderBlockLE(), idb, _epb(UDP, 5), _epb(UDP, ticks)))
    frame = 2 if offset == 0 else 1
    with pytest.raises(TrafficError, match=rf"frame {frame} \(block at byte \d+\) has a timestamp of -?\d+ ns, outside "
                                           r"1970..2106 \(what a pcap holds\)"):
        read_pcap(path)
    path.write_bytes(_ng(ng.SectionHeaderBlockLE(), _idb(tsresol=9), _epb(UDP, (1 << 32) * 10**9 - 1)))
    assert read_pcap(path)[0].tolist() == [(1 << 32) * 10**9 - 1]  # the last nanosecond a pcap holds


# ---- files that are no capture --------------------------------------------------------------------------------

@pytest.mark.parametrize("pack,words", [(gzip.compress, "is gzip-compressed, not a pcap file; decompress it first "
                                                       r"\(`gunzip -k .*c.pcap`\)"),
                                        (bz2.compress, r"is bzip2-compressed.*\(`bunzip2 -k "),
                                        (lzma.compress, r"is xz-compressed.*\(`unxz -k ")])
def test_a_compressed_capture_is_named_as_such(tmp_path, pack, words):
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, [1], [UDP])
    path = tmp_path / "c.pcap"
    path.write_bytes(pack(plain.read_bytes()))
    with pytest.raises(TrafficError, match=rf"^{path}: {words}"):
        read_pcap(path)


def _pipe(data: bytes) -> tuple[str, int]:
    """A pipe holding ``data`` (under the pipe's buffer size), written and closed: its /dev/fd path
    and read end, which the caller closes."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return f"/dev/fd/{read_end}", read_end


def test_a_pipe_is_read_once_and_an_empty_one_says_so(tmp_path):
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, [1, 2], [UDP, UDP])
    path, fd = _pipe(plain.read_bytes())
    try:
        assert read_pcap(path)[1] == (UDP, UDP)
        with pytest.raises(TrafficError, match=rf"^{path}: the pipe gave no bytes: it is empty, or was already "
                                               r"read .*save the capture to a file"):
            list(iter_pcap(path, 10))
    finally:
        os.close(fd)


def test_example_frames_are_not_looked_for_in_a_pipe(tmp_path):
    """simulate names its examples' frames by reading the captures again; a pipe was used up by then
    (nfx simulate --in 0=<(zcat a.pcap.gz) failed after simulating: 'empty file (0 bytes)')."""
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, [1, 2], [UDP, UDP])
    assert frames_at({0: str(plain)}, [1]) == {1: (0, 2)}
    path, fd = _pipe(plain.read_bytes())
    try:
        assert frames_at({0: str(plain), 1: path}, [1]) == {}
        assert read_pcap(path)[1] == (UDP, UDP)  # untouched
    finally:
        os.close(fd)


def test_simulate_on_a_piped_capture_shows_its_violations(tmp_path):
    """The whole command: fw with a key that splits flows, its capture given through a pipe."""
    write_pcap(tmp_path / "lan.pcap", np.arange(40), [UDP[:26] + bytes([10, 0, 0, i]) + UDP[30:] for i in range(40)])
    write_pcap(tmp_path / "wan.pcap", np.arange(40) + 1,
               [UDP[:26] + bytes.fromhex("0a000002") + bytes([10, 0, 0, i]) + UDP[36:38] + UDP[34:36] + UDP[38:]
                for i in range(40)])
    script = (f"exec {sys.executable} -m explorer.cli simulate {ROOT / 'sample_nfs' / 'fw.c'} --cores 4 "
              f"--in 0=<(cat lan.pcap) --in 1=<(cat wan.pcap) --key 1={'6d5a' * 26}")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "sharding violations: " in done.stdout and "flows key" in done.stdout, done.stdout


# ---- memory: a trace held whole is refused before it outgrows the memory --------------------------------------

def test_captures_too_large_to_hold_are_refused_while_read(tmp_path, monkeypatch):
    """run, check and bench hold the whole trace (about 800 bytes a packet and 4 per frame byte); a
    capture of a few GB got nfx killed by the kernel, without a word."""
    from explorer import limits
    from explorer.traffic.pcap import load_inputs

    path = tmp_path / "lan.pcap"
    write_pcap(path, np.arange(200_000), [UDP] * 200_000)  # about 300 MB held
    monkeypatch.setattr(limits, "available_memory", lambda: 200 << 20)
    with pytest.raises(TrafficError, match=rf"^{path}: too large to hold in memory: after \d+ of its packets the trace "
                                           r"would need about [\d.]+ MiB, more than the 100.0 MiB nfx allows itself "
                                           r"here .*`editcap -r .*lan.pcap first.pcap 1-\d+`\), or simulate"):
        load_inputs([f"0={path}"])
    monkeypatch.setattr(limits, "available_memory", lambda: 2 << 30)
    assert len(load_inputs([f"0={path}"])) == 200_000


# ---- simulate's streamed merge: bounded whatever the timestamps -----------------------------------------------

def test_a_capture_of_equal_timestamps_streams_in_bounded_memory(tmp_path, monkeypatch):
    """Packets were released only before the least last timestamp among the files, so a capture whose
    timestamps are all equal (simple packet blocks, some generators) was held whole by simulate."""
    from explorer.simulate import streams

    write_pcap(tmp_path / "a.pcap", [7] * 2000, [UDP] * 2000)
    write_pcap(tmp_path / "b.pcap", [7] * 1500, [ETHER] * 1500)
    held = []
    load = streams._File.load

    def counting(self):
        load(self)
        held.append(len(self.frames))

    monkeypatch.setattr(streams._File, "load", counting)
    monkeypatch.setattr(streams, "_READ_PACKETS", 16)
    for paths in ({0: tmp_path / "a.pcap"}, {0: tmp_path / "a.pcap", 1: tmp_path / "b.pcap"}):
        held.clear()
        frames = [f for chunk, _ in streams.merged_pcaps(paths, 64) for f in chunk]
        assert frames == [UDP] * 2000 + [ETHER] * 1500 * (len(paths) - 1)
        assert max(held) <= 16


@pytest.mark.parametrize("seed", range(6))
def test_the_streamed_merge_is_the_merge_of_the_whole_trace(tmp_path, seed, monkeypatch):
    """Ties across devices, equal runs, timestamps going backwards, files that end early: the order
    is Trace.merge's (timestamp, device, file order) for any read size."""
    from explorer.simulate import streams
    from explorer.traffic.pcap import load_inputs

    rng = np.random.default_rng(seed)
    specs = []
    for device in (0, 1, 3):
        n = int(rng.integers(0, 300))
        stamps = np.cumsum(rng.choice([0, 0, 0, 1, 2], n)) + int(rng.integers(0, 5))
        stamps[rng.random(n) < 0.05] = 0  # backwards
        frames = [UDP[:-2] + bytes([device, k % 256]) for k in range(n)]
        write_pcap(tmp_path / f"d{device}.pcap", stamps, frames)
        specs.append(f"{device}={tmp_path / f'd{device}.pcap'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrafficWarning)
        whole = load_inputs(specs)
        for read in (1, 7, 64):
            monkeypatch.setattr(streams, "_READ_PACKETS", read)
            chunks = list(streams.merged_pcaps({int(s.split("=")[0]): s.split("=")[1] for s in specs}, 50))
            assert tuple(f for fr, _ in chunks for f in fr) == whole.frames
            assert np.concatenate([d for _, d in chunks] or [np.zeros(0)]).tolist() == whole.devices.tolist()


@pytest.mark.parametrize("linktype,kind", [(0, "BSD loopback \\(tcpdump -i lo0 on macOS\\)"),
                                           (108, "OpenBSD loopback")])
def test_a_loopback_capture_says_how_to_convert_it(tmp_path, linktype, kind):
    """macOS's tcpdump -i lo0 writes link type 0; the refusal said only 'not Ethernet'."""
    path = tmp_path / "lo0.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    with pytest.raises(TrafficError, match=rf"link type {linktype} is not Ethernet; .*; this is a {kind} capture: "
                                           "give it Ethernet headers with `tcprewrite --dlt=enet"):
        read_pcap(path)


@pytest.mark.parametrize("tail,chunk", [(16, 1), (64, 2), (4096, 1000), (4096, 7)])
def test_a_zero_filled_tail_is_said_with_where_to_cut(tmp_path, tail, chunk):
    """A capture cut off while written (or preallocated) ends in zeros: each 16 of them read as an
    empty record at time 0, and only 'N packets are shorter than an Ethernet header' and 'N packets
    have a timestamp earlier' were said, not why."""
    path = tmp_path / "cut.pcap"
    write_pcap(path, [0, 5, 6], [UDP, b"", UDP])  # an empty record at time 0 mid-file is no tail
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + bytes(tail))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = [f for _, chunk_frames in iter_pcap(path, chunk) for f in chunk_frames]
    assert len(frames) == 3 + tail // 16
    said = [str(w.message) for w in caught if " of zeros from byte " in str(w.message)]
    assert said == [f"{path}: the file ends with {tail // 16} record{'s' if tail > 16 else ''} of zeros from byte "
                    f"{size} (frame 4 on): a capture cut off while it was written, or a zero-filled file; they are "
                    f"read as empty packets at time 0; cut them off with `head -c {size} {path} > OUT.pcap`"]


def test_zero_records_before_the_end_are_not_a_tail(tmp_path):
    path = tmp_path / "mid.pcap"
    write_pcap(path, [0, 0, 7], [b"", b"", UDP])
    _, frames, said = _read(path, path.read_bytes())
    assert frames == (b"", b"", UDP) and not any("zeros" in s for s in said)


def test_run_on_a_one_packet_capture_counts_in_the_singular(tmp_path, capsys):
    """'1 packets in: ..., 0 runts' and 'device 1 sent 1 frames'."""
    from explorer.cli import main as nfx

    write_pcap(tmp_path / "one.pcap", [1], [UDP])
    assert nfx(["run", str(ROOT / "sample_nfs" / "nop.c"), "--in", f"0={tmp_path / 'one.pcap'}",
                "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].endswith(": 1 packet in: 1 forwarded, 0 flooded, 0 dropped, 0 runts")
    assert printed[1:] == [f"  device 0 sent 0 frames -> {tmp_path / 'out' / 'dev0.pcap'}",
                           f"  device 1 sent 1 frame -> {tmp_path / 'out' / 'dev1.pcap'}"]


@pytest.mark.parametrize("command,says", [("simulate", "no packet that reaches the NF (none, or only frames shorter "
                                                       "than an Ethernet header): nothing to simulate"),
                                          ("check", "no packet: nothing to compare"),
                                          ("bench", "no packet: nothing to measure")])
def test_captures_without_packets_are_named(tmp_path, capsys, command, says):
    """'the traffic is empty' / 'the trace is empty' did not say which files held nothing."""
    from explorer.cli import main as nfx

    write_pcap(tmp_path / "lan.pcap", [], [])
    write_pcap(tmp_path / "wan.pcap", [1, 2], [UDP[:10], UDP[:12]]) if command == "simulate" else \
        write_pcap(tmp_path / "wan.pcap", [], [])
    inputs = [f"0={tmp_path / 'lan.pcap'}", f"1={tmp_path / 'wan.pcap'}"]
    assert nfx([command, str(ROOT / "sample_nfs" / "nop.c"), "--in", inputs[0], "--in", inputs[1]]) == 1
    assert f"the captures {inputs[0]}, {inputs[1]} hold {says}" in capsys.readouterr().err


# ---- named pipes: waited for, said, and stoppable ---------------------------------------------------------------

def _simulate_on_fifo(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """``nfx simulate nop.c --in 0=FIFO`` with nothing writing to the FIFO yet, once it says it waits
    (SIGINT as a terminal sends it: not ignored, whatever the shell that started the tests did)."""
    fifo = tmp_path / "lan.fifo"
    os.mkfifo(fifo)
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "explorer.cli", "simulate", str(ROOT / "sample_nfs" / "nop.c"),
                                "--cores", "2", "--in", f"0={fifo}"], cwd=tmp_path, text=True,
                               env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    watchdog = threading.Timer(60, process.kill)  # no word within a minute: the read below ends, and fails
    watchdog.start()
    said = process.stderr.readline()  # the warning, a second into the wait
    watchdog.cancel()
    assert said == f"nfx simulate: warning: {fifo}: a named pipe nothing writes to yet; waiting for a writer " \
                   "(Ctrl-C to stop)\n", said
    return process, fifo


@pytest.mark.parametrize("sig,status,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_fifo_nothing_writes_to_is_waited_for_and_a_signal_stops_the_wait(tmp_path, sig, status, word):
    """``--in 0=fifo`` with no writer blocked in the kernel's open, where Ctrl-C never got through
    (it lands on simulate's other thread): nfx hung until killed."""
    process, _ = _simulate_on_fifo(tmp_path)
    try:
        time.sleep(0.3)
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status and err == f"nfx simulate: {word}\n", err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_a_signal_stops_a_read_from_a_pipe_whose_writer_is_idle(tmp_path):
    """The same for a pipe whose writer stays but writes nothing more (a live capture in a quiet
    spell): the read blocked in the kernel, and Ctrl-C never got through."""
    fifo = tmp_path / "lan.fifo"
    os.mkfifo(fifo)
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, np.arange(20), [UDP] * 20)
    process = subprocess.Popen([sys.executable, "-m", "explorer.cli", "simulate", str(ROOT / "sample_nfs" / "nop.c"),
                                "--cores", "2", "--in", f"0={fifo}"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    writer = None
    try:
        deadline = time.monotonic() + 120
        while writer is None and time.monotonic() < deadline:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # once nfx opened it
            except OSError:
                time.sleep(0.05)
        assert writer is not None
        os.write(writer, plain.read_bytes()[:500])
        unread = struct.pack("i", 1)
        while struct.unpack("i", unread)[0] and time.monotonic() < deadline:  # until nfx read it all
            time.sleep(0.05)
            unread = fcntl.ioctl(writer, termios.FIONREAD, bytes(4))
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if writer is not None:
            os.close(writer)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and err == "nfx simulate: interrupted\n", err


def test_a_fifo_written_to_later_is_read(tmp_path):
    process, fifo = _simulate_on_fifo(tmp_path)
    try:
        plain = tmp_path / "plain.pcap"
        write_pcap(plain, [1, 2, 3], [UDP] * 3)
        fifo.write_bytes(plain.read_bytes())
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and "Traceback" not in err, err
    assert out.startswith("nop: 3 packets on 2 cores"), out


# ---- --rebalance on an NF sharded by allocation: two passes over a trace a pipe gives once ----------------------

@pytest.fixture(scope="module")
def nat_bidir(tmp_path_factory):
    from explorer import pipeline
    from explorer.traffic.generators import generate
    from explorer.traffic.pcap import write_trace

    folder = tmp_path_factory.mktemp("nat")
    paths = write_trace(generate("bidir", packets=3000, flows=200, seed=5), folder)
    return pipeline.solve(ROOT / "sample_nfs" / "nat.c", cores=4), {dev: str(p) for dev, p in paths.items()}


def _first_packets(path: str, n: int) -> Path:
    """A capture of the first ``n`` packets of ``path``, small enough for a pipe's 64 KiB buffer."""
    stamps, frames = read_pcap(path)
    short = Path(path).parent / f"first{n}.pcap"
    write_pcap(short, stamps[:n], frames[:n])
    assert short.stat().st_size < 1 << 16
    return short


def test_rebalance_of_an_nf_sharded_by_allocation_replays_a_piped_capture(nat_bidir):
    """nat's pools follow the RETA, so a rebalanced RETA is simulated again from the start: with
    ``--in 0=<(cat lan.pcap)`` the second pass found the pipe used up and the command failed
    ('the pipe gave no bytes')."""
    from explorer import pipeline

    solution, files = nat_bidir
    whole = pipeline.simulate(solution, files, rebalance=True)
    assert solution.pools and whole.rebalanced is not None
    short = _first_packets(files[0], 80)
    path, fd = _pipe(short.read_bytes())
    try:
        piped = pipeline.simulate(solution, {0: path, 1: files[1]}, rebalance=True)
    finally:
        os.close(fd)
    in_file = pipeline.simulate(solution, {0: str(short), 1: files[1]}, rebalance=True)
    assert piped.rebalanced == in_file.rebalanced and piped.per_core == in_file.per_core


def test_a_piped_trace_too_large_to_keep_for_the_second_pass_is_refused_naming_the_pipe(nat_bidir, monkeypatch):
    from explorer import limits, pipeline

    solution, files = nat_bidir
    monkeypatch.setattr(limits, "available_memory", lambda: 20_000)
    path, fd = _pipe(_first_packets(files[0], 80).read_bytes())
    try:
        with pytest.raises(TrafficError, match=rf"^0={path}: a pipe, read once, and --rebalance on an NF that "
                                               r"allocates per core simulates the trace twice; .* would need more "
                                               r"than 9.8 KiB after \d+ packets .*; save the capture to a file"):
            pipeline.simulate(solution, {0: path, 1: files[1]}, rebalance=True)
    finally:
        os.close(fd)
    assert pipeline.simulate(solution, files, rebalance=True).rebalanced is not None  # files are read twice


def test_dash_reads_standard_input_and_one_pipe_is_not_given_to_two_devices(tmp_path):
    """``--in 0=-`` said '-: no such file'; ``--in 0=- --in 1=-`` (or one FIFO twice) had two readers
    share the pipe's bytes, and the second found it empty ('already read'), or each got part of it."""
    from explorer.errors import ConfigError
    from explorer.traffic.pcap import parse_inputs

    plain = tmp_path / "plain.pcap"
    write_pcap(plain, [1, 2], [UDP, UDP])
    assert parse_inputs(["0=-", f"1={plain}", f"2={plain}"]) == {0: "/dev/stdin", 1: str(plain), 2: str(plain)}
    fifo = tmp_path / "lan.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=rf"^bad input '3={fifo}': {fifo} is the pipe device 1 reads, and a pipe "
                                          r"gives its bytes once; save the capture to a file and give that to both"):
        parse_inputs([f"0={plain}", f"1={fifo}", f"3={fifo}"])
    script = f"exec {sys.executable} -m explorer.cli simulate {ROOT / 'sample_nfs' / 'nop.c'} --cores 2 --in 0=-"
    done = subprocess.run(["bash", "-c", f"cat {plain} | {script}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("nop: 2 packets on 2 cores"), done.stderr
    done = subprocess.run(["bash", "-c", f"cat {plain} | {script} --in 1=/dev/stdin"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1 and "bad input '1=/dev/stdin': /dev/stdin is the pipe device 0 reads" in done.stderr


@pytest.mark.parametrize("cut,says", [(10, "truncated record at byte 176 \\(frame 3\\): 60 captured bytes announced, "
                                            "50 present"),
                                      (70, "truncated record header at byte 176 \\(frame 3\\): 6 of 16 bytes")])
def test_a_capture_cut_off_mid_record_says_how_to_keep_its_whole_records(tmp_path, cut, says):
    """A capture tool killed while writing leaves half a record: the refusal said where, not what to do."""
    path = tmp_path / "cut.pcap"
    write_pcap(path, [1, 2, 3], [UDP] * 3)
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(TrafficError, match=rf"^{path}: {says}; the file ends inside this record \(a capture cut off "
                                           rf"while it was written\?\): keep the whole records before it with "
                                           rf"`head -c 176 {path} > OUT.pcap`$"):
        read_pcap(path)


@pytest.mark.parametrize("cut", [4, 40])
def test_a_pcapng_cut_off_mid_block_says_how_to_keep_its_whole_blocks(tmp_path, cut):
    path = tmp_path / "cut.pcapng"
    data = _ng(ng.SectionHeaderBlockLE(), _idb(), _epb(UDP), _epb(UDP))
    whole = len(data) - len(bytes(_epb(UDP)))
    path.write_bytes(data[:whole + cut])
    with pytest.raises(TrafficError, match=rf"^{path}: truncated block (header )?at byte {whole}: .*; the file ends "
                                           rf"inside this block \(a capture cut off while it was written\?\): keep "
                                           rf"the whole blocks before it with `head -c {whole} {path} > OUT.pcapng`$"):
        read_pcap(path)


def test_packets_longer_than_the_files_snapshot_length_are_said(tmp_path):
    """A header whose snapshot length is below its packets' (hand-edited, or a careless writer) was
    read without a word, though tools that honour it cut those packets."""
    plain = tmp_path / "plain.pcap"
    write_pcap(plain, [1, 2], [UDP, UDP[:20]])
    data = bytearray(plain.read_bytes())
    struct.pack_into("<I", data, 16, 30)
    stamps, frames, said = _read(tmp_path / "snap.pcap", bytes(data))
    assert frames == (UDP, UDP[:20])
    assert said == [f"{tmp_path / 'snap.pcap'}: 1 of 2 packets hold more captured bytes than the file's snapshot "
                    f"length (30, in its header): a damaged or hand-edited header, or a careless writer; some tools "
                    f"cut such packets to 30 bytes, the NF sees them whole"]
    assert _read(plain, plain.read_bytes())[2] == []  # write_pcap's header says 262144
