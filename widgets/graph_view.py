"""The state-access graph pane: DOT from ``widgets.access_graph``, drawn to SVG by Graphviz, with a
summary/detailed switch and a legend of exactly what is drawn."""
from __future__ import annotations

import html
import subprocess
from typing import Any, Mapping
from xml.etree import ElementTree

import graphviz
import ipywidgets
import traitlets

from widgets.access_graph import DETAILED, SUMMARY, access_dot, default_view, legend
from widgets.source_view import path_label

# Serialise Graphviz's SVG with its own prefixes (no "ns0:"), so browsers render it inline.
ElementTree.register_namespace("", "http://www.w3.org/2000/svg")
ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")

NOTHING = ""
MIN_TEXT_PX = 11.0  # under "Fit", no label of the drawing is shown smaller
PX_PER_PT = 4 / 3


class GraphRenderError(Exception):
    """Graphviz could not draw the DOT text (not installed, or it rejected the input)."""


def draw(dot: str) -> str:
    """The SVG document Graphviz draws for ``dot``."""
    try:
        return graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as error:
        raise GraphRenderError("Graphviz's `dot` is not installed (apt-get install graphviz)") from error
    except subprocess.CalledProcessError as error:  # graphviz.CalledProcessError is a subclass
        detail = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr
        raise GraphRenderError(f"dot rejected the graph: {(detail or '').strip()}") from error


def embed(svg: str, fit: bool = True) -> str:
    """The ``<svg>`` element of a drawing, ready to sit inside HTML (no XML prolog or doctype); with
    ``fit`` it shrinks to its box's width, however wide it was drawn, but never so far that its
    smallest text falls under ``MIN_TEXT_PX`` (nor wider than drawn: it does not grow); past that the
    box scrolls sideways. Without ``fit`` it keeps its size and the box scrolls. Fit had no floor, and
    a wide drawing (dns_guard's, cl's) came out with 7-8 px labels nobody could read."""
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as error:
        raise GraphRenderError(f"dot produced unreadable SVG: {error}") from error
    natural = drawn_width(svg[svg.find("<svg"):]) if "<svg" in svg else 0.0
    if fit:
        root.set("width", "100%")
        root.attrib.pop("height", None)
        floor = f"min-width:{natural * fit_floor(root):.0f}pt;" if natural else ""
        root.set("style", f"max-width:{natural:.0f}pt;{floor}height:auto" if natural else "height:auto")
    else:
        root.set("style", "max-width:none")
    return ElementTree.tostring(root, encoding="unicode")


def fit_floor(root: ElementTree.Element) -> float:
    """The least scale (of the drawn size) at which the drawing's smallest text is ``MIN_TEXT_PX``
    high: Graphviz draws in points, which a browser shows at 4/3 px each at scale 1."""
    sizes = [float(size) for node in root.iter() if (size := node.get("font-size"))
             and size.replace(".", "", 1).isdigit()]
    return min(1.0, MIN_TEXT_PX / (min(sizes) * PX_PER_PT)) if sizes else 0.0


def render_svg(dot: str, fit: bool = True) -> str:
    return embed(draw(dot), fit)


def drawn_width(dot_svg: str) -> float:
    """The width in points Graphviz drew (0 when unknown)."""
    head = dot_svg.split(">", 1)[0]
    if 'width="' not in head:
        return 0.0
    value = head.split('width="', 1)[1].split('"', 1)[0]
    try:
        return float(value.removesuffix("pt"))
    except ValueError:
        return 0.0


def focus_choices(analysis: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the panes can focus on: each object ("object flows"), then each path ("path 3")."""
    choices = [(f"object {o['name']}", f"object {o['name']}") for o in analysis.get("objects", ())]
    choices += [(path_label(p), f"path {p['index']}") for p in analysis.get("paths", ())]
    return choices


class GraphView(ipywidgets.VBox):
    """``analysis`` (``Analysis.to_dict()``), ``words`` (``pipeline.explain``) and ``focus`` ("",
    "object NAME" or "path N") decide the drawing; ``view`` is summary or detailed. ``dot`` and
    ``svg`` hold what is shown, ``error`` what Graphviz said when it failed."""

    analysis = traitlets.Dict()
    words = traitlets.Dict()
    focus = traitlets.Unicode(NOTHING)
    view = traitlets.Enum((SUMMARY, DETAILED), default_value=SUMMARY)
    zoom = traitlets.Enum(("fit", "actual"), default_value="fit")
    dot = traitlets.Unicode("", read_only=True)
    svg = traitlets.Unicode("", read_only=True)
    error = traitlets.Unicode("", read_only=True)

    def __init__(self, **kwargs: Any) -> None:
        self.switch = ipywidgets.ToggleButtons(options=[("Summary", SUMMARY), ("Detailed", DETAILED)],
                                               value=SUMMARY, style={"button_width": "90px"},
                                               tooltips=["one edge per device, object and kind of operation",
                                                         "one edge per path and access"])
        self.zoom_switch = ipywidgets.ToggleButtons(options=[("Fit", "fit"), ("Actual size", "actual")],
                                                    value="fit", style={"button_width": "90px"},
                                                    tooltips=["shrink the drawing to the pane's width",
                                                              "draw it at its size"])
        # No width of 100%: the pane stretches it, and 100% plus its 2 px margins overflowed the pane
        # by 4 px, which scrolled sideways under "Fit".
        self._html = ipywidgets.HTML()
        self._html.add_class("nfx-graph-host")  # the page's CSS lets it be narrower than the drawing
        self._legend = ipywidgets.HTML()
        super().__init__([ipywidgets.HBox([self.switch, self.zoom_switch]), self._legend, self._html], **kwargs)
        self.add_class("nfx-graph")
        traitlets.link((self.switch, "value"), (self, "view"))
        traitlets.link((self.zoom_switch, "value"), (self, "zoom"))
        self._render()

    @traitlets.observe("analysis")
    def _on_analysis(self, _change: Any) -> None:
        with self.hold_trait_notifications():
            self.view = default_view(self.analysis) if self.analysis else SUMMARY
        self._render()

    @traitlets.observe("words", "focus", "view", "zoom")
    def _on_change(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        dot, svg, error = "", "", ""
        if self.analysis:
            dot = access_dot(self.analysis, self.words, self.focus, self.view)
            try:
                svg = embed(draw(dot), fit=self.zoom == "fit")
            except GraphRenderError as failure:
                error = str(failure)
        self.set_trait("dot", dot)
        self.set_trait("svg", svg)
        self.set_trait("error", error)
        if error:
            body = f'<div style="color:#b42318">{html.escape(error)}</div>'
        else:
            body = svg or "<i>Load an NF to see which state its packets touch.</i>"
        self._legend.value = legend(self.analysis, self.words, self.focus, self.view) if self.analysis else ""
        self._html.value = f'<div class="nfx-graph-box">{body}</div>'
