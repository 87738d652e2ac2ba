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
from typing import Any, Callable, Sequence, Union

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

def _uniform(rng: np.random.Generator, packets: int, flows: int, *, size: Any = "imix",
             udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """Flows from LAN clients (10.0.0.0/8) to WAN servers, each packet from a uniformly drawn flow;
    a ``reply_share`` of packets are the server's replies, arriving on the WAN."""
    fl = _draw_flows(rng, flows, _LAN, _WAN, _share("udp_share", udp_share))
    idx = rng.integers(0, flows, packets)
    return _flow_packets(rng, fl, idx, rng.random(packets) < _share("reply_share", reply_share), size)


def _zipf(rng: np.random.Generator, packets: int, flows: int, *, skew: float = 1.1, size: Any = "imix",
          udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """As ``uniform``, but flow popularity follows Zipf's law with exponent ``skew`` (0: uniform)."""
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _draw_flows(rng, flows, _LAN, _WAN, _share("udp_share", udp_share))
    idx = _popular(rng, flows, packets, skew)
    return _flow_packets(rng, fl, idx, rng.random(packets) < _share("reply_share", reply_share), size)


def _prefix(rng: np.random.Generator, packets: int, flows: int, *,
            client_prefix: Prefixes = "10.1.0.0/16", server_prefix: Prefixes = "172.16.0.0/20",
            skew: float = 0.0, size: Any = "imix", udp_share: float = 0.2,
            reply_share: float = 0.5) -> Headers:
    """Enterprise traffic: clients and servers inside a few prefixes each (one or several), which
    is where hashes that only see the top address bits fall apart."""
    clients = AddressPool.parse(client_prefix, "client_prefix")
    servers = AddressPool.parse(server_prefix, "server_prefix")
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _draw_flows(rng, flows, clients, servers, _share("udp_share", udp_share))
    idx = _popular(rng, flows, packets, skew)
    return _flow_packets(rng, fl, idx, rng.random(packets) < _share("reply_share", reply_share), size)


def _bidir(rng: np.random.Generator, packets: int, flows: int, *, skew: float = 0.0, size: Any = "imix",
           udp_share: float = 0.2) -> Headers:
    """Request/reply pairs: a LAN client's packet, then right after it the server's reply on the WAN
    (the same flow reversed: addresses, ports and MACs swapped)."""
    skew = _float("skew", skew, 0.0, 10.0)
    fl = _draw_flows(rng, flows, _LAN, _WAN, _share("udp_share", udp_share))
    pairs = (packets + 1) // 2
    idx = _popular(rng, flows, pairs, skew)
    requests = _flow_packets(rng, fl, idx, np.zeros(pairs, dtype=bool), size)
    replies = _flow_packets(rng, fl, idx, np.ones(pairs, dtype=bool), size)
    return _place([requests, replies], np.arange(packets) % 2)


def _churn(rng: np.random.Generator, packets: int, flows: int, *, lifetime: float = 0.1,
           size: Any = "imix", udp_share: float = 0.2, reply_share: float = 0.5) -> Headers:
    """Flows that start and end: each lives over a random window of the trace (exponential length,
    mean ``lifetime`` of the whole trace) and sends packets only inside it, a TCP flow opening with
    a SYN from its client and closing with a FIN. ``flows`` counts flows over the whole trace."""
    lifetime = _float("lifetime", lifetime, 1e-6, 1e6)
    fl = _draw_flows(rng, flows, _LAN, _WAN, _share("udp_share", udp_share))
    start = rng.random(flows)
    span = np.minimum(start + rng.exponential(lifetime, flows), 1.0) - start + 1e-12
    counts = rng.multinomial(packets, span / span.sum())
    owner = np.repeat(np.arange(flows), counts)
    idx = owner[np.argsort(start[owner] + rng.random(packets) * span[owner], kind="stable")]
    reply = rng.random(packets) < _share("reply_share", reply_share)
    seen = np.unique(idx, return_index=True)[1]
    last = len(idx) - 1 - np.unique(idx[::-1], return_index=True)[1]
    reply[seen] = False  # the client opens
    h = _flow_packets(rng, fl, idx, reply, size)
    flags = h.tcp_flags.copy()
    flags[last] = TCP_FIN | TCP_ACK
    flags[seen] = TCP_SYN
    return h.with_columns(tcp_flags=flags)


def _scan(rng: np.random.Generator, packets: int, flows: int, *, scanners: int = 1,
          scan_share: float = 0.3, scan_ports: int = 1024, size: Any = "imix", udp_share: float = 0.2,
          reply_share: float = 0.5) -> Headers:
    """Normal client traffic (as ``uniform``) mixed with port scans: ``scanners`` WAN hosts send TCP
    SYNs to ports 1..``scan_ports`` of each LAN client in turn (address order), round robin."""
    scanners = _int("scanners", scanners, 1, 1 << 20)
    scan_ports = _int("scan_ports", scan_ports, 1, 65535)
    n_scan = int(round(packets * _share("scan_share", scan_share)))
    normal = _uniform(rng, packets - n_scan, flows, size=size, udp_share=udp_share, reply_share=reply_share)
    targets = np.unique(normal.src_ip[normal.devices == LAN])
    if len(targets) == 0:
        targets = _LAN.draw(rng, 1)
    source = _WAN.draw(rng, scanners)
    source_port = rng.integers(*EPHEMERAL_PORTS, scanners)
    probe = np.arange(n_scan)
    who, k = probe % scanners, probe // scanners
    victim = targets[(k // scan_ports) % len(targets)]
    probes = Headers.build(
        n_scan, devices=WAN, length=64, eth_src=ROUTER_MAC, eth_dst=host_mac(victim),
        ether_type=ETHER_TYPE_IPV4, ihl=5, ip_id=rng.integers(0, 1 << 16, n_scan), ttl=48,
        proto=PROTO_TCP, src_ip=source[who], dst_ip=victim, src_port=source_port[who],
        dst_port=1 + k % scan_ports, tcp_flags=TCP_SYN,
        tcp_seq=rng.integers(0, 1 << 32, n_scan, dtype=np.uint64))
    return _interleave(rng, [normal, probes])


def _heartbeat(rng: np.random.Generator, packets: int, flows: int, *, backends: int = 8,
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
    n_beat = int(round(packets * _share("heartbeat_share", heartbeat_share)))
    fl = _draw_flows(rng, flows, _WAN, vip_pool, 0.0, service, client_mac=ROUTER_MAC, server_mac=LB_MAC)
    n_client = packets - n_beat
    clients = _flow_packets(rng, fl, rng.integers(0, flows, n_client), np.zeros(n_client, dtype=bool),
                            size, client_side=WAN)
    backend = pool.nth(np.arange(n_beat) % backends)
    beats = Headers.build(
        n_beat, devices=LAN, length=64, eth_src=host_mac(backend), eth_dst=LB_MAC,
        ether_type=ETHER_TYPE_IPV4, ihl=5, ip_id=rng.integers(0, 1 << 16, n_beat), frag_off=IP_DF,
        ttl=64, proto=PROTO_UDP, src_ip=backend, dst_ip=vip_ip, src_port=heartbeat_port,
        dst_port=heartbeat_port)
    labels = np.zeros(packets, dtype=np.int64)
    if n_beat:
        labels[((np.arange(n_beat) + 0.5) * packets / n_beat).astype(np.int64)] = 1
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


def _mixed(rng: np.random.Generator, packets: int, flows: int, *, other_share: float = 0.05,
           options_share: float = 0.02, size: Any = "imix", udp_share: float = 0.2) -> Headers:
    """A blend of every other kind in equal parts (each with its default parameters and its own
    flows), plus ``other_share`` of non-TCP/UDP frames (ARP, IPv6, ICMP, fragments); an
    ``options_share`` of the IPv4 packets carry an IP option (IHL 6)."""
    kinds = [_uniform, _zipf, _prefix, _bidir, _churn, _scan]
    n_other = int(round(packets * _share("other_share", other_share)))
    options_share = _share("options_share", options_share)
    counts = np.bincount(np.arange(packets - n_other) % (len(kinds) + 1), minlength=len(kinds) + 1)
    seeds = rng.integers(0, 1 << 63, len(kinds) + 2)
    parts = [kind(np.random.default_rng(seed), int(count), max(1, flows // (len(kinds) + 1)),
                  size=size, udp_share=udp_share)
             for kind, seed, count in zip(kinds, seeds, counts)]
    parts.append(_heartbeat(np.random.default_rng(seeds[-2]), int(counts[-1]),
                            max(1, flows // (len(kinds) + 1)), size=size))
    parts.append(_others(np.random.default_rng(seeds[-1]), n_other, size))
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


def generate_headers(kind: str, packets: int = 10_000, flows: int = 1_000, seed: int = 0, *,
                     rate_pps: float = DEFAULT_RATE_PPS, start_ns: int = DEFAULT_START_NS,
                     **params: Any) -> Headers:
    """The timed packet headers of a traffic kind: what ``generate`` prints as frames."""
    accepted = kind_parameters(kind)
    draw = _KINDS[kind]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TrafficError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                           f"for traffic kind {kind!r}; accepted: {', '.join(accepted)}")
    packets = _int("packets", packets, 0, 1 << 32)
    flows = _int("flows", flows, 1, 1 << 26)
    seed = _int("seed", seed, 0, (1 << 64) - 1)
    rate_pps = _float("rate_pps", rate_pps, 1e-3, 1e12)
    start_ns = _int("start_ns", start_ns, 0, 1 << 62)
    rng = np.random.default_rng(seed)
    headers = draw(rng, packets, flows, **params)
    gaps = np.maximum(1, np.rint(rng.exponential(1e9 / rate_pps, packets))).astype(np.uint64)
    return headers.with_columns(timestamps=np.uint64(start_ns) + np.cumsum(gaps, dtype=np.uint64))


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
    h = generate_headers(kind, packets, flows, seed, **params)
    return h.fields(), h.devices


def _public(kind: str) -> Callable[..., Trace]:
    draw = _KINDS[kind]

    def make(packets: int = 10_000, flows: int = 1_000, seed: int = 0, **params: Any) -> Trace:
        return generate(kind, packets, flows, seed, **params)

    make.__name__ = kind
    make.__qualname__ = kind
    positional = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
                  for name, default in (("packets", 10_000), ("flows", 1_000), ("seed", 0))]
    make.__signature__ = inspect.Signature(positional + _own_parameters(kind) + _TIMING,
                                           return_annotation=Trace)
    make.__doc__ = f"{(draw.__doc__ or '').strip()}\n\nReturns a ``Trace``; see ``generate``."
    return make


uniform = _public("uniform")
zipf = _public("zipf")
prefix = _public("prefix")
bidir = _public("bidir")
churn = _public("churn")
scan = _public("scan")
heartbeat = _public("heartbeat")
mixed = _public("mixed")

GENERATORS: dict[str, Callable[..., Trace]] = {
    "uniform": uniform, "zipf": zipf, "prefix": prefix, "bidir": bidir, "churn": churn,
    "scan": scan, "heartbeat": heartbeat, "mixed": mixed,
}
