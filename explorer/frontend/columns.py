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
from typing import Iterator, Optional

from pycparser.c_parser import Coord

from explorer.nfsource.tokens import LexError, Token, lex, scan


@dataclass(slots=True)
class SourceCoord(Coord):
    """A pycparser Coord on a line whose columns differ in the source: ``columns`` knows them."""

    columns: Optional[ColumnTable] = None


def column_of(coord: Coord) -> int:
    """The column to show for ``coord``: in the source file when known."""
    columns = getattr(coord, "columns", None)
    source = columns.column(str(coord.file), coord.line, coord.column) if columns is not None else None
    return int(source if source is not None else (coord.column or 0))


class ColumnTable:
    """The source columns of the preprocessed lines that differ from their source line. A line is
    aligned the first time a column of it is asked for: most such lines (a table of ``NF_IPV4``
    calls) are never named by a message, and aligning them all was a seventh of a 64-rule ACL's
    analysis."""

    def __init__(self, preprocessed: str, sources: dict[str, str], spellings: Optional[dict[str, str]] = None):
        """``sources``: file name -> text of the NF's own files; ``spellings``: a line marker's
        escaped file name -> the real one."""
        scanned = {name: scan(text)[0].split("\n") for name, text in sources.items()}
        self._lines = _differing(preprocessed, scanned, spellings or {})
        self._aligned: dict[tuple[str, int], dict[int, int]] = {}

    def differs(self, file: str, line: int) -> bool:
        """Whether the preprocessed ``line`` of ``file`` differs from its source line."""
        return (file, line) in self._lines

    def column(self, file: str, line: int, pre_column: Optional[int]) -> Optional[int]:
        """The source column of the token at ``pre_column`` of the preprocessed line; None when it
        is the same."""
        key = (file, line)
        aligned = self._aligned.get(key)
        if aligned is None:
            texts = self._lines.get(key)
            if texts is None:
                return None
            aligned = self._aligned[key] = _aligned_line(*texts)
        return aligned.get(pre_column) if pre_column is not None else None


def _aligned_line(preprocessed: str, source: str) -> dict[int, int]:
    """Preprocessed column -> source column for one line, where they differ; empty when a line
    cannot be cut into tokens."""
    try:
        pre, own = lex(preprocessed, ""), lex(source, "")
    except LexError:
        return {}
    return {pre_column: column for pre_column, column in _align(pre, own).items() if pre_column != column}


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


def _differing(preprocessed: str, scanned: dict[str, list[str]],
               spellings: dict[str, str]) -> dict[tuple[str, int], tuple[str, str]]:
    """(file, line) -> (preprocessed line, source line) for the preprocessed lines that come from
    the NF's own files (``scanned``: their lines, comments blanked) and differ from the source line
    they stand for. Only those can have other columns: the headers nf.h pulls in and the lines no
    macro touched are most of the text."""
    lines: dict[tuple[str, int], tuple[str, str]] = {}
    for raw, number, line, _ in numbered_lines(preprocessed):
        own = scanned.get(spellings.get(raw, raw))
        if own is not None and 0 < number <= len(own) and line.rstrip() != own[number - 1].rstrip():
            lines[(spellings.get(raw, raw), number)] = (line, own[number - 1])
    return lines


def numbered_lines(text: str) -> Iterator[tuple[str, int, str, int]]:
    """Each line of preprocessed ``text`` that is not a line marker: the file it stands for (as gcc
    escaped its name), its line number there, the line, and its offset in ``text``. Lines end at
    newlines alone, as the lexer counts them."""
    raw, number, offset = "", 0, 0
    for line in text.split("\n"):
        marker = line_marker(line) if line.startswith("#") else None
        if marker is not None:
            number, raw = marker
        else:
            yield raw, number, line, offset
            number += 1
        offset += len(line) + 1


def line_marker(line: str) -> Optional[tuple[int, str]]:
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
