"""Printing ``Headers`` as Ethernet frames with numpy byte templates.

Packets of one shape (say IPv4 with a 20-byte header and TCP) are filled column by column into one
uint8 matrix, their checksums computed for all rows at once, and the matrices scattered into a flat
zero buffer holding the frames back to back (payloads are zero bytes, which add nothing to a
checksum). That is about 20 times faster than building dpkt objects packet by packet (measured
on 50,000 TCP/UDP frames).
"""
from __future__ import annotations

import numpy as np

from explorer.wire import ETHER_TYPE_IPV4, PROTO_TCP, PROTO_UDP
from explorer.traffic.headers import ETHER_TYPE_ARP, ETHER_TYPE_IPV6, IP_MF, PROTO_ICMP, Headers

TCP_ACK = 0x10
_BATCH = 1 << 16  # frames printed per flat buffer, which bounds the extra memory
_OFFSET_MASK = 0x1FFF
_ROUTER_ALERT = (0x94, 0x04, 0x00, 0x00)  # RFC 2113: a harmless, common IPv4 option
_L4_SIZE = {PROTO_TCP: 20, PROTO_UDP: 8, PROTO_ICMP: 8}
_IPV6_SRC_PREFIX = (0x2001, 0x0DB8, 0, 0, 0, 0)  # 2001:db8::/96, documentation addresses
_IPV6_DST_PREFIX = (0x2001, 0x0DB8, 1, 0, 0, 0)


def put(matrix: np.ndarray, column: int, values: np.ndarray, size: int) -> None:
    """Store ``values`` big-endian in ``size`` bytes from ``column`` of every row."""
    values = np.asarray(values, dtype=np.uint64)
    for k in range(size):
        matrix[:, column + k] = (values >> np.uint64(8 * (size - 1 - k))) & np.uint64(0xFF)


def checksum(block: np.ndarray, extra: np.ndarray | int = 0) -> np.ndarray:
    """The Internet checksum (RFC 1071) of every row of an even-width uint8 matrix, plus ``extra``
    (a pseudo-header's 16-bit word sum) per row."""
    words = (block[:, 0::2].astype(np.uint64) << np.uint64(8)) | block[:, 1::2]
    total = words.sum(axis=1, dtype=np.uint64) + np.asarray(extra, dtype=np.uint64)
    for _ in range(3):  # fold carries; three folds suffice for any 64-bit sum of this size
        total = (total & np.uint64(0xFFFF)) + (total >> np.uint64(16))
    return (~total & np.uint64(0xFFFF)).astype(np.uint16)


def _word_sum32(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.uint64)
    return (values >> np.uint64(16)) + (values & np.uint64(0xFFFF))


def _ethernet(h: Headers, width: int) -> np.ndarray:
    block = np.zeros((len(h), width), dtype=np.uint8)
    put(block, 0, h.eth_dst, 6)
    put(block, 6, h.eth_src, 6)
    put(block, 12, h.ether_type, 2)
    return block


def _ipv4(h: Headers, ihl: int, l4: int) -> np.ndarray:
    """IPv4 frames with an ``ihl``-word header and protocol ``l4`` (0: no L4 header, i.e. a
    non-first fragment or an unknown protocol)."""
    start = 14 + 4 * ihl
    block = _ethernet(h, start + _L4_SIZE.get(l4, 0))
    ip_len = h.length.astype(np.uint64) - 14
    block[:, 14] = 0x40 | ihl
    put(block, 16, ip_len, 2)
    put(block, 18, h.ip_id, 2)
    put(block, 20, h.frag_off, 2)
    block[:, 22] = h.ttl
    block[:, 23] = h.proto
    put(block, 26, h.src_ip, 4)
    put(block, 30, h.dst_ip, 4)
    if ihl > 5:
        block[:, 34:38] = _ROUTER_ALERT  # then zero bytes: end of options
    put(block, 24, checksum(block[:, 14:start]), 2)
    l4_len = ip_len - np.uint64(4 * ihl)
    pseudo = _word_sum32(h.src_ip) + _word_sum32(h.dst_ip) + np.uint64(l4) + l4_len
    if l4 in (PROTO_TCP, PROTO_UDP):
        put(block, start, h.src_port, 2)
        put(block, start + 2, h.dst_port, 2)
    if l4 == PROTO_TCP:
        put(block, start + 4, h.tcp_seq, 4)
        ack = np.where(h.tcp_flags & TCP_ACK, ~h.tcp_seq, 0)
        put(block, start + 8, ack, 4)
        block[:, start + 12] = 5 << 4  # data offset: 5 words, no options
        block[:, start + 13] = h.tcp_flags
        put(block, start + 14, 64240, 2)  # a common initial window
        put(block, start + 16, checksum(block[:, start:], pseudo), 2)
    elif l4 == PROTO_UDP:
        put(block, start + 4, l4_len, 2)
        # The first fragment cannot carry the checksum of the whole datagram; 0 means "none".
        udp_sum = checksum(block[:, start:], pseudo)
        udp_sum[udp_sum == 0] = 0xFFFF  # a computed 0 is sent as all ones (RFC 768)
        udp_sum[(h.frag_off & IP_MF) != 0] = 0
        put(block, start + 6, udp_sum, 2)
    elif l4 == PROTO_ICMP:
        block[:, start] = 8  # echo request, code 0
        put(block, start + 4, h.src_port, 2)
        put(block, start + 6, h.dst_port, 2)
        put(block, start + 2, checksum(block[:, start:]), 2)
    return block


def _arp(h: Headers) -> np.ndarray:
    block = _ethernet(h, 42)
    put(block, 14, 1, 2)  # Ethernet hardware
    put(block, 16, ETHER_TYPE_IPV4, 2)
    block[:, 18] = 6
    block[:, 19] = 4
    put(block, 20, 1, 2)  # request
    put(block, 22, h.eth_src, 6)
    put(block, 28, h.src_ip, 4)
    put(block, 38, h.dst_ip, 4)
    return block


def _ipv6_udp(h: Headers) -> np.ndarray:
    block = _ethernet(h, 62)
    payload = h.length.astype(np.uint64) - 54
    block[:, 14] = 0x60
    put(block, 18, payload, 2)
    block[:, 20] = PROTO_UDP
    block[:, 21] = h.ttl
    for k, word in enumerate(_IPV6_SRC_PREFIX):
        put(block, 22 + 2 * k, word, 2)
    put(block, 34, h.src_ip, 4)
    for k, word in enumerate(_IPV6_DST_PREFIX):
        put(block, 38 + 2 * k, word, 2)
    put(block, 50, h.dst_ip, 4)
    put(block, 54, h.src_port, 2)
    put(block, 56, h.dst_port, 2)
    put(block, 58, payload, 2)
    # The pseudo-header: both addresses (already in the block), the length and next header.
    udp_sum = checksum(block[:, 22:], payload + np.uint64(PROTO_UDP))
    udp_sum[udp_sum == 0] = 0xFFFF
    put(block, 60, udp_sum, 2)
    return block


def _shapes(h: Headers) -> list[tuple[np.ndarray, object]]:
    """``(rows, printer)`` per frame shape present in ``h``; rows ascending."""
    ipv4 = h.ether_type == ETHER_TYPE_IPV4
    first = (h.frag_off & _OFFSET_MASK) == 0
    l4 = np.where(first & np.isin(h.proto, list(_L4_SIZE)), h.proto, 0)
    shapes: list[tuple[np.ndarray, object]] = []
    for ihl in np.unique(h.ihl[ipv4]).tolist():
        for proto in np.unique(l4[ipv4 & (h.ihl == ihl)]).tolist():
            rows = np.flatnonzero(ipv4 & (h.ihl == ihl) & (l4 == proto))
            shapes.append((rows, lambda part, i=ihl, p=proto: _ipv4(part, i, p)))
    shapes.append((np.flatnonzero(h.ether_type == ETHER_TYPE_ARP), _arp))
    shapes.append((np.flatnonzero(h.ether_type == ETHER_TYPE_IPV6), _ipv6_udp))
    other = ~np.isin(h.ether_type, [ETHER_TYPE_IPV4, ETHER_TYPE_ARP, ETHER_TYPE_IPV6])
    shapes.append((np.flatnonzero(other), lambda part: _ethernet(part, 14)))
    return [(rows, printer) for rows, printer in shapes if len(rows)]


def build_frames(h: Headers) -> tuple[bytes, ...]:
    """The frames of ``h``, in order. Lengths must leave room for each frame's headers."""
    if len(h) and int(h.length.min()) < 64:
        raise ValueError("synthetic frames are at least 64 bytes")
    shapes = [(rows, printer(h.take(rows))) for rows, printer in _shapes(h)]
    frames: list[bytes] = []
    for begin in range(0, len(h), _BATCH):
        end = min(begin + _BATCH, len(h))
        lengths = h.length[begin:end].astype(np.int64)
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        flat = np.zeros(int(starts[-1]), dtype=np.uint8)
        for rows, block in shapes:
            lo, hi = np.searchsorted(rows, [begin, end])
            if lo == hi:
                continue
            where = starts[rows[lo:hi] - begin][:, None] + np.arange(block.shape[1])
            flat[where] = block[lo:hi]
        data = flat.tobytes()
        bounds = starts.tolist()
        frames.extend([data[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    return tuple(frames)
