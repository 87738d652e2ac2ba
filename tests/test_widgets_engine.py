"""The ExplorerApp on the real engine (explorer.pipeline) and a sample NF, without a browser: the views
show exactly what the engine's result values say."""
from __future__ import annotations

from pathlib import Path

import pytest

from explorer import pipeline
from widgets.app import ExplorerApp
from widgets.source_view import access_notes

FW = Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"


@pytest.fixture(scope="module")
def app():
    return ExplorerApp(str(FW))


@pytest.mark.dot
def test_loading_fw_marks_every_access_and_draws_the_graph(app):
    data = app.analysis.to_dict()
    assert app.status.state == "done", app.status.message
    lines = sorted(access_notes(data["paths"], data["source"]))
    assert lines and app.source_view.marked_lines == lines
    assert [row["name"] for row in app.table.rows] == [o["name"] for o in data["objects"]]
    assert app.graph_view.error == "" and app.graph_view.svg.startswith("<svg")
    app.graph_view.highlight = "flows"
    assert app.graph_view.error == "" and "#d62728" in app.graph_view.svg  # the engine's emphasis colour
    app.graph_view.highlight = ""


def test_solve_then_simulate_shows_the_engines_values(app):
    app.solve_button.click()
    assert app.status.state == "done", app.status.message
    data = app.solution.to_dict()
    assert data == pipeline.solve(app.analysis).to_dict() | {"seconds": data["seconds"]}
    for device in data["devices"].values():
        assert device["key"] in app.solution_view._html.value
    app.simulator.traffic.value = "bidir"
    app.simulator.packets.value, app.simulator.flows.value = 5_000, 500
    app.simulator.run_button.click()
    sim = app.simulation.to_dict()
    assert app.simulator.load.cores_source.data["packets"] == sim["per_core"]
    assert app.simulator.load.buckets_source.data["packets"] == sim["buckets"]
    assert sim["violations"]["count"] == 0 and "No sharding violations" in app.simulator._violations.value


def test_a_breaking_override_shows_the_engines_counterexample(app):
    app.table.set_override("flows", 0, ["src_ip"])
    app.table.set_override("flows", 1, ["src_ip"])
    app.solve_button.click()
    data = app.solution.to_dict()
    assert not data["valid"] and data["counterexample"]["object"] == "flows"
    assert "nfx-counterexample" in app.solution_view._html.value
    assert data["counterexample"]["p1"]["src_ip"] in app.solution_view._html.value
    app.table.reset_overrides()
    app.solve_button.click()
    assert app.solution.to_dict()["valid"] and "nfx-counterexample" not in app.solution_view._html.value


def test_unticking_every_field_is_refused_with_the_engines_message(app):
    for field in ("src_ip", "dst_ip", "src_port", "dst_port"):
        app.table.toggle("flows", 0, field).value = False
    solution = app.solution
    app.solve_button.click()
    app.table.reset_overrides()
    assert app.solution is solution
    assert app.status.state == "error" and "override for 'flows' on device 0: no field" in app.status.message
