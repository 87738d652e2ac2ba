"""The path explorer: run nf_init concretely, then every path of nf_process symbolically.

Paths end up in named stashes (``finished``, ``infeasible``, ``errored``) so that an unsupported
construct on one path is a record with its location, not a crash of the exploration.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import z3
from pycparser import c_ast

from explorer import ir
from explorer.errors import NfxError, UnsupportedError
from explorer.frontend import ParsedNF, parse_nf
from explorer.symbex import ctype as ct
from explorer.symbex.ctype import PointerType, StructType
from explorer.symbex.interpreter import Interpreter, _Break, _Continue
from explorer.symbex.library import Library, ObjectInfo, RawAccess, _same_cell
from explorer.symbex.memory import Region
from explorer.symbex.packet import PacketSymbols
from explorer.symbex.program import Program, location_of
from explorer.symbex.render import Renderer
from explorer.symbex.path_solver import PathSolver
from explorer.symbex.state import Infeasible, PathState
from explorer.symbex.bitvec import bv, combine_be, reset_caches, symbols_of
from explorer.symbex.values import Int, Ptr, SemanticsError, to_signed
from explorer.wire import PACKET_FIELDS

MAX_PATHS = 4096
MAX_SECONDS = 120.0  # the whole exploration; a larger NF is refused rather than analysed for hours
VERDICT_DROP = -1
VERDICT_FLOOD = -2


@dataclass
class FinishedPath:
    state: PathState
    library: Library
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
        self.program = Program(parsed)
        self.solver = PathSolver()
        self.objects: dict[str, ObjectInfo] = {}
        self.snapshot: dict[str, Region] = {}
        self.packet = PacketSymbols()

    # ------------------------------------------------------------------ nf_init
    def load(self) -> None:
        """Declare everything at file scope, then run nf_init concretely."""
        state = PathState(self.solver, (), [])
        memory: dict[str, Region] = {}
        library = Library("init", self.objects)
        it = Interpreter(self.program, memory, state, "init", library)
        for ext in self.parsed.ast.ext:
            if isinstance(ext, c_ast.FuncDef):
                name = ext.decl.name
                if name in self.program.functions:
                    raise UnsupportedError(f"function {name} is defined twice", location=location_of(ext))
                ft = it.resolve_type(ext.decl.type)
                self.program.functions[name] = ext
                self.program.prototypes[name] = ft
            elif isinstance(ext, c_ast.Decl):
                it.declare_global(ext)
            elif isinstance(ext, c_ast.Typedef):
                it.exec_Typedef(ext)
            elif isinstance(ext, c_ast.StaticAssert):
                it.exec_StaticAssert(ext)
            elif isinstance(ext, c_ast.Pragma):
                continue
            else:
                raise UnsupportedError(f"unsupported file-scope construct ({type(ext).__name__})",
                                       location=location_of(ext))
        for entry in ("nf_init", "nf_process"):
            if entry not in self.program.functions:
                raise UnsupportedError(f"{self.parsed.path}: the NF does not define {entry}()")
        init = self.program.functions["nf_init"]
        try:
            result = it.call_function("nf_init", [], init)
        except (_Break, _Continue):
            raise UnsupportedError("break or continue outside a loop in nf_init", location=location_of(init)) from None
        if isinstance(result, Int) and isinstance(result.v, int) and result.v == 0:
            raise UnsupportedError("nf_init returns false when run by the analyzer (allocations always succeed "
                                   "here)", location=location_of(it.returned_at or init))
        if library.borrows:
            raise UnsupportedError("nf_init borrows a vector cell and never returns it", location=location_of(init))
        self.snapshot = {name: region for name, region in memory.items() if region.kind in ("global", "handle", "const")}

    # ------------------------------------------------------------------ nf_process
    def explore(self) -> Exploration:
        result = Exploration(self.objects)
        process = self.program.functions["nf_process"]
        base = [z3.UGE(self.packet.len, 14), z3.ULT(self.packet.device, self.parsed.devices)]
        worklist: list[tuple] = [()]
        deadline = time.monotonic() + MAX_SECONDS
        while worklist:
            prefix = worklist.pop()
            if len(result.finished) + len(result.infeasible) >= MAX_PATHS:
                raise UnsupportedError(f"nf_process has more than {MAX_PATHS} paths", location=location_of(process))
            if time.monotonic() > deadline:
                raise UnsupportedError(f"the analysis of nf_process took longer than {MAX_SECONDS:g} s "
                                       f"({len(result.finished)} paths so far)", location=location_of(process))
            state = PathState(self.solver, prefix, base)
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

    def _run(self, process: Any, state: PathState) -> Optional[FinishedPath]:
        memory = {name: region.copy() for name, region in self.snapshot.items()}
        memory.update(self.packet.header_regions())
        memory["packet"] = Region("packet", "packet", "the packet", 0)
        library = Library("process", self.objects, self.packet)
        it = Interpreter(self.program, memory, state, "process", library)
        args = [Int(ct.USHORT, self.packet.device), Ptr(PointerType(ct.UCHAR), "packet", 0),
                Int(ct.USHORT, self.packet.len), Int(ct.ULLONG, self.packet.now)]
        try:
            value = it.call_function("nf_process", args, process)
        except (_Break, _Continue):
            raise UnsupportedError("break or continue outside a loop", location=location_of(process)) from None
        except RecursionError:
            raise UnsupportedError("the code is nested too deeply for the analyzer",
                                   location=location_of(process)) from None
        if value is None:
            raise UnsupportedError("nf_process must return a device, NF_DROP or NF_FLOOD",
                                   location=location_of(process))
        verdict = self._verdict(it, value, it.returned_at or process)
        return FinishedPath(state, library, verdict, self._writes(it, library))

    def _verdict(self, it: Interpreter, value: Any, node: Any) -> ir.Verdict:
        try:
            ret = it.convert(value, ct.INT, node)
        except NfxError:
            raise UnsupportedError("nf_process must return an int", location=location_of(node)) from None
        assert isinstance(ret, Int)
        if isinstance(ret.v, int):
            return self._constant_verdict(ret.signed_value(), node)
        term = ret.v
        if it.state.branch(term == VERDICT_DROP, location_of(node)):
            return ir.Verdict("drop")
        if it.state.branch(term == VERDICT_FLOOD, location_of(node)):
            return ir.Verdict("flood")
        if it.state.possible(term < 0):
            raise UnsupportedError("nf_process may return a negative value other than NF_DROP and NF_FLOOD",
                                   location=location_of(node))
        return ir.Verdict("forward", None, "", term)

    @staticmethod
    def _constant_verdict(v: int, node: Any) -> ir.Verdict:
        if v == VERDICT_DROP:
            return ir.Verdict("drop")
        if v == VERDICT_FLOOD:
            return ir.Verdict("flood")
        if v < 0:
            raise UnsupportedError(f"nf_process returns {v}; return a device, NF_DROP or NF_FLOOD",
                                   location=location_of(node))
        return ir.Verdict("forward", v)

    def _writes(self, it: Interpreter, library: Library) -> tuple[ir.FieldWrite, ...]:
        original = self.packet.header_regions()
        writes: list[ir.FieldWrite] = []
        for hf in PACKET_FIELDS:
            region = it.memory[hf.region]
            now = region.cells[hf.offset:hf.offset + hf.size]
            before = original[hf.region].cells[hf.offset:hf.offset + hf.size]
            if all(_same_cell(a, b) for a, b in zip(now, before)):
                continue
            value = bv(combine_be(now), 8 * hf.size)
            if it.state.proves(value == self.packet.fields[hf.name]):
                continue
            spots = [region.writes[i] for i in range(hf.offset, hf.offset + hf.size) if i in region.writes]
            location = max(spots, key=lambda loc: (loc.line, loc.col)) if spots else None
            writes.append(ir.FieldWrite(hf.name, "", value, location))
        if library.checksum_writes and not any(w.field == "p.ipv4.checksum" for w in writes):
            writes.append(ir.FieldWrite("p.ipv4.checksum", "recomputed by nf_update_checksums", None,
                                        library.checksum_writes[-1]))
        return tuple(writes)


# ---------------------------------------------------------------------- building the IR
class _Builder:
    def __init__(self, parsed: ParsedNF, explorer: PathSearch, exploration: Exploration):
        self.parsed = parsed
        self.explorer = explorer
        self.exploration = exploration
        self.render = Renderer({o.name: o.layout for o in explorer.objects.values()
                                if o.kind == "vector" and isinstance(o.layout, StructType)})
        self.fields = {f.name for f in PACKET_FIELDS}

    def key_text(self, raw: RawAccess) -> str:
        if raw.key is None:
            return ""
        layout = raw.key_layout
        if raw.key_cells is not None and isinstance(layout, StructType) and layout.size == len(raw.key_cells):
            parts = []
            for f in layout.fields:
                term = combine_be(raw.key_cells[f.offset:f.offset + f.ctype.size])
                parts.append(f"{f.name}: {self.render.text(bv(term, 8 * f.ctype.size))}")
            return "{" + ", ".join(parts) + "}"
        return self.render.text(raw.key)

    def decision_text(self, decision: Any) -> str:
        return decision.label if decision.label is not None else self.render.text(decision.cond)

    def path(self, index: int, fp: FinishedPath, devices: tuple[int, ...]) -> ir.CallPath:
        state = fp.state
        condition = z3.And(*state.constraints) if state.constraints else z3.BoolVal(True)
        text = " && ".join(self._wrap(d) for d in state.decisions) or "true"
        accesses = tuple(ir.Access(raw.object, raw.op, raw.call, raw.key, self.key_text(raw), raw.results,
                                   raw.location or ir.Location(self.parsed.path, 0, 0), raw.related)
                         for raw in fp.library.accesses)
        writes = tuple(ir.FieldWrite(w.field, w.value_text or self.render.field_value(w.field, w.value), w.value,
                                     w.location)
                       for w in fp.writes)
        verdict = fp.verdict
        if verdict.kind == "forward" and verdict.device is None:
            term = verdict.device_term
            single = self._single_value(state, term)
            verdict = ir.Verdict("forward", single, "" if single is not None else self.render.text(term),
                                 None if single is not None else term)
        return ir.CallPath(index, condition, text, devices, accesses, writes, verdict)

    def _wrap(self, decision: Any) -> str:
        text = self.decision_text(decision)
        return f"({text})" if decision.label is None and z3.is_or(decision.cond) else text

    def _single_value(self, state: PathState, term: Any) -> Optional[int]:
        value = state.solver.model_value(state.constraints, True, term)
        if value is not None and state.proves(term == value):
            return to_signed(value, 32)
        return None

    def devices(self, fp: FinishedPath) -> tuple[int, ...]:
        dev = self.explorer.packet.device
        return tuple(d for d in range(self.parsed.devices) if fp.state.possible(dev == d))

    def fields_read(self, paths: list[ir.CallPath], libraries: list[Library]) -> tuple[str, ...]:
        names: set[str] = set()
        for lib in libraries:
            names |= lib.fields_read
        for p in paths:
            terms = [p.condition] + [a.key for a in p.accesses if a.key is not None]
            terms += [w.value for w in p.writes if w.value is not None]
            if p.verdict.device_term is not None:
                terms.append(p.verdict.device_term)
            for term in terms:
                names |= {s for s in symbols_of(term) if s in self.fields}
        return tuple(sorted(names))


def _state_object(obj: ObjectInfo) -> ir.StateObject:
    return ir.StateObject(obj.name, obj.kind, obj.alloc_index, obj.capacity, obj.size,
                          str(obj.layout) if obj.layout is not None else "", obj.extra, obj.location)


def explore(parsed: ParsedNF) -> tuple[PathSearch, Exploration]:
    """Run nf_init and explore nf_process, returning the stashes (errors are records here)."""
    reset_caches()
    explorer = PathSearch(parsed)
    try:
        explorer.load()
    except RecursionError:
        raise UnsupportedError(f"{parsed.path}: the code is nested too deeply for the analyzer") from None
    except SemanticsError as error:
        raise UnsupportedError(f"{parsed.path}: {error}") from None
    return explorer, explorer.explore()


def analyze_parsed(parsed: ParsedNF) -> ir.Analysis:
    start = time.perf_counter()
    explorer, exploration = explore(parsed)
    if exploration.errored:
        raise exploration.errored[0][1]
    builder = _Builder(parsed, explorer, exploration)
    paths = []
    libraries = []
    for fp in exploration.finished:
        devices = builder.devices(fp)
        if not devices:
            continue
        paths.append(builder.path(len(paths), fp, devices))
        libraries.append(fp.library)
    objects = tuple(_state_object(o) for o in sorted(explorer.objects.values(), key=lambda o: o.alloc_index))
    return ir.Analysis(nf=Path(parsed.path).stem, source=parsed.path, defines=parsed.defines,
                       devices=parsed.devices, objects=objects, paths=tuple(paths),
                       fields_read=builder.fields_read(paths, libraries),
                       seconds=time.perf_counter() - start)


def analyze(path: str | Path, defines: Optional[dict[str, str]] = None) -> ir.Analysis:
    """Every feasible path of the NF's nf_process, with its state accesses, writes and verdict."""
    return analyze_parsed(parse_nf(path, defines))

