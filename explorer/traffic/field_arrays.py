"""Packet header fields as numpy arrays, one entry per frame, read the way nf.h reads them.

Frames are copied once into a uint8 matrix of their first ``HEAD`` bytes (zero-padded); every field
is then a numpy slice of that matrix. The validity rules are nf.h's: ``is_ipv4`` is exactly when
``nf_ipv4_header()`` is not NULL and ``is_l4`` exactly when ``nf_tcpudp_header()`` is not NULL. IPv4
fields are 0 where ``is_ipv4`` is false and ports are 0 where ``is_l4`` is false, so the arrays can be
hashed or grouped without masking first.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from explorer.traffic.trace import Trace
from explorer.wire import ETHER_TYPE_IPV4, FRAGMENT_BITS, PROTO_TCP, PROTO_UDP

# 14 (Ethernet) + 60 (an IPv4 header with the longest options, IHL 15) + 4 (the two ports): enough to
# read the ports of any frame, which 64 bytes would not be for IHL > 11.
HEAD = 78


@dataclass(frozen=True, eq=False)
class PacketFields:
    """Header fields of n frames; every field is an array of n entries, numbers in host order."""

    length: np.ndarray  # uint32: the frame's length in bytes
    ether_type: np.ndarray  # uint16
    eth_src: np.ndarray  # uint64: the 48-bit MAC as a number (first byte most significant)
    eth_dst: np.ndarray  # uint64
    is_ipv4: np.ndarray  # bool: type 0x0800, version 4, IHL >= 5 and the whole header present
    ihl: np.ndarray  # uint8: header length in 32-bit words
    proto: np.ndarray  # uint8
    frag: np.ndarray  # bool: More Fragments set or a non-zero offset
    src_ip: np.ndarray  # uint32
    dst_ip: np.ndarray  # uint32
    is_l4: np.ndarray  # bool: IPv4, not a fragment, TCP (20 bytes present) or UDP (8 bytes present)
    src_port: np.ndarray  # uint16, read at 14 + 4 * IHL
    dst_port: np.ndarray  # uint16

    def __len__(self) -> int:
        return len(self.length)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PacketFields):
            return NotImplemented
        return all(
            getattr(self, f.name).dtype == getattr(other, f.name).dtype
            and np.array_equal(getattr(self, f.name), getattr(other, f.name))
            for f in fields(self)
        )

    __hash__ = None  # arrays are mutable; equality is by value

    def select(self, index: np.ndarray) -> "PacketFields":
        """The fields of the frames at ``index`` (integer positions or a boolean mask)."""
        return PacketFields(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: Sequence["PacketFields"]) -> "PacketFields":
        """The fields of several frame sequences, one after the other."""
        if not parts:
            return extract_fields(())
        return PacketFields(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                               for f in fields(PacketFields)})


def derive_fields(length: np.ndarray, eth_dst: np.ndarray, eth_src: np.ndarray, ether_type: np.ndarray,
                  version_ihl: np.ndarray, frag_off: np.ndarray, proto: np.ndarray, src_ip: np.ndarray,
                  dst_ip: np.ndarray, l4_sport: np.ndarray, l4_dport: np.ndarray) -> PacketFields:
    """Apply nf.h's validity rules to raw header values (as found at their fixed offsets, whatever
    the frame really holds) and zero what the NF could not see. ``l4_*`` are the two 16-bit words
    at ``14 + 4 * (version_ihl & 15)``. The one place these rules live: extraction from bytes and
    the generators' fields-only path both end here."""
    length = np.asarray(length, dtype=np.uint32)
    version_ihl = np.asarray(version_ihl, dtype=np.uint8)
    ihl = version_ihl & np.uint8(0x0F)
    ip_end = 14 + 4 * ihl.astype(np.uint32)
    is_ipv4 = ((np.asarray(ether_type) == ETHER_TYPE_IPV4) & ((version_ihl >> 4) == 4) & (ihl >= 5)
               & (length >= ip_end))
    proto = np.where(is_ipv4, proto, 0).astype(np.uint8)
    frag = is_ipv4 & ((np.asarray(frag_off, dtype=np.uint16) & FRAGMENT_BITS) != 0)
    l4_size = np.where(proto == PROTO_TCP, 20, 8).astype(np.uint32)
    is_l4 = (is_ipv4 & ~frag & ((proto == PROTO_TCP) | (proto == PROTO_UDP))
             & (length >= ip_end + l4_size))
    return PacketFields(
        length=length,
        ether_type=np.asarray(ether_type, dtype=np.uint16),
        eth_src=np.asarray(eth_src, dtype=np.uint64),
        eth_dst=np.asarray(eth_dst, dtype=np.uint64),
        is_ipv4=is_ipv4,
        ihl=np.where(is_ipv4, ihl, 0).astype(np.uint8),
        proto=proto,
        frag=frag,
        src_ip=np.where(is_ipv4, src_ip, 0).astype(np.uint32),
        dst_ip=np.where(is_ipv4, dst_ip, 0).astype(np.uint32),
        is_l4=is_l4,
        src_port=np.where(is_l4, l4_sport, 0).astype(np.uint16),
        dst_port=np.where(is_l4, l4_dport, 0).astype(np.uint16),
    )


def _big_endian(head: np.ndarray, start: int, size: int, dtype: type) -> np.ndarray:
    """The numbers stored big-endian in columns ``start .. start + size - 1`` of ``head``."""
    value = np.zeros(len(head), dtype=dtype)
    for col in range(start, start + size):
        value = (value << dtype(8)) | head[:, col]
    return value


def head_matrix(frames: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``(head, lengths)``: the first ``HEAD`` bytes of every frame as an n x HEAD uint8 matrix,
    zero-padded, and the frames' full lengths (uint32)."""
    n = len(frames)
    lengths = np.fromiter(map(len, frames), dtype=np.uint32, count=n)
    # numpy's fixed-width bytes type truncates and zero-pads in one C loop over the frames.
    head = np.array(frames, dtype=f"S{HEAD}").view(np.uint8).reshape(n, HEAD)
    return head, lengths


def extract_fields(frames: Sequence[bytes]) -> PacketFields:
    """The header fields of every frame (vectorised; a few M frames per second)."""
    head, lengths = head_matrix(frames)
    version_ihl = head[:, 14]
    # Ports sit right after the IPv4 header and its options. HEAD covers the largest IHL.
    l4 = 14 + 4 * (version_ihl & 0x0F).astype(np.intp)
    rows = np.arange(len(head))
    ports = [(head[rows, l4 + k].astype(np.uint16) << np.uint16(8)) | head[rows, l4 + k + 1]
             for k in (0, 2)]
    return derive_fields(
        length=lengths,
        eth_dst=_big_endian(head, 0, 6, np.uint64),
        eth_src=_big_endian(head, 6, 6, np.uint64),
        ether_type=_big_endian(head, 12, 2, np.uint16),
        version_ihl=version_ihl,
        frag_off=_big_endian(head, 20, 2, np.uint16),
        proto=head[:, 23],
        src_ip=_big_endian(head, 26, 4, np.uint32),
        dst_ip=_big_endian(head, 30, 4, np.uint32),
        l4_sport=ports[0],
        l4_dport=ports[1],
    )


def fields_of(trace: Trace) -> PacketFields:
    """The header fields of every packet of a trace, in processing order."""
    return extract_fields(trace.frames)
