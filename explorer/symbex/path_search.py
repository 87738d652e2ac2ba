"""The path search: run nf_init concretely, then every path of nf_process symbolically.

Paths end up in named stashes (``finished``, ``infeasible``, ``errored``) so that an unsupported
construct on one path is a record with its location, not a crash of the exploration.
"""
from __future__ import annotations

import dataclasses
import difflib
import gc
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import z3
from z3 import z3util

from explorer import ir
from explorer.errors import AnalysisWarning, NfxError, UnsupportedError
from explorer.ir import Location
from explorer.frontend import ParsedNF, parse_nf
from explorer.symbex import ctype as ct
from explorer.symbex.allocations import allocated_fields
from explorer.symbex.bitvec import bv, combine_be, from_state, reset_caches, symbols_of
from explorer.symbex.call_paths import CallPathBuilder, fields_read, state_object
from explorer.symbex.ctype import PointerType
from explorer.symbex.effects import Effects, ObjectInfo
from explorer.symbex.fixed_values import DEVICE
from explorer.symbex import merging
from explorer.symbex.interpreter import Interpreter
from explorer.symbex.loop_heads import LoopHeads
from explorer.symbex.memory import Region, same_cell
from explorer.symbex.models import forks
from explorer.symbex.packet import PacketSymbols
from explorer.symbex.path_solver import PathSolver
from explorer.symbex.program import Program, call_before_declaration, location_of
from explorer.symbex.render import Renderer
from explorer.symbex.state import Budget, Infeasible, PathState
from explorer.symbex.values import Int, Ptr, SemanticsError
from explorer.wire import PACKET_FIELDS

MAX_PATHS = 4096
# The whole exploration, in CPU time of the analysing thread (not wall-clock: the same NF must be
# accepted or refused whatever else the machine runs); a larger NF is refused rather than analysed for hours.
MAX_SECONDS = 120.0
VERDICT_DROP = -1
VERDICT_FLOOD = -2


@dataclass
class FinishedPath:
    state: PathState
    effects: Effects
    verdict: ir.Verdict
    writes: tuple[ir.FieldWrite, ...]


@dataclass
class Exploration:
    """The stashes of one exploration, and the objects nf_init allocated."""

    objects: dict[str, ObjectInfo]
    finished: list[FinishedPath] = field(default_factory=list)
    infeasible: list[tuple] = field(default_factory=list)
    errored: list[tuple[tuple, NfxError]] = field(default_factory=list)
    solver_checks: int = 0




class PathSearch:
    def __init__(self, parsed: ParsedNF):
        self.parsed = parsed
        self.program = Program(parsed, forks)
        self.solver = PathSolver()
        self.objects: dict[str, ObjectInfo] = {}
        self.snapshot: dict[str, Region] = {}
        self.packet = PacketSymbols()
        self._one_sided_seen: set[Location] = set()
        self.heads = LoopHeads()

    # ------------------------------------------------------------------ nf_init
    def load(self) -> None:
        """Declare everything at file scope, then run nf_init concretely."""
        memory: dict[str, Region] = {}
        it = Interpreter(self.program, memory, PathState(self.solver, (), []), "init", self.objects)
        early = call_before_declaration(self.parsed.ast.ext)
        if early is not None:
            raise UnsupportedError(f"{early.name.name}() is called before it is declared; C has no implicit "
                                   "declarations: define it above its first caller, or declare it there "
                                   "(a prototype)", location=location_of(early))
        for ext in self.parsed.ast.ext:
            it.declare(ext)
        if not self.parsed.ast.ext:  # nothing to define anything: an empty file, or only comments
            raise UnsupportedError(f"{self.parsed.path}: the file declares nothing (empty, or only comments and "
                                   f"blanks); an NF defines bool nf_init(void) and int nf_process(...), as the "
                                   f"samples in sample_nfs/ do")
        for entry in ("nf_init", "nf_process"):
            if entry not in self.program.functions:
                raise _missing_entry(self.parsed.path, entry, self.program.functions)
        init = self.program.functions["nf_init"]
        result = it.call("nf_init", [])
        if isinstance(result, Int) and isinstance(result.v, int) and result.v == 0:
            raise UnsupportedError("nf_init returns false when run by the analyzer (allocations always succeed "
                                   "here)", location=location_of(it.machine.returned_at or init))
        if it.effects.borrows:
            raise UnsupportedError("nf_init borrows a vector cell and never returns it", location=location_of(init))
        self.snapshot = {name: region for name, region in memory.items() if region.kind in ("global", "handle", "const")}

    # ------------------------------------------------------------------ nf_process
    def explore(self) -> Exploration:
        result = Exploration(self.objects)
        process = self.program.functions["nf_process"]
        base = [z3.UGE(self.packet.len, 14), z3.ULT(self.packet.device, self.parsed.devices)]
        worklist: list[tuple] = [()]
        budget = Budget(MAX_SECONDS, 1 << 62)  # one deadline for every path, checked inside them too
        while worklist:
            prefix = worklist.pop()
            if len(result.finished) + len(result.infeasible) >= MAX_PATHS:
                raise UnsupportedError(f"nf_process has more than {MAX_PATHS} paths", location=location_of(process))
            if time.thread_time() > budget.deadline:
                raise UnsupportedError(f"the analysis of nf_process took more than {MAX_SECONDS:g} s of CPU time "
                                       f"({len(result.finished)} paths so far)", location=location_of(process))
            state = PathState(self.solver, prefix, base, budget)
            state.on_one_sided = self._one_sided
            state.heads = self.heads if merging.ENABLED else None
            try:
                finished = self._run(process, state)
            except Infeasible:
                finished = None
            except NfxError as error:
                result.errored.append((tuple(state.trace), error))
                break
            worklist.extend(state.siblings)
            if finished is None:
                result.infeasible.append(tuple(state.trace))
            else:
                result.finished.append(finished)
        result.solver_checks = self.solver.checks
        return result

    def _one_sided(self, state: PathState, cond: Any, taken: bool, location: Optional[Location]) -> None:
        """Warn, once per place, about a test of the device against one device the NF does not have
        (``device == MGMT`` with MGMT 2 and the default two devices): its branch never runs, which is
        rarely what the author meant. Tests that other paths decide (``device == WAN`` after
        ``device == LAN`` failed) and range guards (``device > 1``) are left alone."""
        if location is None or location in self._one_sided_seen:
            return
        self._one_sided_seen.add(location)
        device = self.packet.device
        if any(not v.eq(device) for v in z3util.get_vars(cond)):
            return
        never = z3.Not(cond) if taken else cond
        solver = state.solver
        example = solver.model_value([], never, device)
        if example is None or example < self.parsed.devices or solver.satisfiable([never], device != example):
            return
        n = self.parsed.devices
        warnings.warn(AnalysisWarning(
            f"{location}: this tests for device {example}, but the NF has {n} device{'s' if n > 1 else ''} "
            f"(0..{n - 1}), so that branch never runs; if the NF has more ports, #define NF_DEVICES "
            f"{example + 1} before #include \"nf.h\"", location,
            f"warning: device {example} does not exist (NF_DEVICES is {n}): never runs"), stacklevel=2)

    def _run(self, process: Any, state: PathState) -> Optional[FinishedPath]:
        memory = {name: region.copy() for name, region in self.snapshot.items()}
        memory.update(self.packet.header_regions())
        memory["packet"] = Region("packet", "packet", "the packet", 0)
        it = Interpreter(self.program, memory, state, "process", self.objects, self.packet)
        args = [Int(ct.USHORT, self.packet.device), Ptr(PointerType(ct.UCHAR), "packet", 0),
                Int(ct.USHORT, self.packet.len), Int(ct.ULLONG, self.packet.now)]
        try:
            value = it.call("nf_process", args)
        except RecursionError:
            raise UnsupportedError("the code is nested too deeply for the analyzer",
                                   location=location_of(process)) from None
        if value is None:  # C: the caller reads whatever the register held
            device = state.solver.model_value(state.constraints, z3.BoolVal(True), self.packet.device)
            example = f" (e.g. for a frame on device {device})" if device is not None else ""
            raise UnsupportedError(f"nf_process reaches its closing brace without a return on a path{example}: "
                                   "every path must return a device, NF_DROP or NF_FLOOD",
                                   location=location_of(process))
        self._all_returned(it, it.machine.returned_at or process)
        verdict = self._verdict(it, value, it.machine.returned_at or process)
        return FinishedPath(state, it.effects, verdict, self._writes(it))

    @staticmethod
    def _all_returned(it: Interpreter, node: Any) -> None:
        """A cell borrowed and never handed back stays borrowed in the runtime, which stops the NF
        once a few pile up: refused here, at the return that leaves it, instead of after a few packets."""
        if it.effects.borrows:
            borrow = next(iter(it.effects.borrows.values()))
            where = f" at {borrow.location}" if borrow.location else ""
            raise UnsupportedError(f"nf_process returns here with a cell of {borrow.object} still borrowed (nf_vector_borrow"
                                   f"{where}): hand it back with nf_vector_return on every path, or the runtime "
                                   "stops the NF once a few such cells pile up", location=location_of(node))

    def _verdict(self, it: Interpreter, value: Any, node: Any) -> ir.Verdict:
        try:
            ret = it.machine.convert(value, ct.INT, node)
        except NfxError:
            raise UnsupportedError("nf_process must return an int", location=location_of(node)) from None
        assert isinstance(ret, Int)
        if isinstance(ret.v, int):
            return self._constant_verdict(ret.signed_value(), node)
        term = ret.v
        state = it.machine.state
        if state.branch(term == VERDICT_DROP, location_of(node), written=False):
            return ir.Verdict("drop")
        if state.branch(term == VERDICT_FLOOD, location_of(node), written=False):
            return ir.Verdict("flood")
        if state.possible(term < 0):
            value = state.solver.model_value(state.constraints, term < 0, term)
            raise UnsupportedError(f"nf_process may return {Renderer().text(term)} here, which can be "
                                   f"{value - (1 << term.size()) if value >> (term.size() - 1) else value}, a negative value "
                                   f"other than NF_DROP and NF_FLOOD; {self._verdicts()}: test the value before "
                                   "returning it (e.g. return NF_DROP unless 0 <= it < NF_DEVICES)",
                                   location=location_of(node))
        if not from_state(term) and state.possible(term >= self.parsed.devices):
            raise UnsupportedError(f"nf_process may return {Renderer().text(term)} here, which can be "
                                   f"{state.solver.model_value(state.constraints, term >= self.parsed.devices, term)}; "
                                   f"{self._verdicts()}", location=location_of(node))
        return ir.Verdict("forward", None, "", term)

    def _verdicts(self) -> str:
        n = self.parsed.devices
        return (f"a verdict is a device ({'0' if n == 1 else f'0..{n - 1}'}, since NF_DEVICES is {n}), "
                "NF_DROP or NF_FLOOD")

    def _constant_verdict(self, v: int, node: Any) -> ir.Verdict:
        if v == VERDICT_DROP:
            return ir.Verdict("drop")
        if v == VERDICT_FLOOD:
            return ir.Verdict("flood")
        if not 0 <= v < self.parsed.devices:
            raise UnsupportedError(f"nf_process returns {v} here; {self._verdicts()}", location=location_of(node))
        return ir.Verdict("forward", v)

    def _writes(self, it: Interpreter) -> tuple[ir.FieldWrite, ...]:
        original = self.packet.header_regions()
        writes: list[ir.FieldWrite] = []
        for hf in PACKET_FIELDS:
            region = it.machine.memory[hf.region]
            now = region.cells[hf.offset:hf.offset + hf.size]
            before = original[hf.region].cells[hf.offset:hf.offset + hf.size]
            if all(same_cell(a, b) for a, b in zip(now, before)):
                continue
            value = bv(combine_be(now), 8 * hf.size)
            if it.machine.state.proves(value == self.packet.fields[hf.name]):
                continue
            spots = [region.writes[i] for i in range(hf.offset, hf.offset + hf.size) if i in region.writes]
            location = max(spots, key=lambda loc: (loc.line, loc.col)) if spots else None
            writes.append(ir.FieldWrite(hf.name, "", value, location))
        checksums = it.effects.checksum_writes
        # TCP's checksum is a field only where the path has decided the packet is TCP (region "tcp")
        recomputed = ["p.ipv4.checksum"] + (["p.tcp.checksum"] if checksums and it.machine.state.proves(
            self.packet.tcp_ok) else [])
        for name in recomputed:
            if checksums and not any(w.field == name for w in writes):
                writes.append(ir.FieldWrite(name, "recomputed by nf_update_checksums", None, checksums[-1]))
        return tuple(writes)

    def devices(self, state: PathState) -> tuple[int, ...]:
        """The input devices for which a path is feasible."""
        dev = self.packet.device
        return tuple(d for d in range(self.parsed.devices) if state.possible(dev == d))


_ENTRY_POINTS = {"nf_init": "bool nf_init(void)",
                 "nf_process": "int nf_process(uint16_t device, uint8_t *packet, uint16_t len, nf_time_t now)"}


def _missing_entry(path: str, entry: str, functions: dict[str, Any]) -> UnsupportedError:
    """An entry point the NF lacks, pointing at a function whose name is a likely misspelling of it."""
    near = difflib.get_close_matches(entry, [name for name in functions if name not in _ENTRY_POINTS], n=1, cutoff=0.8)
    if not near:
        return UnsupportedError(f"{path}: the NF does not define {entry}() (expected: {_ENTRY_POINTS[entry]})")
    return UnsupportedError(f"the NF does not define {entry}(): {near[0]}(), defined here, looks like a misspelling "
                            f"of it (expected: {_ENTRY_POINTS[entry]})", location=location_of(functions[near[0]]))


def explore(parsed: ParsedNF) -> tuple[PathSearch, Exploration]:
    """Run nf_init and explore nf_process, returning the stashes (errors are records here)."""
    reset_caches()
    search = PathSearch(parsed)
    try:
        search.load()
    except RecursionError:
        raise UnsupportedError(f"{parsed.path}: the code is nested too deeply for the analyzer") from None
    except SemanticsError as error:
        raise UnsupportedError(f"{parsed.path}: {error}") from None
    return search, search.explore()


def _per_device(fp: FinishedPath, devices: tuple[int, ...], device: Any) -> list[tuple[PathState, tuple[int, ...]]]:
    """The path as it is, or, when one of its keys, written values or its verdict depends on the input
    device (``device == LAN ? ip->dst_addr : ip->src_addr`` before any branch on the device), one
    path per device: each then has the key, value or verdict of its device alone."""
    terms = [a.key for a in fp.effects.accesses] + [w.value for w in fp.writes] + [fp.verdict.device_term]
    if len(devices) == 1 or not any(t is not None and DEVICE in symbols_of(t) for t in terms):
        return [(fp.state, devices)]
    return [(fp.state.assuming(device == d), (d,)) for d in devices]


class _FewerCollections:
    """Python's cyclic collector walks every live object in a full collection, and an analysis holds
    many (the parsed AST with nf.h's declarations, Z3 terms, snapshots): collections its allocations
    triggered took a quarter of a 64-rule ACL's analysis. While analyses run, the objects alive when
    the first one started are frozen (never walked) and the youngest generation is collected every
    20,000 allocations instead of 700; the outermost one undoes both (explorer threads may run two).
    Before it unfreezes, it collects what the analyses left as cyclic garbage: frozen by the next
    freeze, an earlier analysis' Z3 terms outlived the next one and slowed it by a third (acl_long
    after acl_count in one process: 0.66 s against 0.44 s). Collected then, the walk covers only the
    objects made since the freeze; a full collection before the freeze walked the whole process,
    0.3-1 s per analysis in a notebook holding traces and simulations (the pitfalls notebook spent
    25 of its 39 CPU seconds there)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = gc.get_threshold()

    def __enter__(self) -> None:
        with self._lock:
            self._depth += 1
            if self._depth == 1:
                self._saved = gc.get_threshold()
                gc.freeze()
                gc.set_threshold(20_000, 10, 10)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                gc.collect()  # the frozen objects are not walked
                gc.set_threshold(*self._saved)
                gc.unfreeze()


_FEWER_COLLECTIONS = _FewerCollections()


def analyze_parsed(parsed: ParsedNF) -> ir.Analysis:
    with _FEWER_COLLECTIONS:
        return _analyze_parsed(parsed)


def _analyze_parsed(parsed: ParsedNF) -> ir.Analysis:
    start = time.perf_counter()
    search, exploration = explore(parsed)
    if exploration.errored:
        raise exploration.errored[0][1]
    builder = CallPathBuilder(parsed.path, search.objects.values(), search.program.converted)
    paths: list[ir.CallPath] = []
    effects: list[Effects] = []
    for fp in exploration.finished:
        devices = search.devices(fp.state)
        if not devices:
            continue
        for state, devs in _per_device(fp, devices, search.packet.device):
            paths.append(builder.path(len(paths), state, fp.effects, fp.verdict, fp.writes, devs))
            effects.append(fp.effects)
    objects = tuple(state_object(o) for o in sorted(search.objects.values(), key=lambda o: o.alloc_index))
    return ir.Analysis(nf=Path(parsed.path).stem, source=parsed.path, defines=parsed.defines,
                       devices=parsed.devices, objects=objects, paths=tuple(paths),
                       fields_read=fields_read(paths, effects), seconds=time.perf_counter() - start,
                       allocated=allocated_fields(paths, effects, parsed.devices, builder.render))


def analyze(path: str | Path, defines: Optional[dict[str, str]] = None) -> ir.Analysis:
    """Every feasible path of the NF's nf_process, with its state accesses, writes and verdict
    (``seconds`` counts reading and parsing the NF too)."""
    start = time.perf_counter()
    analysis = analyze_parsed(parse_nf(path, defines))
    return dataclasses.replace(analysis, seconds=time.perf_counter() - start)
