"""The explorer in a real browser, used as an impatient user does: Generate with the folder it
offers (twice), Fit on a wide graph, clicks faster than the solver, a status watched line by line,
another NF loaded while one solves, an empty capture. The NFs are copies in a temporary folder, so
the projects Generate writes beside them land there. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest_browser import chromium, nfx_explore, screenshot
from test_browser import button, load, open_page, set_number, settle, status_text, tab, wait_status
from widgets.graph_view import MIN_TEXT_PX

pytestmark = pytest.mark.browser

SAMPLES = Path(__file__).resolve().parent.parent / "sample_nfs"
NFS = Path(__file__).resolve().parent / "nfs"
FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")

# Every text a status line shows, in order, from the moment this runs (the kernel repaints the line
# at each step; a poll would miss a step that lasts a few milliseconds).
WATCH = """(selector) => {
    const seen = [];
    const node = document.querySelector(selector);
    const note = () => { const t = node.innerText.trim(); if (seen[seen.length - 1] !== t) seen.push(t); };
    new MutationObserver(note).observe(node, {subtree: true, childList: true, characterData: true});
    window.__nfxSeen = window.__nfxSeen || {};
    window.__nfxSeen[selector] = seen;
}"""


# Whether the element, or a box around it inside the pane, is wider than it shows (a scrollbar).
SCROLLS_SIDEWAYS = """(e) => {
    for (let node = e; node && !node.classList.contains('nfx-pane'); node = node.parentElement)
        if (node.scrollWidth > node.clientWidth + 1) return node.className || node.tagName;
    return '';
}"""


# How the state-access graph is shown: its width drawn (px at scale 1) and shown, the room its box
# has, the height in px of its smallest text as shown, and whether the box scrolls sideways.
FITTED = """(svg) => {
    const box = svg.closest('.nfx-graph-box');
    const drawn = svg.viewBox.baseVal.width;  // Graphviz's points
    const width = svg.getBoundingClientRect().width;
    const smallest = Math.min(...[...svg.querySelectorAll('text')].map(t => parseFloat(t.getAttribute('font-size'))));
    return {natural: drawn * 4 / 3, width, room: box.clientWidth, label: smallest * width / drawn,
            scrolls: box.scrollWidth > box.clientWidth + 1};
}"""


# The fields each device's flows toggles show on.
SHOWN = """() => Object.fromEntries([0, 1].map(d => [String(d), ['src_ip', 'dst_ip', 'src_port', 'dst_port'].filter(
    f => document.querySelector(`button[title="flows: device ${d} ${f}"]`).classList.contains('mod-active'))]))"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def nfs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nfs")
    for name in ("cl.c", "fw.c"):
        shutil.copy(SAMPLES / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def page(browser, nfs, tmp_path_factory):
    with nfx_explore(str(nfs / "cl.c"), tmp_path_factory.mktemp("voila-home")) as url:
        page, outside = open_page(browser, url)
        yield page
        page.close()
        assert outside == [], f"the page asked other hosts for {outside}"


def watch(page, selector: str) -> None:
    page.evaluate(WATCH, selector)


def seen(page, selector: str) -> list[str]:
    return page.evaluate("(selector) => window.__nfxSeen[selector]", selector)


def test_generate_offers_a_folder_beside_the_nf_before_anything_is_written(page, nfs):
    tab(page, "Generate")
    beside = nfs / "cl-parallel"
    assert page.get_by_label("Folder").input_value() == str(beside)
    where = page.locator(".nfx-where")
    assert where.inner_text() == f"Writes into {beside} (a new folder)"
    screenshot(page, "30-generate-folder-offered")
    generate = button(page, "Generate")
    generate.dblclick()  # a double click: two Generates, the second replaces the first's files
    wait_status(page, ".nfx-project", f"Generating into {beside}")
    settle_project(page)
    assert (beside / "plan.txt").is_file() and not page.locator(".nfx-project input[type=checkbox]").is_visible()
    assert "replacing the cl project an earlier Generate wrote there" in where.inner_text()
    mine = (beside / "nf.c").read_text() + "/* mine */\n"
    (beside / "nf.c").write_text(mine)
    page.get_by_label("Folder").fill(str(beside) + "/")  # the same folder, retyped: the line looks again
    page.get_by_label("Folder").press("Tab")
    where.filter(has_text="holds your edits to nf.c: kept").wait_for()
    generate.click()
    wait_status(page, ".nfx-project", "holds your edits to nf.c", "error")
    page.get_by_label("Keep your edits in", exact=False).check()
    generate.click()
    wait_status(page, ".nfx-project", "kept your nf.c", "warning")
    assert (beside / "nf.c").read_text() == mine and (beside / "nf.c.new").is_file()
    screenshot(page, "31-generate-kept-edits")


def settle_project(page) -> None:
    page.wait_for_timeout(300)
    page.locator(".nfx-project .nfx-status-busy").wait_for(state="detached")


def fitted(page) -> dict:
    """How the drawing is shown under Fit, checked against what Fit promises: as wide as its box
    (never wider than drawn), except that its smallest text never goes under MIN_TEXT_PX, where the
    box scrolls sideways instead."""
    shown = page.locator(".nfx-graph-box svg").evaluate(FITTED)
    assert shown["label"] >= MIN_TEXT_PX - 0.2, shown
    assert shown["width"] <= shown["natural"] + 1, shown
    if shown["scrolls"]:  # no room at a readable size: at the floor, not smaller, not larger
        assert abs(shown["label"] - MIN_TEXT_PX) < 0.3 and shown["width"] > shown["room"], shown
    else:
        assert abs(shown["width"] - min(shown["room"], shown["natural"])) <= 2, shown
    return shown


def test_fit_fits_a_wide_graph_down_to_readable_labels_and_actual_size_scrolls(page):
    tab(page, "State-access graph")
    box = page.locator(".nfx-graph-box")
    for view in ("Summary", "Detailed"):
        button(page, view).click()
        page.wait_for_timeout(500)
        shown = fitted(page)
        assert shown["width"] < shown["natural"], view  # shrunk: cl's drawing is wider than the pane
    button(page, "Summary").click()
    page.wait_for_timeout(500)
    screenshot(page, "32-cl-graph-fit")
    button(page, "Actual size").click()
    page.wait_for_timeout(500)
    assert box.evaluate(SCROLLS_SIDEWAYS)  # drawn at its size, which is wider than the pane
    actual = page.locator(".nfx-graph-box svg").evaluate(FITTED)
    assert abs(actual["width"] - actual["natural"]) <= 1  # as drawn: no floor, no ceiling
    screenshot(page, "33-cl-graph-actual")
    button(page, "Fit").click()


def test_the_solve_status_goes_from_busy_to_solved_without_a_done_between(page):
    tab(page, "Sharding and RSS")
    watch(page, ".nfx-solve-status")
    watch(page, ".nfx-load-status")
    set_number(page, page.locator(".nfx-solve-toolbar").get_by_label("Cores"), 8)
    wait_status(page, ".nfx-solve-status", "8 cores")
    lines = seen(page, ".nfx-solve-status")
    assert lines[0].startswith("Solving cl.c for 8 cores") and lines[-1].startswith("Solved in ")
    assert not any(": done in" in line for line in lines), lines
    button(page, "Load").click()
    wait_status(page, ".nfx-load-status", "Loaded cl.c")
    wait_status(page, ".nfx-solve-status", "8 cores")
    lines = seen(page, ".nfx-load-status")
    assert not any(": done in" in line for line in lines), lines


def test_clicks_faster_than_the_solver_wait_for_it_and_all_count(page, nfs):
    """Three toggles clicked as fast as the mouse goes: each starts a solve whose answer moves other
    fields (device 1 follows device 0 onto the other address). Clicks made during a solve were
    handled after that answer had changed what the user saw; the toggles now wait, disabled, until
    the solve is over, and every click counts. (They came back for a few milliseconds between a
    solve and the one a click sent meanwhile started, and the third click, made then, was lost in 2
    of 3 full browser runs: they now come back only once no solve follows.)"""
    load(page, nfs / "fw.c")
    wait_status(page, ".nfx-load-status", "Loaded fw.c")
    wait_status(page, ".nfx-solve-status", "fw.c")
    tab(page, "Sharding and RSS")
    page.evaluate("""() => {
        window.__nfxDisabled = 0;
        new MutationObserver(() => { if (document.querySelector('.nfx-sharding button.nfx-field:disabled'))
                                         window.__nfxDisabled += 1; })
            .observe(document.querySelector('.nfx-sharding'), {subtree: true, attributes: true});
    }""")
    for field in ("dst_ip", "src_port", "dst_port"):
        page.locator(f'button[title="flows: device 0 {field}"]').click(no_wait_after=True)
    # the user's three clicks on device 0; device 1 as the last solve answered
    wanted = {"0": ["src_ip"], "1": ["dst_ip"]}
    try:
        page.wait_for_function(f"""() => JSON.stringify(({SHOWN})()) === '{json.dumps(wanted, separators=(",", ":"))}'
                                   && !document.querySelector('.nfx-solve-status .nfx-status-busy')
                                   && !document.querySelector('.nfx-sharding button.nfx-field:disabled')""",
                               timeout=120_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the toggles show {page.evaluate(SHOWN)}, not {wanted}") from None
    assert "correct" in status_text(page, ".nfx-solve-status")
    assert page.evaluate("window.__nfxDisabled") > 0  # they were disabled meanwhile, and are no longer
    screenshot(page, "34-fast-clicks")
    button(page, "Reset overrides").click()
    wait_status(page, ".nfx-solve-status", "correct")


def test_another_nf_loaded_while_one_solves_wins(page, nfs):
    tab(page, "Sharding and RSS")
    settle(page)
    set_number(page, page.locator(".nfx-solve-toolbar").get_by_label("Cores"), 4)  # fw solves...
    load(page, nfs / "cl.c")  # ...while cl is asked for
    wait_status(page, ".nfx-load-status", "Loaded cl.c")
    wait_status(page, ".nfx-solve-status", "cl.c, e810, 4 cores")
    settle(page)
    assert "cl.c" in page.locator(".nfx-context").inner_text().split("\u00b7")[0]
    assert page.locator(".nfx-why-connections").count() == 1  # cl's table, not fw's
    for field in FIELDS:  # cl's flows are keyed on device 1's packets alone
        assert "mod-active" not in page.locator(f'button[title="flows: device 0 {field}"]').get_attribute("class")
    tab(page, "Generate")
    assert page.get_by_label("Folder").input_value() == str(nfs / "cl-parallel")


def test_an_empty_capture_is_refused_by_its_name(page, tmp_path):
    empty = tmp_path / "nothing.pcap"
    empty.write_bytes(b"")
    tab(page, "Simulate")
    with page.expect_file_chooser() as chooser:
        page.locator(".nfx-simulator .widget-upload").nth(0).click()
    chooser.value.set_files(str(empty))
    page.wait_for_timeout(800)
    button(page, "Simulate").click()
    text = wait_status(page, ".nfx-simulator", "nothing.pcap", "error")
    assert "empty file (0 bytes)" in text and "nfx-upload-" not in text and "Traceback" not in text
    screenshot(page, "35-empty-capture")
    button(page, "Use generated traffic").click()


def test_a_resized_window_keeps_the_graph_fitted(page):
    tab(page, "State-access graph")
    widths = {}
    for width in (900, 2600, 1500):
        page.set_viewport_size({"width": width, "height": 950})
        page.wait_for_timeout(500)
        widths[width] = fitted(page)["width"]
    assert widths[2600] > widths[1500]  # it grew with the window, and shrank back
    assert "Solved in" in status_text(page, ".nfx-solve-status")


def test_fit_keeps_a_wide_graphs_labels_readable_and_scrolls_to_the_rest(page):
    """dns_guard's eight state objects draw 900 pt wide: fitted into the pane, its labels came out
    about 8 px high. Fit now stops at readable labels; the graph's own box scrolls to the rest."""
    load(page, NFS / "dns_guard.c")
    wait_status(page, ".nfx-load-status", "Loaded dns_guard.c")
    settle(page)  # the solve's words redraw the graph, in a new box scrolled to its start
    tab(page, "State-access graph")
    button(page, "Summary").click()
    page.wait_for_timeout(500)
    shown = fitted(page)
    assert shown["scrolls"], shown  # at 1500 px the pane has no room for it at a readable size
    screenshot(page, "36-dns-guard-graph-fit")
    box = page.locator(".nfx-graph-box")
    box.evaluate("(e) => { e.scrollLeft = e.scrollWidth; }")
    page.wait_for_timeout(300)
    edge = page.locator(".nfx-graph-box svg").evaluate("(s) => s.getBoundingClientRect().right")
    assert edge <= box.evaluate("(e) => e.getBoundingClientRect().left + e.clientWidth") + 1  # the rest in reach
    assert button(page, "Fit").is_visible()  # the buttons stay put: only the drawing scrolls
    screenshot(page, "37-dns-guard-graph-fit-scrolled")
    box.evaluate("(e) => { e.scrollLeft = 0; }")
