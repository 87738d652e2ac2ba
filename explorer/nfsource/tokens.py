"""C tokens as pycparser's lexer cuts them, in the preprocessed text and in an NF's own source:
what lets a place in the one (where the AST's coordinates point) be found in the other, for the
edits of ``nfx generate`` and for the columns messages give."""
from __future__ import annotations

from dataclasses import dataclass

from pycparser.c_lexer import CLexer

from explorer.ir import Location
from explorer.nfsource.number_lists import elide_number_lists


@dataclass(frozen=True)
class Token:
    """One C token: its spelling, where it starts (1-based line and column, as pycparser counts)
    and, in a source file, its offsets."""

    value: str
    file: str
    line: int
    column: int
    start: int = -1
    end: int = -1

    def location(self) -> Location:
        return Location(self.file, self.line, self.column)


class LexError(Exception):
    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.line, self.column = line, column


def lex(text: str, filename: str, *, whole_lists: bool = False) -> list[Token]:
    """The tokens of C text, by pycparser's own lexer (line markers give them their file and line);
    LexError on a character C has no token for. ``whole_lists``: a long list of integer constants
    (``number_lists``) is one token, its body between the braces as written, where its body starts:
    ``nfx generate`` never edits a table's numbers, and a 2 Mi-entry table is 4 million tokens."""
    def fail(message: str, line: int, column: int) -> None:
        raise LexError(message, line, column)

    text, lists = elide_number_lists(text)  # a generated table's numbers are cut here, not by the lexer
    lexer = CLexer(fail)
    lexer.input(text, filename)
    tokens = []
    while True:
        tok = lexer.token()
        if tok is None:
            return tokens
        found = lists.get(tok.value) if lists else None
        if found is None:
            tokens.append(Token(tok.value, tok.filename, tok.lineno, tok.column))
            continue
        if whole_lists:
            tokens.append(Token(found.body, tok.filename, tok.lineno, tok.column))
            continue
        for t in found.tokens:
            tokens.append(Token(t.value, tok.filename, tok.lineno + t.lines,
                                t.column if t.lines else tok.column + t.column))


_SPECIAL = ("\\", "\r", "/", "#", '"', "'")  # what may start a splice, comment, directive or literal


def scan(text: str) -> tuple[str, tuple[int, ...]]:
    """``text`` with every comment, directive line (continuations included) and line splice turned
    into spaces, newlines kept: what is left are the tokens the compiler sees, at their offsets.
    Also where each directive starts."""
    out = list(text)
    directives = []
    i, n = 0, len(text)
    line_start = True  # only blanks since the start of the line: a '#' there starts a directive
    directive = False

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    if text.startswith("\ufeff"):  # a UTF-8 byte order mark: gcc skips it, and so does the lexer here
        blank(0, 1)
        i = 1

    while i < n:
        if line_start and not directive:  # a line with nothing to blank (most of a table) is skipped whole
            eol = text.find("\n", i)
            eol = n if eol < 0 else eol
            if eol > i and not any(special in text[i:eol] for special in _SPECIAL):
                i = eol
                continue
        c = text[i]
        if c == "\\" and text.startswith("\n", i + 1):  # a line splice
            blank(i, i + 1)
            i += 2
            continue
        if c == "\n":
            directive = False
            line_start = True
            i += 1
            continue
        if c == "\r":  # CRLF files: pycparser's lexer knows only \n
            out[i] = " "
            i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
            continue
        if text.startswith("//", i):
            end = i
            while end < n and text[end] != "\n":
                end += 2 if text.startswith("\\\n", end) else 1
            blank(i, end)
            i = end
            continue
        if c == "#" and line_start:
            directive = True
            directives.append(i)
        line_start = line_start and c.isspace()
        if c in "\"'":  # a literal: what it holds is neither a comment nor a directive's end
            end = i + 1
            while end < n and text[end] not in (c, "\n"):
                end += 2 if text[end] == "\\" else 1
            end = min(end + 1, n)
        else:
            end = i + 1
        if directive:
            blank(i, end)
        i = end
    return "".join(out), tuple(directives)
