"""Is the parallel build equivalent to the sequential NF on a trace? ``check(solution, trace, cores,
strategy)`` runs both and compares every packet's verdict and output bytes under the relation of
the strategy, explaining the first packets that differ.

The relations (each one tested by tests/test_check.py):

* seq, sn: packet by packet, the same verdict and the same bytes, except where sharding changes
  what an NF legitimately does:
  - renaming: a header field written from an allocated index (a dchain index, or a map value, which
    is how nf.h NFs keep indices), e.g. a NAT's external port NAT_START_PORT + index, comes from a
    per-core index range. Such fields may differ, with checksums recomputed as nf_update_checksums
    does, provided the renaming is consistent: every flow (input device and 5-tuple) keeps one pair
    (sequential value, parallel value); a sequential value never maps to two parallel values, and on
    one core a parallel value never stands for two sequential values (index reuse within the trace
    would break this; traces shorter than the NF's expiry time have none);
  - capacity: a core holds only its share of a divided table. From the first packet at which a
    core's share refused an index (or the sequential table refused one, for every core), that
    core's packets are counted as capacity drift instead of being compared.
* locks, tm: the replay stamps every critical section with tickets from one counter. The check
  verifies that no write section overlapped any other section (mutual exclusion as observed), then
  rebuilds the serial order the locks allowed: writers in ticket order and, between two writers,
  the readers that ran between them in time order. The sequential NF run on the trace permuted
  into that order must give every packet the same verdict and bytes. How many packets differ from
  the sequential run in trace order (cores racing, as any parallel NF does) is reported apart.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import z3

from explorer.codegen.planning import ParallelPlan, parallel_plan
from explorer.codegen.project import write_project
from explorer.verify.replay import RAN_WRITE, ParallelRun, run_replay
from explorer.errors import ConfigError, RunError
from explorer.run import DROP, FLOOD, RunResult, StateCall, run_trace
from explorer.symbex.bitvec import symbols_of
from explorer.traffic.trace import Trace
from explorer.wire import (
    ETHER_LEN, FIELD_BY_NAME, FRAGMENT_BITS, PROTO_TCP, PROTO_UDP, TCP_LEN, UDP_LEN, frame_offset)

_WRITE_CALLS = ("nf_map_put", "nf_map_erase", "nf_sketch_touch")
_KEYED_CALLS = ("nf_map_get", "nf_map_put", "nf_map_erase", "nf_sketch_touch", "nf_sketch_estimate")
RELATIONS = {
    "seq": "same verdict and bytes for every packet",
    "sn": "same verdict and bytes for every packet, up to a consistent renaming of index-derived fields "
          "and per-core capacity",
    "locks": "equal to the sequential NF run in the order the locks serialised the packets",
    "tm": "equal to the sequential NF run in the order the locks serialised the packets",
}


@dataclass(frozen=True)
class Difference:
    """A packet whose parallel outcome breaks the relation, and why."""

    index: int
    device: int
    core: int
    sequential: int  # verdict
    parallel: int
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"packet": self.index, "device": self.device, "core": self.core, "sequential": self.sequential,
                "parallel": self.parallel, "why": self.why}


@dataclass(frozen=True)
class CheckReport:
    nf: str
    strategy: str
    cores: int
    packets: int
    relation: str
    differences: tuple[Difference, ...]  # the first ones (at most `shown`)
    unexplained: int  # packets that break the relation
    per_core: tuple[int, ...]
    write_passes: int  # locks/tm: packets rerun under the write lock
    renamed: int = 0  # sn: packets equal only up to renaming
    capacity_drift: int = 0  # sn: packets not compared because a core's share (or the table) was full
    capacity_detail: str = ""
    reordered: int = 0  # locks/tm: packets that differ from the trace-order sequential run
    notes: tuple[str, ...] = field(default=())
    failure: str = ""  # the parallel run itself failed (crash, sanitizer report, broken contract)

    @property
    def equivalent(self) -> bool:
        return self.unexplained == 0 and not self.failure

    def to_dict(self) -> dict[str, Any]:
        return {"equivalent": self.equivalent, "packets": self.packets, "nf": self.nf, "strategy": self.strategy,
                "cores": self.cores, "relation": self.relation, "unexplained": self.unexplained,
                "differences": [d.to_dict() for d in self.differences], "per_core": list(self.per_core),
                "write_passes": self.write_passes, "renamed": self.renamed,
                "capacity_drift": {"packets": self.capacity_drift, "detail": self.capacity_detail},
                "reordered": self.reordered, "notes": list(self.notes), "failure": self.failure}

    def render(self) -> str:
        verdict = ("equivalent" if self.equivalent else f"NOT equivalent: the parallel run failed: {self.failure}"
                   if self.failure else f"NOT equivalent: {self.unexplained} packets differ")
        head = f"{self.nf} ({self.strategy}, {self.cores} cores, {self.packets} packets): {verdict}"
        lines = [head, f"  relation: {self.relation}",
                 f"  packets per core: {' '.join(map(str, self.per_core))}"]
        if self.strategy in ("locks", "tm"):
            lines.append(f"  rerun under the write lock: {self.write_passes}; differing from the trace-order "
                         f"sequential run (cores racing): {self.reordered}")
        if self.renamed:
            lines.append(f"  equal up to renaming of index-derived fields: {self.renamed}")
        if self.capacity_drift:
            lines.append(f"  not compared, per-core capacity drift: {self.capacity_drift} ({self.capacity_detail})")
        lines += [f"  note: {n}" for n in self.notes]
        for d in self.differences:
            lines.append(f"  packet {d.index} (device {d.device}, core {d.core}): sequential {_verdict(d.sequential)}, "
                         f"parallel {_verdict(d.parallel)}: {d.why}")
        return "\n".join(lines)


def _verdict(v: int) -> str:
    return {DROP: "drop", FLOOD: "flood"}.get(v, f"forward to {v}")


# ---- frames -------------------------------------------------------------------------------------

def _l4_offset(frame: bytes) -> Optional[int]:
    """Where the TCP/UDP header starts when nf_tcpudp_header would find one, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4 or frame[14] & 15 < 5:
        return None
    ihl = 4 * (frame[14] & 15)
    proto = frame[23]
    if len(frame) < ETHER_LEN + ihl or int.from_bytes(frame[20:22], "big") & FRAGMENT_BITS or \
            proto not in (PROTO_TCP, PROTO_UDP):
        return None
    l4 = ETHER_LEN + ihl
    return l4 if len(frame) >= l4 + (TCP_LEN if proto == PROTO_TCP else UDP_LEN) else None


def _span(name: str, frame: bytes) -> Optional[tuple[int, int]]:
    field = FIELD_BY_NAME.get(name)
    if field is None:
        return None
    start = frame_offset(field, _l4_offset(frame) if field.region == "l4" else None)
    return None if start is None else (start, field.size)


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _sum16(data: bytes | bytearray) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    return sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))


def update_checksums(frame: bytes) -> bytes:
    """The frame with its IPv4 and TCP/UDP checksums recomputed as nf_update_checksums does."""
    out = bytearray(frame)
    if len(out) < 34 or out[12:14] != b"\x08\x00" or out[14] >> 4 != 4 or out[14] & 15 < 5 or \
            len(out) < 14 + 4 * (out[14] & 15):
        return bytes(out)
    ip_len = 4 * (out[14] & 15)
    out[24:26] = b"\0\0"
    out[24:26] = _fold(_sum16(out[14:14 + ip_len])).to_bytes(2, "big")
    l4 = _l4_offset(bytes(out))
    total = int.from_bytes(out[16:18], "big")
    if l4 is None or total < ip_len:
        return bytes(out)
    l4_len = total - ip_len
    if l4 + l4_len > len(out):
        return bytes(out)
    proto = out[23]
    if proto == 6:
        if l4_len < 20:
            return bytes(out)
        at = l4 + 16
    else:
        if l4_len < 8 or out[l4 + 6:l4 + 8] == b"\0\0":
            return bytes(out)
        at = l4 + 6
    out[at:at + 2] = b"\0\0"
    pseudo = _sum16(out[26:34]) + proto + l4_len
    checksum = _fold(_sum16(out[l4:l4 + l4_len]) + pseudo)
    if checksum == 0 and proto == 17:
        checksum = 0xFFFF
    out[at:at + 2] = checksum.to_bytes(2, "big")
    return bytes(out)


def _flow_key(device: int, frame: bytes) -> tuple:
    l4 = _l4_offset(frame)
    if l4 is None:
        return (device, frame[26:34] if len(frame) >= 34 else frame)
    return (device, frame[26:34], frame[23], frame[l4:l4 + 4])


# ---- the relations ------------------------------------------------------------------------------

def renamable_fields(solution: Any, plan: ParallelPlan) -> frozenset[str]:
    """Header fields some path writes with a value that depends on an allocated index of a divided
    object: a dchain's index or a map's value (``<object>.index#n``, ``<object>.value#n``)."""
    divided = {o.name for o in plan.objects if o.per_core != o.capacity and o.kind in ("dchain", "map")}
    fields: set[str] = set()
    for path in solution.analysis.paths:
        for write in path.writes:
            if write.value is not None and _mentions_index(write.value, divided):
                fields.add(write.field)
    return frozenset(fields)


def _mentions_index(term: z3.ExprRef, objects: set[str]) -> bool:
    """Whether ``term`` uses an index or value returned by one of ``objects`` (``chain.index#3``)."""
    for name in symbols_of(term):
        obj, _, what = name.partition(".")
        if obj in objects and what.split("#")[0] in ("index", "value"):
            return True
    return False


class _Renaming:
    """Checks that index-derived values are renamed consistently (see the module docstring)."""

    def __init__(self) -> None:
        self.by_flow: dict[tuple, tuple] = {}
        self.seq_to_par: dict[tuple, tuple] = {}
        self.par_to_seq: dict[tuple, tuple] = {}

    def accept(self, flow: tuple, core: int, names: tuple[str, ...], seq: tuple, par: tuple) -> Optional[str]:
        pair = (seq, par)
        known = self.by_flow.setdefault(flow, pair)
        if known != pair and (known[0] == seq or known[1] == par):
            return f"the flow's renamed {', '.join(names)} changed on one side only ({known} then {pair})"
        self.by_flow[flow] = pair
        if self.seq_to_par.setdefault((names, seq), par) != par:
            return f"sequential {', '.join(names)} {seq} became both {self.seq_to_par[(names, seq)]} and {par}"
        if self.par_to_seq.setdefault((names, core, par), seq) != seq:
            return (f"on core {core}, parallel {', '.join(names)} {par} stands for both "
                    f"{self.par_to_seq[(names, core, par)]} and {seq}")
        return None


def _renamed_equal(seq: bytes, par: bytes, fields: frozenset[str]) -> Optional[tuple[tuple[str, ...], tuple, tuple]]:
    """When ``par`` is ``seq`` with some renamable fields replaced and checksums recomputed: the
    fields and their values on each side; else None."""
    if len(seq) != len(par) or not fields:
        return None
    spans = [(name, _span(name, seq)) for name in sorted(fields)]
    spans = [(name, span) for name, span in spans if span is not None and span[0] + span[1] <= len(seq)]
    patched = bytearray(seq)
    for _, (at, size) in spans:
        patched[at:at + size] = par[at:at + size]
    # Checksums as the sequential frame has them: recomputed when its own were (nf_update_checksums
    # after the rewrite), else left as they are.
    recomputed = update_checksums(seq) == seq
    if (update_checksums(bytes(patched)) if recomputed else bytes(patched)) != par:
        return None
    changed = tuple((name, span) for name, span in spans if seq[span[0]:span[0] + span[1]] != par[span[0]:span[0] + span[1]])
    if not changed:
        return None
    return (tuple(n for n, _ in changed), tuple(seq[a:a + s].hex() for _, (a, s) in changed),
            tuple(par[a:a + s].hex() for _, (a, s) in changed))


def _seq_arrays(result: RunResult, packets: int) -> tuple[np.ndarray, list[Optional[bytes]]]:
    verdicts = np.array([v.verdict for v in result.verdicts], dtype=np.int32)
    frames: list[Optional[bytes]] = [None] * packets
    for index, _, frame in result.outputs:
        frames[index] = frame
    return verdicts, frames


def _calls_by_packet(calls: tuple[StateCall, ...]) -> dict[int, list[StateCall]]:
    out: dict[int, list[StateCall]] = {}
    for call in calls:
        out.setdefault(call.packet, []).append(call)
    return out


def _explain_sharding(index: int, trace: Trace, run: ParallelRun, calls: dict[int, list[StateCall]],
                      names: dict[int, str]) -> str:
    """Why a packet's state may be on another core: the last earlier packet that wrote an entry
    this packet uses, when RSS put it on a different core."""
    mine = [c for c in calls.get(index, []) if c.call in _KEYED_CALLS and c.key is not None]
    for call in mine:
        for q in range(index - 1, -1, -1):
            if any(c.object == call.object and c.key == call.key and c.call in _WRITE_CALLS for c in calls.get(q, [])):
                if int(run.cores[q]) != int(run.cores[index]):
                    return (f"it uses {names.get(call.object, call.object)} entry {call.key}, which packet {q} "
                            f"(device {int(trace.devices[q])}) wrote on core {int(run.cores[q])}: packets that "
                            "share state were steered to different cores")
                break
    return "the parallel run's state differs from the sequential run's at this packet"


def _compare_sn(solution: Any, plan: ParallelPlan, trace: Trace, run: ParallelRun, seq: RunResult) -> dict[str, Any]:
    verdicts, frames = _seq_arrays(seq, len(trace))
    fields = renamable_fields(solution, plan)
    renaming = _Renaming()
    seq_full = _sequential_refusals(seq)
    first_seq_full = min(seq_full) if seq_full else None
    core_full: dict[int, int] = {}
    for i in np.flatnonzero(run.capacity_hit).tolist():
        core_full.setdefault(int(run.cores[i]), i)
    bad: list[tuple[int, str]] = []
    renamed = drift = 0
    for i in range(len(trace)):
        core = int(run.cores[i])
        if (first_seq_full is not None and i >= first_seq_full) or (core in core_full and i >= core_full[core]):
            if verdicts[i] != run.verdicts[i] or frames[i] != run.frames[i]:
                drift += 1
            continue
        if verdicts[i] != run.verdicts[i]:
            bad.append((i, ""))
        elif frames[i] != run.frames[i]:
            found = _renamed_equal(frames[i] or b"", run.frames[i] or b"", fields)
            if found is None:
                bad.append((i, "the output bytes differ" + (f" beyond the renamable fields ({', '.join(sorted(fields))})"
                                                              if fields else "")))
                continue
            names, seq_values, par_values = found
            problem = renaming.accept(_flow_key(int(trace.devices[i]), trace.frames[i]), core, names,
                                      seq_values, par_values)
            if problem:
                bad.append((i, f"renaming is inconsistent: {problem}"))
            else:
                renamed += 1
    detail = []
    if core_full:
        shares = ", ".join(f"{o.name} {o.per_core}" for o in plan.objects if o.kind == "dchain" and o.per_core != o.capacity)
        detail.append("a core's share of indices ran out on core " + ", ".join(
            f"{c} at packet {p}" for c, p in sorted(core_full.items())) + (f" (shares: {shares})" if shares else ""))
    if first_seq_full is not None:
        detail.append(f"the sequential table refused an index at packet {first_seq_full}")
    return {"bad": bad, "renamed": renamed, "drift": drift, "detail": "; ".join(detail)}


def _sequential_refusals(seq: RunResult) -> list[int]:
    return [c.packet for c in seq.calls if c.call == "nf_dchain_allocate_new_index" and c.results[:1] == ("00",)]


def serial_order(trace: Trace, run: ParallelRun) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The order the locks let the packets through (see the module docstring), and the packets
    whose write section overlapped another section."""
    n = len(trace)
    begin = run.ticket_begin.astype(np.int64)
    end = run.ticket_end.astype(np.int64)
    processed = np.array([len(f) >= 14 for f in trace.frames], dtype=bool)
    writer = (run.ran == RAN_WRITE) & processed
    problems: list[tuple[int, str]] = []
    idx = np.flatnonzero(processed)
    order = idx[np.argsort(begin[idx], kind="stable")]
    begins = begin[order]
    ends_max = np.maximum.accumulate(end[order]) if len(order) else end[order]
    for w in np.flatnonzero(writer).tolist():
        inside = np.searchsorted(begins, begin[w], side="right"), np.searchsorted(begins, end[w], side="left")
        if inside[1] > inside[0]:
            other = int(order[inside[0]])
            problems.append((w, f"its write section overlapped packet {other}'s section (core {int(run.cores[other])}):"
                                " the write lock did not exclude it"))
            continue
        before = np.searchsorted(begins, begin[w], side="left")
        if before > 0 and ends_max[before - 1] > begin[w]:
            problems.append((w, "its write section started inside another packet's section: the write lock did "
                                "not exclude it"))
    writer_ends = np.sort(end[writer])
    writer_rank = np.zeros(n, dtype=np.int64)
    writer_rank[writer] = np.searchsorted(np.sort(begin[writer]), begin[writer]) + 1
    epoch = np.where(writer, writer_rank, np.searchsorted(writer_ends, begin, side="left"))
    kind = np.where(writer, 0, 1)
    # Frames the NF never saw (runts) go first: they change nothing.
    epoch = np.where(processed, epoch, -1)
    permutation = np.lexsort((np.arange(n), trace.timestamps, kind, epoch))
    return permutation, problems


def _compare_serial(plan: ParallelPlan, trace: Trace, run: ParallelRun, seq: RunResult,
                    defines: dict[str, str]) -> dict[str, Any]:
    permutation, problems = serial_order(trace, run)
    processed = np.array([len(f) >= 14 for f in trace.frames], dtype=bool)
    for core in range(plan.cores):  # each core's packets keep their arrival order (runts aside)
        mine = permutation[(run.cores[permutation] == core) & processed[permutation]]
        if np.any(np.diff(mine) < 0):
            problems.append((int(mine[np.flatnonzero(np.diff(mine) < 0)[0] + 1]),
                             f"core {core}'s packets are out of arrival order in the serial order"))
    permuted = Trace(trace.timestamps[permutation], trace.devices[permutation],
                     tuple(trace.frames[i] for i in permutation))
    serial = run_trace(plan.source, permuted, defines)
    serial_verdicts, serial_frames = _seq_arrays(serial, len(trace))
    verdicts = np.empty(len(trace), dtype=np.int32)
    verdicts[permutation] = serial_verdicts
    frames: list[Optional[bytes]] = [None] * len(trace)
    for position, original in enumerate(permutation.tolist()):
        frames[original] = serial_frames[position]
    bad = list(problems)
    for i in range(len(trace)):
        if verdicts[i] != run.verdicts[i] or frames[i] != run.frames[i]:
            how = "reader pass" if run.ran[i] != RAN_WRITE else "write lock"
            bad.append((i, f"differs from the sequential NF run in the locks' order (ran in a {how})"))
    trace_verdicts, trace_frames = _seq_arrays(seq, len(trace))
    reordered = sum(1 for i in range(len(trace))
                    if trace_verdicts[i] != run.verdicts[i] or trace_frames[i] != run.frames[i])
    return {"bad": sorted(bad, key=lambda b: b[0]), "reordered": reordered, "serial_verdicts": verdicts}


def check_plan(plan: ParallelPlan, trace: Trace, solution: Any = None, *, shown: int = 5,
               sanitize: Optional[str] = None, defines: tuple[str, ...] = (),
               timeout: Optional[float] = None) -> CheckReport:
    """Generate ``plan``'s project in a temporary folder, replay ``trace`` on it and compare with the
    sequential NF. ``defines`` are extra -D flags for the build (fault injection in tests). A replay
    that outlasts ``timeout`` seconds (default: a minute, plus one per 5,000 packets beyond
    300,000) counts as a failed parallel run: broken locking can corrupt state into endless loops."""
    if len(trace) == 0:
        raise ConfigError("the trace is empty: nothing to compare")
    overrides = dict(plan.overrides)
    seq = run_trace(plan.source, trace, overrides)
    with tempfile.TemporaryDirectory(prefix="nfx-check-") as folder:
        project = write_project(plan, folder)
        try:
            limit = timeout if timeout is not None else 60 + max(0, len(trace) - 300_000) / 5000
            run = run_replay(project, trace, sanitize=sanitize, defines=defines, timeout=limit)
        except RunError as error:  # the sequential NF ran: a failing parallel run is a divergence
            return CheckReport(plan.nf, plan.strategy, plan.cores, len(trace), RELATIONS[plan.strategy], (), 0,
                               (), 0, failure=str(error))
    verdicts, frames = _seq_arrays(seq, len(trace))
    differs = bool(np.any(verdicts != run.verdicts)) or any(f != g for f, g in zip(frames, run.frames))
    per_core = tuple(int(c) for c in np.bincount(run.cores, minlength=plan.cores))
    writes = int(np.sum(run.ran == RAN_WRITE))
    notes: list[str] = []
    renamed = drift = reordered = 0
    detail = ""
    bad: list[tuple[int, str]] = []
    if plan.strategy in ("locks", "tm"):
        result = _compare_serial(plan, trace, run, seq, overrides)
        bad, reordered = result["bad"], result["reordered"]
        seq_verdicts = result["serial_verdicts"]
    else:
        seq_verdicts = verdicts
        if differs:
            seq = run_trace(plan.source, trace, overrides, calls=True)
            if solution is None:
                raise ConfigError("checking a shared-nothing plan needs its solution (for the renamable fields)")
            result = _compare_sn(solution, plan, trace, run, seq)
            bad, renamed, drift, detail = result["bad"], result["renamed"], result["drift"], result["detail"]
            if renamed:
                notes.append("renamed fields (written from allocated indices): "
                             + ", ".join(sorted(renamable_fields(solution, plan))))
    differences = []
    if bad:
        calls = _calls_by_packet(seq.calls) if seq.calls else {}
        names = {o.alloc_index: o.name for o in plan.objects}
        for index, why in bad[:shown]:
            if not why:
                why = _explain_sharding(index, trace, run, calls, names)
            differences.append(Difference(index, int(trace.devices[index]), int(run.cores[index]),
                                          int(seq_verdicts[index]), int(run.verdicts[index]), why))
    return CheckReport(plan.nf, plan.strategy, plan.cores, len(trace), RELATIONS[plan.strategy], tuple(differences),
                       len({i for i, _ in bad}), per_core, writes, renamed, drift, detail, reordered, tuple(notes))


def check(solution: Any, trace: Trace, cores: int = 2, strategy: str = "auto", *, shown: int = 5,
          sanitize: Optional[str] = None, defines: tuple[str, ...] = (),
          timeout: Optional[float] = None) -> CheckReport:
    """Run the sequential and the parallel build of ``solution``'s NF on ``trace`` and compare them
    (see the module docstring for the relation of each strategy)."""
    plan = parallel_plan(solution, strategy, cores)
    return check_plan(plan, trace, solution, shown=shown, sanitize=sanitize, defines=defines, timeout=timeout)
