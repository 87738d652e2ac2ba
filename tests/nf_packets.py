"""Craft Ethernet/IPv4/TCP/UDP frames with dpkt for the sample-NF tests, and check them.

Checksums of crafted frames are filled in by dpkt; ``checksums_ok`` verifies a frame by recomputing
the one's-complement sums itself, so a test does not trust the code that produced the frame.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Iterable, Optional

import dpkt
import numpy as np

from explorer.traffic.trace import Trace

TCP = dpkt.ip.IP_PROTO_TCP
UDP = dpkt.ip.IP_PROTO_UDP
ICMP = dpkt.ip.IP_PROTO_ICMP
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac(text: str) -> bytes:
    """``"02:00:00:00:00:01"`` -> 6 bytes."""
    return bytes(int(part, 16) for part in text.split(":"))


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


def ethernet(src: str, dst: str, payload: bytes = b"", ether_type: int = 0x88B5) -> bytes:
    """A raw Ethernet frame (default type: IEEE local experimental, i.e. not IPv4)."""
    frame = mac(dst) + mac(src) + struct.pack("!H", ether_type) + payload
    return frame + b"\0" * max(0, 60 - len(frame))  # minimum frame size without FCS


def ipv4(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0, *, size: Optional[int] = None,
         payload: bytes = b"", src_mac: str = "02:00:00:00:aa:01", dst_mac: str = "02:00:00:00:bb:01",
         more_fragments: bool = False) -> bytes:
    """An Ethernet/IPv4 frame carrying TCP, UDP (with ports) or another protocol's ``payload``.

    ``size`` pads the L4 payload so that the whole frame is exactly ``size`` bytes.
    ``more_fragments`` sets the MF flag, making the frame the first fragment of a datagram.
    """
    if proto == TCP:
        l4 = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1, flags=dpkt.tcp.TH_SYN, win=1024)
        header = 14 + 20 + 20
    elif proto == UDP:
        l4 = dpkt.udp.UDP(sport=sport, dport=dport)
        header = 14 + 20 + 8
    else:
        l4 = None
        header = 14 + 20
    if size is not None:
        if size < header + len(payload):
            raise ValueError(f"size {size} below the {header + len(payload)} header and payload bytes")
        payload = payload + b"\xab" * (size - header - len(payload))
    if l4 is not None:
        l4.data = payload
        if proto == UDP:
            l4.ulen = 8 + len(payload)
        body = l4
    else:
        body = payload
    packet = dpkt.ip.IP(src=ip(src), dst=ip(dst), p=proto, ttl=64, id=7, mf=int(more_fragments),
                        data=body)
    packet.len = 20 + len(bytes(body))
    frame = dpkt.ethernet.Ethernet(src=mac(src_mac), dst=mac(dst_mac), type=dpkt.ethernet.ETH_TYPE_IP,
                                   data=packet)
    return bytes(frame)


def tcp(src: str, sport: int, dst: str, dport: int, **kw) -> bytes:
    return ipv4(src, dst, TCP, sport, dport, **kw)


def udp(src: str, sport: int, dst: str, dport: int, **kw) -> bytes:
    return ipv4(src, dst, UDP, sport, dport, **kw)


@dataclass(frozen=True)
class Headers:
    """The fields of a TCP/UDP-over-IPv4 frame that the tests look at (addresses as dotted text)."""

    src_mac: str
    dst_mac: str
    src: str
    dst: str
    proto: int
    sport: int
    dport: int


def headers(frame: bytes) -> Headers:
    eth = dpkt.ethernet.Ethernet(frame)
    packet = eth.data
    assert isinstance(packet, dpkt.ip.IP), "not an IPv4 frame"
    l4 = packet.data
    return Headers(":".join(f"{b:02x}" for b in eth.src), ":".join(f"{b:02x}" for b in eth.dst),
                   socket.inet_ntoa(packet.src), socket.inet_ntoa(packet.dst), packet.p,
                   getattr(l4, "sport", 0), getattr(l4, "dport", 0))


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksums_ok(frame: bytes) -> bool:
    """True when the IPv4 header checksum and the TCP/UDP checksum of ``frame`` verify.

    A UDP checksum of 0 means "none" and verifies. Recomputed here from the raw bytes.
    """
    ihl = (frame[14] & 0x0F) * 4
    header = frame[14:14 + ihl]
    if _ones_complement_sum(header) != 0xFFFF:
        return False
    total_length = struct.unpack("!H", frame[16:18])[0]
    proto = frame[23]
    segment = frame[14 + ihl:14 + total_length]
    if proto == UDP and segment[6:8] == b"\0\0":
        return True
    if proto not in (TCP, UDP):
        return True
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(segment))
    return _ones_complement_sum(pseudo + segment) == 0xFFFF


def trace(events: Iterable[tuple[int, int, bytes]]) -> Trace:
    """A Trace of ``(timestamp_ns, device, frame)`` events processed exactly in the given order
    (timestamps must not decrease)."""
    events = list(events)
    stamps = [t for t, _, _ in events]
    if any(b < a for a, b in zip(stamps, stamps[1:])):
        raise ValueError("timestamps must not decrease")
    return Trace(np.array(stamps, dtype=np.uint64), np.array([d for _, d, _ in events], dtype=np.uint16),
                 tuple(f for _, _, f in events))
