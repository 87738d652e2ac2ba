"""The explorer on the NAT in a real browser: sharding by allocation explained after Solve, one
server's traffic balanced over 16 cores, and the remote-endpoint override (set with the sharding
table's toggles) putting it on a hot core. Screenshots land in tests/artifacts/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest_browser import chromium, local_page, nfx_explore, screenshot
from test_browser import ACTION_TIMEOUT_MS, PAGE_TIMEOUT_MS, button, wait_done

pytestmark = pytest.mark.browser

NAT = Path(__file__).resolve().parent.parent / "sample_nfs" / "nat.c"
ENDPOINT = {"external": {0: ("dst_ip", "dst_port"), 1: ("src_ip", "src_port")}}


@pytest.fixture(scope="module")
def nat_page(tmp_path_factory):
    home = tmp_path_factory.mktemp("voila-home")
    with chromium() as browser, nfx_explore(str(NAT), home) as url:
        page, _ = local_page(browser, height=1000)
        page.set_default_timeout(ACTION_TIMEOUT_MS)
        page.goto(url, timeout=PAGE_TIMEOUT_MS)
        page.locator(".nfx-status").get_by_text("Loaded nat.c").wait_for(timeout=PAGE_TIMEOUT_MS)
        yield page
        page.close()


def imbalance(page) -> float:
    text = page.locator(".nfx-load-summary").inner_text()
    return float(re.search(r"imbalance ([0-9.]+)", text).group(1))


def simulate_one_server(page) -> None:
    page.locator(".nfx-simulator select").first.select_option("prefix")
    page.get_by_placeholder("e.g. 172.16.0.10/32").fill("172.16.0.10/32")
    button(page, "Simulate").click()
    wait_done(page, "Simulating")
    page.locator(".nfx-load-summary").wait_for()
    page.locator(".nfx-load canvas").first.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let BokehJS paint the patched data source


def test_solve_explains_sharding_by_allocation(nat_page):
    page = nat_page
    button(page, "Solve").click()
    wait_done(page, "Solving RSS keys")
    box = page.locator(".nfx-allocation")
    box.wait_for()
    text = box.inner_text()
    assert "Sharded by allocation" in text and "dst_port = 1024 + i" in text and "1,024 indices" in text
    page.get_by_text("per-core pools: core c allocates").wait_for()  # the sharding table's reason for chain
    screenshot(page, "explorer-nat-allocation")


def test_one_server_is_spread_over_every_core(nat_page):
    page = nat_page
    simulate_one_server(page)
    assert imbalance(page) <= 1.25
    pools = page.locator(".nfx-pools").inner_text()
    assert "0 reached another core" in pools and "replies addressed" in pools
    assert "No sharding violations" in page.locator(".nfx-violations").inner_text()
    screenshot(page, "explorer-nat-one-server-allocation")


def test_the_remote_endpoint_override_puts_it_on_a_hot_core(nat_page):
    page = nat_page
    for name, per_device in ENDPOINT.items():
        for device, keep in per_device.items():
            for field in ("src_ip", "dst_ip", "src_port", "dst_port"):
                toggle = page.locator(f'button[title="{name}: device {device} {field}"]')
                if ("mod-active" in (toggle.get_attribute("class") or "")) != (field in keep):
                    toggle.click()
    button(page, "Solve").click()
    wait_done(page, "Solving RSS keys")
    page.locator(".nfx-allocation").wait_for(state="detached")
    simulate_one_server(page)
    assert imbalance(page) >= 6
    assert page.locator(".nfx-pools").count() == 0 or page.locator(".nfx-pools").inner_text() == ""
    screenshot(page, "explorer-nat-one-server-endpoint")
