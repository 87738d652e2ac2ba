"""Whether a dchain's recycled index hands its new entry the cells its last holder left.

A dchain the NF expires or frees hands released indices out again. Cells of a vector at a dchain's
index (a counter per flow) are not cleared by the release: the new entry starts with whatever its
index's last holder left, unless the path that hands the index out overwrites the cell before
anything reads it. Which entry held the index last follows the order indices were handed out, and a
sharded build gives every core its own dchain and order, so a new flow on a core inherits another
flow's count than it would sequentially (nfx check: NOT equivalent, tests/nfs/recycled_counter.c).
Such a dchain is locked (and what follows it with it) unless every path that takes a new index
overwrites, before computing with them, the bits of its cells that some path reads (a pad nothing
reads may keep what it held: tests/nfs/one_port.c still shards).
"""
from __future__ import annotations

from typing import Mapping

import z3

from explorer.ir import Access, Analysis, CallPath
from explorer.nf_terms import access_site, possessive
from explorer.sharding.analysis_memo import memo
from explorer.symbex.bitvec import symbols_of


def inherited_cells(analysis: Analysis, sharded_chains: frozenset[str],
                    followers: Mapping[str, frozenset[str]]) -> dict[str, str]:
    """dchain -> why a new entry may read what its index's last holder left, for every chain in
    ``sharded_chains`` that the NF releases; ``followers`` maps a chain to the vectors whose cells it
    indexes (directly or through a map that stores its indices)."""
    released = _released(analysis)
    out: dict[str, str] = {}
    read_bits: dict[str, set[Bits]] = {}
    for chain in sorted(sharded_chains & released):
        # A vector whose cells decide nothing (only ever stored back into itself) cannot make the
        # builds differ, whatever a new entry inherits there.
        vectors = frozenset(v for v in followers.get(chain, frozenset()) if _read_bits(analysis, v, own=False))
        for vector in sorted(vectors):
            if vector not in read_bits:
                read_bits[vector] = _read_bits(analysis, vector)
        for path in analysis.paths:
            why = _path_inherits(path, chain, vectors, read_bits)
            if why:
                out[chain] = why
                break
    return out


Bits = tuple[int, int]  # (high, low) bit positions of a cell, byte 0 most significant
WHOLE: Bits = (1 << 20, 0)  # every bit of a cell, whatever its size


def _released(analysis: Analysis) -> frozenset[str]:
    """dchains some path expires or frees: only those hand an index out twice."""
    return frozenset(a.object for p in analysis.paths for a in p.accesses
                     if a.call.startswith("nf_expire_items") or a.call == "nf_dchain_free_index")


def _mentions(term, name: str) -> bool:
    return term is not None and name in symbols_of(term)


def _is_cell(term, cell: str) -> bool:
    return z3.is_const(term) and term.decl().kind() == z3.Z3_OP_UNINTERPRETED and term.decl().name() == cell


def _uses(term, cell: str, into: set[Bits]) -> None:
    """Add to ``into`` the bit ranges of ``cell`` that ``term`` computes with."""
    if term is None or cell not in symbols_of(term):
        return
    if _is_cell(term, cell):
        into.add((term.size() - 1, 0))
        return
    if z3.is_app_of(term, z3.Z3_OP_EXTRACT) and _is_cell(term.arg(0), cell):
        high, low = term.params()
        into.add((high, low))
        return
    for child in term.children():
        _uses(child, cell, into)


def _handed_back(value, cell: str, high: int, into_kept: set[Bits], into_used: set[Bits]) -> None:
    """Split what an nf_vector_return hands back (bits ``high``..0 of the cell from here) into the
    ranges of ``cell`` it keeps in place (``into_kept``) and those it computes with (``into_used``)."""
    if _is_cell(value, cell) and value.size() - 1 == high:
        into_kept.add((high, high - value.size() + 1))
        return
    if z3.is_app_of(value, z3.Z3_OP_EXTRACT) and _is_cell(value.arg(0), cell):
        h, l = value.params()
        if h == high and l == high - value.size() + 1:
            into_kept.add((h, l))
            return
    if z3.is_app_of(value, z3.Z3_OP_CONCAT):
        for child in value.children():
            _handed_back(child, cell, high, into_kept, into_used)
            high -= child.size()
        return
    _uses(value, cell, into_used)


def _read_bits(analysis: Analysis, vector: str, own: bool = True) -> set[Bits]:
    """The bit ranges of ``vector``'s cells that some path computes with (a cell handed back as it
    was borrowed is not read); without ``own``, what is computed only to be handed back to
    ``vector`` does not count either. Once per analysis: each remedy nfx solve checks asks again."""
    kept = memo(analysis).setdefault("read_bits", {})
    if (vector, own) not in kept:
        kept[vector, own] = frozenset(_reads(analysis, vector, own))
    return set(kept[vector, own])


def _reads(analysis: Analysis, vector: str, own: bool) -> set[Bits]:
    bits: set[Bits] = set()
    for path in analysis.paths:
        for j, borrow in enumerate(path.accesses):
            if borrow.object != vector or borrow.call != "nf_vector_borrow" or not borrow.results:
                continue
            bits |= _path_reads(path, borrow.results[0], path.accesses[j + 1:], own)
    return bits


def _path_reads(path: CallPath, cell: str, later: tuple[Access, ...], own: bool = True) -> set[Bits]:
    """The ranges of ``cell`` that ``path`` computes with: in its condition, a key, a value stored
    (other than the cell handed back in place), a header write or the verdict."""
    bits: set[Bits] = set()
    vector = cell.split(".cell#")[0]
    for part in _conjuncts(path.condition):
        if not _rebinds(part, vector):
            _uses(part, cell, bits)
    for a in later:
        _uses(a.key, cell, bits)
        if a.call == "nf_vector_return" and a.value is not None and a.object == vector and not own:
            continue
        if a.call == "nf_vector_return" and a.value is not None:
            _handed_back(a.value, cell, a.value.size() - 1, set(), bits)
        else:
            _uses(a.value, cell, bits)
    for w in path.writes:
        _uses(w.value, cell, bits)
    _uses(path.verdict.device_term, cell, bits)
    return bits


def _conjuncts(condition) -> list:
    return list(condition.children()) if z3.is_and(condition) else [condition]


def _rebinds(part, vector: str) -> bool:
    """``part`` says what a later borrow of ``vector`` finds (``vector.cell#N == what was handed
    back``): it moves the cell's bits to that borrow, whose own uses count as reads, not itself."""
    if not z3.is_eq(part):
        return False
    return any(z3.is_const(side) and side.decl().kind() == z3.Z3_OP_UNINTERPRETED
               and side.decl().name().startswith(vector + ".cell#") for side in part.children())


def _overlap(a: set[Bits], b: set[Bits]) -> bool:
    return any(h1 >= l2 and h2 >= l1 for h1, l1 in a for h2, l2 in b)


def _path_inherits(path: CallPath, chain: str, vectors: frozenset[str], read_bits: Mapping[str, set[Bits]]) -> str:
    accesses = path.accesses
    for i, alloc in enumerate(accesses):
        if alloc.object != chain or alloc.call != "nf_dchain_allocate_new_index":
            continue
        index = next((r for r in alloc.results if ".index#" in r), None)
        if index is None:
            continue
        later = accesses[i + 1:]
        # A path whose NF never uses the new index took none (the allocation failed there).
        if not any(_mentions(a.key, index) or _mentions(a.value, index) for a in later):
            continue
        for vector in sorted(vectors):
            why = _cell_inherited(path, later, vector, index, alloc, read_bits[vector])
            if why:
                return why
    return ""


def _cell_inherited(path: CallPath, later: tuple[Access, ...], vector: str, index: str, alloc: Access,
                    read: set[Bits]) -> str:
    """Why ``vector``'s cell at the new ``index`` keeps, for a path that reads it, or is read for, its
    last holder's content on ``path``; "" when the path overwrites what any path reads first."""
    head = (f"{access_site(alloc)} hands out an index of {alloc.object} (a released one, once "
            f"its expiry or free ran)")
    tail = (f"sequentially the new entry starts with what the index's last holder left there, sharded with what "
            f"the last holder of that index on its own core left (a dchain per core hands indices out in "
            f"another order)")
    borrow_at = next((j for j, a in enumerate(later)
                      if a.object == vector and a.call == "nf_vector_borrow" and _mentions(a.key, index)), None)
    if borrow_at is None:
        if read:
            return f"{head} and does not write {possessive(vector)} cell at it, which other paths read: {tail}"
        return ""
    borrow = later[borrow_at]
    if not borrow.results:
        return ""
    cell = borrow.results[0]
    rest = later[borrow_at + 1:]
    if _path_reads(path, cell, rest):
        return (f"{head} and computes with {possessive(vector)} cell at it ({access_site(borrow)}) before "
                f"overwriting it: {tail}")
    back = next((a for a in rest if a.object == vector and a.call == "nf_vector_return"), None)
    kept: set[Bits] = set()
    if back is None or back.value is None:
        kept.add(WHOLE)  # handed back unchanged: all of it stays
    else:
        _handed_back(back.value, cell, back.value.size() - 1, kept, set())
    if _overlap(kept, read):
        return (f"{head} and keeps part of {possessive(vector)} cell at it (handed back at "
                f"{access_site(back or borrow)}) that other paths read: {tail}")
    return ""


def followers_of(analysis: Analysis, chains: frozenset[str], follows: Mapping[str, tuple[str, ...]],
                 kinds: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """chain -> the vectors whose keys follow it: a vector keyed by one of its indices, fresh or
    kept by a map or vector that stores them (a counter at ``flows``' value). A vector keyed by some
    other value a follower's cell holds (a service slot a connection's cell stores) is not at the
    chain's index: a new entry overwrites that cell first, or the follower itself is found to
    inherit it (tests/nfs/svc_conn_limit.c)."""
    out: dict[str, frozenset[str]] = {}
    for chain in chains:
        keepers = {chain} | _index_keepers(analysis, chain)
        out[chain] = frozenset(n for n, sources in follows.items()
                               if kinds.get(n) == "vector" and keepers & set(sources))
    return out


def _index_keepers(analysis: Analysis, chain: str) -> set[str]:
    """Maps and vectors some path stores an index of ``chain`` in: a fresh one, or one it found in
    another keeper (to a fixpoint: a vector may keep what a map kept)."""
    keepers: set[str] = set()
    changed = True
    while changed:
        changed = False
        for path in analysis.paths:
            held: set[str] = set()  # the symbols that name an index of ``chain`` on this path
            for a in path.accesses:
                if a.object == chain and a.call == "nf_dchain_allocate_new_index":
                    held.update(r for r in a.results if ".index#" in r)
                elif a.object in keepers or (chain in a.related and not a.call.startswith("nf_expire_items")):
                    held.update(a.results)
                if (a.call in ("nf_map_put", "nf_vector_return") and a.object not in keepers
                        and any(_mentions(a.value, r) for r in held)):
                    keepers.add(a.object)
                    changed = True
    return keepers
