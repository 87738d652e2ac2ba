"""The explorer in a real browser: ``nfx explore`` serves it with Voilà, Debian's Chromium (through
Playwright) clicks through it as a user would. One test per claim of the explorer (issue 11's
numbered items), each saving a screenshot of its section in tests/artifacts/. Every page must load
nothing from outside this machine, and the server must leave no process behind."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from explorer import pipeline
from widgets.access_graph import FOCUS, edges
from widgets.graph_view import focus_choices
from widgets.load_view import AFTER_COLOUR, BEFORE_COLOUR

from conftest_browser import chromium, local_page, nfx_explore, screenshot

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
FW = ROOT / "sample_nfs" / "fw.c"
LB = ROOT / "sample_nfs" / "lb.c"
FIELDS = ("src_ip", "dst_ip", "src_port", "dst_port")
# A LAN packet and the WAN reply to it meet in the flow table. Sharding both ports on their own
# source address splits them: the reply's source is the request's destination.
BREAKING_OVERRIDE = {"flows": {0: ("src_ip",), 1: ("src_ip",)}}
PAGE_TIMEOUT_MS = 180_000  # the first load analyses and solves the NF in the kernel
ACTION_TIMEOUT_MS = 120_000
EMOJI = [(0x1F000, 0x1FAFF), (0x2300, 0x23FF), (0x2600, 0x27BF), (0x2B00, 0x2BFF)]


# The first box around the element, up to its pane, that shows less of it than it is wide (clipped,
# or only by scrolling sideways), or "".
CUT_OFF = """(e) => {
    const r = e.getBoundingClientRect();
    for (let n = e.parentElement; n && !n.classList.contains('nfx-pane'); n = n.parentElement) {
        if (getComputedStyle(n).overflowX === 'visible') continue;
        const b = n.getBoundingClientRect();
        if (r.left < b.left - 1 || r.right > b.left + n.clientWidth + 1) return n.className || n.tagName;
    }
    return '';
}"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


def open_page(browser, url: str):
    page, outside = local_page(browser, width=1500, height=950)
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    page.locator(".nfx-solve-status .nfx-status-done, .nfx-solve-status .nfx-status-warning, "
                 ".nfx-solve-status .nfx-status-error").first.wait_for(timeout=PAGE_TIMEOUT_MS)  # a solve that warns
    return page, outside


@pytest.fixture(scope="module")
def explorer(browser, tmp_path_factory):
    """The page of a running ``nfx explore`` on the firewall. The tests below share it and run in
    file order, each one going on from where the previous stopped."""
    home = tmp_path_factory.mktemp("voila-home")
    with nfx_explore(str(FW), home) as url:
        page, outside = open_page(browser, url)
        yield page, outside
        page.close()
        assert outside == [], f"the page asked other hosts for {outside}"


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(200)


def button(page, name: str):
    return page.get_by_role("button", name=name, exact=True)


def load(page, nf: Path) -> None:
    """Name ``nf`` in the NF box and press Load."""
    box = page.locator(".nfx-picker input").first
    box.fill(str(nf))
    box.press("Tab")
    button(page, "Load").click()


def status_line(page, section: str):
    """A section's status line: ``.nfx-solve-status`` is one itself, other sections hold one."""
    return page.locator(section if section.endswith("-status") else f"{section} .nfx-status").first


def status_text(page, section: str) -> str:
    return status_line(page, section).inner_text()


def wait_status(page, section: str, text: str, state: str = "done") -> str:
    """Wait until ``section``'s status is ``state`` and says ``text``; its whole text."""
    try:
        page.locator(f"{section} .nfx-status-{state}").filter(has_text=text).first.wait_for()
    except PlaywrightTimeout:
        screenshot(page, "failed")
        raise AssertionError(f"{section}: no {state} status saying {text!r}; it says "
                             f"{status_text(page, section)!r}") from None
    return status_text(page, section)


def set_number(page, locator, value: int) -> None:
    locator.fill(str(value))
    locator.press("Enter")


def set_toggles(page, overrides) -> None:
    for name, per_device in overrides.items():
        for device, keep in per_device.items():
            for field in FIELDS:
                toggle = page.locator(f'button[title="{name}: device {device} {field}"]')
                if ("mod-active" in (toggle.get_attribute("class") or "")) != (field in keep):
                    toggle.click()
                    settle(page)


def settle(page) -> None:
    """Wait until the re-solve a control change started is over."""
    page.wait_for_timeout(200)
    page.locator(".nfx-solve-status .nfx-status-busy").wait_for(state="detached")


def keys_shown(page) -> list[str]:
    return page.locator(".nfx-key").all_inner_texts()


def expected_keys(**solve) -> list[str]:
    data = pipeline.solve(FW, **solve).to_dict()
    return [data["devices"][dev]["key"] for dev in sorted(data["devices"], key=int)]


# ---- 6, 13: the first view -------------------------------------------------------------------

def test_loaded_page_says_what_it_shows_with_no_emoji_and_nothing_from_outside(explorer):
    page, outside = explorer
    screenshot(page, "01-loaded")
    assert page.locator(".nfx-source .nfx-access").count() > 0  # state accesses are marked
    context = page.locator(".nfx-context").inner_text()
    # fw's two non-IPv4 paths are taken on both devices: the header says so, as the graph's device
    # nodes count 5 and 4 of the 7 (a user added them up to 9 and asked which was right)
    assert ("fw.c: 7 call paths (device 0 takes 5, device 1 takes 4; 2 are taken by both), 3 state objects, "
            "analysed in ") in context
    assert "analysed in 0.00 s" not in context  # the real figure, measured at load
    assert "solution for fw.c, e810, 16 cores, seed 0" in context
    assert keys_shown(page) == expected_keys()  # solved at once, with the default inputs
    text = page.locator(".nfx-app").inner_text()
    glyphs = sorted({c for c in text if any(lo <= ord(c) <= hi for lo, hi in EMOJI)})
    assert glyphs == [], f"characters that need an emoji font: {glyphs}"
    assert outside == []


# ---- 1: results are tied to their inputs ------------------------------------------------------

def test_changing_nic_and_cores_resolves_at_once_and_generate_writes_that_plan(explorer, tmp_path):
    page, _ = explorer
    page.locator(".nfx-solve-toolbar").get_by_label("NIC").select_option("82599")
    wait_status(page, ".nfx-solve-status", "82599, 16 cores")
    set_number(page, page.locator(".nfx-solve-toolbar").get_by_label("Cores"), 4)
    assert "for fw.c, 82599, 4 cores, seed 0" in wait_status(page, ".nfx-solve-status", "82599, 4 cores")
    assert keys_shown(page) == expected_keys(nic="82599", cores=4)
    assert "solution for fw.c, 82599, 4 cores, seed 0" in page.locator(".nfx-context").inner_text()
    screenshot(page, "02-resolved-for-82599-4-cores")
    tab(page, "Generate")
    folder = page.get_by_label("Folder")
    assert folder.input_value() == str(FW.parent / "fw-parallel")  # the default: beside the NF
    folder.fill(str(tmp_path / "fw-82599"))
    button(page, "Generate").click()
    wait_status(page, ".nfx-project", "Generating into")
    plan = (tmp_path / "fw-82599" / "plan.txt").read_text()
    assert "strategy sn, 4 cores" in plan and "NIC 82599" in plan
    assert "for fw.c, 82599, 4 cores, seed 0" in status_text(page, ".nfx-project")
    screenshot(page, "03-generated-82599")


def test_a_pending_nf_change_makes_every_action_refuse_and_say_why(explorer):
    page, _ = explorer
    box = page.locator(".nfx-picker input").first
    box.fill(str(FW.parent / "nat.c"))
    box.press("Tab")
    page.wait_for_timeout(500)
    generate = button(page, "Generate")
    assert generate.is_disabled()
    assert "press Load" in generate.get_attribute("title")
    assert "press Load" in page.locator(".nfx-context").inner_text()
    tab(page, "Simulate")
    assert button(page, "Simulate").is_disabled() and "nat.c" in button(page, "Simulate").get_attribute("title")
    screenshot(page, "04-pending-nf")
    box.fill(str(FW))
    box.press("Tab")
    page.wait_for_timeout(500)
    assert button(page, "Simulate").is_enabled()
    tab(page, "Sharding and RSS")
    page.locator(".nfx-solve-toolbar").get_by_label("NIC").select_option("e810")
    wait_status(page, ".nfx-solve-status", "e810, 4 cores")


# ---- 2: never another NF's project --------------------------------------------------------------

def test_generate_asks_before_replacing_another_nfs_project(explorer, tmp_path):
    page, _ = explorer
    other = tmp_path / "shared"
    pipeline.generate(pipeline.solve(FW.parent / "nat.c", cores=2, quality=False), other)
    before = (other / "nf.c").read_text()
    tab(page, "Generate")
    page.get_by_label("Folder").fill(str(other))
    button(page, "Generate").click()
    wait_status(page, ".nfx-project", "holds the nat project", "error")
    assert (other / "nf.c").read_text() == before  # nothing was written
    confirm = page.get_by_label(f"Replace the nat project in {other} with fw's")
    screenshot(page, "05-generate-asks")
    confirm.check()
    button(page, "Generate").click()
    wait_status(page, ".nfx-project", "Generating into")
    assert "fw" in (other / "plan.txt").read_text().splitlines()[0]


# ---- 12: downloads -----------------------------------------------------------------------------

def test_downloads_keep_their_names_and_the_zip_holds_every_file(explorer, tmp_path):
    page, _ = explorer
    tab(page, "Generate")
    with page.expect_download() as makefile:
        page.locator(".nfx-download", has_text="Makefile").first.click()
    assert makefile.value.suggested_filename == "Makefile"
    with page.expect_download() as archive:
        page.locator(".nfx-download-all").click()
    assert archive.value.suggested_filename.endswith(".zip")
    saved = tmp_path / "project.zip"
    archive.value.save_as(saved)
    shown = sorted(t.strip() for t in page.locator(".nfx-download").all_inner_texts())
    with zipfile.ZipFile(saved) as zipped:
        names = sorted(n.split("/", 1)[1] for n in zipped.namelist())
        assert names == shown and "Makefile" in names
    screenshot(page, "06-generated-files")


# ---- 3, 8: the table agrees with the counterexample, in the NF's words ---------------------------

def test_a_wrong_override_marks_the_row_broken_and_shows_two_real_packets(explorer):
    page, _ = explorer
    tab(page, "Sharding and RSS")
    set_toggles(page, BREAKING_OVERRIDE)
    wait_status(page, ".nfx-solve-status", "WRONG", "error")
    box = page.locator(".nfx-counterexample")
    box.wait_for()
    # flows, and the two objects whose entries follow it: none of them a green "shard"
    assert page.locator(".nfx-decision-broken").count() == 3 and page.locator(".nfx-decision-shard").count() == 0
    why = page.locator(".nfx-why-flows").inner_text()
    assert why.startswith("Broken by the override") and "p.ipv4" not in why
    assert page.locator(".nfx-why-chain").inner_text().startswith("Follows flows, which the override breaks")
    text = box.inner_text()
    assert "This sharding is wrong for flows" in text and "addresses and ports swapped" in text
    rows = box.locator("table tr").all_inner_texts()
    assert len(rows) == 3 and "10." in rows[1] and ":0\t" not in rows[1]  # a LAN client, real ports
    assert "What happens" in text and "fw drops it" in text and "forwards it to device 0" in text
    assert page.locator(".nfx-quality").count() == 0  # no balance figure for a key that splits state
    assert "WRONG" in status_text(page, ".nfx-solve-status")
    screenshot(page, "07-counterexample")


def test_rows_that_follow_show_inherited_fields_and_say_why_they_cannot_change(explorer):
    page, _ = explorer
    chain = page.locator('.nfx-fixed[data-object="chain"]').first
    assert "Follows flows" in chain.get_attribute("title")
    assert page.locator('button[title="chain: device 0 src_ip"]').count() == 0  # no toggle to click
    details = page.locator(".nfx-why-flows details")
    details.locator("summary").click()
    assert "overridden" in details.inner_text()  # the engine's exact reason, behind "details"


# ---- 9: Verify shows a failure ----------------------------------------------------------------

@pytest.mark.dpdk
def test_verify_builds_the_wrong_key_on_purpose_and_lists_the_divergent_packets(explorer):
    page, _ = explorer
    tab(page, "Verify")
    verify = button(page, "Verify")
    assert verify.is_disabled() and "build it anyway" in verify.get_attribute("title")
    page.get_by_label("build it anyway", exact=False).check()
    verify.click()
    wait_status(page, ".nfx-verify", "Building the wrong sharding on purpose")
    page.locator(".nfx-verdict").wait_for()
    assert "Not equivalent" in page.locator(".nfx-verdict").inner_text()
    rows = page.locator(".nfx-differences tr.nfx-difference").all_inner_texts()
    assert rows and all("->" in r for r in rows)  # packets, with their addresses and ports
    assert any("forward to 0" in r and "drop" in r for r in rows)  # replies the parallel fw drops
    assert all("frame " in r for r in rows)  # where each one is in its device's capture
    assert "core" in page.locator(".nfx-differences tr.nfx-why-row").first.inner_text()  # where the state was
    assert "built on purpose although wrong" in page.locator(".nfx-check-facts").inner_text()
    screenshot(page, "08-verify-failure")


# ---- 4, 10: the simulator ---------------------------------------------------------------------

def bar_pixels(page, colour: str) -> int:
    from PIL import Image

    chart = page.locator(".nfx-load .bk-Canvas, .nfx-load canvas").first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(600)  # let BokehJS paint the patched data source
    image = Image.open(io.BytesIO(page.locator(".nfx-load").screenshot())).convert("RGB")
    rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return int((np.asarray(image) == np.array(rgb, dtype=np.uint8)).all(axis=-1).sum())


def test_simulator_shows_violations_as_packets_and_only_plotted_series(explorer):
    page, _ = explorer
    tab(page, "Simulate")
    assert page.locator(".nfx-load .nfx-hint").is_visible()  # a hint, no empty chart frames
    assert not page.locator(".nfx-load canvas").first.is_visible()
    set_number(page, page.locator(".nfx-simulator").get_by_label("Packets"), 20_000)
    set_number(page, page.locator(".nfx-simulator").get_by_label("Flows"), 2_000)
    page.locator(".nfx-simulator").get_by_label("Traffic").select_option("bidir")
    button(page, "Simulate").click()
    wait_status(page, ".nfx-simulator", "Simulating 20,000 bidir packets")
    table = page.locator(".nfx-violation-packets")
    table.wait_for()
    rows = table.locator("tr").all_inner_texts()
    assert len(rows) > 2 and all("->" in r and "10." in r for r in rows[1:])  # packets, not raw keys
    cell = table.locator("td").nth(3)  # the packet, which ran into its core ("TCPcore 1") without padding
    assert cell.evaluate("e => getComputedStyle(e).paddingRight") == "10px"
    screenshot(page, "09-simulated-violations")
    assert bar_pixels(page, BEFORE_COLOUR) > 1500 and bar_pixels(page, AFTER_COLOUR) == 0
    pane = page.locator(".nfx-pane").nth(1).bounding_box()
    chart = page.locator(".nfx-load canvas").first.bounding_box()
    assert chart["width"] > 0.8 * pane["width"]  # as wide as the pane
    button(page, "Rebalance").click()
    wait_status(page, ".nfx-simulator", "rebalancing")
    page.locator(".nfx-load-summary").filter(has_text="after rebalancing").wait_for()
    assert bar_pixels(page, AFTER_COLOUR) > 1500  # the rebalanced series appears once it exists
    screenshot(page, "10-rebalanced")


def test_a_pcap_per_device_replaces_the_generator_controls(explorer, tmp_path):
    from explorer.traffic.generators import generate
    from explorer.traffic.pcap import write_pcap

    page, _ = explorer
    trace = generate("bidir", packets=400, flows=40, seed=3)
    for device in (0, 1):
        part = trace.for_device(device)
        write_pcap(tmp_path / f"dev{device}.pcap", part.timestamps, part.frames)
    uploads = page.locator(".nfx-simulator .widget-upload")
    assert uploads.count() == 2  # one per device of the NF
    for device in (0, 1):
        with page.expect_file_chooser() as chooser:
            uploads.nth(device).click()
        chooser.value.set_files(str(tmp_path / f"dev{device}.pcap"))
        page.wait_for_timeout(800)
    for label in ("Packets", "Flows", "Seed"):
        assert page.locator(".nfx-simulator").get_by_label(label).is_disabled()
    assert page.locator(".nfx-simulator").get_by_label("Traffic").input_value() == "pcap files"
    button(page, "Simulate").click()
    wait_status(page, ".nfx-simulator", "the pcap files")
    page.locator(".nfx-load-summary").filter(has_text="400 packets on 4 cores").wait_for()
    screenshot(page, "11-pcap-upload")
    button(page, "Use generated traffic").click()
    page.wait_for_timeout(500)
    assert page.locator(".nfx-simulator").get_by_label("Packets").first.is_enabled()


# ---- 5: the status stays where the user is ---------------------------------------------------

def test_each_sections_status_stays_in_view_while_its_results_scroll(explorer):
    page, _ = explorer
    for name, section in (("Simulate", ".nfx-simulator"), ("Generate", ".nfx-project"), ("Verify", ".nfx-verify"),
                          ("Sharding and RSS", ".nfx-solve-status")):
        tab(page, name)
        # Scroll everything that scrolls as far as it goes: the section's results and Voilà's page.
        page.evaluate("""() => {
            for (const el of document.querySelectorAll('.nfx-body, #rendered_cells'))
                el.scrollTop = el.scrollHeight;
            window.scrollTo(0, document.body.scrollHeight);
        }""")
        page.wait_for_timeout(300)
        box = status_line(page, section).bounding_box()
        height = page.viewport_size["height"]
        assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= height, (name, box)
    screenshot(page, "12-scrolled-status-visible")


def test_reset_overrides_restores_the_solved_state(explorer):
    page, _ = explorer
    tab(page, "Sharding and RSS")
    button(page, "Reset overrides").click()
    wait_status(page, ".nfx-solve-status", "correct")
    page.locator(".nfx-counterexample").wait_for(state="detached")
    for device in (0, 1):
        for field in FIELDS:
            toggle = page.locator(f'button[title="flows: device {device} {field}"]')
            assert "mod-active" in toggle.get_attribute("class")  # the solver's fields, not blank toggles
    assert page.locator(".nfx-quality").count() == 1
    tab(page, "Simulate")
    assert "Out of date" in status_text(page, ".nfx-simulator")  # what it shows was for the wrong key
    screenshot(page, "13-stale-simulation")


def test_one_core_is_said_in_the_singular(explorer):
    page, _ = explorer
    tab(page, "Sharding and RSS")
    set_number(page, page.locator(".nfx-solve-toolbar").get_by_label("Cores"), 1)
    text = wait_status(page, ".nfx-solve-status", "1 core,")
    assert "1 cores" not in text
    set_number(page, page.locator(".nfx-solve-toolbar").get_by_label("Cores"), 16)
    wait_status(page, ".nfx-solve-status", "16 cores")


def test_a_phone_wide_window_stacks_the_panes_and_leaves_every_control_in_reach(explorer):
    """At 390 px the panes kept their 480 + 560 px side by side and the page clipped the rest: no
    Load button, no Sharding, Simulate, Generate or Verify at all. They stack now, rows wrap, and
    the sharding table (fixed columns) scrolls sideways inside its pane."""
    page, _ = explorer
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_timeout(500)
        tab(page, "Sharding and RSS")
        # Where each one is across the page, which the user cannot scroll sideways (scrolling into
        # view would: it moves clipped content too).
        for control in (button(page, "Load"), page.get_by_role("tab", name="Verify"), button(page, "Solve")):
            box = control.bounding_box()
            assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= 390, box
        grid = page.locator(".nfx-sharding > .widget-gridbox").first
        assert grid.evaluate("e => getComputedStyle(e).overflowX") == "auto"  # a scrollbar reaches device 1
        toggle = page.locator('button[title="flows: device 1 dst_port"]')
        toggle.scroll_into_view_if_needed()
        screenshot(page, "23-phone-width")
    finally:
        page.set_viewport_size({"width": 1500, "height": 950})
        page.wait_for_timeout(500)


# ---- 7: the graph teaches ---------------------------------------------------------------------

def test_the_graph_colours_decisions_labels_keys_per_device_and_highlights_exactly_a_path(explorer):
    page, _ = explorer
    tab(page, "State-access graph")
    svg = page.locator(".nfx-graph svg")
    text = svg.text_content()
    # the fields by the names the sharding table and the CLI give them (the edges said sport, dport)
    assert "dev0: src_ip,dst_ip,src_port,dst_port,protocol" in text
    assert "dev1: dst_ip,src_ip,dst_port,src_port,protocol" in text
    words = {w for w in page.locator(".nfx-app").inner_text().replace(",", " ").replace(":", " ").split()}
    assert not words & {"sport", "dport", "proto"}
    assert svg.locator("text", has_text="5 of 7 paths").count() == 1  # device 0, as the header counts
    assert page.locator('.nfx-graph svg [fill="#dafbe1"]').count() >= 3  # every object is sharded
    legend = page.locator(".nfx-legend").inner_text()
    assert "shard" in legend and "lock" not in legend and "reads" in legend and "writes" in legend
    analysis = pipeline.analyze(FW).to_dict()
    label = {value: text for text, value in focus_choices(analysis)}["path 4"]
    page.get_by_label("Focus").select_option(label=label)
    page.locator(f'.nfx-graph svg path[stroke="{FOCUS}"]').first.wait_for()
    words = pipeline.explain(pipeline.solve(FW, quality=False), outcome=False)
    expected = [e for e in edges(analysis, words) if e.in_focus("path 4")]
    assert page.locator(f'.nfx-graph svg g.edge path[stroke="{FOCUS}"]').count() == len(expected)
    assert page.locator(".nfx-sharding .nfx-row-focus").count() > 0  # the same focus in the table
    screenshot(page, "14-graph-path-4")
    tab(page, "Source")
    assert page.locator(".nfx-source .nfx-selected").count() >= 1
    screenshot(page, "15-source-path-4")
    page.get_by_label("Focus").select_option(label="nothing")


# ---- 3, 7, 10: replicated state, and a lock chosen in the table -----------------------------

def test_an_analysis_warning_shows_under_the_load_status(explorer):
    """An NF that tests for a port it does not have (``case MGMT:``, NF_DEVICES left at 2) loads and
    solves, and the load status says where and why in the warning colour."""
    page, _ = explorer
    load(page, ROOT / "tests" / "nfs" / "mgmt_port.c")
    text = wait_status(page, ".nfx-load-status", "this tests for device 2", state="warning")
    assert text.startswith("Loaded mgmt_port.c: ") and "#define NF_DEVICES 3" in text
    wait_status(page, ".nfx-solve-status", "mgmt_port.c")
    assert "keeps no state between packets" in page.locator(".nfx-sharding").inner_text()
    assert not button(page, "Reset overrides").is_visible()
    screenshot(page, "20-analysis-warning")
    tab(page, "Source")
    warned = page.locator(".nfx-source .nfx-warned")
    assert warned.count() == 1 and "device 2 does not exist" in warned.inner_text()
    assert warned.get_attribute("data-line") == "18"
    warned.scroll_into_view_if_needed()
    screenshot(page, "21-source-warning")
    load(page, FW)
    wait_status(page, ".nfx-load-status", "Loaded fw.c")
    assert button(page, "Reset overrides").is_visible()


def test_a_syntax_error_shows_the_source_at_its_line(explorer):
    """Loading an NF that is not valid C says where in the load status, and the Source tab shows
    the file opened at that line, marked, with gcc's words beside it; loading fw again recovers."""
    page, _ = explorer
    load(page, ROOT / "tests" / "nfs" / "bad_syntax.c")
    text = wait_status(page, ".nfx-load-status", "bad_syntax.c:6:11", state="error")
    assert "expected expression before" in text and "Traceback" not in text
    tab(page, "Source")
    warned = page.locator(".nfx-source .nfx-warned")
    assert warned.count() == 1 and warned.get_attribute("data-line") == "6"
    assert "expected expression before" in warned.inner_text()
    caption = page.locator(".nfx-source .nfx-source-caption").inner_text()
    assert caption == "bad_syntax.c did not load; the other panes still show fw.c"  # which file is which
    warned.scroll_into_view_if_needed()
    screenshot(page, "22-source-syntax-error")
    load(page, FW)
    wait_status(page, ".nfx-load-status", "Loaded fw.c")
    assert page.locator(".nfx-source .nfx-warned").count() == 0


def test_a_refused_goto_shows_its_whole_advice_beside_the_line(explorer):
    """The analysis' advice for a goto is long; beside its line in the Source pane it ran off the
    pane's right edge (the code lines do not wrap). It now wraps under the line, all of it in view."""
    page, _ = explorer
    load(page, ROOT / "tests" / "nfs" / "goto_exit.c")
    wait_status(page, ".nfx-load-status", "goto_exit.c:23:12", state="error")
    tab(page, "Source")
    warned = page.locator(".nfx-source .nfx-warned")
    assert warned.get_attribute("data-line") == "23"
    note = warned.locator(".nfx-note")
    assert note.inner_text().endswith("(one that is not inside a loop or switch)")
    warned.scroll_into_view_if_needed()
    screenshot(page, "22b-source-goto-advice")
    assert note.evaluate(CUT_OFF) == ""
    load(page, FW)
    wait_status(page, ".nfx-load-status", "Loaded fw.c")


def test_replicated_state_and_a_lock_chosen_in_the_table(browser, tmp_path):
    with nfx_explore(str(LB), tmp_path) as url:
        page, outside = open_page(browser, url)
        assert page.locator(".nfx-picker input").first.input_value() == str(LB)
        why = page.locator(".nfx-why-backends").inner_text()
        assert why.startswith("Written only by rare packets (device 0, protocol == 17 (UDP), dst_port == 9999")
        backends = page.locator('.nfx-fixed[data-object="backends"]').first
        assert backends.get_attribute("title") == "Every core has its own copy, so there is nothing to shard."
        screenshot(page, "16-lb-replicated")
        tab(page, "State-access graph")
        legend = page.locator(".nfx-legend").inner_text()
        assert "replicate" in legend and "shard" in legend and "lock" not in legend
        assert page.locator(".nfx-graph button.mod-active").first.inner_text().strip() == "Summary"
        assert page.locator(".nfx-graph g.edge").count() < 45  # one edge per device, object and kind
        screenshot(page, "17-lb-graph-summary")
        tab(page, "Simulate")
        page.locator(".nfx-simulator").get_by_label("Traffic").select_option("heartbeat")
        set_number(page, page.locator(".nfx-simulator").get_by_label("Packets"), 20_000)
        button(page, "Simulate").click()
        wait_status(page, ".nfx-simulator", "heartbeat packets")
        assert "broadcast each write" in page.locator(".nfx-write-shares").inner_text()
        # The teacher chooses a lock for the backends' index chain: the table, graph and simulator follow.
        tab(page, "Sharding and RSS")
        page.locator('.nfx-sharding select[title="decide active yourself"]').select_option("lock")
        wait_status(page, ".nfx-solve-status", ": locks, correct")
        assert "lock (yours)" in page.locator(".nfx-sharding").inner_text()
        active = page.locator('.nfx-fixed[data-object="active"]').first
        assert active.get_attribute("title").startswith("Shared behind a lock")
        assert "lb.c:203" in active.get_attribute("title")  # the line that forces the lock
        assert page.locator('button[title="active: device 0 src_ip"]').count() == 0  # no toggle to click
        screenshot(page, "18-lb-lock-chosen")
        tab(page, "State-access graph")
        assert "lock" in page.locator(".nfx-legend").inner_text()
        tab(page, "Simulate")
        assert "Out of date" in status_text(page, ".nfx-simulator")
        button(page, "Simulate").click()
        wait_status(page, ".nfx-simulator", "heartbeat packets")
        contention = page.locator(".nfx-contention").inner_text()
        assert "shared by all cores" in contention and "take the write lock" in contention
        assert page.locator(".nfx-write-shares").count() == 0  # locks: nothing is replicated any more
        screenshot(page, "19-lb-contention")
        page.close()
        assert outside == []
