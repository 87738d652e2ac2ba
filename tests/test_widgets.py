"""The explorer's views, without a browser: trait values, generated HTML and Bokeh data sources,
fed with hand-written engine results (tests/widgets_samples.py)."""
from __future__ import annotations

import base64
import datetime
import io
import zipfile
from pathlib import Path

import pytest
import traitlets

from explorer.errors import ConfigError, ShardingError
from widgets.access_graph import DETAILED, FOCUS, SUMMARY, access_dot, device_paths, edges, legend, paths_text
from widgets.charts import bar_chart, line_chart, nice_max, number
from widgets.code import highlight_lines, render_code
from widgets.graph_view import GraphRenderError, GraphView, focus_choices, render_svg
from widgets.inputs import Inputs, plural
from widgets.load_view import LoadView, bucket_columns, core_columns, core_palette
from widgets.nf_picker import NfPicker, parse_defines, sample_nfs
from widgets.project_view import (DOWNLOAD_MIME, ProjectView, default_folder, download_link, read_project,
                                  where_folder, zip_bytes)
from widgets.sharding_table import ShardingTable, rows_from
from widgets.simulator import UPLOADED, SimulatorPanel, contention_html, unchecked_html, violations_html
from widgets.solution_view import SolutionView
from widgets.source_view import SourceView, access_notes, path_label, same_file
from widgets.status import StatusLine
from widgets.verify_view import VerifyPanel, check_html

from widgets_samples import (BROKEN_WORDS, GET_LINE, KEY0, KEY1, PACKETS, PUT_LINE, REBALANCED, SIMULATION,
                             SOLUTION, TINY_NF, WORDS, analysis_dict)


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


def test_source_view_marks_access_lines_and_the_focus(tiny):
    path, analysis = tiny
    view = SourceView()
    view.show(analysis, TINY_NF)
    assert view.marked_lines == [GET_LINE, PUT_LINE] and view.selected_lines == []
    view.focus = "path 0"
    assert view.selected_lines == [GET_LINE]
    view.focus = "path 1"
    assert view.selected_lines == [GET_LINE, PUT_LINE]
    code = view._code.value
    assert f"<summary>lines 1\u2013{GET_LINE - 5}</summary>" in code  # opens 4 lines above the focus
    put_row = code.split(f'data-line="{PUT_LINE}"')[0].rsplit("<div", 1)[1]
    assert "nfx-selected" in put_row and "nfx-access" in put_row
    assert "flows WRITE" in code and "flows READ" in code
    view.focus = "object flows"
    assert view.selected_lines == [GET_LINE, PUT_LINE]
    view.focus = "object config"
    assert view.selected_lines == []
    view.focus = ""
    assert view.selected_lines == []


def test_accesses_in_other_files_are_not_marked(tiny):
    path, analysis = tiny
    analysis["paths"][1]["accesses"][1]["location"]["file"] = "/elsewhere/other.c"
    assert sorted(access_notes(analysis["paths"], str(path))) == [GET_LINE]
    assert same_file("tiny.c", "/x/y/tiny.c") and not same_file("/a/tiny.c", "/b/tiny.c")


def test_path_label_and_focus_choices(tiny):
    path = {"index": 4, "devices": [1], "accesses": [],
            "verdict": {"kind": "forward", "device": None, "device_text": "backends.value#3"}}
    assert path_label(path) == "#4 dev 1: forward to backends.value#3 \u2014 no state"
    _, analysis = tiny
    assert [value for _, value in focus_choices(analysis)] == ["object flows", "object config", "path 0", "path 1",
                                                               "path 2"]


# ---- the graph -------------------------------------------------------------------------------

def test_summary_edges_carry_each_devices_key_and_a_focus_has_exactly_its_own(tiny):
    _, analysis = tiny
    found = {(e.kind, e.source, e.target): e for e in edges(analysis, WORDS, SUMMARY)}
    assert sorted(found) == [("reads", 0, "flows"), ("reads", 1, "flows"), ("writes", 0, "flows")]
    # the fields by the names the sharding table and the CLI use (they said sport, dport, proto)
    assert found[("reads", 1, "flows")].label == "READ\ndev1: dst_ip,src_ip,dst_port,src_port,protocol"
    assert found[("reads", 0, "flows")].label == "READ x2\ndev0: src_ip,dst_ip,src_port,dst_port,protocol"
    # Path 0 only reads (on both devices): the WRITE edge is not its own.
    mine = {(e.kind, e.source, e.target) for e in edges(analysis, WORDS) if e.in_focus("path 0")}
    assert mine == {("reads", 0, "flows"), ("reads", 1, "flows")}
    assert found[("reads", 0, "flows")].focus_label("path 1").startswith("READ\n")
    assert {e.kind for e in edges(analysis, WORDS, DETAILED)} == {"reads", "writes", "verdict"}


def test_the_headers_path_count_and_the_device_nodes_say_the_same(tiny):
    """Path 0 is taken on both devices: the nodes' counts add up to more than the paths, so each
    says how many of all the paths it takes and the header says how many are shared."""
    _, analysis = tiny
    dot = access_dot(analysis, WORDS)
    assert "device 0\\n2 of 3 paths" in dot and "device 1\\n2 of 3 paths" in dot
    assert paths_text(analysis) == "3 call paths (device 0 takes 2, device 1 takes 2; 1 is taken by both)"
    assert device_paths(analysis) == {0: 2, 1: 2}
    one = dict(analysis, paths=[dict(p, devices=[0]) for p in analysis["paths"]])
    assert paths_text(one) == "3 call paths" and "device 0\\nall 3 paths" in access_dot(one, WORDS)


def test_dot_colours_objects_by_decision_and_the_legend_lists_only_what_is_drawn(tiny):
    _, analysis = tiny
    dot = access_dot(analysis, WORDS)
    assert dot == access_dot(analysis, WORDS)  # deterministic
    assert '"obj:flows" [shape=cylinder, style=filled, fillcolor="#dafbe1"' in dot
    assert '"obj:config" [shape=box3d, style=filled, fillcolor="#ddf4ff"' in dot
    assert "verdict:" not in dot  # the summary is about state
    text = legend(analysis, WORDS)
    assert 'data-legend="shard"' in text and 'data-legend="replicate"' in text and 'data-legend="lock"' not in text
    assert 'data-legend="writes"' in text and 'data-legend="index"' not in text and 'data-legend="focus"' not in text
    assert 'data-legend="broken"' in legend(analysis, BROKEN_WORDS)
    focused = [line for line in access_dot(analysis, WORDS, "path 0").splitlines() if FOCUS in line]
    assert [line.split(" [")[0].strip() for line in focused] == [  # its devices, its object, its two edges
        '"dev:0"', '"dev:1"', '"obj:flows"', '"dev:0" -> "obj:flows"', '"dev:1" -> "obj:flows"']
    assert 'data-legend="focus"' in legend(analysis, WORDS, "path 0")


@pytest.mark.dot
def test_graph_view_draws_svg_switches_views_and_reports_bad_dot(tiny):
    _, analysis = tiny
    view = GraphView()
    assert "Load an NF" in view._html.value
    view.analysis, view.words = analysis, WORDS
    assert view.svg.startswith("<svg") and view.error == "" and "dev1: dst_ip,src_ip" in view.svg
    assert "ns0:" not in view.svg and 'width="100%"' in view.svg
    assert "max-width:" in view.svg and "min-width:" in view.svg
    view.switch.value = DETAILED
    assert view.view == DETAILED and "verdict:" in view.dot
    view.zoom_switch.value = "actual"
    assert 'width="100%"' not in view.svg and "max-width:none" in view.svg
    with pytest.raises(GraphRenderError):
        render_svg("not a graph")


# ---- load view (Bokeh) ----------------------------------------------------------------------

def test_core_and_bucket_columns_known_answers():
    cores = core_columns(SIMULATION)
    assert cores == {"core": ["0", "1", "2", "3"], "packets": [30, 10, 20, 40], "flows": [3, 1, 2, 4],
                     "after": [0, 0, 0, 0], "writes": [0, 0, 0, 0]}
    buckets = bucket_columns(REBALANCED)
    assert buckets["core"] == [0, 1, 2, 3, 2, 1, 1, 0]  # the rebalanced RETA, not the original
    assert buckets["colour"][4] == core_palette(4)[2]
    assert core_columns(REBALANCED)["after"] == [30, 20, 20, 30]
    with pytest.raises(ValueError):
        bucket_columns({**SIMULATION, "reta": [0, 1]})
    assert len(set(core_palette(16))) == 16 and len(set(core_palette(40))) == 40


def test_load_view_hides_empty_charts_and_lists_only_drawn_series():
    view = LoadView()
    model, bundle = view.model._model, view.model.render_bundle
    figures, sources = (view.cores_figure, view.buckets_figure), (view.cores_source, view.buckets_source)
    assert view.model.layout.display == "none" and "No simulation yet" in view._summary.value
    view.simulation = SIMULATION
    assert view.model.layout.display == "flex"
    assert view.cores_source.data["packets"] == [30, 10, 20, 40]
    assert view._mean.location == pytest.approx(25.0) and view._mean_label.text == "mean 25 packets per core"
    assert [i.label.value for i in view.cores_figure.legend[0].items] == ["packets"]
    # alone, the bars sit on their cores' ticks (they were shifted left, off the tick, for a pair)
    assert view._before.glyph.x.transform.value == 0.0 and view._before.glyph.width == 0.76
    assert view.cores_figure.y_range.range_padding >= 0.4  # the mean's label above the tallest bar
    assert "1.600" in view._summary.value and "100 packets on 4 cores" in view._summary.value
    view.simulation = REBALANCED
    assert [i.label.value for i in view.cores_figure.legend[0].items] == ["packets", "after rebalancing"]
    assert view._before.glyph.x.transform.value == -0.2 and view._before.glyph.width == 0.38
    assert "after rebalancing the RETA <b>1.200</b>" in view._summary.value
    view.simulation = {**SIMULATION, "contention": {"writes": 12, "share": 0.12, "per_core": [3, 3, 3, 3]}}
    assert [i.label.value for i in view.cores_figure.legend[0].items] == ["packets", "took the write lock"]
    view.simulation = {**SIMULATION, "per_core": [7], "flows_per_core": [1], "buckets": [7], "reta": [0]}
    assert "on 1 core<" in view._summary.value or "on 1 core" in view._summary.value.replace("</div>", "")
    # Same figures, sources and Bokeh document: the browser got patches, not a new plot.
    assert (view.cores_figure, view.buckets_figure) == figures and (view.cores_source, view.buckets_source) == sources
    assert view.model._model is model and view.model.render_bundle is bundle


# ---- sharding table -------------------------------------------------------------------------

def test_rows_before_and_after_a_solve(tiny):
    _, analysis = tiny
    before = rows_from(analysis)
    assert [(r["name"], r["accesses"], r["decision"]) for r in before] == [("flows", 3, ""), ("config", 0, "")]
    assert before[0]["editable"].startswith("Solve first")
    rows = rows_from(analysis, SOLUTION, WORDS)
    assert rows[0]["fields"] == {0: ["src_ip", "dst_ip", "src_port", "dst_port"],
                                 1: ["src_ip", "dst_ip", "src_port", "dst_port"]}
    assert rows[0]["editable"] == "" and rows[0]["summary"].startswith("tiny.c:11")
    assert rows[1]["decision"] == "replicate" and "own copy" in rows[1]["editable"]
    broken = rows_from(analysis, SOLUTION, BROKEN_WORDS)
    assert broken[0]["decision"] == "broken" and broken[0]["summary"].startswith("Broken by the override")
    locked = {**SOLUTION, "objects": [{**SOLUTION["objects"][0], "decision": "lock", "reason": "scans"},
                                      SOLUTION["objects"][1]]}
    assert rows_from(analysis, locked, WORDS)[0]["editable"].startswith("Shared behind a lock")

    # what explain says wins: under a locks build an object it could shard alone is a locked row too
    under_locks = {**WORDS, "objects": {**WORDS["objects"], "flows": {**WORDS["objects"]["flows"], "decision": "lock"}}}
    row = rows_from(analysis, SOLUTION, under_locks)[0]
    assert row["decision"] == row["chosen"] == "lock" and row["editable"].startswith("Shared behind a lock")


def test_toggles_become_overrides_and_fixed_rows_say_why_on_hover(tiny):
    _, analysis = tiny
    table = ShardingTable()
    table.show(rows_from(analysis, SOLUTION, WORDS), 2)
    assert table.toggle("flows", 1, "dst_port").value is True
    with pytest.raises(KeyError):
        table.toggle("config", 0, "src_ip")  # nothing to toggle: replicated
    fixed = table._cells[("config", 0)].value
    assert 'title="Every core has its own copy, so there is nothing to shard."' in fixed
    for field in ("dst_ip", "src_port", "dst_port"):
        table.toggle("flows", 1, field).value = False  # the user unticks three fields
    assert table.overrides == {"flows": {1: ("src_ip",)}}
    assert table._cells[("flows", 1)].layout.border and not table._cells[("flows", 0)].layout.border
    buttons = [w for w in table._grid.children]
    table.show(rows_from(analysis, SOLUTION, BROKEN_WORDS), 2)  # a new solution: updated in place
    assert list(table._grid.children) == buttons
    assert "nfx-decision-broken" in table._row_widgets["flows"][-2].children[0].value
    assert table.toggle("flows", 1, "dst_ip").value is False  # the override stays shown until reset
    table.reset_overrides()
    assert table.overrides == {} and table.toggle("flows", 1, "dst_ip").value is True
    with pytest.raises(KeyError):
        table.set_override("nosuch", 0, ["src_ip"])
    with pytest.raises(ValueError):
        table.set_override("flows", 0, ["src_mac"])
    table.focused = ["flows"]
    assert all("nfx-row-focus" in w._dom_classes for w in table._row_widgets["flows"])
    assert not any("nfx-row-focus" in w._dom_classes for w in table._row_widgets["config"])


def test_a_click_handled_after_a_solve_rebuilt_the_row_is_applied_as_clicked(tiny):
    """A click made while the kernel solved reaches it after the table was updated for that solve.
    When the update rebuilt the row (another kind of cell), the click landed on the old toggle, and
    the override was read from the new toggles, which never saw it: the click was lost. Now a click
    is the one field it turned on or off, applied to what the table shows; a click on an NF no
    longer shown is dropped; the widgets of the build before last are closed."""
    _, analysis = tiny
    table = ShardingTable()
    rows = rows_from(analysis, SOLUTION, WORDS)
    table.show(rows, 2)
    first = table.toggle("flows", 1, "dst_port")
    table.show([rows[0], {**rows[1], "inherited": True}], 2)  # the solve's answer: the config row is rebuilt
    rebuilt = table.toggle("flows", 1, "dst_port")
    assert rebuilt is not first
    first.value = False  # clicked before the rebuild reached the browser, handled after it
    assert table.overrides == {"flows": {1: ("src_ip", "dst_ip", "src_port")}}
    assert table.toggle("flows", 1, "dst_port").value is False
    old_src = table.toggle("flows", 1, "src_port")
    table.show(rows, 2)  # rebuilt again: the first build's widgets are closed, the last one's are not
    assert first.comm is None and rebuilt.comm is not None
    old_src.value = False
    assert table.overrides == {"flows": {1: ("src_ip", "dst_ip")}}
    assert [table.toggle("flows", 1, f).value for f in ("src_ip", "dst_ip", "src_port", "dst_port")] == \
        [True, True, False, False]

    # another NF's table: a click left over from this one changes nothing there, and raises nothing
    stale = table.toggle("flows", 0, "src_ip")
    table.reset_overrides()
    table.show([{**row, "name": f"other_{row['name']}"} for row in rows], 2)
    stale.value = False
    assert table.overrides == {}


def test_each_row_offers_the_three_decisions(tiny):
    _, analysis = tiny
    table = ShardingTable()
    table.show(rows_from(analysis), 2)
    assert table.decision_menu("flows").disabled  # nothing to change before a solve
    table.show(rows_from(analysis, SOLUTION, WORDS), 2)
    menu = table.decision_menu("config")
    assert menu.options == ("shard", "replicate", "lock") and menu.value == "replicate" and not menu.disabled
    table.set_override("flows", 0, ["src_ip"])
    menu.value = "lock"  # the user's choice
    assert table.overrides == {"flows": {0: ("src_ip",)}, "config": "lock"}
    table.set_decision("flows", "replicate")  # a decision replaces the fields
    assert table.overrides == {"flows": "replicate", "config": "lock"}
    table.set_override("flows", 1, ["dst_ip"])  # and fields replace a decision
    assert table.overrides["flows"] == {1: ("dst_ip",)}
    with pytest.raises(ValueError):
        table.set_decision("flows", "share")
    decided = {**SOLUTION, "objects": [{**SOLUTION["objects"][0], "overridden": True}, SOLUTION["objects"][1]]}
    table.show(rows_from(analysis, decided, WORDS), 2)
    assert "shard (yours)" in table._row_widgets["flows"][-2].children[0].value
    assert not any("nfx-row-focus" in w._dom_classes for w in table._row_widgets["config"])


# ---- solution view --------------------------------------------------------------------------

def test_solution_view_says_the_strategy_and_shows_keys_and_balance():
    view = SolutionView()
    assert "Not solved yet" in view.head.value
    view.label = "tiny.c, e810, 4 cores, seed 0"
    view.words, view.solution = WORDS, SOLUTION
    assert "Shared-nothing: every core owns its state." in view.head.value
    assert "computed for tiny.c, e810, 4 cores, seed 0" in view.head.value
    assert KEY0 in view.rss.value and KEY1 in view.rss.value and "0x3afbc" in view.rss.value
    assert "uniform traffic <b>1.030</b>" in view.rss.value and "nfx-counterexample" not in view.head.value


def test_solution_view_shows_two_packets_and_what_happens_and_no_balance_when_wrong():
    view = SolutionView()
    view.words, view.solution = BROKEN_WORDS, {**SOLUTION, "valid": False}
    head = view.head.value
    assert "This sharding is wrong for <code>flows</code>" in head and "addresses and ports swapped" in head
    assert "10.1.2.3:40000" in head and "93.184.216.34:443" in head and "<b>core 3</b>" in head
    assert "What happens:</b> The second packet reaches core 1" in head
    assert "details (the solver" in head and "tiny.c:11" in head
    assert "nfx-quality" not in view.rss.value


# ---- project view ---------------------------------------------------------------------------

def test_downloads_keep_their_names_and_the_zip_holds_every_file(tmp_path):
    link = download_link("Makefile", b"all:\n")
    assert 'download="Makefile"' in link and f"data:{DOWNLOAD_MIME};base64," in link
    assert base64.b64decode(link.split("base64,")[1].split('"')[0]) == b"all:\n"
    files = [{"name": "b.c", "text": "int b;\n"}, {"name": "Makefile", "text": "all:\n"}]
    data = zip_bytes(files, "fw-sn")
    assert data == zip_bytes(list(reversed(files)), "fw-sn")  # deterministic
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["fw-sn/Makefile", "fw-sn/b.c"]
        assert archive.read("fw-sn/b.c") == b"int b;\n"
    assert default_folder("/x/fw.c") == "/x/fw-parallel"  # beside the NF, as the README's nfx generate
    assert default_folder("/x/fw.c", "/y/out") == "/y/out/fw-parallel"
    assert where_folder("mine", "/x/fw.c") == Path("/x/mine")  # from the NF's folder, not the kernel's
    assert where_folder("/z/mine", "/x/fw.c") == Path("/z/mine")


def test_project_view_follows_the_suggested_folder_until_edited_and_lists_files(tmp_path):
    view = ProjectView()
    view.suggested = "out/fw-sn-e810-16"
    assert view.folder.value == "out/fw-sn-e810-16"
    view.suggested = "out/fw-sn-e810-4"
    assert view.folder.value == "out/fw-sn-e810-4"
    view.folder.value = "/mine"
    view.suggested = "out/fw-sn-e810-8"
    assert view.folder.value == "/mine"
    view.ask("Replace the nat project?")
    assert view.confirm.layout.display == "flex" and view.confirm.value is False
    view.folder.value = "/other"  # a new folder: the question no longer holds
    assert view.confirm.layout.display == "none"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "Makefile").write_text("all:\n\tgcc main.c\n")
    assert "Nothing generated yet" in view._downloads.value
    view.show_files(tmp_path, [tmp_path / "src" / "main.c", tmp_path / "Makefile"])
    assert [f["name"] for f in view.files] == ["Makefile", "src/main.c"]
    assert view.selected == "Makefile" and "gcc" in view._code.value
    assert "nfx-download-all" in view._downloads.value and "application/zip" in view._downloads.value
    view._picker.value = "src/main.c"
    assert view.selected == "src/main.c" and ">int<" in view._code.value
    with pytest.raises(traitlets.TraitError):
        view.selected = "nosuch.c"
    assert read_project(tmp_path, ["Makefile"])[0]["text"].startswith("all:")


# ---- simulator and verify panels ------------------------------------------------------------

def test_violations_are_shown_as_packets_and_locks_as_contention():
    assert unchecked_html([]) == ""
    assert "2 accesses" in unchecked_html(["flows READ at fw.c:3:4", "x"])
    assert "No sharding violations" in violations_html({"count": 0, "examples": []}, {})
    out = violations_html(SIMULATION["violations"], PACKETS)
    assert "2 state entries were reached from more than one core" in out
    assert "10.0.0.1:1000 -&gt; 192.0.2.7:80 TCP" in out and "core 1" in out and "core 3" in out
    assert "0a000001c0000207" in out  # the raw key, as a detail
    assert "<td>device 0</td>" in out
    captured = {n: dict(p, frame=n + 1, capture=("lan.pcap", "wan.pcap")[p["device"]]) for n, p in PACKETS.items()}
    out = violations_html(SIMULATION["violations"], captured)  # from captures: where each packet is in its file
    assert "<td>device 0, frame 5 of lan.pcap</td>" in out and "<td>device 1, frame 10 of wan.pcap</td>" in out
    shared = contention_html({"writes": 120, "share": 0.12, "per_core": [60, 60], "notes": ["expiry left out"]}, 1000)
    assert "shared by all cores" in shared and "<b>12.0%</b>" in shared and "120 of 1,000" in shared
    assert "expiry left out" in shared and "per-cell locks" not in shared
    cells = contention_html({"writes": 20, "share": 0.02, "per_core": [10, 10], "notes": [], "cells": 470,
                             "cell_share": 0.47}, 1000)
    assert "<b>2.0%</b>" in cells and "<b>47.0%</b> (470) may change only cells of vectors" in cells


def test_simulator_states_the_largest_upload_the_server_takes(monkeypatch):
    """A larger capture is dropped on the way, unseen by the kernel: the page says the cap first
    (nfx explore's, from the environment; Tornado's default in a server nfx did not start)."""
    monkeypatch.setenv("NFX_UPLOAD_LIMIT", str(256 * 2**20))
    assert "each up to 256 MB; larger: nfx simulate --in" in SimulatorPanel()._uploads_box.children[0].value
    monkeypatch.delenv("NFX_UPLOAD_LIMIT")
    assert "each up to 10 MB" in SimulatorPanel()._uploads_box.children[0].value


def test_simulator_offers_one_pcap_per_device_and_disables_the_generator_controls():
    panel = SimulatorPanel()
    panel.devices = 3
    assert len(panel.uploads) == 3 and panel.uploaded() == {}
    panel.uploads[2].value = ({"name": "c.pcap", "type": "", "size": 4, "content": memoryview(b"abcd"),
                               "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)},)
    assert panel.traffic.value == UPLOADED and panel.traffic.disabled
    assert panel.packets.disabled and panel.flows.disabled and panel.seed.disabled
    assert panel.packets.tooltip == "the packet count is read from the pcap files"
    assert panel.uploaded() == {2: ("c.pcap", b"abcd")}
    panel.clear_uploads()
    assert panel.traffic.value == "uniform" and not panel.packets.disabled and panel.uploaded() == {}
    panel.examples = {str(k): v for k, v in PACKETS.items()}
    panel.simulation = SIMULATION
    assert panel.load.cores_source.data["packets"] == SIMULATION["per_core"]
    assert "10.0.0.1:1000" in panel._findings.value
    shares = {"active": 0.05}
    panel.simulation = {**SIMULATION, "write_shares": shares}
    assert "broadcast each write" in panel._findings.value
    panel.simulation = {**SIMULATION, "write_shares": shares,
                        "contention": {"writes": 12, "share": 0.12, "per_core": [3, 3, 3, 3]}}
    assert "take the write lock" in panel._findings.value and "broadcast" not in panel._findings.value  # locks


def test_check_html_lists_differing_packets_and_what_it_was_for():
    panel = VerifyPanel()
    assert "Not verified yet" in panel._verdict.value
    panel.label = "fw.c, e810, 2 cores, seed 0"
    panel.check = {"equivalent": True, "packets": 1234, "strategy": "sn", "cores": 1, "unexplained": 0,
                   "relation": "same verdict and bytes per packet", "per_core": [1234], "differences": [],
                   "renamed": 3, "notes": ["a note"], "failure": ""}
    out = panel._verdict.value
    assert "Equivalent" in out and "all 1,234 packets" in out and "(sn, 1 core)" in out
    assert "computed for fw.c, e810, 2 cores, seed 0" in out and "packets per core: 1,234" in out
    differences = [{"packet": i, "device": 1, "core": 0, "sequential": 0, "parallel": -1, "why": "no flow",
                    "src": "192.0.2.7", "dst": "10.0.0.1", "sport": 80, "dport": 1000, "proto": 6,
                    "frame": 1200 + i if i else 0} for i in range(25)]  # packet 0: a reply, in no capture
    out = check_html({"equivalent": False, "packets": 50, "unexplained": 25, "strategy": "sn", "cores": 2,
                      "differences": differences})
    assert "Not equivalent" in out and "25 of 50 packets" in out
    assert out.count("<tr class=\"nfx-difference\">") == 20 and "and 5 more differing packets" in out
    assert "192.0.2.7:80 -&gt; 10.0.0.1:1000 TCP" in out and "<b>forward to 0</b>" in out and "<b>drop</b>" in out
    assert ">device 1, frame 1,201<" in out and ">device 1<" in out  # where to find it in its capture
    partial = check_html({"verdict": "partial", "packets": 50, "strategy": "sn", "cores": 2,
                          "partial": {"reason": "per-core capacity drift: core 1", "not_compared": 4}})
    assert "Partial" in partial and "4 of 50 were set aside" in partial
    assert "failed: core 1 crashed" in check_html({"packets": 50, "failure": "core 1 crashed", "strategy": "locks"})
    locks = check_html({"equivalent": True, "packets": 50, "strategy": "locks", "cores": 2, "write_passes": 3,
                        "cell_passes": 1200})
    assert "3 packets reran under the write lock, 1,200 wrote vector cells under cell locks" in locks
    assert "cell locks" not in check_html({"equivalent": True, "packets": 50, "strategy": "locks", "cores": 2,
                                           "write_passes": 3, "cell_passes": 0})


# ---- status line, inputs, picker, charts ------------------------------------------------------

def test_status_line_runs_reports_progress_and_draws_no_glyphs():
    status = StatusLine("idle hint")
    assert status.message == "idle hint" and status.hint == "idle hint"
    seen = []
    assert status.run("Adding", lambda a, b: seen.append(status.state) or a + b, 2, b=3, done="x.c") == 5
    assert seen == ["busy"] and status.state == "done"
    assert status.message.startswith("Adding: done in") and status.message.endswith(" s for x.c")

    def counted(progress=None):
        progress(50)
        seen.append((status.progress, status.message))
        return 1
    status.run("Counting", counted, total=200)
    assert seen[-1] == (0.25, "Counting\u2026 50 of 200")
    assert status.run("Solving", lambda: (_ for _ in ()).throw(ShardingError("no key"))) is None
    assert status.state == "error" and status.message == "Solving failed: no key"
    with pytest.raises(ZeroDivisionError):
        status.run("Solving", lambda: 1 / 0)
    assert "internal error ZeroDivisionError" in status.message
    for state in ("busy", "done", "error", "stale"):
        status.report(state, "x")
        assert all(ord(c) < 0x2000 or c in "\u2026\u2014\u00b7" for c in status._label.value)


def test_inputs_label_and_changes():
    before = Inputs.of("/x/fw.c", {}, "e810", 16, 0, "auto", {})
    after = Inputs.of("/x/fw.c", {"CAP": "8"}, "82599", 1, 0, "sn", {"flows": {0: ("src_ip",)}})
    assert before.label() == "fw.c, e810, 16 cores, seed 0"
    assert after.label() == "fw.c, 82599, 1 core, seed 0, strategy sn, CAP=8, overrides on flows"
    assert before.changes(after) == ["defines", "NIC e810 -> 82599", "cores 16 -> 1", "strategy auto -> sn",
                                     "overrides"]
    assert before.changes(before) == [] and plural(1, "core") == "1 core" and plural(2, "core") == "2 cores"


def test_parse_defines_and_picker(tmp_path):
    assert parse_defines("CAP=1024, EXPIRY=10 DEBUG") == {"CAP": "1024", "DEBUG": "1", "EXPIRY": "10"}
    with pytest.raises(ConfigError):
        parse_defines("1CAP=3")
    with pytest.raises(ConfigError, match="CAP is given twice"):  # not the last one silently
        parse_defines("CAP=1 CAP=2")
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
    assert picker.defines_now() == {"CAP": "8"} and picker.path == ""  # not committed yet
    assert picker.commit() == ("/x/y.c", {"CAP": "8"})
    assert picker.path == "/x/y.c" and picker.defines == {"CAP": "8"}


def test_charts_known_answers():
    assert [nice_max(v) for v in (0, 0.7, 1, 3, 7, 11, 2400)] == [1.0, 1.0, 1.0, 5.0, 10.0, 20.0, 2500.0]
    assert [number(v) for v in (1250, 1250.5, 0.125, 3.0)] == ["1,250", "1,250.5", "0.12", "3"]
    one = bar_chart("t", range(3), {"packets": [1, 2, 3]}).svg
    assert one.count("<rect") == 1 + 3 and "mean 2" in one  # background + bars; no legend for one series
    two = bar_chart("t", range(2), {"bad": [1, 3], "good": [2, 2]}).svg
    assert ">bad</text>" in two and ">good</text>" in two and "mean 2 (every series)" in two
    assert two == bar_chart("t", range(2), {"bad": [1, 3], "good": [2, 2]}).svg  # deterministic
    lines = line_chart("t", [2, 4], {"a": [1.0, 1.5]}, baseline=1.0, low=1.0).svg
    assert ">1.50</text>" in lines and "1 = perfectly even" in lines
    # a point a series lacks (NaN or None: a core count its NIC cannot take): a gap, no mark, no 'nan'
    gaps = line_chart("t", [2, 4, 8, 16, 24], {"a": [1.0, float("nan"), 1.2, 1.3, None]}, low=1.0).svg
    assert "nan" not in gaps and gaps.count("<polyline") == 2 and gaps.count("<circle") == 3
    assert ">1.30</text>" in gaps
    with pytest.raises(ValueError):
        bar_chart("t", range(2), {"a": [1]})
