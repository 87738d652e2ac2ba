"""Reading an NF: the one place that turns a path and ``--define``s into what every stage uses.

``read_nf(path, defines) -> NfSource``: the file (a regular file of UTF-8 text), the checked
``--define``s, the NF preprocessed with the project's own headers, the table of macros, NF_DEVICES
and gcc's diagnostics as our errors. The analysis (``explorer.frontend.parse_nf``), the builds
(``explorer.build``) and code generation all start here, so ``analyze``, ``run`` and ``generate``
accept and refuse the same NFs, paths and defines with the same words.

The rules, once:

* **Paths are data.** A path is handed to gcc so that it can never read as an option (``./-x.c``),
  and the file names in gcc's line markers are unescaped (``"``, ``\\``, newline), so an odd name
  keeps its macros and locations.
* **Includes.** The NF is preprocessed with ``gcc -E -nostdinc -undef -DNF_ANALYSIS`` against
  ``frontend/include`` (a minimal libc with real widths) and ``runtime/include`` (nf.h). Every file
  it reads must be a regular file under the NF's own folder or under those two folders; ``<stdio.h>``,
  ``"/dev/zero"``, ``"/dev/stdin"`` or ``"../../etc/passwd"`` are refused with the file named.
* **Bounded.** gcc runs with a time limit, an address-space limit and an output-size limit, set
  with ``setrlimit`` in the child; a macro bomb stops within seconds and the error says which limit
  it hit. While it runs, a watch refuses a device or FIFO being read.
* **Encoding.** The NF and its own headers are UTF-8 text; a NUL byte or a Latin-1 byte is an error
  at file:line:col.
* **Defines.** A name is a C identifier the NF tests (``#ifdef``, ``#ifndef NAME`` around its
  default) or a knob of nf.h (NF_DEVICES); a name the NF defines unconditionally is refused where
  it is defined, unless the value is the one it has there (so an analysis's configuration can be
  given back as --defines). A value is one C integer expression (macros and macro calls allowed): no
  floating-point, string or empty value.
* **NF_DEVICES** is an integer constant expression from 1 to ``MAX_DEVICES``, evaluated by one
  evaluator (through the macro table, so ``(PORTS + 1)`` works).

We ask gcc for the macro facts rather than reading C ourselves: ``-dD`` keeps every ``#define``
in place between line markers, ``-dU`` reports macros tested while undefined, and
``-fdiagnostics-format=json`` gives errors with their locations.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

from explorer.errors import ConfigError
from explorer.ir import Location
from explorer.nfsource.cpp import (FRONTEND_INCLUDE, RUNTIME_INCLUDE, Macro, check_text_file, is_ours,
                                   preprocess)
from explorer.nfsource.expressions import MAX_DEVICES, check_defines, nf_devices
from explorer.nfsource.gcc import Limits, argv_path, first_error, gcc_env, plain_lines, warning_lines

__all__ = ["FRONTEND_INCLUDE", "LANGUAGE_MACROS", "Limits", "MAX_DEVICES", "Macro", "NfSource", "RUNTIME_INCLUDE",
           "argv_path", "check_defines", "configurable_macros", "first_error", "gcc_env", "plain_lines", "preprocess",
           "read_nf", "warning_lines"]

# Macros of the NF language itself that a user may override although nf.h defines them.
LANGUAGE_MACROS = ("NF_DEVICES",)
_COMMAND_LINE = "<command-line>"


@dataclass(frozen=True)
class NfSource:
    """An NF read under a set of --defines: what every stage starts from."""

    path: str  # as given (locations use it)
    defines: tuple[tuple[str, str], ...]  # the accepted --defines, sorted
    text: str  # preprocessed for the analysis: #define lines blanked, gcc's line markers kept
    macros: tuple[Macro, ...]  # defined at the end of the NF, sorted by name
    own: tuple[str, ...]  # the names the NF file itself #defines (in an active branch), sorted
    files: tuple[str, ...]  # the NF and every header it read, in first-seen order
    devices: int  # NF_DEVICES
    spellings: tuple[tuple[str, str], ...] = ()  # (name as a line marker spells it, file) where they differ

    @property
    def configuration(self) -> tuple[tuple[str, str], ...]:
        """The configuration macros (object-like) with their effective values, sorted: those the NF
        file defines, the --defines and nf.h's knobs."""
        names = set(self.own) | {n for n, _ in self.defines} | set(LANGUAGE_MACROS)
        return tuple((m.name, m.value) for m in self.macros if m.name in names and not m.function_like)

    @property
    def gcc_defines(self) -> tuple[str, ...]:
        return tuple(f"-D{name}={value}" for name, value in self.defines)


def _reserved(name: str) -> bool:
    return name.startswith("__") or (name.startswith("_") and name[1:2].isupper())


def _own(file: str) -> bool:
    return not file.startswith("<") and not is_ours(file)


def configurable_macros(path: str | os.PathLike) -> dict[str, Optional[Location]]:
    """The macros a --define may set, sorted by name, each with where the NF defines its default
    (None when the NF only tests it, or for nf.h's knobs).

    A macro is configurable when the NF or one of its own headers tests it while it is undefined
    (``#ifdef``, ``#ifndef NAME`` around its default) and does not define it unconditionally, or
    when it is a knob of nf.h (NF_DEVICES) the NF leaves alone."""
    path = os.fspath(path)
    check_nf_file(path)
    what = f"preprocessing {path}"
    defined = preprocess(path, ["-dD"], what).defines
    tested = {name for name, file in preprocess(path, ["-dU"], what).undefs if _own(file) and not _reserved(name)}
    own = {}
    for macro in defined:
        if _own(macro.file) and not _reserved(macro.name):
            own.setdefault(macro.name, Location(macro.file, macro.line, 1))
    fixed = set(own) - tested
    names = (tested | set(LANGUAGE_MACROS)) - fixed
    return {name: own.get(name) for name in sorted(names)}


def check_nf_file(path: str) -> str:
    """The text of the NF's own source file: a C file, named ``.c`` (gcc picks the language from the
    name: a ``.h`` would compile to a precompiled header, a ``.cc`` as C++), then as
    ``check_text_file``."""
    name = os.path.basename(path) or path
    if os.path.isfile(path) and name == ".c":  # no stem: gcc reads it as a linker input and compiles nothing
        raise ConfigError(f"{path}: an NF is a C source file named NAME.c; gcc takes a file named only '.c' for "
                          "a linker input and compiles nothing; copy or rename it, e.g. to nf.c")
    if os.path.isfile(path) and not path.endswith(".c"):  # a missing file or a folder: check_text_file says so
        raise ConfigError(f"{path}: an NF is a C source file named .c ({name!r} is not); copy or rename it, "
                          f"e.g. to {os.path.splitext(name)[0] or 'nf'}.c")
    return check_text_file(path)


def _fixed(path: str, macro: Macro) -> ConfigError:
    if is_ours(macro.file):  # nf.h's own constant: nothing the user can wrap
        return ConfigError(f"define {macro.name}: {macro.name} is a constant of nf.h, not a setting of {path}")
    return ConfigError(f"define {macro.name}: {macro.file} defines {macro.name} unconditionally; wrap its "
                       f"#define in #ifndef {macro.name} ... #endif to make it configurable",
                       location=Location(macro.file, macro.line, 1))


def read_nf(path: str | os.PathLike, defines: Optional[Mapping[str, str]] = None) -> NfSource:
    """Read the NF at ``path`` with configuration ``defines`` (``{NAME: VALUE}``).

    Raises ConfigError for a file that is not an NF source file, a bad or unknown --define, one the
    NF does not let override, a bad NF_DEVICES or a limit the preprocessor hit; CSyntaxError (at
    file:line:col) for a preprocessor error, a refused #include or a file that is not UTF-8 text."""
    path = os.fspath(path)
    check_nf_file(path)
    checked = check_defines(defines)
    scan = preprocess(path, ["-dD", *(f"-D{name}={value}" for name, value in checked)], f"preprocessing {path}")
    final = {macro.name: macro for macro in scan.final}
    if checked:
        same = set()  # defined unconditionally to the very value given: no effect, accepted
        for name, value in checked:
            macro = final.get(name)
            if macro is not None and macro.file != _COMMAND_LINE:
                if macro.value != value or macro.function_like:
                    raise _fixed(path, macro)
                same.add(name)
        known = configurable_macros(path)
        unknown = [name for name, _ in checked if name not in known and name not in same]
        if unknown:
            raise ConfigError(f"unknown define {unknown[0]}: {path} neither defines nor tests it "
                              f"(its configurable macros: {', '.join(known) or 'none'})")
    own = sorted({m.name for m in scan.defines if m.file == path})
    devices = nf_devices(final, path)
    return NfSource(path, checked, scan.text, scan.final, tuple(own), scan.files, devices, scan.spellings)
