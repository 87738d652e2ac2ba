"""Per-core load and per-RETA-bucket load of a simulation, as two Bokeh charts.

The figures are built once; a new simulation only replaces their ``ColumnDataSource.data`` (and a
few glyph properties), which jupyter_bokeh sends to the browser as a patch instead of a new plot.
BokehJS must be on the page first, from the Python package, not a CDN: see ``load_bokehjs``.
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

BEFORE_COLOUR = "#4c78a8"
AFTER_COLOUR = "#f58518"
# Strong colours first, then their light twins, so neighbouring cores never look alike.
CORE_PALETTE = bokeh.palettes.Category20[20][::2] + bokeh.palettes.Category20[20][1::2]
SEPARATOR = " \u00b7 "


def load_bokehjs() -> None:
    """Put BokehJS, inline from the installed package, on the notebook page. Call once per notebook
    before showing a ``LoadView`` (no CDN is reachable from where the explorer runs)."""
    bokeh.io.output_notebook(bokeh.resources.INLINE, hide_banner=True)


def core_colour(core: int) -> str:
    return CORE_PALETTE[core % len(CORE_PALETTE)]


def core_columns(simulation: Mapping[str, Any]) -> dict[str, list]:
    """Columns of the per-core chart: packets and flows per core, and packets after rebalancing
    (zeros when the simulation did not rebalance)."""
    per_core = list(simulation.get("per_core", ()))
    flows = list(simulation.get("flows_per_core", ())) or [0] * len(per_core)
    rebalanced = simulation.get("rebalanced") or {}
    after = list(rebalanced.get("per_core", ())) or [0] * len(per_core)
    if not (len(flows) == len(after) == len(per_core)):
        raise ValueError("per_core, flows_per_core and rebalanced.per_core differ in length")
    return {"core": list(range(len(per_core))), "packets": per_core, "flows": flows, "after": after}


def bucket_columns(simulation: Mapping[str, Any]) -> dict[str, list]:
    """Columns of the RETA chart: packets per bucket and the core the bucket goes to (the
    rebalanced RETA when there is one, since that is the table the NIC would be given)."""
    buckets = list(simulation.get("buckets", ()))
    rebalanced = simulation.get("rebalanced") or {}
    reta: Sequence[int] = rebalanced.get("reta") or simulation.get("reta", ())
    if len(reta) != len(buckets):
        raise ValueError(f"{len(buckets)} bucket counts but a RETA of {len(reta)} entries")
    cores = [int(c) for c in reta]
    return {"bucket": list(range(len(buckets))), "packets": buckets, "core": cores,
            "colour": [core_colour(c) for c in cores]}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class LoadView(ipywidgets.VBox):
    """Bar charts of a ``Simulation.to_dict()``; set ``simulation`` to update them in place."""

    simulation = traitlets.Dict()

    def __init__(self, **kwargs: Any) -> None:
        self.cores_source = bokeh.models.ColumnDataSource(core_columns({}))
        self.buckets_source = bokeh.models.ColumnDataSource(bucket_columns({}))
        self.cores_figure = self._cores_figure()
        self.buckets_figure = self._buckets_figure()
        self.model = jupyter_bokeh.BokehModel(bokeh.layouts.column(self.cores_figure, self.buckets_figure))
        self._summary = ipywidgets.HTML()
        super().__init__([self._summary, self.model], **kwargs)
        self.add_class("nfx-load")
        self._update()

    def _cores_figure(self) -> bokeh.plotting.figure:
        fig = bokeh.plotting.figure(height=240, width=760, title="Packets per core",
                                    x_axis_label="core", y_axis_label="packets",
                                    tools="hover,save", toolbar_location="right",
                                    tooltips=[("core", "@core"), ("packets", "@packets"),
                                              ("flows", "@flows"), ("after rebalancing", "@after")])
        self._before = fig.vbar(x=bokeh.transform.dodge("core", -0.2), top="packets", width=0.38,
                                source=self.cores_source, color=BEFORE_COLOUR, legend_label="RSS RETA")
        self._after = fig.vbar(x=bokeh.transform.dodge("core", 0.2), top="after", width=0.38,
                               source=self.cores_source, color=AFTER_COLOUR, legend_label="rebalanced")
        self._mean = bokeh.models.Span(location=0, dimension="width", line_dash="dashed",
                                       line_color="#444", line_width=1)
        fig.add_layout(self._mean)
        fig.y_range.start = 0
        legend = fig.legend[0]
        self._after_legend = legend.items[1]
        legend.orientation = "horizontal"
        legend.location = "top_right"
        fig.add_layout(legend, "above")  # above the plot area, so it never hides a bar
        fig.xgrid.grid_line_color = None
        return fig

    def _buckets_figure(self) -> bokeh.plotting.figure:
        fig = bokeh.plotting.figure(height=200, width=760, title="Packets per RETA bucket (colour: core)",
                                    x_axis_label="RETA bucket", y_axis_label="packets",
                                    tools="hover,xwheel_zoom,xpan,reset,save", toolbar_location="right",
                                    tooltips=[("bucket", "@bucket"), ("core", "@core"), ("packets", "@packets")])
        fig.vbar(x="bucket", top="packets", width=0.9, source=self.buckets_source,
                 color="colour", line_color=None)
        fig.y_range.start = 0
        fig.xgrid.grid_line_color = None
        return fig

    @traitlets.observe("simulation")
    def _on_simulation(self, _change: Any) -> None:
        self._update()

    def _update(self) -> None:
        sim = self.simulation
        cores = core_columns(sim)
        self.cores_source.data = cores
        self.buckets_source.data = bucket_columns(sim)
        rebalanced = sim.get("rebalanced") or None
        self._after.visible = self._after_legend.visible = rebalanced is not None
        self._mean.location = mean(cores["packets"])
        self.cores_figure.xaxis.ticker = cores["core"] or [0]
        if not sim:
            self._summary.value = "<i>No simulation yet.</i>"
            return
        parts = [f"imbalance <b>{sim['imbalance']:.3f}</b> (busiest core / mean)",
                 f"{sum(cores['packets']):,} packets on {len(cores['core'])} cores"]
        if rebalanced is not None:
            parts.append(f"after rebalancing the RETA <b>{rebalanced['imbalance']:.3f}</b>")
        self._summary.value = f'<div class="nfx-load-summary">{SEPARATOR.join(parts)}</div>'
