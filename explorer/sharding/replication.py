"""The replicate decision for written objects: every core keeps a full copy, and the rare packets
that write it broadcast their writes to the other cores (``explorer/runtime/nf_replica.c``).

Objects that would otherwise need a lock (a global backend table, a table that a lookup scans, a
vector indexed by values read from them), or that no RSS key can shard (a blocklist looked up by a
frame's source and by its destination: the packets that share an entry agree on no one field), are
replicated together when:

* every packet-driven write of each of them is made on a path of a narrow packet class (see
  ``writers``): rare control traffic such as a load balancer's heartbeats;
* the group is closed: objects that one expiry call changes together, and objects whose indices
  come from a replicated object, are replicated with it (their entries mean the same on every core);
* a packet that turns out to write can run again as a writer: on every path, nothing but expiry
  changes a sharded object before the first change to a replicated one (expiry at the same ``now``
  changes nothing the second time);
* no replicated object takes its indices from a sharded object's allocations (those differ per
  core).

Then reads of a replicated object impose no RSS constraint and broadcast writes go through rings,
not RSS; the rest of the NF's state is sharded as usual. When any condition fails, every object of
the group keeps its lock and the reason says which condition, with the write share's evidence (the
frequent writes and their packet class). The user can choose shard, replicate or lock per object.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Sequence

from explorer.errors import ConfigError
from explorer.ir import Analysis, Op, result_parts
from explorer.nf_terms import access_site, in_words, state_value, where
from explorer.sharding.writers import Writers, writers_of
from explorer.symbex.bitvec import symbols_of

DECISIONS = ("shard", "replicate", "lock")


def coupled(analysis: Analysis, decisions: Sequence) -> dict[str, set[str]]:
    """Objects that must share a replicated object's treatment: expiry partners (one expiry call
    changes them together) and objects whose indices come from it."""
    out: dict[str, set[str]] = {o.name: set() for o in decisions}
    for path in analysis.paths:
        for access in path.accesses:
            if access.op == Op.EXPIRE:
                members = {access.object, *access.related}
                for m in members:
                    out.setdefault(m, set()).update(members - {m})
    for o in decisions:
        for source in o.follows:
            out.setdefault(source, set()).add(o.name)
    return out


def replicate_rare_writers(analysis: Analysis, decisions: list, chosen: Mapping[str, str]) -> list:
    """The decisions with rarely written objects replicated instead of locked (see the module
    docstring); ``chosen`` maps objects to the user's decision."""
    by_name = {o.name: o for o in decisions}
    for name, want in chosen.items():
        if want not in DECISIONS:
            raise ConfigError(f"override {name}={want}: choose shard, replicate or lock")
        if want == "shard" and by_name[name].decision == "lock":
            raise ConfigError(f"cannot shard {name}: {by_name[name].reason}")
    seed = {o.name for o in decisions if o.decision == "lock" and chosen.get(o.name) != "lock"}
    seed |= {n for n, want in chosen.items() if want == "replicate"}
    unshardable = {o.name for o in decisions if _unshardable(o) and o.name not in chosen}
    out = list(decisions)
    if seed or unshardable:
        writers = writers_of(analysis)
        links = coupled(analysis, decisions)
        group, why_with = _closure(seed | unshardable, links, by_name)
        failure = _why_not(analysis, group, writers, by_name, chosen)
        if failure is not None and unshardable:
            # Not with them: the locked objects alone, as if the unshardable ones were not there
            # (they stay "shard" and the plan reports their conflict).
            group, why_with = _closure(seed, links, by_name)
            failure = _why_not(analysis, group, writers, by_name, chosen) if seed else None
        if failure is None:
            out = [_replicated(o, writers[o.name], chosen.get(o.name) == "replicate", why_with.get(o.name))
                   if o.name in group else o for o in out]
        elif any(chosen.get(n) == "replicate" for n in group):
            raise ConfigError(f"cannot replicate {', '.join(sorted(n for n in group if chosen.get(n) == 'replicate'))}: "
                              f"{failure}")
        else:
            culprit = failure.split(" ", 1)[0]
            if not (culprit in group and by_name[culprit].decision == "lock"):
                culprit = ""  # the reason is not on a locked object's row: say it on every row
            out = [replace(o, reason=f"{o.reason}; not replicated: "
                                     + (failure if o.name == culprit or not culprit
                                        else f"see {culprit}, which it goes with"),
                           writers=writers[o.name].paths, write_class=writers[o.name].class_text)
                   if o.name in group and o.decision == "lock" else o for o in out]
    return [replace(o, decision="lock", reason=f"chosen by the user (was {o.decision}: {o.reason})", chosen=True)
            if chosen.get(o.name) == "lock" else
            replace(o, chosen=True) if o.name in chosen else o for o in out]


def _unshardable(o) -> bool:
    """Whether ``o`` is "shard" only in name: on some device the packets that share its entries agree
    on no RSS field, so no key shards it and the plan would end in a conflict (and locks for every
    object). Such an object is tried as a replica like a locked one."""
    return o.decision == "shard" and not o.overridden and any(not fields for _, fields in o.fields)


def _closure(seed: set[str], links: Mapping[str, set[str]], by_name: Mapping) -> tuple[set[str], dict[str, str]]:
    """The written objects that must be replicated with ``seed``, and for each one pulled in, the
    member that pulled it."""
    group, pulled, todo = set(), {}, sorted(seed)
    while todo:
        name = todo.pop(0)
        if name in group or not by_name[name].written:  # objects nobody writes are a copy per core already
            continue
        group.add(name)
        for other in sorted(links.get(name, ())):
            if other not in group and other not in seed:
                pulled.setdefault(other, name)
                todo.append(other)
    return group, pulled


def _why_not(analysis: Analysis, group: set[str], writers: Mapping[str, Writers], by_name: Mapping,
             chosen: Mapping[str, str]) -> Optional[str]:
    """Why the group cannot be replicated, or None."""
    for name in sorted(group):
        if chosen.get(name) == "shard":
            partners = ", ".join(sorted(group - {name}))
            return f"{name} is chosen to be sharded, but it must be replicated with {partners}"
        if chosen.get(name) == "lock":
            return f"{name} is chosen to be locked"
    for name in sorted(group):
        w = writers[name]
        if not w.rare and not any(chosen.get(n) == "replicate" for n in group):
            return _frequent(name, w)
    hazard = _rerun_hazard(analysis, group)
    if hazard:
        return hazard
    return _per_core_indices(analysis, group, by_name)


def _frequent(name: str, w: Writers) -> str:
    first = w.frequent()[0]
    # The class may be a device alone (a management port): "any packet" would be wrong; what is
    # true is that no header field singles the writers out as rare control traffic.
    text = (f"{name} is written on paths whose packets no header field narrows ({first.site}; packet class: "
            f"{in_words(dict(w.classes)[first.path].text)}; narrow pins a port, an address, a MAC or a non-IPv4 "
            "EtherType), "
            f"so replicas would broadcast every packet of that class")
    rest = w.without_refreshes()
    if any(x.refresh for x in w.frequent()):
        if rest.rare:
            return (text + "; only its timestamp refreshes are frequent, and a core-local refresh (a per-replica "
                    "timestamp, max-merged at expiry) is not what the generated runtime does")
        other = rest.frequent()[0]
        return (text + f"; even with a core-local refresh (a per-replica timestamp, max-merged at expiry), "
                f"{other.site} would still write on every packet of its class")
    return text


def _rerun_hazard(analysis: Analysis, group: set[str]) -> Optional[str]:
    """A path that changes a sharded object (other than by expiry) before it may change a replicated
    one: a packet found to be a writer reruns from its start, and would repeat that change."""
    for path in analysis.paths:
        earlier = None
        for access in path.accesses:
            touched = {access.object, *access.related} if access.op == Op.EXPIRE else {access.object}
            if access.op.mutates and touched & group:
                if earlier is not None:
                    return (f"a path changes {earlier.object} ({access_site(earlier)}) before it may change "
                            f"{', '.join(sorted(touched & group))} ({access_site(access)}): a packet that must "
                            "rerun as a writer would repeat that change")
            elif access.op.mutates and access.op != Op.EXPIRE and earlier is None:
                earlier = access
    return None


def _per_core_indices(analysis: Analysis, group: set[str], by_name: Mapping) -> Optional[str]:
    """A replicated object keyed by a sharded object's allocated index (a per-core number)."""
    producers = {}
    for path in analysis.paths:
        for access in path.accesses:
            for result in access.results:
                producers[result] = access.object
    for path in analysis.paths:
        for access in path.accesses:
            if access.object not in group or access.key is None:
                continue
            for symbol in sorted(symbols_of(access.key)):
                source = producers.get(symbol)
                what = result_parts(symbol)[1]
                if source and source not in group and by_name[source].decision == "shard" and what in ("index", "value"):
                    return (f"{access_site(access)} keys {access.object} by {state_value(symbol, path)}, an "
                            f"index that sharded {source} allocates per core")
    return None


def _replicated(o, w: Writers, forced: bool, with_: Optional[str]):
    if w.writes:
        lines = ", ".join(dict.fromkeys(where(x.location) for x in w.writes))
        # an object replicated with a frequently written one it goes with need not be rare itself
        who = "only by rare packets" if w.rare else "by packets no header field singles out as rare"
        why = f"written {who} ({in_words(w.class_text)}; at {lines}), which broadcast their writes to every core's copy"
    else:
        why = "changed only by expiry, which reaches every core's copy from the same timestamps"
    if forced:
        why = f"replicated by choice: {why}" if w.rare else \
            "replicated by choice: every packet that writes it broadcasts the write to every core"
    if with_ is not None:
        note = f" (goes with {with_}: they share an expiry or its indices)"
    elif o.decision == "lock":
        note = f" (instead of a lock: {o.reason})"
    elif _unshardable(o):
        note = f" (no RSS key shards it: its {o.reason})"
    else:
        note = ""
    return replace(o, decision="replicate", reason=why + "; its reads need no RSS constraint" + note, fields=(),
                   constraints=(), natural=(), writers=w.paths, write_class=w.class_text)
