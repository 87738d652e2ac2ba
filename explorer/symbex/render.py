"""Z3 terms as readable C-like text over field and result names (``p.ipv4.proto == 6``).

Integer promotions (zero/sign extension) are invisible in C source, so they are invisible here;
a byte swap of a field prints as ``bswap16(p.l4.sport)``; a 0/1 library result tested for truth
prints as ``flows.found#1`` or ``!flows.found#1``.
"""
from __future__ import annotations

from typing import Any, Optional

import z3

from explorer.ir import result_parts
from explorer.symbex.bitvec import ast_id, builtin_call
from explorer.symbex.ctype import StructType
from explorer.symbex.tables import table_read, table_values

_BINARY = {
    z3.Z3_OP_BADD: ("+", 4), z3.Z3_OP_BSUB: ("-", 4), z3.Z3_OP_BMUL: ("*", 5),
    z3.Z3_OP_BUDIV: ("/", 5), z3.Z3_OP_BSDIV: ("/", 5), z3.Z3_OP_BUREM: ("%", 5), z3.Z3_OP_BSREM: ("%", 5),
    z3.Z3_OP_BSMOD: ("%", 5), z3.Z3_OP_BAND: ("&", 1), z3.Z3_OP_BOR: ("|", -1), z3.Z3_OP_BXOR: ("^", 0),
    z3.Z3_OP_BSHL: ("<<", 3), z3.Z3_OP_BLSHR: (">>", 3), z3.Z3_OP_BASHR: (">>", 3),
    z3.Z3_OP_BUDIV_I: ("/", 5), z3.Z3_OP_BSDIV_I: ("/", 5), z3.Z3_OP_BUREM_I: ("%", 5),
    z3.Z3_OP_BSREM_I: ("%", 5),
}
_COMPARE = {
    z3.Z3_OP_ULT: "<", z3.Z3_OP_SLT: "<", z3.Z3_OP_ULEQ: "<=", z3.Z3_OP_SLEQ: "<=",
    z3.Z3_OP_UGT: ">", z3.Z3_OP_SGT: ">", z3.Z3_OP_UGEQ: ">=", z3.Z3_OP_SGEQ: ">=",
}
_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
_FLAG_RESULTS = ("found", "ok")  # 0/1 library results, shown as booleans
MAX_DEPTH = 60


class Renderer:
    """Renders terms; caches by AST id (keeping each term alive so ids stay unique).

    ``layouts`` maps a vector's name to its cell type (None when the analysis never learned it), so
    that the bytes of a member of a borrowed cell print as ``buckets.cell#4.tokens`` whether read
    as a number (little-endian) or copied as bytes (memory order), and a whole cell read as one
    number (``uint32_t *count = nf_vector_borrow(...)``, then ``*count``) as ``counts.cell#3``: a
    cell symbol holds memory order, so that number is its byte swap, which the NF never wrote.
    """

    def __init__(self, layouts: Optional[dict[str, Any]] = None) -> None:
        self._cache: dict[int, tuple[Any, str]] = {}
        self._parts: dict[tuple[str, int, bool], str] = {}  # rendered subterms (conditions share many)
        self._layouts = layouts or {}
        self._depth = 0
        self._cut = 0  # subterms printed as "..." so far: text that has one is not kept

    def _enter(self) -> bool:
        """Whether to render one level deeper (terms folded by unrolled loops can be thousands
        deep: their inner part prints as ``...``)."""
        if self._depth < MAX_DEPTH:
            return True
        self._cut += 1
        return False

    def _remembered(self, kind: str, t: Any, top: bool, render: Any) -> str:
        key = (kind, ast_id(t), top)
        hit = self._parts.get(key)
        if hit is None:
            cut = self._cut
            self._depth += 1
            try:
                hit = render(t, top)
            finally:
                self._depth -= 1
            if self._cut == cut:
                self._parts[key] = hit
        return hit

    def text(self, term: Any) -> str:
        if isinstance(term, bool):
            return "true" if term else "false"
        if isinstance(term, int):
            return _number(term, 64)
        key = ast_id(term)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        text = self._render(term)
        self._cache[key] = (term, text)
        return text

    # -- booleans --------------------------------------------------------------------------
    def _render(self, t: Any) -> str:
        if z3.is_bool(t):
            return self._bool(t)
        return self._bv(t, top=True)

    def _bool(self, t: Any) -> str:
        if not self._enter():
            return "..."
        return self._remembered("bool", t, False, lambda term, _: self._bool_text(term))

    def _bool_text(self, t: Any) -> str:
        if z3.is_true(t):
            return "true"
        if z3.is_false(t):
            return "false"
        kind = t.decl().kind()
        if kind == z3.Z3_OP_AND:
            return " && ".join(self._bool_operand(c, "&&") for c in _pinned_ranges(_flatten(t, kind)))
        if kind == z3.Z3_OP_OR:
            return " || ".join(self._bool_operand(c, "||") for c in _flatten(t, kind))
        if kind == z3.Z3_OP_NOT:
            return self._negate(t.children()[0])
        if kind == z3.Z3_OP_EQ and z3.is_bool(t.children()[0]):
            a, b = t.children()
            return f"({self._bool(a)}) == ({self._bool(b)})"
        if kind in (z3.Z3_OP_EQ, z3.Z3_OP_DISTINCT):
            a, b = t.children()
            return self._compare("==" if kind == z3.Z3_OP_EQ else "!=", a, b)
        if kind in _COMPARE:
            a, b = t.children()
            return self._compare(_COMPARE[kind], a, b)
        if kind == z3.Z3_OP_ITE:
            c, a, b = t.children()
            return f"({self._bool(c)} ? {self._bool(a)} : {self._bool(b)})"
        if kind == z3.Z3_OP_UNINTERPRETED:
            return t.decl().name()
        return str(t)

    def _bool_operand(self, t: Any, context: str) -> str:
        text = self._bool(t)
        kind = t.decl().kind() if z3.is_app(t) else None
        if (context == "&&" and kind == z3.Z3_OP_OR) or (context == "||" and kind == z3.Z3_OP_AND):
            return f"({text})"
        return text

    def _negate(self, t: Any) -> str:
        kind = t.decl().kind()
        if kind == z3.Z3_OP_NOT:
            return self._bool(t.children()[0])
        if kind == z3.Z3_OP_AND:
            parts = _pinned_ranges(_flatten(t, kind))
            if len(parts) == 1:  # a range of one value: x != c
                return self._negate(parts[0])
        if kind == z3.Z3_OP_EQ and not z3.is_bool(t.children()[0]):
            a, b = t.children()
            return self._compare("!=", a, b)
        if kind == z3.Z3_OP_DISTINCT:
            a, b = t.children()
            return self._compare("==", a, b)
        if kind in _COMPARE:
            a, b = t.children()
            return self._compare(_NEGATED[_COMPARE[kind]], a, b)
        return f"!({self._bool(t)})"

    def _compare(self, op: str, a: Any, b: Any) -> str:
        wide = a
        a, b = _strip_ext(a), _strip_ext(b)
        if z3.is_bv_value(a) and not z3.is_bv_value(b):  # constants on the right
            a, b, wide = b, a, b
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if z3.is_bv_value(b) and op in ("==", "!=") and z3.is_app_of(a, z3.Z3_OP_ITE):
            # a constant table's entry compared with a value reads as the NF wrote it
            # (``CLASS[p.ipv4.tos] == 3``), not as the ladder of index ranges its term is
            if table_read(a) is not None:
                return f"{self._side(a)} {op} {self._side(b)}"
            tested = self._table_test(wide, b.as_long(), op == "==") if table_values(a) is not None else None
            tested = tested if tested is not None else self._tested(a, b.as_long(), op == "==")
            if tested is not None:
                return tested
        if z3.is_bv_value(b) and op in ("==", "!="):
            # A wire-order field compared with a converted constant reads as the field and the
            # number the NF wrote (``p.l4.dport == 80``); a cell's number is host order already.
            swapped = _bswap_source(a) if self._member(a) is None else None
            if swapped is not None:
                width = a.size()
                value = int.from_bytes(b.as_long().to_bytes(width // 8, "little"), "big")
                a, b = swapped, z3.BitVecVal(value, width)
            if _is_flag(a) and b.as_long() in (0, 1):
                truthy = (op == "==") == (b.as_long() == 1)
                return self._bv(a) if truthy else "!" + self._bv(a)
        if z3.is_bv_value(b) and _is_address(a):
            return f"{self._bv(a, top=True)} {op} {address(b.as_long())}"
        if z3.is_bv_value(b) and z3.is_const(a) and a.decl().name() in _MACS:
            return f"{a.decl().name()} {op} {mac(b.as_long())}"
        return f"{self._side(a)} {op} {self._side(b)}"

    def _side(self, t: Any) -> str:
        """One side of a comparison; ``&``, ``|`` and ``^`` bind less tightly than a comparison in C,
        so ``p.l4.dport & 0xff00 != 6400`` would read as ``p.l4.dport & (0xff00 != 6400)``: such a
        side is parenthesised (an address prefix, ``p.ipv4.src & 0xffff0000 == 10.0.0.0``, is kept
        as it reads: a dotted address cannot be a truth value)."""
        text = self._bv(t, top=True)
        return f"({text})" if z3.is_app(t) and t.decl().kind() in _BITWISE else text

    def _tested(self, choice: Any, value: int, equal: bool) -> Optional[str]:
        """``choice`` (``c ? x : y`` of two different constants) compared with ``value``, as the
        condition ``c`` or its negation: a C comparison stored in a bool or an int and tested
        (``bool full = n >= 100; if (!full)``) reads ``n < 100``, not ``(n >= 100) == 0``. None
        when ``value`` is neither constant (the comparison is then constant itself, shown whole)."""
        c, x, y = choice.children()
        x, y = _strip_ext(x), _strip_ext(y)
        if z3.is_app_of(x, z3.Z3_OP_ITE) or z3.is_app_of(y, z3.Z3_OP_ITE):
            return self._ladder(choice, value, equal)
        if not (z3.is_bv_value(x) and z3.is_bv_value(y)) or x.as_long() == y.as_long():
            return None
        if value not in (x.as_long(), y.as_long()):
            return None
        if (value == x.as_long()) == equal:
            text = self._bool(c)
            return f"({text})" if z3.is_or(c) or z3.is_and(c) else text  # it may stand beside && or ||
        return self._negate(c)

    def _table_test(self, wide: Any, value: int, equal: bool) -> Optional[str]:
        """A piece of a table read without a name (a byte of an array member, a row of a 2-D table),
        as extended in ``wide``, compared with ``value``: the ranges of indices where the test holds
        or, when fewer, the negated ranges where it fails (``p.ipv4.tos >= 224``, not a ladder)."""
        values, index = table_values(_strip_ext(wide))  # type: ignore[misc]
        holds = _index_runs([(_extended(wide, v) == value) == equal for v in values])
        fails = _index_runs([(_extended(wide, v) == value) != equal for v in values])
        if not holds or not fails:
            return None
        x, last = self._side(_strip_ext(index)), len(values) - 1
        if len(fails) < len(holds):
            text = _ranges_text(x, fails, last)
            return "!" + (text if text.startswith("(") else f"({text})")
        return _ranges_text(x, holds, last)

    def _ladder(self, choice: Any, value: int, equal: bool) -> Optional[str]:
        """A tree of ``?:`` over constants compared with ``value``, as the one way down it that
        ends in ``value``: ``memcmp(eth->src, banned, 6) == 0`` (a ladder of byte tests ending in
        0, -1 or 1) reads ``p.ether.src == 02:00:00:00:00:01``, not the ladder. None when another
        number of leaves holds ``value``, or a leaf is not a constant."""
        ways = _ways(choice, (), [])
        if ways is None:
            return None
        matching = [conds for conds, leaf in ways if leaf == value]
        if len(matching) != 1:
            return None
        held = _joined_bytes(list(matching[0]))
        text = self._bool(held) if equal else self._negate(held)
        return f"({text})" if equal and (z3.is_or(held) or z3.is_and(held)) else text

    # -- bit-vectors -----------------------------------------------------------------------
    def _bv(self, t: Any, top: bool = False) -> str:
        if not self._enter():
            return "..."
        return self._remembered("bv", t, top, self._bv_text)

    def _bv_text(self, t: Any, top: bool) -> str:
        t = _strip_ext(t)
        if z3.is_bv_value(t):
            return _number(t.as_long(), t.size())
        if not z3.is_app(t):
            return str(t)
        table = table_read(t)
        if table is not None:
            return table[0].format(self._bv(table[1], top=True))
        call = builtin_call(t)
        if call is not None:
            return f"{call[0]}({self._bv(call[1], top=True)})"
        member = self._member(t)
        if member is not None:
            return member
        decl = t.decl()
        kind = decl.kind()
        children = t.children()
        if kind == z3.Z3_OP_UNINTERPRETED:
            if not children:
                return decl.name()
            name = decl.name().split("<")[0]
            return f"{name}({', '.join(self._bv(c, top=True) for c in children)})"
        if kind in _BINARY:
            op, prec = _BINARY[kind]
            parts = [_mask(c) if kind in _BITWISE and z3.is_bv_value(c) else self._bv_operand(c, prec)
                     for c in children]
            text = f" {op} ".join(parts)
            return text if top else f"({text})"
        if kind == z3.Z3_OP_BNOT:
            return "~" + self._bv(children[0])
        if kind == z3.Z3_OP_BNEG:
            return "-" + self._bv(children[0])
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = t.params()
            return f"{self._bv(children[0])}[{hi}:{lo}]"
        if kind == z3.Z3_OP_CONCAT:
            source = _bswap_source(t)
            if source is not None:
                unswapped = _swapped_through(source)
                if unswapped is not None:
                    return self._bv(unswapped, top=top)
                return f"bswap{t.size()}({self._bv(source, top=True)})"
            return f"concat({', '.join(self._bv(c, top=True) for c in _flatten(t, kind))})"
        if kind == z3.Z3_OP_ITE:
            c, a, b = children
            if z3.is_bv_value(a) and z3.is_bv_value(b) and a.as_long() == 1 and b.as_long() == 0:
                return f"({self._bool(c)})"
            return f"({self._bool(c)} ? {self._bv(a, top=True)} : {self._bv(b, top=True)})"
        return str(t)

    def field_value(self, field: str, term: Any) -> str:
        """A value written to header field ``field`` (addresses as dotted quads)."""
        if field in ("p.ipv4.src", "p.ipv4.dst") and z3.is_bv_value(z3.simplify(term)):
            return address(z3.simplify(term).as_long())
        return self.text(term)

    def _member(self, t: Any) -> Optional[str]:
        """``obj.cell#n.member`` when ``t`` is exactly one member's bytes of a borrowed cell, or
        ``obj.cell#n`` when it is the whole of a cell that is one integer."""
        if not self._layouts or not z3.is_app(t):
            return None
        pieces = _flatten(t, z3.Z3_OP_CONCAT) if t.decl().kind() == z3.Z3_OP_CONCAT else [t]
        source = None
        memory: list[int] = []  # memory-order byte indices, most significant piece first
        for piece in pieces:
            if z3.is_app(piece) and piece.decl().kind() == z3.Z3_OP_EXTRACT:
                hi, lo = piece.params()
                piece = piece.children()[0]
            elif z3.is_const(piece):
                hi, lo = piece.size() - 1, 0
            else:
                return None
            if not (z3.is_const(piece) and piece.decl().kind() == z3.Z3_OP_UNINTERPRETED) or lo % 8 or (hi + 1) % 8:
                return None
            if source is None:
                source = piece
            elif piece.get_id() != source.get_id():
                return None
            top_byte = source.size() // 8 - 1
            memory.extend(top_byte - b for b in range(hi // 8, lo // 8 - 1, -1))
        name = source.decl().name() if source is not None else ""
        obj, what = result_parts(name)
        if obj not in self._layouts or what != "cell":
            return None
        layout = self._layouts[obj]
        first, count = min(memory), len(memory)
        ascending = memory == list(range(first, first + count))
        if not ascending and memory != list(range(first + count - 1, first - 1, -1)):
            return None
        if not isinstance(layout, StructType):  # one number, or a type never learned: the whole cell
            return name if first == 0 and count == source.size() // 8 else None
        for f in layout.fields:
            if f.offset == first and f.ctype.size == count:
                return f"{name}.{f.name}"
        return None

    def _bv_operand(self, t: Any, prec: int) -> str:
        inner = _strip_ext(t)
        if z3.is_app(inner) and inner.decl().kind() in _BINARY:
            inner_prec = _BINARY[inner.decl().kind()][1]
            text = self._bv(inner, top=True)
            return text if inner_prec > prec and prec >= 4 else f"({text})"
        return self._bv(inner)


def _flatten(t: Any, kind: int) -> list[Any]:
    out = []
    for c in t.children():
        if z3.is_app(c) and c.decl().kind() == kind:
            out.extend(_flatten(c, kind))
        else:
            out.append(c)
    return out


def _extended(t: Any, value: int) -> int:
    """``value`` of the innermost operand of ``t``'s zero and sign extensions, as ``t`` reads it."""
    chain = []
    while z3.is_app(t) and t.decl().kind() in (z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT):
        chain.append(t)
        t = t.children()[0]
    bits = t.size()
    for ext in reversed(chain):
        if ext.decl().kind() == z3.Z3_OP_SIGN_EXT and value >> (bits - 1):
            value |= ((1 << ext.size()) - 1) ^ ((1 << bits) - 1)
        bits = ext.size()
    return value


def _index_runs(marks: list[bool]) -> list[tuple[int, int]]:
    """The runs (first, last) of consecutive indices marked True."""
    runs: list[tuple[int, int]] = []
    for i, marked in enumerate(marks):
        if marked:
            if runs and runs[-1][1] == i - 1:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((i, i))
    return runs


def _ranges_text(x: str, runs: list[tuple[int, int]], last: int) -> str:
    """``x`` within one of ``runs`` (of indices 0 to ``last``), parenthesised unless one comparison."""
    parts = [f"{x} == {lo}" if lo == hi else f"{x} <= {hi}" if lo == 0 else f"{x} >= {lo}" if hi == last
             else f"({x} >= {lo} && {x} <= {hi})" for lo, hi in runs]
    if len(parts) == 1:
        return parts[0]
    return "(" + " || ".join(parts) + ")"


def _strip_ext(t: Any) -> Any:
    while z3.is_app(t) and t.decl().kind() in (z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT):
        t = t.children()[0]
    return t


def _is_flag(t: Any) -> bool:
    if not (z3.is_const(t) and t.decl().kind() == z3.Z3_OP_UNINTERPRETED):
        return False
    name = t.decl().name()
    what = name.rsplit("#", 1)[0].rsplit(".", 1)[-1]
    return "#" in name and what in _FLAG_RESULTS


def _is_address(t: Any) -> bool:
    """An IPv4 address field, or one masked to a prefix (``p.ipv4.src & 0xffffff00``)."""
    if z3.is_app_of(t, z3.Z3_OP_BAND) and t.num_args() == 2 and any(z3.is_bv_value(c) for c in t.children()):
        t = next(c for c in t.children() if not z3.is_bv_value(c))
    return z3.is_const(t) and t.decl().name() in ("p.ipv4.src", "p.ipv4.dst")


_BITWISE = (z3.Z3_OP_BAND, z3.Z3_OP_BOR, z3.Z3_OP_BXOR)


def _mask(value: Any) -> str:
    """A constant operand of ``&``, ``|`` or ``^``: a mask, in hex as C code writes masks (read as
    a number, 0xffffff00 showed as -256)."""
    number = value.as_long()
    return hex(number) if number > 9 else str(number)


def _bswap_source(t: Any) -> Any:
    """``x`` when ``t`` is the byte-reversal of a whole ``x`` (a Concat of its bytes, low first)."""
    if not (z3.is_app(t) and t.decl().kind() == z3.Z3_OP_CONCAT) or t.size() % 8 or t.size() < 16:
        return None
    pieces = []
    for child in _flatten(t, z3.Z3_OP_CONCAT):
        if not (z3.is_app(child) and child.decl().kind() == z3.Z3_OP_EXTRACT):
            return None
        hi, lo = child.params()
        if hi - lo != 7 or lo % 8:
            return None
        pieces.append((child.children()[0], lo))
    source = pieces[0][0]
    if source.size() != t.size():
        return None
    for i, (src, lo) in enumerate(pieces):
        if src.get_id() != source.get_id() or lo != 8 * i:
            return None
    return source


def _swapped_through(t: Any) -> Any:
    """``x & m`` for the byte swap of ``bswap(x) & bswap(m)``, and so for ``|`` and ``^``, or None.
    A mask the NF applies in host order and converts back (``nf_htonl(nf_ntohl(ip->dst_addr) &
    0xffffff00)``), or applies in memory order to a field it loaded as a number (``ip->dst_addr &
    nf_htonl(0xffffff00)``), is a mask on the field as it is on the wire: it printed as
    ``bswap32(bswap32(p.ipv4.dst) & 0xffffff)``."""
    if not (z3.is_app(t) and t.decl().kind() in _BITWISE):
        return None
    width, operands = t.size(), []
    for child in _flatten(t, t.decl().kind()):
        if z3.is_bv_value(child):
            swapped = int.from_bytes(child.as_long().to_bytes(width // 8, "little"), "big")
            operands.append(z3.BitVecVal(swapped, width))
            continue
        source = _bswap_source(child)
        if source is None:
            return None
        operands.append(source)
    if all(z3.is_bv_value(o) for o in operands):
        return None
    kind, ones = t.decl().kind(), (1 << width) - 1
    if kind == z3.Z3_OP_BAND and any(z3.is_bv_value(o) and o.as_long() == 0 for o in operands):
        return z3.BitVecVal(0, width)  # a rule's /0 mask: the key holds nothing of the field
    neutral = ones if kind == z3.Z3_OP_BAND else 0
    operands = [o for o in operands if not (z3.is_bv_value(o) and o.as_long() == neutral)]
    combine = {z3.Z3_OP_BAND: lambda a, b: a & b, z3.Z3_OP_BOR: lambda a, b: a | b,
               z3.Z3_OP_BXOR: lambda a, b: a ^ b}[kind]
    out = operands[0]
    for operand in operands[1:]:
        out = combine(out, operand)
    return out


_LOWER = {z3.Z3_OP_UGEQ: "u", z3.Z3_OP_SGEQ: "s"}
_UPPER = {z3.Z3_OP_ULEQ: "u", z3.Z3_OP_SLEQ: "s"}


def _bound(t: Any, bounds: dict) -> Optional[tuple[Any, int, str]]:
    """``x >= c`` (or ``c <= x``) as (x, c, signedness) when ``bounds`` names its operator."""
    if not z3.is_app(t) or t.num_args() != 2:
        return None
    kind = t.decl().kind()
    a, b = t.arg(0), t.arg(1)
    if kind in bounds and z3.is_bv_value(b):
        return a, b.as_long(), bounds[kind]
    mirrored = {z3.Z3_OP_UGEQ: z3.Z3_OP_ULEQ, z3.Z3_OP_SGEQ: z3.Z3_OP_SLEQ, z3.Z3_OP_ULEQ: z3.Z3_OP_UGEQ,
                z3.Z3_OP_SLEQ: z3.Z3_OP_SGEQ}.get(kind)
    if mirrored in bounds and z3.is_bv_value(a):
        return b, a.as_long(), bounds[mirrored]
    return None


def _pinned_ranges(conjuncts: list) -> list:
    """``x >= c && x <= c`` (a rule's one-port range) as ``x == c``."""
    out, i = [], 0
    while i < len(conjuncts):
        low = _bound(conjuncts[i], _LOWER)
        high = _bound(conjuncts[i + 1], _UPPER) if i + 1 < len(conjuncts) else None
        if low is not None and high is not None and low[1:] == high[1:] and low[0].eq(high[0]):
            out.append(low[0] == z3.BitVecVal(low[1], low[0].size()))
            i += 2
            continue
        out.append(conjuncts[i])
        i += 1
    return out


_MACS = ("p.ether.src", "p.ether.dst")
MAX_WAYS = 64  # leaves of a ?: tree read as the way to one of them (a memcmp of 16 bytes has 33)


def _ways(t: Any, conds: tuple, out: list) -> Optional[list]:
    """The ways down a tree of ``?:`` to its constant leaves: (conditions taken, leaf value)."""
    t = _strip_ext(t)
    if z3.is_bv_value(t):
        out.append((conds, t.as_long()))
        return out if len(out) <= MAX_WAYS else None
    if not z3.is_app_of(t, z3.Z3_OP_ITE):
        return None
    c, x, y = t.children()
    if _ways(x, conds + (c,), out) is None:
        return None
    return _ways(y, conds + (z3.Not(c),), out)


def _joined_bytes(conds: list) -> Any:
    """``x[47:40] == 2 && ... && x[7:0] == 1``, every byte of ``x`` once, as ``x == 0x20000000001``;
    other conditions as their conjunction."""
    parts: dict[int, int] = {}
    source = None
    for cond in conds:
        if not (z3.is_app_of(cond, z3.Z3_OP_EQ) and z3.is_bv(cond.arg(0))):
            break
        a, b = cond.arg(0), cond.arg(1)
        if z3.is_bv_value(a):
            a, b = b, a
        if not (z3.is_bv_value(b) and z3.is_app_of(a, z3.Z3_OP_EXTRACT) and z3.is_const(a.arg(0))):
            break
        if source is not None and a.arg(0).get_id() != source.get_id():
            break
        source = a.arg(0)
        hi, lo = a.params()
        parts[lo] = b.as_long()
        if hi - lo + 1 != 8:
            break
    else:
        if source is not None and len(conds) == len(parts) and sorted(parts) == list(range(0, source.size(), 8)):
            return source == sum(v << lo for lo, v in parts.items())
    return conds[0] if len(conds) == 1 else z3.And(*conds)


def mac(value: int) -> str:
    """A MAC address as six hex bytes."""
    return ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -1, -8))


def _number(value: int, bits: int) -> str:
    """Numbers in decimal (small negatives of ints too); masks (0x3fff) and values of more than 32
    bits (MAC addresses, key bytes) in hex."""
    if bits >= 32 and value >> (bits - 1):
        negative = value - (1 << bits)
        if negative >= -65536:
            return str(negative)
    mask = value >= 0xFFF and (value + 1) & value == 0
    return hex(value) if mask or value >= 1 << 32 else str(value)


def address(value: int) -> str:
    """A host-order IPv4 address as a dotted quad."""
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))
