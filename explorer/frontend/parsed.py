"""``parse_nf``: an NF's C file to a ParsedNF (AST, configuration macros, devices, source map).

Reading the file, its --defines and preprocessing are ``explorer.nfsource``'s; here the text is
parsed with pycparser, and nodes keep the coordinates of the original files."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pycparser import c_ast

from explorer.errors import CSyntaxError, UnsupportedError
from explorer.frontend.columns import ColumnTable, column_of
from explorer.nfsource.number_lists import elide_number_lists, restore_number_lists
from explorer.frontend.parser import parse_text
from explorer.ir import Location
from explorer.limits import size_text
from explorer.nfsource import NfSource, read_nf
from explorer.nfsource.attributes import blank_harmless_attributes
from explorer.nfsource.cpp import is_ours, syntax_error


@dataclass(frozen=True)
class SourceMap:
    """The source lines of the NF and its headers, to point at and quote code by Location."""

    files: tuple[tuple[str, tuple[str, ...]], ...]

    def location(self, coord: Any) -> Optional[Location]:
        """A pycparser Coord as an ir.Location (None for nodes without one)."""
        if coord is None or getattr(coord, "line", None) is None:
            return None
        return Location(str(coord.file), int(coord.line), column_of(coord))

    def line(self, location: Location) -> str:
        """The source line at ``location`` ("" when unknown)."""
        for name, lines in self.files:
            if name == location.file and 1 <= location.line <= len(lines):
                return lines[location.line - 1]
        return ""


@dataclass(frozen=True)
class ParsedNF:
    """An NF after preprocessing and parsing."""

    path: str  # as given (locations use it)
    ast: c_ast.FileAST = field(compare=False, hash=False, repr=False)
    defines: tuple[tuple[str, str], ...]  # effective configuration macros (object-like), sorted
    devices: int  # NF_DEVICES
    source_map: SourceMap = field(compare=False, hash=False, repr=False)
    source: Optional[NfSource] = field(default=None, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return Path(self.path).stem


def _read_text(name: str) -> Optional[str]:
    try:
        return Path(name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read_lines(name: str) -> tuple[str, ...]:
    try:
        return tuple(Path(name).read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def _respell(ast: c_ast.Node, spellings: dict[str, str]) -> None:
    """pycparser keeps a line marker's file name as gcc escaped it (``a\\"b.c``): give every node
    the file's real name."""
    todo = [ast]
    while todo:
        node = todo.pop()
        coord = getattr(node, "coord", None)
        if coord is not None and coord.file in spellings:
            coord.file = spellings[coord.file]
        todo.extend(child for _, child in node.children())


# The parser reads some 60 KiB of C a second; the longest NF of the project is 16 KiB preprocessed.
MAX_C_BYTES = 256 * 1024


def _refuse_too_long(path: str, size: int) -> None:
    """Refuse at once what would take the parser minutes (every command parses the NF first)."""
    if size > MAX_C_BYTES:
        raise UnsupportedError(
            f"the NF is {size_text(size)} of C after preprocessing (lists of plain numbers not counted), more "
            f"than the {size_text(MAX_C_BYTES)} nfx reads (about 4 s to parse); leave out the functions "
            "nf_init and nf_process never call, and write a generated table as a brace list of integer "
            "literals, which is read fast at any length", location=Location(path, 1, 1))


# ASTs by what they are parsed from (``_key``), newest last: a command parses its NF once however
# many stages read it (nfx check analysed it twice and built it, 3 parses of the same text). Shared:
# whoever takes one must not change it (``private=True`` gives one to edit, as codegen does).
_ASTS: dict[tuple, c_ast.FileAST] = {}
_ASTS_LOCK = threading.Lock()
KEPT_ASTS = 8


def _key(source: NfSource, sources: dict[str, Optional[str]]) -> tuple:
    """Everything an AST depends on: the preprocessed text, the names its line markers use, and the
    text of the NF's own files (the columns of their nodes)."""
    return source.path, source.text, source.spellings, tuple(sorted(sources.items()))


def parse_source(source: NfSource, private: bool = False) -> c_ast.FileAST:
    """The NF's AST, nodes at their real file:line:col. On a syntax error, gcc's words and place
    when gcc finds an error too (the same words ``nfx run`` gives), else the parser's: an NF that
    pycparser cannot parse (GNU extensions) is refused by every command. The AST is shared with every
    other caller that parses the same text in this process, unless ``private``."""
    sources = {name: _read_text(name) for name in source.files if not is_ours(name)}
    key = _key(source, sources)
    if not private:
        with _ASTS_LOCK:
            hit = _ASTS.pop(key, None)
            if hit is not None:
                _ASTS[key] = hit
                return hit
    ast = _parsed(source, sources)
    if not private:
        with _ASTS_LOCK:
            _ASTS[key] = ast
            while len(_ASTS) > KEPT_ASTS:
                del _ASTS[next(iter(_ASTS))]
    return ast


def _parsed(source: NfSource, sources: dict[str, Optional[str]]) -> c_ast.FileAST:
    spellings = dict(source.spellings)
    columns = ColumnTable(source.text, {k: v for k, v in sources.items() if v is not None}, spellings)
    try:
        text, lists = elide_number_lists(blank_harmless_attributes(source.text))
        _refuse_too_long(source.path, len(text) - sum(found.blanks for found in lists.values()))
        ast = parse_text(text, source.path, spellings, columns)
        restore_number_lists(ast, lists)
    except CSyntaxError:
        gcc = syntax_error(source.path, source.gcc_defines)
        if gcc is None:
            raise
        raise CSyntaxError(gcc.sentence(), location=gcc.location) from None
    if spellings:
        _respell(ast, spellings)
    return ast


def parse_nf(path: str | Path, defines: Optional[dict[str, str]] = None, private: bool = False) -> ParsedNF:
    """Preprocess and parse the NF at ``path`` with configuration ``defines`` (``{NAME: VALUE}``).
    The AST is shared with the other parses of the same text (``parse_source``): read it, or ask for
    a ``private`` one to change.

    Raises CSyntaxError for preprocessor or parse errors (file:line:col) and ConfigError for a
    define that is not one of the NF's configuration macros, or one the NF does not let override
    (see ``explorer.nfsource.read_nf`` for every rule)."""
    source = read_nf(path, defines)
    ast = parse_source(source, private)
    source_map = SourceMap(tuple((name, _read_lines(name)) for name in source.files))
    return ParsedNF(path=source.path, ast=ast, defines=source.configuration, devices=source.devices,
                    source_map=source_map, source=source)
