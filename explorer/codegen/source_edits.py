"""Edits to an NF's own text, anchored on pycparser coordinates, so that a generated ``nf.c`` is the
author's file (comments, macro names, layout) with the strategy's edits and nothing else.

pycparser's coordinates point into the *preprocessed* text: a line there is the source line with
its macros expanded (and gcc squeezes its spacing), so a column cannot be used on the source as it
is. Both texts are cut into tokens by pycparser's own lexer (in the source, comments and directive
lines are blanked first, keeping every offset). A token the AST points at is the k-th token with
its spelling on its preprocessed line; it is the k-th token with that spelling on the same source
line when the line has as many of them. Otherwise it came out of a macro expansion, and the edit
is refused with its location: nfx never edits a macro definition behind the author's back.

What this finds is then checked as a whole: the edited text, preprocessed and parsed again, must
give the AST the strategy asked for (``transform.verify``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import Iterable, Optional

from explorer.errors import GenerateError
from explorer.ir import Location
from explorer.nfsource.tokens import LexError as _LexError
from explorer.nfsource.tokens import Token
from explorer.nfsource.tokens import lex as _lex
from explorer.nfsource.tokens import scan as _scan


def source_tokens(text: str, filename: str) -> tuple[Token, ...]:
    """The tokens of a source file as written (outside comments and directives), with offsets; a
    long list of integer constants is one token (``lex``'s ``whole_lists``), as in ``SourceAnchors``."""
    blanked = _scan(text)[0]
    try:
        tokens = _lex(blanked, filename, whole_lists=True)
    except _LexError as error:
        raise GenerateError(f"cannot read the tokens of the NF's text: {error}",
                            location=Location(filename, error.line, error.column)) from None
    starts = [0]
    at = text.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    placed = []
    for t in tokens:
        start = starts[t.line - 1] + t.column - 1
        end = start + len(t.value)
        written = text[start:end]  # a list's as written, with any comment in it (blanked for the lexer)
        if written != t.value and blanked[start:end] != t.value:  # never expected: the lexer saw what the file holds
            raise GenerateError(f"cannot place the token '{t.value}' in the NF's text", location=t.location())
        placed.append(Token(written, filename, t.line, t.column, start, end))
    return tuple(placed)


def first_code_offset(text: str) -> int:
    """Where the first token or directive of a file starts (after its leading comments)."""
    blanked, directives = _scan(text)
    first_token = next((k for k, ch in enumerate(blanked) if not ch.isspace()), len(text))
    return min(first_token, *directives) if directives else first_token


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` of ``file`` with ``text`` (an insertion when start == end)."""

    file: str
    start: int
    end: int
    text: str


class SourceAnchors:
    """Maps tokens of the preprocessed text (where the AST's coordinates point) to the source. A long
    list of integer constants is one token on both sides: nothing in a table is edited, and cut into
    tokens a 2 Mi-entry one took minutes and gigabytes."""

    def __init__(self, preprocessed: str, sources: dict[str, str], spellings: Optional[dict[str, str]] = None):
        """``spellings`` maps a line marker's (escaped) file name to the file's name, as the front
        end does for the AST's coordinates."""
        self.sources = sources
        self.preprocessed = [replace(t, file=spellings.get(t.file, t.file)) if spellings else t
                             for t in _lex(preprocessed, "", whole_lists=True)]
        self._pre_lines: dict[tuple[str, int], list[int]] = {}
        for index, t in enumerate(self.preprocessed):
            self._pre_lines.setdefault((t.file, t.line), []).append(index)
        self._source_lines: dict[tuple[str, int], list[Token]] = {}
        self.tokens: dict[str, tuple[Token, ...]] = {}
        for name, text in sources.items():
            self.tokens[name] = source_tokens(text, name)
            for t in self.tokens[name]:
                self._source_lines.setdefault((name, t.line), []).append(t)

    def at(self, file: str, line: int, column: int) -> int:
        """The index of the preprocessed token that starts at file:line:column."""
        for index in self._pre_lines.get((file, line), ()):
            if self.preprocessed[index].column == column:
                return index
        raise GenerateError("no token starts here in the preprocessed NF", location=Location(file, line, column))

    def source(self, index: int, what: str) -> Token:
        """The source token the preprocessed token ``index`` was written as; GenerateError when it
        comes out of a macro expansion (``what`` says what nfx had to edit there)."""
        pre = self.preprocessed[index]
        if pre.file not in self.sources:
            raise GenerateError(f"{what} is in {pre.file}, which nfx does not copy into the project",
                                location=pre.location())
        line = [self.preprocessed[i] for i in self._pre_lines[(pre.file, pre.line)]]
        rank = sum(1 for t in line if t.value == pre.value and t.column < pre.column)
        same = [t for t in self._source_lines.get((pre.file, pre.line), ()) if t.value == pre.value]
        if len(same) != sum(1 for t in line if t.value == pre.value):
            raise GenerateError(f"{what} comes out of a macro expansion, which nfx does not edit; write it "
                                "out in the NF, or keep the macro away from it", location=pre.location())
        return same[rank]

    def following(self, token: Token) -> tuple[Token, ...]:
        """The source tokens of the same file from ``token`` on."""
        tokens = self.tokens[token.file]
        return tokens[tokens.index(token):]


def arguments(after_name: Iterable[Token]) -> Optional[list[list[Token]]]:
    """The argument tokens of a call, from its name on: one list per argument, split at the commas
    outside brackets; None when the name is not followed by a parenthesised list."""
    tokens = iter(after_name)
    next(tokens, None)
    if getattr(next(tokens, None), "value", None) != "(":
        return None
    args: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.value in ("(", "[", "{"):
            depth += 1
        elif t.value in (")", "]", "}"):
            if depth == 0:
                return [] if args == [[]] else args
            depth -= 1
        elif t.value == "," and depth == 0:
            args.append([])
            continue
        args[-1].append(t)
    return None


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """``text`` with ``edits`` applied (they must not overlap; insertions at one offset keep their
    order)."""
    ordered = sorted(enumerate(edits), key=lambda e: (e[1].start, e[1].end, e[0]))
    parts, at = [], 0
    for _, edit in ordered:
        if edit.start < at:
            raise GenerateError(f"two of the strategy's edits overlap in {edit.file}")
        parts += [text[at:edit.start], edit.text]
        at = edit.end
    parts.append(text[at:])
    return "".join(parts)


def unified_diff(before: str, after: str, old_name: str, new_name: str) -> str:
    """A unified diff, as git and patch read it (``\\ No newline at end of file`` included)."""
    def lines(text: str) -> list[str]:
        out = text.splitlines(keepends=True)
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n\\ No newline at end of file\n"
        return out

    return "".join(difflib.unified_diff(lines(before), lines(after), old_name, new_name))
