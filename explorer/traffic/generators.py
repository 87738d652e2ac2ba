"""Seeded synthetic traffic for a middlebox between a LAN (device 0, where clients live) and a WAN
(device 1): each kind draws packet headers from ``numpy.random.default_rng(seed)``, then frames are
printed from them (``generate``) or only their fields derived (``generate_fields``, for the
simulator), so one seed gives the same packets either way.

The NF is a bump in the wire: a LAN host's packet goes from its own MAC to the WAN router's
(``ROUTER_MAC``), and the reply comes back from the router's MAC to the host's. Frames are at least
64 bytes (IMIX sizes by default), with zero payload and valid IPv4, TCP, UDP and ICMP checksums.
Timestamps are nanoseconds from ``start_ns`` with exponential gaps at ``rate_pps`` (a Poisson
arrival process), strictly increasing.
"""
from __future__ import annotations

import inspect
import ipaddress
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import numpy as np

from explorer.errors import TrafficError
from explorer.traffic.field_arrays import PacketFields
from explorer.wire import ETHER_TYPE_IPV4, PROTO_TCP, PROTO_UDP
from explorer.traffic.frames import build_frames
from explorer.traffic.headers import (ETHER_TYPE_ARP, ETHER_TYPE_IPV6, IP_DF, IP_MF, PROTO_ICMP,
                                      Headers)
from explorer.traffic.trace import Trace

LAN, WAN = 0, 1
ROUTER_MAC = 0x3CFDFE_A00001  # the WAN-side router: every WAN host is behind it
LB_MAC = 0x3CFDFE_A00002  # the load balancer's own MAC (heartbeat traffic)
BROADCAST_MAC = 0xFFFFFFFFFFFF
# Vendor OUIs (Intel, Super Micro, Dell, VMware, Raspberry Pi, Intel, Hyper-V, QEMU): host MACs
# are one of them followed by the low 24 bits of the host's IPv4 address, so distinct within a /8.
_OUIS = np.array([0x001B21, 0x3CECEF, 0xF48E38, 0x000C29, 0xB827EB, 0xA4BF01, 0x00155D, 0x525400],
                 dtype=np.uint64)
IMIX = ((64, 7), (570, 4), (1514, 1))  # the classic simple IMIX, frame sizes without FCS
EPHEMERAL_PORTS = (32768, 61000)  # Linux's default range, end excluded
TCP_SERVICES = ((443, 55), (80, 20), (22, 5), (8080, 5), (993, 4), (25, 3), (3306, 3), (5222, 5))
UDP_SERVICES = ((53, 40), (443, 30), (123, 10), (3478, 10), (4500, 10))
TCP_SYN, TCP_FIN, TCP_PSH, TCP_ACK = 0x02, 0x01, 0x08, 0x10
DEFAULT_START_NS = 1_700_000_000 * 1_000_000_000  # Nov 2023: far from 0, so expiry never underflows
DEFAULT_RATE_PPS = 1_000_000.0
LAN_PREFIXES = ("10.0.0.0/8",)
# Every /8 of unicast space except 0, 10 (the LAN), 127, and 172 and 192 (private ranges inside).
WAN_PREFIXES = tuple(f"{k}.0.0.0/8" for k in range(1, 224) if k not in (10, 127, 172, 192))

Prefixes = Union[str, Sequence[str]]


# ---- parameters ----------------------------------------------------------------------------

def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise TrafficError(f"bad traffic parameter {name}={value!r}: "
                           f"expected an integer from {low} to {high}")
    return int(value)


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or not low <= value <= high:
        raise TrafficError(f"bad traffic parameter {name}={value!r}: expected a number from {low} to {high}")
    return float(value)


def _share(name: str, value: Any) -> float:
    return _float(name, value, 0.0, 1.0)


def _sizes(rng: np.random.Generator, n: int, size: Any) -> np.ndarray:
    """Frame lengths: ``"imix"`` draws from ``IMIX``; a number gives every frame that length."""
    if isinstance(size, str) and size == "imix":
        lengths = np.array([s for s, _ in IMIX], dtype=np.uint32)
        weights = np.array([w for _, w in IMIX], dtype=float)
        return lengths[_pick(rng, weights / weights.sum(), n)]
    return np.full(n, _int("size", size, 64, 1514), dtype=np.uint32)


def _pick(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """n indices drawn with probabilities ``p`` (inverse CDF; faster than ``rng.choice``)."""
    cdf = np.cumsum(p)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n), side="right"), len(p) - 1)


# ---- addresses -----------------------------------------------------------------------------

@dataclass(frozen=True)
class AddressPool:
    """IPv4 host addresses of one or more prefixes; draws are uniform over all of them."""

    prefixes: tuple[str, ...]
    first: tuple[int, ...]  # first usable address per prefix
    count: tuple[int, ...]  # usable addresses per prefix

    @staticmethod
    def parse(prefixes: Prefixes, what: str) -> "AddressPool":
        """``"10.1.0.0/16"`` or several; network and broadcast addresses are left out of prefixes
        holding more than two addresses. Raises ``TrafficError`` on a malformed prefix."""
        items = (prefixes,) if isinstance(prefixes, str) else tuple(prefixes)
        if not items or not all(isinstance(p, str) for p in items):
            raise TrafficError(f"bad traffic parameter {what}={prefixes!r}: expected one or more "
                               "prefixes such as '10.1.0.0/16'")
        first, count = [], []
        for text in items:
            try:
                net = ipaddress.IPv4Network(text.strip(), strict=True)
            except ValueError as error:
                raise TrafficError(f"bad traffic parameter {what}={text!r}: {error}") from None
            edge = 1 if net.num_addresses > 2 else 0
            first.append(int(net.network_address) + edge)
            count.append(net.num_addresses - 2 * edge)
        return AddressPool(tuple(p.strip() for p in items), tuple(first), tuple(count))

    @property
    def size(self) -> int:
        return sum(self.count)

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        ends = np.cumsum(self.count, dtype=np.int64)
        offset = rng.integers(0, int(ends[-1]), n, dtype=np.int64)
        which = np.searchsorted(ends, offset, side="right")
        start = np.concatenate([[0], ends[:-1]])
        return (np.asarray(self.first, dtype=np.int64)[which] + offset - start[which]).astype(np.uint32)

    def nth(self, k: np.ndarray) -> np.ndarray:
        """The k-th usable addresses, in prefix order."""
        ends = np.cumsum(self.count, dtype=np.int64)
        which = np.searchsorted(ends, k, side="right")
        start = np.concatenate([[0], ends[:-1]])
        return (np.asarray(self.first, dtype=np.int64)[which] + k - start[which]).astype(np.uint32)


def host_mac(ip: np.ndarray) -> np.ndarray:
    """A plausible, stable MAC per host: a vendor OUI picked by a hash of the address, then the
    address's low 24 bits."""
    ip = np.asarray(ip, dtype=np.uint64)
    vendor = ((ip * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)) >> np.uint64(29)
    return (_OUIS[vendor] << np.uint64(24)) | (ip & np.uint64(0xFFFFFF))


def _ipv4(text: Any, what: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError as error:
        raise TrafficError(f"bad traffic parameter {what}={text!r}: {error}") from None


_LAN = AddressPool.parse(LAN_PREFIXES, "LAN_PREFIXES")
_WAN = AddressPool.parse(WAN_PREFIXES, "WAN_PREFIXES")


# ---- flows ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Flows:
    """Distinct connections, as their client opens them; per-flow arrays."""

    client_ip: np.ndarray
    server_ip: np.ndarray
    client_port: np.ndarray
    server_port: np.ndarray
    proto: np.ndarray
    client_mac: np.ndarray
    server_mac: np.ndarray
    server_ttl: np.ndarray
    client_isn: np.ndarray
    server_isn: np.ndarray


def _services(rng: np.random.Generator, udp: np.ndarray) -> np.ndarray:
    ports = np.empty(len(udp), dtype=np.uint16)
    for mask, table in ((~udp, TCP_SERVICES), (udp, UDP_SERVICES)):
        numbers = np.array([p for p, _ in table], dtype=np.uint16)
        weights = np.array([w for _, w in table], dtype=float)
        ports[mask] = numbers[_pick(rng, weights, int(mask.sum()))]
    return ports


def _draw_flows(rng: np.random.Generator, n: int, clients: AddressPool, servers: AddressPool,
                udp_share: float, service: tuple[int, int] | None = None,
                client_mac: int | None = None, server_mac: int = ROUTER_MAC) -> _Flows:
    """n distinct 5-tuples. ``service`` fixes (port, protocol) of every server; ``client_mac``
    (when given) replaces the clients' own MACs, e.g. by the router's for clients on the WAN."""
    client_ip = clients.draw(rng, n)
    server_ip = servers.draw(rng, n)
    client_port = rng.integers(*EPHEMERAL_PORTS, n).astype(np.uint16)
    if service is None:
        udp = rng.random(n) < udp_share
        proto = np.where(udp, PROTO_UDP, PROTO_TCP).astype(np.uint8)
        server_port = _services(rng, udp)
    else:
        proto = np.full(n, service[1], dtype=np.uint8)
        server_port = np.full(n, service[0], dtype=np.uint16)
    for _ in range(64):  # collisions are rare; redraw the later copies' client address and port
        ident = np.stack([client_ip, server_ip, client_port, server_port, proto]).astype(np.int64)
        _, first = np.unique(ident, axis=1, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        k = int(dup.sum())
        client_ip[dup] = clients.draw(rng, k)
        client_port[dup] = rng.integers(*EPHEMERAL_PORTS, k)
    else:
        raise TrafficError(f"cannot draw {n} distinct flows between {', '.join(clients.prefixes[:4])} "
                           f"and {', '.join(servers.prefixes[:4])}: use fewer flows or larger prefixes")
    return _Flows(
        client_ip=client_ip, server_ip=server_ip, client_port=client_port, server_port=server_port,
        proto=proto,
        client_mac=host_mac(client_ip) if client_mac is None else np.full(n, client_mac, np.uint64),
        server_mac=np.full(n, server_mac, dtype=np.uint64),
        server_ttl=rng.integers(40, 65, n).astype(np.uint8),
        client_isn=rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
        server_isn=rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
    )


def _flow_packets(rng: np.random.Generator, fl: _Flows, idx: np.ndarray, reply: np.ndarray, size: Any,
                  client_side: int = LAN) -> Headers:
    """One packet per entry of ``idx`` (a flow): the client's request, or where ``reply`` is set the
    server's answer with addresses, ports and MACs reversed, arriving on the other device."""
    n = len(idx)

    def pick(request: np.ndarray, answer: np.ndarray) -> np.ndarray:
        return np.where(reply, answer[idx], request[idx])

    return Headers.build(
        n,
        devices=np.where(reply, 1 - client_side, client_side),
        length=_sizes(rng, n, size),
        eth_src=pick(fl.client_mac, fl.server_mac),
        eth_dst=pick(fl.server_mac, fl.client_mac),
        ether_type=ETHER_TYPE_IPV4,
        ihl=5,
        ip_id=rng.integers(0, 1 << 16, n),
        frag_off=IP_DF,
        ttl=np.where(reply, fl.server_ttl[idx], 64),
        proto=fl.proto[idx],
        src_ip=pick(fl.client_ip, fl.server_ip),
        dst_ip=pick(fl.server_ip, fl.client_ip),
        src_port=pick(fl.client_port, fl.server_port),
        dst_port=pick(fl.server_port, fl.client_port),
        tcp_flags=TCP_ACK | TCP_PSH,
        tcp_seq=pick(fl.client_isn, fl.server_isn),
    )


def _popular(rng: np.random.Generator, flows: int, packets: int, skew: float) -> np.ndarray:
    """Each packet's flow: flow k (from 0) with probability proportional to 1 / (k + 1) ** skew."""
    if skew == 0:
        return rng.integers(0, flows, packets)
    return _pick(rng, np.arange(1, flows + 1, dtype=float) ** -skew, packets)


def _interleave(rng: np.random.Generator, parts: Sequence[Headers]) -> Headers:
    """All packets of ``parts`` at random positions, each part keeping its own order."""
    labels = rng.permutation(np.repeat(np.arange(len(parts)), [len(p) for p in parts]))
    return _place(parts, labels)


def _place(parts: Sequence[Headers], labels: np.ndarray) -> Headers:
    """Packet i comes from part ``labels[i]``, parts consumed in order."""
    order = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for k, part in enumerate(parts):
        where = np.flatnonzero(labels == k)
        order[where] = offset + np.arange(len(where))
        offset += len(part)
    return Headers.concat(parts).take(order)


# ---- traffic kinds (untimed headers) ---------------------------------------------------------
# A kind draws its population (flows, scanners, lifetimes) from ``pop`` and the packets of one
# window of the trace from ``rng``. A trace is a sequence of segments of SEGMENT packets; segment j
# draws its packets from a stream of its own, and every segment draws the same population (for
# the first segment, ``pop`` is ``rng``, continued). So a segment can be made alone (streamed, or
# on another machine) and the whole trace is exactly its segments one after the other.

SEGMENT = 1 << 20


@dataclass(frozen=True)
class Window:
    """Packets ``start`` to ``start + count - 1`` of a trace of ``total`` packets."""

    start: int
    count: int
    total: int

    def share(self, share: float) -> tuple[int, int]:
        """Items placed at a ``share`` of all positions (e.g. probes): how many come before the
        window, and how many inside it."""
        before = int(round(self.start * share))
        return before, int(round((self.start + self.count) * share)) - before


def _every(n: int, period: int, which: int) -> int:
    """How many of 0 .. n - 1 are ``which`` modulo ``period``."""
    return n // period + (1 if n % period > which else 0)


_FLOW_CACHE: dict[tuple, tuple[Any, dict]] = {}  # the populations of the last few segments' kinds


def _population(pop: np.random.Generator, key: tuple, draw: Callable[[], Any]) -> Any:
    """``draw()`` (which uses ``pop``), remembered by ``pop``'s state: every segment of a trace
    draws the same population from the same state, and gets it without drawing it again."""
    ident = (repr(pop.bit_generator.state),) + key
    hit = _FLOW_CACHE.get(ident)
    if hit is None:
        value = draw()
        if len(_FLOW_CACHE) >= 4:
            _FLOW_CACHE.pop(next(iter(_FLOW_CACHE)))
        hit = _FLOW_CACHE[ident] = (value, pop.bit_generator.state)
    pop.bit_generator.state = hit[1]
    return hit[0]


def _flows_of(pop: np.random.Generator, n: int, clients: AddressPool, servers: AddressPool, udp_share: float,
              service: tuple[int, int] | None = None, client_mac: int | None = None,
              server_mac: int = ROUTER_MAC) -> _Flows:
    key = ("flows", n, clients, servers, udp_share, service, client_mac, server_mac)
    return _population(pop, key, lambda: _draw_flows(pop, n, clients, servers, udp_share, service, client_mac,
                                                     server_mac))


def _uniform(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, size: Any = "imix",
             udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """Flows from LAN clients (10.0.0.0/8) to WAN servers, each packet from a uniformly drawn flow;
    a ``reply_share`` of packets are the server's replies, arriving on the WAN."""
    fl = _flows_of(pop, flows, _LAN, _WAN, _share("udp_share", udp_share))
    idx = rng.integers(0, flows, w.count)
    return _flow_packets(rng, fl, idx, rng.random(w.count) < _share("reply_share", reply_share), size)


def _zipf(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, skew: float = 1.1,
          size: Any = "imix", udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """As ``uniform``, but flow popularity follows Zipf's law with exponent ``skew`` (0: uniform)."""
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _flows_of(pop, flows, _LAN, _WAN, _share("udp_share", udp_share))
    idx = _popular(rng, flows, w.count, skew)
    return _flow_packets(rng, fl, idx, rng.random(w.count) < _share("reply_share", reply_share), size)


def _prefix(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *,
            client_prefix: Prefixes = "10.1.0.0/16", server_prefix: Prefixes = "172.16.0.0/20",
            skew: float = 0.0, size: Any = "imix", udp_share: float = 0.2,
            reply_share: float = 0.5) -> Headers:
    """Enterprise traffic: clients and servers inside a few prefixes each (one or several), which
    is where hashes that only see the top address bits fall apart."""
    clients = AddressPool.parse(client_prefix, "client_prefix")
    servers = AddressPool.parse(server_prefix, "server_prefix")
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _flows_of(pop, flows, clients, servers, _share("udp_share", udp_share))
    idx = _popular(rng, flows, w.count, skew)
    return _flow_packets(rng, fl, idx, rng.random(w.count) < _share("reply_share", reply_share), size)


def _bidir(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, skew: float = 0.0,
           size: Any = "imix", udp_share: float = 0.2) -> Headers:
    """Request/reply pairs: a LAN client's packet, then right after it the server's reply on the WAN
    (the same flow reversed: addresses, ports and MACs swapped). Requests sit at even positions."""
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _flows_of(pop, flows, _LAN, _WAN, _share("udp_share", udp_share))
    lead = w.start % 2  # a window that starts with a reply (inside ``mixed``) answers a request of its own
    requests_here = _every(w.start + w.count, 2, 0) - _every(w.start, 2, 0)
    pairs = requests_here + lead
    idx = _popular(rng, flows, pairs, skew)
    requests = _flow_packets(rng, fl, idx[lead:], np.zeros(pairs - lead, dtype=bool), size)
    replies = _flow_packets(rng, fl, idx, np.ones(pairs, dtype=bool), size)
    return _place([requests, replies], (w.start + np.arange(w.count)) % 2)


def _churn(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, lifetime: float = 0.1,
           size: Any = "imix", udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """Flows that start and end: each lives over a random window of the trace (exponential length,
    mean ``lifetime`` of the whole trace) and sends packets only inside it, a TCP flow opening with
    a SYN from its client and closing with a FIN. ``flows`` counts flows over the whole trace.
    Packets spread over the flows alive in each segment of the trace by their time alive in it; a
    flow opens (closes) on its first (last) packet in the segment where it starts (ends)."""
    lifetime = _float("lifetime", lifetime, 1e-6, 1e6)
    fl = _flows_of(pop, flows, _LAN, _WAN, _share("udp_share", udp_share))
    start = pop.random(flows)
    stop = np.minimum(start + pop.exponential(lifetime, flows), 1.0)
    span = stop - start + 1e-12
    lo, hi = (w.start / w.total, (w.start + w.count) / w.total) if w.total else (0.0, 1.0)
    if (lo, hi) == (0.0, 1.0):
        begin, alive = start, span
    else:
        begin = np.maximum(start, lo)
        alive = np.clip(np.minimum(stop, hi) - begin, 0.0, None)
        if not alive.any():  # no flow lives here (few, short flows): the nearest ones send
            begin, alive = np.full(flows, lo), np.full(flows, hi - lo)
    counts = rng.multinomial(w.count, alive / alive.sum())
    owner = np.repeat(np.arange(flows), counts)
    idx = owner[np.argsort(begin[owner] + rng.random(w.count) * alive[owner], kind="stable")]
    reply = rng.random(w.count) < _share("reply_share", reply_share)
    seen = np.unique(idx, return_index=True)[1]
    last = len(idx) - 1 - np.unique(idx[::-1], return_index=True)[1]
    seen = seen[start[idx[seen]] >= lo]  # flows that start in this segment open here
    last = last[stop[idx[last]] <= hi]  # and those that end in it close here
    reply[seen] = False  # the client opens
    h = _flow_packets(rng, fl, idx, reply, size)
    flags = h.tcp_flags.copy()
    flags[last] = TCP_FIN | TCP_ACK
    flags[seen] = TCP_SYN
    return h.with_columns(tcp_flags=flags)


def _scan(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, scanners: int = 1,
          scan_share: float = 0.3, scan_ports: int = 1024, size: Any = "imix", udp_share: float = 0.2,
          reply_share: float = 0.5) -> Headers:
    """Normal client traffic (as ``uniform``) mixed with port scans: ``scanners`` WAN hosts send TCP
    SYNs to ports 1..``scan_ports`` of each LAN client in turn (address order), round robin."""
    scanners = _int("scanners", scanners, 1, 1 << 20)
    scan_ports = _int("scan_ports", scan_ports, 1, 65535)
    fl = _flows_of(pop, flows, _LAN, _WAN, _share("udp_share", udp_share))
    source = _WAN.draw(pop, scanners)
    source_port = pop.integers(*EPHEMERAL_PORTS, scanners)
    before, n_scan = w.share(_share("scan_share", scan_share))
    n_normal = w.count - n_scan
    normal = _flow_packets(rng, fl, rng.integers(0, flows, n_normal),
                           rng.random(n_normal) < _share("reply_share", reply_share), size)
    targets = np.unique(fl.client_ip)
    probe = before + np.arange(n_scan)
    who, k = probe % scanners, probe // scanners
    victim = targets[(k // scan_ports) % len(targets)]
    probes = Headers.build(
        n_scan, devices=WAN, length=64, eth_src=ROUTER_MAC, eth_dst=host_mac(victim),
        ether_type=ETHER_TYPE_IPV4, ihl=5, ip_id=rng.integers(0, 1 << 16, n_scan), ttl=48,
        proto=PROTO_TCP, src_ip=source[who], dst_ip=victim, src_port=source_port[who],
        dst_port=1 + k % scan_ports, tcp_flags=TCP_SYN,
        tcp_seq=rng.integers(0, 1 << 32, n_scan, dtype=np.uint64))
    return _interleave(rng, [normal, probes])


def _heartbeat(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *, backends: int = 8,
               heartbeat_share: float = 0.05, vip: str = "203.0.113.1", vip_port: int = 80,
               heartbeat_port: int = 9999, backend_prefix: str = "10.2.0.0/24",
               size: Any = "imix") -> Headers:
    """A load balancer's traffic: WAN clients open TCP flows to a virtual IP (``vip``:``vip_port``),
    and ``backends`` LAN servers (the first addresses of ``backend_prefix``) send UDP heartbeats
    to ``vip``:``heartbeat_port`` in turn, at evenly spaced positions."""
    backends = _int("backends", backends, 1, 1 << 16)
    pool = AddressPool.parse(backend_prefix, "backend_prefix")
    if pool.size < backends:
        raise TrafficError(f"bad traffic parameter backend_prefix={backend_prefix!r}: "
                           f"holds {pool.size} hosts, fewer than {backends} backends")
    vip_ip = _ipv4(vip, "vip")
    vip_pool = AddressPool((vip,), (vip_ip,), (1,))
    service = (_int("vip_port", vip_port, 1, 65535), PROTO_TCP)
    heartbeat_port = _int("heartbeat_port", heartbeat_port, 1, 65535)
    total_beats = int(round(w.total * _share("heartbeat_share", heartbeat_share)))
    fl = _flows_of(pop, flows, _WAN, vip_pool, 0.0, service, client_mac=ROUTER_MAC, server_mac=LB_MAC)
    # Beat k sits at packet (k + 0.5) * total / total_beats of the whole trace.
    k = np.arange(0, 0)
    if total_beats:
        lo = max(0, w.start * total_beats // w.total - 1)
        hi = min(total_beats, (w.start + w.count) * total_beats // w.total + 2)
        k = np.arange(lo, hi)
        at = ((k + 0.5) * w.total / total_beats).astype(np.int64)
        k = k[(at >= w.start) & (at < w.start + w.count)]
    n_beat = len(k)
    n_client = w.count - n_beat
    clients = _flow_packets(rng, fl, rng.integers(0, flows, n_client), np.zeros(n_client, dtype=bool),
                            size, client_side=WAN)
    backend = pool.nth(k % backends)
    beats = Headers.build(
        n_beat, devices=LAN, length=64, eth_src=host_mac(backend), eth_dst=LB_MAC,
        ether_type=ETHER_TYPE_IPV4, ihl=5, ip_id=rng.integers(0, 1 << 16, n_beat), frag_off=IP_DF,
        ttl=64, proto=PROTO_UDP, src_ip=backend, dst_ip=vip_ip, src_port=heartbeat_port,
        dst_port=heartbeat_port)
    labels = np.zeros(w.count, dtype=np.int64)
    if n_beat:
        labels[((k + 0.5) * w.total / total_beats).astype(np.int64) - w.start] = 1
    return _place([clients, beats], labels)


def _others(rng: np.random.Generator, n: int, size: Any) -> Headers:
    """Frames NFs must drop or pass untouched: ARP requests, IPv6/UDP, ICMP echo requests, and
    IPv4/UDP fragments (first ones, which carry ports, and later ones, which do not)."""
    share = np.bincount(np.arange(n) % 4, minlength=4)
    client = _LAN.draw(rng, n)
    server = _WAN.draw(rng, n)
    mac = host_mac(client)
    port = rng.integers(*EPHEMERAL_PORTS, n)
    ip_id = rng.integers(0, 1 << 16, n)
    ipv6_len = _sizes(rng, share[1], size)
    parts, offset = [], 0
    for kind, count in enumerate(share.tolist()):
        s = slice(offset, offset + count)
        offset += count
        common = dict(eth_src=mac[s], eth_dst=ROUTER_MAC, ttl=64, src_ip=client[s], dst_ip=server[s])
        if kind == 0:
            common.update(eth_dst=BROADCAST_MAC, dst_ip=(client[s] & 0xFFFFFF00) | 1)  # who has .1?
            parts.append(Headers.build(count, devices=LAN, length=64, ether_type=ETHER_TYPE_ARP, **common))
        elif kind == 1:
            parts.append(Headers.build(count, devices=LAN, length=ipv6_len, ether_type=ETHER_TYPE_IPV6,
                                       proto=PROTO_UDP, src_port=port[s], dst_port=443, **common))
        elif kind == 2:
            parts.append(Headers.build(count, devices=LAN, length=98, ether_type=ETHER_TYPE_IPV4, ihl=5,
                                       ip_id=ip_id[s], proto=PROTO_ICMP, src_port=port[s],
                                       dst_port=np.arange(count), **common))
        else:
            later = np.arange(count) % 2 == 1
            parts.append(Headers.build(
                count, devices=LAN, length=np.where(later, 64, 1514), ether_type=ETHER_TYPE_IPV4, ihl=5,
                ip_id=ip_id[s], frag_off=np.where(later, 1480 // 8, IP_MF), proto=PROTO_UDP,
                src_port=port[s], dst_port=4500, **common))
    return _interleave(rng, parts)


def _mixed(pop: np.random.Generator, rng: np.random.Generator, w: Window, flows: int, *,
           other_share: float = 0.05, options_share: float = 0.02, size: Any = "imix",
           udp_share: float = 0.2) -> Headers:
    """A blend of every other kind in equal parts (each with its default parameters and its own
    flows), plus ``other_share`` of non-TCP/UDP frames (ARP, IPv6, ICMP, fragments); an
    ``options_share`` of the IPv4 packets carry an IP option (IHL 6)."""
    kinds = [_uniform, _zipf, _prefix, _bidir, _churn, _scan, _heartbeat]
    period = len(kinds)
    other_before, n_other = w.share(_share("other_share", other_share))
    options_share = _share("options_share", options_share)
    # The blended kinds take turns over the packets that are not "other" frames.
    first, last = w.start - other_before, w.start + w.count - other_before - n_other
    total = w.total - int(round(w.total * other_share))
    seeds = pop.integers(0, 1 << 63, period + 1)  # each kind's population, then the other frames'
    fresh = pop is rng
    packet_seeds = seeds if fresh else rng.integers(0, 1 << 63, period + 1)
    parts = []
    for i, kind in enumerate(kinds):
        sub_pop = np.random.default_rng(seeds[i])
        sub = Window(_every(first, period, i), _every(last, period, i) - _every(first, period, i),
                     _every(total, period, i))
        own = {} if kind is _heartbeat else {"udp_share": udp_share}
        parts.append(kind(sub_pop, sub_pop if fresh else np.random.default_rng(packet_seeds[i]), sub,
                          max(1, flows // period), size=size, **own))
    parts.append(_others(np.random.default_rng(packet_seeds[-1]), n_other, size))
    h = _interleave(rng, parts)
    ipv4_l4 = (h.ether_type == ETHER_TYPE_IPV4) & np.isin(h.proto, [PROTO_TCP, PROTO_UDP])
    with_options = ipv4_l4 & (rng.random(len(h)) < options_share)
    return h.with_columns(ihl=np.where(with_options, 6, h.ihl))


_KINDS: dict[str, Callable[..., Headers]] = {
    "uniform": _uniform, "zipf": _zipf, "prefix": _prefix, "bidir": _bidir, "churn": _churn,
    "scan": _scan, "heartbeat": _heartbeat, "mixed": _mixed,
}


# ---- public API ----------------------------------------------------------------------------

def _own_parameters(kind: str) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(_KINDS[kind]).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


_TIMING = [inspect.Parameter("rate_pps", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_RATE_PPS),
           inspect.Parameter("start_ns", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_START_NS)]


def kind_parameters(kind: str) -> dict[str, Any]:
    """The optional parameters of a traffic kind with their defaults, sorted by name (for help
    texts and forms)."""
    if kind not in _KINDS:
        raise TrafficError(f"unknown traffic kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    return {p.name: p.default for p in sorted(_own_parameters(kind) + _TIMING, key=lambda p: p.name)}


@dataclass(frozen=True)
class _Request:
    """Validated arguments of a generator call."""

    kind: str
    packets: int
    flows: int
    seed: int
    rate_pps: float
    start_ns: int
    params: tuple[tuple[str, Any], ...]

    @property
    def segments(self) -> int:
        return max(1, -(-self.packets // SEGMENT))


def _request(kind: str, packets: int, flows: int, seed: int, rate_pps: float = DEFAULT_RATE_PPS,
             start_ns: int = DEFAULT_START_NS, **params: Any) -> _Request:
    accepted = kind_parameters(kind)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TrafficError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                           f"for traffic kind {kind!r}; accepted: {', '.join(accepted)}")
    return _Request(kind, _int("packets", packets, 0, 1 << 40), _int("flows", flows, 1, 1 << 26),
                    _int("seed", seed, 0, (1 << 64) - 1), _float("rate_pps", rate_pps, 1e-3, 1e12),
                    _int("start_ns", start_ns, 0, 1 << 62), tuple(sorted(params.items())))


def _segment(req: _Request, index: int) -> tuple[Headers, np.random.Generator]:
    """Segment ``index`` of the trace, untimed, and the stream its timestamps come from next."""
    start = index * SEGMENT
    window = Window(start, max(0, min(SEGMENT, req.packets - start)), req.packets)
    if index == 0:
        pop = rng = np.random.default_rng(req.seed)
    else:
        pop = np.random.default_rng(req.seed)
        rng = np.random.default_rng(np.random.SeedSequence(req.seed, spawn_key=(index,)))
    return _KINDS[req.kind](pop, rng, window, req.flows, **dict(req.params)), rng


def _timed_segments(req: _Request) -> Iterator[Headers]:
    """The segments in order, with Poisson arrival times at ``rate_pps`` from ``start_ns``."""
    clock = np.uint64(req.start_ns)
    for index in range(req.segments):
        h, rng = _segment(req, index)
        gaps = np.maximum(1, np.rint(rng.exponential(1e9 / req.rate_pps, len(h)))).astype(np.uint64)
        stamps = clock + np.cumsum(gaps, dtype=np.uint64)
        if len(h):
            clock = stamps[-1]
        yield h.with_columns(timestamps=stamps)


def _rechunk(parts: Iterable[Headers], size: int) -> Iterator[Headers]:
    """The packets of ``parts`` in chunks of exactly ``size`` (the last one shorter)."""
    pending: list[Headers] = []
    held = 0
    for part in parts:
        pending.append(part)
        held += len(part)
        while held >= size:
            h = Headers.concat(pending)
            yield h.take(np.arange(size))
            rest = h.take(np.arange(size, len(h)))
            pending, held = [rest], len(rest)
    if held:
        yield Headers.concat(pending)


def _chunk_size(chunk_packets: int) -> int:
    if isinstance(chunk_packets, bool) or not isinstance(chunk_packets, (int, np.integer)) or chunk_packets < 1:
        raise TrafficError(f"chunk size must be a positive number of packets, not {chunk_packets!r}")
    return int(chunk_packets)


def generate_headers(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0, *,
                     rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS,
                     **params: Any) -> Headers:
    """The timed packet headers of a traffic kind: what ``generate`` prints as frames."""
    req = _request(kind, packets, flows, seed, rate_pps, start_ns, **params)
    return Headers.concat(list(_timed_segments(req)))


def header_chunks(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0,
                  chunk_packets: int = SEGMENT, **params: Any) -> Iterator[Headers]:
    """``generate_headers`` in chunks of ``chunk_packets``, made as they are consumed: memory
    follows the chunk size and the flows, never the trace's length. The chunks put together are
    exactly ``generate_headers`` with the same arguments. Arguments are checked at once."""
    size = _chunk_size(chunk_packets)
    req = _request(kind, packets, flows, seed, **params)
    return _rechunk(_timed_segments(req), size)


def generate_chunks(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0,
                    chunk_packets: int = SEGMENT, **params: Any) -> Iterator[Trace]:
    """``generate`` in chunks of ``chunk_packets`` (e.g. to append to pcap files): the chunks'
    packets, one after the other, are exactly ``generate``'s."""
    for h in header_chunks(kind, packets, flows, seed, chunk_packets, **params):
        yield Trace(h.timestamps, h.devices, build_frames(h))


def field_chunks(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0,
                 chunk_packets: int = SEGMENT, **params: Any) -> Iterator[tuple[PacketFields, np.ndarray]]:
    """``generate_fields`` in chunks of ``chunk_packets``, without timestamps or frames."""
    size = _chunk_size(chunk_packets)
    req = _request(kind, packets, flows, seed, **params)
    segments = (_segment(req, index)[0] for index in range(req.segments))
    return ((h.fields(), h.devices) for h in _rechunk(segments, size))


def segment_count(packets: int) -> int:
    """How many segments a trace of ``packets`` has (``segment_fields`` makes each alone)."""
    return max(1, -(-_int("packets", packets, 0, 1 << 40) // SEGMENT))


def segment_fields(kind: str, packets: int, flows: int, seed: int, index: int,
                   **params: Any) -> tuple[PacketFields, np.ndarray]:
    """``(fields, devices)`` of segment ``index`` (packets ``index * SEGMENT`` onwards), made
    without the others: what a worker of a distributed simulation draws."""
    req = _request(kind, packets, flows, seed, **params)
    if not 0 <= index < req.segments:
        raise TrafficError(f"segment {index} of a {req.packets}-packet trace does not exist "
                           f"(it has {req.segments})")
    h = _segment(req, index)[0]
    return h.fields(), h.devices


def generate(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0, **params: Any) -> Trace:
    """A seeded synthetic trace of ``packets`` frames over (up to) ``flows`` flows; ``params`` are
    the kind's own (see each generator) plus ``rate_pps`` and ``start_ns``. Raises ``TrafficError``
    for an unknown kind or a bad parameter."""
    h = generate_headers(kind, packets, flows, seed, **params)
    return Trace(h.timestamps, h.devices, build_frames(h))


def generate_fields(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0,
                    **params: Any) -> tuple[PacketFields, np.ndarray]:
    """``(fields, devices)`` of exactly the packets ``generate`` gives for the same arguments,
    without building frames (for the simulator: a million packets in a fraction of a second)."""
    req = _request(kind, packets, flows, seed, **params)
    h = Headers.concat([_segment(req, index)[0] for index in range(req.segments)])
    return h.fields(), h.devices


# ---- one generator per kind: ``generate(kind, ...)`` with the kind's own parameters -------------

def uniform(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, size: Any = "imix",
            udp_share: float = 0.2, reply_share: float = 0.5, rate_pps: float = DEFAULT_RATE_PPS,
            start_ns: int = DEFAULT_START_NS) -> Trace:
    """Flows from LAN clients (10.0.0.0/8) to WAN servers, each packet from a uniformly drawn flow;
    a ``reply_share`` of packets are the server's replies, arriving on the WAN (see ``generate``)."""
    return generate("uniform", packets, flows, seed, size=size, udp_share=udp_share, reply_share=reply_share,
                    rate_pps=rate_pps, start_ns=start_ns)


def zipf(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, skew: float = 1.1, size: Any = "imix",
         udp_share: float = 0.2, reply_share: float = 0.5, rate_pps: float = DEFAULT_RATE_PPS,
         start_ns: int = DEFAULT_START_NS) -> Trace:
    """As ``uniform``, but flow popularity follows Zipf's law with exponent ``skew`` (0: uniform)."""
    return generate("zipf", packets, flows, seed, skew=skew, size=size, udp_share=udp_share,
                    reply_share=reply_share, rate_pps=rate_pps, start_ns=start_ns)


def prefix(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, client_prefix: Prefixes = "10.1.0.0/16",
           server_prefix: Prefixes = "172.16.0.0/20", skew: float = 0.0, size: Any = "imix", udp_share: float = 0.2,
           reply_share: float = 0.5, rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS) -> Trace:
    """Enterprise traffic: clients and servers inside a few prefixes each (one or several), which
    is where hashes that only see the top address bits fall apart."""
    return generate("prefix", packets, flows, seed, client_prefix=client_prefix, server_prefix=server_prefix,
                    skew=skew, size=size, udp_share=udp_share, reply_share=reply_share, rate_pps=rate_pps,
                    start_ns=start_ns)


def bidir(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, skew: float = 0.0, size: Any = "imix",
          udp_share: float = 0.2, rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS) -> Trace:
    """Request/reply pairs: a LAN client's packet, then right after it the server's reply on the WAN
    (the same flow reversed: addresses, ports and MACs swapped)."""
    return generate("bidir", packets, flows, seed, skew=skew, size=size, udp_share=udp_share, rate_pps=rate_pps,
                    start_ns=start_ns)


def churn(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, lifetime: float = 0.1, size: Any = "imix",
          udp_share: float = 0.2, reply_share: float = 0.5, rate_pps: float = DEFAULT_RATE_PPS,
          start_ns: int = DEFAULT_START_NS) -> Trace:
    """Flows that start and end: each lives over a random window of the trace (exponential length,
    mean ``lifetime`` of the whole trace), a TCP flow opening with a SYN and closing with a FIN."""
    return generate("churn", packets, flows, seed, lifetime=lifetime, size=size, udp_share=udp_share,
                    reply_share=reply_share, rate_pps=rate_pps, start_ns=start_ns)


def scan(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, scanners: int = 1, scan_share: float = 0.3,
         scan_ports: int = 1024, size: Any = "imix", udp_share: float = 0.2, reply_share: float = 0.5,
         rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS) -> Trace:
    """Normal client traffic (as ``uniform``) mixed with port scans: ``scanners`` WAN hosts send TCP
    SYNs to ports 1..``scan_ports`` of each LAN client in turn (address order), round robin."""
    return generate("scan", packets, flows, seed, scanners=scanners, scan_share=scan_share, scan_ports=scan_ports,
                    size=size, udp_share=udp_share, reply_share=reply_share, rate_pps=rate_pps, start_ns=start_ns)


def heartbeat(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, backends: int = 8,
              heartbeat_share: float = 0.05, vip: str = "203.0.113.1", vip_port: int = 80,
              heartbeat_port: int = 9999, backend_prefix: str = "10.2.0.0/24", size: Any = "imix",
              rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS) -> Trace:
    """A load balancer's traffic: WAN clients open TCP flows to a virtual IP (``vip``:``vip_port``),
    and ``backends`` LAN servers (the first addresses of ``backend_prefix``) send UDP heartbeats
    to ``vip``:``heartbeat_port`` in turn, at evenly spaced positions."""
    return generate("heartbeat", packets, flows, seed, backends=backends, heartbeat_share=heartbeat_share, vip=vip,
                    vip_port=vip_port, heartbeat_port=heartbeat_port, backend_prefix=backend_prefix, size=size,
                    rate_pps=rate_pps, start_ns=start_ns)


def mixed(packets: int = 10_000, flows: int = 1_000, seed: int = 0, *, other_share: float = 0.05,
          options_share: float = 0.02, size: Any = "imix", udp_share: float = 0.2,
          rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS) -> Trace:
    """A blend of every other kind in equal parts (each with its default parameters and its own
    flows), plus ``other_share`` of non-TCP/UDP frames (ARP, IPv6, ICMP, fragments); an
    ``options_share`` of the IPv4 packets carry an IP option (IHL 6)."""
    return generate("mixed", packets, flows, seed, other_share=other_share, options_share=options_share, size=size,
                    udp_share=udp_share, rate_pps=rate_pps, start_ns=start_ns)


GENERATORS: dict[str, Callable[..., Trace]] = {
    "uniform": uniform, "zipf": zipf, "prefix": prefix, "bidir": bidir, "churn": churn,
    "scan": scan, "heartbeat": heartbeat, "mixed": mixed,
}
