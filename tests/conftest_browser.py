"""Helpers for tests that serve the explorer with Voilà and drive it in Debian's Chromium through
Playwright (never ``playwright install``: the browser is /usr/bin/chromium)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyter_env(home: Path) -> dict[str, str]:
    """An environment in which Jupyter neither reads nor writes the user's settings."""
    env = dict(os.environ, HOME=str(home), IPYTHONDIR=str(home / "ipython"), JUPYTER_PLATFORM_DIRS="1")
    for kind in ("CONFIG", "DATA", "RUNTIME"):
        env[f"JUPYTER_{kind}_DIR"] = str(home / kind.lower())
    return env


def wait_for_port(port: int, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc), sorted."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return sorted(out)


def alive(pids: Sequence[int]) -> list[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def wait_gone(pids: Sequence[int], seconds: float) -> list[int]:
    """Wait until none of ``pids`` runs; the ones still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def start_explore(nf: str, home: Path, port: int, extra: Sequence[str] = ()) -> subprocess.Popen:
    """``nfx explore NF --no-browser`` in its own session, output to ``home/voila.log``."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "voila.log", "w") as log:
        return subprocess.Popen([sys.executable, "-m", "explorer.cli", "explore", nf, "--no-browser",
                                 f"--port={port}", *extra], env=jupyter_env(home), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def nfx_explore(nf: str, home: Path, extra: Sequence[str] = ()) -> Iterator[str]:
    """Run ``nfx explore NF --no-browser`` on a free port; yield its URL; stop it at the end with
    SIGTERM, as CI would, and fail if Voilà or any kernel it started is still running then (they are
    killed first, so that no test leaves a process behind). Voilà's output is in ``home/voila.log``."""
    port = free_port()
    server = start_explore(nf, home, port, extra)
    started: list[int] = []
    try:
        try:
            wait_for_port(port, server, 60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{(home / 'voila.log').read_text()}") from None
        yield f"http://127.0.0.1:{port}/"
    finally:
        started = descendants(server.pid)  # Voilà and the kernels it runs now
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)  # its own session: only what it started
            server.wait(timeout=10)
        left = wait_gone(started, 15)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        if left:
            raise AssertionError(f"nfx explore left processes running after SIGTERM: {left}\n"
                                 f"{(home / 'voila.log').read_text()}")


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright (one per test module: Playwright's sync API allows one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def local_page(browser, width: int = 1400, height: int = 900) -> tuple[object, list[str]]:
    """A new page and the list of non-local URLs it tried to load (each one is refused: there is
    no network, and the explorer must not need one)."""
    outside: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page = browser.new_page(viewport={"width": width, "height": height})
    page.route("**/*", only_local)
    return page, outside


def screenshot(page, name: str) -> Path:
    """Save what the browser shows as tests/artifacts/<name>.png (gitignored), for a person to look
    at. The explorer fits the window (its panes scroll inside), so the shot is the viewport."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.wait_for_timeout(300)  # let the last widget messages paint
    page.screenshot(path=str(path))
    return path
