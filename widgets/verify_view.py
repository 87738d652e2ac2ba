"""The Verify section: build the parallel program, run it and the sequential NF on the same traffic,
and show whether every packet got the same verdict (``Check.to_dict()``), with the packets that did
not as a table: the packet, its core, both verdicts and where the state it needed lived. A solution
the solver showed to be wrong (an override that splits state) can be built on purpose, to see it fail."""
from __future__ import annotations

import html
from typing import Any, Mapping

import ipywidgets
import traitlets

from widgets.inputs import plural
from explorer.pipeline import PATHS
from widgets.simulator import TRAFFIC_KINDS
from widgets.status import StatusLine

SHOWN = 20


def verdict_name(verdict: int) -> str:
    return {-1: "drop", -2: "flood"}.get(int(verdict), f"forward to {verdict}")


def difference_packet(d: Mapping[str, Any]) -> str:
    """The packet of a difference as ``src:sport -> dst:dport`` (what the report knows of it)."""
    if d.get("src"):
        ports = d.get("sport") is not None
        proto = {6: " TCP", 17: " UDP", 1: " ICMP"}.get(d.get("proto"), "")
        return (f"{d['src']}{':' + str(d['sport']) if ports else ''} -> "
                f"{d['dst']}{':' + str(d['dport']) if ports else ''}{proto}")
    if d.get("src_mac"):
        return f"{d['src_mac']} -> {d['dst_mac']}"
    return "(headers not reported)"


def _frame(d: Mapping[str, Any]) -> str:
    """Where the packet is in its device's capture (a closed-loop reply is in none)."""
    return f", frame {int(d['frame']):,}" if d.get("frame") else ""


def differences_html(differences: list[Mapping[str, Any]], total: int) -> str:
    """The differing packets: one row each (packet, its core, both verdicts) and, under it, why:
    where the state it needed lived."""
    nowrap = 'style="white-space:nowrap;padding:2px 10px;text-align:left"'
    rows = []
    for d in differences[:SHOWN]:
        rows.append(f'<tr class="nfx-difference"><td {nowrap}>{int(d["packet"]):,}</td>'
                    f"<td {nowrap}>device {d['device']}{_frame(d)}</td>"
                    f"<td {nowrap}><code>{html.escape(difference_packet(d))}</code></td>"
                    f"<td {nowrap}>core {d['core']}</td><td {nowrap}><b>{verdict_name(d['sequential'])}</b></td>"
                    f"<td {nowrap}><b>{verdict_name(d['parallel'])}</b></td></tr>")
        if d.get("why"):
            rows.append(f'<tr class="nfx-why-row"><td></td><td colspan="5" style="padding:0 10px 6px 10px;'
                        f'font-size:11px;color:#57606a;border-bottom:1px solid #d0d7de">'
                        f"{html.escape(d['why'])}</td></tr>")
    more = (f'<div style="font-size:12px">and {total - min(SHOWN, len(differences)):,} more differing packets</div>'
            if total > min(SHOWN, len(differences)) else "")
    head = "".join(f"<th {nowrap}>{h}</th>" for h in ("packet #", "arrives on", "packet", "ran on", "sequential NF",
                                                     "parallel build"))
    return (f'<table class="nfx-differences" style="font-size:12px;border-collapse:collapse"><tr>{head}</tr>'
            f"{''.join(rows)}</table>{more}")


def check_html(check: Mapping[str, Any], label: str = "") -> str:
    """The verdict of ``Check.to_dict()``, the relation checked, the packets that differ."""
    if not check:
        return '<i class="nfx-hint">Not verified yet: Verify builds the parallel program and compares it with the ' \
               "sequential NF, packet by packet.</i>"
    packets = int(check.get("packets", 0))
    cores = int(check.get("cores", 0) or 0)
    setup = f"{html.escape(str(check.get('strategy', '')))}, {plural(cores, 'core')}"
    verdict = check.get("verdict") or ("failed" if check.get("failure") else
                                       "equivalent" if check.get("equivalent") else "not equivalent")
    if verdict == "failed":
        head = (f'<div class="nfx-verdict nfx-different" style="color:#b42318"><b>Not equivalent</b>: the parallel '
                f"run ({setup}) failed: {html.escape(check['failure'])}</div>")
    elif verdict == "equivalent":
        head = (f'<div class="nfx-verdict nfx-equivalent" style="color:#1a7f37"><b>Equivalent</b>: the parallel build '
                f"({setup}) treated all {packets:,} packets as the sequential NF does.</div>")
    elif verdict == "partial":
        partial = check.get("partial") or {}
        head = (f'<div class="nfx-verdict nfx-partial" style="color:#9a6700"><b>Partial</b>: no compared packet differs, '
                f"but {int(partial.get('not_compared', 0)):,} of {packets:,} were set aside ({setup}): "
                f"{html.escape(str(partial.get('reason', '')))}</div>")
    else:
        head = (f'<div class="nfx-verdict nfx-different" style="color:#b42318"><b>Not equivalent</b>: '
                f"{int(check.get('unexplained', 0)):,} of {packets:,} packets got another verdict or other bytes from "
                f"the parallel build ({setup}).</div>")
    facts = []
    if label:
        facts.append(f"computed for {html.escape(label)}")
    if check.get("relation"):
        facts.append(f"relation checked: {html.escape(check['relation'])}")
    if check.get("per_core"):
        facts.append("packets per core: " + " ".join(f"{n:,}" for n in check["per_core"]))
    if check.get("strategy") in ("locks", "tm"):
        facts.append(f"{int(check.get('write_passes', 0)):,} packets reran under the write lock"
                     + (f", {int(check['cell_passes']):,} wrote vector cells under cell locks"
                        if check.get("cell_passes") else ""))
    if check.get("renamed"):
        facts.append(f"{check['renamed']:,} packets equal up to renaming of index-derived fields")
    facts += [html.escape(note) for note in check.get("notes", ())]
    differences = list(check.get("differences", ()))
    table = differences_html(differences, int(check.get("unexplained", 0))) if differences else ""
    facts_html = "".join(f"<li>{f}</li>" for f in facts)
    return head + table + (f'<ul class="nfx-check-facts" style="font-size:12px">{facts_html}</ul>' if facts else "")


class VerifyPanel(ipywidgets.VBox):
    """Traffic and cores, the Verify button (wired by the app) with its status, and the verdict of
    ``check`` (``Check.to_dict()``) with the ``label`` of what it was computed for."""

    check = traitlets.Dict()
    label = traitlets.Unicode("")

    def __init__(self, **kwargs: Any) -> None:
        # "paths": packets that follow this NF's own paths (pipeline.paths_traffic), for an NF the
        # generic kinds do not exercise
        self.traffic = ipywidgets.Dropdown(options=list(TRAFFIC_KINDS) + [PATHS], value="bidir", description="Traffic",
                                           style={"description_width": "56px"},
                                           layout=ipywidgets.Layout(width="200px"))
        self.cores = ipywidgets.BoundedIntText(2, min=1, max=64, description="Cores",
                                               style={"description_width": "44px"},
                                               layout=ipywidgets.Layout(width="120px"))
        self.button = ipywidgets.Button(description="Verify", button_style="primary")
        self.wrong_on_purpose = ipywidgets.Checkbox(
            value=False, indent=False, layout=ipywidgets.Layout(width="auto", display="none"),
            description="build it anyway: the solver says this sharding is wrong; run it to see what goes wrong")
        self.status = StatusLine("Build the parallel program and compare it with the sequential NF.")
        self._verdict = ipywidgets.HTML()
        self.toolbar = ipywidgets.VBox([ipywidgets.HBox([self.traffic, self.cores, self.button]),
                                        self.wrong_on_purpose, self.status])
        self.toolbar.add_class("nfx-toolbar")
        self.body = ipywidgets.VBox([self._verdict], layout=ipywidgets.Layout(width="100%"))
        super().__init__([self.toolbar, self.body], **kwargs)
        self.add_class("nfx-verify")
        self._render()

    def offer_traffic(self, devices: int) -> None:
        """The traffic kinds that can drive an NF with ``devices`` ports: generated traffic arrives
        on two (LAN 0 and WAN 1), so an NF with one takes only the packets of its own paths."""
        kinds = list(TRAFFIC_KINDS) + [PATHS] if devices >= 2 else [PATHS]
        if list(self.traffic.options) != kinds:
            self.traffic.options = kinds
            self.traffic.value = "bidir" if "bidir" in kinds else PATHS

    def offer_wrong_build(self, offer: bool) -> None:
        """Show the "build it anyway" choice (for a solution the solver showed to be wrong)."""
        if not offer:
            self.wrong_on_purpose.value = False
        self.wrong_on_purpose.layout.display = "flex" if offer else "none"

    @traitlets.observe("check", "label")
    def _on_check(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        self._verdict.value = check_html(self.check, self.label)
