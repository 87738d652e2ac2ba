"""``nfx explore``: the NF and port checks, the Voilà command line, and real starts: it serves the
explorer page, stops Voilà and every kernel on SIGTERM and on Ctrl-C, and culls the kernels of pages
that were closed (the browser tests click through the page itself)."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from explorer.commands import explore
from explorer.errors import ConfigError

from conftest_browser import descendants, free_port, nfx_explore, start_explore, wait_for_port, wait_gone


def test_resolve_nf_defaults_to_the_firewall_and_checks_the_file(tmp_path, monkeypatch):
    assert explore.resolve_nf(None) == explore.DEFAULT_NF and explore.DEFAULT_NF.name == "fw.c"
    assert explore.DEFAULT_NF.is_file()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.c").write_text("")
    assert explore.resolve_nf("mine.c") == tmp_path / "mine.c"  # absolute: Voilà runs elsewhere
    with pytest.raises(ConfigError, match="nosuch.c: no such NF"):
        explore.resolve_nf("nosuch.c")
    # a folder or a picture started Voila on a page that could only fail to load; now it is refused here
    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a folder, not an NF source file$"):
        explore.resolve_nf(str(tmp_path))
    (tmp_path / "shot.png").write_bytes(b"\x89PNG")
    with pytest.raises(ConfigError, match=r"shot.png: an NF is a C source file named \.c \('shot.png' is not\)"):
        explore.resolve_nf("shot.png")


def test_voila_command():
    command = explore.voila_command(9999, no_browser=True, cull_idle=300)
    assert command[:3] == [sys.executable, "-m", "voila"]
    assert command[3] == str(explore.NOTEBOOK) and explore.NOTEBOOK.is_file()
    assert "--port=9999" in command and "--Voila.ip=127.0.0.1" in command and "--no-browser" in command
    assert "--template=nfx" in command
    assert (explore.TEMPLATES / "voila" / "templates" / "nfx" / "index.html.j2").is_file()
    assert "--MappingKernelManager.cull_idle_timeout=300" in command
    assert "--MappingKernelManager.cull_interval=60" in command
    assert "--MappingKernelManager.cull_connected=False" in command  # an open page keeps its kernel
    assert "--no-browser" not in explore.voila_command(9999, no_browser=False)
    with pytest.raises(ConfigError):
        explore.voila_command(70000, no_browser=True)
    with pytest.raises(ConfigError, match="--cull-idle 0"):
        explore.voila_command(9999, no_browser=True, cull_idle=0)


def test_voila_finds_the_template_first(monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", "/elsewhere")
    paths = explore.voila_environment(explore.DEFAULT_NF)["JUPYTER_PATH"].split(":")
    assert paths == [str(explore.TEMPLATES), "/elsewhere"]


def test_voila_takes_uploads_up_to_the_limit_the_page_states(monkeypatch, tmp_path):
    """An uploaded capture is one websocket message; Tornado's 10 MiB cap dropped a 12 MB pcap with
    the connection, and the page never said. Voilà started by nfx explore reads the raised cap from
    nf-explorer's voila.json (a user's own settings still come first), and the kernel is told it."""
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "/elsewhere")
    env = explore.voila_environment(explore.DEFAULT_NF)
    assert env["JUPYTER_CONFIG_PATH"].split(":") == [str(explore.CONFIG), "/elsewhere"]
    assert env[explore.UPLOAD_LIMIT_VARIABLE] == str(explore.UPLOAD_LIMIT) and explore.UPLOAD_LIMIT > 10 * 2**20
    probe = ("from voila.app import Voila; app = Voila(); app.load_config_file('voila', path=app.config_file_paths); "
             "print(app.tornado_settings['websocket_max_message_size'])")
    run = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout.strip()) == explore.UPLOAD_LIMIT


def test_cli_reports_a_missing_nf_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "explorer.cli", "explore", str(tmp_path / "no.c"), "--no-browser"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == f"nfx explore: error: {tmp_path / 'no.c'}: no such NF source file"


def fetch(url: str) -> bytes:
    """The page: Voilà sends the shell at once and streams the notebook as its kernel runs it."""
    with urllib.request.urlopen(url, timeout=120) as response:
        assert response.status == 200
        return response.read()


def test_explore_serves_the_page_offline_and_culls_the_kernel_of_a_closed_one(tmp_path):
    with nfx_explore(str(explore.DEFAULT_NF), tmp_path, extra=["--cull-idle=2"]) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        voila = next(pid for pid in descendants(_server_pid(port)) if _is_voila(pid))
        # The kernel is looked for while the page streams (it runs the notebook meanwhile): once the
        # page is read, an idle kernel may be culled within 2 s, before a loaded machine looks.
        kernels: set[int] = set()
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                kernels.update(descendants(voila))
                done.wait(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            page = fetch(url).decode()  # read, then gone: the visit's kernel has no connection left
        finally:
            done.set()
            watcher.join()
        kernels = sorted(kernels)
        assert kernels, "the visit started no kernel"
        assert wait_gone(kernels, 30) == [], "the idle kernel of a closed page is still running"
        assert voila in descendants(_server_pid(port))  # the server itself goes on
    assert "voila" in page.lower() and "ExplorerApp(" in page  # the notebook ran and shows the app
    # Nothing the page loads names another host (the browser tests watch the requests themselves).
    head = page.split("<body", 1)[0]
    assert "fontawesome" not in head and "mermaid" not in head
    for tag in ("<link", "<script"):
        for element in page.split(tag)[1:]:
            opening = element.split(">", 1)[0]
            assert "://" not in opening, f"{tag}{opening}>"


@pytest.mark.parametrize("how, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_voila_and_its_kernels(tmp_path, how, code):
    port = free_port()
    server = start_explore(str(explore.DEFAULT_NF), tmp_path, port)
    try:
        wait_for_port(port, server, 60)
        fetch(f"http://127.0.0.1:{port}/")  # a visit starts a kernel
        started = descendants(server.pid)
        assert len(started) >= 2, started  # Voilà and the visit's kernel
        server.send_signal(how)
        assert server.wait(timeout=60) == code
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert wait_gone(started, 15) == [], (tmp_path / "voila.log").read_text()
    log = (tmp_path / "voila.log").read_text()
    assert "Kernel shutdown" in log and "Traceback" not in log


def _is_voila(pid: int) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return b"voila" in handle.read()


def _server_pid(port: int) -> int:
    """The ``nfx explore`` process serving ``port`` (its command line names the port)."""
    for entry in sorted(p for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"explorer.cli" in argv and f"--port={port}".encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no nfx explore on port {port}")
