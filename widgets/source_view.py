"""The NF's source with every state access marked; picking a call path marks that path's lines.

Consumes ``Analysis.to_dict()`` (its ``source`` file and ``paths``), never the analysis itself.
"""
from __future__ import annotations

import html

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import ipywidgets
import traitlets

from widgets.code import HOST_CLASS, render_code

CONTEXT_LINES = 4  # lines shown above a selected path's first line


def same_file(location_file: str, source: str) -> bool:
    """Whether a location's file names the analysed source (locations may be relative or absolute)."""
    if location_file == source:
        return True
    if os.path.isabs(location_file) and os.path.isabs(source):
        return os.path.realpath(location_file) == os.path.realpath(source)
    return os.path.basename(location_file) == os.path.basename(source)


def verdict_text(verdict: Mapping[str, Any]) -> str:
    if verdict.get("kind") != "forward":
        return str(verdict.get("kind", "?"))
    device = verdict.get("device")
    return f"forward to {device if device is not None else verdict.get('device_text', '?')}"


def path_label(path: Mapping[str, Any]) -> str:
    """One line naming a path: index, devices, verdict and its accesses in order."""
    accesses = ", ".join(f"{a['object']} {a['op']}" for a in path.get("accesses", ())) or "no state"
    devices = ",".join(str(d) for d in path.get("devices", ()))
    return f"#{path['index']} dev {devices}: {verdict_text(path['verdict'])} \u2014 {accesses}"


def access_notes(paths: Iterable[Mapping[str, Any]], source: str) -> dict[int, str]:
    """Line -> "object OP, ..." for every access of any path located in ``source``."""
    per_line: dict[int, set[str]] = {}
    for path in paths:
        for access in path.get("accesses", ()):
            loc = access["location"]
            if same_file(loc["file"], source):
                per_line.setdefault(loc["line"], set()).add(f"{access['object']} {access['op']}")
    return {line: ", ".join(sorted(labels)) for line, labels in sorted(per_line.items())}


def warned_lines(warnings: Iterable[Any], source: str) -> dict[int, str]:
    """Line -> note for the analysis warnings located in ``source`` (notes on one line joined)."""
    per_line: dict[int, list[str]] = {}
    for warning in warnings:
        location = getattr(warning, "location", None)
        if location is not None and same_file(str(location.file), source):
            notes = per_line.setdefault(int(location.line), [])
            if warning.note not in notes:
                notes.append(warning.note)
    return {line: "; ".join(notes) for line, notes in sorted(per_line.items())}


def path_lines(path: Mapping[str, Any], source: str) -> frozenset[int]:
    """The lines of ``source`` where ``path`` touches state or writes a header field."""
    lines = set()
    for item in (*path.get("accesses", ()), *path.get("writes", ())):
        loc = item.get("location")
        if loc and same_file(loc["file"], source):
            lines.add(loc["line"])
    return frozenset(lines)


def object_lines(paths: Iterable[Mapping[str, Any]], source: str, name: str) -> frozenset[int]:
    """The lines of ``source`` where any path touches object ``name``."""
    lines = set()
    for path in paths:
        for access in path.get("accesses", ()):
            loc = access["location"]
            if access["object"] == name and same_file(loc["file"], source):
                lines.add(loc["line"])
    return frozenset(lines)


class SourceView(ipywidgets.VBox):
    """Highlighted C source. ``focus`` ("", "object NAME" or "path N", shared with the other panes)
    selects the lines of that object's accesses or of that path."""

    text = traitlets.Unicode("")
    source = traitlets.Unicode("")  # the analysed file's path, as the analysis names it
    paths = traitlets.List()  # Analysis.to_dict()["paths"]
    focus = traitlets.Unicode("")
    warnings = traitlets.Dict()  # line -> note, for the analysis warnings located in the source
    marked_lines = traitlets.List(read_only=True)  # lines with any state access, sorted
    selected_lines = traitlets.List(read_only=True)  # lines of the focus, sorted
    caption = traitlets.Unicode("")  # above the code: which file failed to load, and what the other panes show

    def __init__(self, **kwargs: Any) -> None:
        self._code = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        self._code.add_class(HOST_CLASS)
        super().__init__([self._code], **kwargs)
        self.add_class("nfx-source")
        self._render()

    def show(self, analysis: Mapping[str, Any], text: str, warnings: Iterable[Any] = ()) -> None:
        """Show ``text``, the contents of the analysed file, with ``analysis``'s paths and the lines
        its ``warnings`` (AnalysisWarning) name."""
        with self.hold_trait_notifications():
            self.text, self.source, self.paths = text, analysis["source"], list(analysis["paths"])
            self.warnings, self.caption = warned_lines(warnings, self.source), ""

    def show_error(self, source: str, text: str, line: int, message: str, caption: str = "") -> None:
        """Show ``text``, the contents of ``source``, whose analysis failed at ``line`` with
        ``message``: that line marked and opened, no path (there are none), ``caption`` above.
        ``line`` 0: the failure is at no line of ``source`` (the caption says what it was)."""
        with self.hold_trait_notifications():
            self.text, self.source, self.paths, self.focus = text, source, [], ""
            self.warnings, self.caption = ({line: message} if line else {}), caption

    @traitlets.observe("text", "source", "paths", "focus", "warnings", "caption")
    def _on_change(self, _change: Any) -> None:
        self._render()

    def _selected(self) -> frozenset[int]:
        if self.focus.startswith("path "):
            index = int(self.focus[len("path "):])
            return next((path_lines(p, self.source) for p in self.paths if p["index"] == index), frozenset())
        if self.focus.startswith("object "):
            return object_lines(self.paths, self.source, self.focus[len("object "):])
        return frozenset()

    def _render(self) -> None:
        notes = access_notes(self.paths, self.source)
        selected = self._selected()
        self.set_trait("marked_lines", sorted(notes))
        self.set_trait("selected_lines", sorted(selected))
        caption = (f'<div class="nfx-source-caption" style="font-size:12px;color:#9a6700;padding:2px 0 4px 0">'
                   f"{html.escape(self.caption)}</div>" if self.caption else "")
        if not self.text:  # nothing loaded yet, or an empty file that failed to (its caption says so)
            self._code.value = (caption + f"<i>{html.escape(Path(self.source).name)} is empty.</i>" if self.source
                                else "<i>No NF loaded.</i>")
            return
        # A focus opens a few lines above its first line, the rest folded away above; without one,
        # so does the failed analysis' line (``show_error``: no paths, one warning).
        warned = {int(line): note for line, note in self.warnings.items()}
        opened = selected or (frozenset(warned) if not self.paths else frozenset())
        fold_before = max(min(opened) - CONTEXT_LINES, 1) if opened else 1
        marked = frozenset(notes)
        notes.update({line: f"{notes[line]}; {note}" if line in notes else note for line, note in warned.items()})
        self._code.value = caption + render_code(self.text, self.source or "nf.c", notes=notes, marked=marked,
                                                 selected=selected, warned=frozenset(warned),
                                                 fold_before=fold_before, max_height="none")
