"""Per state object: kind, accesses, the RSS fields each device shards it on, the decision and its
reason, with a toggle per field to override the sharding of one object on one device.

Rows come from ``Solution.to_dict()["objects"]`` (or from the analysis before a solve); the
overrides trait has the shape ``pipeline.solve(overrides=...)`` takes: ``{object: {device: fields}}``.
"""
from __future__ import annotations

import html
from typing import Any, Iterable, Mapping

import ipywidgets
import traitlets

from explorer.wire import RSS_NAMES as RSS_FIELDS

_DECISION_COLOURS = {"shard": "#1a7f37", "replicate": "#57606a", "lock": "#b42318"}
_OVERRIDDEN_BORDER = "2px solid #d9480f"
NOT_DECIDED = "\u2014"


def rss_order(fields: Iterable[str]) -> tuple[str, ...]:
    chosen = set(fields)
    unknown = chosen.difference(RSS_FIELDS)
    if unknown:
        raise ValueError(f"not RSS fields: {', '.join(sorted(unknown))}")
    return tuple(f for f in RSS_FIELDS if f in chosen)


def rows_from_solution(solution: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per object of a solution, fields keyed by int device."""
    return [{"name": o["name"], "kind": o["kind"], "accesses": o.get("accesses", 0),
             "fields": {int(dev): list(f) for dev, f in o.get("fields", {}).items()},
             "decision": o.get("decision", ""), "reason": o.get("reason", "")}
            for o in solution.get("objects", ())]


def rows_from_analysis(analysis: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per object of an analysis, before anything is decided: just counts of accesses."""
    counts: dict[str, int] = {}
    for path in analysis.get("paths", ()):
        for access in path.get("accesses", ()):
            counts[access["object"]] = counts.get(access["object"], 0) + 1
    return [{"name": o["name"], "kind": o["kind"], "accesses": counts.get(o["name"], 0),
             "fields": {}, "decision": "", "reason": "not solved yet"}
            for o in analysis.get("objects", ())]


class ShardingTable(ipywidgets.VBox):
    """The table; ``overrides`` holds the cells the user changed, until ``reset_overrides()``."""

    rows = traitlets.List()
    devices = traitlets.Int(2, min=1)
    overrides = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        self._grid = ipywidgets.GridBox(layout=ipywidgets.Layout(grid_gap="2px 10px", align_items="center"))
        self._reset = ipywidgets.Button(description="Reset overrides", icon="undo",
                                        tooltip="shard every object as the solver decides",
                                        layout=ipywidgets.Layout(width="160px"))
        self._reset.on_click(lambda _button: self.reset_overrides())
        self._toggles: dict[tuple[str, int, str], ipywidgets.ToggleButton] = {}
        self._cells: dict[tuple[str, int], ipywidgets.HBox] = {}
        self._quiet = False  # set while toggles are changed by code, not by the user
        super().__init__([self._grid, self._reset], **kwargs)
        self.add_class("nfx-sharding")
        self._build()

    def show(self, rows: list[dict[str, Any]], devices: int) -> None:
        with self.hold_trait_notifications():
            self.devices, self.rows = devices, rows

    def reset_overrides(self) -> None:
        self.overrides = {}

    def toggle(self, name: str, device: int, field: str) -> ipywidgets.ToggleButton:
        """The toggle for one field of one object on one device (for tests and notebooks)."""
        return self._toggles[(name, device, field)]

    def set_override(self, name: str, device: int, fields: Iterable[str]) -> None:
        """Shard ``name`` on ``fields`` for ``device``, as if the user clicked the toggles."""
        if not any(row["name"] == name for row in self.rows):
            raise KeyError(f"no state object named {name!r}")
        if not 0 <= device < self.devices:
            raise KeyError(f"no device {device}")
        overrides = {obj: dict(per_dev) for obj, per_dev in self.overrides.items()}
        overrides.setdefault(name, {})[device] = rss_order(fields)
        self.overrides = overrides

    @traitlets.observe("rows", "devices")
    def _on_rows(self, _change: Any) -> None:
        self._build()

    @traitlets.observe("overrides")
    def _on_overrides(self, _change: Any) -> None:
        self._sync_toggles()

    def _header(self) -> list[ipywidgets.Widget]:
        titles = ["object", "kind", "accesses"] + [f"device {d} fields" for d in range(self.devices)]
        titles += ["decision", "reason"]
        return [ipywidgets.HTML(f"<b>{html.escape(t)}</b>") for t in titles]

    def _build(self) -> None:
        self._toggles, self._cells = {}, {}
        children = self._header()
        for row in self.rows:
            name = row["name"]
            children += [ipywidgets.HTML(f"<code>{html.escape(name)}</code>"),
                         ipywidgets.HTML(html.escape(row["kind"])),
                         ipywidgets.HTML(str(row["accesses"]))]
            for device in range(self.devices):
                children.append(self._cell(name, device))
            colour = _DECISION_COLOURS.get(row["decision"], "#57606a")
            children.append(ipywidgets.HTML(
                f'<b style="color:{colour}">{html.escape(row["decision"] or NOT_DECIDED)}</b>'))
            children.append(ipywidgets.HTML(f'<span style="font-size:12px">{html.escape(row["reason"])}</span>',
                                            layout=ipywidgets.Layout(min_width="200px")))
        self._grid.children = children
        self._grid.layout.grid_template_columns = (
            f"max-content max-content max-content repeat({self.devices}, max-content) max-content 1fr")
        self._sync_toggles()

    def _cell(self, name: str, device: int) -> ipywidgets.HBox:
        buttons = []
        for field in RSS_FIELDS:
            button = ipywidgets.ToggleButton(description=field, tooltip=f"{name}: device {device} {field}",
                                             layout=ipywidgets.Layout(width="74px", height="26px"))
            button.add_class("nfx-field")
            button.observe(lambda _change, n=name, d=device: self._on_toggle(n, d), "value")
            self._toggles[(name, device, field)] = button
            buttons.append(button)
        cell = ipywidgets.HBox(buttons, layout=ipywidgets.Layout(padding="1px"))
        self._cells[(name, device)] = cell
        return cell

    def _on_toggle(self, name: str, device: int) -> None:
        if self._quiet:
            return
        self.set_override(name, device, [f for f in RSS_FIELDS if self._toggles[(name, device, f)].value])

    def _sync_toggles(self) -> None:
        """Show the override where there is one, else the fields the solver chose."""
        self._quiet = True
        try:
            for row in self.rows:
                name = row["name"]
                for device in range(self.devices):
                    override = self.overrides.get(name, {}).get(device)
                    fields = override if override is not None else row["fields"].get(device, ())
                    for field in RSS_FIELDS:
                        self._toggles[(name, device, field)].value = field in fields
                    self._cells[(name, device)].layout.border = _OVERRIDDEN_BORDER if override is not None else ""
        finally:
            self._quiet = False
