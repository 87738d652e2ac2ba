"""The explorer app wired to a fake engine: each button calls the right engine function with the
controls' values, and its result reaches the views; errors reach the status bar."""
from __future__ import annotations

import pytest

from explorer.errors import CSyntaxError, ShardingError
from widgets.app import ExplorerApp
from widgets.simulator import UPLOADED
from widgets.source_view import ALL_PATHS

from widgets_samples import GET_LINE, KEY0, PUT_LINE, REBALANCED, SIMULATION, TINY_NF, FakeEngine


@pytest.fixture
def nf(tmp_path):
    path = tmp_path / "tiny.c"
    path.write_text(TINY_NF)
    return path


@pytest.fixture
def engine(nf):
    return FakeEngine(str(nf))


@pytest.fixture
def app(nf, engine, tmp_path):
    return ExplorerApp(str(nf), engine=engine, samples_dir=tmp_path)


def test_loading_analyses_and_fills_source_graph_and_table(app, engine, nf):
    assert engine.last("analyze") == ((str(nf),), {"defines": {}})
    assert app.analysis is not None and app.solution is None
    assert app.source_view.text == TINY_NF and app.source_view.marked_lines == [GET_LINE, PUT_LINE]
    assert app.graph_view.dot.startswith("digraph tiny")
    assert engine.last("graph")[1] == {"highlight": None}
    assert [row["name"] for row in app.table.rows] == ["flows", "config"] and app.table.devices == 2
    assert app.solve_button.disabled is False
    assert app.simulator.run_button.disabled and app.project_view.button.disabled and app.verify_panel.button.disabled
    assert app.status.state == "done"
    assert app.status.message.startswith("Loaded tiny.c: 3 call paths, 2 state objects (analysed in ")


def test_selecting_a_path_highlights_it_in_the_graph(app, engine):
    app.source_view.selected_path = 1
    assert engine.last("graph")[1] == {"highlight": "path 1"}
    assert '"path 1" [color=red]' in app.graph_view.dot and app.graph_view.highlight == "path 1"
    app.source_view.selected_path = ALL_PATHS
    assert engine.last("graph")[1] == {"highlight": None}


def test_the_graph_can_emphasise_an_object(app, engine):
    labels = [label for label, _ in app.graph_view._picker.options]
    assert labels[:3] == ["nothing", "object flows", "object config"]
    assert labels[3].startswith("#0 dev 0,1: forward to 1")
    app.graph_view._picker.value = "flows"
    assert engine.last("graph")[1] == {"highlight": "flows"} and '"flows" [color=red]' in app.graph_view.dot
    graphs = sum(1 for name, _, _ in engine.calls if name == "graph")
    app.picker.button.click()  # a reload forgets the emphasis and draws the graph once
    assert app.graph_view.highlight == "" and sum(1 for name, _, _ in engine.calls if name == "graph") == graphs + 1


def test_without_a_path_nothing_is_analysed(engine, tmp_path):
    app = ExplorerApp("", engine=engine, samples_dir=tmp_path)
    assert engine.calls == [] and app.solve_button.disabled
    app.picker.button.click()
    assert app.status.state == "error" and "no NF chosen" in app.status.message


def test_defines_reach_the_engine_and_bad_ones_do_not(app, engine, nf):
    app.picker.defines_box.value = "CAP=64"
    app.picker.button.click()
    assert engine.last("analyze") == ((str(nf),), {"defines": {"CAP": "64"}})
    calls = len(engine.calls)
    app.picker.defines_box.value = "9=bad"
    app.picker.button.click()
    assert len(engine.calls) == calls and app.status.state == "error" and "9=bad" in app.status.message


def test_solve_uses_the_controls_and_shows_the_keys(app, engine, nf):
    app.nic.value, app.cores.value, app.strategy.value, app.seed.value = "cx5", 8, "sn", 3
    app.solve_button.click()
    args, kwargs = engine.last("solve")
    assert args == (app.analysis,)
    assert kwargs == {"defines": None, "nic": "cx5", "cores": 8, "seed": 3, "overrides": {}, "strategy": "sn"}
    assert KEY0 in app.solution_view._html.value
    assert app.table.rows[0]["decision"] == "shard"
    assert not app.simulator.run_button.disabled and not app.project_view.button.disabled
    assert app.status.state == "done" and "Solving RSS keys for 8 cores on cx5" in app.status.message


def test_an_override_goes_to_the_solver_and_its_counterexample_is_shown(app, engine):
    app.solve_button.click()
    for field in ("dst_ip", "src_port", "dst_port"):
        app.table.toggle("flows", 1, field).value = False
    app.solve_button.click()
    assert engine.last("solve")[1]["overrides"] == {"flows": {1: ("src_ip",)}}
    out = app.solution_view._html.value
    assert "nfx-counterexample" in out and "192.0.2.7" in out
    assert app.table.toggle("flows", 1, "src_ip").value and not app.table.toggle("flows", 1, "dst_ip").value


def test_engine_errors_reach_the_status_bar_and_keep_the_last_result(app, engine):
    app.solve_button.click()
    solution = app.solution
    engine.fail["solve"] = ShardingError("flows: no key keeps related packets together")
    app.solve_button.click()
    assert app.solution is solution
    assert app.status.state == "error"
    assert app.status.message.endswith("failed: flows: no key keeps related packets together")


def test_a_syntax_error_while_loading_is_shown(app, engine):
    engine.fail["analyze"] = CSyntaxError("expected ';'", location="tiny.c:3:9")
    app.picker.button.click()
    assert app.status.state == "error" and "tiny.c:3:9: expected ';'" in app.status.message


def test_simulate_and_rebalance_update_the_load_view(app, engine):
    app.solve_button.click()
    app.simulator.traffic.value = "zipf"
    app.simulator.packets.value, app.simulator.flows.value, app.simulator.seed.value = 500, 50, 7
    app.simulator.run_button.click()
    args, kwargs = engine.last("simulate")
    assert args == (app.solution,)
    assert kwargs == {"traffic": "zipf", "packets": 500, "flows": 50, "seed": 7, "rebalance": False}
    assert app.simulator.load.cores_source.data["packets"] == SIMULATION["per_core"]
    source = app.simulator.load.cores_source
    app.simulator.rebalance_button.click()
    assert engine.last("simulate")[1]["rebalance"] is True
    assert app.simulator.load.cores_source is source
    assert source.data["after"] == REBALANCED["rebalanced"]["per_core"]
    assert "No sharding violations" in app.simulator._violations.value


def test_an_uploaded_pcap_becomes_a_trace(app, engine, tmp_path):
    import datetime

    from explorer.traffic.pcap import write_pcap

    app.solve_button.click()
    frame = bytes(range(60))
    write_pcap(tmp_path / "up.pcap", [1000, 2000], [frame, frame])
    app.simulator.upload.value = ({"name": "up.pcap", "type": "", "size": 0,
                                   "content": memoryview((tmp_path / "up.pcap").read_bytes()),
                                   "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert app.simulator.traffic.value == UPLOADED
    app.simulator.upload_device.value = 1
    app.simulator.run_button.click()
    trace = engine.last("simulate")[1]["traffic"]
    assert len(trace) == 2 and list(trace.devices) == [1, 1] and trace.frames[0] == frame


def test_a_broken_upload_is_reported_not_simulated(app, engine):
    import datetime

    app.solve_button.click()
    app.simulator.upload.value = ({"name": "junk.pcap", "type": "", "size": 3, "content": memoryview(b"xyz"),
                                   "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    calls = len(engine.calls)
    app.simulator.run_button.click()
    assert len(engine.calls) == calls and app.status.state == "error" and "junk.pcap" in app.status.message


def test_generate_needs_a_folder_never_overwrites_silently_and_lists_files(app, engine, tmp_path):
    app.solve_button.click()
    app.project_view.folder.value = ""
    app.project_view.button.click()
    assert app.status.state == "error" and "Name a folder" in app.status.message
    out = tmp_path / "project"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    app.project_view.folder.value = str(out)
    app.project_view.button.click()
    assert engine.last("generate")[1]["force"] is False
    assert app.status.state == "error" and "not empty" in app.status.message
    assert (out / "mine.txt").read_text() == "keep me" and app.project_view.files == []
    app.project_view.overwrite.value = True
    app.project_view.button.click()
    assert engine.last("generate")[1] == {"strategy": "auto", "force": True}
    assert [f["name"] for f in app.project_view.files] == ["Makefile", "src/main.c"]


def test_verify_shows_the_verdict(app, engine):
    app.solve_button.click()
    app.verify_panel.traffic.value, app.verify_panel.cores.value = "churn", 4
    app.verify_panel.button.click()
    args, kwargs = engine.last("check")
    assert args == (app.solution, "churn") and kwargs == {"cores": 4}
    assert "Equivalent" in app.verify_panel._verdict.value


def test_loading_again_forgets_the_old_solution(app, engine):
    app.solve_button.click()
    app.simulator.run_button.click()
    app.picker.button.click()
    assert app.solution is None and app.simulation is None
    assert app.simulator.run_button.disabled and "press Solve" in app.solution_view._html.value
    assert app.simulator.load.cores_source.data["packets"] == []


def test_status_is_busy_while_the_engine_works(app, engine):
    seen = []
    engine.on_call = lambda name: seen.append((name, app.status.state, app.status.message))
    app.solve_button.click()
    assert seen == [("solve", "busy", "Solving RSS keys for 16 cores on e810\u2026")]
