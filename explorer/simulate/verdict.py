"""The simulator's verdict in words, for ``nfx simulate`` and the explorer alike (both read the
report's ``to_dict``): how many violations, and, in the same sentence, which objects went unchecked.

A count of 0 said nothing about an object whose keys the simulator could not compute (a NAT's WAN
table, keyed by the port its allocator handed out, under a plan that does not shard by allocation):
a person read "0 violations" for a plan that splits every flow. So the count is stated "among the
checked objects" whenever some object went unchecked, and those objects are named with why."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


def unchecked_text(objects: Sequence[Mapping[str, Any]]) -> str:
    """``"external unchecked: its key holds an index that chain allocates (chain.index#3), which the
    packets alone do not give"``, one clause per object (``Unchecked.to_dict``); "" when none."""
    symbols: dict[str, list[Mapping[str, Any]]] = {}
    for u in objects:
        symbols.setdefault(u["object"], []).append(u)
    clauses = []
    for name, found in symbols.items():
        reads = " and ".join(f"holds an index that {u['allocator']} allocates ({u['symbol']})" if u.get("allocator")
                             else f"uses {u['symbol']}" for u in found)
        clauses.append(f"{name} unchecked: its key {reads}, which the packets alone do not give")
    return "; ".join(clauses)


def split_flows(data: Mapping[str, Any]) -> int:
    """Of the report's violation count, the flows whose replies reached another core than the one that
    allocated their value (``PoolReport.violations``); the rest are state keys."""
    return sum(int(p["violations"]) for p in data.get("pools") or ())


def violations_line(data: Mapping[str, Any]) -> str:
    """The summary line of a shared-nothing report: what the count is made of (keys, split flows),
    and never a bare count when an object went unchecked."""
    count = int(data["violations"]["count"])
    flows = split_flows(data)
    unchecked = unchecked_text(data.get("unchecked_objects") or ())
    keys = f"{count - flows} state keys touched from more than one core"
    line = (f"sharding violations: {count} ({keys}, {flows} flow{'' if flows == 1 else 's'} whose replies reached "
            "another core than the one that allocated their value)" if flows else f"sharding violations: {keys}")
    return f"{line} among the checked objects; {unchecked}" if unchecked else line


def allocation_text(pool: Mapping[str, Any]) -> str:
    """What one allocator did with the replies (``PoolReport.to_dict``): per-core pools (sharding by
    allocation), or, under a plan that is not, each core's own indices."""
    strayed = int(pool.get("stray", 0))
    flows = int(pool["violations"])
    where = (f"{strayed} reached another core ({flows} flow{'' if flows == 1 else 's'} split"
             + (f": {', '.join(pool['objects'])} there has no entry for them)" if strayed and pool.get("objects")
                else ")"))
    replies = f"{pool['replies']} replies addressed to what their flow's core allocated, {where}"
    allocated = " ".join(str(x) for x in pool["allocated"])
    if pool.get("pooled", True):
        return (f"pools of {pool['allocator']}: {replies}; {pool['exhausted']} new flows found their pool used up; "
                f"allocated per core: {allocated}")
    carried = f" (replies carry {pool['field']} = {pool['formula']})" if pool.get("field") else ""
    return (f"{pool['allocator']}: not sharded by allocation, so each core's own {pool['allocator']} hands out "
            f"its indices from 0{carried}: {replies}; {pool['exhausted']} new flows found their core's share "
            f"used up; allocated per core: {allocated}")
