"""The header values of a synthetic trace, drawn by a generator before any frame byte exists.

Generators describe packets as columns of numbers (``Headers``); frames are printed from them by
``explorer.traffic.frames`` and packet fields are derived from them directly, so the two views of one
seed always agree and the simulator can skip building bytes.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np

from explorer.traffic.field_arrays import PacketFields, derive_fields
from explorer.wire import ETHER_TYPE_IPV4

ETHER_TYPE_ARP = 0x0806
ETHER_TYPE_IPV6 = 0x86DD
PROTO_ICMP = 1
IP_DF = 0x4000  # Don't Fragment
IP_MF = 0x2000  # More Fragments

_DTYPES = {
    "timestamps": np.uint64, "devices": np.uint16, "length": np.uint32, "eth_dst": np.uint64,
    "eth_src": np.uint64, "ether_type": np.uint16, "ihl": np.uint8, "ip_id": np.uint16,
    "frag_off": np.uint16, "ttl": np.uint8, "proto": np.uint8, "src_ip": np.uint32,
    "dst_ip": np.uint32, "src_port": np.uint16, "dst_port": np.uint16, "tcp_flags": np.uint8,
    "tcp_seq": np.uint32,
}


@dataclass(frozen=True, eq=False)
class Headers:
    """n packets as columns. ``ether_type`` decides the frame's shape: IPv4 (with ``ihl`` words of
    header, options beyond 5 being a Router Alert and padding), ARP (``src_ip``/``dst_ip`` are the
    sender and target addresses) or IPv6 with UDP (addresses 2001:db8::``src_ip`` and
    2001:db8:1::``dst_ip``). For ICMP, ``src_port``/``dst_port`` are the echo identifier and sequence."""

    timestamps: np.ndarray
    devices: np.ndarray
    length: np.ndarray  # frame length in bytes, at least 64
    eth_dst: np.ndarray
    eth_src: np.ndarray
    ether_type: np.ndarray
    ihl: np.ndarray
    ip_id: np.ndarray
    frag_off: np.ndarray  # flags and offset as on the wire
    ttl: np.ndarray
    proto: np.ndarray
    src_ip: np.ndarray
    dst_ip: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    tcp_flags: np.ndarray
    tcp_seq: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.length)
        for f in fields(self):
            column = np.asarray(getattr(self, f.name), dtype=_DTYPES[f.name])
            if column.shape != (n,):
                raise ValueError(f"header column {f.name} has shape {column.shape}, expected ({n},)")
            object.__setattr__(self, f.name, column)

    def __len__(self) -> int:
        return len(self.length)

    @staticmethod
    def build(n: int, **columns: object) -> "Headers":
        """n packets; ``columns`` gives arrays or scalars (broadcast), the rest are zero."""
        values = {name: np.broadcast_to(np.asarray(columns.pop(name, 0), dtype=dtype), (n,))
                  for name, dtype in _DTYPES.items()}
        if columns:
            raise TypeError(f"unknown header columns {sorted(columns)}")
        return Headers(**{name: np.array(v) for name, v in values.items()})

    def take(self, index: np.ndarray) -> "Headers":
        """The packets at ``index`` (positions or a boolean mask), in that order."""
        return Headers(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_columns(self, **columns: np.ndarray) -> "Headers":
        return replace(self, **columns)

    @staticmethod
    def concat(parts: Sequence["Headers"]) -> "Headers":
        if not parts:
            return Headers.build(0)
        return Headers(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                          for f in fields(Headers)})

    def fields(self) -> PacketFields:
        """The fields ``extract_fields`` finds in the frames ``explorer.traffic.frames`` prints."""
        ipv4 = self.ether_type == ETHER_TYPE_IPV4
        # The byte at offset 14 is the version/IHL byte for IPv4, 0x00 for ARP (hardware type) and
        # 0x60 for IPv6; only IPv4's matters to the rules, which check the ether type first.
        version_ihl = np.where(ipv4, 0x40 | self.ihl, 0).astype(np.uint8)
        return derive_fields(self.length, self.eth_dst, self.eth_src, self.ether_type, version_ihl,
                             self.frag_off, self.proto, self.src_ip, self.dst_ip, self.src_port,
                             self.dst_port)
