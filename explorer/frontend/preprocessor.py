"""Run gcc's preprocessor on an NF with the project's own headers, and learn its macros.

The NF is preprocessed with ``gcc -E -nostdinc -undef -DNF_ANALYSIS`` against ``frontend/include``
(minimal libc stubs with real widths) and ``runtime/include`` (nf.h). We ask gcc itself for the
macro facts (``-dD`` keeps every ``#define`` in place with its line markers, ``-dU`` reports macros
tested while undefined) and for structured errors (``-fdiagnostics-format=json``), so nothing here
parses C source text by hand.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from explorer.errors import ConfigError, CSyntaxError
from explorer.ir import Location

FRONTEND_INCLUDE = Path(__file__).resolve().parent / "include"
RUNTIME_INCLUDE = Path(__file__).resolve().parent.parent / "runtime" / "include"

# Macros of the NF language itself that a user may override although nf.h defines them.
LANGUAGE_MACROS = ("NF_DEVICES",)


@dataclass(frozen=True)
class MacroDefinition:
    name: str
    value: str  # the replacement text ("" for a bare #define)
    function_like: bool
    file: str  # where it was defined ("<command-line>" for -D)
    line: int


@dataclass(frozen=True)
class Preprocessed:
    """The preprocessed text (``#define`` lines removed, line markers kept) and the macro facts."""

    text: str
    final: tuple[MacroDefinition, ...]  # macros defined at the end of the NF, sorted by name
    nf_defined: tuple[str, ...]  # names the NF file itself #defines (in an active branch)
    files: tuple[str, ...]  # files named by line markers (the NF and its headers), in first-seen order


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ConfigError("gcc is needed to preprocess NFs but was not found on PATH")
    return gcc


def _base_command(path: str, defines: dict[str, str]) -> list[str]:
    cmd = [_gcc(), "-E", "-nostdinc", "-undef", "-DNF_ANALYSIS", "-fdiagnostics-format=json",
           "-I", str(FRONTEND_INCLUDE), "-I", str(RUNTIME_INCLUDE)]
    for name, value in sorted(defines.items()):
        cmd.append(f"-D{name}={value}")
    cmd.append(path)
    return cmd


def _run(cmd: list[str], path: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"could not run the preprocessor on {path}: {exc}") from None
    if proc.returncode != 0:
        raise _cpp_error(proc.stderr, path)
    return proc.stdout


def _cpp_error(stderr: str, path: str) -> CSyntaxError:
    """Turn gcc's JSON diagnostics into one CSyntaxError at the first error's location."""
    start = stderr.find("[")
    diagnostics = []
    if start >= 0:
        try:
            diagnostics, _ = json.JSONDecoder().raw_decode(stderr[start:])
        except ValueError:
            diagnostics = []
    for diag in diagnostics:
        if "error" not in diag.get("kind", ""):
            continue
        message = diag.get("message", "preprocessing failed")
        location = None
        for loc in diag.get("locations", []):
            caret = loc.get("caret", {})
            if "file" in caret:
                location = Location(caret["file"], int(caret.get("line", 0)), int(caret.get("column", 0)))
                break
        sentence = f"preprocessor error: {message}"
        if message.endswith("No such file or directory"):
            sentence += (" (an NF may include only nf.h, <stdint.h>, <stdbool.h>, <stddef.h>, <string.h>"
                         " and its own headers)")
        return CSyntaxError(sentence, location=location)
    first = stderr.strip().splitlines()[0] if stderr.strip() else "unknown error"
    return CSyntaxError(f"preprocessor error in {path}: {first}")


def _marker_file(line: str) -> Optional[str]:
    """The file of a gcc line marker ``# 12 "file" 2``, or None when the line is not a marker."""
    if not line.startswith("# "):
        return None
    parts = line.split(" ", 2)
    if len(parts) < 3 or not parts[1].isdigit():
        return None
    rest = parts[2]
    if not rest.startswith('"'):
        return None
    end = rest.rfind('"')
    return rest[1:end] if end > 0 else None


def _directive(line: str) -> tuple[str, str, str, bool]:
    """Split a ``#define NAME value`` / ``#undef NAME`` line from gcc's -dD/-dU output."""
    keyword, _, rest = line[1:].partition(" ")
    name_end = 0
    while name_end < len(rest) and (rest[name_end].isalnum() or rest[name_end] == "_"):
        name_end += 1
    name = rest[:name_end]
    function_like = rest[name_end:name_end + 1] == "("
    if function_like:
        close = rest.find(")", name_end)
        value = rest[close + 1:].strip()
    else:
        value = rest[name_end:].strip()
    return keyword, name, value, function_like


def preprocess(path: str, defines: dict[str, str]) -> Preprocessed:
    """Preprocess ``path`` with the user's ``defines`` (validated by the caller)."""
    out = _run(_base_command(path, defines)[:-1] + ["-dD", path], path)
    current = ""
    final: dict[str, MacroDefinition] = {}
    nf_defined: list[str] = []
    files: list[str] = []
    code: list[str] = []
    line_no = 0
    for line in out.split("\n"):
        marker = _marker_file(line)
        if marker is not None:
            current = marker
            line_no = int(line.split(" ", 2)[1]) - 1
            if not marker.startswith("<") and marker not in files:
                files.append(marker)
            code.append(line)
            continue
        line_no += 1
        if line.startswith("#define ") or line.startswith("#undef "):
            keyword, name, value, function_like = _directive(line)
            if keyword == "define":
                final[name] = MacroDefinition(name, value, function_like, current, line_no)
                if current == path and name not in nf_defined:
                    nf_defined.append(name)
            else:
                final.pop(name, None)
            code.append("")  # keep line numbers aligned for pycparser
            continue
        code.append(line)
    return Preprocessed("\n".join(code), tuple(final[k] for k in sorted(final)), tuple(sorted(nf_defined)),
                        tuple(files))


def tested_macros(path: str) -> tuple[str, ...]:
    """Macros the NF file tests with #ifdef / #ifndef / defined() while they are undefined."""
    out = _run(_base_command(path, {})[:-1] + ["-dU", path], path)
    current = ""
    tested: set[str] = set()
    for line in out.split("\n"):
        marker = _marker_file(line)
        if marker is not None:
            current = marker
        elif line.startswith("#undef ") and current == path:
            tested.add(_directive(line)[1])
    return tuple(sorted(tested))
