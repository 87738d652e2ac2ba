"""Long brace lists of plain integer constants (a generated table: ``{ 12, 0x3f, -1, ... }``) are
taken out of the text pycparser reads, and put back as AST nodes or tokens.

pycparser lexes some 50,000 tokens a second: a 1.6 MB table of 140,000 numbers took 12 s to parse
and twice that to cut into tokens for ``nfx generate``. Such a list needs neither lexer nor parser:
each element is one integer literal, possibly negated. The list's text is replaced by one marker
constant, the newlines it spanned and blanks, so every token after it keeps its line and column;
after parsing (or lexing), the marker gives the elements back, each where it was written. Lists
with anything else in them (a designator, a macro, a comment, a line marker) are left as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    tokens: tuple[ListToken, ...]
    blanks: int = 0  # the blanks after the marker that keep the column of what follows the list

    def elements(self) -> list[tuple[ListToken | None, ListToken]]:
        """(its minus sign or None, literal) per element."""
        out, minus = [], None
        for t in self.tokens:
            if t.value == "-":
                minus = t
            elif t.value != ",":
                out.append((minus, t))
                minus = None
        return out


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
            lists[mark] = NumberList(found.tokens, tail)
            pieces.append(mark + "\n" * newlines + " " * tail)
            done = end
        start = text.find("{", end)
    pieces.append(text[done:])
    return "".join(pieces), lists


def _number_list(body: str) -> NumberList | None:
    """The tokens of a list body made only of integer literals (each possibly negated), else None."""
    if not _LIST_CHARS.issuperset(body):
        return None
    tokens: list[ListToken] = []
    lines, line_start, last = 0, -1, 0  # line_start: where the current line starts; -1 on the list's first

    def add(value: str, at: int) -> None:
        nonlocal lines, line_start, last
        newlines = body.count("\n", last, at)
        if newlines:
            lines += newlines
            line_start = body.rindex("\n", last, at) + 1
        last = at
        tokens.append(ListToken(value, lines, at if line_start < 0 else at - line_start + 1))

    parts = body.split(",")
    pos = 0
    for k, part in enumerate(parts):
        element = part.strip()
        if not element:
            if k == len(parts) - 1 and k > 0:  # a trailing comma
                break
            return None
        at = pos + part.index(element[0])
        if element.startswith("-"):
            add("-", at)
            element = element[1:].lstrip()
            at = pos + part.index(element, at - pos + 1)
        if not _is_integer(element):
            return None
        add(element, at)
        if k < len(parts) - 1:
            add(",", pos + len(part))
        pos += len(part) + 1
    return NumberList(tuple(tokens))


def _is_integer(text: str) -> bool:
    """Whether ``text`` is one integer literal: decimal, octal or hex digits, then a u/l suffix."""
    digits = text.rstrip("uUlL")
    if digits[:2] in ("0x", "0X"):
        return len(digits) > 2 and all(c in _HEX for c in digits[2:])
    return digits.isdigit() and digits.isascii()


def is_marker(value: str) -> bool:
    return value.startswith(_MARK) and len(value) == len(_MARK) + 6


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
                node.exprs = [_element(t, mark, minus is not None) for minus, t in found.elements()]
                # pycparser places a list at its first element, and an enclosing list with the same
                # Coord object: moved in place, the marker's place becomes the first element's for all
                mark.line, mark.column = node.exprs[0].coord.line, node.exprs[0].coord.column
                continue
        todo.extend(child for _, child in node.children())


def _element(token: ListToken, mark: Coord, negated: bool) -> c_ast.Node:
    """The literal's node (under a unary minus, placed at the literal as pycparser places it)."""
    column = token.column if token.lines else (mark.column or 1) + token.column
    here = Coord(mark.file, mark.line + token.lines, column)
    constant = c_ast.Constant("int", token.value, here)
    return c_ast.UnaryOp("-", constant, here) if negated else constant
