"""Finished paths as ``ir`` values: each path's condition, accesses, writes and verdict as terms
with their readable text, and the packet fields the NF reads."""
from __future__ import annotations

from typing import Any, Iterable, Optional

import z3

from explorer import ir
from explorer.symbex.bitvec import (applications, ast_id, bv, combine, combine_be, conjoined, constants_of,
                                    disjoined, given, is_and, is_eq, is_false, is_not, is_or, is_true, negated,
                                    symbol_names, symbols_of)
from explorer.symbex.conjuncts import Conjuncts
from explorer.symbex.ctype import IntType, StructType
from explorer.symbex.effects import Effects, ObjectInfo, RawAccess
from explorer.symbex.fixed_values import DEVICE, FixedValues
from explorer.symbex.memory import cell_key
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
        # a key field's reading by its cells (``cell_key``): every path of a flow table has the same
        # key cells, and choosing their byte order simplifies and walks two terms
        self._written: dict[tuple, Any] = {}
        # the path being built: the AST ids of its decisions, and its device when it has one
        self._known: set[int] = set()
        self._device: Optional[int] = None
        self._on_device: dict[tuple[int, int], tuple[Any, Optional[bool]]] = {}  # (cond id, device) -> truth
        self._ways_texts: dict[tuple, tuple[Any, str]] = {}
        self._ids: dict[int, tuple[Any, frozenset[int]]] = {}
        self._device_tests: dict[tuple, tuple[Any, Any]] = {}  # (cond id, device, top) -> (cond, shown)
        self._stated = False  # whether the path's own conjuncts test its one device alone
        self._states: dict[int, tuple[Any, bool]] = {}  # cond id -> (cond, _states_device(cond))
        self._negations: dict[int, tuple[Any, Any, int]] = {}
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
        key = tuple(cell_key(c) for c in cells)
        written = self._written.get(key)
        if written is None:
            written = self._written[key] = (cells, bv(_as_written(cells), 8 * len(cells)))  # cells: ids stay theirs
        return self.render.text(fixed.simplify(written[1]))

    def path(self, index: int, state: PathState, effects: Effects, verdict: ir.Verdict,
             writes: tuple[ir.FieldWrite, ...], devices: tuple[int, ...]) -> ir.CallPath:
        condition = conjoined(state.constraints) if state.constraints else z3.BoolVal(True)
        self._known = {ast_id(d.cond) for d in state.decisions if d.ways is None}
        self._device = devices[0] if len(devices) == 1 else None
        self._stated = self._device is not None and any(self._states_device(d.cond) for d in state.decisions
                                                        if d.ways is None)
        shown = self.conjuncts.shown([self._for_device(d.cond, top=True) for d in state.decisions])
        texts = (self._wrap(d, cond) for d, cond in zip(state.decisions, shown)
                 if cond is not None or d.label is not None)
        text = " && ".join(t for t in texts if t != "true") or "true"
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

    def _wrap(self, decision: Any, cond: Any = None) -> str:
        if decision.ways is not None:
            # paths share their merged decisions: the text depends only on the path's device and on
            # which of the way's decisions (or their negations) are the path's own
            key = (id(decision), self._device, frozenset(self._known & self._ids_in(decision)))
            hit = self._ways_texts.get(key)
            if hit is None:
                hit = self._ways_texts[key] = (decision, self._ways(decision))  # keeps the id its own
            return hit[1]
        cond = self._for_device(decision.cond) if cond is None else cond
        text = decision.label if decision.label is not None else self.render.text(cond)
        return f"({text})" if decision.label is None and is_or(cond) else text

    def _for_device(self, cond: Any, top: bool = False) -> Any:
        """``cond`` as shown on a path of one device that its text states (a test of the device alone
        among the path's conjuncts): its other tests of the device decided, ``!(p.device == 1 && x)``
        reading ``!x`` on device 1. ``top``: a decision of the path itself, whose conjuncts that test the
        device alone stay (they state it). A path whose text never states its device keeps them all."""
        if self._device is None or not self._stated:
            return cond
        key = (ast_id(cond), self._device, top)
        hit = self._device_tests.get(key)
        if hit is None:
            names = constants_of(cond)[0]
            device = names.get(DEVICE)
            shown = cond if device is None or len(names) == 1 else _device_decided(
                cond, device, self._device, _CONJUNCT if top else None)
            hit = self._device_tests[key] = (cond, shown)
        return hit[1]

    def _states_device(self, cond: Any) -> bool:
        """``_states_device(cond)``, memoized: the paths of an NF share most of their decisions."""
        hit = self._states.get(ast_id(cond))
        if hit is None:
            hit = self._states[ast_id(cond)] = (cond, _states_device(cond))  # keeps the id its own
        return hit[1]

    def _ids_in(self, decision: Any) -> frozenset[int]:
        """The AST ids of the decisions in a merged decision's ways, and of their negations."""
        hit = self._ids.get(id(decision))
        if hit is None:
            ids: set[int] = set()
            for way in decision.ways:
                for d in way:
                    ids |= self._ids_in(d) if d.ways is not None else {ast_id(d.cond), self._negation_id(d.cond)}
            hit = self._ids[id(decision)] = (decision, frozenset(ids))
        return hit[1]

    def _negation_id(self, cond: Any) -> int:
        """The AST id of ``cond``'s negation (Z3 shares equal terms, so ``!c`` built twice is one id)."""
        key = ast_id(cond)
        hit = self._negations.get(key)
        if hit is None:
            negation = cond.arg(0) if is_not(cond) else negated(cond)
            hit = self._negations[key] = (cond, negation, ast_id(negation))  # keeps both ids their own
        return hit[2]

    def _holds(self, decision: Any) -> Optional[bool]:
        """Whether a decision of a way is one of the path's own decisions (True), contradicts one or
        the path's one device (False), or neither (None)."""
        if decision.ways is not None:
            return None
        cond = decision.cond
        if ast_id(cond) in self._known:
            return True
        if self._negation_id(cond) in self._known:
            return False
        if self._device is None:
            return None
        key = (ast_id(cond), self._device)
        if key not in self._on_device:
            device = constants_of(cond)[0].get(DEVICE)
            value = None
            if device is not None:
                value = given(cond, [(device, self._device)])
            self._on_device[key] = (cond, None if value is None or not z3.is_bool(value) or
                                    not (is_true(value) or is_false(value)) else is_true(value))
        return self._on_device[key][1]

    def _ways(self, decision: Any) -> str:
        """A merged group's condition as the ways through its statement, with their labels."""
        text, disjunction = self._either(decision.ways)
        if decision.negated:
            return f"!({text})"
        return f"({text})" if disjunction else text

    def _either(self, ways: tuple) -> tuple[str, bool]:
        """Ways (each a tuple of decisions) as one disjunction, with the leading decisions several share
        taken out, as ``merging._factored`` builds the condition: ``a || (!a && (b || (!b && c)))``;
        and whether the text is a disjunction (a conjunction needs no parentheses in one)."""
        # the path's own decisions hold: a way that contradicts one of them adds nothing, and a
        # decision of a way that is one of them need not be shown again (a rule loop merged over both
        # devices, on a path that later takes p.device != 0, shows only the other device's rules)
        ways = tuple(tuple(d for d in way if self._holds(d) is not True) for way in ways
                     if not any(self._holds(d) is False for d in way))
        if not ways:
            return "false", False
        ways = self._absorbed(ways)
        if any(not way for way in ways):
            return "true", False
        alone = {ast_id(way[0].cond): way[0].cond for way in ways if len(way) == 1 and way[0].ways is None}
        if any(self._negation_id(cond) in alone for cond in alone.values()):
            return "true", False  # a way and its opposite, once the path's own decisions are left out
        by_first: dict[tuple, list[tuple]] = {}
        for way in ways:
            by_first.setdefault((ast_id(way[0].cond), way[0].label), []).append(way)
        parts = []
        for members in by_first.values():
            if len(members) == 1:
                texts = [self._wrap(d) for d in members[0]]
            else:
                rest, disjunction = self._either(tuple(m[1:] for m in members))
                texts = [self._wrap(members[0][0])]
                if rest != "true":
                    texts.append(f"({rest})" if disjunction else rest)
            parts.append(" && ".join(texts))
        if len(parts) == 1:
            return parts[0], False
        return " || ".join(f"({p})" if " && " in p else p for p in parts), True

    def _absorbed(self, ways: tuple) -> tuple:
        """The ways with what a switch's case makes redundant left out. Each case's way is its own
        label's test alone (``state.choose_case``), the default's the negations of them all: beside
        a way ``x == c``, another way's ``x != c`` is left out (where ``x == c`` fails, it holds), and
        a way ``x == c`` is left out beside one of ``x != d`` tests alone (``d`` other than ``c``),
        which it implies. A case that falls through to the default reads ``p.ipv4.proto != 6``, not
        ``(p.ipv4.proto != 6 && p.ipv4.proto != 17) || p.ipv4.proto == 17``."""
        alone = {ast_id(way[0].cond) for way in ways if len(way) == 1 and way[0].case}
        if not alone:
            return ways
        ways = tuple(way if len(way) == 1 else tuple(d for d in way if not d.case or
                                                      self._negation_id(d.cond) not in alone) for way in ways)
        unequal: dict[int, set[int]] = {}  # x -> the constants c of the ways of "x != c" cases alone
        for way in ways:
            tests = [_tested_value(d.cond) if d.case else None for d in way]
            if way and all(t is not None and not t[2] for t in tests) and len({t[0] for t in tests}) == 1:
                unequal.setdefault(tests[0][0], set()).update(t[1] for t in tests)  # type: ignore[index]

        def implied(way: tuple) -> bool:
            test = _tested_value(way[0].cond) if len(way) == 1 and way[0].case else None
            return test is not None and test[2] and test[0] in unequal and test[1] not in unequal[test[0]]

        return tuple(way for way in ways if not implied(way)) if unequal else ways

    @staticmethod
    def _single_value(state: PathState, term: Any) -> Optional[int]:
        value = state.solver.model_value(state.constraints, True, term)
        if value is not None and state.proves(term == value):
            return to_signed(value, 32)
        return None


# Where a test stands in a path's condition (``_device_decided``): a conjunct of the path (a decision,
# an operand of its top-level &&s), the negation of one (an operand of a || that a conjunct's ! negates:
# ``!(p.device != 0 || x)`` is ``p.device == 0 && !x``), or inside (None).
_CONJUNCT, _NEGATED_CONJUNCT = "conjunct", "negated"


def _operand_place(t: Any, place: Optional[str]) -> Optional[str]:
    """Where the operands of ``t`` (a ``&&``, ``||`` or ``!``) stand, ``t`` standing at ``place``."""
    if is_and(t):
        return _CONJUNCT if place == _CONJUNCT else None
    if is_or(t):
        return _NEGATED_CONJUNCT if place == _NEGATED_CONJUNCT else None
    return {_CONJUNCT: _NEGATED_CONJUNCT, _NEGATED_CONJUNCT: _CONJUNCT}.get(place)  # type: ignore[arg-type]


def _device_alone(t: Any) -> bool:
    names = constants_of(t)[0]
    return len(names) == 1 and DEVICE in names


def _states_device(cond: Any, place: Optional[str] = _CONJUNCT) -> bool:
    """Whether a decision has a conjunct (or a negated one) that tests the device alone."""
    if is_and(cond) or is_or(cond) or is_not(cond):
        inner = _operand_place(cond, place)
        return inner is not None and any(_states_device(c, inner) for c in cond.children())
    return place is not None and _device_alone(cond)


def _device_decided(t: Any, device: Any, value: int, place: Optional[str]) -> Any:
    """``t`` with its tests of ``device`` alone replaced by their truth when the device is ``value``
    (those that are conjuncts of the path, at ``place``, stay) and the operators they decide left out;
    ``t`` itself when it has none."""
    if is_and(t) or is_or(t):
        conjunction = is_and(t)
        children = t.children()
        kept = []
        for child in children:
            part = _device_decided(child, device, value, _operand_place(t, place))
            if is_true(part) if conjunction else is_false(part):
                continue  # true in a conjunction, false in a disjunction: adds nothing
            if is_false(part) if conjunction else is_true(part):
                return part
            kept.append(part)
        if len(kept) == len(children) and all(k is c for k, c in zip(kept, children)):
            return t
        if not kept:
            return z3.BoolVal(conjunction)
        return kept[0] if len(kept) == 1 else (conjoined if conjunction else disjoined)(kept)
    if is_not(t):
        inner = t.arg(0)
        part = _device_decided(inner, device, value, _operand_place(t, place))
        if part is inner:
            return t
        return z3.BoolVal(is_false(part)) if is_true(part) or is_false(part) else negated(part)
    if place is None and _device_alone(t):
        truth = given(t, [(device, value)])
        if is_true(truth) or is_false(truth):
            return truth
    return t


def _tested_value(cond: Any) -> Optional[tuple[int, int, bool]]:
    """(the AST id of ``x``, ``c``, True) for ``x == c`` with ``c`` a constant, (..., False) for its
    negation; None for any other condition."""
    equal = True
    if is_not(cond):
        cond, equal = cond.arg(0), False
    if not is_eq(cond) or not z3.is_bv(cond.arg(0)):
        return None
    a, b = cond.arg(0), cond.arg(1)
    if z3.is_bv_value(a):
        a, b = b, a
    if not z3.is_bv_value(b) or z3.is_bv_value(a):
        return None
    return ast_id(a), b.as_long(), equal


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
    return sum(1 for ctx, node, app, count in applications([term])
               if count == 1 and z3.Z3_get_decl_kind(ctx, z3.Z3_get_app_decl(ctx, app)) == z3.Z3_OP_EXTRACT
               and _bits(ctx, node) == 8 and _bits(ctx, z3.Z3_get_app_arg(ctx, app, 0)) > 8)


def _bits(ctx: Any, node: Any) -> int:
    return z3.Z3_get_bv_sort_size(ctx, z3.Z3_get_sort(ctx, node))


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
