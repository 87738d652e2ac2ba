"""The two kinds of C expression nfx evaluates without a compiler: a --define's value (checked to
be one integer expression of the NF language) and NF_DEVICES (evaluated through the macro table)."""
from __future__ import annotations

from typing import Callable, Mapping, Optional

from pycparser import c_ast, c_parser

from explorer.errors import ConfigError
from explorer.nfsource.cpp import Macro

MAX_DEVICES = 64  # NF_DEVICES: what the analysis enumerates (and twice DPDK's default port count)


_PRELUDE = ("typedef unsigned char uint8_t; typedef unsigned short uint16_t; typedef unsigned int uint32_t; "
            "typedef unsigned long long uint64_t; typedef signed char int8_t; typedef short int16_t; "
            "typedef int int32_t; typedef long long int64_t; typedef unsigned long size_t; "
            "typedef _Bool bool; typedef uint64_t nf_time_t;\n")
_PRELUDE_DECLS = 11
_INT_TYPES = ("int", "unsigned int", "long int", "unsigned long int", "long long int", "unsigned long long int",
              "char")


def _expression(text: str) -> c_ast.Node:
    """``text`` parsed as one C expression (raises ValueError when it is not one)."""
    try:
        ast = c_parser.CParser().parse(f"{_PRELUDE}int __nfx_value = ({text});\n", "<define>")
    except (c_parser.ParseError, RecursionError, AssertionError, IndexError) as error:
        raise ValueError(str(error) or "not a C expression") from None
    if len(ast.ext) != _PRELUDE_DECLS + 1 or ast.ext[-1].init is None:
        raise ValueError("not one C expression")
    return ast.ext[-1].init


def _kinds(node: c_ast.Node) -> set[str]:
    """The constant kinds and constructs in an expression that the NF language has no use for."""
    found = set()
    if isinstance(node, c_ast.Constant):
        if node.type in ("float", "double", "long double"):
            found.add("floating-point")
        elif node.type not in _INT_TYPES:
            found.add("a string")
        elif node.type != "char" and _integer(node.value) >= 1 << 64:
            found.add(f"a number past 64 bits ({node.value})")
    elif isinstance(node, (c_ast.Assignment, c_ast.Compound, c_ast.CompoundLiteral, c_ast.InitList)):
        found.add("an assignment or compound")
    elif isinstance(node, c_ast.UnaryOp) and node.op in ("++", "--", "p++", "p--"):
        found.add("an assignment or compound")
    for _, child in node.children():
        found |= _kinds(child)
    return found


def _integer(literal: str) -> int:
    """The value of a C integer literal (decimal, octal, hex or binary, with any u/l suffix)."""
    digits = literal.rstrip("uUlL")
    if digits[:2].lower() in ("0x", "0b"):
        return int(digits, 0)
    return int(digits, 8) if len(digits) > 1 and digits.startswith("0") else int(digits)


def _balanced(text: str) -> bool:
    """Whether every parenthesis of ``text`` closes one it opened: a value is pasted where its macro
    is used, so ``1)+(2`` would change the expression around it."""
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def check_defines(defines: Optional[Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    """The --defines as sorted (name, value) pairs, once their spelling is checked: a name is a C
    identifier, a value is one C integer expression on one line."""
    checked = []
    for name, value in sorted((defines or {}).items()):
        name, value = str(name), str(value)
        if not (name.isidentifier() and name.isascii()):
            raise ConfigError(f"define {name}={value}: {name!r} is not a C identifier")
        if not value.strip() or "\n" in value or "\r" in value or "\0" in value:
            raise ConfigError(f"define {name}: needs a one-line value (NAME=VALUE)")
        try:
            if not _balanced(value):
                raise ValueError("unbalanced parentheses")
            kinds = _kinds(_expression(value))
        except ValueError:
            raise ConfigError(f"define {name}={value}: the value is not a C expression") from None
        big = sorted(k for k in kinds if k.startswith("a number past 64 bits"))
        if big:
            raise ConfigError(f"define {name}={value}: {big[0]}; C has no integer that wide")
        if kinds:
            raise ConfigError(f"define {name}={value}: {' and '.join(sorted(kinds))} values are not part of the "
                              f"NF language; give an integer expression")
        checked.append((name, value.strip()))
    return tuple(checked)


# ---- NF_DEVICES ---------------------------------------------------------------------------------------

def _c_division(x: int, y: int) -> int:
    """C's division: truncated toward zero."""
    return abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)


_OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
    "/": _c_division, "%": lambda x, y: x - y * _c_division(x, y),
    "<<": lambda x, y: x << y, ">>": lambda x, y: x >> y, "|": lambda x, y: x | y, "&": lambda x, y: x & y,
    "^": lambda x, y: x ^ y, "==": lambda x, y: int(x == y), "!=": lambda x, y: int(x != y),
    "<": lambda x, y: int(x < y), ">": lambda x, y: int(x > y), "<=": lambda x, y: int(x <= y),
    ">=": lambda x, y: int(x >= y), "&&": lambda x, y: int(bool(x and y)), "||": lambda x, y: int(bool(x or y)),
}


def _evaluate(node: c_ast.Node, macros: Mapping[str, Macro], depth: int = 0) -> int:
    """The value of an integer constant expression; object-like macros are expanded from ``macros``."""
    if depth > 32:
        raise ValueError("too deeply nested")
    if isinstance(node, c_ast.Constant) and node.type in _INT_TYPES[:-1]:
        text = node.value.lower().rstrip("ul")
        if text.startswith(("0x", "0b")):
            return int(text[2:], 16 if text[1] == "x" else 2)
        return int(text, 8 if len(text) > 1 and text[0] == "0" else 10)
    if isinstance(node, c_ast.ID):
        macro = macros.get(node.name)
        if macro is None or macro.function_like:
            raise ValueError(f"{node.name} is not an object-like macro")
        return _evaluate(_expression(macro.value), macros, depth + 1)
    if isinstance(node, c_ast.Cast):
        return _evaluate(node.expr, macros, depth + 1)
    if isinstance(node, c_ast.UnaryOp) and node.op in ("-", "+", "~", "!"):
        value = _evaluate(node.expr, macros, depth + 1)
        return {"-": -value, "+": value, "~": ~value, "!": int(not value)}[node.op]
    if isinstance(node, c_ast.TernaryOp):
        chosen = node.iftrue if _evaluate(node.cond, macros, depth + 1) else node.iffalse
        return _evaluate(chosen, macros, depth + 1)
    if isinstance(node, c_ast.BinaryOp):
        a, b = _evaluate(node.left, macros, depth + 1), _evaluate(node.right, macros, depth + 1)
        if node.op in ("/", "%") and b == 0:
            raise ValueError("division by zero")
        if node.op in ("<<", ">>") and not 0 <= b < 64:
            raise ValueError("shift out of range")
        if node.op in _OPERATIONS:
            return _OPERATIONS[node.op](a, b)
    raise ValueError("not an integer constant expression")


def nf_devices(macros: Mapping[str, Macro], path: str) -> int:
    """NF_DEVICES from the macro table: an integer constant expression from 1 to MAX_DEVICES."""
    macro = macros.get("NF_DEVICES")
    value = macro.value if macro is not None else "2"
    try:
        devices = _evaluate(_expression(value), macros)
    except (ValueError, RecursionError):
        raise ConfigError(f"{path}: NF_DEVICES must be an integer constant from 1 to {MAX_DEVICES}, "
                          f"not {value!r}") from None
    if not 1 <= devices <= MAX_DEVICES:
        raise ConfigError(f"{path}: NF_DEVICES is {devices}; it must be an integer constant from 1 to {MAX_DEVICES}")
    return devices
