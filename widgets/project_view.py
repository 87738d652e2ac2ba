"""The generated DPDK project: where to write it, the files written, each one highlighted, and
download links (data URIs, so they work without a file server)."""
from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path
from typing import Any, Sequence

import ipywidgets
import traitlets

from widgets.code import render_code


def download_link(name: str, data: bytes) -> str:
    """An ``<a download>`` whose target is the file itself, base64 in a data URI."""
    mime = mimetypes.guess_type(name)[0] or "text/plain"
    encoded = base64.b64encode(data).decode("ascii")
    base = html.escape(Path(name).name, quote=True)
    return (f'<a class="nfx-download" download="{base}" href="data:{mime};base64,{encoded}" '
            f'title="download {html.escape(name, quote=True)}">\u2b07 {html.escape(name)}</a>')


def read_project(root: Path, files: Sequence[Path]) -> list[dict[str, str]]:
    """``[{"name": path relative to root, "text": contents}]``, sorted by name."""
    root = Path(root)
    entries = []
    for file in files:
        path = Path(file) if Path(file).is_absolute() else root / file
        try:
            name = str(path.relative_to(root))
        except ValueError:
            name = str(path)
        entries.append({"name": name, "text": path.read_text(encoding="utf-8", errors="replace")})
    return sorted(entries, key=lambda e: e["name"])


class ProjectView(ipywidgets.VBox):
    """Controls for generating (the app wires the button) and the files of the last project."""

    files = traitlets.List()  # read_project()'s entries
    selected = traitlets.Unicode("")  # the name of the file shown

    def __init__(self, default_folder: str = "", **kwargs: Any) -> None:
        self.folder = ipywidgets.Text(value=default_folder, description="Folder",
                                      placeholder="where to write the project, e.g. out/fw-sn",
                                      layout=ipywidgets.Layout(width="460px"))
        self.overwrite = ipywidgets.Checkbox(value=False, description="replace a folder nfx did not create",
                                             indent=False, layout=ipywidgets.Layout(width="280px"))
        self.button = ipywidgets.Button(description="Generate", icon="cogs", button_style="primary")
        self._picker = ipywidgets.Dropdown(description="File", options=[],
                                           layout=ipywidgets.Layout(width="460px", display="none"))
        self._downloads = ipywidgets.HTML()
        self._code = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        super().__init__([ipywidgets.HBox([self.folder, self.overwrite, self.button]),
                          self._downloads, self._picker, self._code], **kwargs)
        self.add_class("nfx-project")
        # Not traitlets.link: an empty Dropdown's value is None, which is no file name.
        self._picker.observe(lambda change: setattr(self, "selected", change["new"] or ""), "value")
        self._render()

    def show_files(self, root: Path, files: Sequence[Path]) -> None:
        self.files = read_project(root, files)

    @traitlets.observe("files")
    def _on_files(self, _change: Any) -> None:
        names = [entry["name"] for entry in self.files]
        self._picker.options = names
        self._picker.layout.display = "flex" if names else "none"
        self.selected = names[0] if names else ""
        self._render()

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> str:
        name = proposal["value"]
        if name and name not in {entry["name"] for entry in self.files}:
            raise traitlets.TraitError(f"no generated file {name!r}")
        return name

    @traitlets.observe("selected")
    def _on_selected(self, _change: Any) -> None:
        if self.selected:
            self._picker.value = self.selected
        self._render()

    def _render(self) -> None:
        if not self.files:
            self._downloads.value = "<i>Nothing generated yet.</i>"
            self._code.value = ""
            return
        links = "".join(f"<li>{download_link(e['name'], e['text'].encode('utf-8'))}</li>" for e in self.files)
        self._downloads.value = (f'<div class="nfx-files"><b>{len(self.files)} files</b>'
                                 f'<ul style="columns:3;margin:2px 0">{links}</ul></div>')
        shown = next((e for e in self.files if e["name"] == self.selected), None)
        self._code.value = render_code(shown["text"], shown["name"]) if shown else ""
