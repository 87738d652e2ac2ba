"""Reading and writing packet captures: classic pcap (micro- or nanosecond timestamps, either byte
order) and pcapng, Ethernet link type only; timestamps are integer nanoseconds throughout.

Classic pcap records are walked here, block by block, so that a damaged file is reported with the
byte offset of the damage (dpkt's reader stops or yields short packets silently) and so that a file
larger than memory can be read in chunks. pcapng blocks are decoded with dpkt's block classes
(``explorer.traffic.pcapng``). Every failure a user can cause is a ``TrafficError`` naming the file
and, for damage inside it, the frame (from 1, as Wireshark and nfx's examples count) and byte offset.

One frame-size rule for every command: a frame longer than ``MAX_FRAME`` (9,018 bytes, a jumbo
frame: ``explorer.wire.MAX_FRAME``, nf.h's ``NF_MAX_FRAME``, which the generated DPDK program sets its
ports' MTU for) is refused when it is read. Some things are kept but reported once per file, with
counts, as a ``TrafficWarning``: packets the capture cut short (its snapshot length below the
frame's length on the wire; the NF sees the captured bytes), packets whose timestamp is earlier
than one before them in the file (never re-sorted: ``Trace.merge`` keeps each file's order),
pcapng packets without a timestamp, runts, and VLAN-tagged frames (nf.h reads no tag, so to the
NF they are not IPv4, and nfx steers them unhashed).
"""
from __future__ import annotations

import io
import os
import select
import stat
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence, Union

import dpkt
import numpy as np

from explorer import limits
from explorer.errors import ConfigError, TrafficError
from explorer.outputs import atomic_file
from explorer.traffic.linktypes import link_hint
from explorer.traffic.pcapng import PCAPNG_MAGIC, iter_pcapng
from explorer.traffic.trace import Trace
from explorer.wire import MAX_FRAME, MIN_FRAME  # the frame-size rule of every command (nf.h's NF_MAX_FRAME)
from explorer.wording import count

PathLike = Union[str, Path]
Chunk = tuple[np.ndarray, tuple[bytes, ...]]

# libpcap's largest snapshot length: a record claiming more is corrupt, not a big packet.
MAX_CAPLEN = 262144
NS_PER_SEC = 1_000_000_000
_FILE_HEADER = 24
_RECORD_HEADER = 16
_READ_SIZE = 1 << 22
_WRITE_BATCH = 1 << 16
_PIPE_POLL_MS = 100  # a wait for a pipe's writer: short, so that a signal is seen
_PIPE_SAY_MS = 1000  # said after this long

# Magic numbers as they appear in the file's first four bytes -> (byte order, nanosecond stamps).
_MAGICS = {
    struct.pack(">I", dpkt.pcap.TCPDUMP_MAGIC): (">", False),
    struct.pack(">I", dpkt.pcap.TCPDUMP_MAGIC_NANO): (">", True),
    struct.pack("<I", dpkt.pcap.TCPDUMP_MAGIC): ("<", False),
    struct.pack("<I", dpkt.pcap.TCPDUMP_MAGIC_NANO): ("<", True),
}
_MODIFIED_MAGICS = {struct.pack(">I", dpkt.pcap.MODPCAP_MAGIC), struct.pack("<I", dpkt.pcap.MODPCAP_MAGIC)}
# The first bytes of compressed files (captures are often kept as .pcap.gz) -> (what it is, the command
# that undoes it). nfx reads captures in place and more than once, so it asks for the file itself.
_COMPRESSED = {b"\x1f\x8b": ("gzip-compressed", "gunzip -k"), b"BZh": ("bzip2-compressed", "bunzip2 -k"),
               b"\xfd7zX": ("xz-compressed", "unxz -k"), b"\x28\xb5\x2f\xfd": ("zstd-compressed", "unzstd"),
               b"\x04\x22\x4d\x18": ("lz4-compressed", "unlz4"), b"PK\x03\x04": ("a zip archive", "unzip")}
# Ether types of a VLAN tag: 802.1Q, 802.1ad (QinQ's outer tag) and the older 0x9100.
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


class TrafficWarning(UserWarning):
    """Something odd in a capture that nfx keeps and reports (the CLI prints it on one line)."""


class FileStats:
    """Counts, over one file, of packets cut by the snapshot length and packets out of time order;
    checks the frame-size rule."""

    def __init__(self, name: str):
        self.name = name
        self.packets = 0
        self.truncated = 0
        self.out_of_order = 0
        self.runts = 0
        self.tagged = 0
        self.overlong = 0
        self.snaplen = 0  # the file header's snapshot length (classic pcap; 0: none said)
        self.past_snaplen = 0
        self.untimed = 0  # pcapng simple packet blocks (explorer.traffic.pcapng counts them)
        self.latest = 0
        # The trailing run of records that are all zeros (time 0, no bytes, none on the wire): count,
        # and the byte and frame it starts at. Only one that reaches the end of the file is said.
        self.blank = 0
        self.blank_from = (0, 0)

    def add(self, stamps: np.ndarray, captured: np.ndarray, on_wire: np.ndarray) -> None:
        if len(stamps) == 0:
            return
        big = np.flatnonzero(captured > MAX_FRAME)
        if len(big):
            k = int(big[0])
            raise TrafficError(f"{self.name}: frame {self.packets + k + 1} has {int(captured[k])} bytes, more than "
                               f"the {MAX_FRAME} an NF takes (NF_MAX_FRAME, a jumbo frame)")
        self.truncated += int(np.count_nonzero(captured < on_wire))
        self.overlong += int(np.count_nonzero(captured > on_wire))
        if self.snaplen:
            self.past_snaplen += int(np.count_nonzero(captured > self.snaplen))
        self.runts += int(np.count_nonzero(captured < MIN_FRAME))
        before = np.maximum.accumulate(np.concatenate(([np.uint64(self.latest)], stamps[:-1].astype(np.uint64))))
        self.out_of_order += int(np.count_nonzero(stamps < before))
        self.latest = int(max(self.latest, int(stamps.max())))
        self.packets += len(stamps)

    def add_blank(self, blank: np.ndarray, offsets: np.ndarray, first_frame: int) -> None:
        """Follow the trailing run of all-zero records over records whose blankness is ``blank``, at
        byte ``offsets``, the first being frame ``first_frame``."""
        kept = np.flatnonzero(~blank)
        start = int(kept[-1]) + 1 if len(kept) else 0
        if start == len(blank):
            self.blank = 0
        elif start or not self.blank:
            self.blank, self.blank_from = len(blank) - start, (int(offsets[start]), first_frame + start)
        else:
            self.blank += len(blank)

    def add_ether_types(self, types: np.ndarray) -> None:
        """Count the VLAN-tagged frames among frames whose ether types are ``types``."""
        self.tagged += int(np.count_nonzero(np.isin(types, VLAN_TPIDS)))

    def report(self) -> None:
        """One warning per kind of oddity, with counts."""
        if self.blank:
            at, frame = self.blank_from
            warnings.warn(TrafficWarning(
                f"{self.name}: the file ends with {count(self.blank, 'record')} of zeros from byte {at} (frame "
                f"{frame} on): a capture cut off while it was written, or a zero-filled file; they are read as "
                f"empty packets at time 0; cut them off with `head -c {at} {self.name} > OUT.pcap`"))
        if self.truncated:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.truncated} of {self.packets} packets were cut short by the capture's "
                f"snapshot length (fewer bytes captured than on the wire); the NF sees the captured bytes"))
        if self.overlong:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.overlong} of {self.packets} packets claim more captured bytes than their "
                f"length on the wire (a damaged or hand-edited capture); the NF sees the captured bytes"))
        if self.past_snaplen:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.past_snaplen} of {self.packets} packets hold more captured bytes than the "
                f"file's snapshot length ({self.snaplen}, in its header): a damaged or hand-edited header, or a "
                f"careless writer; some tools cut such packets to {self.snaplen} bytes, the NF sees them whole"))
        if self.runts:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.runts} of {self.packets} packets are shorter than an Ethernet header "
                f"({MIN_FRAME} bytes); the runtime drops such runts without calling the NF, and the simulator "
                f"skips them"))
        if self.tagged:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.tagged} of {self.packets} packets carry a VLAN tag (802.1Q/802.1ad); nf.h "
                f"reads no tag, so the NF sees them as non-IPv4 frames and nfx steers them unhashed (RETA entry "
                f"0); remove the tags first, e.g. `tcprewrite --enet-vlan=del -i IN.pcap -o OUT.pcap`"))
        if self.untimed:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.untimed} of {self.packets} packets are in simple packet blocks, which carry "
                f"no timestamp; each takes the time of the packet before it (0, i.e. 1970, at the start of the file)"))
        if self.out_of_order:
            warnings.warn(TrafficWarning(
                f"{self.name}: {self.out_of_order} of {self.packets} packets have a timestamp earlier than a "
                f"packet before them; they are kept in file order, at the latest time before them"))


def read_pcap(path: PathLike) -> Chunk:
    """All packets of a pcap or pcapng file: ``(timestamps_ns, frames)`` with ``timestamps_ns`` a
    uint64 array. A valid file with no packets gives an empty array and an empty tuple. Raises
    ``TrafficError`` for a missing, empty, truncated or malformed file or a non-Ethernet link type."""
    stamps: list[np.ndarray] = []
    frames: list[bytes] = []
    for ts, chunk in iter_pcap(path, 1 << 20):
        stamps.append(ts)
        frames.extend(chunk)
    timestamps = np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.uint64)
    return timestamps, tuple(frames)


def iter_pcap(path: PathLike, chunk_packets: int) -> Iterator[Chunk]:
    """The packets of a pcap or pcapng file in chunks of ``chunk_packets`` (the last one may be
    shorter; a file without packets yields nothing), reading the file incrementally so that traces
    larger than memory can be streamed. Errors are those of ``read_pcap``: a bad chunk size or a
    missing file at once, damage inside the file when the iteration reaches it."""
    if isinstance(chunk_packets, bool) or not isinstance(chunk_packets, int) or chunk_packets < 1:
        raise TrafficError(f"chunk size must be a positive number of packets, not {chunk_packets!r}")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise TrafficError(f"{path}: no such file") from None
    except OSError as error:
        raise TrafficError(f"{path}: cannot read: {error.strerror or error}") from None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):  # a FIFO ends: it may be read
        raise TrafficError(f"{path}: is a device or socket, not a pcap file")
    return _chunks(path, chunk_packets, stat.S_ISREG(mode), stat.S_ISFIFO(mode))


def _chunks(path: PathLike, chunk_packets: int, regular: bool = True, pipe: bool = False) -> Iterator[Chunk]:
    name = str(path)
    try:
        stream = _open_pipe(name) if pipe else open(path, "rb")
    except FileNotFoundError:
        raise TrafficError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise TrafficError(f"{name}: is a directory, not a pcap file") from None
    except OSError as error:
        raise TrafficError(f"{name}: cannot read: {error.strerror or error}") from None
    with stream:
        stats = FileStats(name)
        try:
            magic = stream.read(4)
            if not magic and not regular:  # a pipe (--in 0=<(zcat a.pcap.gz)) is read once
                raise TrafficError(f"{name}: the pipe gave no bytes: it is empty, or was already read (a pipe can "
                                   "be read once, and this command reads its captures again); save the capture "
                                   "to a file and give that")
            if magic == PCAPNG_MAGIC:
                yield from iter_pcapng(stream, name, chunk_packets, magic, stats)
            else:
                yield from _iter_classic(stream, name, chunk_packets, magic, stats)
        except OSError as error:
            raise TrafficError(f"{name}: cannot read: {error.strerror or error}") from None
        stats.report()


def _open_pipe(name: str) -> BinaryIO:
    """A named pipe (FIFO) or a pipe, opened for reading once something writes to it, and read
    without ever blocking in the kernel.

    A plain ``open`` of a FIFO nothing writes to, or a ``read`` of a pipe whose writer is idle,
    blocks in the kernel, where Ctrl-C landing on another of nfx's threads never reaches it:
    ``nfx simulate --in 0=fifo`` hung until killed. So the pipe is opened and read without blocking,
    and waited for in short polls (Python runs its signal handlers between them); a pipe nothing
    writes to is said once, after a second."""
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    try:
        raw = _PipeReader(fd)
        waits = 0
        while not raw.ready():
            waits += 1
            if waits * _PIPE_POLL_MS == _PIPE_SAY_MS:
                warnings.warn(TrafficWarning(f"{name}: a named pipe nothing writes to yet; waiting for a writer "
                                             "(Ctrl-C to stop)"))
    except BaseException:
        os.close(fd)
        raise
    return io.BufferedReader(raw, _READ_SIZE)


class _PipeReader(io.RawIOBase):
    """A pipe's non-blocking descriptor read as a blocking stream, in short polls (``_open_pipe``)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP)

    def ready(self) -> bool:
        """Whether a read would not wait: bytes came, or the writer closed (end of the pipe)."""
        return bool(self.poller.poll(_PIPE_POLL_MS))

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            try:
                return os.readv(self.fd, [buffer])
            except BlockingIOError:
                self.ready()

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def _iter_classic(stream: BinaryIO, name: str, chunk_packets: int, magic: bytes, stats: FileStats) -> Iterator[Chunk]:
    if not magic:
        raise TrafficError(f"{name}: empty file (0 bytes), not a pcap file")
    if magic in _MODIFIED_MAGICS:
        raise TrafficError(f"{name}: modified (Kuznetzov) pcap format is not supported; "
                           "convert it with editcap -F pcap")
    if magic not in _MAGICS:
        for start, (kind, undo) in _COMPRESSED.items():
            if magic.startswith(start):
                raise TrafficError(f"{name}: is {kind}, not a pcap file; decompress it first "
                                   f"(`{undo} {name}`) and give the capture itself")
        if len(magic) < 4:
            raise TrafficError(f"{name}: {len(magic)}-byte file, too short for a pcap file")
        raise TrafficError(f"{name}: bad magic 0x{magic.hex()}, not a pcap or pcapng file")
    order, nano = _MAGICS[magic]
    rest = stream.read(_FILE_HEADER - 4)
    if len(rest) < _FILE_HEADER - 4:
        raise TrafficError(f"{name}: truncated file header ({4 + len(rest)} of {_FILE_HEADER} bytes)")
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(order + "HHiIII", rest)
    if major != 2:
        raise TrafficError(f"{name}: pcap version {major}.{minor} is not supported (expected 2.x)")
    linktype = network & 0xFFFF
    if linktype != dpkt.pcap.DLT_EN10MB:
        raise TrafficError(f"{name}: link type {linktype} is not Ethernet; only Ethernet "
                           f"(link type {dpkt.pcap.DLT_EN10MB}) captures are supported{link_hint(linktype)}")
    # The upper bits may say every frame ends with its FCS (the F bit, 26, and the FCS length in 16-bit
    # words, bits 28-31): the NIC strips it before a DPDK program sees the frame, so it goes here too.
    fcs = 2 * (network >> 28 & 0xF) if network & (1 << 26) else 0
    stats.snaplen = snaplen
    yield from _classic_records(stream, name, chunk_packets, order, nano, stats, fcs)


def _classic_records(stream: BinaryIO, name: str, chunk_packets: int, order: str,
                     nano: bool, stats: FileStats, fcs: int = 0) -> Iterator[Chunk]:
    caplen_at = struct.Struct(order + "I").unpack_from
    header = np.dtype([("sec", order + "u4"), ("frac", order + "u4"), ("caplen", order + "u4"),
                       ("wirelen", order + "u4")])
    buf = b""
    pos = 0  # next record's offset in buf
    base = _FILE_HEADER  # file offset of buf[0]
    index = 0  # records before the next one (its frame number, as Wireshark counts, is index + 1)
    pending = Chunker(chunk_packets)
    while True:
        more = stream.read(_READ_SIZE)
        buf = buf[pos:] + more
        base += pos
        pos = 0
        end = len(buf)
        # Walk the records in Python (lengths vary), then decode their headers with numpy.
        starts: list[int] = []
        while end - pos >= _RECORD_HEADER:
            caplen = caplen_at(buf, pos + 8)[0]
            if caplen > MAX_CAPLEN:
                raise TrafficError(f"{name}: record at byte {base + pos} (frame {index + len(starts) + 1}) "
                                   f"claims {caplen} captured bytes, more than {MAX_CAPLEN}: corrupt file")
            stop = pos + _RECORD_HEADER + caplen
            if stop > end:
                break
            starts.append(pos)
            pos = stop
        if starts:
            stamps, frames = _decode(buf, starts, header, nano, name, base, index, stats, fcs)
            index += len(starts)
            pending.add(stamps, frames)
            yield from pending.full_chunks()
        if not more:
            break
    left = end - pos
    if left:
        if left < _RECORD_HEADER:
            raise TrafficError(f"{name}: truncated record header at byte {base + pos} (frame "
                               f"{index + 1}): {left} of {_RECORD_HEADER} bytes{_cut(name, base + pos)}")
        caplen = caplen_at(buf, pos + 8)[0]
        raise TrafficError(f"{name}: truncated record at byte {base + pos} (frame {index + 1}): "
                           f"{caplen} captured bytes announced, {left - _RECORD_HEADER} present{_cut(name, base + pos)}")
    yield from pending.rest()


def _cut(name: str, whole: int) -> str:
    """What to do with a capture whose last record was cut off (a capture tool killed mid-write):
    keep the ``whole`` bytes before it."""
    return (f"; the file ends inside this record (a capture cut off while it was written?): keep the whole "
            f"records before it with `head -c {whole} {name} > OUT.pcap`")


class Chunker:
    """Regroups packets decoded in arbitrary batches into chunks of exactly ``size`` packets."""

    def __init__(self, size: int):
        self.size = size
        self.stamps: list[np.ndarray] = []
        self.frames: list[bytes] = []

    def add(self, stamps: np.ndarray, frames: Sequence[bytes]) -> None:
        self.stamps.append(stamps)
        self.frames.extend(frames)

    def full_chunks(self) -> Iterator[Chunk]:
        if len(self.frames) < self.size:
            return
        stamps = np.concatenate(self.stamps)
        done = len(self.frames) // self.size * self.size
        for lo in range(0, done, self.size):
            yield stamps[lo:lo + self.size], tuple(self.frames[lo:lo + self.size])
        self.stamps, self.frames = [stamps[done:]], self.frames[done:]

    def rest(self) -> Iterator[Chunk]:
        if self.frames:
            yield np.concatenate(self.stamps), tuple(self.frames)
        self.stamps, self.frames = [], []


def _decode(buf: bytes, starts: list[int], header: np.dtype, nano: bool, name: str, base: int,
            index: int, stats: FileStats, fcs: int = 0) -> tuple[np.ndarray, list[bytes]]:
    """The records at ``starts`` of ``buf`` (whose first byte is at file offset ``base``); the first
    one is frame ``index + 1``. ``fcs`` trailing bytes are cut from every frame captured whole."""
    at = np.asarray(starts, dtype=np.int64)
    raw = np.frombuffer(buf, dtype=np.uint8)
    heads = raw[at[:, None] + np.arange(_RECORD_HEADER)].copy().view(header).reshape(-1)
    frac_limit = NS_PER_SEC if nano else 1_000_000
    bad = np.flatnonzero(heads["frac"] >= frac_limit)
    if len(bad):
        k = int(bad[0])
        unit = "nanoseconds" if nano else "microseconds"
        frac = int(heads["frac"][k])
        # Exactly one second: a writer rounded a float timestamp up (dpkt's Writer does, e.g. for 1.9999999).
        hint = ("; a writer that rounds float timestamps up writes this (dpkt's does for 1.9999999 s)"
                if frac == frac_limit else "")
        raise TrafficError(f"{name}: record at byte {base + starts[k]} (frame {index + k + 1}) has "
                           f"{frac} {unit}, not below one second: corrupt file{hint}")
    stamps = (heads["sec"].astype(np.uint64) * np.uint64(NS_PER_SEC)
              + heads["frac"].astype(np.uint64) * np.uint64(1 if nano else 1000))
    stats.add(stamps, heads["caplen"], heads["wirelen"])
    stats.add_blank((stamps == 0) & (heads["caplen"] == 0) & (heads["wirelen"] == 0), base + at, index + 1)
    type_at = (at + _RECORD_HEADER + 12)[heads["caplen"] >= MIN_FRAME]
    stats.add_ether_types(raw[type_at].astype(np.uint16) << 8 | raw[type_at + 1])
    whole = (heads["caplen"] == heads["wirelen"]) & (heads["caplen"] > fcs) if fcs else False
    ends = (at + _RECORD_HEADER + heads["caplen"] - np.where(whole, fcs, 0)).tolist()
    return stamps, [buf[a + _RECORD_HEADER:b] for a, b in zip(starts, ends)]


def write_pcap(path: PathLike, timestamps_ns: Iterable[int], frames: Sequence[bytes],
               nano: bool = True) -> None:
    """Write an Ethernet pcap (little endian; nanosecond stamps unless ``nano`` is false, in which
    case stamps are truncated to the microsecond). Zero frames give a valid, header-only file.
    The file is replaced atomically and never through a symlink (``explorer.outputs``)."""
    with atomic_file(path) as out:
        write_pcap_to(out, str(path), timestamps_ns, frames, nano)


def write_pcap_to(out: BinaryIO, name: str, timestamps_ns: Iterable[int], frames: Sequence[bytes],
                  nano: bool = True) -> None:
    """``write_pcap`` into an open binary handle (``name`` is for messages)."""
    stamps = np.asarray(timestamps_ns, dtype=np.uint64).reshape(-1)
    if len(stamps) != len(frames):
        raise TrafficError(f"{name}: {len(stamps)} timestamps for {len(frames)} frames")
    lengths = np.fromiter(map(len, frames), dtype=np.uint32, count=len(frames))
    if len(frames) and int(lengths.max()) > MAX_CAPLEN:
        raise TrafficError(f"{name}: frame #{int(lengths.argmax())} has {int(lengths.max())} bytes, "
                           f"more than pcap's {MAX_CAPLEN}")
    if len(stamps) and int(stamps.max()) >= (1 << 32) * NS_PER_SEC:
        raise TrafficError(f"{name}: timestamp {int(stamps.max())} ns is past what pcap can store (2106)")
    magic = dpkt.pcap.TCPDUMP_MAGIC_NANO if nano else dpkt.pcap.TCPDUMP_MAGIC
    header = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, MAX_CAPLEN, dpkt.pcap.DLT_EN10MB)
    records = np.empty((len(frames), 4), dtype="<u4")
    records[:, 0] = stamps // np.uint64(NS_PER_SEC)
    records[:, 1] = stamps % np.uint64(NS_PER_SEC) // np.uint64(1 if nano else 1000)
    records[:, 2] = lengths
    records[:, 3] = lengths
    out.write(header)
    for start in range(0, len(frames), _WRITE_BATCH):
        heads = records[start:start + _WRITE_BATCH].tobytes()
        body = frames[start:start + _WRITE_BATCH]
        out.write(b"".join([part for k, frame in enumerate(body) for part in (heads[16 * k:16 * k + 16], frame)]))


STDIN = "/dev/stdin"  # what ``DEV=-`` reads, as Unix tools take ``-``


def parse_input(spec: str) -> tuple[int, str]:
    """``"DEV=PATH"`` -> ``(DEV, PATH)`` (``DEV=-``: standard input); ``ConfigError`` when it is not
    of that form."""
    dev, sep, path = spec.partition("=")
    dev = dev.strip()
    if not sep or not path:
        raise ConfigError(f"bad input {spec!r}: expected DEV=PCAP, e.g. 0=lan.pcap")
    if not (dev.isascii() and dev.isdigit()) or int(dev) > 0xFFFF:
        raise ConfigError(f"bad input {spec!r}: device {dev!r} is not a number from 0 to 65535")
    return int(dev), STDIN if path == "-" else path


def _pipe_id(path: str) -> tuple[int, int] | None:
    """The identity of the pipe ``path`` names (device, inode), None for anything else."""
    try:
        found = os.stat(path)
    except OSError:
        return None  # reading it says what is wrong
    return (found.st_dev, found.st_ino) if stat.S_ISFIFO(found.st_mode) else None


def parse_inputs(specs: Sequence[str]) -> dict[int, str]:
    """``["0=a.pcap", "1=b.pcap"]`` -> ``{0: "a.pcap", 1: "b.pcap"}``; ``ConfigError`` for a bad
    spec or a device given twice (one capture per device: a second one is never dropped silently)."""
    if not specs:
        raise ConfigError("no input traffic: give one or more DEV=PCAP (nfx traffic writes some, e.g. "
                          "`nfx traffic paths --nf NF.c --out DIR`: packets that follow every path of the NF)")
    out: dict[int, str] = {}
    pipes: dict[tuple[int, int], int] = {}
    for spec in specs:
        dev, path = parse_input(spec)
        if dev in out:
            raise ConfigError(f"bad input {spec!r}: device {dev} is given twice")
        pipe = _pipe_id(path)
        if pipe in pipes:  # two readers of one pipe would each get some of its bytes
            raise ConfigError(f"bad input {spec!r}: {path} is the pipe device {pipes[pipe]} reads, and a pipe gives "
                              f"its bytes once; save the capture to a file and give that to both devices")
        if pipe is not None:
            pipes[pipe] = dev
        out[dev] = path
    return out


def load_inputs(specs: Sequence[str]) -> Trace:
    """Read ``["0=a.pcap", "1=b.pcap", ...]`` (the pcap each device receives) and merge them by
    timestamp, ties by device then file order (``Trace.merge``).

    The commands that hold a whole trace (run, check, bench) call this: captures they could not hold
    are refused while they are read, before the memory runs out (the kernel would kill nfx
    without a word), with how far the reading got."""
    memory = _TraceMemory(int(limits.available_memory() * limits.MEMORY_SHARE))
    return Trace.merge({dev: memory.read(path) for dev, path in parse_inputs(specs).items()})


class _TraceMemory:
    """The memory a trace read so far will take in a command that holds it whole, against a budget.

    Per packet and per byte of its frames, measured on nop.c (peak RSS less the command's own):
    check (the most) took 1.1 GB for 1M frames of 64 bytes and 0.3 GB for 50k frames of 1500 bytes;
    run 0.7 and 0.3 GB. The frames are held several times over: read, merged, encoded for the
    harness, and again as the sequential and parallel runs' outputs."""

    PER_PACKET = 800
    PER_BYTE = 4
    CHUNK = 1 << 16  # packets between two looks at the budget

    def __init__(self, budget: int):
        self.budget = budget
        self.packets = 0
        self.frame_bytes = 0

    def need(self) -> int:
        return self.packets * self.PER_PACKET + self.frame_bytes * self.PER_BYTE

    def read(self, path: PathLike) -> Chunk:
        stamps: list[np.ndarray] = []
        frames: list[bytes] = []
        for ts, chunk in iter_pcap(path, self.CHUNK):
            stamps.append(ts)
            frames.extend(chunk)
            self.packets += len(chunk)
            self.frame_bytes += sum(map(len, chunk))
            if self.need() > self.budget:
                fit = max(1, len(frames) * self.budget // self.need())
                raise TrafficError(
                    f"{path}: too large to hold in memory: after {len(frames)} of its packets the trace would "
                    f"need about {limits.size_text(self.need())}, more than the {limits.size_text(self.budget)} "
                    f"nfx allows itself here (half of what is available); run, check and bench hold the whole "
                    f"trace: give a shorter capture (e.g. `editcap -r {path} first.pcap 1-{fit}`), or simulate, "
                    f"which streams captures")
        timestamps = np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.uint64)
        return timestamps, tuple(frames)


def write_trace(trace: Trace, folder: PathLike, devices: Iterable[int] = (),
                inputs: Sequence[PathLike] = ()) -> dict[int, Path]:
    """Write ``dev<N>.pcap`` (nanosecond pcap) in ``folder`` for every device that receives packets
    in ``trace`` and for each of ``devices`` (empty pcaps where none arrive), as a pcap folder
    (``explorer.traffic.pcap_folder``: a new folder appears whole; an existing one keeps what nfx
    did not write; none of ``inputs`` is ever written over). Returns ``{device: path}``, sorted by device."""
    from explorer.traffic.pcap_folder import write_pcaps

    chosen = sorted(set(np.unique(trace.devices).tolist()) | {int(d) for d in devices})
    parts = {dev: trace.for_device(dev) for dev in chosen}
    paths = write_pcaps(Path(folder), {f"dev{dev}.pcap": (part.timestamps, part.frames) for dev, part in parts.items()},
                        inputs)
    return {dev: paths[f"dev{dev}.pcap"] for dev in chosen}
