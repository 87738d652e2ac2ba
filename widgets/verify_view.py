"""The equivalence check: run the parallel build and the sequential NF on the same traffic and show
whether every packet got the same verdict and bytes (``Check.to_dict()``)."""
from __future__ import annotations

import html
from typing import Any, Mapping

import ipywidgets
import traitlets

from widgets.simulator import TRAFFIC_KINDS

SHOWN_DIFFERENCES = 10


def verdict_name(verdict: int) -> str:
    return {-1: "drop", -2: "flood"}.get(verdict, f"forward to {verdict}")


def difference_html(d: Mapping[str, Any]) -> str:
    return (f"packet {d['packet']} (device {d['device']}, core {d['core']}): sequential "
            f"<b>{verdict_name(d['sequential'])}</b>, parallel <b>{verdict_name(d['parallel'])}</b>: "
            f"{html.escape(d.get('why', ''))}")


def check_html(check: Mapping[str, Any]) -> str:
    """The verdict of ``Check.to_dict()``, the relation checked, and what was set aside and why."""
    if not check:
        return "<i>Not verified yet.</i>"
    packets = int(check.get("packets", 0))
    setup = f"{html.escape(str(check.get('strategy', '')))}, {check.get('cores', '?')} cores"
    if check.get("failure"):
        head = (f'<div class="nfx-verdict nfx-different" style="color:#b42318"><b>\u2716 Not equivalent</b>: '
                f"the parallel run ({setup}) failed: {html.escape(check['failure'])}</div>")
    elif check.get("equivalent"):
        head = (f'<div class="nfx-verdict nfx-equivalent" style="color:#1a7f37"><b>\u2714 Equivalent</b>: the '
                f"parallel build ({setup}) treated all {packets:,} packets as the sequential NF does.</div>")
    else:
        head = (f'<div class="nfx-verdict nfx-different" style="color:#b42318"><b>\u2716 Not equivalent</b>: '
                f"{int(check.get('unexplained', 0)):,} of {packets:,} packets differ ({setup}).</div>")
    facts = []
    if check.get("relation"):
        facts.append(f"relation checked: {html.escape(check['relation'])}")
    if check.get("per_core"):
        facts.append("packets per core: " + " ".join(str(n) for n in check["per_core"]))
    if check.get("renamed"):
        facts.append(f"{check['renamed']:,} packets equal up to renaming of index-derived fields")
    drift = check.get("capacity_drift") or {}
    if drift.get("packets"):
        facts.append(f"{drift['packets']:,} packets not compared, per-core capacity drift: "
                     f"{html.escape(drift.get('detail', ''))}")
    facts += [html.escape(note) for note in check.get("notes", ())]
    differences = list(check.get("differences", ()))
    items = [difference_html(d) for d in differences[:SHOWN_DIFFERENCES]]
    if len(differences) > SHOWN_DIFFERENCES:
        items.append(f"\u2026 and {len(differences) - SHOWN_DIFFERENCES} more")
    facts_html = "".join(f"<li>{f}</li>" for f in facts)
    diffs_html = "".join(f"<li>{d}</li>" for d in items)
    return (head + (f'<ul class="nfx-check-facts" style="font-size:12px">{facts_html}</ul>' if facts else "")
            + (f'<ol class="nfx-differences" style="font-size:12px">{diffs_html}</ol>' if items else ""))


class VerifyPanel(ipywidgets.VBox):
    """Traffic choice, the Verify button (wired by the app) and the verdict of ``check``."""

    check = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        self.traffic = ipywidgets.Dropdown(options=list(TRAFFIC_KINDS), value="bidir", description="Traffic",
                                           style={"description_width": "60px"},
                                           layout=ipywidgets.Layout(width="220px"))
        self.cores = ipywidgets.BoundedIntText(2, min=1, max=64, description="Cores",
                                               style={"description_width": "50px"},
                                               layout=ipywidgets.Layout(width="130px"))
        self.button = ipywidgets.Button(description="Verify", icon="check", button_style="primary")
        self._verdict = ipywidgets.HTML()
        super().__init__([ipywidgets.HBox([self.traffic, self.cores, self.button]), self._verdict], **kwargs)
        self.add_class("nfx-verify")
        self._render()

    @traitlets.observe("check")
    def _on_check(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self._verdict.value = check_html(self.check)
