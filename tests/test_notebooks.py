"""The notebooks: each ``notebooks/<name>.py`` (jupytext percent format) is the source of
``<name>.ipynb``; the committed notebooks hold exactly their source's cells, and executing a source
again in a fresh kernel reproduces the committed outputs (every number the cells print and assert,
every chart) byte for byte."""
from __future__ import annotations

import copy
import difflib
import importlib.util
import json
from pathlib import Path

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
NAMES = BUILDER.names()
EXECUTED = [n for n in NAMES if n not in BUILDER.UNEXECUTED]
NEEDS_DPDK = {"export", "pitfalls"}  # build and run generated programs (pitfalls: the replicated lb)
RUNS = [pytest.param(name, marks=[pytest.mark.slow] + ([pytest.mark.dpdk] if name in NEEDS_DPDK else []))
        for name in EXECUTED]


def cells(notebook) -> list[tuple[str, str, str]]:
    return [(cell.id, cell.cell_type, cell.source) for cell in notebook.cells]


def outputs(notebook) -> list[list[dict]]:
    """Per code cell, what a reader sees: streams, results, displays and errors, without counters."""
    seen = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown = []
        for out in BUILDER.coalesce_streams(copy.deepcopy(cell.outputs)):
            kind = out["output_type"]
            if kind == "stream":
                shown.append({"stream": out["name"], "text": out["text"]})
            elif kind in ("execute_result", "display_data"):
                shown.append({"data": dict(out["data"])})
            else:
                shown.append({"error": out.get("ename"), "value": out.get("evalue")})
        seen.append(shown)
    return seen


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """A kernel that reads no user settings, builds into a fresh cache and writes projects to tmp."""
    (tmp_path / "home").mkdir()
    for key, value in jupyter_env(tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NFX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NFX_OUT", str(tmp_path / "out"))
    monkeypatch.delenv("NFX_NF", raising=False)
    return tmp_path


def test_every_notebook_has_its_source_and_none_is_stray():
    assert {"explore", "pitfalls", "tuning", "export"} <= set(NAMES)
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(NAMES)
    for name in NAMES:
        head = (NOTEBOOKS / f"{name}.py").read_text(encoding="utf-8").splitlines()[:6]
        assert "#     formats: ipynb,py:percent" in head, f"{name}.py is not paired with {name}.ipynb"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_its_sources_cells(name):
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(committed)
    assert cells(committed) == cells(BUILDER.source(name)), \
        f"{name}.ipynb is out of date with {name}.py: run python notebooks/build_notebooks.py {name}"
    assert committed.metadata["jupytext"] == {"formats": "ipynb,py:percent"}


@pytest.mark.parametrize("name", EXECUTED)
def test_committed_teaching_notebooks_carry_outputs_and_charts(name):
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}.ipynb was not executed"
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    if name in ("pitfalls", "tuning"):
        charts = [o for c in code for o in c.outputs if "image/svg+xml" in o.get("data", {})]
        assert len(charts) >= (10 if name == "pitfalls" else 3), f"{name}.ipynb has {len(charts)} charts"


def test_the_voila_page_is_committed_without_outputs():
    page = nbformat.read(NOTEBOOKS / "explore.ipynb", as_version=4)
    assert all(c.outputs == [] and c.execution_count is None for c in page.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", RUNS)
def test_reexecuting_a_notebook_reproduces_its_committed_outputs(name, kernel_env):
    # The cells assert what they teach, so a failing claim fails here with its cell and traceback.
    rebuilt = BUILDER.build(name)
    committed = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for number, (now, then) in enumerate(zip(outputs(rebuilt), outputs(committed))):
        if now != then:
            diff = "\n".join(difflib.unified_diff(json.dumps(then, indent=1).splitlines(),
                                                  json.dumps(now, indent=1).splitlines(), "committed", "rerun",
                                                  lineterm="", n=1))
            raise AssertionError(f"{name}.ipynb: code cell {number} printed or drew something else when run "
                                 f"again:\n{diff[:4000]}")
    assert BUILDER.render(rebuilt) == (NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8")


def test_the_voila_page_runs_and_shows_the_app(kernel_env):
    page = BUILDER.execute(BUILDER.source("explore"))
    shown = [o for c in page.cells for o in c.get("outputs", ())]
    assert not [o for o in shown if o["output_type"] == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)
