"""Every notebook runs top to bottom in a fresh kernel (their cells assert what they teach), and
the committed notebooks are exactly what notebooks/build_notebooks.py writes: no outputs, stable ids."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbclient
import nbformat
import pytest

from conftest_browser import jupyter_env

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _builder()
NAMES = sorted(BUILDER.NOTEBOOKS)
NEEDS_DPDK = {"export"}  # builds and runs the generated DPDK program
RUNS = [pytest.param(name, marks=[pytest.mark.dpdk] if name in NEEDS_DPDK else []) for name in NAMES]


def test_every_notebook_is_built_and_none_is_stray():
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(NAMES)
    assert {"explorer", "pitfalls", "tuning", "export"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_generated_and_clear(name):
    path = NOTEBOOKS / f"{name}.ipynb"
    assert path.read_text(encoding="utf-8") == BUILDER.render(name), \
        f"{path.name} differs from its source: run python notebooks/build_notebooks.py"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", RUNS)
def test_notebook_runs(name, tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    for key, value in jupyter_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NFX_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("NFX_NF", raising=False)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    # "python3" is ipykernel's own spec, whose "python" jupyter_client replaces by sys.executable:
    # the kernel is this venv's interpreter. The notebook runs in its own folder, as under Voilà.
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails

