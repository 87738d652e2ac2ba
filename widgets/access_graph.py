"""The state-access graph as DOT, drawn from the engine's plain results (``Analysis.to_dict()`` and
``pipeline.explain``): devices, state objects coloured by their sharding decision, verdicts.

Two views: the *summary* has one edge per device, object and kind of operation (reads / writes),
labelled with the operations and, for keyed ones, the key's fields as that device's packets fill
it (the firewall's ``dev0: src_ip,dst_ip,src_port,dst_port`` against ``dev1: dst_ip,src_ip,dst_port,src_port``,
the names the CLI and the sharding table use);
the *detailed* view has one edge per path and access, and where each path sends the packet. A focus (an object, or a path)
is drawn in red: exactly the edges that object or that path has, nothing more. ``legend()`` lists
the colours and edge styles of what is drawn, and only those.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from widgets.source_view import verdict_text

SHAPES = {"map": "cylinder", "vector": "box3d", "dchain": "component", "sketch": "tab", "cht": "hexagon"}
DECISIONS = {  # fill, border, legend text
    "shard": ("#dafbe1", "#1a7f37", "shard: each core holds the entries of its packets"),
    "replicate": ("#ddf4ff", "#0969da", "replicate: a copy on every core"),
    "lock": ("#ffebe9", "#cf222e", "lock: one copy shared by all cores"),
    "broken": ("#fff1c2", "#9a6700", "broken by an override"),
    "": ("#ffffff", "#57606a", "not solved yet"),
}
FOCUS = "#d62728"
EDGES = {  # DOT attributes, legend text
    "reads": ('color="#57606a"', "reads (lookups, borrows)"),
    "writes": ('color="#0550ae", penwidth=2', "writes (puts, allocations, refreshes, expiry)"),
    "index": ('style=dashed, color="#8250df"', "gives the index (or key) into"),
    "verdict": ('color="#8c959f", arrowsize=0.6', "sends the packet"),
    "allocates": ('style=dotted, color="#bf3989", penwidth=2', "hands out a value packets carry back"),
}
FIELD_WORDS = {"p.ipv4.src": "src_ip", "p.ipv4.dst": "dst_ip", "p.l4.sport": "src_port", "p.l4.dport": "dst_port"}
SUMMARY, DETAILED = "summary", "detailed"


def default_view(analysis: Mapping[str, Any]) -> str:
    """The summary: even a firewall's per-path edges tangle; the detailed view is one click away."""
    return SUMMARY


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _kind(op: str) -> str:
    return "reads" if op in ("READ", "VERIFY") else "writes"


def _verdict_id(verdict: Mapping[str, Any]) -> str:
    return "verdict:" + verdict_text(verdict)


def decision_of(name: str, words: Optional[Mapping[str, Any]]) -> str:
    obj = ((words or {}).get("objects") or {}).get(name, {})
    return "broken" if obj.get("broken") else obj.get("decision", "")


def _indexing(path: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(source, target) object pairs where, on this path, a value an access to ``source`` returned
    (``flows.value#2``) is part of the key or index of a later access to ``target``."""
    pairs, returned = set(), []
    for access in path.get("accesses", ()):
        key = access.get("key") or ""
        for obj, names in returned:
            if obj != access["object"] and any(name in key for name in names):
                pairs.add((obj, access["object"]))
        returned.append((access["object"], [n for n in access.get("results", ()) if n]))
    return pairs


@dataclass(frozen=True)
class Edge:
    """One edge of the drawing. ``kind`` is reads / writes / index / verdict; ``source`` and
    ``target`` a device number, an object name or a verdict id; ``paths`` the paths that take it and
    ``ops`` per path the operations it stands for (which is what a focused path's label shows)."""

    kind: str
    source: Any
    target: Any
    label: str
    paths: frozenset[int]
    ops: tuple[tuple[int, tuple[str, ...]], ...] = ()
    order: tuple[int, ...] = ()  # detailed view: (path, access number)

    def in_focus(self, focus: str) -> bool:
        """Whether the focus ("object NAME" or "path N") has this edge: exactly its own edges."""
        if focus.startswith("object "):
            name = focus[len("object "):]
            return self.kind != "verdict" and name in (self.source, self.target)
        if focus.startswith("path "):
            return int(focus[len("path "):]) in self.paths
        return False

    def focus_label(self, focus: str) -> str:
        """The label, or for a focused path only what that path does on this edge."""
        if focus.startswith("path ") and self.ops:
            index = int(focus[len("path "):])
            mine = dict(self.ops).get(index, ())
            head = self.label.split("\n", 1)
            return ", ".join(mine) + (f"\n{head[1]}" if len(head) > 1 else "")
        return self.label


def edges(analysis: Mapping[str, Any], words: Optional[Mapping[str, Any]] = None,
          view: str = SUMMARY) -> list[Edge]:
    """Every edge of the drawing, sorted."""
    keys = (words or {}).get("keys") or {}
    use: dict[tuple, dict[str, Any]] = {}
    verdicts: dict[tuple, set[int]] = {}
    index_paths: dict[tuple[str, str], set[int]] = {}
    for path in analysis.get("paths", ()):
        for dev in path["devices"]:
            verdicts.setdefault((dev, _verdict_id(path["verdict"])), set()).add(path["index"])
        for source, target in _indexing(path):
            index_paths.setdefault((source, target), set()).add(path["index"])
        for number, access in enumerate(path.get("accesses", ())):
            obj, op, kind = access["object"], access["op"], _kind(access["op"])
            for dev in path["devices"]:
                ident = (kind, dev, obj) if view == SUMMARY else (kind, dev, obj, path["index"], number)
                entry = use.setdefault(ident, {"ops": {}, "by_path": {}, "where": set()})
                entry["ops"][op] = entry["ops"].get(op, 0) + 1
                entry["by_path"].setdefault(path["index"], []).append(op)
                entry["where"].add(access["location"]["line"])
    out = []
    for ident, entry in use.items():
        kind, dev, obj = ident[:3]
        ops = ", ".join(op + (f" x{n}" if n > 1 and view == SUMMARY else "") for op, n in sorted(entry["ops"].items()))
        if view == SUMMARY:
            label = ops
            for layout in keys.get(obj, {}).get(str(dev), []):
                if not any(part.startswith(("an index from", "a value from")) for part in layout):
                    label += f"\ndev{dev}: {','.join(layout)}"
        else:
            label = f"#{ident[3]} {ops} (line {min(entry['where'])})"
        by_path = tuple(sorted((i, tuple(sorted(set(o)))) for i, o in entry["by_path"].items()))
        out.append(Edge(kind, dev, obj, label, frozenset(entry["by_path"]), by_path, tuple(ident[3:])))
    for (source, target), paths in index_paths.items():
        out.append(Edge("index", source, target, "index", frozenset(paths)))
    for carried in analysis.get("allocated", ()):  # sharding by allocation: the value goes out, replies bring it back
        field = FIELD_WORDS.get(carried["field"], carried["field"])
        back = FIELD_WORDS.get(carried.get("reply_field") or "", carried.get("reply_field") or "")
        label = f"into {field}" + (f"\nreplies carry it in {back}" if back else "")
        for dev in carried.get("out_devices", ()):
            out.append(Edge("allocates", carried["allocator"], dev, label, frozenset(carried.get("paths", ()))))
    if view != SUMMARY:  # the summary is about state; the detailed view also shows where packets go
        for (dev, vid), paths in verdicts.items():
            out.append(Edge("verdict", dev, vid, f"{len(paths)} path{'s' if len(paths) != 1 else ''}",
                            frozenset(paths)))
    return sorted(out, key=lambda e: (e.kind, str(e.source), str(e.target), e.order, e.label))


def device_paths(analysis: Mapping[str, Any]) -> dict[int, int]:
    """Device -> how many call paths its packets take. A path both devices' packets take (fw's
    non-IPv4 drop) counts for each, so these add up to more than the paths when any is shared."""
    counts: dict[int, int] = {}
    for path in analysis.get("paths", ()):
        for dev in path["devices"]:
            counts[dev] = counts.get(dev, 0) + 1
    return dict(sorted(counts.items()))


def _of_paths(count: int, total: int) -> str:
    """A device node's count against the header's total: ``5 of 7 paths``, ``all 7 paths``."""
    if count == total:
        return "1 path" if total == 1 else f"all {total} paths"
    return f"{count} of {total} path{'s' if total != 1 else ''}"


def paths_text(analysis: Mapping[str, Any]) -> str:
    """The header's count of call paths, with each device's share when there are several, so that it
    agrees with the graph's device nodes: ``7 call paths (device 0 takes 5, device 1 takes 4; 2 are
    taken by both)``."""
    paths = analysis.get("paths", ())
    text = f"{len(paths):,} call path{'' if len(paths) == 1 else 's'}"
    counts = device_paths(analysis)
    if len(counts) < 2:
        return text
    shared = sum(1 for p in paths if len(set(p["devices"])) > 1)
    takes = ", ".join(f"device {d} takes {n:,}" for d, n in counts.items())
    several = "both" if len(counts) == 2 else "more than one"
    return text + f" ({takes}" + (f"; {shared:,} {'is' if shared == 1 else 'are'} taken by {several}"
                                  if shared else "") + ")"


def node_id(value: Any) -> str:
    if isinstance(value, int):
        return f"dev:{value}"
    if str(value).startswith("verdict:"):
        return str(value)
    return f"obj:{value}"


def access_dot(analysis: Mapping[str, Any], words: Optional[Mapping[str, Any]] = None, focus: str = "",
               view: Optional[str] = None) -> str:
    """DOT text of the graph (deterministic: equal inputs give equal text)."""
    view = view or default_view(analysis)
    all_edges = edges(analysis, words, view)
    focused = [e for e in all_edges if focus and e.in_focus(focus)]
    focused_nodes = {node_id(e.source) for e in focused} | {node_id(e.target) for e in focused}
    if focus.startswith("object "):
        focused_nodes.add(node_id(focus[len("object "):]))
    lines = [f"digraph {_quote(analysis.get('nf', 'nf'))} {{",
             '  graph [rankdir=LR, fontname="DejaVu Sans", nodesep=0.25, ranksep=0.5];',
             '  node [fontname="DejaVu Sans", fontsize=13];',
             '  edge [fontname="DejaVu Sans", fontsize=12];']
    counts = device_paths(analysis)
    devices = sorted(counts)
    for dev in devices:
        label = _quote(f"device {dev}" + "\n" + _of_paths(counts[dev], len(analysis.get("paths", ()))))
        attrs = f'shape=box, style="rounded,filled", fillcolor="#f6f8fa", label={label}'
        if f"dev:{dev}" in focused_nodes:
            attrs += f', color="{FOCUS}", penwidth=2.5'
        lines.append(f"  {_quote(f'dev:{dev}')} [{attrs}];")
    if devices:  # every device on the left: packets enter there
        lines.append("  {rank=min; " + " ".join(_quote(f"dev:{d}") + ";" for d in devices) + "}")
    for obj in analysis.get("objects", ()):
        fill, border, _ = DECISIONS[decision_of(obj["name"], words)]
        label = f"{obj['name']}\n{obj['kind']}, {obj['capacity']:,}"
        colour = FOCUS if f"obj:{obj['name']}" in focused_nodes else border
        width = 2.5 if f"obj:{obj['name']}" in focused_nodes else 1.2
        lines.append(f"  {_quote('obj:' + obj['name'])} [shape={SHAPES.get(obj['kind'], 'box')}, style=filled, "
                     f'fillcolor="{fill}", color="{colour}", penwidth={width}, label={_quote(label)}];')
    for vid in sorted({e.target for e in all_edges if e.kind == "verdict"}):
        attrs = f"shape=octagon, fontsize=11, label={_quote(vid[len('verdict:'):])}"
        if vid in focused_nodes:
            attrs += f', color="{FOCUS}", penwidth=2.5'
        lines.append(f"  {_quote(vid)} [{attrs}];")
    for edge in all_edges:
        attrs = f"{EDGES[edge.kind][0]}, label={_quote(edge.focus_label(focus) if edge in focused else edge.label)}"
        if edge in focused:
            attrs += f', color="{FOCUS}", fontcolor="{FOCUS}", penwidth=2.5'
        lines.append(f"  {_quote(node_id(edge.source))} -> {_quote(node_id(edge.target))} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def legend(analysis: Mapping[str, Any], words: Optional[Mapping[str, Any]] = None, focus: str = "",
           view: Optional[str] = None) -> str:
    """HTML swatches for the decisions and edge styles the graph shows (and the focus colour when
    something is focused)."""
    view = view or default_view(analysis)
    decisions = sorted({decision_of(o["name"], words) for o in analysis.get("objects", ())},
                       key=list(DECISIONS).index)
    kinds = sorted({e.kind for e in edges(analysis, words, view)}, key=list(EDGES).index)
    items = []
    for d in decisions:
        fill, border, text = DECISIONS[d]
        items.append(f'<span class="nfx-legend-item" data-legend="{d or "undecided"}">'
                     f'<span style="display:inline-block;width:14px;height:10px;background:{fill};'
                     f'border:1.5px solid {border};margin-right:4px"></span>{html.escape(text)}</span>')
    dashes = {"index": "dashed"}
    for kind in kinds:
        attrs, text = EDGES[kind]
        colour = attrs.split('color="', 1)[1].split('"', 1)[0]
        width = "3px" if "penwidth" in attrs else "1.5px"
        items.append(f'<span class="nfx-legend-item" data-legend="{kind}"><span style="display:inline-block;'
                     f'width:22px;border-top:{width} {dashes.get(kind, "solid")} {colour};vertical-align:middle;'
                     f'margin-right:4px"></span>{html.escape(text)}</span>')
    if focus:
        items.append(f'<span class="nfx-legend-item" data-legend="focus"><span style="display:inline-block;'
                     f'width:22px;border-top:3px solid {FOCUS};vertical-align:middle;margin-right:4px"></span>'
                     f"{html.escape(focus)}</span>")
    return '<div class="nfx-legend">' + "".join(items) + "</div>"


def objects_of_path(analysis: Mapping[str, Any], index: int) -> list[str]:
    for path in analysis.get("paths", ()):
        if path["index"] == index:
            return sorted({a["object"] for a in path.get("accesses", ())})
    return []
