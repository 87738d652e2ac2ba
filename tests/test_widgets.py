"""The explorer's views, without a browser: trait values, generated HTML and Bokeh data sources,
fed with hand-written engine results (tests/widgets_samples.py)."""
from __future__ import annotations

import base64
import datetime
import html

import pytest
import traitlets

from explorer.errors import ConfigError, ShardingError
from widgets.code import highlight_lines, render_code
from widgets.graph_view import GraphRenderError, GraphView, highlight_choices, render_svg
from widgets.load_view import CORE_PALETTE, LoadView, bucket_columns, core_columns
from widgets.nf_picker import NfPicker, parse_defines, sample_nfs
from widgets.project_view import ProjectView, download_link, read_project
from widgets.sharding_table import ShardingTable, rows_from_analysis, rows_from_solution
from widgets.simulator import UPLOADED, SimulatorPanel, unchecked_html, violations_html
from widgets.solution_view import SolutionView
from widgets.source_view import ALL_PATHS, SourceView, access_notes, path_label, same_file
from widgets.status import StatusBar
from widgets.verify_view import VerifyPanel, check_html

from widgets_samples import (COUNTEREXAMPLE, GET_LINE, KEY0, KEY1, PUT_LINE, REBALANCED, SIMULATION, SOLUTION,
                             TINY_NF, analysis_dict)


# ---- code -----------------------------------------------------------------------------------

def test_highlight_keeps_one_entry_per_line_across_multiline_tokens():
    text = "\n/* a\n   b */\nint x = 1;\n\n"
    lines = highlight_lines(text, "x.c")
    assert len(lines) == 5
    assert lines[0] == ""  # a leading blank line is kept: line numbers stay true
    assert "/* a" in lines[1] and "b */" in lines[2]
    assert lines[1].count("<span") == lines[1].count("</span>")  # every line closes its own spans
    assert ">int<" in lines[3]


def test_render_code_folds_the_lines_before_the_interesting_ones():
    out = render_code("a;\nb;\nc;\nd;\n", "x.c", fold_before=3)
    folded, rest = out.split("</details>")
    assert "<summary>lines 1\u20132</summary>" in folded and 'data-line="2"' in folded
    assert 'data-line="3"' in rest and 'data-line="4"' in rest and 'data-line="2"' not in rest
    assert "<details" not in render_code("a;\nb;\n", "x.c")


def test_render_code_marks_and_annotates_lines():
    out = render_code("a;\nb;\nc;\n", "x.c", notes={2: "flows READ"}, marked=frozenset({2}),
                      selected=frozenset({3}))
    rows = out.split('<div class="nfx-line')[1:]
    assert len(rows) == 3
    assert "nfx-access" in rows[1] and "flows READ" in rows[1] and "nfx-selected" not in rows[1]
    assert "nfx-selected" in rows[2] and "nfx-access" not in rows[2]
    assert "nfx-access" not in rows[0] and 'data-line="1"' in rows[0]


# ---- source view ----------------------------------------------------------------------------

@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.c"
    path.write_text(TINY_NF)
    return path, analysis_dict(str(path))


def test_source_view_marks_access_lines_and_selected_path(tiny):
    path, analysis = tiny
    view = SourceView()
    view.show(analysis, TINY_NF)
    assert view.marked_lines == [GET_LINE, PUT_LINE]
    assert view.selected_lines == []
    view.selected_path = 0
    assert view.selected_lines == [GET_LINE]
    view.selected_path = 1
    assert view.selected_lines == [GET_LINE, PUT_LINE]
    code = view._code.value
    assert f"<summary>lines 1\u2013{GET_LINE - 5}</summary>" in code  # opens 4 lines above the path
    put_row = code.split(f'data-line="{PUT_LINE}"')[0].rsplit("<div", 1)[1]
    assert "nfx-selected" in put_row and "nfx-access" in put_row
    assert "flows WRITE" in code and "flows READ" in code
    view.selected_path = ALL_PATHS
    assert view.selected_lines == []


def test_source_view_picker_lists_paths_and_drives_selection(tiny):
    _, analysis = tiny
    view = SourceView()
    view.show(analysis, TINY_NF)
    labels = [label for label, _ in view._picker.options]
    assert labels[0] == "all paths"
    assert labels[2] == "#1 dev 0: forward to 0 \u2014 flows READ, flows WRITE"
    assert labels[3] == "#2 dev 1: drop \u2014 no state"
    view._picker.value = 1  # what the user's choice in the browser does
    assert view.selected_path == 1 and view.selected_lines == [GET_LINE, PUT_LINE]


def test_source_view_rejects_unknown_path_and_resets_on_new_analysis(tiny):
    _, analysis = tiny
    view = SourceView()
    view.show(analysis, TINY_NF)
    with pytest.raises(traitlets.TraitError):
        view.selected_path = 7
    view.selected_path = 1
    view.show(analysis, TINY_NF)
    assert view.selected_path == ALL_PATHS


def test_accesses_in_other_files_are_not_marked(tiny):
    path, analysis = tiny
    analysis["paths"][1]["accesses"][1]["location"]["file"] = "/elsewhere/other.c"
    assert sorted(access_notes(analysis["paths"], str(path))) == [GET_LINE]
    assert same_file("tiny.c", "/x/y/tiny.c") and not same_file("/a/tiny.c", "/b/tiny.c")


def test_path_label_names_computed_devices():
    path = {"index": 4, "devices": [1], "accesses": [],
            "verdict": {"kind": "forward", "device": None, "device_text": "backends.value#3"}}
    assert path_label(path) == "#4 dev 1: forward to backends.value#3 \u2014 no state"


# ---- graph view -----------------------------------------------------------------------------

@pytest.mark.dot
def test_graph_view_renders_svg_and_reports_bad_dot():
    view = GraphView()
    view.dot = 'digraph g { flows -> "path 0" [color=red]; }'
    assert view.svg.startswith("<svg") and view.error == ""
    assert ">flows</text>" in view.svg and ">path 0</text>" in view.svg
    assert view.svg in view._html.value
    view.dot = "digraph g { a -> }"
    assert view.svg == "" and "syntax error" in view.error
    assert "syntax error" in html.unescape(view._html.value)


@pytest.mark.dot
def test_svg_fits_its_box_and_the_emphasis_picker_offers_objects_and_paths(tiny):
    svg = render_svg("digraph g { a -> b; }")
    assert svg.startswith("<svg") and 'width="100%"' in svg and "max-width:" in svg and "height=" not in svg.split(">")[0]
    assert "ns0:" not in svg
    _, analysis = tiny
    view = GraphView()
    view.set_choices(highlight_choices(analysis))
    assert [value for _, value in view._picker.options] == ["", "flows", "config", "path 0", "path 1", "path 2"]
    view.highlight = "path 1"
    assert view._picker.value == "path 1"
    with pytest.raises(traitlets.TraitError):
        view.highlight = "nosuch"


@pytest.mark.dot
def test_render_svg_raises_our_error():
    with pytest.raises(GraphRenderError):
        render_svg("not a graph")


# ---- load view (Bokeh) ----------------------------------------------------------------------

def test_core_and_bucket_columns_known_answers():
    cores = core_columns(SIMULATION)
    assert cores == {"core": [0, 1, 2, 3], "packets": [30, 10, 20, 40], "flows": [3, 1, 2, 4], "after": [0, 0, 0, 0]}
    buckets = bucket_columns(REBALANCED)
    assert buckets["core"] == [0, 1, 2, 3, 2, 1, 1, 0]  # the rebalanced RETA, not the original
    assert buckets["colour"][4] == CORE_PALETTE[2]
    assert core_columns(REBALANCED)["after"] == [30, 20, 20, 30]
    with pytest.raises(ValueError):
        bucket_columns({**SIMULATION, "reta": [0, 1]})


def test_load_view_updates_sources_in_place():
    view = LoadView()
    figures, sources = (view.cores_figure, view.buckets_figure), (view.cores_source, view.buckets_source)
    model, bundle = view.model._model, view.model.render_bundle
    assert view.cores_source.data["packets"] == []
    view.simulation = SIMULATION
    assert view.cores_source.data["packets"] == [30, 10, 20, 40]
    assert view.buckets_source.data["packets"] == SIMULATION["buckets"]
    assert view._mean.location == pytest.approx(25.0)
    assert view._after.visible is False and view._after_legend.visible is False
    assert "1.600" in view._summary.value and "100 packets on 4 cores" in view._summary.value
    view.simulation = REBALANCED
    assert view._after.visible is True and view._after_legend.visible is True
    assert view.cores_source.data["after"] == [30, 20, 20, 30]
    assert "after rebalancing the RETA <b>1.200</b>" in view._summary.value
    # Same figures, sources and Bokeh document: the browser got patches, not a new plot.
    assert (view.cores_figure, view.buckets_figure) == figures
    assert (view.cores_source, view.buckets_source) == sources
    assert view.model._model is model and view.model.render_bundle is bundle
    assert view.cores_source.document is view.model._document


# ---- sharding table -------------------------------------------------------------------------

def test_rows_from_solution_and_analysis(tiny):
    rows = rows_from_solution(SOLUTION)
    assert rows[0]["fields"] == {0: ["src_ip", "dst_ip", "src_port", "dst_port"],
                                 1: ["src_ip", "dst_ip", "src_port", "dst_port"]}
    assert rows[1]["fields"] == {} and rows[1]["decision"] == "replicate"
    _, analysis = tiny
    assert [(r["name"], r["accesses"], r["decision"]) for r in rows_from_analysis(analysis)] == [
        ("flows", 3, ""), ("config", 0, "")]


def test_sharding_table_toggles_become_overrides():
    table = ShardingTable()
    table.show(rows_from_solution(SOLUTION), 2)
    assert table.toggle("flows", 1, "dst_port").value is True
    assert table.toggle("config", 0, "src_ip").value is False
    for field in ("dst_ip", "src_port", "dst_port"):
        table.toggle("flows", 1, field).value = False  # the user unticks three fields
    assert table.overrides == {"flows": {1: ("src_ip",)}}
    assert table._cells[("flows", 1)].layout.border
    assert not table._cells[("flows", 0)].layout.border
    # A new solution keeps the override shown until it is reset.
    table.show(rows_from_solution(SOLUTION), 2)
    assert table.toggle("flows", 1, "dst_ip").value is False
    table.reset_overrides()
    assert table.overrides == {} and table.toggle("flows", 1, "dst_ip").value is True
    assert not table._cells[("flows", 1)].layout.border


def test_sharding_table_set_override_orders_and_validates():
    table = ShardingTable()
    table.show(rows_from_solution(SOLUTION), 2)
    table.set_override("flows", 0, ["dst_port", "src_ip"])
    assert table.overrides == {"flows": {0: ("src_ip", "dst_port")}}
    assert table.toggle("flows", 0, "dst_ip").value is False
    with pytest.raises(KeyError):
        table.set_override("nosuch", 0, ["src_ip"])
    with pytest.raises(KeyError):
        table.set_override("flows", 2, ["src_ip"])
    with pytest.raises(ValueError):
        table.set_override("flows", 0, ["src_mac"])


def test_sharding_table_shows_decision_and_reason():
    table = ShardingTable()
    table.show(rows_from_solution(SOLUTION), 2)
    text = " ".join(getattr(child, "value", "") for child in table._grid.children if hasattr(child, "value"))
    assert "shard" in text and "keyed by the 4-tuple" in text and "only read by nf_process" in text
    assert "device 1 fields" in text


# ---- solution view --------------------------------------------------------------------------

def test_solution_view_shows_keys_rss_hf_rank_quality_and_times():
    view = SolutionView()
    assert "press Solve" in view._html.value
    view.solution = SOLUTION
    out = view._html.value
    assert KEY0 in out and KEY1 in out
    assert "0x3afbc" in out and "RTE_ETH_RSS_NONFRAG_IPV4_UDP" in out
    assert "shared-nothing" in out and "solve 0.02 s" in out and "analysis 0.10 s" in out
    assert "uniform <b>1.030</b>" in out and "prefix <b>1.080</b>" in out
    assert "nfx-counterexample" not in out and "nfx-explanation" not in out


def test_solution_view_shows_counterexample_with_its_reason():
    view = SolutionView()
    view.solution = {**SOLUTION, "valid": False, "counterexample": COUNTEREXAMPLE,
                     "explanation": "with the override of flows, paths 0 and 1 share no hashed field"}
    out = view._html.value
    assert "nfx-counterexample" in out and "<code>flows</code>" in out
    assert "10.0.0.1" in out and "192.0.2.7" in out and "<b>3</b>" in out and "<b>1</b>" in out
    assert "Why: with the override of flows, paths 0 and 1 share no hashed field" in out
    assert "nfx-explanation" not in out
    view.solution = {**SOLUTION, "valid": False, "counterexample": COUNTEREXAMPLE}
    assert "Why: flows: path 0 nf_map_get (device 1) ~ path 1" in view._html.value  # the origin, then


def test_solution_view_explains_a_lock_strategy_and_an_impossible_sharding():
    view = SolutionView()
    view.solution = {**SOLUTION, "strategy": "locks", "explanation": "macs (map): keyed by p.ether.src"}
    out = view._html.value
    assert "Not shared-nothing: the locks strategy is needed." in out and "keyed by p.ether.src" in out
    view.solution = {**SOLUTION, "explanation": "sources and ports share no field on device 1"}
    assert "No RSS configuration satisfies every constraint." in view._html.value


# ---- project view ---------------------------------------------------------------------------

def test_download_link_round_trips():
    link = download_link("src/main.c", b"int main(void) { return 0; }\n")
    assert 'download="main.c"' in link
    encoded = link.split("base64,")[1].split('"')[0]
    assert base64.b64decode(encoded) == b"int main(void) { return 0; }\n"


def test_project_view_lists_files_and_shows_the_selected_one(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "Makefile").write_text("all:\n\tgcc main.c\n")
    view = ProjectView()
    assert "Nothing generated yet" in view._downloads.value
    view.show_files(tmp_path, [tmp_path / "src" / "main.c", tmp_path / "Makefile"])
    assert [f["name"] for f in view.files] == ["Makefile", "src/main.c"]
    assert view.selected == "Makefile" and "gcc" in view._code.value
    view._picker.value = "src/main.c"
    assert view.selected == "src/main.c" and ">int<" in view._code.value
    assert view._downloads.value.count("nfx-download") == 2 and "2 files" in view._downloads.value
    with pytest.raises(traitlets.TraitError):
        view.selected = "nosuch.c"
    assert read_project(tmp_path, ["Makefile"])[0]["text"].startswith("all:")


# ---- simulator and verify panels ------------------------------------------------------------

def test_violations_and_unchecked_html():
    assert unchecked_html([]) == ""
    assert "2 accesses" in unchecked_html(["flows READ at fw.c:3:4", "x"])
    assert "No sharding violations" in violations_html({"count": 0, "examples": []})
    out = violations_html(SIMULATION["violations"])
    assert "2 sharding violations" in out and "0a000001c0000207" in out and "1, 3" in out


def test_simulator_panel_feeds_load_view_and_lists_upload():
    panel = SimulatorPanel()
    panel.simulation = SIMULATION
    assert panel.load.cores_source.data["packets"] == SIMULATION["per_core"]
    assert "2 sharding violations" in panel._violations.value
    assert panel.uploaded() is None
    panel.upload.value = ({"name": "lan.pcap", "type": "", "size": 4, "content": memoryview(b"abcd"),
                           "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert panel.traffic.value == UPLOADED
    panel.upload_device.value = 1
    assert panel.uploaded() == ("lan.pcap", b"abcd", 1)
    panel.traffic.value = "zipf"
    assert panel.uploaded() is None


def test_check_html_and_verify_panel():
    panel = VerifyPanel()
    assert "Not verified yet" in panel._verdict.value
    panel.check = {"equivalent": True, "packets": 1234, "strategy": "sn", "cores": 2, "unexplained": 0,
                   "relation": "same verdict and bytes per packet", "per_core": [600, 634], "differences": [],
                   "renamed": 3, "capacity_drift": {"packets": 0, "detail": ""}, "notes": ["a note"], "failure": ""}
    out = panel._verdict.value
    assert "Equivalent" in out and "all 1,234 packets" in out and "(sn, 2 cores)" in out
    assert "relation checked: same verdict and bytes per packet" in out and "packets per core: 600 634" in out
    assert "3 packets equal up to renaming" in out and "a note" in out and "capacity drift" not in out
    differences = [{"packet": i, "device": 1, "core": 0, "sequential": 0, "parallel": -1, "why": "no flow"}
                   for i in range(12)]
    out = check_html({"equivalent": False, "packets": 50, "unexplained": 12, "strategy": "sn", "cores": 2,
                      "differences": differences, "capacity_drift": {"packets": 4, "detail": "core 1 full"}})
    assert "Not equivalent" in out and "12 of 50 packets differ" in out
    assert "packet 0 (device 1, core 0): sequential <b>forward to 0</b>, parallel <b>drop</b>: no flow" in out
    assert out.count("<li>") == 12 and "and 2 more" in out and "4 packets not compared" in out
    failed = check_html({"equivalent": False, "packets": 50, "failure": "core 1 crashed", "strategy": "locks"})
    assert "failed: core 1 crashed" in failed


# ---- status bar and NF picker ---------------------------------------------------------------

def test_status_bar_runs_and_reports():
    status = StatusBar()
    seen = []
    assert status.run("Adding", lambda a, b: seen.append(status.state) or a + b, 2, b=3) == 5
    assert seen == ["busy"]  # set before the call, so the browser shows it while the kernel works
    assert status.state == "done" and status.message.startswith("Adding: done in")

    def refuse():
        raise ShardingError("flows cannot be sharded")
    assert status.run("Solving", refuse) is None
    assert status.state == "error" and status.message == "Solving failed: flows cannot be sharded"
    assert "flows cannot be sharded" in status._label.value

    def crash():
        raise ZeroDivisionError("boom")
    with pytest.raises(ZeroDivisionError):
        status.run("Solving", crash)
    assert status.state == "error" and "internal error ZeroDivisionError" in status.message


def test_parse_defines_and_picker(tmp_path):
    assert parse_defines("CAP=1024, EXPIRY=10 DEBUG") == {"CAP": "1024", "DEBUG": "1", "EXPIRY": "10"}
    with pytest.raises(ConfigError):
        parse_defines("1CAP=3")
    (tmp_path / "b.c").write_text("")
    (tmp_path / "a.c").write_text("")
    (tmp_path / "README.md").write_text("")
    assert sample_nfs(tmp_path) == [str(tmp_path / "a.c"), str(tmp_path / "b.c")]
    picker = NfPicker(samples_dir=tmp_path)
    assert picker.path_box.options == (str(tmp_path / "a.c"), str(tmp_path / "b.c"))
    with pytest.raises(ConfigError):
        picker.commit()
    picker.path_box.value = "  /x/y.c "
    picker.defines_box.value = "CAP=8"
    assert picker.commit() == ("/x/y.c", {"CAP": "8"})
    assert picker.path == "/x/y.c" and picker.defines == {"CAP": "8"}
