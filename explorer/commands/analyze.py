"""``nfx analyze NF.c [--define K=V] [--json] [--dot FILE]``: every path of nf_process with its
condition, state accesses, header writes and verdict, as text or JSON, and the state-access graph."""
from __future__ import annotations

import json
from typing import Any

from explorer import ir
from explorer.errors import ConfigError
from explorer.outputs import claim_output, write_output
from explorer.wording import count


def parse_defines(items: list[str]) -> dict[str, str]:
    """``["K=V", "FLAG"]`` -> ``{"K": "V", "FLAG": "1"}`` (a bare name means 1, as with gcc -D)."""
    defines: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"define {item!r}: expected NAME=VALUE")
        if name in defines:
            raise ConfigError(f"define {name} is given twice")
        defines[name] = value if sep else "1"
    return defines


def _where(location: Any) -> str:
    return str(location) if location is not None else "?"


def _object_line(obj: ir.StateObject, width: int = 14) -> str:
    details = [f"capacity {obj.capacity}"]
    if obj.size:
        details.append(f"{'key' if obj.kind in ('map', 'sketch') else 'cell'} {obj.size} B"
                       + (f" ({obj.layout})" if obj.layout else ""))
    details += [f"{k} {v}" for k, v in obj.extra]
    return f"  {obj.alloc_index:>2} {obj.name:<{width}} {obj.kind:<7} {', '.join(details)}   {_where(obj.location)}"


def _access_line(n: int, access: ir.Access) -> str:
    text = f"    {n}. {access.object} {access.op.value} {access.call}"
    if access.key_text:
        text += f" [{access.key_text}]"
    if access.related:
        text += f" (also {', '.join(access.related)})"
    if access.results:
        text += f" -> {', '.join(access.results)}"
    return f"{text}   {_where(access.location)}"


def summary(analysis: ir.Analysis) -> str:
    """The analysis as readable text."""
    lines = [f"{analysis.nf} ({analysis.source}): {count(len(analysis.paths), 'path')}, {count(analysis.devices, 'device')}"]
    if analysis.defines:
        lines.append("defines: " + ", ".join(f"{k}={v}" for k, v in analysis.defines))
    lines.append("state objects:" if analysis.objects else "state objects: none")
    width = max([14] + [len(o.name) for o in analysis.objects])
    lines += [_object_line(o, width) for o in analysis.objects]
    lines.append("fields read: " + (", ".join(analysis.fields_read) or "none"))
    for path in analysis.paths:
        lines.append("")
        lines.append(f"path {path.index} (devices {', '.join(map(str, path.devices))}): {path.condition_text}")
        if not path.accesses:
            lines.append("    no state access")
        lines += [_access_line(i + 1, a) for i, a in enumerate(path.accesses)]
        for w in path.writes:
            lines.append(f"    writes {w.field} = {w.value_text}   {_where(w.location)}")
        lines.append(f"    verdict: {path.verdict}")
    return "\n".join(lines)


def main(args: Any) -> int:
    from explorer.graph import access_graph
    from explorer.symbex import analyze

    if args.dot:
        claim_output(args.dot, "--dot", [args.nf])
    analysis = analyze(args.nf, parse_defines(args.define))
    if args.dot:
        write_output(args.dot, access_graph(analysis), "--dot", [args.nf])
    if args.json:
        print(json.dumps(analysis.to_dict(), indent=2, sort_keys=True))
    else:
        print(summary(analysis))
    return 0
