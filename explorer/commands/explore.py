"""``nfx explore``: serve the explorer notebook with Voilà on one NF.

The NF reaches the notebook through the ``NFX_NF`` environment variable (an absolute path). This
module only starts a process: the engine never imports the Jupyter stack itself.

Voilà runs in its own session, so a Ctrl-C in the terminal reaches nfx alone (Jupyter servers
answer SIGINT with a confirmation prompt); on Ctrl-C or SIGTERM nfx sends Voilà SIGTERM, on which
it shuts its kernels down, and kills its session if it hangs. Should nfx die without a word, the
kernel asks Voilà to stop too (``PR_SET_PDEATHSIG``). Kernels of closed pages are culled once idle.
The page uses nf-explorer's Voilà template (``widgets/jupyter``), which loads nothing from other hosts.

A capture uploaded in the page reaches the kernel as one websocket message, which Tornado caps at
10 MiB by default and answers by dropping the connection: the upload vanished without a word.
``widgets/jupyter/config/voila.json`` raises the cap to ``UPLOAD_LIMIT``, and the kernel learns it
from ``NFX_UPLOAD_LIMIT`` to tell the user (a notebook opened by hand keeps Tornado's cap).
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from explorer.errors import ConfigError
from explorer.nfsource import check_nf_file

NF_VARIABLE = "NFX_NF"
REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "explore.ipynb"
TEMPLATES = REPO_ROOT / "widgets" / "jupyter"  # holds voila/templates/nfx
CONFIG = TEMPLATES / "config"  # voila.json: Voilà's websocket message cap, UPLOAD_LIMIT
UPLOAD_LIMIT = 256 * 1024 * 1024  # bytes of one uploaded capture (as voila.json says)
UPLOAD_LIMIT_VARIABLE = "NFX_UPLOAD_LIMIT"
TEMPLATE = "nfx"
DEFAULT_NF = REPO_ROOT / "sample_nfs" / "fw.c"
CULL_IDLE_S = 600  # a kernel whose page was closed is shut down after this long idle
SHUTDOWN_S = 20  # Voilà's time to shut its kernels down before its session is killed
_PR_SET_PDEATHSIG = 1


def resolve_nf(nf: Optional[str]) -> Path:
    """The NF to open, made absolute (Voilà runs the notebook in its own folder)."""
    path = Path(nf).expanduser().resolve() if nf else DEFAULT_NF
    if not path.exists():
        raise ConfigError(f"{nf or path}: no such NF source file")
    check_nf_file(str(path))  # a folder, an image, a device: said here, not after Voila has started
    return path


def voila_command(port: int, no_browser: bool, notebook: Path = NOTEBOOK, cull_idle: int = CULL_IDLE_S) -> list[str]:
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port}: not a TCP port")
    if cull_idle < 1:
        raise ConfigError(f"--cull-idle {cull_idle}: must be at least 1 second")
    command = [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--Voila.ip=127.0.0.1",
               f"--template={TEMPLATE}",
               # Only kernels without a page (closed tabs) are culled; an open page keeps its kernel.
               f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
               f"--MappingKernelManager.cull_interval={max(1, min(60, cull_idle // 2))}",
               "--MappingKernelManager.cull_connected=False"]
    if no_browser:
        command.append("--no-browser")
    return command


def voila_environment(nf: Path) -> dict[str, str]:
    """nfx's environment, plus the NF for the notebook, the folder of nf-explorer's template, that of
    its Voilà settings (after the user's own, which come first) and the upload cap they set."""
    paths = [str(TEMPLATES)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    configs = [str(CONFIG)] + [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    return dict(os.environ, **{NF_VARIABLE: str(nf), "JUPYTER_PATH": os.pathsep.join(paths),
                               "JUPYTER_CONFIG_PATH": os.pathsep.join(configs),
                               UPLOAD_LIMIT_VARIABLE: str(UPLOAD_LIMIT)})


def _stop_with_parent() -> None:
    """In the child: receive SIGTERM when nfx dies, however it dies (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop(server: subprocess.Popen, timeout: float = SHUTDOWN_S) -> int:
    """SIGTERM Voilà (it shuts its kernels down), then kill its whole session if it hangs."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    return server.returncode


def main(args) -> int:
    nf = resolve_nf(args.nf)
    if importlib.util.find_spec("voila") is None:
        raise ConfigError("Voilà is not installed: pip install -e '.[widgets]'")
    if not NOTEBOOK.is_file():
        raise ConfigError(f"{NOTEBOOK}: the explorer notebook is missing")
    command = voila_command(args.port, args.no_browser, cull_idle=getattr(args, "cull_idle", CULL_IDLE_S))
    print(f"nfx explore: {nf} on http://127.0.0.1:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    server = subprocess.Popen(command, env=voila_environment(nf), start_new_session=True,
                              preexec_fn=_stop_with_parent)
    try:
        return server.wait()
    finally:  # Ctrl-C, SIGTERM (Terminated) or an error: never leave Voilà or its kernels behind
        stop(server)
