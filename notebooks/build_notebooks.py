"""Pair every notebook's source with the notebook people read.

The source of ``<name>.ipynb`` is ``<name>.py``, in jupytext's percent format (the file to edit and
review). ``python notebooks/build_notebooks.py [NAME ...]`` executes each source in a fresh kernel
from this folder and writes ``<name>.ipynb`` with its outputs, so that it reads on a code-hosting
site without running. Cell ids are ``<name>-<n>``, timings are left out and the cells print no
paths or times, so a rebuild is byte-identical (tests/test_notebooks.py re-executes and compares).
``explore`` is the Voilà page: Voilà executes it, so it is written without outputs.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import jupytext
import nbclient
import nbformat

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
UNEXECUTED = frozenset({"explore"})  # served live by Voilà (`nfx explore`)
TIMEOUT_S = 600  # per cell


def names(folder: Path = HERE) -> list[str]:
    """The notebooks: every ``*.py`` here that jupytext reads as a percent-format notebook."""
    found = []
    for path in sorted(folder.glob("*.py")):
        head = path.read_text(encoding="utf-8")[:400]
        if "format_name: percent" in head or "py:percent" in head:
            found.append(path.stem)
    return found


def source(name: str, folder: Path = HERE) -> nbformat.NotebookNode:
    """The cells of ``<name>.py``, with stable ids and only the metadata a reader needs."""
    notebook = jupytext.read(folder / f"{name}.py", fmt="py:percent")
    notebook.metadata = nbformat.NotebookNode({
        "jupytext": {"formats": "ipynb,py:percent"},
        "kernelspec": dict(KERNEL),
        "language_info": {"name": "python"},
    })
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{name}-{number}"
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k == "tags"})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(notebook)
    return notebook


@contextlib.contextmanager
def _scratch_outputs() -> Iterator[None]:
    """``NFX_OUT`` (where the export notebook writes projects) in a temporary folder unless set."""
    if os.environ.get("NFX_OUT"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nfx-notebooks-") as folder:
        os.environ["NFX_OUT"] = folder
        try:
            yield
        finally:
            del os.environ["NFX_OUT"]


def execute(notebook: nbformat.NotebookNode, folder: Path = HERE) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel (this interpreter's ``python3``) from ``folder``; raises
    nbclient's CellExecutionError, naming the cell, when one fails."""
    with _scratch_outputs():
        client = nbclient.NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3", record_timing=False,
                                         resources={"metadata": {"path": str(folder)}})
        client.execute()
    notebook.metadata = nbformat.NotebookNode({k: notebook.metadata[k] for k in ("jupytext", "kernelspec")}
                                              | {"language_info": {"name": "python"}})
    for cell in notebook.cells:
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k == "tags"})
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    return notebook


def coalesce_streams(outputs: list) -> list:
    """Consecutive writes to one stream as one output: how the kernel chunks them depends on timing."""
    merged: list = []
    for out in outputs:
        last = merged[-1] if merged else None
        if (out["output_type"] == "stream" and last is not None and last["output_type"] == "stream"
                and last["name"] == out["name"]):
            last["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def build(name: str, folder: Path = HERE) -> nbformat.NotebookNode:
    """``<name>.ipynb`` as it should be committed: executed unless it is the Voilà page."""
    notebook = source(name, folder)
    return notebook if name in UNEXECUTED else execute(notebook, folder)


def render(notebook: nbformat.NotebookNode) -> str:
    return nbformat.writes(notebook) + "\n"


def main(argv: Optional[list[str]] = None, folder: Path = HERE) -> int:
    chosen = (argv if argv is not None else sys.argv[1:]) or names(folder)
    unknown = sorted(set(chosen) - set(names(folder)))
    if unknown:
        print(f"build_notebooks: no notebook source {', '.join(unknown)} (have {', '.join(names(folder))})",
              file=sys.stderr)
        return 2
    for name in chosen:
        path = folder / f"{name}.ipynb"
        text = render(build(name, folder))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
