"""The NF's own terms for what the engine found, for every sentence nfx prints about it.

A place is the NF's source line and the C call on it (``fw.c:101 `nf_map_get(flows, &key,
&index)```), never an engine path and its helper (``path 3 nf_map_get at /abs/fw.c:101:7``); a
packet field is named as the explorer shows it (``src_ip``); a value read from state is named by its
object, what the call returned and the line of that call (``chain's index (nat.c:139)``), never by
the engine's term (``chain.index#3[15:0]``). The engine's own terms stay in what it records
(constraint origins, ``key_text``) for whoever wants them.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import z3

from explorer.ir import Access, CallPath, Location, result_parts
from explorer.symbex.bitvec import symbols_of
from explorer.wire import PACKET_FIELDS

DEVICE = "p.device"  # the input device's symbol (explorer.symbex.fixed_values)

# Packet fields by the names people use; RSS fields by the names the sharding table shows.
FIELD_NAMES = {f.name: f.rss_name or f.name.removeprefix("p.").replace(".", "_") for f in PACKET_FIELDS}
FIELD_NAMES.update({"p.ipv4.proto": "protocol", "p.ether.src": "src_mac", "p.ether.dst": "dst_mac",
                    "p.ether.type": "ether_type"})

# z3 operations that keep a value's bits as they are (a narrower or wider copy of it)
_COPIES = frozenset({z3.Z3_OP_EXTRACT, z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT})


@functools.lru_cache(maxsize=64)
def _lines(file: str) -> tuple[str, ...]:
    try:
        return tuple(Path(file).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def call_text(file: str, line: int, col: int, limit: int = 400) -> str:
    """The C call that starts at ``file:line:col``, up to its closing parenthesis (it may span lines;
    parentheses inside string and character literals do not count), on one line; "" when unknown."""
    lines = _lines(file)
    if not 1 <= line <= len(lines):
        return ""
    text = "\n".join(lines[line - 1:line + 9])[max(col - 1, 0):]
    depth, quote, escaped, out = 0, "", False, []
    for char in text[:limit]:
        out.append(char)
        if quote:
            escaped = not escaped and char == "\\"
            if char == quote and not escaped:
                quote = ""
            continue
        if char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return " ".join("".join(out).split())
    return ""


def where(location: Mapping[str, Any] | Any) -> str:
    """``fw.c:101`` for a location (a ``Location`` or its dict)."""
    file = location["file"] if isinstance(location, Mapping) else location.file
    line = location["line"] if isinstance(location, Mapping) else location.line
    return f"{Path(file).name}:{line}"


def site(location: Location, call: str) -> str:
    """``fw.c:101 `nf_map_get(flows, &key, &index)```: a state call where the NF wrote it (the bare
    function name when the source cannot be read)."""
    return f"{where(location)} `{call_text(location.file, location.line, location.col) or call}`"


def access_site(access: Access) -> str:
    return site(access.location, access.call)


def in_words(text: str) -> str:
    """Engine text with packet-field symbols replaced by the names people use (``p.l4.dport ==
    9999`` -> ``dst_port == 9999``); longest symbols first, so no name is replaced inside another."""
    for symbol in sorted(FIELD_NAMES, key=len, reverse=True):
        text = text.replace(symbol, FIELD_NAMES[symbol])
    return text


def field_name(symbol: str) -> str:
    """``p.ipv4.src`` -> ``src_ip``; a value from state (``flows.value#2``) -> ``a value from flows``."""
    if symbol in FIELD_NAMES:
        return FIELD_NAMES[symbol]
    obj, kind = result_parts(symbol)
    if obj:
        return f"{'an index' if kind == 'index' else 'a value'} from {obj}"
    return symbol


def fields_words(symbols: Sequence[str]) -> str:
    """Packet-field symbols by their names, in the order given: ``src_mac, dst_port``."""
    return ", ".join(FIELD_NAMES.get(s, s) for s in symbols)


def possessive(name: str) -> str:
    """``flows'``, ``chain's``."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def state_value(symbol: str, path: Optional[CallPath] = None) -> str:
    """A value a state call returned, by its object and what it is, and the call's line when
    ``path`` holds it: ``chain.index#3`` -> ``chain's index (nat.c:139)``, ``infos.cell#6`` ->
    ``infos' cell (cell_memo.c:30)``."""
    head, hash_, tail = symbol.partition("#")
    number, _, member = tail.partition(".")
    obj, _, what = head.rpartition(".")
    if not (hash_ and obj and number.isdigit()):
        return field_name(symbol)
    base = f"{head}#{number}"
    text = f"{member} of {possessive(obj)} {what}" if member else f"{possessive(obj)} {what}"
    producer = next((a for a in (path.accesses if path is not None else ()) if base in a.results), None)
    return f"{text} ({where(producer.location)})" if producer is not None else text


def bare_symbol(term: Any) -> Optional[str]:
    """The one symbol ``term`` copies bits of unchanged (narrowed, widened or zero-padded), or None."""
    while z3.is_app(term) and term.decl().kind() in _COPIES:
        term = term.arg(0)
    if z3.is_app(term) and term.decl().kind() == z3.Z3_OP_CONCAT:
        rest = [t for t in term.children() if not (z3.is_bv_value(t) and t.as_long() == 0)]
        return bare_symbol(rest[0]) if len(rest) == 1 else None
    if z3.is_const(term) and term.decl().kind() == z3.Z3_OP_UNINTERPRETED:
        return term.decl().name()
    return None


def _low_bits(term: Any) -> Optional[int]:
    """How many low bits of its symbol a ``bare_symbol`` term keeps, when it narrows it (None when
    it keeps them all); 0 when what it keeps is not the low bits."""
    narrowest = None
    while z3.is_app(term) and term.decl().kind() in _COPIES | {z3.Z3_OP_CONCAT}:
        if term.decl().kind() == z3.Z3_OP_CONCAT:
            term = next(t for t in term.children() if not (z3.is_bv_value(t) and t.as_long() == 0))
            continue
        if term.decl().kind() == z3.Z3_OP_EXTRACT and term.size() < term.arg(0).size():
            low = term.size() if term.params()[1] == 0 else 0  # 0: bits other than the low ones
            narrowest = low if narrowest is None else min(narrowest, low)
        term = term.arg(0)
    return narrowest


def value_words(term: Any, path: Optional[CallPath] = None) -> str:
    """A key or stored value in the NF's terms: a packet field by its name, a value from state by
    its object and call (``state_value``), the input device; ``a value computed from ...`` for
    anything the NF computed from them; "a constant" for a value no packet or state decides."""
    if term is None:
        return "no key"
    symbols = sorted(symbols_of(term))
    if not symbols:
        return "a constant"

    def name(symbol: str) -> str:
        if symbol == DEVICE:
            return "the input device"
        return FIELD_NAMES[symbol] if symbol in FIELD_NAMES else state_value(symbol, path)

    bare = bare_symbol(term)
    if bare is not None:
        low = _low_bits(term)
        if low is None:
            return name(bare)
        return f"the low {low} bits of {name(bare)}" if low else f"part of {name(bare)}"
    names = list(dict.fromkeys(name(s) for s in symbols))
    return "a value computed from " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])


def key_words(access: Access, path: Optional[CallPath] = None) -> str:
    """``key_words`` of an access: its key by ``value_words``, except a constant, which is shown as
    the NF wrote it when it is one number (``16``) and as "a constant key" otherwise (a struct
    built from constants)."""
    if access.key is not None and not symbols_of(access.key):
        text = access.key_text
        return text if text.isdigit() else "a constant key"
    return value_words(access.key, path)


def uses_key(words: str) -> str:
    """``uses key 16``, ``uses cht's backend (lb.c:203) as its key``, ``uses a key built from
    constants``: ``key_words`` after a verb."""
    if words == "a constant key":
        return "uses a key built from constants"
    return f"uses key {words}" if words.isdigit() else f"uses {words} as its key"
