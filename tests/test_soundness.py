"""Soundness: the analysis against the real sequential runtime, packet by packet.

For every sample NF, >= 10,000 packets of mixed generated traffic (plus replies to what the NF
forwarded, so that return paths run) go through the C runtime with its state-call log. For each
packet exactly one analysed path must match: its condition holds for the packet's fields with the
state results bound, in order, from the log; its accesses are the logged calls (object, call, key
evaluated from the key term, number of results); its verdict is the run's verdict; and the frame it
forwards has exactly the header fields the path writes changed, to the written value. A second,
smaller run per stateful NF uses small tables so that "table full" paths run as well.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import z3

from explorer import ir
from explorer.run import RunResult, run_trace
from explorer.symbex import analyze
from explorer.symbex.evaluate import compile_term, frames_env
from explorer.wire import PACKET_FIELDS
from explorer.symbex.bitvec import symbols_of
from explorer.traffic import generators as generate_module
from explorer.traffic.generators import generate
from explorer.traffic.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c"))
PACKETS = 10_000
SMALL_PACKETS = 4_000
REPLIES = 3_000
HEADER_START = {"ether": 0, "ipv4": 14}
SEED = 7

# Extra runs with small tables (so that "table full" paths run too), on fewer packets.
SMALL = {
    "bridge": {"BRIDGE_CAPACITY": "16"},
    "cl": {"CL_CAPACITY": "64", "CL_MAX_CONNECTIONS": "2"},
    "fw": {"FW_CAPACITY": "64"},
    "lb": {"LB_BACKEND_CAPACITY": "4", "LB_FLOW_CAPACITY": "64", "LB_BACKEND_EXPIRATION_NS": "500000"},
    "nat": {"NAT_CAPACITY": "64"},
    "pol": {"POL_CAPACITY": "16", "POL_BURST": "3000"},
    "psd": {"PSD_CAPACITY": "64", "PSD_MAX_PORTS": "4"},
}
CASES = [(nf, "default") for nf in SAMPLES] + [(nf, "small") for nf in sorted(SMALL) if nf in SAMPLES]


def _base(size: str) -> Trace:
    return generate("mixed", packets=PACKETS if size == "default" else SMALL_PACKETS, flows=1_000, seed=SEED)


def _defines(nf: str, size: str, base: Trace) -> dict[str, str]:
    """Configuration that makes the generated traffic meet the NF: the load balancer's virtual IP and
    heartbeat port as the generator sends them; for the static bridge, the router's MAC and the
    commonest WAN destination MAC, both on the WAN port (so frames are forwarded and dropped)."""
    defines: dict[str, str] = {}
    if nf == "lb":
        heartbeat = generate_module.kind_parameters("heartbeat")
        vip = heartbeat["vip"].split(".")
        defines.update(LB_VIRTUAL_IP=f"NF_IPV4({', '.join(vip)})", LB_HEARTBEAT_PORT=str(heartbeat["heartbeat_port"]))
    if nf == "sbridge":
        wan = [f[0:6] for f, d in zip(base.frames, base.devices.tolist()) if d == 1]
        common = Counter(wan).most_common(1)[0][0]
        defines.update(SBRIDGE_MAC0=hex(generate_module.ROUTER_MAC) + "ULL", SBRIDGE_PORT0="1",
                       SBRIDGE_MAC1=hex(int.from_bytes(common, "big")) + "ULL", SBRIDGE_PORT1="1")
    if size == "small":
        defines.update(SMALL[nf])
    return defines


def _reply(frame: bytes) -> bytes:
    """The frame with Ethernet addresses, IPv4 addresses and (for unfragmented TCP/UDP) ports swapped."""
    b = bytearray(frame)
    b[0:6], b[6:12] = frame[6:12], frame[0:6]
    if len(b) >= 34 and b[12:14] == b"\x08\x00":
        b[26:30], b[30:34] = frame[30:34], frame[26:30]
        l4 = 14 + 4 * (b[14] & 0x0F)
        if b[23] in (6, 17) and (int.from_bytes(b[20:22], "big") & 0x3FFF) == 0 and len(b) >= l4 + 4:
            b[l4:l4 + 2], b[l4 + 2:l4 + 4] = frame[l4 + 2:l4 + 4], frame[l4:l4 + 2]
    return bytes(b)


def _trace(source: Path, base: Trace, defines: dict[str, str]) -> Trace:
    """``base``, then replies (on the output device, 1 us later) to the first forwarded frames."""
    first = run_trace(source, base, defines)
    stamps, devices, frames = list(base.timestamps.tolist()), list(base.devices.tolist()), list(base.frames)
    for index, verdict, frame in first.outputs[:REPLIES]:
        if verdict >= 0:
            stamps.append(int(base.timestamps[index]) + 1_000)
            devices.append(verdict)
            frames.append(_reply(frame))
    order = np.lexsort((np.arange(len(stamps)), np.array(stamps, dtype=np.uint64)))
    return Trace(np.array(stamps, dtype=np.uint64)[order], np.array(devices, dtype=np.uint16)[order],
                 tuple(frames[i] for i in order))


def _results(calls_by_packet: list[list], path: ir.CallPath, n: int) -> dict[str, np.ndarray]:
    """The path's result symbols bound, per packet, to the logged call at the same position (0 where
    the packet made fewer calls: then the path cannot be the packet's, and its conditions say so)."""
    env: dict[str, np.ndarray] = {}
    for j, access in enumerate(path.accesses):
        for r, symbol in enumerate(access.results):
            values = [int(calls[j].results[r], 16) if j < len(calls) and r < len(calls[j].results) else 0
                      for calls in calls_by_packet]
            wide = max(values, default=0) >= 1 << 64
            env[symbol] = np.array(values, dtype=object if wide else np.uint64)
    assert all(len(v) == n for v in env.values())
    return env


def _field_value(frame: bytes, hf) -> int:
    start = 14 + 4 * (frame[14] & 0x0F) if hf.region == "l4" else HEADER_START[hf.region]
    return int.from_bytes(frame[start + hf.offset:start + hf.offset + hf.size], "big")


@dataclass
class Run:
    """A run of one NF on one trace, with everything the check needs."""

    nf: str
    analysis: ir.Analysis
    trace: Trace
    result: RunResult


_runs: dict[tuple[str, str], Run] = {}


def _run(nf: str, size: str) -> Run:
    if (nf, size) not in _runs:
        source = ROOT / "sample_nfs" / f"{nf}.c"
        base = _base(size)
        defines = _defines(nf, size, base)
        analysis = analyze(source, defines)
        trace = _trace(source, base, defines)
        _runs[(nf, size)] = Run(nf, analysis, trace, run_trace(source, trace, defines, calls=True))
    return _runs[(nf, size)]


def problems(analysis: ir.Analysis, trace: Trace, run: RunResult, limit: int = 5) -> list[str]:
    """Where the analysis and the run disagree (at most ``limit`` messages per kind of check)."""
    found: list[str] = []
    objects = {o.name: o.alloc_index for o in analysis.objects}
    n = len(trace)
    calls_by_packet: list[list] = [[] for _ in range(n)]
    for call in run.calls:
        calls_by_packet[call.packet].append(call)
    runts = set(run.runts)
    env = frames_env(trace.frames, trace.devices, trace.timestamps)
    bindings = [_results(calls_by_packet, p, n) for p in analysis.paths]

    matches = np.zeros((len(analysis.paths), n), dtype=bool)
    for p, path in enumerate(analysis.paths):
        matches[p] = compile_term(path.condition)({**env, **bindings[p]})
    count = matches.sum(axis=0)
    live = np.array([i not in runts for i in range(n)])
    for i in np.flatnonzero(live & (count != 1))[:limit]:
        found.append(f"packet {i} (device {trace.devices[i]}, {len(trace.frames[i])} bytes) matches "
                     f"{count[i]} paths; its calls: {calls_by_packet[i]}")
    path_of = np.where(live & (count == 1), matches.argmax(axis=0), -1)
    outputs = {index: frame for index, _, frame in run.outputs}
    verdicts = [v.verdict for v in run.verdicts]

    for p, path in enumerate(analysis.paths):
        members = np.flatnonzero(path_of == p)
        if not len(members):
            continue
        local = {k: v[members] for k, v in {**env, **bindings[p]}.items()}
        wrong_calls = [i for i in members if [(c.object, c.call, len(c.results), c.key is None)
                                              for c in calls_by_packet[i]]
                       != [(objects[a.object], a.call, len(a.results), a.key is None) for a in path.accesses]]
        found += [f"path {p}, packet {i}: logged {calls_by_packet[i]}" for i in wrong_calls[:limit]]
        for j, access in enumerate(path.accesses):
            if access.key is None:
                continue
            keys = np.broadcast_to(compile_term(access.key)(local), (len(members),))
            wrong = [(i, int(k)) for k, i in zip(keys, members) if i not in wrong_calls
                     and int(k) != int(calls_by_packet[i][j].key, 16)]
            found += [f"path {p}, packet {i}, {access.call} on {access.object}: key {k:x}, logged "
                      f"{calls_by_packet[i][j].key}" for i, k in wrong[:limit]]
        verdict = path.verdict
        if verdict.kind == "drop":
            expected = np.full(len(members), -1)
        elif verdict.kind == "flood":
            expected = np.full(len(members), -2)
        elif verdict.device is not None:
            expected = np.full(len(members), verdict.device)
        else:
            raw = np.broadcast_to(compile_term(verdict.device_term)(local), (len(members),))
            expected = np.array([int(v) - (1 << 32) if int(v) >> 31 else int(v) for v in raw])
        got = np.array([verdicts[i] for i in members])
        found += [f"path {p}, packet {i}: verdict {g}, the path says {e}"
                  for i, e, g in list(zip(members, expected, got))[:len(members)] if e != g][:limit]
        found += _write_problems(path, members, local, trace, outputs)[:limit]
    return found


def _write_problems(path: ir.CallPath, members: np.ndarray, local: dict, trace: Trace,
                    outputs: dict[int, bytes]) -> list[str]:
    """Forwarded frames: each written field holds the written value, every other field of the
    headers the path has is unchanged (a written field without a value is a recomputed checksum)."""
    written = {w.field: w for w in path.writes}
    values = {name: np.broadcast_to(compile_term(w.value)(local), (len(members),))
              for name, w in written.items() if w.value is not None}
    decisions = set(path.condition_text.split(" && "))
    regions = {"ether"}
    if decisions & {"p.is_ipv4", "p.is_tcpudp"}:
        regions.add("ipv4")
    if "p.is_tcpudp" in decisions:
        regions.add("l4")
    found = []
    for k, i in enumerate(members):
        out = outputs.get(int(i))
        if out is None:
            continue
        for hf in PACKET_FIELDS:
            if hf.region not in regions:
                continue
            after = _field_value(out, hf)
            if hf.name in values:
                if after != int(values[hf.name][k]):
                    found.append(f"path {path.index}, packet {i}: {hf.name} is {after:#x}, the path writes "
                                 f"{int(values[hf.name][k]):#x}")
            elif hf.name not in written and after != _field_value(trace.frames[i], hf):
                found.append(f"path {path.index}, packet {i}: {hf.name} changed but the path does not write it")
    return found


@pytest.mark.parametrize("nf,size", CASES, ids=[f"{nf}-{size}" for nf, size in CASES])
def test_every_packet_follows_exactly_one_path(nf: str, size: str) -> None:
    run = _run(nf, size)
    assert len(run.trace) >= (PACKETS if size == "default" else SMALL_PACKETS)
    found = problems(run.analysis, run.trace, run.result)
    assert not found, f"{nf} ({size}):\n" + "\n".join(found)


def _tamper(analysis: ir.Analysis, how: str) -> ir.Analysis:
    paths = list(analysis.paths)
    if how == "verdict":  # forward where the NF drops, and the reverse
        flip = {"drop": ir.Verdict("forward", 0), "forward": ir.Verdict("drop")}
        paths = [replace(p, verdict=flip.get(p.verdict.kind, p.verdict)) for p in paths]
    elif how == "key":  # the WAN lookup keyed like the LAN one
        lan = next(p for p in paths if 0 in p.devices and any(a.call == "nf_map_get" for a in p.accesses))
        lan_key = next(a for a in lan.accesses if a.call == "nf_map_get")
        paths = [replace(p, accesses=tuple(replace(a, key=lan_key.key) if a.call == "nf_map_get" else a
                                           for a in p.accesses)) for p in paths]
    elif how == "condition":  # forget the device test: LAN and WAN paths overlap
        paths = [replace(p, condition=z3.And(*[c for c in p.condition.children()
                                                if "p.device" not in symbols_of(c)]))
                 for p in paths]
    elif how == "write":  # claim the firewall rewrites the source address
        paths = [replace(p, writes=(ir.FieldWrite("p.ipv4.src", "0", z3.BitVecVal(0, 32)),)) for p in paths]
    return replace(analysis, paths=tuple(paths))


@pytest.mark.parametrize("how", ["verdict", "key", "condition", "write"])
def test_a_wrong_analysis_is_caught(how: str) -> None:
    run = _run("fw", "default")
    assert not problems(run.analysis, run.trace, run.result)
    assert problems(_tamper(run.analysis, how), run.trace, run.result)
