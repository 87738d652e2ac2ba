"""The wire format the engine knows, in one place: header fields (name, width, where they sit), the
protocol numbers nf.h tests, and which fields RSS can hash.

Every other module (the path explorer's symbolic packet, the checker's byte offsets, the RSS hash
input, the sharding constraints, the views) imports these tables instead of keeping a copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

ETHER_TYPE_IPV4 = 0x0800
PROTO_TCP = 6
PROTO_UDP = 17
ETHER_LEN = 14
MIN_FRAME = ETHER_LEN  # shorter frames (runts) never reach the NF


def reaching_the_nf(frames: Sequence[bytes]) -> np.ndarray:
    """Which frames the runtime hands to the NF: every one but the runts (shorter than MIN_FRAME)."""
    return np.fromiter((len(f) >= MIN_FRAME for f in frames), bool, len(frames))
# The longest frame (bytes as captured, no FCS) that the runtime hands to an NF: nf.h's NF_MAX_FRAME.
# The generated DPDK program sets its ports' MTU for it and drops longer frames (giants) before the NF;
# every command refuses traces with longer frames, so that no replay, check or run disagrees with it.
MAX_FRAME = 9018
TCP_LEN = 20
UDP_LEN = 8
# The More Fragments flag and the 13-bit fragment offset: a packet with any of them set has no ports.
FRAGMENT_BITS = 0x3FFF


@dataclass(frozen=True)
class PacketField:
    """A named header field: ``p.ipv4.src`` is a 32-bit host-order number (the big-endian reading of
    its wire bytes), at byte ``offset`` of its header ``region`` (struct nf_ether_hdr, nf_ipv4_hdr,
    nf_tcpudp_hdr or nf_tcp_fields in nf.h)."""

    name: str  # "p.ipv4.src"
    bits: int
    region: str  # "ether" | "ipv4" | "l4" | "tcp"
    offset: int  # bytes from the start of the region's header
    rss_name: Optional[str] = None  # "src_ip" for the four fields RSS can hash, else None

    @property
    def size(self) -> int:
        return self.bits // 8

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bits": self.bits, "rss_name": self.rss_name}


# In header order. The four RSS-hashable ones carry the names the RSS plan uses.
PACKET_FIELDS: tuple[PacketField, ...] = (
    PacketField("p.ether.dst", 48, "ether", 0),
    PacketField("p.ether.src", 48, "ether", 6),
    PacketField("p.ether.type", 16, "ether", 12),
    PacketField("p.ipv4.version_ihl", 8, "ipv4", 0),
    PacketField("p.ipv4.tos", 8, "ipv4", 1),
    PacketField("p.ipv4.total_length", 16, "ipv4", 2),
    PacketField("p.ipv4.id", 16, "ipv4", 4),
    PacketField("p.ipv4.frag_off", 16, "ipv4", 6),
    PacketField("p.ipv4.ttl", 8, "ipv4", 8),
    PacketField("p.ipv4.proto", 8, "ipv4", 9),
    PacketField("p.ipv4.checksum", 16, "ipv4", 10),
    PacketField("p.ipv4.src", 32, "ipv4", 12, "src_ip"),
    PacketField("p.ipv4.dst", 32, "ipv4", 16, "dst_ip"),
    PacketField("p.l4.sport", 16, "l4", 0, "src_port"),
    PacketField("p.l4.dport", 16, "l4", 2, "dst_port"),
    PacketField("p.tcp.seq", 32, "tcp", 0),
    PacketField("p.tcp.ack", 32, "tcp", 4),
    PacketField("p.tcp.data_off", 8, "tcp", 8),
    PacketField("p.tcp.flags", 8, "tcp", 9),
    PacketField("p.tcp.window", 16, "tcp", 10),
    PacketField("p.tcp.checksum", 16, "tcp", 12),
    PacketField("p.tcp.urgent", 16, "tcp", 14),
)
FIELD_BY_NAME: dict[str, PacketField] = {f.name: f for f in PACKET_FIELDS}
# The headers nf.h hands out: the bytes the analysis models for each (IPv4 without options, the two
# ports of TCP/UDP, and the rest of TCP's fixed header apart, so that no two regions hold one byte)
# and how views name them.
HEADER_SIZES: dict[str, int] = {"ether": ETHER_LEN, "ipv4": 20, "l4": 4, "tcp": 16}
HEADER_LABELS: dict[str, str] = {"ether": "Ethernet header", "ipv4": "IPv4 header", "l4": "TCP/UDP header",
                                 "tcp": "TCP header after the ports"}
# The regions that follow the IPv4 header and its options, by where they start in the L4 header.
L4_REGIONS: dict[str, int] = {"l4": 0, "tcp": 4}
# Not header fields, but inputs of nf_process the analysis also names.
INPUT_SYMBOLS: dict[str, int] = {"p.device": 16, "p.len": 16, "now": 64}

# The fields RSS can hash, in hash-input order (source IP, destination IP, source port, destination port).
RSS_FIELDS: tuple[tuple[str, int], ...] = tuple((f.rss_name, f.bits) for f in PACKET_FIELDS if f.rss_name)
RSS_NAMES: tuple[str, ...] = tuple(name for name, _ in RSS_FIELDS)
RSS_BITS: dict[str, int] = dict(RSS_FIELDS)
RSS_SYMBOL: dict[str, str] = {f.rss_name: f.name for f in PACKET_FIELDS if f.rss_name}  # "src_ip" -> "p.ipv4.src"
# Where a reply carries back what a packet carried: a reply's destination is the source it answers.
REPLY_FIELD: dict[str, str] = {"p.ipv4.src": "p.ipv4.dst", "p.ipv4.dst": "p.ipv4.src",
                               "p.l4.sport": "p.l4.dport", "p.l4.dport": "p.l4.sport"}


def field_at(region: str, offset: int) -> str:
    """The name of the field holding byte ``offset`` of header ``region``."""
    for f in PACKET_FIELDS:
        if f.region == region and f.offset <= offset < f.offset + f.size:
            return f.name
    raise KeyError((region, offset))


def frame_offset(field: PacketField, l4_start: Optional[int]) -> Optional[int]:
    """Where ``field`` starts in a frame whose L4 header starts at ``l4_start`` (None: no L4 header)."""
    if field.region == "ether":
        return field.offset
    if field.region == "ipv4":
        return ETHER_LEN + field.offset
    return None if l4_start is None else l4_start + L4_REGIONS[field.region] + field.offset
