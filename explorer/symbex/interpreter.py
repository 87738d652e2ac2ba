"""The interpreter: executes C from pycparser's AST on concrete and symbolic values.

It composes one visitor per job over one Machine (memory, scopes, the path): statements and
declarations, expressions (rvalues), lvalues, initializers and static types. Calls to nf.h's
functions go to the library's models (``explorer.symbex.models``); the NF's own functions are
inlined.
"""
from __future__ import annotations

from typing import Any, Optional

from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.symbex.ctype import FunctionType, compatible
from explorer.symbex.effects import Effects, ObjectInfo
from explorer.symbex.expressions import Expressions
from explorer.symbex.initializers import Initializers
from explorer.symbex.lvalues import Lvalues
from explorer.symbex.machine import Machine
from explorer.symbex.merging import Merger
from explorer.symbex.memory import Region
from explorer.symbex.packet import PacketSymbols
from explorer.symbex.program import Program, location_of
from explorer.symbex.state import PathState
from explorer.symbex.static_types import StaticTypes
from explorer.symbex.statements import Statements
from explorer.symbex.values import Int, Value


class Interpreter:
    """One run: nf_init (mode "init") or one path of nf_process (mode "process")."""

    def __init__(self, program: Program, memory: dict[str, Region], state: PathState, mode: str,
                 objects: dict[str, ObjectInfo], packet: Optional[PacketSymbols] = None):
        self.machine = Machine(program, memory, state, mode, objects, packet, self.constant)
        self.statements = Statements(self)
        self.expressions = Expressions(self)
        self.lvalues = Lvalues(self)
        self.initializers = Initializers(self)
        self.static_types = StaticTypes(self)
        self.merger = Merger(self)

    @property
    def effects(self) -> Effects:
        return self.machine.effects

    def constant(self, node: Any) -> int:
        """The value of a constant expression (array sizes, enumerators, designators, static asserts)."""
        value = self.expressions.value(node)
        if not isinstance(value, Int) or not isinstance(value.v, int):
            raise self.machine.fail(node, "a constant expression is required here")
        return value.signed_value()

    def declare(self, ext: Any) -> None:
        """One file-scope item of the NF: a function definition, a declaration, a typedef, ..."""
        program = self.machine.program
        if isinstance(ext, c_ast.FuncDef):
            name = ext.decl.name
            if name in program.functions:
                raise UnsupportedError(f"function {name} is defined twice", location=location_of(ext))
            ft = self.machine.resolve_type(ext.decl.type)
            declared = program.prototypes.get(name)
            if declared is not None and not compatible(declared, ft):
                # gcc refuses the file ("conflicting types"); without this, analyze and solve
                # went on and only the first build said so.
                raise UnsupportedError(f"conflicting types for {name}: declared as {_signature(name, declared)}, "
                                       f"defined here as {_signature(name, ft)}", location=location_of(ext))
            program.functions[name] = ext
            program.prototypes[name] = ft
        elif isinstance(ext, c_ast.Decl):
            self.statements.declare_global(ext)
        elif isinstance(ext, (c_ast.Typedef, c_ast.StaticAssert)):
            self.statements.visit(ext)
        elif not isinstance(ext, c_ast.Pragma):
            raise UnsupportedError(f"unsupported file-scope construct ({type(ext).__name__})",
                                   location=location_of(ext))

    def call(self, name: str, args: list[Value]) -> Optional[Value]:
        """Run the NF's function ``name`` (nf_init or nf_process) on ``args``."""
        return self.statements.call_function(name, args, self.machine.program.functions[name])


def _signature(name: str, ft: FunctionType) -> str:
    """``ret name(params)``, as C writes a prototype."""
    params = ", ".join(map(str, ft.params)) or "void"
    return f"{ft.ret} {name}({params}{', ...' if ft.variadic else ''})"

