"""Long brace lists of plain integer constants (a generated table: ``{ 12, 0x3f, -1, ... }``) are
taken out of the text pycparser reads, and put back as AST nodes or tokens.

pycparser lexes some 50,000 tokens a second: a 1.6 MB table of 140,000 numbers took 12 s to parse
and twice that to cut into tokens for ``nfx generate``. Such a list needs neither lexer nor parser:
each element is one integer literal, possibly negated. The list's text is replaced by one marker
constant, the newlines it spanned and blanks, so every token after it keeps its line and column;
after parsing (or lexing), the marker gives the elements back, each where it was written. Lists
with anything else in them (a designator, a macro, a comment, a line marker) are left as they are.

A table of millions of entries (a 2 MiB classification table) is checked by its distinct element
spellings, and its nodes and tokens are made only when asked for: the analysis reads its values
straight from the spellings (``NumberElements.numbers``), never through two million nodes.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import accumulate
from typing import Optional, overload

from pycparser import c_ast
from pycparser.c_parser import Coord

MIN_ELEMENTS = 64  # shorter lists cost the parser little
_MARK = "0x4e4658"  # "NFX"; a marker constant is this, then the list's number as 6 hex digits
_HEX = frozenset("0123456789abcdefABCDEF")
_LIST_CHARS = _HEX | frozenset("xXuUlL \t\r\n,-")


@dataclass(frozen=True)
class ListToken:
    """One token of an elided list: its spelling, the lines after the list's first line, and its
    column: on that first line, counted from the list's first character (0-based); on a later
    line, from the line's start (1-based, as the lexer counts)."""

    value: str
    lines: int
    column: int


@dataclass(frozen=True)
class NumberList:
    """A list's body (the text between its braces) cut at its commas: one part per element."""

    body: str
    parts: tuple[str, ...] = field(repr=False)
    trailing: bool = False  # a comma after the last element
    blanks: int = 0  # the blanks after the marker that keep the column of what follows the list

    def __len__(self) -> int:
        return len(self.parts)

    @cached_property
    def spellings(self) -> dict[str, tuple[bool, str]]:
        """Each distinct part -> (negated, the literal's spelling): a table of millions of bytes
        has a few hundred."""
        return {part: _spelling(part) for part in set(self.parts)}  # type: ignore[misc]

    @cached_property
    def _starts(self) -> list[int]:
        return list(accumulate((len(p) + 1 for p in self.parts), initial=0))

    @cached_property
    def _newlines(self) -> list[int]:
        found, at = [], self.body.find("\n")
        while at != -1:
            found.append(at)
            at = self.body.find("\n", at + 1)
        return found

    def _token(self, value: str, at: int) -> ListToken:
        lines = bisect_left(self._newlines, at)
        return ListToken(value, lines, at - self._newlines[lines - 1] if lines else at)

    def element(self, k: int) -> tuple[Optional[ListToken], ListToken]:
        """(its minus sign or None, literal) of element ``k``."""
        part, start = self.parts[k], self._starts[k] if k else 0  # the first one is placed alone
        negated, literal = self.spellings[part]
        at = start + len(part) - len(part.lstrip())
        if not negated:
            return None, self._token(literal, at)
        return self._token("-", at), self._token(literal, part.index(literal, at - start + 1) + start)

    @cached_property
    def tokens(self) -> tuple[ListToken, ...]:
        """Every token of the list, commas included, in order."""
        out: list[ListToken] = []
        last = len(self.parts) - 1
        for k in range(last + 1):
            minus, literal = self.element(k)
            if minus is not None:
                out.append(minus)
            out.append(literal)
            if k < last or self.trailing:
                out.append(self._token(",", self._starts[k + 1] - 1))
        return tuple(out)


def _spelling(part: str) -> Optional[tuple[bool, str]]:
    """(negated, literal) when ``part`` is one integer literal, possibly negated, between blanks."""
    text = part.strip()
    negated = text.startswith("-")
    if negated:
        text = text[1:].lstrip()
    return (negated, text) if _is_integer(text) else None


def elide_number_lists(text: str) -> tuple[str, dict[str, NumberList]]:
    """``text`` with each long list of integer literals replaced by a marker, and the lists by marker."""
    if _MARK.lower() in text.lower():
        return text, {}
    pieces: list[str] = []
    lists: dict[str, NumberList] = {}
    done = 0
    start = text.find("{")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            break
        inner = text.find("{", start + 1, end)
        if inner != -1:  # a nested list: look at the innermost ones
            start = inner
            continue
        body = text[start + 1:end]
        found = _number_list(body) if body.count(",") >= MIN_ELEMENTS - 1 else None
        if found is not None:
            mark = f"{_MARK}{len(lists):06x}"
            pieces.append(text[done:start + 1])
            newlines = body.count("\n")  # kept, and the blanks that keep the column of what follows
            tail = len(body) - body.rindex("\n") - 1 if newlines else len(body) - len(mark)
            lists[mark] = NumberList(found.body, found.parts, found.trailing, tail)
            pieces.append(mark + "\n" * newlines + " " * tail)
            done = end
        start = text.find("{", end)
    pieces.append(text[done:])
    return "".join(pieces), lists


def _number_list(body: str) -> NumberList | None:
    """A list body made only of integer literals (each possibly negated), else None. Each distinct
    spelling is checked once."""
    if not _LIST_CHARS.issuperset(body):
        return None
    parts = body.split(",")
    trailing = len(parts) > 1 and not parts[-1].strip()
    if trailing:
        parts.pop()
    found = NumberList(body, tuple(parts), trailing)
    return None if None in found.spellings.values() else found


def _is_integer(text: str) -> bool:
    """Whether ``text`` is one integer literal: decimal, octal or hex digits, then a u/l suffix."""
    digits = text.rstrip("uUlL")
    if digits[:2] in ("0x", "0X"):
        return len(digits) > 2 and all(c in _HEX for c in digits[2:])
    return digits.isdigit() and digits.isascii()


def is_marker(value: str) -> bool:
    return value.startswith(_MARK) and len(value) == len(_MARK) + 6


class NumberElements(Sequence):
    """The element nodes of an elided list, as pycparser would have made them, each made when
    first asked for (and then kept, so that a node is always the same object); ``numbers`` gives
    the list itself, for readers of the values alone."""

    def __init__(self, numbers: NumberList, mark: Coord):
        self.numbers = numbers
        self._file, self._line, self._column = mark.file, mark.line, mark.column or 1
        self._made: dict[int, c_ast.Node] = {}

    def __len__(self) -> int:
        return len(self.numbers)

    @overload
    def __getitem__(self, k: int) -> c_ast.Node: ...

    @overload
    def __getitem__(self, k: slice) -> list[c_ast.Node]: ...

    def __getitem__(self, k):  # type: ignore[no-untyped-def]
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        node = self._made.get(k)
        if node is None:
            node = self._made[k] = self._node(*self.numbers.element(k))
        return node

    def __iter__(self):  # type: ignore[no-untyped-def]
        made, element = self._made, self.numbers.element
        for k in range(len(self.numbers.parts)):
            node = made.get(k)
            if node is None:
                node = made[k] = self._node(*element(k))
            yield node

    def _node(self, minus: Optional[ListToken], token: ListToken) -> c_ast.Node:
        """The literal's node (under a unary minus, placed at the literal as pycparser places it)."""
        column = token.column if token.lines else self._column + token.column
        here = Coord(self._file, self._line + token.lines, column)
        constant = c_ast.Constant("int", token.value, here)
        return c_ast.UnaryOp("-", constant, here) if minus is not None else constant


def restore_number_lists(ast: c_ast.Node, lists: dict[str, NumberList]) -> None:
    """Give each marked ``InitList`` of ``ast`` its elements back, as pycparser would have made them."""
    if not lists:
        return
    todo = [ast]
    while todo:
        node = todo.pop()
        if isinstance(node, c_ast.InitList) and len(node.exprs) == 1 and isinstance(node.exprs[0], c_ast.Constant):
            found = lists.get(node.exprs[0].value)
            if found is not None:
                mark = node.exprs[0].coord
                node.exprs = NumberElements(found, mark)
                # pycparser places a list at its first element, and an enclosing list with the same
                # Coord object: moved in place, the marker's place becomes the first element's for all
                first = node.exprs[0].coord
                mark.line, mark.column = first.line, first.column
                continue
        todo.extend(child for _, child in node.children())
