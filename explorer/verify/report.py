"""What ``check`` found: a verdict that always means what it says, and the packets behind it.

The verdict is one of

* ``equivalent``: every packet was compared and is right under the strategy's relation (packets
  that differ only by documented drift, e.g. per-core sketches, are named and counted);
* ``partial``: no compared packet is wrong, but some were set aside uncompared (a core's share of a
  divided table ran out: per-core capacity drift), so equivalence is not shown;
* ``not equivalent``: some packets break the relation;
* ``failed``: the parallel build crashed or broke a contract of nf.h on the trace.

Set-up problems (a core count EAL cannot start, a trace on a device the NF lacks) are errors, never
verdicts. Every differing or drifting packet is kept with what a person needs to find it: its
input device, addresses and ports, both verdicts, its core and why.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from explorer.run import DROP, FLOOD
from explorer.traffic.replies import is_ipv4, l4_start
from explorer.wire import reaching_the_nf
from explorer.wording import count

SHOWN = 50  # differing (and drifting) packets a report keeps, for people and the explorer's table
EXIT_STATUS = {"equivalent": 0, "not equivalent": 2, "failed": 2, "partial": 3}
HEADER_NAMES = ("src_mac", "dst_mac", "src", "dst", "proto", "sport", "dport")


def packet_headers(frame: bytes) -> tuple[tuple[str, Any], ...]:
    """The fields of an input frame a person looks for: MACs, IPv4 addresses and protocol, ports
    (None where the frame has no such header)."""
    values: dict[str, Any] = dict.fromkeys(HEADER_NAMES)
    if len(frame) >= 12:
        values["dst_mac"] = ":".join(f"{b:02x}" for b in frame[0:6])
        values["src_mac"] = ":".join(f"{b:02x}" for b in frame[6:12])
    if is_ipv4(frame):
        values["src"], values["dst"] = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
        values["proto"] = frame[23]
        l4 = l4_start(frame)
        if l4 is not None:
            values["sport"] = int.from_bytes(frame[l4:l4 + 2], "big")
            values["dport"] = int.from_bytes(frame[l4 + 2:l4 + 4], "big")
    return tuple((name, values[name]) for name in HEADER_NAMES)


def capture_frames(devices: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Each packet's frame number in its device's capture (1-based, as Wireshark counts; 0 for a
    closed-loop reply, which no capture holds): a trace keeps each capture's order (Trace.merge), so
    the number is the packet's rank among its device's packets that are not replies. A person finds
    a packet by it; the trace index mixes every device's packets."""
    devices = np.asarray(devices)
    captured = np.ones(len(devices), dtype=bool)
    captured[:len(origin)] = np.asarray(origin)[:len(devices)] < 0
    frames = np.zeros(len(devices), dtype=np.int64)
    for dev in np.unique(devices[captured]).tolist():
        mine = captured & (devices == dev)
        frames[mine] = np.arange(1, int(np.count_nonzero(mine)) + 1)
    return frames


def verdict_name(v: int) -> str:
    return {DROP: "drop", FLOOD: "flood"}.get(v, f"forward to {v}")


@dataclass(frozen=True)
class Difference:
    """A packet whose parallel outcome differs from the sequential one, and why: ``kind`` is
    "difference" (it breaks the relation), "capacity" or "sketch" (documented drift)."""

    index: int
    device: int
    core: int
    sequential: int  # verdict
    parallel: int
    why: str
    kind: str = "difference"
    headers: tuple[tuple[str, Any], ...] = ()  # of the input frame (packet_headers)
    reply_to: int = -1  # a closed-loop reply: the packet (numbered as ``index``) whose output it answers
    frame: int = 0  # its frame number in its device's capture (1-based; 0: a reply, in no capture)

    def to_dict(self) -> dict[str, Any]:
        out = {"packet": self.index, "device": self.device, "core": self.core, "sequential": self.sequential,
               "parallel": self.parallel, "why": self.why, "kind": self.kind, "frame": self.frame,
               **dict(self.headers)}
        if self.reply_to >= 0:
            out["reply_to"] = self.reply_to
        return out

    def render(self, captures: Optional[dict[int, str]] = None) -> str:
        """One line; ``captures`` names each device's capture file, so that the frame is found there."""
        h = dict(self.headers)
        where = ""
        if h.get("src") is not None:
            ports = h.get("sport") is not None
            where = (f" {h['src']}{':' + str(h['sport']) if ports else ''} -> "
                     f"{h['dst']}{':' + str(h['dport']) if ports else ''}")
        elif h.get("src_mac") is not None:
            where = f" {h['src_mac']} -> {h['dst_mac']}"
        reply = f", reply to packet {self.reply_to}" if self.reply_to >= 0 else ""
        capture = (captures or {}).get(self.device)
        frame = (f", frame {self.frame} of {capture}" if capture else f", its frame {self.frame}") if self.frame else ""
        return (f"packet {self.index} (device {self.device}{where}{frame}, core {self.core}{reply}): sequential "
                f"{verdict_name(self.sequential)}, parallel {verdict_name(self.parallel)}: {self.why}")


@dataclass(frozen=True)
class CheckReport:
    nf: str
    strategy: str
    cores: int
    packets: int  # processed by each run, closed-loop replies included
    relation: str
    differences: tuple[Difference, ...]  # the first ones (at most SHOWN)
    unexplained: int  # packets that break the relation
    per_core: tuple[int, ...]
    write_passes: int  # locks/tm: packets rerun under the write lock
    renamed: int = 0  # sn: packets equal only up to renaming
    capacity_drift: int = 0  # sn: packets set aside uncompared because a core's share (or the table) was full
    capacity_detail: str = ""
    reordered: int = 0  # locks/tm: packets that differ from the trace-order sequential run
    notes: tuple[str, ...] = field(default=())
    failure: str = ""  # the parallel run itself failed (crash, sanitizer report, broken contract)
    sketch_drift: int = 0  # sn: packets that differ because each core's sketch counts only its keys
    drift: tuple[Difference, ...] = ()  # the first drifting packets (at most SHOWN)
    replies: int = 0  # closed-loop replies among the packets
    cell_passes: int = 0  # locks/tm: reader passes that wrote vector cells under cell locks
    translated: int = 0  # packets of the trace readdressed to the parallel run's renamed ports
    # sn with replicated objects (explorer.verify.replication): how writes were broadcast, how many,
    # the writes packets ran without (replication lag) and the packets that differ because of them
    replication: str = ""
    writes: int = 0
    missed: tuple = ()
    lag_differences: int = 0
    runts: int = 0  # frames shorter than an Ethernet header: never reach the NF, counted on no core
    captures: tuple[tuple[int, str], ...] = ()  # (device, capture file name) when the trace was read from them
    unsettled: int = 0  # differing packets set aside: the closed loop gave them stale replies (no fixed point)
    settled: int = -1  # the first packet of that unsettled tail

    @property
    def verdict(self) -> str:
        if self.failure:
            return "failed"
        if self.unexplained:
            return "not equivalent"
        if self.capacity_drift or self.unsettled:
            return "partial"
        return "equivalent"

    @property
    def equivalent(self) -> bool:
        return self.verdict == "equivalent"

    @property
    def compared(self) -> int:
        return self.packets - self.capacity_drift - self.unsettled

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[self.verdict]

    @property
    def unsettled_detail(self) -> str:
        return (f"the closed loop did not settle: from packet {self.settled} on, replies answer outputs that changed "
                "in the last round, so the runs are not comparable there")

    def partial(self) -> Optional[dict[str, Any]]:
        if self.verdict != "partial":
            return None
        reasons = ([f"per-core capacity drift: {self.capacity_detail}"] if self.capacity_drift else []) + \
            ([self.unsettled_detail] if self.unsettled else [])
        return {"reason": "; ".join(reasons), "compared": self.compared,
                "not_compared": self.capacity_drift + self.unsettled}

    def to_dict(self) -> dict[str, Any]:
        return {"equivalent": self.equivalent, "verdict": self.verdict, "partial": self.partial(),
                "packets": self.packets, "compared": self.compared, "nf": self.nf, "strategy": self.strategy,
                "cores": self.cores, "relation": self.relation, "unexplained": self.unexplained,
                "differences": [d.to_dict() for d in self.differences], "per_core": list(self.per_core),
                "write_passes": self.write_passes, "cell_passes": self.cell_passes, "renamed": self.renamed,
                "capacity_drift": {"packets": self.capacity_drift, "detail": self.capacity_detail},
                "unsettled": {"packets": self.unsettled, "from": self.settled} if self.unsettled else None,
                "drift": {"capacity": self.capacity_drift, "sketch": self.sketch_drift,
                          "packets": [d.to_dict() for d in self.drift]},
                "replies": self.replies, "translated": self.translated, "runts": self.runts,
                "captures": {str(dev): name for dev, name in self.captures},
                "reordered": self.reordered, "notes": list(self.notes), "failure": self.failure,
                "replication": {"mode": self.replication, "writes": self.writes,
                                "missed": [m.to_dict() for m in self.missed],
                                "lag_differences": self.lag_differences} if self.replication else None}

    def verdict_line(self) -> str:
        verdict = self.verdict
        if verdict == "failed":
            return f"NOT equivalent: the parallel run failed: {self.failure}"
        if verdict == "not equivalent":
            return f"NOT equivalent: {self.unexplained} of {self.packets} packets differ"
        if verdict == "partial":
            why = " and ".join((["per-core capacity drift"] if self.capacity_drift else [])
                               + (["the closed loop did not settle"] if self.unsettled else []))
            return (f"partial: {self.capacity_drift + self.unsettled} of {self.packets} packets went uncompared "
                    f"({why}); no difference in the {self.compared} compared")
        if self.sketch_drift:
            return (f"equivalent up to documented drift: {self.sketch_drift} packets differ because each "
                    "core's sketch counts only its own keys")
        return "equivalent"

    def render(self, shown: int = 5) -> str:
        head = f"{self.nf} ({self.strategy}, {count(self.cores, 'core')}, {count(self.packets, 'packet')}): {self.verdict_line()}"
        lines = [head, f"  relation: {self.relation}",
                 f"  packets per core: {' '.join(map(str, self.per_core))}"
                 + (f" ({count(self.runts, 'runt')} shorter than an Ethernet header reached no core: the runtime "
                    "drops them before the NF)" if self.runts else "")]
        if self.replies or self.translated:
            lines.append(f"  closed loop: {self.replies} replies to what each run sent"
                         + (f"; {self.translated} packets of the trace readdressed to the parallel run's ports"
                            if self.translated else ""))
        if self.strategy in ("locks", "tm"):
            lines.append(f"  rerun under the write lock: {self.write_passes}; wrote vector cells under cell locks: "
                         f"{self.cell_passes}; differing from the trace-order "
                         f"sequential run (cores racing): {self.reordered}")
        if self.replication:
            from explorer.verify.replication import lag_summary
            lines.append(f"  {self.replication} replication: {self.writes} writes broadcast; differing from the "
                         f"trace-order sequential run because of replication lag: {self.lag_differences}")
            lines += [f"  lag: {line}" for line in lag_summary(self.missed, self.writes)]
        if self.renamed:
            lines.append(f"  equal up to renaming of index-derived fields: {self.renamed}")
        if self.capacity_drift:
            lines.append(f"  not compared, per-core capacity drift: {self.capacity_drift} ({self.capacity_detail})")
        if self.unsettled:
            lines.append(f"  not compared, {self.unsettled_detail}: {self.unsettled}")
        if self.sketch_drift:
            lines.append(f"  documented drift, per-core sketches: {self.sketch_drift}")
        lines += [f"  note: {n}" for n in self.notes]
        captures = dict(self.captures)
        lines += [f"  {d.render(captures)}" for d in self.differences[:shown]]
        if self.unexplained > min(shown, len(self.differences)):
            lines.append(f"  ... and {self.unexplained - min(shown, len(self.differences))} more differing packets")
        lines += [f"  drift: {d.render(captures)}" for d in self.drift[:shown]]
        return "\n".join(lines)


def per_core(cores: Any, frames: Any, count_of_cores: int) -> tuple[tuple[int, ...], int]:
    """Packets each core ran, and the runts: frames shorter than an Ethernet header, which the
    runtime drops before the NF (and the simulator skips), are counted on no core."""
    reached = reaching_the_nf(frames)
    ran = np.bincount(np.asarray(cores)[reached].astype(np.int64), minlength=count_of_cores)
    return tuple(int(c) for c in ran), int(np.count_nonzero(~reached))


def unused_devices(devices: int, arrivals: Any) -> list[str]:
    """A note on the NF's devices no packet of the trace arrived on: their paths went unchecked
    (generated traffic, for one, arrives on devices 0 and 1 only)."""
    idle = sorted(set(range(devices)) - {int(d) for d in np.unique(arrivals)})
    if not idle:
        return []
    their = "their" if len(idle) > 1 else "its"
    return [f"no packet arrived on device{'s' if len(idle) > 1 else ''} {', '.join(map(str, idle))}: "
            f"{their} paths went unchecked (give {their} traffic with --in, or use --traffic paths)"]
