"""gcc, run bounded: limits set with ``setrlimit`` in the child (time, address space, output
size), a watch that refuses a device or FIFO being read, paths that never read as options, and
gcc's JSON diagnostics as (message, location)."""
from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from explorer.errors import ConfigError
from explorer.ir import Location
from explorer.processes import die_with_parent, run_child

ALLOWED_INCLUDES = ("nf.h, <stdint.h>, <stdbool.h>, <stddef.h>, <string.h> and regular files in its own "
                    "folder")


def argv_path(path: str | os.PathLike) -> str:
    """``path`` spelled so that no program can take it for an option (``-x.c`` -> ``./-x.c``)."""
    text = os.fspath(path)
    return f"./{text}" if text.startswith("-") else text


@dataclass(frozen=True)
class Limits:
    """Resource limits of a gcc run: wall-clock seconds, address space and output file size (bytes)."""

    seconds: float
    memory: int
    output: int

    def apply(self) -> None:
        """In the child, before exec: the kernel enforces these on gcc and on cc1."""
        cpu = int(self.seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (self.memory, self.memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.output, self.output))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        die_with_parent()


# ---- diagnostics --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Diagnostic:
    """The first error of a gcc run, where it is, and how many more there were."""

    message: str
    location: Optional[Location]
    more: int

    def sentence(self) -> str:
        if not self.more:
            return self.message
        return f"{self.message} (and {self.more} more error{'s' if self.more > 1 else ''})"


def _diagnostics(stderr: str, kind: str) -> list[dict]:
    """gcc's ``-fdiagnostics-format=json`` diagnostics of ``kind`` ("error", "warning"), in order."""
    found = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        try:
            diagnostics = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(diagnostics, list):
            found.extend(d for d in diagnostics if isinstance(d, dict) and kind in str(d.get("kind", "")))
    return found


def _message(diagnostic: dict, default: str) -> str:
    message = str(diagnostic.get("message", default))
    return message + (f" [{diagnostic['option']}]" if diagnostic.get("option") else "")


def _location(diagnostic: dict) -> Optional[Location]:
    for place in diagnostic.get("locations", []):
        caret = place.get("caret", {})
        if "file" in caret:
            return Location(str(caret["file"]), int(caret.get("line", 0)), int(caret.get("column", 0)))
    return None


def first_error(stderr: str) -> Optional[Diagnostic]:
    """The first error in gcc's ``-fdiagnostics-format=json`` output (None when there is none)."""
    errors = _diagnostics(stderr, "error")
    if not errors:
        return None
    return Diagnostic(_message(errors[0], "error"), _location(errors[0]), len(errors) - 1)


def warning_lines(stderr: str, spelled: Optional[dict[str, str]] = None) -> list[str]:
    """gcc's warnings as ``file:line:col: message [-Wname]`` (``spelled`` maps a path as gcc was
    given it back to the user's)."""
    lines = []
    for warning in _diagnostics(stderr, "warning"):
        place = _location(warning)
        where = f"{(spelled or {}).get(place.file, place.file)}:{place.line}:{place.col}: " if place else ""
        lines.append(where + _message(warning, "warning"))
    return lines


def plain_lines(stderr: str) -> list[str]:
    """gcc's messages that are not JSON (the driver's own, the linker's)."""
    return [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("[")]


# ---- running gcc, bounded -----------------------------------------------------------------------------

class _Refused(Exception):
    """Raised by the watch: gcc is reading something that is not a regular file."""


def gcc_env() -> dict[str, str]:
    """gcc's messages in plain ASCII and English, whatever the user's locale."""
    return {**os.environ, "LC_ALL": "C"}


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    todo.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return found


def _watch_reads(pid: int) -> None:
    """Refuse a device, FIFO or socket that gcc (or cc1) has open or is waiting to open."""
    for process in _descendants(pid):
        try:
            with open(f"/proc/{process}/wchan") as handle:
                if handle.read().strip() in ("wait_for_partner", "fifo_open"):
                    raise _Refused("a FIFO (named pipe)")
            fds = os.listdir(f"/proc/{process}/fd")
        except OSError:
            continue
        for fd in fds:
            if int(fd) <= 2:  # our pipes and /dev/null
                continue
            try:
                mode = os.stat(f"/proc/{process}/fd/{fd}").st_mode
                target = os.readlink(f"/proc/{process}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(("pipe:", "socket:", "anon_inode:")) or target == os.devnull:  # gcc's plumbing
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _Refused(target)


def run_gcc(argv: Sequence[str], what: str, limits: Limits, *, watch: bool = False,
            output: Optional[Path] = None) -> tuple[int, str]:
    """Run gcc (``argv`` without the program name) under ``limits``; (exit status, stderr).

    A limit that was hit is an NfxError saying which one; so is a device or FIFO being read
    (``watch``). ``output`` is the file gcc writes (``-o``), for the output-size limit."""
    try:
        done = run_child(["gcc", *argv], timeout=limits.seconds, env=gcc_env(), preexec_fn=limits.apply,
                         watch=_watch_reads if watch else None)
    except FileNotFoundError:
        raise ConfigError("gcc is needed but was not found on PATH") from None
    except _Refused as refused:
        raise ConfigError(f"{what}: stopped reading {refused}: an NF may include only {ALLOWED_INCLUDES}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what}: stopped after {limits.seconds:g} s (the time limit); a macro that "
                          f"expands without end, or an #include of something that never ends?") from None
    stderr = done.stderr
    if done.returncode != 0:
        if output is not None and output.exists() and output.stat().st_size >= limits.output:
            raise ConfigError(f"{what}: stopped at {limits.output >> 20} MiB of output (the output limit); "
                              f"a macro that expands exponentially?")
        if "out of memory" in stderr or "Cannot allocate memory" in stderr or "virtual memory exhausted" in stderr:
            raise ConfigError(f"{what}: stopped at {limits.memory >> 20} MiB of memory (the memory limit); "
                              f"a macro that expands exponentially, or an #include of a device such as "
                              f"/dev/zero?")
        if "CPU time limit exceeded" in stderr:
            raise ConfigError(f"{what}: stopped after {limits.seconds:g} s of CPU time (the time limit); "
                              f"a macro that expands without end?")
    return done.returncode, stderr
