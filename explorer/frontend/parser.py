"""Parse preprocessed NF text with pycparser, turning its errors into CSyntaxError at file:line:col."""
from __future__ import annotations

from typing import Any, Optional

from pycparser import c_ast, c_parser
from pycparser.c_lexer import CLexer

from explorer.errors import CSyntaxError
from explorer.frontend.columns import ColumnTable, SourceCoord, column_of, numbered_lines
from explorer.ir import Location
from explorer.nfsource.cpp import is_ours


class _ParseFailure(Exception):
    """Raised by the parser subclass with the structured location pycparser knows."""

    def __init__(self, message: str, location: Optional[Location]):
        super().__init__(message)
        self.message = message
        self.location = location


def _token_location(token: Any) -> Optional[Location]:
    if token is None:
        return None
    file = getattr(token, "filename", None)
    line = getattr(token, "lineno", None)
    col = getattr(token, "column", None)
    if file is None or line is None:
        return None
    return Location(str(file), int(line), int(col or 0))


# GNU C's alternate spellings of keywords, which gcc takes in every mode (system headers and code
# written for -std=c99 use them): read as the keyword they spell.
_ALTERNATE = {"__inline__": "inline", "__inline": "inline", "__restrict": "restrict", "__restrict__": "restrict",
              "__volatile__": "volatile", "__volatile": "volatile", "__const": "const", "__const__": "const",
              "__signed__": "signed", "__signed": "signed", "__alignof__": "_Alignof", "__alignof": "_Alignof"}


class _Lexer(CLexer):
    """pycparser's lexer, reading ``__inline__``, ``__restrict`` and the other GNU spellings of C's
    keywords as those keywords (token and spelling alike)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._keyword_map.update({gnu: self._keyword_map[plain] for gnu, plain in _ALTERNATE.items()})

    def _make_token(self, tok_type: str, value: str, pos: int) -> Any:  # pycparser's hook: every token
        return super()._make_token(tok_type, _ALTERNATE.get(value, value) if tok_type != "ID" else value, pos)


class _Parser(c_parser.CParser):
    """pycparser's parser, reporting errors with a Location instead of a formatted string.

    pycparser sometimes reports only the file name (e.g. "Invalid expression"); we then point at
    the next unread token, or the last one read at the end of input. A node on a line whose
    columns differ in the source gets a SourceCoord that finds its source column.
    """

    def __init__(self, columns: Optional[ColumnTable] = None, spellings: Optional[dict[str, str]] = None):
        super().__init__(lexer=_Lexer)
        self._columns, self._spellings = columns, spellings or {}

    def _tok_coord(self, tok: Any) -> Any:  # pycparser's hook: every node's coordinate is made here
        columns = self._columns
        if columns is not None and columns.differs(self._spellings.get(tok.filename, tok.filename), tok.lineno):
            return SourceCoord(tok.filename, tok.lineno, tok.column, columns)
        return super()._tok_coord(tok)

    def _parse_error(self, msg: str, coord: Any) -> Any:  # noqa: D401 - pycparser's hook
        location: Optional[Location] = None
        if coord is not None and hasattr(coord, "line"):
            location = Location(str(coord.file), int(coord.line), column_of(coord))
        else:
            stream = getattr(self, "_tokens", None)
            if stream is not None:
                try:
                    location = _token_location(stream.peek(1))
                    if location is None:
                        buffer = getattr(stream, "_buffer", [])
                        index = getattr(stream, "_index", 0)
                        previous = [t for t in buffer[:index] if t is not None]
                        location = _token_location(previous[-1]) if previous else None
                except Exception:  # the stream itself failed (lexer error): no better location
                    location = None
        extension = self._gnu_extension()
        if extension is not None:
            raise _ParseFailure(f"gnu:{extension.value}", self._located(extension) or location)
        ellipsis = self._case_range()
        if ellipsis is not None:
            raise _ParseFailure("gnu:case ... :", self._located(ellipsis) or location)
        construct = self._gnu_syntax()
        if construct is not None:
            raise _ParseFailure(construct[0], self._located(construct[1]) or location)
        raise _ParseFailure(msg, location)

    def _located(self, token: Any) -> Optional[Location]:
        """Where ``token`` is written in the source (its column in the preprocessed line may differ)."""
        location = _token_location(token)
        if location is None or self._columns is None:
            return location
        column = self._columns.column(self._spellings.get(location.file, location.file), location.line, location.col)
        return location if column is None else Location(location.file, location.line, column)

    def _recent(self) -> list[Any]:
        """The tokens read so far and the next one, the last ones last."""
        stream = getattr(self, "_tokens", None)
        return [t for t in getattr(stream, "_buffer", [])[:getattr(stream, "_index", 0) + 1] if t is not None]

    def _after(self, token: Any) -> Any:
        """The token after ``token``, the last of ``_recent``."""
        stream = self._tokens
        return stream.peek(2) if stream.peek(1) is token else stream.peek(1)

    def _gnu_syntax(self) -> Optional[tuple[str, Any]]:
        """(message key, token) for a GNU C construct that pycparser has no grammar for, when the
        parser stopped on it: a designator range, a label's address or a computed goto, ``?:``
        without its middle, a nested function."""
        tokens = self._recent()[-8:]
        kinds = [getattr(t, "type", None) for t in tokens]
        for k in range(len(tokens) - 1, 0, -1):
            before, kind = kinds[k - 1], kinds[k]
            opened = max((j for j in range(k) if kinds[j] == "LBRACKET"), default=None)
            if kind == "ELLIPSIS" and opened is not None and "RBRACKET" not in kinds[opened:k]:
                return "gnu:[first ... last]", tokens[k]
            if kind == "LAND" and before not in _OPERAND_ENDS and not str(before).endswith("CONST"):
                label = tokens[k + 1] if k + 1 < len(tokens) else self._after(tokens[k])
                return f"gnu:&&label:{label.value if getattr(label, 'type', None) == 'ID' else 'label'}", tokens[k]
            if before == "GOTO" and kind == "TIMES":
                return "gnu:goto *", tokens[k - 1]
            if before == "CONDOP" and kind == "COLON":
                return "gnu:?:", tokens[k - 1]
            if before == "AUTO" and kind == "ID" and k + 1 < len(tokens) and kinds[k + 1] == "EQUALS":
                return "gnu:auto x =", tokens[k - 1]
        if len(self._scope_stack) > 1 and kinds[-1] == "LBRACE" and len(tokens) > 1 and kinds[-2] == "RPAREN":
            depth = 0
            for k in range(len(tokens) - 2, 0, -1):  # back to the '(' of the parameter list: the name before it
                depth += {"RPAREN": 1, "LPAREN": -1}.get(kinds[k], 0)
                if depth == 0:
                    return (f"gnu:nested:{tokens[k - 1].value}", tokens[k - 1]) if kinds[k - 1] == "ID" else None
        return None

    def _case_range(self) -> Any:
        """The ``...`` of a GNU case range (``case 1 ... 5:``) when the parser stopped on it."""
        stream = getattr(self, "_tokens", None)
        buffer = [t for t in getattr(stream, "_buffer", [])[:getattr(stream, "_index", 0) + 1] if t is not None]
        if not buffer or getattr(buffer[-1], "type", None) != "ELLIPSIS":
            return None
        kinds = [getattr(t, "type", None) for t in reversed(buffer[-8:-1])]
        return buffer[-1] if "CASE" in kinds and "COLON" not in kinds[:kinds.index("CASE")] else None

    def _gnu_extension(self) -> Any:
        """A GNU C keyword among the last tokens read or the next one, if any: pycparser reads
        ``__asm__`` and ``__attribute__`` as names, so they fail a few tokens later with a puzzling
        "syntax error before '::'"."""
        stream = getattr(self, "_tokens", None)
        buffer = [t for t in getattr(stream, "_buffer", [])[:getattr(stream, "_index", 0) + 1] if t is not None]
        return next((t for t in reversed(buffer[-7:]) if getattr(t, "value", None) in _GNU), None)


_GNU = {  # keyword -> why the analysis refuses it
    **dict.fromkeys(("asm", "__asm__", "__asm"), "inline assembly ({}) is not supported: the analysis cannot see "
                                                 "what it does to the packet or the state; write it in C"),
    **dict.fromkeys(("__attribute__", "__attribute"), "{} is not supported: the analysis and the generated code "
                                                      "follow C11's layout and semantics; remove it (for a packed "
                                                      "key struct, order its fields or add explicit padding fields)"),
    **dict.fromkeys(("typeof", "__typeof__", "__typeof"), "{} is not supported: write the type out"),
    "__extension__": "{} is not supported: remove it",
    "__builtin_offsetof": "{} is not supported: use offsetof() from <stddef.h>",
    "__auto_type": "{} declarations, a GNU extension, are not supported: write the type out",
    "auto x =": "auto as an inferred type (C23's auto x = value) is not supported: write the type out",
    "__label__": "local labels ({}), a GNU extension, are not supported (nor is goto): see the analysis' words on "
                 "goto",
    "[first ... last]": "designator ranges ([first ... last] = value), a GNU extension, are not supported: list the "
                        "values, or fill the array in nf_init with a loop",
    "goto *": "computed goto (goto *), a GNU extension, is not supported: the analysis follows structured control "
              "flow; choose the code with a switch",
    "?:": "the conditional with its middle left out (x ?: y), a GNU extension, is not supported: write x ? x : y "
          "(or keep x in a variable first)",
    "case ... :": "case ranges (case 1 ... 5:), a GNU extension, are not supported: give each value its own case "
                  "label, or test the range with if before the switch",
}


_OPERAND_ENDS = {"ID", "TYPEID", "RPAREN", "RBRACKET", "STRING_LITERAL", "PLUSPLUS", "MINUSMINUS"}


def _sentence(msg: str) -> str:
    if msg.startswith("gnu:&&label:"):
        label = msg[len("gnu:&&label:"):]
        return (f"labels as values (&&{label}), a GNU extension, are not supported (nor is goto): the analysis follows "
                "structured control flow; choose the code with a switch")
    if msg.startswith("gnu:nested:"):
        name = msg[len("gnu:nested:"):]
        return (f"nested functions (here {name}), a GNU extension, are not supported: define {name} at file scope, "
                "above the function that calls it, and pass it what it used of that function's locals")
    if msg.startswith("gnu:"):
        keyword = msg[len("gnu:"):]
        return _GNU[keyword].format(keyword)
    if msg.startswith("before: "):
        return f"syntax error before '{msg[len('before: '):]}'"
    if msg == "At end of input":
        return "unexpected end of file (a missing '}' or ';'?)"
    return f"syntax error: {msg[0].lower() + msg[1:] if msg else 'invalid C'}"


def parse_text(text: str, filename: str, spellings: Optional[dict[str, str]] = None,
               columns: Optional[ColumnTable] = None) -> c_ast.FileAST:
    """Parse preprocessed text; line markers in the text give nodes their real file:line:col
    (``spellings`` maps a marker's escaped file name to the real one, ``columns`` gives the source
    columns of lines a macro changed). The project's headers that open the text (nf.h) are parsed
    once per process: they were a fifth of a small NF's analysis."""
    split = _after_headers(text, spellings or {})
    if split is not None:
        try:
            return _parse_after(*split, filename, spellings, columns)
        except (CSyntaxError, _ParseFailure, c_parser.ParseError, RecursionError):
            pass  # the whole text again, for the message and place a whole parse gives
    return _parse(text, filename, spellings, columns)


def _parse(text: str, filename: str, spellings: Optional[dict[str, str]], columns: Optional[ColumnTable]) -> Any:
    parser = _Parser(columns, spellings)
    try:
        return parser.parse(text, filename)
    except _ParseFailure as failure:
        raise CSyntaxError(_sentence(failure.message), location=_respelled(failure.location, spellings)) from None
    except c_parser.ParseError as error:  # raised by code paths that bypass _parse_error
        raise CSyntaxError(f"syntax error: {error}") from None
    except RecursionError:
        where = _respelled(_reached(parser), spellings)
        raise CSyntaxError(("" if where is not None else f"{filename}: ") + DEEP_NESTING, location=where) from None


# pycparser descends once per nesting level, and an else-if chain nests each `else if` in the last.
DEEP_NESTING = ("the code is nested too deeply to parse here (a long else-if chain, some 1,300 branches, or blocks "
                "nested some 550 deep): put long rule lists in a const table walked by a loop, or "
                "split the chain into helper functions")


def _reached(parser: _Parser) -> Optional[Location]:
    """Where the parser was reading when it gave up: the last token it took."""
    stream = getattr(parser, "_tokens", None)
    buffer = getattr(stream, "_buffer", [])
    taken = [t for t in buffer[:getattr(stream, "_index", 0)] if t is not None]
    return _token_location(taken[-1]) if taken else None


def _respelled(location: Optional[Location], spellings: Optional[dict[str, str]]) -> Optional[Location]:
    if location is not None and spellings and location.file in spellings:
        return Location(spellings[location.file], location.line, location.col)
    return location


# The project's headers as parsed, by their preprocessed text: their declarations (shared by every
# AST made after them, and never changed: nothing edits the headers' nodes) and the names they declare
# (True for a typedef name), which is all the parser needs to know to read what follows them.
_HEADERS: dict[str, tuple[tuple[c_ast.Node, ...], dict[str, bool]]] = {}
_KEPT_HEADERS = 4


def _parse_after(header: str, rest: str, filename: str, spellings: Optional[dict[str, str]],
                 columns: Optional[ColumnTable]) -> c_ast.FileAST:
    """The AST of ``header + rest``, the header's part parsed once: the rest is parsed after a
    declaration of each name the header declares (so that its typedef names read as types), and
    those declarations are dropped."""
    hit = _HEADERS.get(header)
    if hit is None:
        parser = _Parser(None, spellings)
        ast = parser.parse(header, filename)
        hit = (tuple(ast.ext), dict(parser._scope_stack[0]))  # the file scope's names
        while len(_HEADERS) >= _KEPT_HEADERS:
            del _HEADERS[next(iter(_HEADERS))]
        _HEADERS[header] = hit
    declarations, names = hit
    stand_ins = "".join(f"typedef int {name};" if typedef else f"int {name};" for name, typedef in names.items())
    ast = _parse(stand_ins + "\n" + rest, filename, spellings, columns)
    return c_ast.FileAST(list(declarations) + ast.ext[len(names):], coord=ast.coord)


def _after_headers(text: str, spellings: dict[str, str]) -> Optional[tuple[str, str]]:
    """``text`` cut where the NF's own code starts, when what comes before is the project's headers
    (and blank lines): the headers' text and the rest, each after a line marker that puts it at its
    file and line. None when the text does not open with them."""
    ours: dict[str, bool] = {}
    start = end = None  # the headers' first line (with the file and line it stands for), the end of their last
    for raw, number, line, offset in numbered_lines(text):
        if raw not in ours:
            ours[raw] = raw not in spellings and is_ours(raw)
        if ours[raw]:
            start = start or (offset, raw, number)
            end = offset + len(line) + 1
        elif line.strip():  # the NF's own code starts here
            if start is None:
                return None
            at, header_file, header_line = start
            return (f'# {header_line} "{header_file}"\n' + text[at:end], f'# {number} "{raw}"\n' + text[offset:])
    return None
