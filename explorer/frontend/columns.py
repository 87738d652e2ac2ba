"""Source columns for the AST's coordinates.

pycparser counts columns in the *preprocessed* line, where every macro is expanded (``LAN`` is
``0``, ``NF_DROP`` is ``(-1)``) and gcc squeezes runs of blanks, so past the first macro of a line
its columns point at the wrong token of the source (an error at ``11:66`` named what the source
has at 77). Each coordinate gets the column of the source token it was written as: the tokens of
a preprocessed line and of its source line are aligned by spelling (difflib), and a token that
came out of a macro expansion gets the column of the source text the expansion replaced (the
macro's name). The preprocessed column stays where it was: ``nfx generate`` anchors its edits on
it."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional

from pycparser import c_ast
from pycparser.c_parser import Coord

from explorer.nfsource.tokens import LexError, Token, lex, scan


@dataclass(slots=True)
class SourceCoord(Coord):
    """A pycparser Coord that also knows its column in the source file."""

    source_column: Optional[int] = None


def column_of(coord: Coord) -> int:
    """The column to show for ``coord``: in the source file when known."""
    source = getattr(coord, "source_column", None)
    return int(source if source is not None else (coord.column or 0))


def _by_line(tokens: list[Token]) -> dict[tuple[str, int], list[Token]]:
    lines: dict[tuple[str, int], list[Token]] = {}
    for t in tokens:
        lines.setdefault((t.file, t.line), []).append(t)
    return lines


def _align(pre: list[Token], source: list[Token]) -> dict[int, int]:
    """Preprocessed column -> source column for the tokens of one line."""
    columns: dict[int, int] = {}
    if not source:
        return columns
    macro = None  # the column of the last name the expansion made vanish (a macro's name)
    expanded = {t.value for t in pre}
    matcher = difflib.SequenceMatcher(None, [t.value for t in pre], [t.value for t in source], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        vanished = [t for t in source[j1:j2] if (t.value[:1].isalpha() or t.value[:1] == "_")
                    and t.value not in expanded]
        if tag != "equal" and vanished:
            macro = vanished[0].column
        for k in range(i1, i2):
            if tag == "equal":
                columns[pre[k].column] = source[j1 + k - i1].column
            else:  # out of an expansion: where the macro's name is written
                columns[pre[k].column] = macro if macro is not None else source[min(j1, len(source) - 1)].column
    return columns


def source_columns(preprocessed: str, sources: dict[str, str],
                   spellings: Optional[dict[str, str]] = None) -> dict[tuple[str, int, int], int]:
    """(file, line, preprocessed column) -> source column, for the lines of ``sources`` (file name
    -> text) whose columns differ; empty when a text cannot be cut into tokens."""
    scanned = {name: scan(text)[0].split("\n") for name, text in sources.items()}
    own, same = _differing(preprocessed, scanned, spellings or {})
    try:
        pre_lines = _by_line(lex(own, ""))
        source_lines = {name: _by_line(lex("\n".join("" if n in same[name] else line
                                                    for n, line in enumerate(lines, 1)), name))
                        for name, lines in scanned.items()}
    except LexError:
        return {}
    table = {}
    for (file, line), pre in pre_lines.items():
        name = (spellings or {}).get(file, file)
        source = source_lines.get(name, {}).get((name, line))
        if source is None or [(t.value, t.column) for t in pre] == [(t.value, t.column) for t in source]:
            continue
        for pre_column, column in _align(pre, source).items():
            if pre_column != column:
                table[(name, line, pre_column)] = column
    return table


def _differing(preprocessed: str, scanned: dict[str, list[str]],
               spellings: dict[str, str]) -> tuple[str, dict[str, set[int]]]:
    """The preprocessed lines that come from the NF's own files (``scanned``: their lines, comments
    blanked) and differ from the source line they stand for, each run after its line marker, the
    others left empty so that line numbers hold; and per file the lines that are the same. Only
    those that differ can have other columns: the headers nf.h pulls in and the lines no macro
    touched were most of the text, and cutting them into tokens a tenth of a small NF's analysis."""
    out: list[str] = []
    same: dict[str, set[int]] = {name: set() for name in scanned}
    name: Optional[str] = None
    number = 0
    for line in preprocessed.splitlines(keepends=True):
        marker = _marker(line) if line.startswith("#") else None
        if marker is not None:
            number, raw = marker
            name = spellings.get(raw, raw)
            name = name if name in scanned else None
            if name is not None:
                out.append(line)
            continue
        if name is not None:
            lines = scanned[name]
            if 0 < number <= len(lines) and line.rstrip() == lines[number - 1].rstrip():
                same[name].add(number)
                out.append("\n")
            else:
                out.append(line)
        number += 1
    return "".join(out), same


def _marker(line: str) -> Optional[tuple[int, str]]:
    """The line number and file a line marker (``# 22 "nf.c" 2``) gives, the file as gcc escaped it;
    None for another line."""
    rest = line[1:].lstrip(" ")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if not digits or not rest[digits:].startswith(' "'):
        return None
    i = start = digits + 2
    while i < len(rest) and rest[i] != '"':
        i += 2 if rest[i] == "\\" else 1
    return (int(rest[:digits]), rest[start:i]) if i < len(rest) else None


def give_source_columns(ast: c_ast.Node, table: dict[tuple[str, int, int], int]) -> None:
    """Give every node whose column differs in the source a SourceCoord with that column."""
    if not table:
        return
    todo = [ast]
    while todo:
        node = todo.pop()
        coord = getattr(node, "coord", None)
        if coord is not None and not isinstance(coord, SourceCoord):
            column = table.get((str(coord.file), coord.line, coord.column))
            if column is not None:
                node.coord = SourceCoord(coord.file, coord.line, coord.column, column)
        todo.extend(child for _, child in node.children())
