"""What a solve produced, from ``Solution.to_dict()``: the RSS configuration of every device (key,
hashed fields, ``rss_hf``, RETA size, rank), key quality and times; or, when the request cannot be
met, the two packets that prove it (counterexample) or the solver's explanation."""
from __future__ import annotations

import html
from typing import Any, Mapping

import ipywidgets
import traitlets

from explorer.wire import RSS_NAMES as RSS_FIELDS

_BOX = "border-radius:4px;padding:6px 10px;margin:4px 0"
_BAD_BOX = f"{_BOX};border:1px solid #f1aeb5;background:#fff0f0"
_TABLE = "border-collapse:collapse;font-size:13px"
_CELL = "padding:2px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``header`` is escaped here, cells must already be HTML."""
    head = "".join(f'<th style="{_CELL}">{html.escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL}">{c}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table style="{_TABLE}"><tr>{head}</tr>{body}</table>'


def summary_html(solution: Mapping[str, Any]) -> str:
    seconds = solution.get("seconds", {})
    times = " \u00b7 ".join(f"{html.escape(stage)} {value:.2f} s" for stage, value in seconds.items())
    return (f'<div class="nfx-summary"><b>{html.escape(solution.get("nf", ""))}</b>: strategy '
            f'<b class="nfx-strategy">{html.escape(solution.get("strategy", ""))}</b>'
            + (f" \u00b7 {times}" if times else "") + "</div>")


def devices_html(devices: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for dev in sorted(devices, key=int):
        d = devices[dev]
        names = "<br>".join(html.escape(n) for n in d.get("rss_hf_names", ()))
        rows.append([
            str(dev),
            html.escape(", ".join(d.get("fields", ())) or "none"),
            f'<code class="nfx-key" style="word-break:break-all;display:inline-block;max-width:34em">'
            f'{html.escape(d["key"])}</code>',
            f'<code>0x{int(d["rss_hf"]):x}</code><br><span style="font-size:11px">{names}</span>',
            str(d.get("reta_size", "")),
            str(d.get("rank", "")),
        ])
    return _table(["device", "hashed fields", "RSS key (hex)", "rss_hf", "RETA", "rank"], rows)


def quality_html(quality: Mapping[str, float]) -> str:
    if not quality:
        return ""
    figures = " \u00b7 ".join(f"{html.escape(kind)} <b>{value:.3f}</b>" for kind, value in sorted(quality.items()))
    return (f'<div class="nfx-quality">Key quality, busiest core / mean on seeded traffic '
            f"(1.000 is perfectly even): {figures}</div>")


def counterexample_html(cex: Mapping[str, Any], why: str = "") -> str:
    """The two packets that share state but land on different cores, field by field, and why."""
    p1, p2 = cex["p1"], cex["p2"]
    names = ["device", *RSS_FIELDS]
    rows = [[html.escape(n), f"<code>{html.escape(str(p1.get(n, '')))}</code>",
             f"<code>{html.escape(str(p2.get(n, '')))}</code>"] for n in names]
    cores = cex.get("cores", ["?", "?"])
    rows.append(["core", f"<b>{html.escape(str(cores[0]))}</b>", f"<b>{html.escape(str(cores[1]))}</b>"])
    why = why or cex.get("origin", "")
    why_html = f'<div style="font-size:12px;margin-top:4px">Why: {html.escape(why)}</div>' if why else ""
    return (f'<div class="nfx-counterexample" style="{_BAD_BOX}"><b>This sharding is wrong for '
            f'<code>{html.escape(cex["object"])}</code></b>: these two packets reach the same state '
            f"but RSS sends them to different cores."
            f"{_table(['', 'packet 1', 'packet 2'], rows)}{why_html}</div>")


def explanation_html(explanation: str, strategy: str) -> str:
    """Why the NF is not shared-nothing (a lock strategy was chosen), or why no key exists."""
    title = ("No RSS configuration satisfies every constraint." if strategy == "shared-nothing"
             else f"Not shared-nothing: the {html.escape(strategy)} strategy is needed.")
    return (f'<div class="nfx-explanation" style="{_BAD_BOX}"><b>{title}</b>'
            f'<pre style="white-space:pre-wrap;margin:4px 0">{html.escape(explanation)}</pre></div>')


def solution_html(solution: Mapping[str, Any]) -> str:
    if not solution:
        return "<i>Not solved yet: press Solve.</i>"
    parts = [summary_html(solution)]
    explanation = solution.get("explanation", "")
    if solution.get("counterexample"):
        parts.append(counterexample_html(solution["counterexample"], explanation))
    elif explanation:
        parts.append(explanation_html(explanation, solution.get("strategy", "")))
    if solution.get("devices"):
        parts.append(devices_html(solution["devices"]))
    parts.append(quality_html(solution.get("quality", {})))
    return "".join(parts)


class SolutionView(ipywidgets.VBox):
    """Shows ``solution`` (a ``Solution.to_dict()``)."""

    solution = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        self._html = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        super().__init__([self._html], **kwargs)
        self.add_class("nfx-solution")
        self._render()

    @traitlets.observe("solution")
    def _on_solution(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self._html.value = solution_html(self.solution)
