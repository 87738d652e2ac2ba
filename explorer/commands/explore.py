"""``nfx explore``: serve the explorer notebook with Voilà on one NF.

The NF reaches the notebook through the ``NFX_NF`` environment variable (an absolute path). This
module only starts a process: the engine never imports the Jupyter stack itself.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from explorer.errors import ConfigError

NF_VARIABLE = "NFX_NF"
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "explore.ipynb"
DEFAULT_NF = REPO_ROOT / "sample_nfs" / "fw.c"


def resolve_nf(nf: Optional[str]) -> Path:
    """The NF to open, made absolute (Voilà runs the notebook in its own folder)."""
    path = Path(nf).expanduser().resolve() if nf else DEFAULT_NF
    if not path.is_file():
        raise ConfigError(f"{nf or path}: no such NF source file")
    return path


def voila_command(port: int, no_browser: bool, notebook: Path = NOTEBOOK) -> list[str]:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: not a TCP port")
    command = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1"]
    if no_browser:
        command.append("--no-browser")
    return command


def main(args) -> int:
    nf = resolve_nf(args.nf)
    if importlib.util.find_spec("voila") is None:
        raise ConfigError("Voilà is not installed: pip install -e '.[widgets]'")
    if not NOTEBOOK.is_file():
        raise ConfigError(f"{NOTEBOOK}: the explorer notebook is missing")
    env = dict(os.environ, **{NF_VARIABLE: str(nf)})
    print(f"nfx explore: {nf} on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    server = subprocess.Popen(voila_command(args.port, args.no_browser), env=env)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # Voilà shuts its kernels down on SIGTERM; only if it hangs is it killed.
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        raise
