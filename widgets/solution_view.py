"""What a solve produced: the strategy in words, each device's RSS configuration (hashed fields,
key, RETA size; ``rss_hf`` and rank under "details"), key quality (only for a correct plan), the
traffic the plan cannot spread over the cores (``Solution.warnings``), and when an override breaks
the sharding, two realistic packets that share state but reach different cores, with what the NF
then does (``pipeline.explain``'s counterexample)."""
from __future__ import annotations

import html
from typing import Any, Mapping, Optional, Sequence

import ipywidgets
import traitlets

from explorer.wording import count

BOX = "border-radius:6px;padding:8px 12px;margin:6px 0"
BAD_BOX = f"{BOX};border:1px solid #f1aeb5;background:#fff5f5"
GOOD_BOX = f"{BOX};border:1px solid #aceebb;background:#f6fff8"
TABLE = "border-collapse:collapse;font-size:13px"
CELL = "padding:3px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top"


def table(header: list[str], rows: list[list[str]], css_class: str = "") -> str:
    """An HTML table; ``header`` is escaped here, cells must already be HTML."""
    head = "".join(f'<th style="{CELL}">{html.escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{CELL}">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}" style="{TABLE}"><tr>{head}</tr>{body}</table>'


def details(summary: str, body_html: str) -> str:
    return (f'<details class="nfx-details"><summary style="cursor:pointer;color:#57606a;font-size:12px">'
            f"{html.escape(summary)}</summary>{body_html}</details>")


def endpoint(packet: Mapping[str, Any], side: str) -> str:
    return f"{packet[side + '_ip']}:{packet[side + '_port']}"


def packets_table(packets: list[Mapping[str, Any]], css_class: str = "nfx-packets") -> str:
    rows = [[f"{i + 1}", f"device {p['device']}", f"<code>{html.escape(endpoint(p, 'src'))}</code>",
             f"<code>{html.escape(endpoint(p, 'dst'))}</code>", html.escape(str(p.get('protocol', ''))),
             str(p.get("reta_index", "")), f"<b>core {p['core']}</b>"] for i, p in enumerate(packets)]
    return table(["packet", "arrives on", "from", "to", "protocol", "RETA entry", "goes to"], rows, css_class)


def counterexample_html(example: Mapping[str, Any], raw: Optional[Mapping[str, Any]] = None) -> str:
    """Two packets that share an entry but reach different cores, and what happens to the second."""
    name = html.escape(example["object"])
    outcome = example.get("outcome") or {}
    said = (f'<div class="nfx-outcome" style="margin-top:6px"><b>What happens:</b> {html.escape(outcome["text"])}</div>'
            if outcome.get("text") else "")
    sites = "".join(f"<li><code>{html.escape(s['where'])}</code> <code>{html.escape(s['code'])}</code></li>"
                    for s in example.get("sites", ()))
    exact = f"<div><code>{html.escape(example.get('details', ''))}</code></div>"
    if raw:
        exact += f"<div>solver's own pair: <code>{html.escape(str(raw.get('p1')))}</code> and " \
                 f"<code>{html.escape(str(raw.get('p2')))}</code></div>"
    return (f'<div class="nfx-counterexample" style="{BAD_BOX}"><b>This sharding is wrong for <code>{name}</code></b>: '
            f"these two packets share an entry of {name} ({html.escape(example['relation'])}) but the NIC sends them "
            f"to different cores.{packets_table(list(example['packets']))}{said}"
            + (f'<div style="font-size:12px;margin-top:4px">They meet in {name} here:<ul style="margin:2px 0">'
               f"{sites}</ul></div>" if sites else "")
            + details("details (the solver's terms)", exact) + "</div>")


def devices_html(devices: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for dev in sorted(devices, key=int):
        d = devices[dev]
        names = "<br>".join(html.escape(n) for n in d.get("rss_hf_names", ()))
        exact = details("details", f'<div style="font-size:11px">rss_hf <code>0x{int(d["rss_hf"]):x}</code><br>{names}'
                                   f"<br>GF(2) rank of the RETA-index bits: {d.get('rank', '')}</div>")
        rows.append([f"device {dev}", html.escape(", ".join(d.get("fields", ())) or "nothing (every packet to RETA entry 0)"),
                     f'<code class="nfx-key" style="word-break:break-all;display:inline-block;max-width:30em;'
                     f'font-size:12px">{html.escape(d["key"])}</code>',
                     f"{d.get('reta_size', '')} entries", exact])
    return table(["port", "the NIC hashes", "RSS key", "RETA", ""], rows, "nfx-devices")


def quality_html(quality: Mapping[str, float]) -> str:
    if not quality:
        return ""
    figures = ", ".join(f"{html.escape(kind)} traffic <b>{value:.3f}</b>" for kind, value in sorted(quality.items()))
    return (f'<div class="nfx-quality">Balance of this key (busiest core over the mean, 1.000 is perfectly '
            f"even): {figures}</div>")


def strategy_html(solution: Mapping[str, Any], words: Mapping[str, Any], label: str = "") -> str:
    """The strategy in words and, for a wrong override, the two packets that prove it."""
    if not solution:
        return '<i class="nfx-hint">Not solved yet.</i>'
    strategy = (words or {}).get("strategy") or {}
    valid = solution.get("valid", True)
    box = GOOD_BOX if valid and solution.get("strategy") == "shared-nothing" else BAD_BOX if not valid else BOX + ";border:1px solid #d0d7de"
    summary = html.escape(strategy.get("summary") or solution.get("strategy", ""))
    exact = strategy.get("details") or solution.get("explanation", "")
    head = (f'<div class="nfx-summary" style="{box}"><span class="nfx-strategy" data-strategy="'
            f'{html.escape(solution.get("strategy", ""), quote=True)}">{summary}</span>'
            + (details("details (the solver's terms)", f'<pre style="white-space:pre-wrap;font-size:11px">'
                                                       f"{html.escape(exact)}</pre>") if exact else "")
            + (f'<div class="nfx-for" style="font-size:12px;color:#57606a">computed for {html.escape(label)}</div>'
               if label else "") + "</div>")
    example = (words or {}).get("counterexample")
    return head + (counterexample_html(example, solution.get("counterexample")) if example else "")


def allocation_html(solution: Mapping[str, Any]) -> str:
    """Sharding by allocation: why, and each allocator's per-core pools (or why it was not used)."""
    why = solution.get("allocation", "")
    if not why:
        return ""
    pools = []
    for p in solution.get("pools", ()):
        sizes = p["sizes"]
        spread = (f"{sizes[0]:,} indices on each of {len(sizes)} cores" if min(sizes) == max(sizes) else
                  f"{min(sizes):,} to {max(sizes):,} indices per core (largest / mean {p['imbalance']:.3f})"
                  + (" <b>uneven</b>" if p["uneven"] else ""))
        pools.append(f"<div>Pools of <code>{html.escape(p['allocator'])}</code>: {spread}; "
                     f"<code>{html.escape(p['field'])} = {p['offset']} + i</code> on device {p['device']}.</div>")
    title = "Sharded by allocation" if pools else "Not sharded by allocation"
    return (f'<div class="nfx-allocation" style="border-left:3px solid #0969da;padding:4px 8px;margin:6px 0;'
            f'font-size:12px"><b>{title}</b>: {html.escape(why)}{"".join(pools)}</div>')


def warnings_html(warnings: Sequence[str]) -> str:
    """The engine's warnings about a result (a solve's or a simulation's ``warnings``): traffic that
    reaches fewer RETA entries than there are cores, which a balance figure alone would not explain."""
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return (f'<div class="nfx-warnings" style="border-left:3px solid #9a6700;padding:4px 8px;margin:6px 0;'
            f'font-size:12px;color:#6e4c00"><b>Warning</b>: some traffic cannot spread over the cores'
            f'<ul style="margin:2px 0">{items}</ul></div>')


def spread_warning(warnings: Sequence[str]) -> str:
    """What a status line adds for a result with warnings (the warnings themselves are shown below it)."""
    return f"{count(len(warnings), 'warning')} below: some traffic cannot spread over the cores"


def rss_html(solution: Mapping[str, Any]) -> str:
    """Each device's RSS configuration (with the pools of sharding by allocation), the key's balance
    when the plan is correct, and what traffic the plan cannot spread."""
    if not solution or not solution.get("devices"):
        return ""
    quality = quality_html(solution.get("quality", {})) if solution.get("valid", True) else ""
    return (allocation_html(solution) + devices_html(solution["devices"]) + quality
            + warnings_html(solution.get("warnings", ())))


def solution_html(solution: Mapping[str, Any], words: Mapping[str, Any], label: str = "") -> str:
    return strategy_html(solution, words, label) + rss_html(solution)


class SolutionView(ipywidgets.VBox):
    """Shows ``solution`` (``Solution.to_dict()``) with ``words`` (``pipeline.explain``) and the
    ``label`` of the inputs it was computed for, in two parts the app places apart: ``head`` (the
    strategy, the counterexample) and ``rss`` (per device keys, balance)."""

    solution = traitlets.Dict()
    words = traitlets.Dict()
    label = traitlets.Unicode("")

    def __init__(self, **kwargs: Any) -> None:
        self.head = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        self.rss = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        super().__init__([self.head, self.rss], **kwargs)
        self.add_class("nfx-solution")
        self._render()

    @traitlets.observe("solution", "words", "label")
    def _on_change(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self.head.value = strategy_html(self.solution, self.words, self.label)
        self.rss.value = rss_html(self.solution)
