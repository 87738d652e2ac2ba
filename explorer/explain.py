"""What the analysis and the solver found, in the words of the NF's author: source lines and the C
calls on them, packet fields by the names the explorer uses (``src_ip``, ``dst_port``), two realistic
packets for a counterexample and what the NF does with them. The exact engine terms (symbols, path
numbers, constraint origins) stay available under ``details`` for whoever wants them.

Everything here returns plain data (dicts, lists, strings), for the widgets, the CLI and notebooks:
``describe(analysis, solution)`` per object and for the strategy, ``counterexample(solution)`` two
packets from realistic traffic that the plan splits, ``what_happens(solution, example)`` runs the
sequential NF on them to say what the split does to the second packet.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from explorer.ir import Access, Analysis
from explorer.nf_terms import call_text, field_name, in_words, possessive, where
from explorer.sharding.allocation import summary as allocation_summary
from explorer.sharding.constraints import KeyedAccess, fields_on, keyed_accesses, rss_bits, written_objects
from explorer.sharding.keybits import key_alternatives, key_bits
from explorer.symbex.bitvec import symbols_of
from explorer.wire import PACKET_FIELDS, RSS_BITS, RSS_NAMES

FIELD_BITS = {f.name: f.bits for f in PACKET_FIELDS}
VERBS = {"READ": "reads", "WRITE": "writes", "CREATE": "allocates in", "UPDATE": "refreshes",
         "VERIFY": "checks", "DESTROY": "frees in", "EXPIRE": "expires entries of"}
LOOKUP_CALLS = {"nf_map_get": "looks up", "nf_map_put": "records", "nf_map_erase": "erases",
                "nf_vector_borrow": "reads", "nf_vector_return": "writes back",
                "nf_sketch_touch": "counts", "nf_sketch_estimate": "estimates"}
SWAPPED = {"src_ip": "dst_ip", "dst_ip": "src_ip", "src_port": "dst_port", "dst_port": "src_port"}


# ---- keys ----------------------------------------------------------------------------------

def key_fields(access: Access) -> tuple[str, ...]:
    """The packet fields a key is made of, in key order (most significant byte first), by the names
    people use; a field of which only the top bits are used is ``src_ip/24``; values from state and
    bits the analysis cannot trace (a hash, a sum) are named by where they come from. A XOR of two
    fields is named as one (``src_ip ^ dst_ip``: both directions of a host pair share it). A key
    that orders the same fields by comparing them (the lower address first) is named once, "in
    either order"."""
    if access.key is None:
        return ()
    with_xors = key_alternatives(access.key, xor=True)  # one way unless the key chooses
    names, used, opaque = _fields_of_bits(with_xors[0] if len(with_xors) == 1 else key_bits(access.key))
    if opaque:
        ways = [_fields_of_bits(bits) for bits in key_alternatives(access.key)]
        # each way names the same fields in another order; a table read at a field (CLASS[tos])
        # is one way per run of equal entries, constants that name no field at all
        if (len(ways) > 1 and ways[0][0] and not any(w[2] for w in ways)
                and len({tuple(sorted(w[0])) for w in ways}) == 1):
            return tuple(ways[0][0][:-1]) + (f"{ways[0][0][-1]} (in either order)",)
        sources = sorted(field_name(s) for s in symbols_of(access.key) if s not in used)
        names.append("computed from " + ", ".join(sources) if sources else "a computed value")
    return tuple(names)


def _fields_of_bits(bits: tuple) -> tuple[list[str], set[str], bool]:
    """The names of the fields ``bits`` copy (or XOR), in key order, their symbols, and whether some
    bit is opaque."""
    order: list[tuple[str, ...]] = []
    used: dict[tuple[str, ...], set] = {}
    opaque = False
    for bit in reversed(bits):
        if bit.parts:  # the XOR of bits of two fields: the same bit of each, or not a plain field XOR
            source = tuple(symbol for symbol, _ in bit.parts)
            index = bit.parts[0][1] if len({i for _, i in bit.parts}) == 1 else None
        elif bit.symbol is not None:
            source, index = (bit.symbol,), bit.index
        else:
            opaque = opaque or bit.const is None
            continue
        if source not in used:
            order.append(source)
            used[source] = set()
        used[source].add(index)
    names = []
    for source in order:
        if len(set(source)) < len(source):  # x ^ (x >> k): bits of one field folded together
            names.append(f"bits of {field_name(source[0])} XORed together")
            continue
        name = " ^ ".join(field_name(s) for s in sorted(source, key=_hash_order))
        width = FIELD_BITS.get(source[0])
        if None in used[source] or any(FIELD_BITS.get(s) != width for s in source):
            names.append(f"part of {name}")
            continue
        if width is not None and len(used[source]) < width:
            top = sorted(used[source], reverse=True)
            prefix = top == list(range(width - 1, width - 1 - len(top), -1))
            name = f"{name if len(source) == 1 else f'({name})'}/{len(top)}" if prefix else f"part of {name}"
        names.append(name)
    return names, {s for source in used for s in source}, opaque


def _hash_order(symbol: str) -> tuple[int, str]:
    """RSS fields in hash-input order (src before dst), then the rest by name."""
    name = field_name(symbol)
    return (RSS_NAMES.index(name), name) if name in RSS_NAMES else (len(RSS_NAMES), name)


def relation(constraint: Any) -> str:
    """How two packets that share an entry relate, from the bits a ``PairConstraint`` makes equal:
    "the same src_ip/24, dst_port" or "addresses and ports swapped (a reply)"."""
    bits: dict[tuple[str, str], set[int]] = {}
    for (f1, i1), (f2, i2) in constraint.equal:
        if i1 == i2:
            bits.setdefault((f1, f2), set()).add(i1)
    pairs = sorted(bits, key=lambda pair: (RSS_NAMES.index(pair[0]), RSS_NAMES.index(pair[1])))
    if not pairs:
        return "nothing the NIC can hash in common"

    def part(field: str, used: set[int]) -> str:
        width = RSS_BITS[field]
        if len(used) == width:
            return field
        return f"{field}/{len(used)}" if used == set(range(len(used))) else f"part of {field}"

    if all(a == b for a, b in pairs):
        return "the same " + ", ".join(part(a, bits[(a, b)]) for a, b in pairs)
    if all(SWAPPED.get(a) == b and len(bits[(a, b)]) == RSS_BITS[a] for a, b in pairs):
        kinds = sorted({"addresses" if a.endswith("ip") else "ports" for a, _ in pairs})
        return f"{' and '.join(kinds)} swapped (a reply)"
    return ", ".join(f"the second's {part(b, bits[(a, b)])} equal to the first's {part(a, bits[(a, b)])}"
                     for a, b in pairs)


def _packets(dev1: int, dev2: int) -> str:
    return f"two device {dev1} packets" if dev1 == dev2 else f"a device {dev1} packet and a device {dev2} packet"


# ---- sites ---------------------------------------------------------------------------------

def sites(analysis: Analysis, name: str) -> list[dict[str, Any]]:
    """Where the NF touches object ``name``: one entry per source location and call, with the C call,
    what it does, the devices whose packets get there and the key's fields per device."""
    found: dict[tuple, dict[str, Any]] = {}
    for path in analysis.paths:
        for access in path.accesses:
            if access.object != name:
                continue
            loc = access.location
            ident = (loc.file, loc.line, loc.col, access.call)
            site = found.get(ident)
            if site is None:
                site = found[ident] = {
                    "where": where(loc), "file": loc.file, "line": loc.line, "call": access.call,
                    "code": call_text(loc.file, loc.line, loc.col) or access.call, "op": access.op.value,
                    "verb": LOOKUP_CALLS.get(access.call, VERBS.get(access.op.value, access.op.value.lower())),
                    "mutates": access.op.mutates, "devices": set(), "keys": {}, "paths": set(),
                    "details": access.key_text}
            site["devices"].update(path.devices)
            site["paths"].add(path.index)
            for dev in path.devices:
                site["keys"].setdefault(dev, key_fields(access))
    out = []
    for ident in sorted(found, key=lambda i: (i[1], i[2], i[3], i[0])):
        site = found[ident]
        site["devices"] = sorted(site["devices"])
        site["paths"] = sorted(site["paths"])
        site["keys"] = {str(d): list(k) for d, k in sorted(site["keys"].items())}
        out.append(site)
    return out


def key_layouts(analysis: Analysis) -> dict[str, dict[str, list[list[str]]]]:
    """Per object and device, the distinct keys (as field lists) its accesses use, in source order:
    what the graph writes on its key edges (``dev 1: dst_ip, src_ip, dst_port, src_port``)."""
    out: dict[str, dict[str, list[list[str]]]] = {}
    for obj in analysis.objects:
        per_device: dict[str, list[list[str]]] = {}
        for site in sites(analysis, obj.name):
            for dev, fields in site["keys"].items():
                if fields and fields not in per_device.setdefault(dev, []):
                    per_device[dev].append(fields)
        out[obj.name] = dict(sorted(per_device.items(), key=lambda kv: int(kv[0])))
    return out


def _site_phrase(site: Mapping[str, Any], name: str) -> str:
    """``fw.c:101 `nf_map_get(flows, &key, &index)` looks up flows by device 1 packets' (dst_ip, ...)``;
    a call both devices' packets make is named once, with each device's key (``by device 0 packets'
    (src_ip, dst_ip) and device 1 packets' (dst_ip, src_ip)``): once per device read as two calls."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for d in site["devices"]:
        groups.setdefault(tuple(site["keys"].get(str(d), ())), []).append(d)
    whose = [(" and ".join(f"device {d}" for d in ds) + " packets", key) for key, ds in groups.items()]
    keyed = [f"{who}' ({', '.join(key)})" for who, key in whose if key]
    unkeyed = [who for who, key in whose if not key]
    phrases = ([f"by {' and '.join(keyed)}"] if keyed else []) + ([f"for {' and '.join(unkeyed)}"] if unkeyed else [])
    by = " and ".join(phrases)
    return f"{site['where']} `{site['code']}` {site['verb']} {name}" + (f" {by}" if by else "")


# ---- decisions -----------------------------------------------------------------------------

def _fields_text(fields: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"device {d}: {', '.join(f) or 'no field'}" for d, f in sorted(fields.items(), key=lambda kv: int(kv[0])))


def _lock_cause(analysis: Analysis, name: str, decisions: Mapping[str, Any]) -> str:
    """Why ``name`` cannot be sharded, naming the source line (the sharding stage's order of checks)."""
    keyed = keyed_accesses(analysis, name, written_objects(analysis))

    def at(k: KeyedAccess) -> str:
        return k.site

    for k in keyed:
        if k.kind == "scan":
            return f"{at(k)} may touch any of its entries (it walks them, no key names one)"
        if k.kind == "global" and k.by_device:
            via = ", ".join(k.device_via)
            through = (f" (through {via}, which it reads at the device's index; packets only read {via}, so every "
                       f"core has a copy)" if via and not k.access.by_device else "")
            return (f"{at(k)} picks the entry by the input device{through}, not by a packet field: the packets of a "
                    "device that get there share one entry, whatever their flow, and the NIC spreads each device's "
                    "packets over every core")
        if k.kind == "global":
            if symbols_of(k.access.key):  # a value read-only state gives (a consistent-hash table's pick)
                return (f"{at(k)} picks the entry with {k.key_words}, which no packet field decides: "
                        "any packet may need any entry")
            constant = k.key_words  # a number as the NF wrote it; a struct's bytes are no words
            return (f"{at(k)} always picks the same entry"
                    f"{f' ({constant})' if constant.isdigit() else ', its key built from constants'}, whatever "
                    "the packet: every packet that gets there uses that one entry")
        if k.kind == "folds":
            named = all(possessive(o) in k.key_words for o in k.follows)  # "chain's index (x.c:9)" says whence
            return (f"{at(k)} picks the entry with {k.key_words}"
                    f"{'' if named else ' (a value from ' + ', '.join(k.follows) + ')'}: {k.folded}")
    follows = next((k for k in keyed if k.kind == "follows"), None)
    named = next((k for k in keyed if k.kind == "packet"), None)
    if follows is not None and named is not None:  # the sharding stage's next check, in its order
        fields = ", ".join(sorted({field_name(s) for s in symbols_of(named.access.key) if s.startswith("p.")}))
        sources = ", ".join(follows.follows)
        return (f"{at(follows)} names an entry by a value from {sources} (no packet field), while {at(named)} names "
                f"entries by {fields}: the first lives on the core of the packet that made the {sources} entry, the "
                f"second on the core the NIC picks for {fields}, and no RSS key relates the two")
    for k in keyed:  # as the sharding stage: only a key no bit of which is an RSS field's bit
        if k.kind == "packet" and k.non_rss and all(b is None for b in rss_bits(k.access)):
            unhashable = ", ".join(field_name(s) for s in k.non_rss)
            mixed = sorted(field_name(s) for s in symbols_of(k.access.key) if s.startswith("p.") and s not in k.non_rss)
            if mixed:
                return (f"{at(k)} is keyed by a mix of {', '.join(mixed)} and {unhashable} (a hash or a sum: no key "
                        f"bit is one field's bit), so the packets that share an entry agree on no field the NIC "
                        f"hashes ({unhashable}: not hashable at all)")
            return (f"{at(k)} is keyed by {unhashable}, which the NIC cannot hash (RSS hashes only IP addresses "
                    "and ports)")
    following = decisions.get(name, {}).get("follows", ())
    locked = [o for o in following if decisions.get(o, {}).get("decision") == "lock"]
    if locked:
        return (f"its entries are found through {' and '.join(locked)}, which "
                f"{'is' if len(locked) == 1 else 'are'} shared")
    reason = decisions.get(name, {}).get("reason", "")
    if reason and "share no RSS-hashable field" not in reason:
        # a lock decided after the keys (an index handed out again, an expiry some path skips): the
        # stage's own words, with field names and the NF's file as the explorer names them
        file = analysis.source
        return in_words(reason.split("; not replicated", 1)[0]).replace(f"{file}:", f"{Path(file).name}:")
    return "two packets that share no hashable field can reach the same entry (its key is a hash or a sum of fields)"


def describe(analysis: Analysis, solution: Any = None) -> dict[str, Any]:
    """Per object: ``decision``, ``summary`` (a sentence in the NF's terms), ``sites``, ``fields``
    (per device, inherited ones for objects that follow another), ``follows``, ``broken`` (what a
    wrong override breaks, "" otherwise) and ``details`` (the engine's reason); and the
    ``strategy`` with its summary and details."""
    decisions: dict[str, dict[str, Any]] = {}
    broken: dict[str, list[str]] = {}
    if solution is not None:
        for o in solution.sharding.objects:
            decisions[o.name] = {"decision": o.decision, "reason": o.reason, "follows": list(o.follows),
                                 "fields": {str(d): list(f) for d, f in o.fields}, "overridden": o.overridden,
                                 "natural": o.natural, "written": getattr(o, "written", False),
                                 "writers": tuple(getattr(o, "writers", ())),
                                 "write_class": getattr(o, "write_class", "")}
        if not under_lock(solution):  # a locks or tm build is correct whatever the NIC hashes
            for c in solution.sharding.violated:
                broken.setdefault(c.origin.split(":", 1)[0], []).append(c.origin)
    if solution is not None:  # a broken object's entries go where the NIC now hashes: show that
        hashed = {str(d): list(f) for d, f in solution.sharding.hashed}
        for name in broken:
            if name in decisions and not any(decisions[name]["fields"].values()):
                decisions[name]["fields"] = {d: f for d, f in hashed.items() if d in decisions[name]["fields"]} or hashed
    objects: dict[str, Any] = {}
    for obj in analysis.objects:
        info = decisions.get(obj.name, {})
        decision = info.get("decision", "")
        where_used = sites(analysis, obj.name)
        fields = dict(info.get("fields", {}))
        inherited = _inherited(obj.name, decisions) if info.get("follows") else {}
        entry = {"name": obj.name, "kind": obj.kind, "decision": decision, "sites": where_used,
                 "fields": fields or inherited, "inherited": bool(inherited and not fields),
                 "follows": list(info.get("follows", ())), "broken": "", "details": info.get("reason", "")}
        entry["summary"] = _summary(analysis, obj.name, decision, info, where_used, decisions, inherited)
        allocation = _allocation_of(solution, obj.name)
        if allocation is not None and decision == "shard":
            entry["summary"] = allocation_summary(allocation, obj.name)
        if under_lock(solution) and decision and decision != "lock":
            why, could = _under_lock_role(solution, obj.name), alone(decision, fields)
            entry["decision"], entry["summary"] = "lock", (
                f"{could[0].upper() + could[1:]}, but the {solution.strategy} build runs every object behind "
                f"its lock{f' ({why})' if why else ''}. Alone: {entry['summary']}")
        if obj.name in broken:
            entry["broken"] = _broken_text(obj.name, info, broken[obj.name], dict(solution.sharding.hashed), analysis)
        elif _follows_broken(obj.name, decisions, broken):
            source = _follows_broken(obj.name, decisions, broken)
            entry["broken"] = (f"Follows {source}, which the override breaks: its entries split across cores "
                               f"with {source}'s. " + entry["summary"])
        objects[obj.name] = entry
    return {"nf": analysis.nf, "objects": objects, "keys": key_layouts(analysis),
            "strategy": _strategy(solution, objects) if solution is not None else {}}


def alone(decision: str, fields: Mapping[Any, Sequence[str]]) -> str:
    """What an object under a locks build could be by itself: its decision, unless the packets that
    share its entries agree on no RSS field on some device (then no key shards it, alone or not)."""
    bare = sorted(str(d) for d, f in fields.items() if not f)
    if decision == "shard" and bare:
        return (f"could not shard even alone (the packets that share its entries agree on no RSS field on device"
                f"{'s' if len(bare) > 1 else ''} {', '.join(bare)})")
    return f"could {decision} alone"


def under_lock(solution: Any) -> bool:
    """Whether ``solution`` runs every object behind the locks (a locks or tm strategy), whatever
    each object could be alone (its decision records that)."""
    return solution is not None and solution.strategy in ("locks", "tm")


def _allocation_of(solution: Any, name: str) -> Any:
    """The allocation that shards ``name`` (sharding by allocation), or None."""
    if solution is None:
        return None
    return next((a for a in solution.sharding.allocations if name == a.allocator or name in a.objects), None)


def _follows_broken(name: str, decisions: Mapping[str, Mapping[str, Any]], broken: Mapping[str, Any],
                    seen: frozenset[str] = frozenset()) -> str:
    """The broken object ``name`` follows, directly or not ("" when none)."""
    for source in decisions.get(name, {}).get("follows", ()):
        if source in broken:
            return source
        if source not in seen:
            found = _follows_broken(source, decisions, broken, seen | {name})
            if found:
                return found
    return ""


def _inherited(name: str, decisions: Mapping[str, Mapping[str, Any]], seen: frozenset[str] = frozenset()) -> dict:
    """The fields of the first object ``name`` follows that has its own (following is transitive)."""
    for source in decisions.get(name, {}).get("follows", ()):
        if source in seen:
            continue
        fields = decisions.get(source, {}).get("fields") or _inherited(source, decisions, seen | {name})
        if fields:
            return dict(fields)
    return {}


def _summary(analysis: Analysis, name: str, decision: str, info: Mapping[str, Any], where_used: list,
             decisions: Mapping[str, Any], inherited: Mapping[str, Sequence[str]]) -> str:
    written = any(s["mutates"] for s in where_used)
    if not where_used:
        return "Not used while processing packets: every core gets a copy filled by nf_init."
    if not decision:
        first = where_used[0]
        return f"Used at {', '.join(s['where'] for s in where_used[:4])}; " + (
            "written by packets." if written else "only read by packets.") + f" {_site_phrase(first, name)}."
    if decision == "replicate" and written:
        writers = set(info.get("writers", ()))
        at = [s["where"] for s in where_used if s["mutates"] and writers & set(s["paths"])] or \
            [s["where"] for s in where_used if s["mutates"]]
        who = in_words(info.get("write_class", "")) or "a few packets"
        return (f"Written only by rare packets ({who}; at {', '.join(at[:3])}): every core keeps a full copy, and "
                "each of those packets broadcasts its write to the other cores' copies. Packets that only read "
                "it can go to any core, so it asks nothing of the NIC.")
    if decision == "replicate":
        return ("Packets only read it (" + ", ".join(s["where"] for s in where_used[:3]) +
                "): every core gets its own copy, filled by nf_init.")
    if decision == "lock":
        return f"Shared by all cores behind a lock: {_lock_cause(analysis, name, decisions)}."
    if info.get("follows"):
        follows = list(info["follows"])
        tail = f" ({_fields_text(inherited)})" if inherited else ""
        return (f"Its entries are found through {' and '.join(follows)}, so each lives on the core that holds the "
                f"{' or '.join(follows)} entry leading to it: it is sharded as {' and '.join(follows)} "
                f"{'is' if len(follows) == 1 else 'are'}{tail}.")
    keyed = [s for s in where_used if any(s["keys"].values())]
    if not keyed:
        return (f"No packet field names its entries ({', '.join(s['where'] for s in where_used[:3])}): each core "
                "allocates and uses its own, so it needs nothing from the NIC.")
    parts = [_site_phrase(s, name) for s in keyed][:4]
    natural = info.get("natural", ())
    cross = next((c for c in natural if c.dev1 != c.dev2), None)
    share = ""
    if cross is not None:
        share = f" {_packets(cross.dev1, cross.dev2).capitalize()} share an entry when they have {relation(cross)}."
    fields = info.get("fields", {})
    agreed = any(fields.values())
    hashed = f" Each device hashes what its packets agree on: {_fields_text(fields)}." if agreed else ""
    return "; ".join(parts) + "." + share + hashed


def _broken_text(name: str, info: Mapping[str, Any], origins: Sequence[str], hashed: Mapping[int, Sequence[str]],
                 analysis: Optional[Analysis] = None) -> str:
    natural = {c.origin: c for c in info.get("natural", ())}
    for origin in origins:
        c = natural.get(origin)
        if c is None:
            continue
        devices = sorted({c.dev1, c.dev2})
        nic = _fields_text({str(d): list(hashed.get(d, ())) for d in devices})
        lines = _keyed_lines(analysis, name, devices) if analysis is not None else ""
        return (f"Broken by the override: {_packets(c.dev1, c.dev2)} with {relation(c)} share an entry of {name}"
                f"{f' ({lines})' if lines else ''}, "
                f"but the NIC now hashes {nic}, which can tell them apart: they can reach different cores.")
    nic = _fields_text({str(d): list(f) for d, f in hashed.items()})
    return f"Broken by the override: the NIC hashes {nic}, so packets that share an entry of {name} can reach different cores."


def _strategy(solution: Any, objects: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    locked = [o for o in solution.sharding.objects if o.decision == "lock"]  # not merely under a locks build
    broken = [o["name"] for o in objects.values() if o["broken"]]
    setup = f"{solution.analysis.nf} on {solution.cores} core{'s' if solution.cores != 1 else ''}, {solution.nic.name}"
    if not solution.valid:
        summary = (f"Not correct: the override breaks {', '.join(broken) or 'the sharding'}, so these keys would "
                   f"split state across cores ({setup}). Generate refuses it; Verify can build it to show what "
                   "goes wrong.")
    elif solution.strategy == "shared-nothing":
        summary = f"Shared-nothing: every core owns the state of the packets the NIC sends it ({setup})."
    elif locked:
        summary = (f"{solution.strategy}: {', '.join(o.name for o in locked)} cannot be split among cores, so "
                   f"the state is shared behind locks ({setup}).")
    elif solution.explanation:
        summary = (f"{solution.strategy}: no RSS configuration keeps every shared entry on one core, so the state is "
                   f"shared behind locks ({setup}). {why_not_sharded(solution)}").rstrip()
    else:
        summary = f"{solution.strategy}, as asked: the state is shared behind locks ({setup})."

    return {"name": solution.strategy, "valid": solution.valid, "summary": summary,
            "details": solution.explanation}


# ---- why not shared-nothing ----------------------------------------------------------------

def _names(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _devices(devs: Sequence[int]) -> str:
    devs = sorted(devs)
    return f"device{'s' if len(devs) > 1 else ''} {_names([str(d) for d in devs])}"


def _keyed_lines(analysis: Analysis, name: str, devices: Sequence[int] = ()) -> str:
    """``dns_guard.c:73, dns_guard.c:90``: where packets (of ``devices``, any when empty) name
    entries of ``name`` by a key."""
    found = [s["where"] for s in sites(analysis, name)
             if any(k for d, k in s["keys"].items() if not devices or int(d) in devices)]
    return ", ".join(dict.fromkeys(found))


def _agreed(sharding: Any) -> dict[int, dict[str, frozenset[str]]]:
    """Per device, per sharded object with constraints there: the RSS fields its packets agree on."""
    out: dict[int, dict[str, frozenset[str]]] = {}
    for o in sharding.objects:
        if o.decision == "shard":
            for dev, fields in o.fields:
                out.setdefault(dev, {})[o.name] = frozenset(fields)
    return out


def _ordered(fields: Iterable[str]) -> str:
    return ", ".join(f for f in RSS_NAMES if f in set(fields)) or "no field"


def _clash(sharding: Any, part: Any) -> Optional[dict[str, Any]]:
    """What one constraint of the key solver's conflict needs and who forbids it: the object, the
    natural constraint, its field pairs (device-1 field, device-2 field), and per device the other
    objects that leave the device only the fields they agree on."""
    name = part.origin.split(":", 1)[0]  # the sharding stage's convention: "<object>: ..."
    try:
        decision = sharding.decision(name)
    except StopIteration:
        return None
    natural = next((c for c in decision.natural if c.origin == part.origin), None)
    if natural is None:
        return None
    agreed = _agreed(sharding)
    allowed = {d: frozenset.intersection(*per.values()) for d, per in agreed.items() if per}
    pairs = sorted(natural.related_fields(), key=lambda p: (RSS_NAMES.index(p[0]), RSS_NAMES.index(p[1])))
    limits: dict[int, list[str]] = {}
    for side, dev in ((0, natural.dev1), (1, natural.dev2)):
        wanted = {pair[side] for pair in pairs} - allowed.get(dev, frozenset(RSS_NAMES))
        for other, fields in sorted(agreed.get(dev, {}).items()):
            if other != name and wanted - fields and other not in limits.get(dev, []):
                limits.setdefault(dev, []).append(other)
    return {"object": name, "natural": natural, "pairs": pairs, "limits": limits, "allowed": allowed}


def conflict_objects(sharding: Any, conflict: Any) -> tuple[str, ...]:
    """The objects the key solver's conflict involves: those whose shared entries no key keeps on
    one core, and those that leave a device too few fields for them (in that order, once each);
    with no conflict, the sharded objects of the devices whose fields have nothing in common."""
    out: list[str] = []
    if conflict is None:
        for _, per in sorted(_agreed(sharding).items()):
            if per and not frozenset.intersection(*per.values()):
                out.extend(sorted(per))
    for part in (conflict.parts if conflict is not None else ()):
        clash = _clash(sharding, part)
        if clash is None:
            continue
        out.append(clash["object"])
        out.extend(o for objs in clash["limits"].values() for o in objs)
    return tuple(dict.fromkeys(out))


def conflict_words(analysis: Analysis, sharding: Any, conflict: Any, remedies: Optional[Sequence[str]] = None) -> str:
    """The key solver's conflict in the NF's terms: which object's shared entries no key keeps
    together, at which lines, which fields each side would have to hash alike, which objects
    forbid those fields (and where), and the overrides checked to get around it (None: not checked)."""
    spread = _devices(conflict.devices)
    sentences = [f"Every RSS key that keeps each shared entry on one core sends all packets of {spread} to one "
                 "core."]
    for part in conflict.parts:
        clash = _clash(sharding, part)
        if clash is None:
            continue
        c, name = clash["natural"], clash["object"]
        lines = _keyed_lines(analysis, name, (c.dev1, c.dev2))
        steer = (f"device {c.dev1}'s {', '.join(a for a, _ in clash['pairs'])} would have to steer as device "
                 f"{c.dev2}'s {', '.join(b for _, b in clash['pairs'])} do" if c.dev1 != c.dev2 else
                 f"the two packets would have to be hashed on {_ordered(a for a, _ in clash['pairs'])}")
        sentences.append(f"{name} ({lines}) puts {_packets(c.dev1, c.dev2)} in one entry when they have "
                         f"{relation(c)}: {steer}.")
        limits = []
        for dev in sorted(clash["limits"]):
            objs = clash["limits"][dev]
            where_objs = _names([f"{o} ({_keyed_lines(analysis, o, (dev,))})" for o in objs])
            limits.append(f"device {dev} may hash only {_ordered(clash['allowed'].get(dev, ()))}, all that the "
                          f"packets sharing an entry of {where_objs} agree on")
        if limits:
            sentences.append(f"But {'; and '.join(limits)}: no field is left hashed alike on both sides.")
    if remedies:
        sentences.append(_remedy_words(remedies))
    elif remedies is not None:
        sentences.append("Replicating one of them (--override OBJ=replicate) does not let the others shard, or "
                         "would broadcast the writes of frequent packets.")
    return " ".join(sentences)


def _common_field_words(solution: Any) -> str:
    """Why no device field set suits every sharded object (no override involved): per device, what
    each object's sharing packets agree on, and where; devices with the same story are told once."""
    analysis = solution.analysis
    told: dict[tuple, list[int]] = {}
    for dev, per in sorted(_agreed(solution.sharding).items()):
        if per and not frozenset.intersection(*per.values()):
            told.setdefault(tuple(sorted(per.items())), []).append(dev)
    sentences = []
    for per, devs in told.items():
        parts = [f"an entry of {o} ({_keyed_lines(analysis, o, devs)}) agree "
                 + (f"only on {_ordered(f)}" if f else "on no field the NIC can hash") for o, f in per]
        alone = _names([o for o, f in per if not f])
        tail = (f"no key keeps the entries of {alone} on one core, even alone" if alone else
                "a key hashing any field splits some of them, so no key keeps every object's entries on one core")
        sentences.append(f"The packets of {_devices(devs)} that share {'; those that share '.join(parts)}: {tail}.")
    remedies = tuple(getattr(solution, "remedies", ()))
    if remedies:
        sentences.append(_remedy_words(remedies))
    return " ".join(sentences)


def _remedy_words(remedies: Sequence[str]) -> str:
    return (f"It runs shared-nothing with {' or '.join(f'--override {r}' for r in remedies)}: that object keeps a "
            "copy on every core, and the rare packets that write it broadcast their writes to the other copies.")


def _locked_words(solution: Any) -> str:
    return locked_words(solution.analysis, solution.sharding)


def locked_words(analysis: Analysis, sharding: Any) -> str:
    """The locked objects' causes (the first of each chain of objects found through one another),
    in the NF's terms: what the explorer, nfx solve's why and a refused --strategy sn all say."""
    decisions = {o.name: {"decision": o.decision, "follows": list(o.follows), "reason": o.reason}
                 for o in sharding.objects}
    locked = [o.name for o in sharding.locked]
    roots = [n for n in locked if not set(decisions[n]["follows"]) & set(locked)]
    rest = [n for n in locked if n not in roots]
    text = " ".join(f"{n}: {_lock_cause(analysis, n, decisions)}." for n in roots)
    if rest:
        text += f" {_names(rest)} {'is' if len(rest) == 1 else 'are'} found through {'it' if len(roots) == 1 else 'them'}."
    return text.strip()


def _override_words(solution: Any) -> str:
    """What a wrong override breaks, per object it splits directly (those that follow one split
    with it), in the NF's terms."""
    sharding = solution.sharding
    origins: dict[str, list[str]] = {}
    for c in sharding.violated:
        origins.setdefault(c.origin.split(":", 1)[0], []).append(c.origin)
    infos = {o.name: {"natural": o.natural} for o in sharding.objects}
    texts = [_broken_text(name, infos.get(name, {}), found, dict(sharding.hashed), solution.analysis)
             for name, found in origins.items()]
    texts = [t.removeprefix("Broken by the override: ") for t in texts]
    for dev, per in sorted(_agreed(sharding).items(), reverse=True):  # what the override leaves each object
        if len(per) > 1 and not frozenset.intersection(*per.values()):
            needs = _names([f"{_ordered(f) if f else 'no field'} for {o} ({_keyed_lines(solution.analysis, o, (dev,))})"
                            for o, f in sorted(per.items())])
            texts.insert(0, f"with the override, device {dev} would have to hash only {needs}: no field serves "
                            f"them all, so the NIC hashes {_ordered(dict(sharding.hashed).get(dev, ()))}.")
    return " ".join(t[0].upper() + t[1:] for t in texts)


def why_not_sharded(solution: Any) -> str:
    """Why ``solution`` does not run shared-nothing when the NF was left to choose: once, in the
    NF's terms (its lines, packet fields, devices, what an override could change); "" when it does,
    or when locks or tm were asked for, or when an override broke it (``broken`` says that)."""
    sharding = solution.sharding
    if not solution.valid and not under_lock(solution):
        return _override_words(solution)
    if solution.strategy == "shared-nothing" or not solution.valid:
        return ""
    if sharding.locked:
        return _locked_words(solution)
    if getattr(solution, "conflict", None) is not None:
        return conflict_words(solution.analysis, sharding, solution.conflict, solution.remedies)
    if sharding.conflicts:
        return _common_field_words(solution)
    return ""


def _under_lock_role(solution: Any, name: str) -> str:
    """Why an object that could be sharded alone is under the build's lock, in its own terms."""
    sharding = solution.sharding
    if sharding.locked:
        return f"{_names([o.name for o in sharding.locked])} cannot be split, and the build locks every object"
    conflict = getattr(solution, "conflict", None)
    if conflict is not None:
        for part in conflict.parts:
            clash = _clash(sharding, part)
            if clash is None:
                continue
            others = [o for objs in clash["limits"].values() for o in objs]
            if name == clash["object"]:
                return (f"its entries' packets need a field hashed alike on devices {clash['natural'].dev1} and "
                        f"{clash['natural'].dev2}, and {_names(list(dict.fromkeys(others)))} leave none")
            for dev, objs in sorted(clash["limits"].items()):
                if name in objs:
                    return (f"it lets device {dev} hash only {_ordered(clash['allowed'].get(dev, ()))}, which leaves "
                            f"{clash['object']}'s packets no field hashed alike")
        return (f"no RSS key shards {_names(conflict_objects(sharding, conflict))} together, and the build locks "
                "every object")
    if sharding.conflicts:
        for dev, per in sorted(_agreed(sharding).items()):
            if name in per and per and not frozenset.intersection(*per.values()):
                others = [o for o in per if o != name]
                if not per[name]:
                    return ""  # it could not shard even alone: ``alone`` says why
                return (f"on device {dev} its packets agree only on {_ordered(per[name])}"
                        + (f", and {_names(others)}'s on none of those" if others else ""))
        return "no RSS key shards every object together, and the build locks every object"
    return f"{solution.strategy} was asked for"


# ---- counterexamples ------------------------------------------------------------------------

POOL_PACKETS = 4096  # realistic packets drawn to find a split pair


def _addresses(values: np.ndarray) -> list[str]:
    return [str(ipaddress.IPv4Address(int(v))) for v in values]


def counterexample(solution: Any, seed: Optional[int] = None) -> Optional[dict[str, Any]]:
    """Two packets from realistic traffic (LAN clients in 10.0.0.0/8, public servers, real service
    ports) that share an entry of an object the overrides broke, but that the plan sends to
    different cores; None when the solution is valid or no such pair is found among the candidates.

    ``packets`` are dicts (device, addresses, ports, protocol, RETA entry, core) in the order the
    constraint names them; ``object``, ``relation`` and ``sites`` say what they share."""
    from explorer.simulate.steering import steer
    from explorer.traffic.generators import ROUTER_MAC, generate_headers, host_mac
    from explorer.traffic.headers import Headers

    if solution.valid or not solution.sharding.violated:
        return None
    seed = solution.seed if seed is None else seed
    pool = generate_headers("bidir", packets=POOL_PACKETS, flows=POOL_PACKETS // 4, seed=seed)
    rng = np.random.default_rng(seed)
    for c in solution.sharding.violated:
        first = _candidates(pool, c.dev1)
        second = _candidates(pool, c.dev2)
        if len(first) == 0 or len(second) == 0:
            continue
        n = min(len(first), len(second))
        first, second = first.take(np.arange(n)), second.take(rng.permutation(len(second))[:n])
        columns = {name: getattr(second, name).astype(np.uint64) for name in RSS_NAMES}
        consistent = np.ones(n, dtype=bool)
        assigned: dict[tuple[str, int], np.ndarray] = {}
        for (f1, i1), (f2, i2) in c.equal:
            w1, w2 = RSS_BITS[f1], RSS_BITS[f2]
            bit = (getattr(first, f1).astype(np.uint64) >> np.uint64(w1 - 1 - i1)) & np.uint64(1)
            shift = np.uint64(w2 - 1 - i2)
            if (f2, i2) in assigned:
                consistent &= assigned[(f2, i2)] == bit
            assigned[(f2, i2)] = bit
            columns[f2] = (columns[f2] & ~(np.uint64(1) << shift)) | (bit << shift)
        second = second.with_columns(
            src_ip=columns["src_ip"].astype(np.uint32), dst_ip=columns["dst_ip"].astype(np.uint32),
            src_port=columns["src_port"].astype(np.uint16), dst_port=columns["dst_port"].astype(np.uint16),
            proto=first.proto, devices=np.full(n, c.dev2, dtype=np.uint16))
        if c.dev2 == 0:
            second = second.with_columns(eth_src=host_mac(second.src_ip), eth_dst=np.full(n, ROUTER_MAC))
        elif c.dev2 == 1:
            second = second.with_columns(eth_src=np.full(n, ROUTER_MAC), eth_dst=host_mac(second.dst_ip))
        first = first.with_columns(devices=np.full(n, c.dev1, dtype=np.uint16))
        one = steer(solution.plan, first.fields(), first.devices.astype(np.int64))
        two = steer(solution.plan, second.fields(), second.devices.astype(np.int64))
        split = np.flatnonzero(consistent & (one.cores != two.cores))
        if len(split) == 0:
            continue
        i = int(split[0])
        name = c.origin.split(":", 1)[0]
        pair = Headers.concat([first.take(np.array([i])), second.take(np.array([i]))])
        packets = []
        for k, steering in enumerate((one, two)):
            packets.append({
                "device": int(pair.devices[k]), "src_ip": _addresses(pair.src_ip[k:k + 1])[0],
                "dst_ip": _addresses(pair.dst_ip[k:k + 1])[0], "src_port": int(pair.src_port[k]),
                "dst_port": int(pair.dst_port[k]), "protocol": {6: "TCP", 17: "UDP"}.get(int(pair.proto[k]), str(int(pair.proto[k]))),
                "reta_index": int(steering.buckets[i]), "core": int(steering.cores[i])})
        return {"object": name, "relation": relation(c), "packets": packets,
                "sites": [s for s in sites(solution.analysis, name) if any(s["keys"].values())],
                "details": c.origin, "_headers": pair}
    return None


def _candidates(pool: Any, device: int) -> Any:
    """Packets of ``pool`` that the NIC hashes on every field (IPv4 TCP/UDP), as received on
    ``device`` (devices other than 0 and 1 get LAN-side packets)."""
    mask = (pool.ether_type == 0x0800) & np.isin(pool.proto, (6, 17)) & (pool.frag_off & 0x3FFF == 0)
    same = mask & (pool.devices == device)
    return pool.take(np.flatnonzero(same if same.any() else mask & (pool.devices == 0)))


def verdict_text(verdict: int) -> str:
    return {-1: "drops it", -2: "floods it to every port"}.get(verdict, f"forwards it to device {verdict}")


def what_happens(solution: Any, example: Mapping[str, Any]) -> dict[str, Any]:
    """Run the sequential NF on the counterexample's two packets, in the order in which the second
    one depends on the first: once together (as one core holding all the state sees them) and the
    second alone (as the other core, which never saw the first, sees it). Returns the order, both
    verdicts of the second packet and a sentence; ``differs`` is False when this pair happens to get
    the same verdict either way (the state is still split)."""
    from explorer.run import run_trace
    from explorer.traffic.frames import build_frames
    from explorer.traffic.trace import Trace

    pair = example["_headers"]
    defines = _changed_defines(solution.analysis)
    outcome: dict[str, Any] = {}
    for first, second in ((0, 1), (1, 0)):
        order = pair.take(np.array([first, second]))
        stamps = np.array([1_700_000_000_000_000_000, 1_700_000_000_001_000_000], dtype=np.uint64)
        frames = build_frames(order.with_columns(timestamps=stamps))
        together = run_trace(solution.analysis.source, Trace(stamps, order.devices, frames), defines)
        alone = run_trace(solution.analysis.source, Trace(stamps[1:], order.devices[1:], frames[1:]), defines)
        seq, par = together.verdicts[1].verdict, alone.verdicts[0].verdict
        same_bytes = [f for i, _, f in together.outputs if i == 1] == [f for i, _, f in alone.outputs if i == 0]
        outcome = {"first": first, "second": second, "sequential": int(seq), "parallel": int(par),
                   "differs": seq != par or not same_bytes}
        if outcome["differs"]:
            break
    packets = example["packets"]
    a, b = packets[outcome["first"]], packets[outcome["second"]]
    name = example["object"]
    nf = solution.analysis.nf
    if outcome["differs"] and outcome["sequential"] != outcome["parallel"]:
        text = (f"The second packet reaches core {b['core']}, but the {name} entry the first one made lives on core "
                f"{a['core']}. Sequentially {nf} {verdict_text(outcome['sequential'])}; on core {b['core']}, which "
                f"never saw the first packet, {nf} {verdict_text(outcome['parallel'])}.")
    elif outcome["differs"]:
        text = (f"The second packet reaches core {b['core']}, away from the {name} entry on core {a['core']}: {nf} "
                f"{verdict_text(outcome['parallel'])} either way, but writes different bytes.")
    else:
        text = (f"The two packets use the same {name} entry from cores {a['core']} and {b['core']}: each core keeps "
                f"its own copy, so what one core records the other never sees. This time the second packet's verdict "
                f"is the same either way ({nf} {verdict_text(outcome['sequential'])}), but the state has split.")
    return {**outcome, "text": text}


def _changed_defines(analysis: Analysis) -> dict[str, str]:
    """The configuration values the analysis used that differ from the NF's own defaults."""
    from explorer.nfsource import read_nf

    defaults = dict(read_nf(analysis.source).configuration)  # preprocessed, not parsed: only its macros are read
    return {n: v for n, v in analysis.defines if defaults.get(n) != v}


def public(example: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """A counterexample without its internal packet columns (what views and JSON get)."""
    if example is None:
        return None
    return {k: v for k, v in example.items() if not k.startswith("_")}


# ---- packets of a trace --------------------------------------------------------------------

PROTOCOLS = {6: "TCP", 17: "UDP", 1: "ICMP"}


def packets_at(chunks: Iterable[tuple[Any, Any]], numbers: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The header fields of the packets numbered ``numbers`` (0 is the first, in trace order) of a
    trace given as ``(PacketFields, devices)`` chunks: to show a simulator's examples as packets."""
    wanted = sorted(set(int(n) for n in numbers))
    out: dict[int, dict[str, Any]] = {}
    start = 0
    for fields, devices in chunks:
        count = len(fields)
        for number in wanted:
            if start <= number < start + count:
                i = number - start
                ipv4 = bool(fields.is_ipv4[i])
                out[number] = {
                    "number": number, "device": int(devices[i]),
                    "src_ip": _addresses(fields.src_ip[i:i + 1])[0] if ipv4 else "",
                    "dst_ip": _addresses(fields.dst_ip[i:i + 1])[0] if ipv4 else "",
                    "src_port": int(fields.src_port[i]) if bool(fields.is_l4[i]) else None,
                    "dst_port": int(fields.dst_port[i]) if bool(fields.is_l4[i]) else None,
                    "protocol": PROTOCOLS.get(int(fields.proto[i]), str(int(fields.proto[i]))) if ipv4 else "",
                }
        start += count
        if wanted and start > wanted[-1]:
            break
    return out
