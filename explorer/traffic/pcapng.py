"""Reading pcapng captures with dpkt's block classes, keeping timestamps as integer nanoseconds.

dpkt's own pcapng reader turns timestamps into floats (which cannot hold nanoseconds since 1970),
knows only the first interface and stops silently at a damaged block, so blocks are walked here and
each one is decoded by dpkt. Supported: any number of sections and Ethernet interfaces, each with its
own timestamp resolution and offset; enhanced and (obsolete) packet blocks. Other blocks are skipped.
"""
from __future__ import annotations

import struct
from typing import Any, BinaryIO, Iterator

import dpkt
import dpkt.pcapng as ng
import numpy as np

from explorer.errors import TrafficError
from explorer.traffic.linktypes import link_hint

PCAPNG_MAGIC = struct.pack(">I", ng.PCAPNG_BT_SHB)  # the same bytes in both byte orders
_MAX_BLOCK = 1 << 26  # a block claiming more than 64 MiB is corrupt, not a big packet
_NS_PER_SEC = 1_000_000_000
_PARSE_ERRORS = (dpkt.Error, struct.error, ValueError, IndexError)


class _Interface:
    """What an interface description block says about its packets' timestamps."""

    def __init__(self, block: ng.InterfaceDescriptionBlock, order: str, name: str, offset: int):
        if block.linktype != dpkt.pcap.DLT_EN10MB:
            raise TrafficError(f"{name}: interface at byte {offset} has link type {block.linktype}, "
                               f"not Ethernet; only Ethernet (link type {dpkt.pcap.DLT_EN10MB}) "
                               f"captures are supported{link_hint(block.linktype)}")
        self.units_per_sec = 10 ** 6  # pcapng's default resolution: microseconds
        self.offset_ns = 0
        for opt in block.opts:
            if opt.code == ng.PCAPNG_OPT_IF_TSRESOL and len(opt.data) >= 1:
                exponent = opt.data[0] & 0x7F
                self.units_per_sec = (2 if opt.data[0] & 0x80 else 10) ** exponent
            elif opt.code == ng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
                self.offset_ns = struct.unpack(order + "q", opt.data[:8])[0] * _NS_PER_SEC
        if self.units_per_sec == 0 or self.units_per_sec > 10 ** 30:
            raise TrafficError(f"{name}: interface at byte {offset} has an absurd timestamp resolution")

    def nanoseconds(self, ticks: int) -> int:
        return self.offset_ns + ticks * _NS_PER_SEC // self.units_per_sec


def iter_pcapng(stream: BinaryIO, name: str, chunk_packets: int, magic: bytes, stats: Any) -> Iterator[
        tuple[np.ndarray, tuple[bytes, ...]]]:
    """Chunks of ``(timestamps_ns, frames)`` from a pcapng stream whose first 4 bytes (``magic``)
    were already read; each chunk is counted in ``stats`` (``pcap.FileStats``) before it is yielded."""
    stamps: list[int] = []
    frames: list[bytes] = []
    on_wire: list[int] = []
    order = "<"
    interfaces: list[_Interface] = []
    offset = 0
    first = magic
    while True:
        head = first + stream.read(8 - len(first))
        first = b""
        if not head:
            break
        if len(head) < 8:
            raise TrafficError(f"{name}: truncated block header at byte {offset}: {len(head)} of 8 bytes")
        if head[:4] == PCAPNG_MAGIC:  # a new section: its header says the byte order
            bom = stream.read(4)
            if len(bom) < 4:
                raise TrafficError(f"{name}: truncated section header at byte {offset}")
            if bom == struct.pack("<I", ng.BYTE_ORDER_MAGIC):
                order = "<"
            elif bom == struct.pack(">I", ng.BYTE_ORDER_MAGIC):
                order = ">"
            else:
                raise TrafficError(f"{name}: bad byte-order magic 0x{bom.hex()} at byte {offset + 8}, "
                                   "not a pcapng file")
            head += bom
            interfaces = []
        kind, length = struct.unpack(order + "II", head[:8])
        if length < 12 or length % 4 or length > _MAX_BLOCK:
            raise TrafficError(f"{name}: block at byte {offset} has a bad length {length}: corrupt file")
        body = stream.read(length - len(head))
        block = head + body
        if len(block) < length:
            raise TrafficError(f"{name}: truncated block at byte {offset}: {length} bytes announced, "
                               f"{len(block)} present")
        if block[-4:] != block[4:8]:
            raise TrafficError(f"{name}: block at byte {offset} ends with a different length than it "
                               "starts with: corrupt file")
        try:
            if kind == ng.PCAPNG_BT_SHB:
                shb = (ng.SectionHeaderBlockLE if order == "<" else ng.SectionHeaderBlock)(block)
                if shb.v_major != ng.PCAPNG_VERSION_MAJOR:
                    raise TrafficError(f"{name}: pcapng version {shb.v_major}.{shb.v_minor} is not "
                                       "supported")
            elif kind == ng.PCAPNG_BT_IDB:
                idb_class = ng.InterfaceDescriptionBlockLE if order == "<" else ng.InterfaceDescriptionBlock
                interfaces.append(_Interface(idb_class(block), order, name, offset))
            elif kind in (ng.PCAPNG_BT_EPB, ng.PCAPNG_BT_PB):
                if kind == ng.PCAPNG_BT_EPB:
                    pkt = (ng.EnhancedPacketBlockLE if order == "<" else ng.EnhancedPacketBlock)(block)
                else:
                    pkt = (ng.PacketBlockLE if order == "<" else ng.PacketBlock)(block)
                if pkt.iface_id >= len(interfaces):
                    raise TrafficError(f"{name}: packet at byte {offset} names interface "
                                       f"{pkt.iface_id}, which is not described: corrupt file")
                if len(pkt.pkt_data) != pkt.caplen:
                    raise TrafficError(f"{name}: packet at byte {offset} announces {pkt.caplen} "
                                       f"bytes, its block holds {len(pkt.pkt_data)}: corrupt file")
                ticks = (pkt.ts_high << 32) | pkt.ts_low
                stamps.append(interfaces[pkt.iface_id].nanoseconds(ticks))
                frames.append(bytes(pkt.pkt_data))
                on_wire.append(pkt.pkt_len)
            elif kind == ng.PCAPNG_BT_SPB:
                raise TrafficError(f"{name}: simple packet block at byte {offset} has no timestamp; "
                                   "convert the capture with editcap -F pcap")
        except _PARSE_ERRORS as error:
            raise TrafficError(f"{name}: malformed block 0x{kind:08x} at byte {offset}: "
                               f"{error or type(error).__name__}") from None
        offset += length
        if len(frames) == chunk_packets:
            yield _chunk(stamps, frames, on_wire, name, stats)
            stamps, frames, on_wire = [], [], []
    if frames:
        yield _chunk(stamps, frames, on_wire, name, stats)


def _chunk(stamps: list[int], frames: list[bytes], on_wire: list[int], name: str,
           stats: Any) -> tuple[np.ndarray, tuple[bytes, ...]]:
    if min(stamps) < 0 or max(stamps) >= 1 << 64:
        raise TrafficError(f"{name}: timestamps outside 1970..2554: corrupt file")
    timestamps = np.asarray(stamps, dtype=np.uint64)
    stats.add(timestamps, np.fromiter(map(len, frames), dtype=np.int64, count=len(frames)),
              np.asarray(on_wire, dtype=np.int64))
    stats.add_ether_types(np.fromiter((int.from_bytes(f[12:14], "big") for f in frames if len(f) >= 14),
                                      dtype=np.uint16))
    return timestamps, tuple(frames)
