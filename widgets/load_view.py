"""Per-core load and per-RETA-bucket load of a simulation, as two Bokeh charts as wide as the pane.

The figures are built once; a new simulation only replaces their ``ColumnDataSource.data`` (and a
few glyph properties), which jupyter_bokeh sends to the browser as a patch instead of a new plot.
Before the first simulation no chart frame is shown, only a hint; a series appears in the legend
only when it is drawn (rebalanced bars after a rebalance, write-lock bars for locks plans). BokehJS
must be on the page first, from the Python package, not a CDN: see ``load_bokehjs``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import bokeh.io
import bokeh.layouts
import bokeh.models
import bokeh.palettes
import bokeh.plotting
import bokeh.resources
import bokeh.transform
import ipywidgets
import jupyter_bokeh
import traitlets

from widgets.inputs import plural

BEFORE_COLOUR = "#4c78a8"
AFTER_COLOUR = "#f58518"
WRITE_COLOUR = "#e45756"
MEAN_COLOUR = "#24292f"
SEPARATOR = " \u00b7 "


def load_bokehjs() -> None:
    """Put BokehJS, inline from the installed package, on the notebook page. Call once per notebook
    before showing a ``LoadView`` (no CDN is reachable from where the explorer runs)."""
    bokeh.io.output_notebook(bokeh.resources.INLINE, hide_banner=True)


def core_palette(cores: int) -> tuple[str, ...]:
    """Distinct colours for ``cores`` cores: Tableau 10 up to 10, then the strong and light halves of
    Category 20 (neighbours never alike), beyond 20 evenly spaced hues of Turbo."""
    if cores <= 10:
        return tuple(bokeh.palettes.Category10[10][:max(cores, 1)])
    if cores <= 20:
        return tuple((bokeh.palettes.Category20[20][::2] + bokeh.palettes.Category20[20][1::2])[:cores])
    return tuple(bokeh.palettes.Turbo256[int(i * 255 / (cores - 1))] for i in range(cores))


def core_columns(simulation: Mapping[str, Any]) -> dict[str, list]:
    """Columns of the per-core chart: packets and flows per core, packets after rebalancing and
    packets that took the write lock (zeros when not simulated)."""
    per_core = list(simulation.get("per_core", ()))
    flows = list(simulation.get("flows_per_core", ())) or [0] * len(per_core)
    rebalanced = simulation.get("rebalanced") or {}
    after = list(rebalanced.get("per_core", ())) or [0] * len(per_core)
    contention = simulation.get("contention") or {}
    writes = list(contention.get("per_core", ())) or [0] * len(per_core)
    if not (len(flows) == len(after) == len(writes) == len(per_core)):
        raise ValueError("per_core, flows_per_core, rebalanced.per_core and contention.per_core differ in length")
    return {"core": [str(c) for c in range(len(per_core))], "packets": per_core, "flows": flows, "after": after,
            "writes": writes}


def bucket_columns(simulation: Mapping[str, Any]) -> dict[str, list]:
    """Columns of the RETA chart: packets per bucket and the core the bucket goes to (the
    rebalanced RETA when there is one, since that is the table the NIC would be given)."""
    buckets = list(simulation.get("buckets", ()))
    rebalanced = simulation.get("rebalanced") or {}
    reta: Sequence[int] = rebalanced.get("reta") or simulation.get("reta", ())
    if len(reta) != len(buckets):
        raise ValueError(f"{len(buckets)} bucket counts but a RETA of {len(reta)} entries")
    cores = [int(c) for c in reta]
    palette = core_palette(max(cores, default=0) + 1)
    return {"bucket": list(range(len(buckets))), "packets": buckets, "core": cores,
            "colour": [palette[c] for c in cores]}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def core_key_html(cores: int) -> str:
    """The colour of each core in the RETA chart, as a row of swatches."""
    palette = core_palette(cores)
    items = "".join(f'<span style="display:inline-block;margin-right:8px"><span style="display:inline-block;'
                    f'width:11px;height:11px;background:{palette[c]};vertical-align:middle;margin-right:3px"></span>'
                    f"{c}</span>" for c in range(cores))
    return f'<div class="nfx-core-key" style="font-size:11px">core: {items}</div>'


class LoadView(ipywidgets.VBox):
    """Bar charts of a ``Simulation.to_dict()``; set ``simulation`` to update them in place."""

    simulation = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        self.cores_source = bokeh.models.ColumnDataSource(core_columns({}))
        self.buckets_source = bokeh.models.ColumnDataSource(bucket_columns({}))
        self.cores_figure = self._cores_figure()
        self.buckets_figure = self._buckets_figure()
        self._update_figures()  # before the model is made: jupyter_bokeh sends only later changes as patches
        self.model = jupyter_bokeh.BokehModel(
            bokeh.layouts.column(self.cores_figure, self.buckets_figure, sizing_mode="stretch_width"),
            layout=ipywidgets.Layout(width="100%", display="none"))
        self._summary = ipywidgets.HTML()
        self._key = ipywidgets.HTML()
        super().__init__([self._summary, self.model, self._key], layout=ipywidgets.Layout(width="100%"), **kwargs)
        self.add_class("nfx-load")
        self._update()

    def _cores_figure(self) -> bokeh.plotting.figure:
        fig = bokeh.plotting.figure(height=250, sizing_mode="stretch_width", title="Packets per core",
                                    x_range=bokeh.models.FactorRange(factors=[]), x_axis_label="core",
                                    y_axis_label="packets", tools="hover,save", toolbar_location="right",
                                    tooltips=[("core", "@core"), ("packets", "@packets"), ("flows", "@flows"),
                                              ("after rebalancing", "@after"), ("took the write lock", "@writes")])
        self._before = fig.vbar(x=bokeh.transform.dodge("core", -0.2, range=fig.x_range), top="packets",
                                width=0.38, source=self.cores_source, color=BEFORE_COLOUR, legend_label="packets")
        self._after = fig.vbar(x=bokeh.transform.dodge("core", 0.2, range=fig.x_range), top="after", width=0.38,
                               source=self.cores_source, color=AFTER_COLOUR, legend_label="after rebalancing")
        self._writes = fig.vbar(x=bokeh.transform.dodge("core", 0.2, range=fig.x_range), top="writes", width=0.38,
                                source=self.cores_source, color=WRITE_COLOUR, legend_label="took the write lock")
        self._mean = bokeh.models.Span(location=0, dimension="width", line_dash="dashed", line_color=MEAN_COLOUR,
                                       line_width=1.5)
        # At the right end of the line (categorical axes put factor i at i + 0.5), above it.
        self._mean_label = bokeh.models.Label(x=0, y=0, text="", text_font_size="11px", text_align="right",
                                              text_color=MEAN_COLOUR, y_offset=4, x_offset=-4,
                                              background_fill_color="white", background_fill_alpha=0.85)
        fig.add_layout(self._mean)
        fig.add_layout(self._mean_label)
        fig.y_range.start = 0
        # Room above the bars for the mean's label (half of it goes below 0, which start hides): at
        # 0.18 a label on the tallest bar (one core, or all even) was cut by the frame.
        fig.y_range.range_padding = 0.4
        legend = fig.legend[0]
        self._legend_items = dict(zip(("packets", "after", "writes"), legend.items))
        legend.orientation = "horizontal"
        legend.location = "top_right"
        fig.add_layout(legend, "above")  # above the plot area, so it never hides a bar
        fig.xgrid.grid_line_color = None
        return fig

    def _buckets_figure(self) -> bokeh.plotting.figure:
        fig = bokeh.plotting.figure(height=190, sizing_mode="stretch_width",
                                    title="Packets per RETA entry, coloured by the core it sends them to",
                                    x_axis_label="RETA entry", y_axis_label="packets",
                                    tools="hover,xwheel_zoom,xpan,reset,save", toolbar_location="right",
                                    tooltips=[("RETA entry", "@bucket"), ("core", "@core"), ("packets", "@packets")])
        fig.vbar(x="bucket", top="packets", width=1.0, source=self.buckets_source, color="colour", line_color=None)
        fig.y_range.start = 0
        fig.xgrid.grid_line_color = None
        return fig

    @traitlets.observe("simulation")
    def _on_simulation(self, _change: Any) -> None:
        self._update()

    def _update_figures(self) -> dict[str, list]:
        sim = self.simulation
        cores = core_columns(sim)
        self.cores_figure.x_range.factors = cores["core"]
        self.cores_source.data = cores
        self.buckets_source.data = bucket_columns(sim)
        rebalanced = sim.get("rebalanced") or None
        contention = sim.get("contention") or None
        self._after.visible = rebalanced is not None
        self._writes.visible = contention is not None and rebalanced is None
        # A series alone sits on its core's tick, as wide as a pair; beside another it moves left.
        alone = not (self._after.visible or self._writes.visible)
        self._before.glyph.x = bokeh.transform.dodge("core", 0.0 if alone else -0.2, range=self.cores_figure.x_range)
        self._before.glyph.width = 0.76 if alone else 0.38
        # Only what is drawn is in the legend (a hidden renderer's item would still show its swatch).
        shown = ["packets"] + [name for name, glyph in (("after", self._after), ("writes", self._writes))
                               if glyph.visible]
        self.cores_figure.legend[0].items = [self._legend_items[name] for name in shown]
        average = mean(cores["packets"])
        self._mean.location = average
        self._mean_label.x, self._mean_label.y = float(len(cores["core"])), average
        self._mean_label.text = f"mean {average:,.0f} packets per core"
        return cores

    def _update(self) -> None:
        sim = self.simulation
        rebalanced = sim.get("rebalanced") or None
        cores = self._update_figures()
        if not sim:
            self.model.layout.display = "none"
            self._key.value = ""
            self._summary.value = ('<div class="nfx-hint" style="color:#57606a">No simulation yet: choose traffic '
                                   "and press Simulate to see how the NIC spreads it over the cores.</div>")
            return
        self.model.layout.display = "flex"
        self._key.value = core_key_html(len(cores["core"]))
        parts = [f"imbalance <b>{sim['imbalance']:.3f}</b> (busiest core over the mean; 1.000 is even)",
                 f"{sum(cores['packets']):,} packets on {plural(len(cores['core']), 'core')}"]
        if rebalanced is not None:
            parts.append(f"after rebalancing the RETA <b>{rebalanced['imbalance']:.3f}</b>")
        self._summary.value = f'<div class="nfx-load-summary">{SEPARATOR.join(parts)}</div>'
