"""Reading pcapng captures with dpkt's block classes, keeping timestamps as integer nanoseconds.

dpkt's own pcapng reader turns timestamps into floats (which cannot hold nanoseconds since 1970),
knows only the first interface and stops silently at a damaged block, so blocks are walked here and
each one is decoded by dpkt. Supported: any number of sections and interfaces, each with its own
timestamp resolution and offset; enhanced, simple and (obsolete) packet blocks. Other blocks
(comments, name resolution, statistics, custom, unknown) are skipped, as the format says a reader
may. Errors name the packet by its frame number (from 1, as Wireshark counts) and its byte offset.

An interface is judged only by the packets captured on it: a capture of several interfaces where
one that no packet uses is not Ethernet (a USB or Linux cooked interface that dumpcap also listed)
is read; a packet on such an interface is refused, naming the interface and its link type.
"""
from __future__ import annotations

import struct
from typing import Any, BinaryIO, Iterator, Optional

import dpkt
import dpkt.pcapng as ng
import numpy as np

from explorer.errors import TrafficError
from explorer.traffic.linktypes import link_hint

PCAPNG_MAGIC = struct.pack(">I", ng.PCAPNG_BT_SHB)  # the same bytes in both byte orders
_MAX_BLOCK = 1 << 26  # a block claiming more than 64 MiB is corrupt, not a big packet
_NS_PER_SEC = 1_000_000_000
# Timestamps nfx keeps: from 1970 up to what a classic pcap's 32-bit seconds hold (early 2106), since
# nfx run and check write the packets they read back into pcaps with their own timestamps.
_LATEST_NS = (1 << 32) * _NS_PER_SEC - 1
_SPB_HEADER = 12  # block type, block length, original packet length
_PACKET_HEADER = 28  # of an enhanced or (obsolete) packet block, before the packet's bytes
_PARSE_ERRORS = (dpkt.Error, struct.error, ValueError, IndexError)
_BLOCK_NAMES = {ng.PCAPNG_BT_SHB: "section header", ng.PCAPNG_BT_IDB: "interface description",
                ng.PCAPNG_BT_EPB: "enhanced packet", ng.PCAPNG_BT_PB: "packet", ng.PCAPNG_BT_SPB: "simple packet"}


class _Interface:
    """What an interface description block says about its packets: their timestamps, their snapshot
    length, and, for an interface nfx cannot read packets of, why (said when a packet uses it)."""

    def __init__(self, block: ng.InterfaceDescriptionBlock, order: str, number: int):
        self.number = number
        self.snaplen = block.snaplen
        self.units_per_sec = 10 ** 6  # pcapng's default resolution: microseconds
        self.offset_ns = 0
        for opt in block.opts:
            if opt.code == ng.PCAPNG_OPT_IF_TSRESOL and len(opt.data) >= 1:
                exponent = opt.data[0] & 0x7F
                self.units_per_sec = (2 if opt.data[0] & 0x80 else 10) ** exponent
            elif opt.code == ng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
                self.offset_ns = struct.unpack(order + "q", opt.data[:8])[0] * _NS_PER_SEC
        self.refusal: Optional[str] = None
        if block.linktype != dpkt.pcap.DLT_EN10MB:
            self.refusal = (f"has link type {block.linktype}, not Ethernet; only Ethernet (link type "
                            f"{dpkt.pcap.DLT_EN10MB}) captures are supported{link_hint(block.linktype)}")
        elif self.units_per_sec == 0 or self.units_per_sec > 10 ** 30:
            self.refusal = "has an absurd timestamp resolution (its if_tsresol option): corrupt file"

    def nanoseconds(self, ticks: int) -> int:
        return self.offset_ns + ticks * _NS_PER_SEC // self.units_per_sec


class _Walk:
    """The state of one pass over the blocks: byte order and interfaces of the current section, and
    the packets decoded since the last chunk."""

    def __init__(self, name: str):
        self.name = name
        self.order = "<"
        self.interfaces: list[_Interface] = []
        self.frames_seen = 0  # packets before the current one, in the whole file
        self.stamps: list[int] = []
        self.frames: list[bytes] = []
        self.on_wire: list[int] = []
        self.untimed = 0  # packets of simple packet blocks, which carry no timestamp
        self.last = 0  # the timestamp of the packet before, which such a packet keeps

    def where(self, offset: int) -> str:
        """The current packet, as a person finds it: 'frame 3 (block at byte 140)'."""
        return f"frame {self.frames_seen + 1} (block at byte {offset})"

    def interface(self, number: int, offset: int) -> _Interface:
        if number >= len(self.interfaces):
            raise TrafficError(f"{self.name}: {self.where(offset)} names interface {number}, which is not "
                               "described: corrupt file")
        interface = self.interfaces[number]
        if interface.refusal:
            raise TrafficError(f"{self.name}: {self.where(offset)} was captured on interface {number}, which "
                               f"{interface.refusal}")
        return interface

    def add(self, stamp: int, frame: bytes, on_wire: int, offset: int) -> None:
        if not 0 <= stamp <= _LATEST_NS:
            raise TrafficError(f"{self.name}: {self.where(offset)} has a timestamp of {stamp} ns, outside "
                               "1970..2106 (what a pcap holds): corrupt file, or a wrong if_tsoffset")
        self.stamps.append(stamp)
        self.frames.append(frame)
        self.on_wire.append(on_wire)
        self.frames_seen += 1
        self.last = stamp


def _cut(name: str, whole: int) -> str:
    """What to do with a capture whose last block was cut off (a capture tool killed mid-write):
    keep the ``whole`` bytes before it (``explorer.traffic.pcap`` says the same of a pcap)."""
    if not whole:
        return ""
    return (f"; the file ends inside this block (a capture cut off while it was written?): keep the whole "
            f"blocks before it with `head -c {whole} {name} > OUT.pcapng`")


def iter_pcapng(stream: BinaryIO, name: str, chunk_packets: int, magic: bytes, stats: Any) -> Iterator[
        tuple[np.ndarray, tuple[bytes, ...]]]:
    """Chunks of ``(timestamps_ns, frames)`` from a pcapng stream whose first 4 bytes (``magic``)
    were already read; each chunk is counted in ``stats`` (``pcap.FileStats``) before it is yielded."""
    walk = _Walk(name)
    offset = 0
    first = magic
    while True:
        head = first + stream.read(8 - len(first))
        first = b""
        if not head:
            break
        if len(head) < 8:
            raise TrafficError(f"{name}: truncated block header at byte {offset}: {len(head)} of 8 bytes"
                               f"{_cut(name, offset)}")
        if head[:4] == PCAPNG_MAGIC:  # a new section: its header says the byte order
            bom = stream.read(4)
            if len(bom) < 4:
                raise TrafficError(f"{name}: truncated section header at byte {offset}")
            if bom == struct.pack("<I", ng.BYTE_ORDER_MAGIC):
                walk.order = "<"
            elif bom == struct.pack(">I", ng.BYTE_ORDER_MAGIC):
                walk.order = ">"
            else:
                raise TrafficError(f"{name}: bad byte-order magic 0x{bom.hex()} at byte {offset + 8}, "
                                   "not a pcapng file")
            head += bom
            walk.interfaces = []
        kind, length = struct.unpack(walk.order + "II", head[:8])
        if length < 12 or length % 4 or length > _MAX_BLOCK:
            raise TrafficError(f"{name}: block at byte {offset} has a bad length {length}: corrupt file")
        body = stream.read(length - len(head))
        block = head + body
        if len(block) < length:
            raise TrafficError(f"{name}: truncated block at byte {offset}: {length} bytes announced, "
                               f"{len(block)} present{_cut(name, offset)}")
        if block[-4:] != block[4:8]:
            raise TrafficError(f"{name}: block at byte {offset} ends with a different length than it "
                               "starts with: corrupt file")
        try:
            _block(walk, kind, block, offset)
        except _PARSE_ERRORS as error:
            what = _BLOCK_NAMES.get(kind, f"0x{kind:08x}")
            frame = f" (frame {walk.frames_seen + 1})" if kind in (ng.PCAPNG_BT_EPB, ng.PCAPNG_BT_PB) else ""
            raise TrafficError(f"{name}: malformed {what} block at byte {offset}{frame}: "
                               f"{error or type(error).__name__}") from None
        offset += length
        if len(walk.frames) == chunk_packets:
            yield _chunk(walk, stats)
    if walk.frames:
        yield _chunk(walk, stats)


def _block(walk: _Walk, kind: int, block: bytes, offset: int) -> None:
    """Decode one whole block into ``walk``: a section or interface, or a packet."""
    order, name = walk.order, walk.name
    if kind == ng.PCAPNG_BT_SHB:
        shb = (ng.SectionHeaderBlockLE if order == "<" else ng.SectionHeaderBlock)(block)
        if shb.v_major != ng.PCAPNG_VERSION_MAJOR:
            raise TrafficError(f"{name}: pcapng version {shb.v_major}.{shb.v_minor} is not supported")
    elif kind == ng.PCAPNG_BT_IDB:
        idb = (ng.InterfaceDescriptionBlockLE if order == "<" else ng.InterfaceDescriptionBlock)(block)
        walk.interfaces.append(_Interface(idb, order, len(walk.interfaces)))
    elif kind in (ng.PCAPNG_BT_EPB, ng.PCAPNG_BT_PB):
        # Both start with type, length, interface, two timestamp words, captured and original length.
        _packet_room(walk, kind, block, offset, _PACKET_HEADER)
        captured = struct.unpack_from(order + "I", block, 20)[0]
        room = len(block) - _PACKET_HEADER - 4
        if captured > room:
            raise TrafficError(f"{name}: {walk.where(offset)} announces {captured} captured bytes, its block has "
                               f"room for {room}: corrupt file")
        if kind == ng.PCAPNG_BT_EPB:
            pkt = (ng.EnhancedPacketBlockLE if order == "<" else ng.EnhancedPacketBlock)(block)
        else:
            pkt = (ng.PacketBlockLE if order == "<" else ng.PacketBlock)(block)
        interface = walk.interface(pkt.iface_id, offset)
        walk.add(interface.nanoseconds((pkt.ts_high << 32) | pkt.ts_low), bytes(pkt.pkt_data), pkt.pkt_len, offset)
    elif kind == ng.PCAPNG_BT_SPB:
        # A simple packet block: the packet of interface 0 of its section, without a timestamp; its
        # captured length is the original length cut to the interface's snapshot length (0: none).
        _packet_room(walk, kind, block, offset, _SPB_HEADER)
        interface = walk.interface(0, offset)
        original = struct.unpack_from(order + "I", block, 8)[0]
        captured = min(original, interface.snaplen) if interface.snaplen else original
        room = len(block) - _SPB_HEADER - 4
        if captured > room:
            raise TrafficError(f"{name}: {walk.where(offset)} should hold {captured} bytes (its original length"
                               f"{', cut to the snapshot length' if captured < original else ''}), its simple "
                               f"packet block holds {room}: corrupt file")
        # It keeps the time of the packet before it (its place in the file is its only clock).
        walk.add(walk.last, block[_SPB_HEADER:_SPB_HEADER + captured], original, offset)
        walk.untimed += 1


def _packet_room(walk: _Walk, kind: int, block: bytes, offset: int, header: int) -> None:
    """Refuse a packet block too short for its own fixed fields (``header`` bytes, and the trailing
    length), which would otherwise be read from the bytes after them."""
    if len(block) < header + 4:
        raise TrafficError(f"{walk.name}: {walk.where(offset)}: its {_BLOCK_NAMES[kind]} block has {len(block)} "
                           f"bytes, fewer than the {header + 4} of its fixed fields: corrupt file")


def _chunk(walk: _Walk, stats: Any) -> tuple[np.ndarray, tuple[bytes, ...]]:
    """The packets decoded since the last chunk, counted in ``stats``; ``walk`` starts a new chunk."""
    timestamps = np.asarray(walk.stamps, dtype=np.uint64)
    frames = tuple(walk.frames)
    stats.add(timestamps, np.fromiter(map(len, frames), dtype=np.int64, count=len(frames)),
              np.asarray(walk.on_wire, dtype=np.int64))
    stats.add_ether_types(np.fromiter((int.from_bytes(f[12:14], "big") for f in frames if len(f) >= 14),
                                      dtype=np.uint16))
    stats.untimed += walk.untimed
    walk.stamps, walk.frames, walk.on_wire, walk.untimed = [], [], [], 0
    return timestamps, frames
