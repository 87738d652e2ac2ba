"""The state-access graph: DOT text from the engine, drawn to SVG by Graphviz, shown as HTML."""
from __future__ import annotations

import html
import subprocess
from typing import Any, Mapping
from xml.etree import ElementTree

import graphviz
import ipywidgets
import traitlets

from widgets.source_view import path_label

# Serialise Graphviz's SVG with its own prefixes (no "ns0:"), so browsers render it inline.
ElementTree.register_namespace("", "http://www.w3.org/2000/svg")
ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")


class GraphRenderError(Exception):
    """Graphviz could not draw the DOT text (not installed, or it rejected the input)."""


def render_svg(dot: str) -> str:
    """The ``<svg>`` element Graphviz draws for ``dot``, ready to sit inside HTML (no XML prolog or
    doctype) and to shrink to its box's width (never wider than drawn)."""
    try:
        svg = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as error:
        raise GraphRenderError("Graphviz's `dot` is not installed (apt-get install graphviz)") from error
    except subprocess.CalledProcessError as error:  # graphviz.CalledProcessError is a subclass
        detail = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else error.stderr
        raise GraphRenderError(f"dot rejected the graph: {(detail or '').strip()}") from error
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as error:
        raise GraphRenderError(f"dot produced unreadable SVG: {error}") from error
    # Fit the box's width, keeping proportions (the viewBox stays): graphs wider than the page shrink.
    natural_width = root.get("width", "")
    root.set("width", "100%")
    root.attrib.pop("height", None)
    root.set("style", f"max-width:{natural_width};height:auto" if natural_width else "height:auto")
    return ElementTree.tostring(root, encoding="unicode")


NOTHING = ""


def highlight_choices(analysis: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the graph can emphasise, as the engine names it: each object, then each path ("path 3")."""
    choices = [(f"object {o['name']}", o["name"]) for o in analysis.get("objects", ())]
    choices += [(path_label(p), f"path {p['index']}") for p in analysis.get("paths", ())]
    return choices


class GraphView(ipywidgets.VBox):
    """Shows ``dot`` as an SVG that scrolls inside its box; ``svg`` holds what is shown.
    ``highlight`` is what the user asked to emphasise (an object name, "path N", or ``NOTHING``);
    the app redraws ``dot`` for it."""

    dot = traitlets.Unicode("")
    highlight = traitlets.Unicode(NOTHING)
    svg = traitlets.Unicode("", read_only=True)
    error = traitlets.Unicode("", read_only=True)

    def __init__(self, **kwargs: Any) -> None:
        self._picker = ipywidgets.Dropdown(description="Emphasise", options=[("nothing", NOTHING)], value=NOTHING,
                                           style={"description_width": "80px"},
                                           layout=ipywidgets.Layout(width="100%"))
        self._html = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        super().__init__([self._picker, self._html], **kwargs)
        self.add_class("nfx-graph")
        traitlets.link((self._picker, "value"), (self, "highlight"))
        self._render()

    def set_choices(self, choices: list[tuple[str, str]]) -> None:
        """Offer ``choices`` (label, highlight) and emphasise nothing."""
        self.highlight = NOTHING
        self._picker.options = [("nothing", NOTHING)] + list(choices)

    @traitlets.validate("highlight")
    def _valid_highlight(self, proposal: Any) -> str:
        value = proposal["value"]
        if value not in {v for _, v in self._picker.options}:
            raise traitlets.TraitError(f"nothing called {value!r} to emphasise")
        return value

    @traitlets.observe("dot")
    def _on_dot(self, _change: Any) -> None:
        self._render()

    def _render(self) -> None:
        svg, error = "", ""
        if self.dot:
            try:
                svg = render_svg(self.dot)
            except GraphRenderError as failure:
                error = str(failure)
        self.set_trait("svg", svg)
        self.set_trait("error", error)
        if error:
            body = f'<div style="color:#b42318">{html.escape(error)}</div>'
        elif svg:
            body = svg
        else:
            body = "<i>No graph yet.</i>"
        self._html.value = (f'<div class="nfx-graph-box" style="max-height:560px;overflow:auto;'
                            f'border:1px solid #d0d7de;border-radius:4px;background:white">{body}</div>')
