"""The ExplorerApp on the real engine (explorer.pipeline) and the firewall, without a browser: the
views show exactly what the engine's result values say, for the inputs they say."""
from __future__ import annotations

import html
from pathlib import Path
from xml.etree import ElementTree

import pytest

from explorer import pipeline
from explorer.wire import PACKET_FIELDS
from widgets import sharding_table
from widgets.access_graph import DETAILED, SUMMARY, edges
from widgets.app import ExplorerApp
from widgets.graph_view import MIN_TEXT_PX, GraphView
from widgets.sharding_table import ShardingTable, rows_from
from widgets.source_view import access_notes

FW = Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"
DNS_GUARD = Path(__file__).resolve().parent / "nfs" / "dns_guard.c"
DNS_LIMIT = Path(__file__).resolve().parent / "nfs" / "dns_limit.c"


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
    assert "dev1: dst_ip,src_ip,dst_port,src_port,protocol" in app.graph_view.svg


def test_the_header_counts_the_paths_as_the_graphs_device_nodes_do(app):
    """fw's two non-IPv4 paths are taken on both devices, so the device nodes' counts add up to 9
    of 7 paths: each node says "of 7" and the header how many each device takes and shares."""
    paths = app.analysis.to_dict()["paths"]
    shared = sum(1 for p in paths if len(p["devices"]) > 1)
    takes = {d: sum(1 for p in paths if d in p["devices"]) for d in (0, 1)}
    assert shared and sum(takes.values()) > len(paths)
    assert (f"{len(paths)} call paths (device 0 takes {takes[0]}, device 1 takes {takes[1]}; "
            f"{shared} are taken by both)") in app.context.value
    for device, count in takes.items():
        assert f"device {device}\\n{count} of {len(paths)} paths" in app.graph_view.dot


def test_every_pane_names_the_ports_as_the_engine_does(app):
    """The graph's key edges said sport / dport / proto where the table, the CLI and the engine's
    PacketField say src_port / dst_port (and the key layouts protocol)."""
    names = {f.rss_name for f in PACKET_FIELDS if f.rss_name} | {"protocol"}
    labelled = {field for edge in edges(app.analysis.to_dict(), app.words)
                for line in edge.label.split("\n") if line.startswith("dev") and ": " in line
                for field in line.split(": ", 1)[1].split(",")}
    assert labelled and labelled <= names, labelled - names
    assert {"src_port", "dst_port"} <= labelled


@pytest.mark.dot
def test_fit_keeps_a_wide_graphs_smallest_label_readable():
    """dns_guard's summary is drawn 900 pt wide: fitted into a 600 px pane its 12 pt labels came out
    at 8 px. Fit now stops at the scale where the smallest text is MIN_TEXT_PX high (the box
    scrolls past it), and Actual size has no such floor."""
    analysis = pipeline.analyze(DNS_GUARD)
    view = GraphView()
    view.analysis, view.words = analysis.to_dict(), pipeline.explain(pipeline.solve(analysis, quality=False))
    for shown in (SUMMARY, DETAILED):
        view.view = shown
        root = ElementTree.fromstring(view.svg)
        natural = float(root.get("viewBox").split()[2])  # Graphviz draws in points
        style = dict(item.split(":") for item in root.get("style").split(";"))
        floor = float(style["min-width"].removesuffix("pt")) / natural
        smallest = min(float(t.get("font-size")) for t in root.iter("{http://www.w3.org/2000/svg}text"))
        assert smallest * floor * 4 / 3 >= MIN_TEXT_PX - 0.05, (shown, floor, smallest)
        assert floor < 1 and style["max-width"] == f"{natural:.0f}pt"  # it still shrinks, down to there
    view.zoom = "actual"
    assert "min-width" not in view.svg


def test_a_call_both_devices_make_is_summarised_once_with_each_devices_key():
    """dns_limit looks its pairs up at one line for both devices: the table's summary listed that
    call once per device, as if there were two."""
    solution = pipeline.solve(DNS_LIMIT, quality=False)
    words = pipeline.explain(solution)
    table = ShardingTable()
    table.show(rows_from(solution.analysis.to_dict(), solution.to_dict(), words), 2)
    summary = table.row("pairs")["summary"]
    assert summary.count("dns_limit.c:51") == 1, summary
    assert ("dns_limit.c:51 `nf_map_get(pairs, &key, &index)` looks up pairs by device 0 packets' (src_ip, dst_ip) "
            "and device 1 packets' (dst_ip, src_ip);") in summary
    assert table._why_html(table.row("pairs")).count("dns_limit.c:51") == 1  # as the page shows it


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
