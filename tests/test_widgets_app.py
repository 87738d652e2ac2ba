"""The explorer app wired to a fake engine: each action calls the right engine function with the
controls' values, results reach the views with the inputs they were computed for, a change of
inputs re-solves at once (or, for the NF, waits for Load), and every action refuses, saying why,
while the solution does not match the controls."""
from __future__ import annotations

import asyncio
import datetime
import json
from types import SimpleNamespace

import pytest

from explorer.errors import CSyntaxError, RunError, ShardingError, TrafficError
from explorer.ir import Location
from explorer.pipeline import PATHS
from widgets.app import SHOWN_SOURCE_LIMIT, ExplorerApp
from widgets.sharding_table import RESUME_AFTER_S
from widgets.simulator import UPLOADED

from widgets_samples import (GET_LINE, KEY0, PUT_LINE, REBALANCED, SIMULATION, TINY_NF, FakeEngine, Result,
                             analysis_dict)


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
    return ExplorerApp(str(nf), engine=engine, samples_dir=tmp_path, out_dir=str(tmp_path / "out"))


def calls(engine, name):
    return sum(1 for called, _, _ in engine.calls if called == name)


def test_loading_analyses_shows_everything_and_solves_at_once(app, engine, nf):
    assert engine.last("analyze") == ((str(nf),), {"defines": {}})
    assert engine.last("solve")[1] == {"defines": None, "nic": "e810", "cores": 16, "seed": 0, "overrides": {},
                                       "strategy": "auto"}
    assert app.source_view.text == TINY_NF and app.source_view.marked_lines == [GET_LINE, PUT_LINE]
    assert app.graph_view.svg.startswith("<svg") or app.graph_view.error  # drawn when dot is installed
    assert [row["name"] for row in app.table.rows] == ["flows", "config"] and app.table.devices == 2
    assert app.load_status.state == "done"
    assert app.load_status.message.startswith("Loaded tiny.c: 3 call paths, 2 state objects, analysed in ")
    assert app.solve_status.message.startswith("Solved in ") and "for tiny.c, e810, 16 cores, seed 0" in \
        app.solve_status.message
    assert "solution for <b>tiny.c, e810, 16 cores, seed 0</b>" in app.context.value
    for button in (app.solve_button, app.simulator.run_button, app.project_view.button, app.verify_panel.button):
        assert not button.disabled and not button.tooltip
    assert KEY0 in app.solution_view.rss.value
    assert app.project_view.folder.value.endswith("out/tiny-parallel")


def test_enter_in_the_nf_or_defines_box_loads(app, engine, tmp_path):
    """Typing a path and pressing Enter did nothing: only the Load button loaded."""
    other = tmp_path / "other.c"
    other.write_text(TINY_NF)
    app.picker.path_box.value = str(other)
    loads = calls(engine, "analyze")
    app.picker.path_box._handle_custom_msg({"event": "submit"}, [])  # what the browser sends on Enter
    assert calls(engine, "analyze") == loads + 1 and engine.last("analyze")[0] == (str(other),)
    app.picker.defines_box.value = "CAPACITY=8"
    app.picker.defines_box._handle_custom_msg({"event": "submit"}, [])
    assert engine.last("analyze") == ((str(other),), {"defines": {"CAPACITY": "8"}})


def test_an_nf_with_one_device_is_offered_only_traffic_it_can_take(app, engine, monkeypatch):
    """one_port.c: Simulate on generated traffic failed with the CLI's advice ('give its traffic with
    --in 0=PCAP, or use --traffic paths'), and Verify offered kinds that all fail the same way."""
    one = {**analysis_dict(engine.source), "devices": 1}
    monkeypatch.setattr(engine, "analyze", lambda nf, defines=None: Result(one))
    app.picker.button.click()
    assert app.simulator.run_button.disabled and len(app.simulator.uploads) == 1
    assert app.simulator.status.message == ("tiny.c has one device, and generated traffic arrives on two (LAN 0 and "
                                            "WAN 1): upload a capture for device 0.")
    assert list(app.verify_panel.traffic.options) == [PATHS] and app.verify_panel.traffic.value == PATHS
    app.simulator.uploads[0].value = ({"name": "lan.pcap", "type": "", "size": 3, "content": memoryview(b"xyz"),
                                       "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert not app.simulator.run_button.disabled
    monkeypatch.undo()
    app.picker.button.click()  # two devices again: every kind
    assert "bidir" in app.verify_panel.traffic.options and app.verify_panel.traffic.value == "bidir"


def test_a_counterexample_the_nf_cannot_run_on_still_shows_and_the_spinner_stops(app, engine, monkeypatch):
    """fw.c with FW_CAPACITY=1073741824 analyses, but its nf_init fails when run: a breaking
    override left 'running fw.c on them...' spinning for good and raised out of the callback."""
    told = engine.explain

    def explain(result, outcome=True):
        if result.to_dict().get("valid") is False and outcome:
            raise RunError("tiny.c: nf_init failed (returned false)")
        return told(result)

    monkeypatch.setattr(engine, "explain", explain)
    for field in ("dst_ip", "src_port", "dst_port"):
        app.table.toggle("flows", 1, field).value = False
    status = app.solve_status
    assert status.state == "error" and "WRONG: see the two packets it splits" in status.message
    assert status.message.endswith("; tiny.c could not be run on them: tiny.c: nf_init failed (returned false)")
    assert "nfx-counterexample" in app.solution_view.head.value  # the two packets, without what happens
    assert app.table.row("flows")["decision"] == "broken"


def test_the_cores_box_stops_where_the_engine_does(app, engine):
    """It went to 512, so 9999 became 512 and every solve failed with 'expected 1 to 128'."""
    app.cores.value = 128
    assert app.cores.max == 128 and engine.last("solve")[1]["cores"] == 128
    app.cores.value = 9999  # the box clamps what is typed
    assert app.cores.value == 128 and app.solve_status.state == "done"


def test_a_change_of_inputs_resolves_at_once_with_them(app, engine):
    app.nic.value = "cx5"
    app.cores.value = 4
    app.seed.value = 3
    app.strategy.value = "sn"
    assert engine.last("solve")[1] == {"defines": None, "nic": "cx5", "cores": 4, "seed": 3, "overrides": {},
                                       "strategy": "sn"}
    assert app.solved.label() == "tiny.c, cx5, 4 cores, seed 3, strategy sn"
    assert "for tiny.c, cx5, 4 cores, seed 3, strategy sn" in app.solve_status.message
    assert app.project_view.folder.value.endswith("out/tiny-parallel")  # one folder per NF, whatever the inputs
    app.project_view.folder.value = "/somewhere/mine"
    app.cores.value = 8
    assert app.project_view.folder.value == "/somewhere/mine"  # until the user types a folder


def test_a_failed_solve_leaves_the_old_solution_marked_stale_and_refused(app, engine):
    engine.fail["solve"] = ShardingError("flows: no key keeps related packets together")
    app.cores.value = 3
    assert app.solve_status.state == "error" and "no key keeps related packets together" in app.solve_status.message
    for button in (app.simulator.run_button, app.project_view.button, app.verify_panel.button):
        assert button.disabled and button.tooltip == "Solve first: cores 16 -> 3 changed since the last solve."
    assert "nfx-stale" in app.solution_view.head._dom_classes
    assert "the controls changed since this solution: cores 16 -> 3" in app.context.value
    app.generate()  # called anyway (a notebook may): refused, nothing written
    assert calls(engine, "generate") == 0 and "Solve first" in app.project_view.status.message


def test_without_auto_solve_a_change_only_marks_stale(nf, engine, tmp_path):
    app = ExplorerApp(str(nf), engine=engine, samples_dir=tmp_path, auto_solve=False)
    assert calls(engine, "solve") == 0 and app.simulator.run_button.tooltip == "Solve first."
    app.solve_button.click()
    app.nic.value = "82599"
    assert calls(engine, "solve") == 1
    assert app.simulator.run_button.disabled and "NIC e810 -> 82599" in app.simulator.run_button.tooltip


def test_an_unloaded_nf_in_the_box_refuses_every_action(app, engine, tmp_path):
    app.picker.path_box.value = str(tmp_path / "other.c")
    for button in (app.solve_button, app.simulator.run_button, app.project_view.button, app.verify_panel.button):
        assert button.disabled and button.tooltip == "The NF box names other.c, the results are for tiny.c: press Load."
    solves = calls(engine, "solve")
    app.nic.value = "x710"  # no solve of the old NF under the new name
    assert calls(engine, "solve") == solves
    app.picker.defines_box.value = "CAP=8"
    app.picker.path_box.value = app.loaded[0]
    assert app.project_view.button.tooltip == "The defines changed since tiny.c was loaded: press Load."


def test_defines_reach_the_engine_and_bad_ones_do_not(app, engine, nf):
    app.picker.defines_box.value = "CAP=64"
    app.picker.button.click()
    assert engine.last("analyze") == ((str(nf),), {"defines": {"CAP": "64"}})
    assert app.solved.label().endswith("CAP=64")
    analyses = calls(engine, "analyze")
    app.picker.defines_box.value = "9=bad"
    app.picker.button.click()
    assert calls(engine, "analyze") == analyses and app.load_status.state == "error"
    assert "9=bad" in app.load_status.message and "--define" not in app.load_status.message  # no such option here


def test_loading_the_nf_again_keeps_the_users_overrides_another_nf_starts_afresh(app, engine, tmp_path):
    """A new define or an edit of the C file is no reason to undo the decisions the user made in the
    table: they are kept where their object still is, and solved with once."""
    # "gone": an object the edited NF no longer has; device 5: a device it does not have
    app.table.overrides = {"flows": {1: ("src_ip",)}, "gone": {1: ("src_ip",)}, "config": {5: ("src_ip",)}}
    app.picker.defines_box.value = "CAP=64"
    solves = calls(engine, "solve")
    app.picker.button.click()
    assert app.table.overrides == {"flows": {1: ("src_ip",)}} and calls(engine, "solve") == solves + 1
    assert engine.last("solve")[1]["overrides"] == {"flows": {1: ("src_ip",)}}
    assert app.load_status.message.endswith("; your overrides on flows kept")
    other = tmp_path / "other.c"
    other.write_text(TINY_NF)
    app.picker.path_box.value = str(other)
    app.picker.button.click()
    assert app.table.overrides == {} and engine.last("solve")[1]["overrides"] == {}


def test_a_syntax_error_while_loading_is_shown(app, engine):
    engine.fail["analyze"] = CSyntaxError("expected ';'", location="tiny.c:3:9")
    app.picker.button.click()
    assert app.load_status.state == "error" and "tiny.c:3:9: expected ';'" in app.load_status.message


def test_a_failed_load_shows_the_source_at_the_line_it_failed(app, engine, nf):
    """The first load of an NF with a syntax error shows its source with that line marked and the
    message beside it (the status line alone named a line the page did not show)."""
    engine.fail["analyze"] = CSyntaxError("expected ';' before 'return'", location=Location(str(nf), 3, 9))
    app.picker.button.click()
    view = app.source_view
    assert view.text == nf.read_text() and view.paths == [] and view.warnings == {3: "expected ';' before 'return'"}
    assert "expected &#x27;;&#x27; before &#x27;return&#x27;" in view._code.value  # beside the line
    assert view.caption == "tiny.c did not load; the other panes still show the last version of tiny.c that loaded"
    assert "nfx-source-caption" in view._code.value
    engine.fail["analyze"] = CSyntaxError("no such file", location=Location("other.h", 2, 1))  # not in the NF
    app.picker.button.click()
    assert view.warnings == {} and view.text == nf.read_text()  # not the marks of the failure before
    assert view.caption.startswith("tiny.c did not load (other.h:2:1: no such file)")
    del engine.fail["analyze"]
    app.picker.button.click()  # loads: the caption goes with the failure
    assert view.caption == "" and "nfx-source-caption" not in view._code.value and view.paths


def test_a_failure_at_no_line_replaces_the_marks_of_an_earlier_one(app, engine, nf, tmp_path):
    """bad_syntax.c, then no_process.c (a failure with no line): the Source pane showed
    bad_syntax.c's marked line and caption under no_process.c's error; it shows no_process.c, saying
    why it did not load. A path that cannot be read brings the loaded NF back."""
    bad, empty = tmp_path / "bad_syntax.c", tmp_path / "no_process.c"
    bad.write_text("int x = ;\n")
    empty.write_text("int y;\n")
    engine.fail["analyze"] = CSyntaxError("expected expression", location=Location(str(bad), 1, 9))
    app.picker.path_box.value = str(bad)
    app.picker.button.click()
    view = app.source_view
    assert view.warnings == {1: "expected expression"} and view.caption.startswith("bad_syntax.c did not load")
    engine.fail["analyze"] = CSyntaxError(f"{empty}: the NF does not define nf_process()")
    app.picker.path_box.value = str(empty)
    app.picker.button.click()
    assert view.text == "int y;\n" and view.warnings == {} and view.source == str(empty)
    assert view.caption.startswith("no_process.c did not load (") and "does not define nf_process()" in view.caption
    assert view.caption.endswith("the other panes still show tiny.c")
    engine.fail["analyze"] = CSyntaxError("no such file")
    app.picker.path_box.value = str(tmp_path / "missing.c")
    app.picker.button.click()
    assert view.text == TINY_NF and view.caption == "" and view.marked_lines == [GET_LINE, PUT_LINE]


def test_a_failed_file_that_is_a_device_or_huge_is_not_read_into_the_page(app, engine, tmp_path):
    """/dev/zero hung the kernel reading it; a 3 MB binary named .c took two minutes of pygments
    and went to the browser whole; /etc/passwd showed as C. None is shown: the Source pane keeps
    the loaded NF."""
    big = tmp_path / "binary.c"
    big.write_bytes(b"\0" * (SHOWN_SOURCE_LIMIT + 1))
    view = app.source_view
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for path, error in (("/dev/null", "not a regular file"), (str(big), "a NUL byte"), (str(notes), "not .c")):
        engine.fail["analyze"] = CSyntaxError(error, location=Location(path, 1, 1))
        app.picker.path_box.value = path
        app.picker.button.click()
        assert app.load_status.state == "error" and view.text == TINY_NF and view.caption == ""


def test_a_breaking_override_is_solved_at_once_and_explained(app, engine):
    for field in ("dst_ip", "src_port", "dst_port"):
        app.table.toggle("flows", 1, field).value = False
    assert engine.last("solve")[1]["overrides"] == {"flows": {1: ("src_ip",)}}
    assert app.table.row("flows")["decision"] == "broken"
    assert app.table.row("flows")["summary"].startswith("Broken by the override")
    head = app.solution_view.head.value
    assert "nfx-counterexample" in head and "93.184.216.34:443" in head and "core 1" in head
    assert "The second packet reaches core 1" in head
    assert app.solve_status.state == "error" and "WRONG" in app.solve_status.message
    assert "nfx-quality" not in app.solution_view.rss.value  # no balance figure for a key that splits state
    assert app.project_view.button.disabled and "fix or reset the overrides" in app.project_view.button.tooltip
    assert app.verify_panel.button.disabled and "build it anyway" in app.verify_panel.button.tooltip
    assert app.verify_panel.wrong_on_purpose.layout.display == "flex"
    app.verify_panel.wrong_on_purpose.value = True
    assert not app.verify_panel.button.disabled
    app.verify_panel.button.click()
    assert engine.last("check")[1]["wrong_on_purpose"] is True
    verdict = app.verify_panel._verdict.value
    assert "Not equivalent" in verdict and "192.0.2.7:80 -&gt; 10.0.0.1:1000" in verdict  # headers read back
    assert "built on purpose although wrong" in verdict
    app.table.reset_overrides()
    assert engine.last("solve")[1]["overrides"] == {} and app.table.row("flows")["decision"] == "shard"
    assert app.verify_panel.wrong_on_purpose.layout.display == "none"


def test_simulate_shows_violations_as_packets_and_goes_stale(app, engine):
    app.simulator.traffic.value = "zipf"
    app.simulator.packets.value, app.simulator.flows.value, app.simulator.seed.value = 500, 50, 7
    app.simulator.run_button.click()
    assert engine.last("simulate")[1] == {"traffic": "zipf", "packets": 500, "flows": 50, "seed": 7,
                                          "rebalance": False}
    assert engine.last("packets_of") == (("zipf", [4, 9]), {"packets": 500, "flows": 50, "seed": 7})
    findings = app.simulator._findings.value
    assert "10.0.0.1:1000 -&gt; 192.0.2.7:80 TCP" in findings and "192.0.2.7:80 -&gt; 10.0.0.1:1000" in findings
    assert app.simulator.load.cores_source.data["packets"] == SIMULATION["per_core"]
    source = app.simulator.load.cores_source
    app.simulator.rebalance_button.click()
    assert engine.last("simulate")[1]["rebalance"] is True and app.simulator.load.cores_source is source
    assert source.data["after"] == REBALANCED["rebalanced"]["per_core"]
    app.cores.value = 8  # re-solved: what the chart shows was for 16 cores
    assert app.simulator.status.state == "stale"
    assert app.simulator.status.message.startswith("Out of date: shown for tiny.c, e810, 16 cores, seed 0; "
                                                   "cores 16 -> 8 changed since.")
    assert "nfx-stale" in app.simulator.body._dom_classes


def test_one_pcap_per_device_becomes_the_traffic(app, engine, tmp_path):
    from explorer.traffic.pcap import write_pcap

    frame = bytes(range(60))
    write_pcap(tmp_path / "up.pcap", [1000, 2000], [frame, frame])
    assert len(app.simulator.uploads) == 2
    app.simulator.uploads[1].value = ({"name": "wan.pcap", "type": "", "size": 0,
                                       "content": memoryview((tmp_path / "up.pcap").read_bytes()),
                                       "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert app.simulator.traffic.value == UPLOADED
    assert app.simulator.packets.disabled and app.simulator.flows.disabled and app.simulator.seed.disabled
    app.simulator.run_button.click()
    traffic = engine.last("simulate")[1]["traffic"]
    assert sorted(traffic) == [1] and traffic[1].endswith("/dev1/wan.pcap")  # the user's name, which examples cite
    assert engine.last("simulate")[1]["packets"] == 100_000  # the engine's default: the box was not sent
    app.simulator.clear_uploads()
    assert not app.simulator.packets.disabled and app.simulator.traffic.value == "uniform"


def test_what_reading_an_upload_warns_of_shows_after_the_simulation(app, engine, tmp_path):
    """A capture of VLAN-tagged frames simulated with every packet unhashed, and the page said nothing
    (the CLI prints the warning)."""
    from explorer.traffic.pcap import write_pcap

    tagged = bytes(12) + bytes.fromhex("8100000a0800") + bytes(46)
    write_pcap(tmp_path / "up.pcap", [1000, 2000], [tagged, tagged])
    app.simulator.uploads[0].value = ({"name": "lan.pcap", "type": "", "size": 0,
                                       "content": memoryview((tmp_path / "up.pcap").read_bytes()),
                                       "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    app.simulator.run_button.click()
    assert app.simulator.status.state == "warning"
    assert "\nwarning: lan.pcap (device 0): 2 of 2 packets carry a VLAN tag" in app.simulator.status.message
    assert "nfx-upload-" not in app.simulator.status.message
    app.simulator.clear_uploads()
    app.simulator.run_button.click()  # generated traffic: the capture's warning is gone
    assert "VLAN" not in app.simulator.status.message


def test_a_broken_upload_is_reported_not_simulated(app, engine):
    app.simulator.uploads[0].value = ({"name": "junk.pcap", "type": "", "size": 3, "content": memoryview(b"xyz"),
                                       "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    simulations = calls(engine, "simulate")
    app.simulator.run_button.click()
    assert calls(engine, "simulate") == simulations and app.simulator.status.state == "error"
    assert "junk.pcap" in app.simulator.status.message
    # named as the user knows it, not by the temporary folder it was written to (/tmp/nfx-upload-...)
    assert app.simulator.status.message.startswith("Reading junk.pcap failed: junk.pcap (device 0): ")
    assert "nfx-upload-" not in app.simulator.status.message


def test_a_simulation_error_names_the_upload_not_its_temporary_copy(app, engine):
    app.simulator.uploads[1].value = ({"name": "wan.pcap", "type": "", "size": 24,
                                       "content": memoryview(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")),
                                       "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)

    def simulate(solution, traffic, **_options):
        raise TrafficError(f"{traffic[1]}: frame 3 is not IPv4")

    engine.simulate = simulate
    app.simulator.run_button.click()
    assert app.simulator.status.message == "Simulating the pcap files failed: wan.pcap (device 1): frame 3 is not IPv4"


def test_generate_defaults_beside_the_nf_says_where_before_writing_and_keeps_the_users_files(nf, engine, tmp_path):
    """The folder was out/<nf>-<strategy>-<nic>-<cores> under the kernel's folder (notebooks/ for
    nfx explore), named only after a solve: nobody knew where the project went. It is now
    <nf>-parallel beside the NF, in the box and spelled out whole as soon as the NF is loaded; a
    relative folder is taken from the NF's folder too."""
    app = ExplorerApp(str(nf), engine=engine, samples_dir=tmp_path, auto_solve=False)
    view, beside = app.project_view, tmp_path / "tiny-parallel"
    assert app.solution is None and view.folder.value == str(beside)
    assert f"Writes into <code>{beside}</code> (a new folder)" in view.where.value
    app.solve_button.click()
    view.button.click()
    assert engine.last("generate")[0][1] == beside and view.status.state == "done"
    assert "replacing the tiny project an earlier Generate wrote there" in view.where.value
    view.button.click()  # Generate twice: nfx's own files are replaced without a question
    assert calls(engine, "generate") == 2 and view.status.state == "done"
    view.folder.value = "elsewhere"
    assert f"Writes into <code>{tmp_path / 'elsewhere'}</code>" in view.where.value
    (beside / ".nfx-generated").unlink()  # now a folder of the user's own files
    view.folder.value = str(beside)
    assert "holds files nfx did not write: Generate asks first, and never overwrites your files" in view.where.value
    view.button.click()
    assert calls(engine, "generate") == 2 and view.confirm.layout.display == "flex"
    (tmp_path / "afile").write_text("x")
    view.folder.value = "afile"
    assert "a file, not a folder" in view.where.value
    app.picker.button.click()  # the same NF again: the folder the user typed stays
    assert view.folder.value == "afile"
    other = tmp_path / "sub" / "other.c"
    other.parent.mkdir()
    other.write_text(TINY_NF)
    app.picker.path_box.value = str(other)
    app.picker.button.click()  # another NF: a folder typed for the last one is not meant for it
    assert view.folder.value == str(tmp_path / "sub" / "other-parallel")
    assert f"Writes into <code>{tmp_path / 'sub' / 'other-parallel'}</code> (a new folder)" in view.where.value


def test_generate_asks_before_writing_over_another_nfs_project(app, engine, tmp_path):
    other = tmp_path / "theirs"
    other.mkdir()
    (other / ".nfx-generated").write_text(json.dumps({"nf": "nat", "strategy": "sn"}))
    (other / "nf.c").write_text("nat")
    app.project_view.folder.value = str(other)
    app.project_view.button.click()
    assert calls(engine, "generate") == 0 and (other / "nf.c").read_text() == "nat"
    assert app.project_view.status.state == "error" and "holds the nat project" in app.project_view.status.message
    assert app.project_view.confirm.description == f"Replace the nat project in {other} with tiny's"
    app.project_view.confirm.value = True
    app.project_view.button.click()
    assert engine.last("generate")[1] == {"strategy": "auto", "force": False}
    assert [f["name"] for f in app.project_view.files] == ["Makefile", "src/main.c"]
    assert "for tiny.c, e810, 16 cores, seed 0" in app.project_view.status.message
    assert app.project_view.confirm.layout.display == "none"


def test_generate_asks_before_keeping_the_users_edits_beside_the_new_versions(app, engine, tmp_path):
    """A project of this NF whose files the user edited: the engine never overwrites them, so the page
    asks (instead of failing with advice about a --force it does not have) and then forces."""
    mine = tmp_path / "mine-tiny"
    mine.mkdir()
    (mine / ".nfx-generated").write_text(json.dumps({"nf": "tiny", "strategy": "sn", "edited": ["src/main.c"]}))
    app.project_view.folder.value = str(mine)
    app.project_view.button.click()
    assert calls(engine, "generate") == 0
    assert app.project_view.status.message == f"{mine} holds your edits to src/main.c: tick the box to write there anyway."
    assert app.project_view.confirm.description == \
        f"Keep your edits in {mine} and write the new versions beside them as src/main.c.new"
    app.project_view.confirm.value = True
    app.project_view.button.click()
    assert engine.last("generate")[1] == {"strategy": "auto", "force": True}


def test_generate_needs_a_folder_and_asks_before_a_folder_nfx_did_not_make(app, engine, tmp_path):
    app.project_view.folder.value = ""
    app.project_view.button.click()
    assert app.project_view.status.state == "error" and "Name a folder" in app.project_view.status.message
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    app.project_view.folder.value = str(mine)
    app.project_view.button.click()
    assert calls(engine, "generate") == 0 and "nfx did not write" in app.project_view.status.message
    app.project_view.confirm.value = True
    app.project_view.button.click()
    assert engine.last("generate")[1]["force"] is True and (mine / "notes.txt").read_text() == "keep me"


def test_generate_beside_the_users_own_files_shows_the_new_versions(app, engine, tmp_path, monkeypatch):
    """A folder holding the user's own Makefile: the engine keeps it and writes Makefile.new. The
    page listed, showed and zipped the user's Makefile as the project's, and said nothing of .new."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "Makefile").write_text("all: mine\n")
    written = engine.generate

    def generate(solution, out_dir, strategy="auto", force=False):
        written(solution, tmp_path / "scratch", strategy, force)  # records the call
        (mine / "Makefile.new").write_text("all:\n\tgcc main.c\n")
        (mine / "main.c").write_text("int main(void) { return 0; }\n")
        return SimpleNamespace(files=("Makefile", "main.c"), kept=("Makefile",), to_dict=lambda: {})

    monkeypatch.setattr(engine, "generate", generate)
    app.project_view.folder.value = str(mine)
    app.project_view.button.click()
    app.project_view.confirm.value = True
    app.project_view.button.click()
    assert engine.last("generate")[1]["force"] is True and (mine / "Makefile").read_text() == "all: mine\n"
    files = {f["name"]: f["text"] for f in app.project_view.files}
    assert files == {"Makefile.new": "all:\n\tgcc main.c\n", "main.c": "int main(void) { return 0; }\n"}
    assert app.project_view.selected == "Makefile.new" and "mine" not in app.project_view._code.value
    status = app.project_view.status
    assert status.state == "warning" and status.message.endswith("kept your Makefile: the new versions are Makefile.new")


def test_verify_uses_its_controls(app, engine):
    app.verify_panel.traffic.value, app.verify_panel.cores.value = "churn", 4
    app.verify_panel.button.click()
    args, kwargs = engine.last("check")
    assert args == (app.solution, "churn")
    assert kwargs == {"cores": 4, "packets": 20_000, "flows": 2_000, "wrong_on_purpose": False}
    assert "Equivalent" in app.verify_panel._verdict.value


def test_verify_offers_the_nfs_own_paths_and_never_regenerates_them(app, engine):
    """"paths" (pipeline.paths_traffic) goes to the engine as it is; a difference without headers is
    not looked up by regenerating the traffic, which for paths only the check itself made."""
    assert app.verify_panel.traffic.options[-1] == "paths"
    app.verify_panel.traffic.value = "paths"
    app.verify_panel.wrong_on_purpose.value = True
    app.verify_panel.button.click()
    assert engine.last("check")[0] == (app.solution, "paths")
    assert calls(engine, "packets_of") == 0 and app.verify_panel.check["differences"][0]["packet"] == 9


def test_one_focus_drives_every_pane(app):
    app.focus_picker.value = "path 1"
    assert app.source_view.selected_lines == [GET_LINE, PUT_LINE]
    assert app.graph_view.focus == "path 1" and app.table.focused == ["flows"]
    app.table._click("config")
    assert app.focus == "object config" and app.table.focused == ["config"]
    assert app.focus_picker.value == "object config"
    app.focus_picker.value = ""
    assert app.source_view.selected_lines == [] and app.table.focused == []


def test_loading_again_forgets_every_result(app, engine):
    app.simulator.run_button.click()
    app.picker.button.click()
    assert app.simulation is None and app.simulator.load.cores_source.data["packets"] == []
    assert app.solution is not None  # solved again, for the reloaded NF
    assert app.made == {}


def test_status_is_busy_while_the_engine_works(app, engine):
    seen = []
    engine.on_call = lambda name: seen.append((name, app.solve_status.state, app.solve_status.message))
    app.solve_button.click()
    assert seen[0] == ("solve", "busy", "Solving tiny.c for 16 cores on e810\u2026")


def test_the_tables_controls_wait_while_the_kernel_solves(app, engine):
    """A click made during a solve was handled after the table showed that solve's answer, which
    may have moved the very fields the user was unticking (fw: device 0 on src_ip alone moves
    device 1 to dst_ip, and three clicks meant for device 1's four fields emptied it). The toggles,
    the decision menus and Reset are disabled from the moment a solve (or a load) starts to its end."""
    seen = []
    table = app.table
    engine.on_call = lambda name: seen.append((name, table.busy, all(t.disabled for t in table._toggles.values()),
                                               table.decision_menu("flows").disabled, table.reset_button.disabled))
    table.toggle("flows", 1, "dst_ip").value = False
    assert seen[0] == ("solve", True, True, True, True)
    assert not table.busy and not table.toggle("flows", 0, "src_ip").disabled
    assert not table.decision_menu("flows").disabled and not table.reset_button.disabled
    seen.clear()
    app.picker.button.click()
    assert [busy for name, busy, *_ in seen] == [True] * len(seen) and {"analyze", "solve"} <= {s[0] for s in seen}
    assert not table.busy and not table.toggle("flows", 0, "src_ip").disabled and "nfx-busy" not in table._dom_classes
    engine.fail["solve"] = ShardingError("no key")
    app.cores.value = 4
    assert not table.busy and not table.toggle("flows", 0, "src_ip").disabled  # a failed solve lets go too


def test_in_a_kernel_the_controls_come_back_only_once_no_solve_follows(app, engine):
    """In a kernel (an event loop runs the handlers) the controls stayed off only to the end of each
    solve: a click the browser sent meanwhile then started the next at once, and between the two they
    were on for a few milliseconds, where a click hit a button disabled under the pointer and was lost.
    They now come back RESUME_AFTER_S after the last solve, and not in between."""
    table = app.table
    seen = []
    table.observe(lambda change: seen.append(change["new"]), "busy")

    async def clicks() -> None:
        table.toggle("flows", 0, "dst_ip").value = False  # a solve...
        assert table.busy and table.toggle("flows", 0, "src_ip").disabled
        await asyncio.sleep(RESUME_AFTER_S / 3)
        table.toggle("flows", 0, "src_port").value = False  # ...and the click that came during it
        await asyncio.sleep(RESUME_AFTER_S * 2 / 3)
        assert table.busy  # not yet: counted from the second solve
        await asyncio.sleep(RESUME_AFTER_S)

    asyncio.run(clicks())
    assert seen == [True, False]  # on once, off once: no flicker between the solves
    assert not table.toggle("flows", 0, "src_ip").disabled and not table.reset_button.disabled
    assert table.fields_shown("flows", 0) == ("src_ip", "dst_port")


def test_a_status_says_done_only_once_the_whole_action_is(app, engine):
    """A solve said "Solving tiny.c ...: done in" while it still explained the solution and filled
    the table, then "Solved in": the line flashed done (load, simulate and verify did the same
    before their last steps, and a report showed its new mark beside the old text). Each action now
    shows busy lines, then its one outcome."""
    shown = {status: [] for status in (app.load_status, app.solve_status, app.simulator.status,
                                       app.verify_panel.status)}
    for status, lines in shown.items():
        status._label.observe(lambda _c, s=status, seen=lines: seen.append((s.state, s.message)), "value")
    app.picker.button.click()
    app.table.toggle("flows", 1, "dst_ip").value = False  # a wrong override: the counterexample is run
    app.table.reset_overrides()
    app.simulator.run_button.click()  # the packets behind its violations are read after it
    app.verify_panel.button.click()

    def outcomes(lines):
        first = next(i for i, (state, _) in enumerate(lines) if state == "busy")
        return [line for line in lines[first:] if line[0] != "busy"]

    assert {m[:len("Loaded tiny.c")] for _, m in outcomes(shown[app.load_status])} == {"Loaded tiny.c"}
    assert {m[:len("Solved in ")] for _, m in outcomes(shown[app.solve_status])} == {"Solved in "}
    for status, action in ((app.simulator.status, "Simulating"), (app.verify_panel.status, "Building")):
        (state, message), = set(outcomes(shown[status]))
        assert state == "done" and message.startswith(action) and ": done in " in message


def test_a_long_simulation_shows_its_progress(nf, tmp_path):
    class Streaming(FakeEngine):
        """An engine whose simulate streams chunks and reports each one, as explorer.pipeline does."""

        def simulate(self, solution, traffic="uniform", packets=100_000, flows=10_000, seed=0, rebalance=False,
                     chunk_packets=1 << 20, progress=None):
            for done in range(chunk_packets, packets + chunk_packets, chunk_packets):
                progress(min(done, packets))
                seen.append((app.simulator.status.progress, app.simulator.status.message))
            return super().simulate(solution, traffic, packets, flows, seed, rebalance=rebalance,
                                    chunk_packets=chunk_packets)

    seen = []
    app = ExplorerApp(str(nf), engine=Streaming(str(nf)), samples_dir=tmp_path)
    app.simulator.packets.value = 2_000_000
    app.simulator.run_button.click()
    assert app.engine.last("simulate")[1]["chunk_packets"] == 100_000
    assert len(seen) == 20 and seen[0] == (0.05, "Simulating 2,000,000 uniform packets\u2026 100,000 of 2,000,000")
    assert seen[-1][0] == 1.0 and app.simulator.status.state == "done"


def test_a_bug_in_the_words_says_so_on_the_status_line_instead_of_leaving_it_busy(app, engine):
    """tos_lut.c's key made explain raise IndexError after the analysis: the load line said
    "Analysing tos_lut.c..." for ever (and the solve line, on a solve, "Solving ..."), the error only
    in Voila's log. The line now names the internal error, which still surfaces."""
    engine.fail["explain"] = IndexError("list index out of range")
    with pytest.raises(IndexError):
        app.load()
    assert app.load_status.state == "error"
    assert app.load_status.message == "Analysing tiny.c: internal error IndexError: list index out of range"
    engine.fail.clear()
    app.picker.button.click()
    engine.fail["explain"] = IndexError("list index out of range")
    with pytest.raises(IndexError):
        app.solve()
    assert app.solve_status.state == "error"
    assert app.solve_status.message == ("Explaining the solution of tiny.c: internal error IndexError: "
                                        "list index out of range")


def test_a_bug_while_the_page_is_built_leaves_a_page_that_names_it(nf, engine, tmp_path, caplog):
    """The first load runs while the page is built: an internal error there failed Voila's cell, so
    no explorer appeared, only a traceback. The page now comes up with the error on its load line
    (and in the log), and another NF can be picked and loaded."""
    engine.fail["explain"] = IndexError("list index out of range")
    app = ExplorerApp(str(nf), engine=engine, samples_dir=tmp_path, out_dir=str(tmp_path / "out"))
    assert app.load_status.state == "error"
    assert app.load_status.message == "Analysing tiny.c: internal error IndexError: list index out of range"
    assert "loading" in caplog.text and "IndexError" in caplog.text
    engine.fail.clear()
    app.picker.button.click()
    assert app.load_status.state == "done" and app.loaded is not None
