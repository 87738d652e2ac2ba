"""The explorer on the NAT in a real browser: sharding by allocation explained once it is solved,
one server's traffic balanced over 16 cores, and the remote-endpoint override (set with the sharding
table's toggles) putting it on a hot core. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest_browser import nfx_explore, screenshot
from test_browser import bar_pixels, button, open_page, set_number, set_toggles, tab, wait_status
from widgets.load_view import BEFORE_COLOUR

pytestmark = pytest.mark.browser

NAT = Path(__file__).resolve().parent.parent / "sample_nfs" / "nat.c"
ENDPOINT = {"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}}
BROKEN = {"internal": {0: ("src_ip",), 1: ("src_ip",)}}  # device 1 no longer hashes the port


@pytest.fixture(scope="module")
def nat_page(browser, tmp_path_factory):
    home = tmp_path_factory.mktemp("voila-home")
    with nfx_explore(str(NAT), home) as url:
        page, outside = open_page(browser, url)
        yield page
        page.close()
        assert outside == [], f"the page asked other hosts for {outside}"


@pytest.fixture(scope="module")
def browser():
    from conftest_browser import chromium

    with chromium() as running:
        yield running


def imbalance(page) -> float:
    text = page.locator(".nfx-load-summary").inner_text()
    return float(re.search(r"imbalance ([0-9.]+)", text).group(1))


def simulate_one_server(page) -> None:
    tab(page, "Simulate")
    panel = page.locator(".nfx-simulator")
    panel.get_by_label("Traffic").select_option("prefix")
    set_number(page, panel.get_by_label("Packets"), 40_000)
    set_number(page, panel.get_by_label("Flows"), 8_000)
    page.get_by_placeholder("e.g. 172.16.0.10/32").fill("172.16.0.10/32")
    button(page, "Simulate").click()
    wait_status(page, ".nfx-simulator", "Simulating 40,000 prefix packets")
    page.locator(".nfx-load-summary").nth(0).wait_for()
    assert bar_pixels(page, BEFORE_COLOUR) > 500


def test_the_solution_explains_sharding_by_allocation(nat_page):
    page = nat_page
    tab(page, "Sharding and RSS")
    box = page.locator(".nfx-allocation")
    box.wait_for()
    text = box.inner_text()
    assert "Sharded by allocation" in text and "dst_port = 1024 + i" in text and "1,024 indices" in text
    box.scroll_into_view_if_needed()
    screenshot(page, "nat-1-allocation")


def test_one_server_is_spread_over_every_core(nat_page):
    page = nat_page
    simulate_one_server(page)
    assert imbalance(page) <= 1.25
    pools = page.locator(".nfx-pools").inner_text()
    assert "0 reached another core" in pools and "replies addressed" in pools
    screenshot(page, "nat-2-one-server-allocation")


def test_the_remote_endpoint_override_puts_it_on_a_hot_core(nat_page):
    page = nat_page
    tab(page, "Sharding and RSS")
    set_toggles(page, ENDPOINT)
    page.locator(".nfx-allocation").wait_for(state="detached")
    simulate_one_server(page)
    assert imbalance(page) >= 6
    own = page.locator(".nfx-pools").inner_text()  # each core's own ports, brought back by the endpoint
    assert "not sharded by allocation" in own and "0 reached another core" in own
    screenshot(page, "nat-3-one-server-endpoint")


def test_a_plan_that_splits_the_flows_shows_the_replies_it_sends_elsewhere(nat_page):
    """internal on src_ip on both devices: the solver says it is wrong, and the simulation shows the
    WAN replies that reach a core whose external lacks their flow (it said "No sharding violations"
    in green: external's key holds the allocated port, which it did not check)."""
    page = nat_page
    tab(page, "Sharding and RSS")
    button(page, "Reset overrides").click()
    wait_status(page, ".nfx-solve-status", "correct")
    set_toggles(page, BROKEN)
    page.locator(".nfx-counterexample").wait_for()
    tab(page, "Simulate")
    panel = page.locator(".nfx-simulator")
    panel.get_by_label("Traffic").select_option("bidir")
    set_number(page, panel.get_by_label("Packets"), 20_000)
    set_number(page, panel.get_by_label("Flows"), 2_000)
    button(page, "Simulate").click()
    wait_status(page, ".nfx-simulator", "Simulating 20,000 bidir packets")
    findings = page.locator(".nfx-violations").first
    assert "No sharding violations" not in findings.inner_text()
    assert "flows whose replies reached another core" in findings.inner_text()
    findings.scroll_into_view_if_needed()
    screenshot(page, "nat-4-broken-plan-violations")
    own = page.locator(".nfx-pools").inner_text()
    assert "not sharded by allocation" in own and "flows split" in own
    assert int(re.search(r"([0-9,]+) reached another core", own).group(1).replace(",", "")) > 1000
    page.locator(".nfx-pools").scroll_into_view_if_needed()
    screenshot(page, "nat-4-broken-plan-replies")
