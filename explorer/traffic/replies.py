"""Closed-loop replies: what the far end answers to the frames an NF sent.

A reply to a frame that left on device d arrives on device d a little later (``REPLY_DELAY_NS``),
with the Ethernet and IPv4 addresses swapped and, for unfragmented TCP/UDP, the ports too. Swapping
keeps every checksum valid: the IPv4 header sum and the TCP/UDP pseudo-header sum run over the same
16-bit words in another order.

Replies must answer what a run *emitted*, not what went in: a NAT rewrites the source port to an
external port it allocates, and only a reply to that port reaches its WAN -> LAN path. That is why
``with_replies`` takes the run's outputs, and why a checker builds replies separately for each run
it compares (their external ports may differ by a consistent renaming).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from explorer.traffic.trace import Trace
from explorer.wire import ETHER_LEN, ETHER_TYPE_IPV4, FRAGMENT_BITS, PROTO_TCP, PROTO_UDP, TCP_LEN, UDP_LEN

REPLY_DELAY_NS = 1_000  # a reply arrives 1 us after the frame it answers left


def l4_start(frame: bytes) -> Optional[int]:
    """Where the TCP/UDP header of an unfragmented IPv4 frame starts (None when there is none, or
    when the frame is too short to hold its ports), read as nf_tcpudp_header reads it."""
    if len(frame) < ETHER_LEN + 20 or int.from_bytes(frame[12:14], "big") != ETHER_TYPE_IPV4:
        return None
    version, ihl = frame[14] >> 4, frame[14] & 0x0F
    if version != 4 or ihl < 5 or int.from_bytes(frame[20:22], "big") & FRAGMENT_BITS:
        return None
    start = ETHER_LEN + 4 * ihl
    need = {PROTO_TCP: TCP_LEN, PROTO_UDP: UDP_LEN}.get(frame[23])
    return start if need is not None and len(frame) >= start + need else None


def is_ipv4(frame: bytes) -> bool:
    return len(frame) >= ETHER_LEN + 20 and int.from_bytes(frame[12:14], "big") == ETHER_TYPE_IPV4 and \
        frame[14] >> 4 == 4 and frame[14] & 0x0F >= 5


def reply_frame(frame: bytes) -> bytes:
    """The answer to ``frame``: MACs swapped; for IPv4 the addresses swapped; for unfragmented
    TCP/UDP the ports swapped. Length, payload and (valid or not) checksums carry over."""
    out = bytearray(frame)
    if len(frame) >= 12:
        out[0:6], out[6:12] = frame[6:12], frame[0:6]
    if is_ipv4(frame):
        out[26:30], out[30:34] = frame[30:34], frame[26:30]
        l4 = l4_start(frame)
        if l4 is not None:
            out[l4:l4 + 2], out[l4 + 2:l4 + 4] = frame[l4 + 2:l4 + 4], frame[l4:l4 + 2]
    return bytes(out)


@dataclass(frozen=True, eq=False)
class ClosedLoop:
    """A trace with replies merged in. ``origin[i]`` is -1 for a packet of the original trace, else
    the index (in the original trace) of the packet whose output packet i answers; ``position[k]``
    is where packet k of the original trace went."""

    trace: Trace
    origin: np.ndarray  # int64
    position: np.ndarray  # int64

    @property
    def replies(self) -> int:
        return int(np.sum(self.origin >= 0))


def with_replies(trace: Trace, emitted: Mapping[int, tuple[int, bytes]],
                 delay_ns: int = REPLY_DELAY_NS, made: Optional[dict[bytes, bytes]] = None) -> ClosedLoop:
    """``trace`` plus, for every ``emitted[k] = (device, frame)`` (packet k of ``trace`` left on
    ``device`` as ``frame``), its reply on ``device`` at packet k's time + ``delay_ns``. At equal
    times the original packets come first, then replies in the order of what they answer. ``made``
    keeps the replies made so far by the frame they answer: a closed loop's rounds answer mostly
    the same frames."""
    answered = sorted(emitted)
    n = len(trace)
    made = {} if made is None else made
    replies = []
    for k in answered:
        frame = emitted[k][1]
        reply = made.get(frame)
        if reply is None:
            reply = made[frame] = reply_frame(frame)
        replies.append(reply)
    at = np.array(answered, dtype=np.int64)
    stamps = np.concatenate([trace.timestamps.astype(np.uint64),
                             trace.timestamps[at].astype(np.uint64) + np.uint64(delay_ns)])
    devices = np.concatenate([trace.devices.astype(np.uint16),
                              np.array([emitted[k][0] for k in answered], dtype=np.uint16)])
    frames = list(trace.frames) + replies
    kind = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(len(answered), dtype=np.int64)])
    order = np.lexsort((np.arange(len(frames)), kind, stamps))
    origin_all = np.concatenate([np.full(n, -1, dtype=np.int64), np.array(answered, dtype=np.int64)])
    position = np.empty(len(frames), dtype=np.int64)
    position[order] = np.arange(len(frames))
    merged = Trace(stamps[order], devices[order], tuple(frames[i] for i in order))
    return ClosedLoop(merged, origin_all[order], position[:n])
