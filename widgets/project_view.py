"""The Generate section: where to write the project (by default ``<nf>-parallel`` beside the NF,
shown as soon as the NF is loaded, until the user types a folder; the line below the box says the
whole path and what is there now), a confirmation when that folder holds another NF's project (or
files nfx did not write), the files written, each one highlighted, and downloads:
every file, and all of them as one zip (data URIs, so they work without a file server; served as
``application/octet-stream`` so that a ``Makefile`` is saved as ``Makefile``)."""
from __future__ import annotations

import base64
import html
import io
import zipfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import ipywidgets
import traitlets

from widgets.code import render_code
from widgets.status import StatusLine

DOWNLOAD_MIME = "application/octet-stream"  # saved under the name given, never with an extension added
ZIP_MIME = "application/zip"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so equal projects give equal zips


def default_folder(nf: str, root: str = "") -> str:
    """``<nf>-parallel`` beside the NF (as the README's ``nfx generate fw.c -o fw-parallel``), or in
    ``root``. One folder per NF: Generate again replaces nfx's own files there (the user's are
    kept, their new versions beside them as NAME.new). It used to be ``out/<nf>-<strategy>-...``
    under the kernel's folder, which nobody saw before looking for it."""
    return str(Path(root or Path(nf).parent) / f"{Path(nf).stem}-parallel")


def where_folder(folder: str, nf: str) -> Path:
    """The folder a Generate writes to: ``folder``, a relative one taken from the NF's folder (the
    default's), not from the kernel's, which the page never shows."""
    path = Path(folder).expanduser()
    return path if path.is_absolute() else Path(nf).parent / path


def download_link(name: str, data: bytes, mime: str = DOWNLOAD_MIME, css_class: str = "nfx-download",
                  text: Optional[str] = None) -> str:
    """An ``<a download>`` whose target is the file itself, base64 in a data URI."""
    encoded = base64.b64encode(data).decode("ascii")
    base = html.escape(Path(name).name, quote=True)
    return (f'<a class="{css_class}" download="{base}" href="data:{mime};base64,{encoded}" '
            f'title="download {html.escape(name, quote=True)}">{html.escape(text or name)}</a>')


def zip_bytes(files: Sequence[Mapping[str, str]], folder: str) -> bytes:
    """The files as a zip whose entries sit in ``folder/`` (sorted, fixed times: deterministic)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry in sorted(files, key=lambda e: e["name"]):
            info = zipfile.ZipInfo(f"{folder}/{entry['name']}", ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entry["text"].encode("utf-8"))
    return out.getvalue()


def read_project(root: Path, files: Sequence[str | Path]) -> list[dict[str, str]]:
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
    """Controls for generating (the app wires the button) and the files of the last project.
    ``suggested`` is the folder that follows the inputs; ``folder.value`` follows it until edited."""

    files = traitlets.List()  # read_project()'s entries
    selected = traitlets.Unicode("")  # the name of the file shown
    suggested = traitlets.Unicode("")
    root = traitlets.Unicode("")  # the folder the last project was written to

    def __init__(self, **kwargs: Any) -> None:
        self.folder = ipywidgets.Text(value="", description="Folder", placeholder="where to write the project",
                                      style={"description_width": "50px"}, layout=ipywidgets.Layout(width="480px"))
        self.button = ipywidgets.Button(description="Generate", button_style="primary")
        self.where = ipywidgets.HTML()  # the whole path Generate writes to, and what is there now
        self.where.add_class("nfx-where")
        self.confirm = ipywidgets.Checkbox(value=False, indent=False, layout=ipywidgets.Layout(width="auto",
                                                                                            display="none"))
        self.status = StatusLine("Write the parallel DPDK project of the current solution.")
        self._picker = ipywidgets.Dropdown(description="File", options=[], style={"description_width": "50px"},
                                           layout=ipywidgets.Layout(width="360px", display="none"))
        self._downloads = ipywidgets.HTML()
        self._code = ipywidgets.HTML(layout=ipywidgets.Layout(width="100%"))
        self.toolbar = ipywidgets.VBox([ipywidgets.HBox([self.folder, self.button]), self.where, self.confirm,
                                        self.status])
        self.toolbar.add_class("nfx-toolbar")
        self.body = ipywidgets.VBox([self._downloads, self._picker, self._code], layout=ipywidgets.Layout(width="100%"))
        super().__init__([self.toolbar, self.body], **kwargs)
        self.add_class("nfx-project")
        self._following = True  # the folder follows ``suggested`` until the user types one
        self._following_write = False  # set while the folder is changed by code, not by the user
        self.folder.observe(self._on_folder, "value")
        # Not traitlets.link: an empty Dropdown's value is None, which is no file name.
        self._picker.observe(lambda change: setattr(self, "selected", change["new"] or ""), "value")
        self._render()

    # ---- the folder ---------------------------------------------------------------------------

    @traitlets.observe("suggested")
    def _on_suggested(self, _change: Any) -> None:
        if self._following:
            self._set_folder(self.suggested)

    def follow(self, suggested: str) -> None:
        """Offer ``suggested`` and follow it again, whatever the user typed (another NF is loaded: a
        folder typed for the last one is not meant for this one)."""
        self._following = True
        if self.suggested == suggested:
            self._set_folder(suggested)
        self.suggested = suggested

    def _set_folder(self, value: str) -> None:
        self._following_write = True
        try:
            self.folder.value = value
        finally:
            self._following_write = False

    def _on_folder(self, _change: Any) -> None:
        if not self._following_write:
            self._following = self.folder.value.strip() in ("", self.suggested)
        self.ask(None)

    def show_where(self, folder: Optional[Path], holds: str = "") -> None:
        """Say the whole path Generate writes to and what it ``holds`` ("" for nothing or nothing
        in the way); None: nothing (no NF loaded)."""
        if folder is None:
            self.where.value = ""
            return
        self.where.value = (f'<span style="font-size:12px;color:#57606a">Writes into <code>{html.escape(str(folder))}'
                            f'</code>{html.escape(holds)}</span>')

    def ask(self, question: Optional[str]) -> None:
        """Show ``question`` as a checkbox that must be ticked before Generate writes (None: hide it)."""
        self.confirm.value = False
        self.confirm.description = question or ""
        self.confirm.layout.display = "flex" if question else "none"

    # ---- the files ----------------------------------------------------------------------------

    def show_files(self, root: Path, files: Sequence[str | Path]) -> None:
        with self.hold_trait_notifications():
            self.root = str(root)
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
            self._downloads.value = '<i class="nfx-hint">Nothing generated yet.</i>'
            self._code.value = ""
            return
        folder = Path(self.root).name or "project"
        archive = download_link(f"{folder}.zip", zip_bytes(self.files, folder), ZIP_MIME, "nfx-download-all",
                                f"Download all ({folder}.zip)")
        links = "".join(f"<li>{download_link(e['name'], e['text'].encode('utf-8'))}</li>" for e in self.files)
        self._downloads.value = (f'<div class="nfx-files"><b>{len(self.files)} files</b> in '
                                 f"<code>{html.escape(self.root)}</code> &nbsp; {archive}"
                                 f'<ul style="columns:3;margin:2px 0">{links}</ul></div>')
        shown = next((e for e in self.files if e["name"] == self.selected), None)
        self._code.value = render_code(shown["text"], shown["name"], max_height="420px") if shown else ""
