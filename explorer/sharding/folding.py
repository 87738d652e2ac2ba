"""Whether a key made of other objects' values names one entry per value, or folds several into one.

An entry named by another object's value (a counter at a flow's dchain index) lives on the core that
owns the flow: sharded, every core hands out its own indices. That is the sequential NF's behaviour
only if different values name different entries. A key that folds values together (``index / 2``,
a counter per pair of flows) makes flows share an entry sequentially, and which flows share it
depends on the order indices were handed out, which sharding changes: flows on different cores
then count in different cells (nfx check: NOT equivalent, tests/nfs/index_pairs.c). A one-to-one
key (``index ^ 1``, ``40000 + 2 * index`` below 65536) is safe.

The values' domains: a fresh dchain index is below the dchain's capacity; a map value is below the
largest capacity of the dchains whose indices are all the map ever stores (otherwise any 32-bit
value); a vector cell's bytes, and anything else, take any value. A bit range that the key takes
out of a value counts as a value of its own, so a key made of a cell's bytes is one-to-one in them.

The same holds only for values that name an entry of their own core: indices a dchain handed out,
and map values that are such indices. A map that stores something else (a host's first destination
port) holds the same value in entries of different cores, and an entry named by it is shared by
packets of different cores sequentially (tests/nfs/port_memo.c: NOT equivalent, 216 of 20000).
"""
from __future__ import annotations

from typing import Optional

import z3

from explorer.ir import Analysis, CallPath, Op, result_parts
from explorer.nf_terms import access_site, value_words
from explorer.sharding.analysis_memo import memo
from explorer.symbex.path_solver import PathSolver


def folding(analysis: Analysis, path: CallPath, key: z3.ExprRef, sources: tuple[str, ...]) -> str:
    """Why ``key``, made of values that other accesses of ``path`` returned (from ``sources``), may
    name one entry for entries of ``sources`` on different cores; "" when it names one per entry."""
    names = {_name(p if z3.is_const(p) else p.arg(0)) for p in _key_parts(analysis, key)}
    read = {a.object for a in path.accesses if a.call == "nf_map_get" and a.object in sources
            and any(n in names for n in a.results if ".value#" in n)}
    foreign: list[str] = []
    if read:
        foreign = sorted(read - set(_index_maps(analysis)))
    if foreign:
        maps = ", ".join(foreign)
        return (f"the values {maps} stores are not indices a dchain handed out (e.g. a header field), so entries "
                f"of {maps} on different cores can hold the same value, and name the same entry sequentially")
    cells = {name: a.object for a in path.accesses if a.call == "nf_vector_borrow" and a.object in sources
             for name in a.results}
    for name in sorted({_name(p if z3.is_const(p) else p.arg(0)) for p in _key_parts(analysis, key)}):
        if name in cells:
            stored = _stored_elsewise(analysis, cells[name], key, name, path)
            if stored:
                return (f"the cells of {cells[name]} hold other values than indices a dchain handed out ({stored}), "
                        f"so cells of {cells[name]} on different cores can hold the same value, and name the same "
                        f"entry sequentially")
    if folds(analysis, path, key):
        objects = ", ".join(sources)
        return (f"it is the same for different values, so entries of {objects} share its entries, and which "
                f"ones do depends on the order {objects} handed them out, which sharding changes (each core has "
                f"its own)")
    return ""


def _name(symbol: z3.ExprRef) -> str:
    return symbol.decl().name()  # str() pretty-prints: 25 s over host_flow_limit's accesses


def _stored_elsewise(analysis: Analysis, vector: str, key: z3.ExprRef, cell: str, reader: CallPath) -> str:
    """What a write of ``vector`` makes ``key`` when it reads the written content for ``cell``, when
    that is not made of indices (a dchain's, a consistent-hash backend, an index map's value) or of
    what the cell held; "" when no write makes it anything else. A constant the ``reader`` path
    cannot see as its key (a sentinel -1 it tests for first) is no such value."""
    stored = memo(analysis).setdefault("stored", {})
    if (key.get_id(), cell, reader.index) in stored:
        return stored[key.get_id(), cell, reader.index][1]
    maps = _index_maps(analysis)
    seen = memo(analysis).setdefault("seen as key", {})
    found = ""
    for path, access, made, names in _writes_made(analysis, vector, key, cell):
        if names and all(_index_like(n, vector, maps) for n in names):
            continue
        if not names:  # a constant: only if the reader can take it for its key
            asked = (reader.index, key.get_id(), made.get_id())
            if asked not in seen:
                seen[asked] = (key, made, PathSolver().satisfiable([reader.condition], key == made, witness=False))
            if not seen[asked][2]:
                continue
        found = f"{access_site(access)} stores {value_words(made, path)}"
        break
    stored[key.get_id(), cell, reader.index] = (key, found)
    return found


def _writes_made(analysis: Analysis, vector: str, key: z3.ExprRef, cell: str) -> tuple:
    """``(path, write, key made of what it writes, names of the values that is made of)`` for every
    write of ``vector`` whose value can stand for ``cell``, in path order: the same for every path
    reading ``key`` (host_flow_limit substituted them once per reader: 63,000 times, 190 s)."""
    made_by = memo(analysis).setdefault("writes made", {})
    if (key.get_id(), cell) in made_by:
        return made_by[key.get_id(), cell][1]
    symbol = next(p if z3.is_const(p) else p.arg(0) for p in _key_parts(analysis, key)
                  if _name(p if z3.is_const(p) else p.arg(0)) == cell)
    writes = []
    for path in analysis.paths:
        for access in path.accesses:
            if access.object != vector or access.call != "nf_vector_return" or access.op != Op.WRITE:
                continue
            if access.value is None or access.value.size() != symbol.size():
                continue
            made = z3.simplify(z3.substitute(key, (symbol, access.value)))
            writes.append((path, access, made, [_name(p if z3.is_const(p) else p.arg(0)) for p in _parts(made)]))
    made_by[key.get_id(), cell] = (key, tuple(writes))
    return made_by[key.get_id(), cell][1]


def _index_like(name: str, vector: str, maps: dict[str, int]) -> bool:
    obj, kind = result_parts(name)
    return (obj == vector and kind == "cell") or kind in ("index", "backend") or (kind == "value" and obj in maps)


def folds(analysis: Analysis, path: CallPath, key: z3.ExprRef) -> bool:
    """``key``, made of values other accesses of ``path`` returned, can be equal for two different
    values (within their domains)."""
    if z3.is_const(key):
        return False  # one value, whole: one-to-one
    parts = _key_parts(analysis, key)
    if not parts or _copies_bits(key, parts):
        return False
    bounds = _bounds(analysis, path)
    limits = tuple(_limit(p, bounds) for p in parts)
    answers = memo(analysis).setdefault("folds", {})
    if (key.get_id(), limits) in answers:
        return answers[key.get_id(), limits]
    first = {p: z3.BitVec(f"fold.a.{i}", p.size()) for i, p in enumerate(parts)}
    second = {p: z3.BitVec(f"fold.b.{i}", p.size()) for i, p in enumerate(parts)}
    question = [z3.substitute(key, *first.items()) == z3.substitute(key, *second.items()),
                z3.Or([first[p] != second[p] for p in parts])]
    for p, limit in zip(parts, limits):
        if limit is not None:
            question += [z3.ULT(first[p], limit), z3.ULT(second[p], limit)]
    answer = answers[key.get_id(), limits] = PathSolver().satisfiable([], z3.And(question), witness=False)
    return answer


def _parts(key: z3.ExprRef) -> list[z3.ExprRef]:
    """The values ``key`` is made of: each symbol used whole, and each bit range taken out of one
    (deduplicated, in a stable order)."""
    found: dict[int, z3.ExprRef] = {}
    todo = [key]
    seen: set[int] = set()
    while todo:
        t = todo.pop()
        if t.get_id() in seen:
            continue
        seen.add(t.get_id())
        if z3.is_const(t) and not z3.is_bv_value(t):
            found.setdefault(t.get_id(), t)
        elif z3.is_app_of(t, z3.Z3_OP_EXTRACT) and z3.is_const(t.arg(0)) and not z3.is_bv_value(t.arg(0)):
            found.setdefault(t.get_id(), t)
        else:
            todo.extend(t.children())
    return sorted(found.values(), key=_order)


def _order(part: z3.ExprRef) -> tuple:
    """A stable order of parts (str() would pretty-print each, seconds over a large NF)."""
    if z3.is_const(part):
        return (_name(part), -1, -1)
    hi, lo = part.params()
    return (_name(part.arg(0)), hi, lo)


def _copies_bits(key: z3.ExprRef, parts: list[z3.ExprRef]) -> bool:
    """``key`` only lays its parts side by side (concatenations and zero extensions of parts and
    constants): one-to-one whatever their values, no question for Z3 (a key of a cell's bytes)."""
    ids = {p.get_id() for p in parts}
    todo = [key]
    while todo:
        t = todo.pop()
        if t.get_id() in ids or z3.is_bv_value(t):
            continue
        if not (z3.is_app_of(t, z3.Z3_OP_CONCAT) or z3.is_app_of(t, z3.Z3_OP_ZERO_EXT)):
            return False
        todo.extend(t.children())
    return True


def _limit(part: z3.ExprRef, bounds: dict[str, int]) -> Optional[int]:
    if not z3.is_const(part):
        return None  # a bit range of a value: any bits
    limit = bounds.get(_name(part))
    return limit if limit is not None and limit < 2 ** part.size() else None


def _bounds(analysis: Analysis, path: CallPath) -> dict[str, int]:
    """Result symbol -> an exclusive upper bound of its values, where one is known."""
    capacity = {o.name: o.capacity for o in analysis.objects if o.kind == "dchain"}
    stored = _index_maps(analysis)
    out: dict[str, int] = {}
    for access in path.accesses:
        if access.op == Op.CREATE and access.object in capacity:
            for name in access.results:
                if ".index#" in name:
                    out[name] = capacity[access.object]
        elif access.call == "nf_map_get" and access.object in stored:
            for name in access.results:
                if ".value#" in name:
                    out[name] = stored[access.object]
    return out


def _index_maps(analysis: Analysis) -> dict[str, int]:
    """``_map_value_bounds`` once per analysis (every keyed access asks)."""
    kept = memo(analysis)
    if "index_maps" not in kept:
        capacity = {o.name: o.capacity for o in analysis.objects if o.kind == "dchain"}
        kept["index_maps"] = _map_value_bounds(analysis, capacity)
    return kept["index_maps"]


def _key_parts(analysis: Analysis, key: z3.ExprRef) -> list[z3.ExprRef]:
    parts = memo(analysis).setdefault("parts", {})
    if key.get_id() not in parts:
        parts[key.get_id()] = (key, _parts(key))  # the key kept alive: its id stays its own
    return parts[key.get_id()][1]


def _map_value_bounds(analysis: Analysis, capacity: dict[str, int]) -> dict[str, int]:
    """Map -> the largest capacity of the dchains whose indices are every value it stores: fresh
    ones, or values read from another such map (to a fixpoint). Maps nothing is put in are left out."""
    puts: list[tuple[str, Optional[int]]] = []  # (map, the dchain capacity of what it stores, or None)
    copies: list[tuple[str, str]] = []  # (map, the map whose value it stores)
    for path in analysis.paths:
        made = {name: a.object for a in path.accesses if a.op == Op.CREATE and a.object in capacity
                for name in a.results if ".index#" in name}
        read = {name: a.object for a in path.accesses if a.call == "nf_map_get"
                for name in a.results if ".value#" in name}
        for access in path.accesses:
            if access.call != "nf_map_put":
                continue
            value = access.value
            if value is None:  # not recorded (an analysis built by hand): nothing against it, no bound
                puts.append((access.object, 2 ** 32))
                continue
            name = _name(value) if z3.is_const(value) and not z3.is_bv_value(value) else ""
            if name in made:
                puts.append((access.object, capacity[made[name]]))
            elif name in read:
                copies.append((access.object, read[name]))
            else:
                puts.append((access.object, None))
    bound: dict[str, Optional[int]] = {}
    for m, b in puts:
        bound[m] = None if m in bound and bound[m] is None or b is None else max(bound.get(m) or 0, b)
    changed = True
    while changed:
        changed = False
        for m, source in copies:
            b = bound.get(source)
            new = None if b is None or (m in bound and bound[m] is None) else max(bound.get(m) or 0, b)
            if m not in bound or bound[m] != new:
                bound[m], changed = new, True
    return {m: b for m, b in bound.items() if b is not None}

