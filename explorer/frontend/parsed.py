"""``parse_nf``: an NF's C file to a ParsedNF (AST, configuration macros, devices, source map)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pycparser import c_ast

from explorer.errors import ConfigError, CSyntaxError
from explorer.frontend.parser import parse_text
from explorer.frontend.preprocessor import LANGUAGE_MACROS, preprocess, tested_macros
from explorer.ir import Location

MAX_DEVICES = 64


@dataclass(frozen=True)
class SourceMap:
    """The source lines of the NF and its headers, to point at and quote code by Location."""

    files: tuple[tuple[str, tuple[str, ...]], ...]

    def location(self, coord: Any) -> Optional[Location]:
        """A pycparser Coord as an ir.Location (None for nodes without one)."""
        if coord is None or getattr(coord, "line", None) is None:
            return None
        return Location(str(coord.file), int(coord.line), int(getattr(coord, "column", 0) or 0))

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
    text: str = field(default="", compare=False, hash=False, repr=False)  # preprocessed: where coords point

    @property
    def name(self) -> str:
        return Path(self.path).stem


def _eval_constant(node: Any) -> int:
    """Evaluate the small integer constant expressions NF_DEVICES may be defined as."""
    if isinstance(node, c_ast.Constant) and node.type in ("int", "unsigned int", "long int",
                                                            "unsigned long int", "long long int",
                                                            "unsigned long long int"):
        text = node.value.lower().rstrip("ul")
        base = 16 if text.startswith("0x") else 8 if len(text) > 1 and text.startswith("0") else 10
        return int(text, base)
    if isinstance(node, c_ast.UnaryOp) and node.op in ("-", "+", "~"):
        value = _eval_constant(node.expr)
        return {"-": -value, "+": value, "~": ~value}[node.op]
    if isinstance(node, c_ast.Cast):
        return _eval_constant(node.expr)
    if isinstance(node, c_ast.BinaryOp) and node.op in ("+", "-", "*", "/", "<<", ">>", "|", "&"):
        a, b = _eval_constant(node.left), _eval_constant(node.right)
        if node.op == "/":
            if b == 0:
                raise ValueError("division by zero")
            return a // b
        return {"+": a + b, "-": a - b, "*": a * b, "<<": a << b, ">>": a >> b, "|": a | b, "&": a & b}[node.op]
    raise ValueError("not an integer constant")


def _devices(value: str, path: str) -> int:
    try:
        ast = parse_text(f"int nfx_devices = ({value});\n", "<NF_DEVICES>")
        devices = _eval_constant(ast.ext[0].init)
    except (CSyntaxError, ValueError, IndexError, AttributeError):
        raise ConfigError(f"{path}: NF_DEVICES must be an integer constant, not '{value}'") from None
    if not 1 <= devices <= MAX_DEVICES:
        raise ConfigError(f"{path}: NF_DEVICES is {devices}; it must be between 1 and {MAX_DEVICES}")
    return devices


def _read_lines(name: str) -> tuple[str, ...]:
    try:
        return tuple(Path(name).read_text(errors="replace").splitlines())
    except OSError:
        return ()


def parse_nf(path: str | Path, defines: Optional[dict[str, str]] = None) -> ParsedNF:
    """Preprocess and parse the NF at ``path`` with configuration ``defines`` (``{NAME: VALUE}``).

    Raises CSyntaxError for preprocessor or parse errors (file:line:col) and ConfigError for a
    define that is not one of the NF's configuration macros, or one the NF does not let override.
    """
    path = str(path)
    defines = dict(defines or {})
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such NF file")
    for name, value in defines.items():
        if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
            raise ConfigError(f"--define {name}={value}: '{name}' is not a macro name")
        if "\n" in value:
            raise ConfigError(f"--define {name}: the value must be on one line")
    pre = preprocess(path, defines)
    if defines:
        configurable = set(pre.nf_defined) | set(tested_macros(path)) | set(LANGUAGE_MACROS)
        unknown = sorted(set(defines) - configurable)
        if unknown:
            known = ", ".join(sorted(n for n in configurable if not n.startswith("NF_") or n in LANGUAGE_MACROS))
            raise ConfigError(f"{path}: unknown --define {', '.join(unknown)}; the NF's configuration macros are: "
                              f"{known or '(none)'}")
    final = {m.name: m for m in pre.final}
    for name, value in sorted(defines.items()):
        macro = final.get(name)
        if macro is not None and macro.value != value and macro.file != "<command-line>":
            raise ConfigError(f"{macro.file}:{macro.line}: {name} is defined unconditionally, so --define "
                              f"{name}={value} has no effect; guard its #define with #ifndef {name}")
    ast = parse_text(pre.text, path)
    config_names = (set(pre.nf_defined) | set(defines) | set(LANGUAGE_MACROS))
    effective = tuple(sorted((name, final[name].value) for name in config_names
                             if name in final and not final[name].function_like))
    devices_macro = final.get("NF_DEVICES")
    devices = _devices(devices_macro.value if devices_macro else "2", path)
    source_map = SourceMap(tuple((name, _read_lines(name)) for name in pre.files))
    return ParsedNF(path=path, ast=ast, defines=effective, devices=devices, source_map=source_map,
                    text=pre.text)
