"""The state-access graph of an analysed NF, as DOT text (the engine never renders it).

Nodes: the packets of each input device (a path group), the state objects (shape by kind), the
packet fields that appear in keys, and the verdicts. Edges: "keyed by" (field -> object), "reads" /
"writes" (device group -> object, with the operations and path counts), "index of" (an object
whose result indexes another object, e.g. a map value used as a vector index) and device group ->
verdict, and "allocates" (a dchain -> the header field that carries a value it allocated back into
the NF: the NAT's chain -> p.l4.dport on the WAN). Everything is sorted, so equal analyses give
byte-identical DOT.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

from explorer import ir
from explorer.errors import ConfigError
from explorer.ir import result_parts
from explorer.symbex.bitvec import symbols_of
from explorer.wire import PACKET_FIELDS
from explorer.wording import count

SHAPES = {"map": "cylinder", "vector": "box3d", "dchain": "component", "sketch": "tab", "cht": "hexagon"}
FIELDS = frozenset(f.name for f in PACKET_FIELDS)
HIGHLIGHT = 'color="#d62728", penwidth=2.5, fontcolor="#d62728"'


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _devices(devs: set[int]) -> str:
    return "dev " + ", ".join(map(str, sorted(devs)))


def _verdict_id(v: ir.Verdict) -> tuple[str, str]:
    if v.kind != "forward":
        return f"verdict:{v.kind}", v.kind
    target = str(v.device) if v.device is not None else v.device_text
    return f"verdict:forward:{target}", f"forward to {target}"


def _result_object(symbol: str, objects: set[str]) -> Optional[str]:
    name = result_parts(symbol)[0]
    return name if name in objects else None


def _highlighted(analysis: ir.Analysis, highlight: Optional[str]) -> tuple[Optional[str], Optional[ir.CallPath]]:
    if highlight is None:
        return None, None
    names = {o.name for o in analysis.objects}
    if highlight in names:
        return highlight, None
    text = highlight.strip()
    for prefix in ("path:", "path ", "#"):
        if text.startswith(prefix):
            text = text[len(prefix):].strip()
    if text.isdigit() and int(text) < len(analysis.paths):
        return None, analysis.paths[int(text)]
    raise ConfigError(f"cannot highlight {highlight!r}: not a state object ({', '.join(sorted(names)) or 'none'}) "
                      f"or a path (0..{len(analysis.paths) - 1})")


def access_graph(analysis: ir.Analysis, highlight: Optional[str] = None) -> str:
    """DOT text of the state-access graph; ``highlight`` names an object or a path ("path 3")."""
    hl_object, hl_path = _highlighted(analysis, highlight)
    object_names = {o.name for o in analysis.objects}
    keyed: dict[tuple[str, str], set[int]] = defaultdict(set)
    uses: dict[tuple[int, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    use_paths: dict[tuple[int, str, str], set[int]] = defaultdict(set)
    index_of: dict[tuple[str, str], tuple[set[int], set[int]]] = {}
    verdicts: dict[tuple[int, str], set[int]] = defaultdict(set)
    verdict_labels: dict[str, str] = {}
    group_paths: dict[int, set[int]] = defaultdict(set)

    for path in analysis.paths:
        vid, vlabel = _verdict_id(path.verdict)
        verdict_labels[vid] = vlabel
        for dev in path.devices:
            group_paths[dev].add(path.index)
            verdicts[(dev, vid)].add(path.index)
        seen_ops: set[tuple[str, str, str]] = set()
        for access in path.accesses:
            kind = "writes" if access.op.mutates else "reads"
            seen_ops.add((access.object, kind, access.op.value))
            if access.key is None:
                continue
            for symbol in sorted(symbols_of(access.key)):
                if symbol in FIELDS:
                    keyed[(symbol, access.object)].update(path.devices)
                source = _result_object(symbol, object_names)
                if source is not None and source != access.object:
                    devs, paths = index_of.setdefault((source, access.object), (set(), set()))
                    devs.update(path.devices)
                    paths.add(path.index)
        for obj, kind, op in seen_ops:
            for dev in path.devices:
                uses[(dev, obj, kind)][op] += 1
                use_paths[(dev, obj, kind)].add(path.index)

    def on_path(*parts: str) -> bool:
        return hl_path is not None and all(p in _path_nodes(hl_path) for p in parts)

    lines = [f"digraph {_quote(analysis.nf)} {{",
             f"  graph [rankdir=LR, fontname=Helvetica, label={_quote(analysis.nf + ': state-access graph')}, "
             "labelloc=t];",
             "  node [fontname=Helvetica, fontsize=11];",
             "  edge [fontname=Helvetica, fontsize=9];"]
    for dev in sorted(group_paths):
        label = f"device {dev}\n{count(len(group_paths[dev]), 'path')}"
        attrs = f"shape=box, style=rounded, label={_quote(label)}"
        if hl_path is not None and dev in hl_path.devices:
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'dev:{dev}')} [{attrs}];")
    for obj in analysis.objects:
        label = f"{obj.name}\n{obj.kind}, {obj.capacity}"
        if obj.layout:
            label += f"\n{obj.layout}"
        attrs = f"shape={SHAPES.get(obj.kind, 'box')}, label={_quote(label)}"
        if obj.name == hl_object or on_path(f"obj:{obj.name}"):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'obj:{obj.name}')} [{attrs}];")
    carried = {a.reply_field or a.field for a in analysis.allocated}
    for field in sorted({f for f, _ in keyed} | carried):
        attrs = f"shape=ellipse, style=filled, fillcolor=\"#eef3fb\", label={_quote(field)}"
        if on_path(f"field:{field}"):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'field:{field}')} [{attrs}];")
    for vid in sorted(verdict_labels):
        attrs = f"shape=octagon, label={_quote(verdict_labels[vid])}"
        if hl_path is not None and _verdict_id(hl_path.verdict)[0] == vid:
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(vid)} [{attrs}];")

    for (field, obj), devs in sorted(keyed.items()):
        attrs = f"label={_quote('keyed by (' + _devices(devs) + ')')}, style=dashed"
        if obj == hl_object or on_path(f"field:{field}", f"obj:{obj}"):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'field:{field}')} -> {_quote(f'obj:{obj}')} [{attrs}];")
    for (dev, obj, kind), ops in sorted(uses.items()):
        op_text = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
        label = f"{kind}\n{op_text}\n{count(len(use_paths[(dev, obj, kind)]), 'path')}"
        attrs = f"label={_quote(label)}"
        if kind == "writes":
            attrs += ", color=\"#1f4e99\""
        if obj == hl_object or (hl_path is not None and dev in hl_path.devices and on_path(f"obj:{obj}")):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'dev:{dev}')} -> {_quote(f'obj:{obj}')} [{attrs}];")
    for (source, target), (devs, paths) in sorted(index_of.items()):
        label = f"index of ({_devices(devs)}; {count(len(paths), 'path')})"
        attrs = f"label={_quote(label)}, style=bold"
        if hl_object in (source, target) or on_path(f"obj:{source}", f"obj:{target}"):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'obj:{source}')} -> {_quote(f'obj:{target}')} [{attrs}];")
    for a in analysis.allocated:
        target = a.reply_field or a.field
        where = f"dev {', '.join(map(str, a.out_devices))}" if a.reply_field else "on the way out"
        label = (f"allocates {a.value_text}\nwritten as {a.field} ({_devices(set(a.devices))}; "
                 f"{count(len(a.paths), 'path')}),\nback as {target} ({where})")
        attrs = f"label={_quote(label)}, style=bold, color=\"#2ca02c\", fontcolor=\"#2ca02c\""
        if hl_object == a.allocator or (hl_path is not None and hl_path.index in a.paths):
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'obj:{a.allocator}')} -> {_quote(f'field:{target}')} [{attrs}];")
    for (dev, vid), paths in sorted(verdicts.items()):
        attrs = f"label={_quote(count(len(paths), 'path'))}, color=gray40"
        if hl_path is not None and hl_path.index in paths:
            attrs += ", " + HIGHLIGHT
        lines.append(f"  {_quote(f'dev:{dev}')} -> {_quote(vid)} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _path_nodes(path: ir.CallPath) -> set[str]:
    nodes = {f"obj:{a.object}" for a in path.accesses}
    for access in path.accesses:
        if access.key is not None:
            nodes |= {f"field:{s}" for s in symbols_of(access.key) if s in FIELDS}
    return nodes
