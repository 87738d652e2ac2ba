"""The traffic a bench measures: per-NF defaults that exercise the NF's main path, or any generator
kind with its parameters. An NF that rewrites headers (a NAT) also gets, per build, the replies to what
that build sends (``explorer.bench.loop``): its default traffic is then the requests alone.

Frames are 64 bytes: a bench counts packets per second. Every report also names the share of packets
per verdict, so that a figure of the drop path cannot pass for one of the forwarding path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import numpy as np

from explorer.errors import ConfigError, TrafficError
from explorer.traffic.generators import generate, kind_parameters
from explorer.traffic.trace import Trace

FRAME_BYTES = 64
# Per sample NF: the traffic of its main path, and why.
NF_TRAFFIC: dict[str, tuple[str, dict[str, Any], str]] = {
    "fw": ("bidir", {}, "LAN-opened flows and their WAN replies"),
    "nat": ("uniform", {"reply_share": 0.0}, "LAN flows, each build answered by the WAN (closed loop)"),
    "lb": ("heartbeat", {}, "clients of lb.c's virtual IP, established flows, backends' heartbeats"),
    "pol": ("zipf", {"skew": 1.1, "flows": 500}, "500 LAN hosts, the busiest over their rate, most within"),
    "psd": ("scan", {}, "client traffic and port scans"),
    "cl": ("uniform", {}, "flows opened from both sides, most within their connection limit"),
}
DEFAULT_TRAFFIC = ("uniform", {}, "flows between LAN clients and WAN servers, both directions")
# NFs whose bench default is their main path: those above, and the samples the default fits.
KNOWN_MAIN_PATH = frozenset(NF_TRAFFIC) | {"nop", "sbridge", "bridge"}
Spec = Union[None, str, Mapping[str, Any]]


@dataclass(frozen=True)
class BenchTraffic:
    """What a bench feeds its builds: a generator ``kind``, its parameters, and why."""

    kind: str
    params: tuple[tuple[str, Any], ...]
    packets: int
    flows: int
    seed: int
    why: str = ""

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params)
        why = f" ({self.why})" if self.why else ""
        return (f"{self.kind} traffic{why}, {self.packets} packets over {self.flows} flows{extra}, "
                f"{FRAME_BYTES}-byte frames, seed {self.seed}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": dict(self.params), "packets": self.packets, "flows": self.flows,
                "seed": self.seed, "why": self.why}


def traffic_for(nf: str, traffic: Spec, packets: int, seed: int = 0) -> BenchTraffic:
    """The traffic to bench ``nf`` (an NF name) with: ``traffic`` when given (a generator kind, or a
    spec ``{"kind": ..., parameter: value, ...}``), else the NF's main-path default."""
    if traffic is None:
        kind, params, why = NF_TRAFFIC.get(nf, DEFAULT_TRAFFIC)
    else:
        spec = {"kind": traffic} if isinstance(traffic, str) else dict(traffic)
        kind = str(spec.pop("kind", "uniform"))
        try:
            kind_parameters(kind)
        except TrafficError as error:
            raise ConfigError(f"--traffic: {error}") from None
        default_kind, default_params, default_why = NF_TRAFFIC.get(nf, DEFAULT_TRAFFIC)
        params, why = (spec, "as asked") if spec or kind != default_kind else (default_params, default_why)
    params = {k: v for k, v in params.items() if k != "size"}
    flows = int(params.pop("flows", max(1, packets // 20)))
    return BenchTraffic(kind, tuple(sorted(params.items())), packets, flows, seed, why)


def open_loop(traffic: BenchTraffic) -> Trace:
    """The trace of ``traffic``: 64-byte frames."""
    return generate(traffic.kind, packets=traffic.packets, flows=traffic.flows, seed=traffic.seed,
                    size=FRAME_BYTES, **dict(traffic.params))


# Packets per core in one lap of a bench at least: every lap ends with each core waiting for the
# others (the replay's wait_for_laps) and a quiesce, so a lap of 5 packets measured those waits, not
# the NF (fw on a 5-packet capture: 0.56 Mpps on one core, 0.27 on two).
LAP_PER_CORE = 1024
_U64_MAX = (1 << 64) - 1


def looped(trace: Trace, cores: int) -> tuple[Trace, int]:
    """``trace`` repeated, and the copies, until it holds ``LAP_PER_CORE`` packets per core of the
    most cores measured: each copy later by the trace's span plus one mean gap, as the replay
    shifts its laps (``lap_span``), so that time never goes backwards. Times past 2**64 - 1 ns stay
    there (a capture spanning centuries): they never wrap to the past."""
    n = len(trace)
    copies = -(-LAP_PER_CORE * cores // n) if n else 1
    if copies <= 1:
        return trace, 1
    first, last = int(trace.timestamps[0]), int(trace.timestamps[-1])
    span = last - first
    gap = span // (n - 1) if n > 1 else 0
    lap = span + (gap or 1)
    shifts = np.minimum(np.arange(copies, dtype=object) * lap, _U64_MAX)  # Python ints: no wrap
    stamps = np.concatenate([np.minimum(trace.timestamps.astype(object) + int(s), _U64_MAX) for s in shifts])
    return Trace(stamps.astype(np.uint64), np.tile(trace.devices, copies), trace.frames * copies), copies
