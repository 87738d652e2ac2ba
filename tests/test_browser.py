"""The explorer in a real browser: ``nfx explore sample_nfs/fw.c`` serves it with Voilà, Debian's
Chromium (through Playwright) clicks through it. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from explorer import pipeline
from widgets.load_view import BEFORE_COLOUR

from conftest_browser import chromium, local_page, nfx_explore, screenshot

pytestmark = pytest.mark.browser

FW = Path(__file__).resolve().parent.parent / "sample_nfs" / "fw.c"
# A LAN packet and the WAN reply to it meet in the flow table. Sharding both ports on their own
# source address splits them: the reply's source is the request's destination.
BREAKING_OVERRIDE = {"flows": {0: ("src_ip",), 1: ("src_ip",)}}
PAGE_TIMEOUT_MS = 120_000  # the first load analyses the NF in the kernel
ACTION_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def explorer(browser, tmp_path_factory):
    """The page of a running ``nfx explore`` on the firewall, and the URLs it tried outside. The
    tests below share it and run in file order, each one going on from where the previous stopped."""
    home = tmp_path_factory.mktemp("voila-home")
    with nfx_explore(str(FW), home) as url:
        page, outside = local_page(browser, height=1000)
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.goto(url, timeout=PAGE_TIMEOUT_MS)
        page.locator(".nfx-status").get_by_text("Loaded fw.c").wait_for(timeout=PAGE_TIMEOUT_MS)
        yield page, outside
        page.close()


def button(page, name: str):
    # Not exact: Chromium counts an icon's CSS glyph as part of the button's accessible name.
    return page.get_by_role("button", name=name)


def status(page) -> str:
    return page.locator(".nfx-status").inner_text()


def wait_done(page, what: str) -> None:
    """Wait for the status line to say ``what`` finished; fail with its text if it failed (the page
    is saved as tests/artifacts/failed.png then)."""
    try:
        page.locator(".nfx-status-done, .nfx-status-error").get_by_text(what).wait_for()
    except PlaywrightTimeout:
        screenshot(page, "failed")
        raise AssertionError(f"no end of {what!r}; the status says {status(page)!r}") from None
    assert page.locator(".nfx-status-error").count() == 0, status(page)


def test_loaded_page_shows_source_accesses_and_graph(explorer):
    page, outside = explorer
    screenshot(page, "explorer-loaded")
    assert page.locator(".nfx-source .nfx-access").count() > 0  # state accesses are marked
    assert page.locator(".nfx-graph svg").count() == 1
    assert button(page, "Solve").is_enabled() and not button(page, "Simulate").is_enabled()
    # Everything the explorer itself needs came from the server (Voilà's template may still ask a
    # CDN for an icon font; BokehJS must not).
    assert not [url for url in outside if "bokeh" in url.lower()], outside


def test_selecting_a_path_highlights_its_lines(explorer):
    page, _ = explorer
    picker = page.locator(".nfx-source select")
    labels = picker.locator("option").all_inner_texts()
    writing = next(label for label in labels if "WRITE" in label)
    picker.select_option(label=writing)
    page.locator(".nfx-source .nfx-selected").first.wait_for()
    assert page.locator(".nfx-source .nfx-selected").count() >= 1
    emphasised = page.locator('.nfx-graph svg [stroke="#d62728"]')  # the engine's highlight colour
    emphasised.first.wait_for()
    screenshot(page, "explorer-path-selected")
    picker.select_option(label="all paths")
    page.locator(".nfx-source .nfx-selected").first.wait_for(state="detached")
    emphasised.first.wait_for(state="detached")


def test_solve_shows_the_solvers_keys(explorer):
    page, _ = explorer
    button(page, "Solve").click()
    wait_done(page, "Solving RSS keys")
    expected = pipeline.solve(FW, nic="e810", cores=16, seed=0).to_dict()
    shown = page.locator(".nfx-key").all_inner_texts()
    assert shown == [expected["devices"][dev]["key"] for dev in sorted(expected["devices"], key=int)]
    assert page.locator(".nfx-strategy").inner_text() == expected["strategy"] == "shared-nothing"
    assert page.locator(".nfx-counterexample").count() == 0
    screenshot(page, "explorer-solved")


def test_an_override_that_breaks_the_firewall_shows_a_counterexample(explorer):
    page, _ = explorer
    for name, per_device in BREAKING_OVERRIDE.items():
        for device, keep in per_device.items():
            for field in ("src_ip", "dst_ip", "src_port", "dst_port"):
                toggle = page.locator(f'button[title="{name}: device {device} {field}"]')
                if ("mod-active" in (toggle.get_attribute("class") or "")) != (field in keep):
                    toggle.click()
    button(page, "Solve").click()
    wait_done(page, "Solving RSS keys")
    box = page.locator(".nfx-counterexample")
    box.wait_for()
    assert "This sharding is wrong for flows" in box.inner_text()
    cores = box.locator("tr").last.locator("td").all_inner_texts()
    assert cores[0] == "core" and cores[1] != cores[2]
    screenshot(page, "explorer-counterexample")
    button(page, "Reset overrides").click()
    button(page, "Solve").click()
    wait_done(page, "Solving RSS keys")
    page.locator(".nfx-counterexample").wait_for(state="detached")


def test_generate_lists_the_files_written(explorer, tmp_path):
    page, _ = explorer
    out = tmp_path / "fw-project"
    page.get_by_placeholder("where to write the project").fill(str(out))
    button(page, "Generate").click()
    wait_done(page, "Generating into")
    page.locator(".nfx-files").wait_for()
    # Every file of the project; nfx's hidden marker (the folder is nfx's to overwrite) is not one.
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert written, "nothing was written"
    shown = [text.lstrip("\u2b07 ").strip() for text in page.locator(".nfx-download").all_inner_texts()]
    assert shown == written
    assert page.locator(".nfx-project .nfx-code").count() == 1
    screenshot(page, "explorer-generated")


def test_simulate_draws_the_load_chart(explorer):
    from PIL import Image

    page, _ = explorer
    button(page, "Simulate").click()
    wait_done(page, "Simulating")
    page.locator(".nfx-load-summary").wait_for()
    assert "16 cores" in page.locator(".nfx-load-summary").inner_text()
    chart = page.locator(".nfx-load canvas").first
    chart.wait_for()
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let BokehJS paint the patched data source
    image = Image.open(io.BytesIO(page.locator(".nfx-load").screenshot())).convert("RGB")
    bar = tuple(int(BEFORE_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    bar_pixels = sum(1 for x in range(image.width) for y in range(image.height) if image.getpixel((x, y)) == bar)
    assert bar_pixels > 2000, f"only {bar_pixels} pixels of the per-core bars"
    screenshot(page, "explorer-simulated")


def test_verify_runs_the_parallel_build_against_the_sequential_one(explorer):
    page, _ = explorer
    button(page, "Verify").click()
    wait_done(page, "Checking the parallel build")
    verdict = page.locator(".nfx-verdict")
    verdict.wait_for()
    assert "Equivalent" in verdict.inner_text(), verdict.inner_text()
    screenshot(page, "explorer-verified")


def test_explore_opens_the_nf_it_is_given(browser, tmp_path):
    nop = FW.parent / "nop.c"
    with nfx_explore(str(nop), tmp_path) as url:
        page, _ = local_page(browser)
        page.goto(url, timeout=PAGE_TIMEOUT_MS)
        page.locator(".nfx-status").get_by_text("Loaded nop.c").wait_for(timeout=PAGE_TIMEOUT_MS)
        assert page.locator(".nfx-picker input").first.input_value() == str(nop)
        page.close()
