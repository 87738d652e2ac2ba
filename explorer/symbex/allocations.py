"""Values the NF allocates and writes into packets, and the fields that bring them back.

A NAT gives each flow an index from a dchain and writes ``NAT_START_PORT + index`` into the source
port on the way out; the reply carries it back as its destination port, which the NF reads into the
key of its WAN-side table. Found here from the paths alone:

1. every CREATE on a dchain names its index result (``chain.index#3``); a map that stores such an
   index with ``nf_map_put`` carries it (its later lookups return ``internal.value#2``, an index too);
2. a written header field whose value is a function of one allocator's index (through arithmetic,
   byte swaps, truncation) on a path that forwards the packet carries an allocated value; the value
   is normalized to a term over the symbol ``<allocator>.index``;
3. the reply field (``wire.REPLY_FIELD``) on the devices the packets went out on, and the keys that
   contain it there, are where the value comes back.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional, Sequence

import z3

from explorer import ir
from explorer.symbex.bitvec import constants_of
from explorer.symbex.effects import Effects
from explorer.symbex.render import Renderer
from explorer.wire import REPLY_FIELD

INDEX_BITS = 32


def allocated_fields(paths: Sequence[ir.CallPath], effects: Sequence[Effects], devices: int,
                     render: Renderer) -> tuple[ir.AllocatedField, ...]:
    """The header fields carrying allocated values (``paths[i]`` was built from ``effects[i]``)."""
    carriers = _carriers(paths, effects)
    groups: dict[tuple, list[tuple[ir.CallPath, ir.FieldWrite, tuple[str, ...], tuple[ir.Location, ...]]]] = \
        defaultdict(list)
    terms: dict[tuple, Any] = {}
    for path in paths:
        out = _out_devices(path, devices)
        if not out:
            continue
        sources = _index_sources(path, carriers)
        for write in path.writes:
            if write.value is None:
                continue
            found = _as_index_function(write.value, sources)
            if found is None:
                continue
            allocator, value, via, allocated_at = found
            key = (allocator, write.field, z3.simplify(value).sexpr(), out)  # equal functions, however written
            terms.setdefault(key, value)
            groups[key].append((path, write, via, allocated_at))
    out_list = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[3], k[2])):
        allocator, field_name, _, out = key
        members = groups[key]
        reply = REPLY_FIELD.get(field_name)
        out_list.append(ir.AllocatedField(
            allocator=allocator, field=field_name, value=terms[key], value_text=render.text(terms[key]),
            devices=tuple(sorted({d for p, _, _, _ in members for d in p.devices})), out_devices=out,
            paths=tuple(sorted({p.index for p, _, _, _ in members})),
            via=tuple(sorted({name for _, _, via, _ in members for name in via})),
            allocated_at=_locations(loc for _, _, _, locs in members for loc in locs),
            written_at=_locations(w.location for _, w, _, _ in members if w.location is not None),
            reply_field=reply,
            reply_keys=_keyed(paths, lambda p, names: reply in names, out) if reply else (),
            keyed=_keyed([p for p, _, _, _ in members],
                         lambda p, names: bool(names & set(_index_sources(p, carriers))), None)))
    return tuple(out_list)


def _out_devices(path: ir.CallPath, devices: int) -> tuple[int, ...]:
    """Where the path sends the packet: its device, or every other one for a flood."""
    if path.verdict.kind == "forward" and path.verdict.device is not None:
        return (path.verdict.device,)
    if path.verdict.kind == "flood":
        return tuple(d for d in range(devices) if d not in path.devices or len(path.devices) > 1)
    return ()


def _carriers(paths: Sequence[ir.CallPath], effects: Sequence[Effects]) -> dict[str, tuple[str, Any]]:
    """Maps whose stored values are all one allocator's index (the same function of it on every path
    that stores one): map -> (allocator, the stored value as a term over ``<allocator>.index``)."""
    stored: dict[str, dict[str, tuple[Optional[str], Any]]] = defaultdict(dict)
    for path, effect in zip(paths, effects):
        created = {name: (allocator, None) for name, (allocator, _) in _created(path).items()}
        for raw in effect.accesses:
            if raw.call == "nf_map_put" and raw.value is not None:
                found = _function_of(raw.value, created)
                if found is None:
                    stored[raw.object][""] = (None, None)
                else:
                    stored[raw.object][z3.simplify(found[1]).sexpr()] = (found[0], found[1])
    carriers = {}
    for name, values in stored.items():
        (allocator, value), *others = values.values()
        if allocator is not None and not others:
            carriers[name] = (allocator, value)
    return carriers


def _created(path: ir.CallPath) -> dict[str, tuple[str, ir.Location]]:
    """The index results of the path's allocations: symbol name -> (allocator, where)."""
    return {access.results[1]: (access.object, access.location) for access in path.accesses
            if access.call == "nf_dchain_allocate_new_index" and len(access.results) == 2}


def _index_sources(path: ir.CallPath, carriers: dict[str, tuple[str, Any]]) -> dict[str, tuple[str, Any, Any]]:
    """The path's symbols that hold an allocated index: symbol -> (allocator, how the symbol's value is
    a function of ``<allocator>.index``, where it was allocated / the carrier's name)."""
    sources: dict[str, tuple[str, Any, Any]] = {}
    for name, (allocator, location) in _created(path).items():
        sources[name] = (allocator, None, location)
    for access in path.accesses:
        carried = carriers.get(access.object)
        if carried is not None and access.call == "nf_map_get" and len(access.results) == 2:
            sources[access.results[1]] = (carried[0], carried[1], access.object)
    return sources


def _function_of(term: Any, sources: dict[str, tuple[str, Any]]) -> Optional[tuple[str, Any, tuple[str, ...]]]:
    """``term`` as a function of one allocator's index: (allocator, the term over ``<allocator>.index``,
    the source symbols used), or None when it depends on anything else."""
    consts = constants_of(term)[0]
    if not consts or any(name not in sources for name in consts):
        return None
    allocators = {sources[name][0] for name in consts}
    if len(allocators) != 1:
        return None
    (allocator,) = allocators
    index = z3.BitVec(f"{allocator}.index", INDEX_BITS)
    subs = []
    for name, const in consts.items():
        how = sources[name][1]
        replacement = index if how is None else how
        subs.append((const, _fit(replacement, const.size())))
    return allocator, z3.substitute(term, *subs), tuple(sorted(consts))


def _fit(term: Any, bits: int) -> Any:
    if term.size() == bits:
        return term
    return z3.Extract(bits - 1, 0, term) if term.size() > bits else z3.ZeroExt(bits - term.size(), term)


def _as_index_function(term: Any, sources: dict[str, tuple[str, Any, Any]]) \
        -> Optional[tuple[str, Any, tuple[str, ...], tuple[ir.Location, ...]]]:
    found = _function_of(term, {name: (allocator, how) for name, (allocator, how, _) in sources.items()})
    if found is None:
        return None
    allocator, value, used = found
    via = tuple(sorted(sources[name][2] for name in used if isinstance(sources[name][2], str)))
    allocated_at = tuple(sources[name][2] for name in used if isinstance(sources[name][2], ir.Location))
    return allocator, value, via, allocated_at


def _keyed(paths: Sequence[ir.CallPath], matches: Any, devices: Optional[tuple[int, ...]]) -> tuple[ir.KeyedBy, ...]:
    """Per object, the accesses on ``paths`` (restricted to input ``devices``) whose key ``matches``."""
    found: dict[str, tuple[set[int], set[int]]] = {}
    for path in paths:
        if devices is not None and not set(path.devices) & set(devices):
            continue
        for access in path.accesses:
            if access.key is None or not matches(path, set(constants_of(access.key)[0])):
                continue
            devs, indices = found.setdefault(access.object, (set(), set()))
            devs.update(d for d in path.devices if devices is None or d in devices)
            indices.add(path.index)
    return tuple(ir.KeyedBy(name, tuple(sorted(devs)), tuple(sorted(indices)))
                 for name, (devs, indices) in sorted(found.items()))


def _locations(locations: Any) -> tuple[ir.Location, ...]:
    return tuple(sorted(set(locations), key=lambda loc: (loc.file, loc.line, loc.col)))
