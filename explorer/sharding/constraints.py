"""Maestro's sharding constraints, derived from an NF's call paths.

For a state object that packets write, any two keyed accesses (from the same or different paths,
with each path's input device) relate two packets p1 and p2: if their keys are equal they touch the
same entry, so they must reach the same core. ``k1(p1) == k2(p2)`` forces some packet-field bits equal
(``keybits``); the hash may depend only on those, so each pair of accesses becomes a
``PairConstraint`` over the four RSS fields.

Keys fall in three classes:
* packet: the key mentions packet fields; it yields pair constraints;
* follows: the key is made only of values returned by other written objects (an index from a flow
  table, a freshly allocated index); such an entry lives on the core that owns the entry it came from,
  so it adds no constraint of its own;
* folds: the same, but the key can be equal for two different values (``index / 2``), or the values
  are no allocated indices (a port a map stores): entries of different cores would share one entry
  sequentially (``folding``), so the object cannot be sharded;
* global: the key depends on no packet field and on no written object's values (a constant, a value
  from a read-only table); every packet may touch that entry, so the object cannot be sharded;
* scan: the call visits entries of the object that no key names (a consistent-hash lookup walking
  the live backends); every packet may touch every entry, so the object cannot be sharded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from explorer.ir import Access, Analysis, CallPath
from explorer.nf_terms import access_site, key_words, uses_key
from explorer.rss.problem import PairConstraint
from explorer.sharding.folding import folding
from explorer.sharding.keybits import KeyBit, key_alternatives, key_bits
from explorer.symbex.bitvec import symbols_of
from explorer.wire import PACKET_FIELDS

_RSS_OF_SYMBOL = {f.name: (f.rss_name, f.bits) for f in PACKET_FIELDS if f.rss_name}


@dataclass(frozen=True)
class KeyedAccess:
    """An access with its path, its position on the path and the class of its key."""

    path: CallPath
    position: int
    access: Access
    kind: str  # "packet" | "follows" | "folds" | "global" | "scan"
    follows: tuple[str, ...] = ()  # written objects whose values the key is made of
    non_rss: tuple[str, ...] = ()  # packet fields in the key that RSS cannot hash
    # objects whose values the key is made of, read at the input device's index (a per-port
    # configuration cell): the key then depends on the device, though not on its own
    device_via: tuple[str, ...] = ()
    # kind "folds": why the key may name one entry for entries of the objects it follows that live on
    # different cores (explorer/sharding/folding.py)
    folded: str = ""

    @property
    def by_device(self) -> bool:
        """The key depends on the input device: directly, or through a value read at its index."""
        return self.access.by_device or bool(self.device_via)

    @property
    def where(self) -> str:
        """The engine's name of the access (path, call, location): unique, for constraint origins."""
        return f"path {self.path.index} {self.access.call} at {self.access.location}"

    @property
    def site(self) -> str:
        """The access in the NF's terms, for reasons: ``fw.c:101 `nf_map_get(flows, &key, &index)```."""
        return access_site(self.access)

    @property
    def key_words(self) -> str:
        """The key in the NF's terms (``chain's index (nat.c:139)``, ``16``), for reasons."""
        return key_words(self.access, self.path)

    @property
    def uses_key(self) -> str:
        """``uses key 16``, ``uses chain's index (nat.c:139) as its key``."""
        return uses_key(self.key_words)


def written_objects(analysis: Analysis) -> frozenset[str]:
    """Objects some path of nf_process mutates (expiry mutates the objects it names too)."""
    names: set[str] = set()
    for path in analysis.paths:
        for access in path.accesses:
            if access.op.mutates:
                names.add(access.object)
                if access.call.startswith("nf_expire_items"):
                    names.update(access.related)
    return frozenset(names)


def keyed_accesses(analysis: Analysis, obj: str, written: frozenset[str]) -> tuple[KeyedAccess, ...]:
    """Every access to ``obj`` that names a key or index, classified."""
    out = []
    for path in analysis.paths:
        producers = _result_producers(path)
        per_device = {name for a in path.accesses if a.by_device for name in a.results}
        for position, access in enumerate(path.accesses):
            if obj in access.related and not access.call.startswith("nf_expire_items"):
                # e.g. nf_cht_find_backend walks the backends' dchain: any entry, for any packet
                out.append(KeyedAccess(path, position, access, "scan"))
                continue
            if access.object != obj or access.key is None:
                continue
            symbols = symbols_of(access.key)
            packet = sorted(s for s in symbols if s.startswith("p."))
            sources = sorted({producers[s] for s in symbols if s in producers})
            non_rss = tuple(s for s in packet if s not in _RSS_OF_SYMBOL)
            if packet:
                kind = "packet"
            elif any(src in written for src in sources):
                folded = folding(analysis, path, access.key, tuple(s for s in sources if s in written))
                kind = "folds" if folded else "follows"
            else:
                kind = "global"
            via = tuple(sorted({producers[s] for s in symbols if s in per_device}))
            out.append(KeyedAccess(path, position, access, kind,
                                   tuple(s for s in sources if s in written), non_rss, via,
                                   folded if kind == "folds" else ""))
    return tuple(out)


def _result_producers(path: CallPath) -> dict[str, str]:
    """Result symbol name -> the object whose access returned it."""
    return {name: access.object for access in path.accesses for name in access.results}


def rss_bits(access: Access) -> tuple[Optional[tuple[str, int]], ...]:
    """Per key bit (least significant first): the RSS field bit ``(field, msb_index)`` it copies, or None."""
    return tuple(_rss_bit(bit) for bit in key_bits(access.key))


def _rss_bit(bit: KeyBit) -> Optional[tuple[str, int]]:
    if bit.symbol is None or bit.symbol not in _RSS_OF_SYMBOL:
        return None
    name, width = _RSS_OF_SYMBOL[bit.symbol]
    return (name, width - 1 - bit.index)


def pair_constraints(obj: str, accesses: tuple[KeyedAccess, ...]) -> tuple[PairConstraint, ...]:
    """One constraint per pair of packet-keyed accesses, pair of their devices and pair of their
    keys' alternatives (a key ordered by comparing two fields is one of two concatenations: its
    entries are shared by packets with those fields swapped), deduplicated; none for two keys
    that differ in a constant bit (a table that tags its entries: the tags keep them apart)."""
    keyed = [a for a in accesses if a.kind == "packet"]
    alternatives = [key_alternatives(a.access.key, xor=True) for a in keyed]
    found: dict[tuple, PairConstraint] = {}
    asked: dict[tuple[int, int], tuple[tuple, ...]] = {}  # per pair of alternatives, for every pair of devices
    for i, a1 in enumerate(keyed):
        for j in range(i, len(keyed)):
            a2 = keyed[j]
            for d1 in a1.path.devices:
                for d2 in a2.path.devices:
                    if i == j and d2 < d1:
                        continue
                    for b1 in alternatives[i]:
                        for b2 in alternatives[j]:
                            pair = (id(b1), id(b2))
                            if pair not in asked:  # a constant bit differs (a tag, a device number): none in common
                                asked[pair] = () if _never_equal(b1, b2) else _equalities(b1, b2)
                            for equal in asked[pair]:
                                side1, side2, e = ((d1, d2, equal) if d1 <= d2
                                                   else (d2, d1, tuple((y, x) for x, y in equal)))
                                ident = (side1, side2, e)
                                if ident not in found:
                                    origin = f"{obj}: {a1.where} (device {d1}) ~ {a2.where} (device {d2})"
                                    found[ident] = PairConstraint(side1, side2, e, origin)
    return tuple(found[k] for k in sorted(found, key=_constraint_order))


def _never_equal(b1: tuple[KeyBit, ...], b2: tuple[KeyBit, ...]) -> bool:
    """Whether two keys differ in a bit that is a constant in both."""
    return any(x.const is not None and y.const is not None and x.const != y.const for x, y in zip(b1, b2))


def _equalities(b1: tuple[KeyBit, ...], b2: tuple[KeyBit, ...]) -> tuple[tuple, ...]:
    """Sets of bit equalities (p1 bit, p2 bit) whose constraints together say what ``k1(p1) ==
    k2(p2)`` asks of a linear hash: one set when every key bit copies a field bit, two when some
    bits are XORs of two field bits.

    Key bit n gives the equation k1[n](p1) == k2[n](p2). Equations with an opaque or one-sided
    constant bit are left out (fewer equations relate more packet pairs: the safe side). A copied
    bit on both sides is an equality. Both sides XORs, ``a1 ^ b1 == a2 ^ b2``, is no equality,
    but its solutions are spanned by those of ``a1 == a2, b1 == b2`` and ``a1 == b2, b1 == a2``
    (3 dimensions of 4 bits, 2 + 2 - 1), and the RETA index, being linear, is equal on every
    solution of a space iff it is on a spanning set. So the XORs go straight in one set and
    swapped in the other, the equalities in both. That holds for all XORs at once when each of
    their bits appears in no other kept equation (the space is then a product of the XORs' and
    the equalities' own); an XOR that shares a bit with an earlier one or an equality is left out.
    Anything else (a copied bit equal to a XOR) is left out too."""
    equal: set = set()
    xors = []
    for x, y in zip(b1, b2):
        fx, fy = _rss_bit(x), _rss_bit(y)
        if fx is not None and fy is not None:
            equal.add((fx, fy))
            continue
        px, py = rss_parts(x), rss_parts(y)
        if px is not None and py is not None:
            xors.append((px, py))
    used = {(1, a) for a, _ in equal} | {(2, b) for _, b in equal}
    kept = []
    for px, py in xors:
        bits = {(1, a) for a in px} | {(2, b) for b in py}
        if not bits & used:
            used |= bits
            kept.append((px, py))
    if not kept:
        return (tuple(sorted(equal)),)
    straight = equal | {pair for px, py in kept for pair in zip(px, py)}
    swapped = equal | {pair for px, py in kept for pair in zip(px, reversed(py))}
    return tuple(sorted(straight)), tuple(sorted(swapped))


def rss_parts(bit: KeyBit) -> Optional[tuple[tuple[str, int], tuple[str, int]]]:
    """The two RSS field bits a XOR bit is made of, or None (not a XOR, or a part RSS cannot hash)."""
    if len(bit.parts) != 2:
        return None
    parts = tuple(_rss_bit(KeyBit(symbol=s, index=i)) for s, i in bit.parts)
    return None if None in parts else parts


def _constraint_order(ident: tuple) -> tuple:
    d1, d2, equal = ident
    return (d1, d2, len(equal), equal)


def fields_on(constraint: PairConstraint, device: int) -> Optional[frozenset[str]]:
    """The RSS fields ``constraint`` lets ``device`` hash (None if it does not involve the device).

    When both sides are the same device, a field counts only if both packets' copies are related.
    """
    sides = []
    if constraint.dev1 == device:
        sides.append(frozenset(x[0] for x, _ in constraint.equal))
    if constraint.dev2 == device:
        sides.append(frozenset(y[0] for _, y in constraint.equal))
    if not sides:
        return None
    return frozenset.intersection(*sides)


def restrict(constraint: PairConstraint, device: int, fields: frozenset[str]) -> PairConstraint:
    """The constraint with ``device``'s bits outside ``fields`` unrelated (an override)."""
    keep = tuple(
        (x, y) for x, y in constraint.equal
        if not (constraint.dev1 == device and x[0] not in fields)
        and not (constraint.dev2 == device and y[0] not in fields)
    )
    return PairConstraint(constraint.dev1, constraint.dev2, keep, constraint.origin)
