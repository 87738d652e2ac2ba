"""Per state object: what the solver decided, the RSS fields each device shards it on (a toggle per
field to override them), and why, in the NF's terms (``pipeline.explain``), with the engine's exact
reason behind a "details" fold.

A row never contradicts the solver: an object an override broke says "broken" and what breaks;
objects that follow another show the fields they inherit; toggles that cannot change anything
(locked, replicated, following objects, nothing solved) are disabled and say why on hover. The
``overrides`` trait has the shape ``pipeline.solve(overrides=...)`` takes: ``{object: {device: fields}}``
or ``{object: "shard" | "replicate" | "lock"}`` (each row's menu).
"""
from __future__ import annotations

import asyncio
import contextlib
import html
from typing import Any, Iterable, Iterator, Mapping, Optional

import ipywidgets
import traitlets

from explorer.sharding.replication import DECISIONS
from explorer.wire import RSS_NAMES as RSS_FIELDS

DECISION_STYLE = {"shard": ("#1a7f37", "#dafbe1"), "replicate": ("#0969da", "#ddf4ff"),
                  "lock": ("#cf222e", "#ffebe9"), "broken": ("#9a6700", "#fff1c2"), "": ("#57606a", "#f6f8fa")}
OVERRIDDEN_BORDER = "2px solid #d9480f"
NOT_DECIDED = "not solved"
# After a solve the controls come back once the kernel has been this long without another: a click the
# browser sent during the solve is still on its way, and the solve it starts disables them again. They
# came back for a few milliseconds in between, and a click in that flicker hit a button disabled under
# the pointer and was lost (one of three fast clicks, in 2 of 3 full browser runs).
RESUME_AFTER_S = 0.3

TABLE_CSS = """<style>
.nfx-sharding .nfx-field button, .nfx-sharding button.nfx-field { font-size: 11px; padding: 0 2px; }
.nfx-sharding button.nfx-field:disabled { pointer-events: none; }
.nfx-sharding .nfx-row-focus { background: #fff8c5; border-radius: 3px; }
.nfx-sharding .nfx-chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: bold;
                          font-size: 12px; }
.nfx-sharding .nfx-why { font-size: 12px; line-height: 1.4; }
.nfx-sharding .nfx-why summary { color: #57606a; cursor: pointer; font-size: 11px; }
.nfx-sharding button.nfx-object { font-family: 'DejaVu Sans Mono', monospace; font-weight: bold; }
.nfx-sharding .nfx-fixed { display: grid; grid-template-columns: 64px 64px; gap: 2px; cursor: help; }
.nfx-sharding .nfx-field-off { font-size: 11px; text-align: center; padding: 2px 0; border-radius: 2px;
                               color: #afb8c1; background: #f6f8fa; border: 1px dashed #d0d7de; }
.nfx-sharding .nfx-field-off.nfx-on { color: #0550ae; background: #eef6ff; border: 1px dashed #54aeff;
                                      font-style: italic; }
.nfx-sharding button.nfx-field.mod-active { background: #0969da; color: white; }
.nfx-sharding .nfx-why { padding: 0 0 6px 8px; border-bottom: 1px solid #eaeef2; }
.nfx-sharding .nfx-span { grid-column: 1 / -1; }
</style>"""


def rss_order(fields: Iterable[str]) -> tuple[str, ...]:
    chosen = set(fields)
    unknown = chosen.difference(RSS_FIELDS)
    if unknown:
        raise ValueError(f"not RSS fields: {', '.join(sorted(unknown))}")
    return tuple(f for f in RSS_FIELDS if f in chosen)


def rows_from(analysis: Mapping[str, Any], solution: Optional[Mapping[str, Any]] = None,
              words: Optional[Mapping[str, Any]] = None) -> list[dict[str, Any]]:
    """One row per object of ``analysis`` (``Analysis.to_dict()``), with the decisions of
    ``solution`` (``Solution.to_dict()``, or None before a solve) and the words of
    ``pipeline.explain``. ``fields`` is keyed by int device; ``editable`` is "" when the toggles can
    change something, else why not."""
    counts: dict[str, int] = {}
    for path in analysis.get("paths", ()):
        for access in path.get("accesses", ()):
            counts[access["object"]] = counts.get(access["object"], 0) + 1
    decided = {o["name"]: o for o in (solution or {}).get("objects", ())}
    said = (words or {}).get("objects", {})
    rows = []
    for obj in analysis.get("objects", ()):
        name = obj["name"]
        own = decided.get(name, {})
        story = said.get(name, {})
        # under a locks or tm build every object is "lock", whatever it could be alone (explain says which)
        engine = "lock" if "lock" in (story.get("decision"), own.get("decision")) else own.get("decision", "")
        decision = "broken" if story.get("broken") else engine
        fields = story.get("fields") or own.get("fields") or {}
        follows = list(story.get("follows", ()))
        if not solution:
            editable = "Solve first: the toggles change what the solver decided."
        elif engine == "lock":
            editable = "Shared behind a lock, so there is nothing to shard: " + story.get("summary", own.get("reason", ""))
        elif own.get("decision") == "replicate":
            editable = "Every core has its own copy, so there is nothing to shard."
        elif follows:
            editable = f"Follows {' and '.join(follows)}: change the fields of {' or '.join(follows)} instead."
        elif own.get("decision") == "shard" and own.get("by") == "allocation" and not any(fields.values()):
            editable = ("Sharded by allocation: each core hands out only the values the NIC sends back to it. "
                        "Choose its fields to shard it by packet fields instead.")
        else:
            editable = ""
        rows.append({"name": name, "kind": obj["kind"], "accesses": counts.get(name, 0),
                     "chosen": engine,  # the engine's decision, which the menu shows
                     "fields": {int(d): list(f) for d, f in fields.items()}, "decision": decision,
                     "inherited": bool(story.get("inherited")), "follows": follows,
                     "summary": story.get("broken") or story.get("summary", ""),
                     "details": own.get("reason", "") or story.get("details", ""), "editable": editable,
                     "overridden": bool(own.get("overridden") or own.get("chosen")), "by": own.get("by", "fields")})
    return rows


NO_STATE = ("<span style='color:#57606a'>This NF keeps no state between packets: there is nothing to shard, "
            "replicate or lock, so any RSS key keeps it correct, and the key only spreads the load.</span>")


class ShardingTable(ipywidgets.VBox):
    """The table; ``overrides`` holds the cells the user changed until ``reset_overrides()``;
    ``focus`` highlights rows ("object NAME", or a path's objects given by ``focused``);
    ``clicked`` is set to an object's name when its name is clicked."""

    rows = traitlets.List()
    devices = traitlets.Int(2, min=1)
    overrides = traitlets.Dict()
    focused = traitlets.List()  # object names to highlight
    clicked = traitlets.Unicode("")
    busy = traitlets.Bool(False)  # set while the kernel solves: the toggles, menus and Reset wait
    analysed = traitlets.Bool(False)  # rows came from an analysis: none then means a stateless NF

    def __init__(self, **kwargs: Any) -> None:
        self._grid = ipywidgets.GridBox(layout=ipywidgets.Layout(grid_gap="4px 10px", align_items="center",
                                                                 width="100%"))
        self.reset_button = ipywidgets.Button(description="Reset overrides",
                                              tooltip="forget every override: shard each object as the solver decides",
                                              layout=ipywidgets.Layout(width="150px"))
        self.reset_button.on_click(lambda _button: self.reset_overrides())
        self._toggles: dict[tuple[str, int, str], ipywidgets.ToggleButton] = {}
        self._menus: dict[str, ipywidgets.Dropdown] = {}
        self._cells: dict[tuple[str, int], ipywidgets.HBox] = {}
        self._row_widgets: dict[str, list[ipywidgets.Widget]] = {}
        self._quiet = False  # set while toggles are changed by code, not by the user
        # Clicks reach the kernel in order, but one made while it solved was handled after the table
        # was updated for that solve's answer, which may have changed the very fields the user was
        # unticking (fw: device 0 on src_ip alone moves device 1 to dst_ip; the user's next clicks,
        # meant for device 1's four fields, emptied it). So the controls are disabled while the
        # kernel solves (``busy``). A click that was already on its way says only what the user did
        # (this field on or off), applied to what the table shows when it arrives, even on a rebuilt
        # row; the ``_table`` number (which objects, which devices) drops clicks on the rows of an
        # NF no longer shown.
        self._table = 0
        self._waits = 0  # solves (or loads) under way: see ``waiting``
        self._resume: Optional[asyncio.TimerHandle] = None
        self._about: tuple = ()
        self._retired: list[ipywidgets.Widget] = []  # the build before last's widgets, closed at the next
        super().__init__([ipywidgets.HTML(TABLE_CSS), self._grid, self.reset_button], **kwargs)
        self.add_class("nfx-sharding")
        self._build()

    def show(self, rows: list[dict[str, Any]], devices: int) -> None:
        with self.hold_trait_notifications():
            self.devices, self.rows, self.analysed = devices, rows, True

    def reset_overrides(self) -> None:
        self.overrides = {}

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """``busy`` while the kernel solves, and RESUME_AFTER_S past the last solve when the kernel
        runs an event loop (at once without one: a script, a test)."""
        self._waits += 1
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self.busy = True
        try:
            yield
        finally:
            self._waits -= 1
            if not self._waits:
                try:
                    self._resume = asyncio.get_running_loop().call_later(RESUME_AFTER_S, self._resumed)
                except RuntimeError:  # no loop runs this code
                    self.busy = False

    def _resumed(self) -> None:
        self._resume = None
        if not self._waits:
            self.busy = False

    def toggle(self, name: str, device: int, field: str) -> ipywidgets.ToggleButton:
        """The toggle for one field of one object on one device (for tests and notebooks)."""
        return self._toggles[(name, device, field)]

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["name"] == name)

    def fields_shown(self, name: str, device: int) -> tuple[str, ...]:
        """The fields ``name`` shards on for ``device`` as the table shows them: the user's override
        where there is one, else the solver's choice."""
        value = self.overrides.get(name)
        override = value.get(device) if isinstance(value, Mapping) else None
        return rss_order(override if override is not None else self.row(name)["fields"].get(device, ()))

    def set_override(self, name: str, device: int, fields: Iterable[str]) -> None:
        """Shard ``name`` on ``fields`` for ``device``, as if the user clicked the toggles."""
        if not any(row["name"] == name for row in self.rows):
            raise KeyError(f"no state object named {name!r}")
        if not 0 <= device < self.devices:
            raise KeyError(f"no device {device}")
        overrides = {obj: (dict(value) if isinstance(value, Mapping) else value)
                     for obj, value in self.overrides.items()}
        per_device = overrides.get(name)
        overrides[name] = dict(per_device) if isinstance(per_device, Mapping) else {}  # fields imply "shard"
        overrides[name][device] = rss_order(fields)
        self.overrides = overrides

    def set_decision(self, name: str, decision: str) -> None:
        """Decide ``name`` yourself: ``shard``, ``replicate`` or ``lock`` (its field overrides go)."""
        if decision not in DECISIONS:
            raise ValueError(f"{decision!r}: choose {', '.join(DECISIONS)}")
        if not any(row["name"] == name for row in self.rows):
            raise KeyError(f"no state object named {name!r}")
        self.overrides = {**{k: v for k, v in self.overrides.items() if k != name}, name: decision}

    def decision_menu(self, name: str) -> ipywidgets.Dropdown:
        """The decision chooser of one object (for tests and notebooks)."""
        return self._menus[name]

    @traitlets.observe("rows", "devices", "analysed")
    def _on_rows(self, change: Any) -> None:
        about = (self.devices, tuple((r["name"], r["kind"]) for r in self.rows))
        if about != self._about:
            self._table, self._about = self._table + 1, about
        shape = [(r["name"], r["editable"] == "", r["inherited"]) for r in self.rows]  # what the cells are made of
        if change["name"] == "rows" and shape == getattr(self, "_shape", None) and self._row_widgets:
            self._update()  # same objects, same kind of cells: update in place (no flicker, no lost click)
        else:
            self._build()
        self._shape = shape

    @traitlets.observe("busy")
    def _on_busy(self, _change: Any) -> None:
        (self.add_class if self.busy else self.remove_class)("nfx-busy")
        self._enable()

    def _enable(self) -> None:
        """Each control enabled unless the kernel is busy or it has nothing to change."""
        for toggle in self._toggles.values():
            toggle.disabled = self.busy
        for row in self.rows:
            if row["name"] in self._menus:
                self._menus[row["name"]].disabled = self.busy or not row["chosen"]
        self.reset_button.disabled = self.busy or not self.overrides

    @traitlets.observe("overrides")
    def _on_overrides(self, _change: Any) -> None:
        self._sync_toggles()

    @traitlets.observe("focused")
    def _on_focused(self, _change: Any) -> None:
        for name, widgets in self._row_widgets.items():
            for widget in widgets:
                if name in self.focused:
                    widget.add_class("nfx-row-focus")
                else:
                    widget.remove_class("nfx-row-focus")

    def _header(self) -> list[ipywidgets.Widget]:
        titles = ["object", "kind"] + [f"device {d} shards on" for d in range(self.devices)] + ["decision"]
        return [ipywidgets.HTML(f"<b>{html.escape(t)}</b>") for t in titles]

    def _build(self) -> None:
        for widget in self._retired:  # two builds ago: no click on them can still be on its way
            widget.close()
        self._retired = [w for row in self._row_widgets.values() for w in row] + list(self._toggles.values()) \
            + list(self._menus.values()) + list(self._cells.values()) + list(self._grid.children)
        self._toggles, self._cells, self._row_widgets, self._menus = {}, {}, {}, {}
        self.reset_button.layout.display = "flex" if self.rows else "none"
        if not self.rows:  # nothing to shard, override or lock: say so instead of an empty table
            # (but before any NF loaded, or when the first one failed to, there is nothing to say)
            note = ipywidgets.HTML(NO_STATE if self.analysed else "")
            note.add_class("nfx-no-state")
            self._grid.children = [note]
            self._grid.layout.grid_template_columns = "1fr"
            return
        children = self._header()
        for row in self.rows:
            name = row["name"]
            button = ipywidgets.Button(description=name, tooltip=f"focus {name} in every pane",
                                       layout=ipywidgets.Layout(width="124px"))
            button.add_class("nfx-object")
            button.on_click(lambda _b, n=name, t=self._table: self._click(n, t))
            kind = ipywidgets.HTML(f"{html.escape(row['kind'])}<br><span style='font-size:11px;color:#57606a'>"
                                   f"{row['accesses']} accesses</span>")
            cells = [self._cell(row, device) for device in range(self.devices)]
            menu = ipywidgets.Dropdown(options=list(DECISIONS), value=row["chosen"] or None,
                                       disabled=self.busy or not row["chosen"], tooltip=f"decide {name} yourself",
                                       layout=ipywidgets.Layout(width="104px"))
            menu.observe(lambda change, n=name, t=self._table: self._on_menu(n, change["new"], t), "value")
            self._menus[name] = menu
            decision = ipywidgets.VBox([ipywidgets.HTML(self._decision_html(row)), menu])
            why = ipywidgets.HTML(self._why_html(row))
            why.add_class("nfx-span")
            widgets = [button, kind, *cells, decision, why]
            self._row_widgets[name] = widgets
            children += widgets
        self._grid.children = children
        # Fixed tracks: the explanation below each row spans them all without widening any.
        self._grid.layout.grid_template_columns = f"128px 84px repeat({self.devices}, 134px) minmax(110px, 1fr)"
        self._sync_toggles()
        self._on_focused(None)

    def _decision_html(self, row: Mapping[str, Any]) -> str:
        colour, background = DECISION_STYLE.get(row["decision"], DECISION_STYLE[""])
        label = row["decision"] or NOT_DECIDED
        if row["decision"] == "shard" and row.get("by") == "allocation":
            label = "shard by allocation"
        if row["overridden"] and row["decision"] != "broken":
            label += " (yours)"
        return (f'<span class="nfx-chip nfx-decision-{row["decision"] or "none"}" '
                f'style="color:{colour};background:{background}">{html.escape(label)}</span>')

    def _why_html(self, row: Mapping[str, Any]) -> str:
        details = (f'<details><summary>details</summary><code style="font-size:11px">'
                   f'{html.escape(row["details"])}</code></details>' if row["details"] else "")
        return f'<div class="nfx-why nfx-why-{html.escape(row["name"])}">{html.escape(row["summary"])}{details}</div>'

    def _fixed_html(self, row: Mapping[str, Any], device: int) -> str:
        fields = row["fields"].get(device, ())
        chips = "".join(f'<span class="nfx-field-off{" nfx-on" if f in fields else ""}">{f}</span>' for f in RSS_FIELDS)
        reason = html.escape(row["editable"], quote=True)
        return (f'<div class="nfx-fixed{" nfx-inherited" if row["inherited"] else ""}" title="{reason}" '
                f'data-object="{html.escape(row["name"], quote=True)}">{chips}</div>')

    def _update(self) -> None:
        for row in self.rows:
            widgets = self._row_widgets[row["name"]]
            widgets[-2].children[0].value = self._decision_html(row)
            self._quiet = True
            try:
                self._menus[row["name"]].value = row["chosen"] or None
                self._menus[row["name"]].disabled = self.busy or not row["chosen"]
            finally:
                self._quiet = False
            widgets[-1].value = self._why_html(row)
            for device in range(self.devices):
                cell = self._cells[(row["name"], device)]
                if isinstance(cell, ipywidgets.HTML):
                    cell.value = self._fixed_html(row, device)
        self._sync_toggles()

    def _cell(self, row: Mapping[str, Any], device: int) -> ipywidgets.Widget:
        """Toggles for an object the user may override; for the others, the fields as read-only
        chips that say on hover why they cannot change (a disabled button would not show it)."""
        name = row["name"]
        if row["editable"]:
            cell = ipywidgets.HTML(self._fixed_html(row, device))
            self._cells[(name, device)] = cell
            return cell
        buttons = []
        for field in RSS_FIELDS:
            button = ipywidgets.ToggleButton(description=field, tooltip=f"{name}: device {device} {field}",
                                             disabled=self.busy,
                                             layout=ipywidgets.Layout(width="64px", height="22px"))
            button.add_class("nfx-field")
            button.observe(lambda change, n=name, d=device, f=field, t=self._table:
                           self._on_toggle(n, d, f, change["new"], t), "value")
            self._toggles[(name, device, field)] = button
            buttons.append(button)
        cell = ipywidgets.GridBox(buttons, layout=ipywidgets.Layout(grid_template_columns="64px 64px",
                                                                    grid_gap="2px", padding="1px"))
        self._cells[(name, device)] = cell
        return cell

    def _on_menu(self, name: str, decision: Optional[str], table: int) -> None:
        if self._quiet or table != self._table or decision is None \
                or decision == self.row(name)["chosen"] and name not in self.overrides:
            return
        self.set_decision(name, decision)

    def _click(self, name: str, table: Optional[int] = None) -> None:
        if table not in (None, self._table):
            return
        self.clicked = ""  # so that clicking the same name again still tells
        self.clicked = name

    def _on_toggle(self, name: str, device: int, field: str, on: bool, table: int) -> None:
        """The user turned ``field`` on or off: the fields shown now, with that one changed (not the
        cell's toggles as they are now: a rebuilt row's toggles are other widgets)."""
        if self._quiet or table != self._table:
            return
        self.set_override(name, device, [f for f in RSS_FIELDS if (f == field and on)
                                         or (f != field and f in self.fields_shown(name, device))])

    def _sync_toggles(self) -> None:
        """Show the override where there is one, else the fields the solver chose."""
        self._quiet = True
        try:
            for row in self.rows:
                name = row["name"]
                for device in range(self.devices):
                    if (name, device, RSS_FIELDS[0]) not in self._toggles:
                        continue
                    value = self.overrides.get(name)
                    override = value.get(device) if isinstance(value, Mapping) else None
                    fields = self.fields_shown(name, device)
                    for field in RSS_FIELDS:
                        self._toggles[(name, device, field)].value = field in fields
                    self._cells[(name, device)].layout.border = OVERRIDDEN_BORDER if override is not None else ""
        finally:
            self._quiet = False
