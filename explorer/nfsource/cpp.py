"""The preprocessor's side of reading an NF: the source files checked (regular, bounded, UTF-8),
``gcc -E`` run bounded, its output walked once (line markers unescaped, ``#define``/``#undef``
directives of ``-dD``/``-dU`` collected) and every file it read checked against the include rule."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from explorer.errors import ConfigError, CSyntaxError
from explorer.ir import Location
from explorer.nfsource.gcc import (ALLOWED_INCLUDES, Diagnostic, Limits, argv_path, first_error, plain_lines,
                                   run_gcc)

FRONTEND_INCLUDE = Path(__file__).resolve().parent.parent / "frontend" / "include"
RUNTIME_INCLUDE = Path(__file__).resolve().parent.parent / "runtime" / "include"
OUR_INCLUDES = (FRONTEND_INCLUDE, RUNTIME_INCLUDE)
MAX_SOURCE_BYTES = 8 << 20  # an NF file or one of its headers
ANALYSIS_FLAGS = ("-nostdinc", "-undef", "-DNF_ANALYSIS", "-I", str(FRONTEND_INCLUDE), "-I", str(RUNTIME_INCLUDE))
CPP_LIMITS = Limits(seconds=5.0, memory=1 << 28, output=64 << 20)  # an NF takes cc1 50 ms and 30 MiB


@dataclass(frozen=True)
class Macro:
    """One ``#define`` as gcc reports it."""

    name: str
    value: str  # the replacement text ("" for a bare #define)
    function_like: bool
    file: str  # where it was defined ("<command-line>" for -D)
    line: int


def _within(path: str, folders: Sequence[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(folder) for folder in folders)


def is_ours(file: str) -> bool:
    """Whether a file is one of the project's own headers."""
    return _within(file, OUR_INCLUDES)


def _location(file: str, data: bytes, offset: int) -> Location:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return Location(file, line, len(data[start:offset].decode("utf-8", "replace")) + 1)


def check_text_file(path: str) -> str:
    """The text of an NF source file: refused when it is not a regular file, is too large, or is not
    UTF-8 text (a NUL byte or an invalid byte is reported at its line and column)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such NF source file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path}: is a folder, not an NF source file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: is not a regular file (a device, FIFO or socket); an NF is a C file")
    if info.st_size > MAX_SOURCE_BYTES:
        raise ConfigError(f"{path}: {info.st_size} bytes is too large for an NF source file "
                          f"(at most {MAX_SOURCE_BYTES >> 20} MiB)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise CSyntaxError("a NUL byte: this is a binary file, not C source", location=_location(path, data, nul))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CSyntaxError(f"byte 0x{data[error.start]:02x} is not UTF-8 text; save the file as UTF-8",
                           location=_location(path, data, error.start)) from None


@dataclass(frozen=True)
class _Scan:
    """gcc -E -dD / -dU output, walked once."""

    text: str  # #define/#undef lines blanked
    defines: tuple[Macro, ...]  # in order
    final: tuple[Macro, ...]  # defined at the end, sorted by name
    undefs: tuple[tuple[str, str], ...]  # (name, file) of -dU's "#undef NAME", in order
    files: tuple[str, ...]  # named by line markers, first-seen order
    system: frozenset[str]  # those gcc marks as system headers
    includes: tuple[tuple[str, Location], ...]  # (file, the #include that entered it)
    spellings: tuple[tuple[str, str], ...]  # (spelled, file) where unescaping changed the name


def _marker(line: str) -> Optional[tuple[int, str, str, tuple[str, ...]]]:
    """A gcc line marker ``# 12 "file" 1 3``: (line, file as spelled, file unescaped, flags)."""
    if not line.startswith("# "):
        return None
    number, _, rest = line[2:].partition(" ")
    if not number.isdigit() or not rest.startswith('"'):
        return None
    chars, i = [], 1
    while i < len(rest) and rest[i] != '"':
        if rest[i] == "\\" and i + 1 < len(rest):
            i += 1
            chars.append("\n" if rest[i] == "n" else rest[i])
        else:
            chars.append(rest[i])
        i += 1
    if i >= len(rest):
        return None
    return int(number), rest[1:i], "".join(chars), tuple(rest[i + 1:].split())


def _directive(line: str) -> tuple[str, str, str, bool]:
    """Split a ``#define NAME value`` / ``#undef NAME`` line of gcc's -dD/-dU output."""
    keyword, _, rest = line[1:].partition(" ")
    end = 0
    while end < len(rest) and (rest[end].isalnum() or rest[end] == "_"):
        end += 1
    name = rest[:end]
    function_like = rest[end:end + 1] == "("
    value = rest[rest.find(")", end) + 1:].strip() if function_like else rest[end:].strip()
    return keyword, name, value, function_like


def _scan(output: str, gcc_path: str, path: str) -> _Scan:
    current, line_no = "", 0
    code: list[str] = []
    defines: list[Macro] = []
    final: dict[str, Macro] = {}
    undefs: list[tuple[str, str]] = []
    files: list[str] = []
    system: set[str] = set()
    includes: list[tuple[str, Location]] = []
    spellings: dict[str, str] = {}
    for raw in output.split("\n"):
        marker = _marker(raw)
        if marker is not None:
            number, spelled, name, flags = marker
            if name == gcc_path:
                name = path
            if spelled != name:
                spellings[spelled] = name
            if "1" in flags and current:  # entering a header: the #include is the includer's next line
                includes.append((name, Location(current, line_no + 1, 1)))
            current, line_no = name, number - 1
            if not name.startswith("<") and name not in files:
                files.append(name)
            if "3" in flags:
                system.add(name)
            code.append(raw)
            continue
        line_no += 1
        if raw.startswith("#define ") or raw.startswith("#undef "):
            keyword, macro, value, function_like = _directive(raw)
            if keyword == "define":
                defines.append(Macro(macro, value, function_like, current, line_no))
                final[macro] = defines[-1]
            else:
                undefs.append((macro, current))
                final.pop(macro, None)
            code.append("")  # keep line numbers aligned
            continue
        code.append(raw)
    return _Scan("\n".join(code), tuple(defines), tuple(final[n] for n in sorted(final)), tuple(undefs),
                 tuple(files), frozenset(system), tuple(includes), tuple(sorted(spellings.items())))


def _check_includes(scan: _Scan, path: str, *, system_headers: bool = False) -> None:
    """Every file read is a regular UTF-8 file under the NF's folder or ours (or, for a build
    against the real libc, a system header)."""
    folder = Path(os.path.realpath(os.path.dirname(os.path.abspath(path))))
    entered = dict(scan.includes)
    for file in scan.files:
        if file == path:
            continue
        where = entered.get(file)
        if is_ours(file) or (system_headers and file in scan.system):
            continue
        if not _within(file, (folder,)):
            real = os.path.realpath(file)
            shown = os.path.abspath(file) != real and (os.path.isfile(real) or os.path.isdir(real))
            leads = f" (it leads to {real})" if shown else ""  # not /proc/<pid>/fd/pipe:[...]
            raise CSyntaxError(f"#include of {file}{leads}, which is outside the NF's folder; an NF may include "
                               f"only {ALLOWED_INCLUDES}", location=where)
        try:
            regular = stat.S_ISREG(os.stat(file).st_mode)
        except OSError:
            regular = False
        if not regular:
            raise CSyntaxError(f"#include of {file}, which is not a regular file; an NF may include only "
                               f"{ALLOWED_INCLUDES}", location=where)
        check_text_file(file)


def preprocess(path: str, flags: Sequence[str], what: str, *, analysis: bool = True) -> _Scan:
    """``gcc -E`` of ``path`` with ``flags`` (e.g. ``-dD``), bounded, its reads checked.

    ``analysis``: against our minimal libc (``-nostdinc -undef -DNF_ANALYSIS``), else against the
    system's headers as the builds compile it. Raises CSyntaxError for a preprocessor error."""
    gcc_path = argv_path(path)
    base = ANALYSIS_FLAGS if analysis else ("-std=gnu11", "-I", str(RUNTIME_INCLUDE))
    work = Path(tempfile.mkdtemp(prefix="nfx-cpp-"))
    try:
        output = work / "out.i"
        status, stderr = run_gcc(["-E", *base, "-fdiagnostics-format=json", *flags, gcc_path, "-o", str(output)],
                                 what, CPP_LIMITS, watch=True, output=output)
        text = output.read_bytes().decode("utf-8", "surrogateescape") if output.exists() else ""
    finally:
        shutil.rmtree(work, ignore_errors=True)
    scan = _scan(text, gcc_path, path)
    if status != 0:
        diagnostic = first_error(stderr)
        if diagnostic is not None:
            if diagnostic.location is not None and diagnostic.location.file == gcc_path:
                diagnostic = Diagnostic(diagnostic.message, Location(path, diagnostic.location.line,
                                                                     diagnostic.location.col), diagnostic.more)
            _check_includes(scan, path, system_headers=not analysis)  # a refusal explains more
            sentence = f"preprocessor error: {diagnostic.message}"
            if diagnostic.message.endswith("No such file or directory"):
                sentence += f" (an NF may include only {ALLOWED_INCLUDES})"
            raise CSyntaxError(sentence, location=diagnostic.location)
        lines = plain_lines(stderr)
        raise CSyntaxError(f"{what}: the preprocessor failed: {lines[-1] if lines else f'exit status {status}'}")
    _check_includes(scan, path, system_headers=not analysis)
    return scan


def syntax_error(path: str, defines: Sequence[str]) -> Optional[Diagnostic]:
    """gcc's first error on the NF as the analysis sees it (``gcc -fsyntax-only``), with the NF's
    path as given; None when gcc finds none. Its words name a syntax error better than a parser
    generated from a grammar can."""
    gcc_path = argv_path(path)
    status, stderr = run_gcc(["-fsyntax-only", "-std=gnu11", *ANALYSIS_FLAGS, "-fdiagnostics-format=json", *defines,
                              gcc_path], f"checking {path}", CPP_LIMITS)
    diagnostic = first_error(stderr) if status != 0 else None
    if diagnostic is not None and diagnostic.location is not None and diagnostic.location.file == gcc_path:
        diagnostic = Diagnostic(diagnostic.message, Location(path, diagnostic.location.line, diagnostic.location.col),
                                diagnostic.more)
    return diagnostic
