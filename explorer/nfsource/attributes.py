"""GNU ``__attribute__`` lists and C23 ``[[...]]`` attributes that change neither layout nor meaning,
blanked out before parsing.

pycparser has no ``__attribute__``; the analysis refuses it, since ``packed`` or ``aligned`` would
give structs a layout the analysis does not follow. But C programmers also write
``__attribute__((unused))`` on a parameter or ``static inline __attribute__((always_inline))`` on a
helper, which say nothing about what the code computes: those lists (every attribute in them one
of ``HARMLESS``) are turned into spaces in the text the parser reads, at the same columns, so that
every AST coordinate still points at its token in the preprocessed text (the source columns and
generate's edits are found there). gcc still compiles the NF as written. The same holds for the
statement attribute ``fallthrough`` (``__attribute__((fallthrough));`` or ``[[fallthrough]];`` at the
end of a switch case, an empty statement once blanked) and for C23's spelling of the others
(``[[maybe_unused]]``, ``[[gnu::always_inline]]``), which pycparser refused unless told to read C23.
"""
from __future__ import annotations

from pycparser.c_lexer import CLexer

# Hints to the compiler or to its warnings: the code they sit on means the same without them.
HARMLESS = frozenset({"unused", "used", "maybe_unused", "always_inline", "noinline", "cold", "hot",
                      "warn_unused_result", "flatten", "artificial", "no_instrument_function",
                      "fallthrough", "nodiscard", "deprecated"})
_KEYWORDS = frozenset({"__attribute__", "__attribute"})


def blank_harmless_attributes(text: str) -> str:
    """``text`` with its harmless ``__attribute__((...))`` lists replaced by spaces (newlines kept);
    the text itself when it has none, or when it cannot be cut into tokens (the parser then says
    what is wrong)."""
    if "__attribute" not in text and "[[" not in text:
        return text
    try:
        tokens = _tokens(text)
    except ValueError:
        return text
    spans = []
    i = 0
    while i < len(tokens):
        value, start = tokens[i]
        if value in _KEYWORDS:
            end, names = _attribute_list(tokens, i + 1)
            if end is not None and names and all(_plain(n) in HARMLESS for n in names):
                spans.append((start, tokens[end][1] + 1))
                i = end + 1
                continue
        elif "".join(value.split()) == "[[":
            end, names = _standard_attributes(tokens, i + 1)
            if end is not None and names and all(_plain(n) in HARMLESS for n in names):
                spans.append((start, tokens[end][1] + len(tokens[end][0])))
                i = end + 1
                continue
        i += 1
    if not spans:
        return text
    out = list(text)
    for a, b in spans:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


def _tokens(text: str) -> list[tuple[str, int]]:
    """(spelling, offset) of every token, line by line (a token never spans lines in preprocessed
    text; line markers are skipped); ValueError on a character C has no token for."""
    def fail(message: str, line: int, column: int) -> None:
        raise ValueError(message)

    out: list[tuple[str, int]] = []
    lexer = CLexer(fail)
    start = 0
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            lexer.input(line)
            while True:
                tok = lexer.token()
                if tok is None:
                    break
                out.append((tok.value, start + tok.column - 1))
        start += len(line) + 1
    return out


def _attribute_list(tokens: list[tuple[str, int]], i: int) -> tuple:
    """After ``__attribute__`` at ``tokens[i - 1]``: the index of the list's last ``)`` and the
    attribute names in it, or (None, ()) when it is not ``((name, name(args), ...))``."""
    if [v for v, _ in tokens[i:i + 2]] != ["(", "("]:
        return None, ()
    depth, names, expect_name = 0, [], True
    for k in range(i, len(tokens)):
        value = tokens[k][0]
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
            if depth == 0:
                return k, tuple(names)
        elif depth == 2 and value == ",":
            expect_name = True
        elif depth == 2 and expect_name:
            names.append(value)
            expect_name = False
    return None, ()


def _standard_attributes(tokens: list[tuple[str, int]], i: int) -> tuple:
    """After ``[[`` at ``tokens[i - 1]``: the index of its ``]]`` and the attribute names in it (a
    ``gnu::`` prefix dropped), or (None, ()) when it is not ``[[name, ns::name(args), ...]]``."""
    depth, names, expect_name = 0, [], True
    for k in range(i, len(tokens)):
        value = tokens[k][0]
        if value == "(":
            depth += 1
        elif value == ")":
            depth -= 1
        elif value.startswith('"'):  # an argument (the lexer reads [[deprecated("why")]] without parentheses)
            continue
        elif depth == 0 and value == "]]":
            return k, tuple(names)
        elif depth == 0 and value == ",":
            expect_name = True
        elif depth == 0 and value == "::" and names:
            expect_name = True
            names.pop()
        elif depth == 0 and expect_name:
            names.append(value)
            expect_name = False
        elif depth == 0:  # two names in a row, a stray token: not an attribute list read here
            return None, ()
    return None, ()


def _plain(name: str) -> str:
    """``__unused__`` and ``unused`` are one attribute."""
    return name[2:-2] if name.startswith("__") and name.endswith("__") and len(name) > 4 else name
