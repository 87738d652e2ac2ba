"""Soundness: the analysis against the real sequential runtime, packet by packet, on traffic that runs
every feasible path (issue 10 item 10).

For every sample NF, in its default configuration and in one with small tables, two kinds of traffic
go through the C runtime with its state-call log: >= 10,000 packets of generated mixed traffic (plus
replies to what the NF forwarded, so that return paths run), and the witness traces of
``explorer.verify.witnesses``, which solve a packet from each path's condition after a prefix that
builds the state it needs. For each packet exactly one analysed path must match
(``explorer.verify.coverage``): its condition holds for the packet's fields with the state results
bound, in order, from the log; its accesses are the logged calls (object, call, key evaluated from
the key term, number of results), each of the kind its call is (READ, WRITE, CREATE, ...; an
nf_vector_return the analysis calls READ must leave the cell unchanged, as its next borrow shows);
its verdict is the run's verdict; and the frame it forwards has exactly the header
fields the path writes changed, to the written value.

Every path must be covered, or named in UNREACHED with the reason. The coverage is printed.
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
from explorer.symbex.bitvec import symbols_of
from explorer.symbex.evaluate import compile_term
from explorer.traffic import generators as generate_module
from explorer.traffic.generators import generate
from explorer.traffic.replies import reply_frame
from explorer.traffic.trace import Trace
from explorer.verify.coverage import calls_by_packet, match_paths
from explorer.verify.witnesses import find_witnesses
from explorer.wire import PACKET_FIELDS, frame_offset

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.stem for p in (ROOT / "sample_nfs").glob("*.c"))
PACKETS = 10_000
SMALL_PACKETS = 4_000
REPLIES = 3_000
PREFIX = 300  # packets of the generated traffic that start the witness search
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
# NFs of tests/nfs that reach what no sample does: syn_guard reads and writes TCP's flags (region "tcp")
# prefix_slots takes __builtin_clz of packet fields and __builtin_ctzll of a state bitmap
EXTRA = {"syn_guard": ROOT / "tests" / "nfs" / "syn_guard.c",
         "prefix_slots": ROOT / "tests" / "nfs" / "prefix_slots.c"}
CASES = ([(nf, "default") for nf in SAMPLES] + [(nf, "small") for nf in sorted(SMALL) if nf in SAMPLES]
         + [(nf, "default") for nf in sorted(EXTRA)])

# Paths the traffic does not run, by NF, configuration and condition, with the reason. A path of the
# default configuration that needs a table fuller than the witness search fills (explorer.verify.
# witnesses.FILL_LIMIT entries) runs in the small configuration instead; the rest are unreachable.
FULL = ("needs its {} table full ({} entries), more than the witness search fills (FILL_LIMIT); it runs in the small "
        "configuration")
UNREACHED: dict[tuple[str, str, str], str] = {
    ("cl", "default", "p.device != 0 && p.is_ipv4 && p.is_tcpudp && !flows.found#3 && connections.estimate#4 < 100 "
                      "&& !chain.ok#5"): FULL.format("flow", "65,536"),
    ("fw", "default", "p.is_ipv4 && p.is_tcpudp && p.device == 0 && !flows.found#2 && !chain.ok#3"):
        FULL.format("flow", "65,536"),
    ("lb", "default", "p.device != 0 && p.is_ipv4 && p.is_tcpudp && p.ipv4.dst == 203.0.113.1 && !flows.found#3 && "
                      "cht.found#4 && !flow_chain.ok#5"): FULL.format("flow", "65,536"),
    ("psd", "default", "p.device != 0 && p.is_ipv4 && p.is_tcpudp && !sources.found#3 && !source_chain.ok#4"):
        FULL.format("source", "65,536"),
    ("psd", "default", "p.device != 0 && p.is_ipv4 && p.is_tcpudp && !sources.found#3 && source_chain.ok#4 && "
                       "!ports.found#10 && !port_chain.ok#12"): FULL.format("port", "65,536"),
    ("psd", "default", "p.device != 0 && p.is_ipv4 && p.is_tcpudp && sources.found#3 && !ports.found#5 && "
                       "counters.cell#6.ports < 64 && !port_chain.ok#7"): FULL.format("port", "65,536"),
    ("prefix_slots", "default", "p.device != 1 && p.is_ipv4 && (p.ipv4.src ^ p.ipv4.dst) != 0 && "
                                "__builtin_clz(p.ipv4.src ^ p.ipv4.dst) < 24 && !owners.found#1 && ~used.cell#2 != 0 && "
                                "counts.cell#5 >= 1000"):
        "unreachable: a slot the bitmap hands out was never taken before (slots are never freed), so its counter is 0",
}
for _size in ("default", "small"):
    UNREACHED[("psd", _size, "p.device != 0 && p.is_ipv4 && p.is_tcpudp && !sources.found#3 && source_chain.ok#4 "
                             "&& ports.found#10")] = (
        "a new source cannot have a known port: every packet that refreshes a (source, port) entry refreshes its "
        "source entry too, so a source never expires before its ports, and a source the table refuses is dropped "
        "before its ports are looked up")

def _field_value(frame: bytes, hf) -> int:
    start = frame_offset(hf, 14 + 4 * (frame[14] & 0x0F))
    return int.from_bytes(frame[start:start + hf.size], "big")


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


def _reply_trace(source: Path, base: Trace, defines: dict[str, str]) -> Trace:
    """``base``, then replies (on the output device, 1 us later) to the first forwarded frames."""
    first = run_trace(source, base, defines)
    stamps, devices, frames = list(base.timestamps.tolist()), list(base.devices.tolist()), list(base.frames)
    for index, verdict, frame in first.outputs[:REPLIES]:
        if verdict >= 0:
            stamps.append(int(base.timestamps[index]) + 1_000)
            devices.append(verdict)
            frames.append(reply_frame(frame))
    order = np.lexsort((np.arange(len(stamps)), np.array(stamps, dtype=np.uint64)))
    return Trace(np.array(stamps, dtype=np.uint64)[order], np.array(devices, dtype=np.uint16)[order],
                 tuple(frames[i] for i in order))


@dataclass
class Run:
    """The runs of one NF in one configuration, with everything the check needs."""

    nf: str
    size: str
    analysis: ir.Analysis
    runs: list[tuple[str, Trace, RunResult]]  # (what, trace, result with its call log)


_runs: dict[tuple[str, str], Run] = {}


def _run(nf: str, size: str) -> Run:
    if (nf, size) not in _runs:
        source = EXTRA.get(nf, ROOT / "sample_nfs" / f"{nf}.c")
        base = generate("mixed", packets=PACKETS if size == "default" else SMALL_PACKETS, flows=1_000, seed=SEED)
        defines = _defines(nf, size, base)
        analysis = analyze(source, defines)
        trace = _reply_trace(source, base, defines)
        runs = [("generated traffic", trace, run_trace(source, trace, defines, calls=True))]
        prefix = Trace(base.timestamps[:PREFIX], base.devices[:PREFIX], base.frames[:PREFIX])
        witnesses = find_witnesses(analysis, defines, seed=SEED, prefix=prefix)
        runs += [(f"witness trace {k}", t, run_trace(source, t, defines, calls=True))
                 for k, t in enumerate(witnesses.traces)]
        _runs[(nf, size)] = Run(nf, size, analysis, runs)
    return _runs[(nf, size)]


# The operation each call is (Maestro's vocabulary); nf_vector_return is READ or WRITE by path.
OPERATIONS = {
    "nf_map_get": ir.Op.READ, "nf_map_put": ir.Op.WRITE, "nf_map_erase": ir.Op.WRITE,
    "nf_vector_borrow": ir.Op.READ, "nf_dchain_allocate_new_index": ir.Op.CREATE,
    "nf_dchain_rejuvenate_index": ir.Op.UPDATE, "nf_dchain_is_index_allocated": ir.Op.VERIFY,
    "nf_dchain_free_index": ir.Op.DESTROY, "nf_expire_items": ir.Op.EXPIRE, "nf_expire_items2": ir.Op.EXPIRE,
    "nf_sketch_touch": ir.Op.WRITE, "nf_sketch_estimate": ir.Op.READ, "nf_sketch_expire": ir.Op.EXPIRE,
    "nf_cht_find_backend": ir.Op.READ,
}


def returns_changed(calls: list[list]) -> dict[tuple[int, int], bool]:
    """For each nf_vector_return (packet, position) whose cell is borrowed again later in the run:
    whether the content at that next borrow differs from the content at this return's borrow."""
    borrowed: dict[tuple[int, str], str] = {}  # (object, index) -> content at the last borrow
    pending: dict[tuple[int, str], tuple[int, int]] = {}  # (object, index) -> the last return
    out: dict[tuple[int, int], bool] = {}
    for packet, mine in enumerate(calls):
        for j, c in enumerate(mine):
            at = (c.object, c.key)
            if c.call == "nf_vector_borrow":
                if at in pending:
                    out[pending.pop(at)] = c.results[0] != borrowed[at]
                borrowed[at] = c.results[0]
            elif c.call == "nf_vector_return" and at in borrowed:
                pending[at] = (packet, j)
    return out


def problems(analysis: ir.Analysis, trace: Trace, run: RunResult, limit: int = 5) -> list[str]:
    """Where the analysis and the run disagree (at most ``limit`` messages per kind of check)."""
    found: list[str] = []
    objects = {o.name: o.alloc_index for o in analysis.objects}
    calls = calls_by_packet(run, len(trace))
    match = match_paths(analysis, trace, run, calls)
    count = match.matches.sum(axis=0)
    for i in np.flatnonzero(match.live & (count != 1))[:limit]:
        found.append(f"packet {i} (device {trace.devices[i]}, {len(trace.frames[i])} bytes) matches "
                     f"{count[i]} paths; its calls: {calls[i]}")
    outputs = {index: frame for index, _, frame in run.outputs}
    verdicts = [v.verdict for v in run.verdicts]
    changed = returns_changed(calls)

    for p, path in enumerate(analysis.paths):
        members = np.flatnonzero(match.path_of == p)
        if not len(members):
            continue
        local = {k: np.broadcast_to(v, (len(trace),))[members] if np.ndim(v) else v
                 for k, v in match.environments[p].items()}
        wrong_calls = [i for i in members if [(c.object, c.call, len(c.results), c.key is None) for c in calls[i]]
                       != [(objects[a.object], a.call, len(a.results), a.key is None) for a in path.accesses]]
        found += [f"path {p}, packet {i}: logged {calls[i]}" for i in wrong_calls[:limit]]
        for j, access in enumerate(path.accesses):
            if access.call != "nf_vector_return" and access.op is not OPERATIONS[access.call]:
                found.append(f"path {p}: {access.call} on {access.object} is {access.op.value}, not "
                             f"{OPERATIONS[access.call].value}")
            if access.call == "nf_vector_return":
                seen = [changed[(int(i), j)] for i in members if (int(i), j) in changed and i not in wrong_calls]
                if access.op is ir.Op.READ and any(seen):
                    found.append(f"path {p}: nf_vector_return on {access.object} is READ, but the cell changed "
                                 f"on {sum(seen)} of {len(seen)} packets")
            if access.key is None:
                continue
            keys = np.broadcast_to(compile_term(access.key)(local), (len(members),))
            wrong = [(i, int(k)) for k, i in zip(keys, members) if i not in wrong_calls
                     and int(k) != int(calls[i][j].key, 16)]
            found += [f"path {p}, packet {i}, {access.call} on {access.object}: key {k:x}, logged "
                      f"{calls[i][j].key}" for i, k in wrong[:limit]]
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
                  for i, e, g in zip(members, expected, got) if e != g][:limit]
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
    if decisions & {"p.is_tcpudp", "p.is_tcp"}:
        regions.add("l4")
    if "p.is_tcp" in decisions:
        regions.add("tcp")
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
def test_every_path_runs_and_every_packet_follows_exactly_one(nf: str, size: str, capsys) -> None:
    run = _run(nf, size)
    assert len(run.runs[0][1]) >= (PACKETS if size == "default" else SMALL_PACKETS)
    per_run = []
    for what, trace, result in run.runs:
        found = problems(run.analysis, trace, result)
        assert not found, f"{nf} ({size}), {what}:\n" + "\n".join(found)
        per_run.append(match_paths(run.analysis, trace, result).counts(len(run.analysis.paths)))
    covered = {p for counts in per_run for p in np.flatnonzero(counts).tolist()}
    paths = run.analysis.paths
    named = {p: UNREACHED[(nf, size, path.condition_text)] for p, path in enumerate(paths)
             if (nf, size, path.condition_text) in UNREACHED}
    with capsys.disabled():
        print(f"\nsoundness coverage {nf} ({size}): {len(covered)} of {len(paths)} paths run (generated traffic "
              f"{int(np.count_nonzero(per_run[0]))}, witness traces {len(covered - set(np.flatnonzero(per_run[0])))} "
              f"more)" + "".join(f"; path {p} not: {why}" for p, why in sorted(named.items())))
    missing = [p for p in range(len(paths)) if p not in covered and p not in named]
    assert not missing, "\n".join(f"{nf} ({size}) path {p} never runs: {paths[p].condition_text}" for p in missing)
    assert not set(named) & covered, f"paths named unreachable ran: {sorted(set(named) & covered)}"


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
    _, trace, result = run.runs[0]
    assert not problems(run.analysis, trace, result)
    assert problems(_tamper(run.analysis, how), trace, result)


def test_a_wrong_read_or_write_kind_is_caught() -> None:
    """nf_vector_return claimed READ where the NAT writes a key cell (a write the sharding would miss),
    or nf_map_put claimed READ. (WRITE is "may change": a bridge rewriting a host's unchanged port is
    a WRITE that leaves the cell as it was, so the reverse is not an error.)"""
    run = _run("nat", "small")
    for _, trace, result in run.runs:
        assert not problems(run.analysis, trace, result)
    for call in ("nf_vector_return", "nf_map_put"):
        paths = tuple(replace(p, accesses=tuple(replace(a, op=ir.Op.READ) if a.call == call else a
                                                for a in p.accesses)) for p in run.analysis.paths)
        wrong = replace(run.analysis, paths=paths)
        found = [m for _, trace, result in run.runs for m in problems(wrong, trace, result)]
        expected = "is READ, but the cell changed" if call == "nf_vector_return" else "nf_map_put on"
        assert any(expected in m for m in found), found
