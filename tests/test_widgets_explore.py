"""``nfx explore``: the NF and port checks, the Voilà command line, and a real start that serves the
explorer page (the browser test clicks through it)."""
from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from explorer.commands import explore
from explorer.errors import ConfigError

from conftest_browser import nfx_explore


def test_resolve_nf_defaults_to_the_firewall_and_checks_the_file(tmp_path, monkeypatch):
    assert explore.resolve_nf(None) == explore.DEFAULT_NF and explore.DEFAULT_NF.name == "fw.c"
    assert explore.DEFAULT_NF.is_file()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.c").write_text("")
    assert explore.resolve_nf("mine.c") == tmp_path / "mine.c"  # absolute: Voilà runs elsewhere
    with pytest.raises(ConfigError, match="nosuch.c: no such NF"):
        explore.resolve_nf("nosuch.c")


def test_voila_command():
    command = explore.voila_command(9999, no_browser=True)
    assert command[:3] == [sys.executable, "-m", "voila"]
    assert command[3] == str(explore.NOTEBOOK) and explore.NOTEBOOK.is_file()
    assert "--port=9999" in command and "--Voila.ip=127.0.0.1" in command and "--no-browser" in command
    assert "--no-browser" not in explore.voila_command(9999, no_browser=False)
    with pytest.raises(ConfigError):
        explore.voila_command(70000, no_browser=True)


def test_cli_reports_a_missing_nf_without_a_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "explorer.cli", "explore", str(tmp_path / "no.c"), "--no-browser"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert run.stderr.strip() == f"nfx explore: error: {tmp_path / 'no.c'}: no such NF source file"


def test_explore_serves_the_notebook(tmp_path):
    with nfx_explore(str(explore.DEFAULT_NF), tmp_path) as url:
        # Voilà sends the page shell at once and streams the executed notebook after it.
        with urllib.request.urlopen(url, timeout=120) as response:
            assert response.status == 200
            assert b"voila" in response.read().lower()
