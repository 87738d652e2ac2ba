"""The packet as the explorer sees it: field symbols, three header regions built from their bytes,
and the exact conditions under which nf_ipv4_header / nf_tcpudp_header return a header.

A field symbol is the host-order number (the big-endian reading of the wire bytes), so byte k of
a W-byte field is byte W-1-k (little-endian index) of its symbol.
"""
from __future__ import annotations

from dataclasses import dataclass

import z3

from explorer.ir import INPUT_SYMBOLS, PACKET_FIELDS
from explorer.symbex.memory import Region
from explorer.symbex.terms import Slice

ETHER_TYPE_IPV4 = 0x0800
PROTO_TCP = 6
PROTO_UDP = 17
ETHER_LEN = 14
TCP_LEN = 20
UDP_LEN = 8


@dataclass(frozen=True)
class HeaderField:
    name: str  # "p.ipv4.src"
    region: str  # "ether" | "ipv4" | "l4"
    offset: int
    size: int  # bytes


# Offsets follow struct nf_ether_hdr, nf_ipv4_hdr and nf_tcpudp_hdr in nf.h.
HEADER_FIELDS: tuple[HeaderField, ...] = (
    HeaderField("p.ether.dst", "ether", 0, 6),
    HeaderField("p.ether.src", "ether", 6, 6),
    HeaderField("p.ether.type", "ether", 12, 2),
    HeaderField("p.ipv4.version_ihl", "ipv4", 0, 1),
    HeaderField("p.ipv4.tos", "ipv4", 1, 1),
    HeaderField("p.ipv4.total_length", "ipv4", 2, 2),
    HeaderField("p.ipv4.id", "ipv4", 4, 2),
    HeaderField("p.ipv4.frag_off", "ipv4", 6, 2),
    HeaderField("p.ipv4.ttl", "ipv4", 8, 1),
    HeaderField("p.ipv4.proto", "ipv4", 9, 1),
    HeaderField("p.ipv4.checksum", "ipv4", 10, 2),
    HeaderField("p.ipv4.src", "ipv4", 12, 4),
    HeaderField("p.ipv4.dst", "ipv4", 16, 4),
    HeaderField("p.l4.sport", "l4", 0, 2),
    HeaderField("p.l4.dport", "l4", 2, 2),
)
HEADER_SIZES = {"ether": 14, "ipv4": 20, "l4": 4}
HEADER_LABELS = {"ether": "Ethernet header", "ipv4": "IPv4 header", "l4": "TCP/UDP header"}

assert [f.name for f in HEADER_FIELDS] == [f.name for f in PACKET_FIELDS]
assert all(8 * h.size == p.bits for h, p in zip(HEADER_FIELDS, PACKET_FIELDS))


class PacketSymbols:
    """The Z3 symbols of one symbolic packet: its header fields and the inputs of nf_process."""

    def __init__(self) -> None:
        self.fields = {f.name: z3.BitVec(f.name, f.bits) for f in PACKET_FIELDS}
        self.inputs = {name: z3.BitVec(name, bits) for name, bits in INPUT_SYMBOLS.items()}
        self.device = self.inputs["p.device"]
        self.len = self.inputs["p.len"]
        self.now = self.inputs["now"]
        f = self.fields
        ihl = z3.ZeroExt(28, z3.Extract(3, 0, f["p.ipv4.version_ihl"]))
        length = z3.ZeroExt(16, self.len)
        ip_end = ETHER_LEN + 4 * ihl
        self.ipv4_ok = z3.And(f["p.ether.type"] == ETHER_TYPE_IPV4,
                              z3.Extract(7, 4, f["p.ipv4.version_ihl"]) == 4,
                              z3.UGE(z3.Extract(3, 0, f["p.ipv4.version_ihl"]), 5),
                              z3.UGE(length, ip_end))
        proto = f["p.ipv4.proto"]
        self.tcpudp_ok = z3.And(self.ipv4_ok,
                                f["p.ipv4.frag_off"] & 0x3FFF == 0,
                                z3.Or(z3.And(proto == PROTO_TCP, z3.UGE(length, ip_end + TCP_LEN)),
                                      z3.And(proto == PROTO_UDP, z3.UGE(length, ip_end + UDP_LEN))))

    def header_regions(self) -> dict[str, Region]:
        regions = {}
        for name, size in HEADER_SIZES.items():
            cells: list = [0] * size
            for hf in HEADER_FIELDS:
                if hf.region == name:
                    sym = self.fields[hf.name]
                    for k in range(hf.size):
                        cells[hf.offset + k] = Slice(sym, hf.size - 1 - k)
            regions[name] = Region(name, "header", HEADER_LABELS[name], size, cells)
        return regions


def field_at(region: str, offset: int) -> str:
    """The field name of byte ``offset`` of header ``region``."""
    for hf in HEADER_FIELDS:
        if hf.region == region and hf.offset <= offset < hf.offset + hf.size:
            return hf.name
    raise KeyError((region, offset))
