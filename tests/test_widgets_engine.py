"""The ExplorerApp on the real engine (explorer.pipeline) and the firewall, without a browser: the
views show exactly what the engine's result values say, for the inputs they say."""
from __future__ import annotations

import html
from pathlib import Path

import pytest

from explorer import pipeline
from widgets import sharding_table
from widgets.app import ExplorerApp
from widgets.source_view import access_notes

FW = Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return ExplorerApp(str(FW), out_dir=str(tmp_path_factory.mktemp("out")))


@pytest.mark.dot
def test_loading_fw_marks_every_access_draws_the_graph_and_solves(app):
    data = app.analysis.to_dict()
    assert app.load_status.state == "done", app.load_status.message
    assert app.solve_status.state == "done", app.solve_status.message
    lines = sorted(access_notes(data["paths"], data["source"]))
    assert lines and app.source_view.marked_lines == lines
    assert [row["name"] for row in app.table.rows] == [o["name"] for o in data["objects"]]
    assert app.graph_view.error == "" and app.graph_view.svg.startswith("<svg")
    assert "dev1: dst_ip,src_ip,dport,sport,proto" in app.graph_view.svg


def test_the_views_show_the_engines_solution_for_the_controls(app):
    app.nic.value = "x710"
    data = app.solution.to_dict()
    assert data == pipeline.solve(app.analysis, nic="x710").to_dict() | {"seconds": data["seconds"]}
    for device in data["devices"].values():
        assert device["key"] in app.solution_view.rss.value
    assert app.solved.label() == "fw.c, x710, 16 cores, seed 0"
    app.simulator.traffic.value = "bidir"
    app.simulator.packets.value, app.simulator.flows.value = 5_000, 500
    app.simulator.run_button.click()
    sim = app.simulation.to_dict()
    assert app.simulator.load.cores_source.data["packets"] == sim["per_core"]
    assert sim["violations"]["count"] == 0 and "No sharding violations" in app.simulator._findings.value
    app.nic.value = "e810"


def test_a_breaking_override_is_shown_with_the_engines_words_and_packets(app):
    app.table.set_override("flows", 0, ["src_ip"])
    app.table.set_override("flows", 1, ["src_ip"])
    data = app.solution.to_dict()
    assert not data["valid"]
    words = pipeline.explain(app.solution)
    assert app.words["counterexample"]["packets"] == words["counterexample"]["packets"]
    for packet in words["counterexample"]["packets"]:
        assert f"{packet['src_ip']}:{packet['src_port']}" in app.solution_view.head.value
    assert app.table.row("flows")["decision"] == "broken"
    app.simulator.run_button.click()  # a wrong key is simulated: its violations, as packets
    assert "were reached from more than one core" in app.simulator._findings.value
    assert "-&gt;" in app.simulator._findings.value
    app.table.reset_overrides()
    assert app.solution.to_dict()["valid"] and "nfx-counterexample" not in app.solution_view.head.value
    assert app.simulator.status.state == "stale"


def test_unticking_every_field_is_refused_with_the_engines_message(app):
    for field in ("src_ip", "dst_ip", "src_port"):  # each click re-solves: narrower, still correct
        app.table.toggle("flows", 0, field).value = False
    solution = app.solution
    assert solution.to_dict()["valid"] and app.solved.overrides == (("flows", ((0, ("dst_port",)),)),)
    app.table.toggle("flows", 0, "dst_port").value = False
    assert app.solution is solution
    assert app.solve_status.state == "error"  # said as what is wrong and what to do (it was 'no field is not an RSS field')
    assert "override for 'flows' on device 0 names no field: shard it on at least one of src_ip" in \
        app.solve_status.message and "is not an RSS field" not in app.solve_status.message
    assert app.project_view.button.disabled and "Solve first" in app.project_view.button.tooltip
    app.table.reset_overrides()
    assert app.solve_status.state == "done" and not app.project_view.button.disabled


def test_an_analysis_warning_is_shown_under_the_load_status(tmp_path):
    """The explorer shows what the CLI prints as ``nfx analyze: warning:`` (a test for a device the
    NF does not have), and the NF is loaded and solved all the same."""
    nf = Path(__file__).resolve().parent / "nfs" / "mgmt_port.c"
    app = ExplorerApp(str(nf), out_dir=str(tmp_path / "out"))
    assert app.load_status.state == "warning", app.load_status.message
    first, second = app.load_status.message.split("\n")
    assert first.startswith("Loaded mgmt_port.c: ")
    assert second.startswith(f"warning: {nf}:") and "this tests for device 2" in second and "NF_DEVICES 3" in second
    assert app.solve_status.state == "done", app.solve_status.message
    # the source view marks the line in the warning colour, with a few words beside it
    assert app.source_view.warnings == {18: "warning: device 2 does not exist (NF_DEVICES is 2): never runs"}
    html = app.source_view._code.value
    assert 'class="nfx-line nfx-warned" data-line="18"' in html and "device 2 does not exist" in html
    assert html.count("nfx-warned\"") == 1
    # no state: the table says so instead of showing an empty header and a reset button
    assert [c.value for c in app.table._grid.children] == [sharding_table.NO_STATE]
    assert app.table.reset_button.layout.display == "none"
    app.load()  # again: the warning is shown each time, not once per process
    assert app.load_status.state == "warning" and "tests for device 2" in app.load_status.message
    assert list(app.source_view.warnings) == [18]


def test_the_plans_spread_warnings_are_shown_with_the_solution_and_the_simulation(tmp_path):
    """``nfx solve`` and ``nfx simulate`` print where a key that keeps only part of a port leaves
    typical ports or the trace's packets on too few RETA entries for the cores; the explorer showed
    neither. port_blocks keeps a server port's top byte: the well-known ports (blocks 0-3) reach 4 of
    16 cores, and heartbeat traffic (every LAN frame to port 9999) one."""
    nf = Path(__file__).resolve().parent / "nfs" / "port_blocks.c"
    app = ExplorerApp(str(nf), out_dir=str(tmp_path / "out"))
    warnings = app.solution.to_dict()["warnings"]
    assert warnings and app.solution.warnings == tuple(warnings)
    assert app.solve_status.state == "warning", app.solve_status.message
    assert app.solve_status.message.endswith(f"; {len(warnings)} warning{'s' if len(warnings) > 1 else ''} below: "
                                             "some traffic cannot spread over the cores")
    shown = app.solution_view.rss.value
    assert 'class="nfx-warnings"' in shown
    for warning in warnings:
        assert f"<li>{html.escape(warning)}</li>" in shown
    app.simulator.traffic.value = "heartbeat"
    app.simulator.packets.value, app.simulator.flows.value = 5_000, 500
    app.simulator.run_button.click()
    sim = app.simulation.to_dict()
    assert sim["warnings"] and sim["warnings"][0].startswith("device 0: its ")
    assert app.simulator.status.state == "warning", app.simulator.status.message
    findings = app.simulator._findings.value
    for warning in sim["warnings"]:
        assert f"<li>{html.escape(warning)}</li>" in findings
    app.cores.value = 2  # re-solves: the well-known ports reach both cores, so nothing to warn of
    assert app.solution.to_dict()["warnings"] == [] and app.solve_status.state == "done"
    assert "nfx-warnings" not in app.solution_view.rss.value
    app.simulator.traffic.value = "uniform"
    app.simulator.run_button.click()
    assert app.simulation.to_dict()["warnings"] == [] and app.simulator.status.state == "done"
    assert "nfx-warnings" not in app.simulator._findings.value


def test_an_nf_that_fails_to_load_first_is_not_said_to_keep_no_state(tmp_path):
    """`nfx explore bad_syntax.c`: the table had no rows because nothing was analysed, and said "This
    NF keeps no state between packets ... any RSS key keeps it correct" beside the syntax error."""
    nf = Path(__file__).resolve().parent / "nfs" / "bad_syntax.c"
    app = ExplorerApp(str(nf), out_dir=str(tmp_path / "out"))
    assert app.load_status.state == "error" and f"{nf}:6:11: expected expression" in app.load_status.message
    assert [c.value for c in app.table._grid.children] == [""]


def test_an_empty_file_says_it_is_empty_beside_why_it_did_not_load(tmp_path):
    """`nfx explore empty.c`: the Source pane said "No NF loaded." under the red status line, as if
    nothing had been named; it now says what did not load and that the file is empty."""
    nf = tmp_path / "empty.c"
    nf.write_text("")
    app = ExplorerApp(str(nf), out_dir=str(tmp_path / "out"))
    assert app.load_status.state == "error" and "the file declares nothing" in app.load_status.message
    shown = app.source_view._code.value
    assert "empty.c did not load (" in shown and shown.endswith("<i>empty.c is empty.</i>")
