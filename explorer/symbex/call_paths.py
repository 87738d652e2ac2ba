"""Finished paths as ``ir`` values: each path's condition, accesses, writes and verdict as terms
with their readable text, and the packet fields the NF reads."""
from __future__ import annotations

from typing import Any, Iterable, Optional

import z3

from explorer import ir
from explorer.symbex.bitvec import bv, combine, combine_be, conjoined, symbol_names, symbols_of
from explorer.symbex.conjuncts import Conjuncts
from explorer.symbex.ctype import IntType, StructType
from explorer.symbex.effects import Effects, ObjectInfo, RawAccess
from explorer.symbex.fixed_values import DEVICE, FixedValues
from explorer.symbex.render import Renderer, address
from explorer.symbex.state import PathState
from explorer.symbex.values import to_signed
from explorer.wire import PACKET_FIELDS

FIELDS = frozenset(f.name for f in PACKET_FIELDS)


class CallPathBuilder:
    def __init__(self, source: str, objects: Iterable[ObjectInfo], converted: Iterable[tuple[int, int]] = ()):
        """``converted``: (bytes, value) of the constants the NF passed to nf_htons / nf_htonl."""
        self.source = source
        self.render = Renderer({o.name: o.layout for o in objects if o.kind == "vector"})
        self.converted = frozenset(converted)
        self.conjuncts = Conjuncts()  # what a path's text shows of its decisions

    def key_text(self, raw: RawAccess, fixed: FixedValues) -> str:
        if raw.key is None:
            return ""
        layout = raw.key_layout
        if raw.key_cells is not None and isinstance(layout, StructType) and layout.size == len(raw.key_cells):
            # A union's members are the same bytes: shown once, as its first widest member.
            fields = (max(layout.fields, key=lambda f: f.ctype.size),) if layout.union and layout.fields else layout.fields
            parts = []
            for f in fields:
                cells = raw.key_cells[f.offset:f.offset + f.ctype.size]
                if isinstance(f.ctype, IntType):
                    parts.append(f"{f.name}: {self._number_text(cells, fixed)}")
                else:
                    parts.append(f"{f.name}: {self.render.text(fixed.simplify(bv(combine_be(cells), 8 * f.ctype.size)))}")
            return "{" + ", ".join(parts) + "}"
        if raw.key_cells is not None and isinstance(layout, IntType) and layout.size == len(raw.key_cells):
            return self._number_text(raw.key_cells, fixed)
        return self.render.text(fixed.simplify(raw.key))

    def _number_text(self, cells: tuple, fixed: FixedValues) -> str:
        """An integer key field as the NF wrote it: a constant it converted to network order as the
        address (dotted quad) or the host-order number it converted; anything else by ``_as_written``."""
        if all(isinstance(c, int) for c in cells):
            wire = int.from_bytes(bytes(cells), "big")  # memory order: what nf_htonl's argument was
            if (len(cells), wire) in self.converted and len(cells) in (2, 4):
                return address(wire) if len(cells) == 4 else str(wire)
        return self.render.text(fixed.simplify(bv(_as_written(cells), 8 * len(cells))))

    def path(self, index: int, state: PathState, effects: Effects, verdict: ir.Verdict,
             writes: tuple[ir.FieldWrite, ...], devices: tuple[int, ...]) -> ir.CallPath:
        condition = conjoined(state.constraints) if state.constraints else z3.BoolVal(True)
        shown = self.conjuncts.shown([d.cond for d in state.decisions])
        text = " && ".join(self._wrap(d, cond) for d, cond in zip(state.decisions, shown)
                           if cond is not None or d.label is not None) or "true"
        fixed = FixedValues(state, devices)  # keys are simplified under the path condition
        accesses = tuple(ir.Access(raw.object, raw.op, raw.call, fixed.simplify(raw.key), self.key_text(raw, fixed),
                                   raw.results, raw.location or ir.Location(self.source, 0, 0), raw.related,
                                   raw.key is not None and DEVICE in symbols_of(raw.key), fixed.simplify(raw.value),
                                   _time_term(raw.time, fixed))
                         for raw in effects.accesses)
        writes = tuple(_simplified_write(w, fixed, self.render) for w in writes)
        if verdict.kind == "forward" and verdict.device is None:
            term = fixed.simplify(verdict.device_term)
            single = self._single_value(state, term)
            verdict = ir.Verdict("forward", single, "" if single is not None else self.render.text(term),
                                 None if single is not None else term)
        return ir.CallPath(index, condition, text, devices, accesses, writes, verdict)

    def _wrap(self, decision: Any, cond: Any) -> str:
        text = decision.label if decision.label is not None else self.render.text(cond)
        return f"({text})" if decision.label is None and z3.is_or(cond) else text

    @staticmethod
    def _single_value(state: PathState, term: Any) -> Optional[int]:
        value = state.solver.model_value(state.constraints, True, term)
        if value is not None and state.proves(term == value):
            return to_signed(value, 32)
        return None


def _as_written(cells: tuple) -> Any:
    """An integer key field's value in the byte order the code wrote it in (byte arrays keep memory
    order, big-endian, as they are compared). A packet field copied as it is on the wire reads
    big-endian (``p.l4.sport``), a host number (the device, a counter, ``nf_ntohs()`` of a field)
    little-endian; read the other way, each shows byte-swapped (``dev: 256`` for device 1). The
    reading that picks fewer single bytes out of wider values wins, big-endian on a tie; a constant
    reads as the smaller of its two values (code mostly writes small numbers, in either order)."""
    wire, host = combine_be(cells), combine(cells)
    if isinstance(wire, int) and isinstance(host, int):
        return min(wire, host)
    bits = 8 * len(cells)
    return host if _byte_picks(z3.simplify(bv(host, bits))) < _byte_picks(z3.simplify(bv(wire, bits))) else wire


def _byte_picks(term: z3.ExprRef) -> int:
    """How many distinct subterms of ``term`` take one byte out of a wider value (a byte swap
    takes them all)."""
    seen, picks, stack = set(), 0, [term]
    while stack:
        t = stack.pop()
        if t.get_id() in seen:
            continue
        seen.add(t.get_id())
        if z3.is_app_of(t, z3.Z3_OP_EXTRACT) and t.size() == 8 and t.arg(0).size() > 8:
            picks += 1
        stack.extend(t.children())
    return picks


def _simplified_write(write: ir.FieldWrite, fixed: FixedValues, render: Renderer) -> ir.FieldWrite:
    value = fixed.simplify(write.value)
    return ir.FieldWrite(write.field, write.value_text or render.field_value(write.field, value), value, write.location)


def fields_read(paths: Iterable[ir.CallPath], effects: Iterable[Effects]) -> tuple[str, ...]:
    """The packet fields nf_process reads: loaded from a header, or in a condition, key, write or verdict."""
    names: set[str] = set()
    for e in effects:
        names |= e.fields_read
    terms: list[Any] = []
    for p in paths:
        terms += [p.condition] + [a.key for a in p.accesses if a.key is not None]
        terms += [w.value for w in p.writes if w.value is not None]
        if p.verdict.device_term is not None:
            terms.append(p.verdict.device_term)
    names |= {s for s in symbol_names(terms) if s in FIELDS}
    return tuple(sorted(names))


def state_object(obj: ObjectInfo) -> ir.StateObject:
    # A map nf_init puts entries in says how many: a hit in a map that is never filled is no path.
    # A dchain says how many indices nf_init took: every core's nf_init takes them again, so such a
    # dchain cannot be divided among the cores (codegen.planning.per_core_allocated).
    filled = (("init_entries", len(obj.entries)),) if obj.kind in ("map", "dchain") and obj.entries else ()
    # A vector says how many cells nf_init set to something other than zeros: those do not hold
    # the zeros of a fresh vector (the witness search must not assume them).
    cells = sum(1 for c in obj.entries.values() if any(c)) if obj.kind == "vector" else 0
    filled += (("init_cells", cells),) if cells else ()
    return ir.StateObject(obj.name, obj.kind, obj.alloc_index, obj.capacity, obj.size,
                          str(obj.layout) if obj.layout is not None else "", obj.extra + filled, obj.location)


def _time_term(time: Any, fixed: FixedValues) -> Optional[z3.ExprRef]:
    """An expiry's time as a 64-bit term (a constant one included), simplified under the path."""
    if time is None:
        return None
    return z3.BitVecVal(time, 64) if isinstance(time, int) else fixed.simplify(time)
