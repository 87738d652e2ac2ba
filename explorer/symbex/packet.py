"""The packet as the explorer sees it: field symbols, the header regions built from their bytes,
and the exact conditions under which nf_ipv4_header / nf_tcpudp_header / nf_tcp_fields return a
header.

A field symbol is the host-order number (the big-endian reading of the wire bytes), so byte k of
a W-byte field is byte W-1-k (little-endian index) of its symbol.
"""
from __future__ import annotations

import z3

from explorer.symbex.memory import Region
from explorer.symbex.bitvec import Slice
from explorer.wire import (
    ETHER_LEN, ETHER_TYPE_IPV4, FRAGMENT_BITS, HEADER_LABELS, HEADER_SIZES, INPUT_SYMBOLS, PACKET_FIELDS, PROTO_TCP,
    PROTO_UDP, TCP_LEN, UDP_LEN)


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
                                f["p.ipv4.frag_off"] & FRAGMENT_BITS == 0,
                                z3.Or(z3.And(proto == PROTO_TCP, z3.UGE(length, ip_end + TCP_LEN)),
                                      z3.And(proto == PROTO_UDP, z3.UGE(length, ip_end + UDP_LEN))))
        self.tcp_ok = z3.And(self.tcpudp_ok, proto == PROTO_TCP)

    def header_regions(self) -> dict[str, Region]:
        regions = {}
        for name, size in HEADER_SIZES.items():
            cells: list = [0] * size
            for hf in PACKET_FIELDS:
                if hf.region == name:
                    sym = self.fields[hf.name]
                    for k in range(hf.size):
                        cells[hf.offset + k] = Slice(sym, hf.size - 1 - k)
            regions[name] = Region(name, "header", HEADER_LABELS[name], size, cells)
        return regions

