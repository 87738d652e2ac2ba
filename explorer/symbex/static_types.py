"""The static type of an expression, without evaluating it: for ``sizeof``, the arms of ``?:`` and
the key layouts of state objects. C's typing rules only, one ``visit_<Node>`` per expression kind."""
from __future__ import annotations

from typing import Any

from pycparser import c_ast

from explorer.symbex import ctype as ct
from explorer.symbex.ctype import ArrayType, CType, FunctionType, IntType, PointerType, StructType
from explorer.symbex.literals import string_bytes
from explorer.symbex.visitor import Visitor

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "&&", "||"})


class StaticTypes(Visitor):
    def type_of(self, node: Any) -> CType:
        return self.visit(node)

    def generic_visit(self, node: Any) -> CType:
        raise self.machine.fail(node, f"cannot determine the type of this expression ({type(node).__name__})")

    def _decayed(self, node: Any) -> CType:
        return ct.strip_array(self.visit(node))

    def visit_ID(self, node: Any) -> CType:
        m = self.machine
        hit = m.lookup_var(node.name)
        if hit is not None:
            return hit[1]
        if m.lookup_enum(node.name) is not None:
            return ct.INT
        if node.name in m.program.prototypes:
            return m.program.prototypes[node.name]
        raise m.fail(node, unknown_identifier(node.name))

    def visit_Constant(self, node: Any) -> CType:
        if node.type == "string":
            return ArrayType(ct.CHAR, len(string_bytes(node)))
        if node.type == "char":
            return ct.INT
        return self.it.expressions.visit(node).ctype

    def visit_Cast(self, node: Any) -> CType:
        return self.machine.resolve_type(node.to_type)

    def visit_UnaryOp(self, node: Any) -> CType:
        if node.op in ("sizeof", "_Alignof"):
            return ct.SIZE_T
        inner = self.visit(node.expr)
        if node.op == "&":
            return PointerType(inner)
        if node.op == "*":
            inner = ct.strip_array(inner)
            if not isinstance(inner, PointerType):
                raise self.machine.fail(node, "dereference of a non-pointer")
            return inner.target
        if node.op == "!":
            return ct.INT
        if node.op in ("-", "+", "~"):
            return ct.promote(inner) if isinstance(inner, IntType) else inner
        return inner

    def visit_BinaryOp(self, node: Any) -> CType:
        if node.op in _COMPARISONS:
            return ct.INT
        a, b = self._decayed(node.left), self._decayed(node.right)
        if isinstance(a, PointerType) and isinstance(b, PointerType):
            return ct.PTRDIFF_T
        if isinstance(a, PointerType):
            return a
        if isinstance(b, PointerType):
            return b
        if isinstance(a, IntType) and isinstance(b, IntType):
            return ct.promote(a) if node.op in ("<<", ">>") else ct.common_type(a, b)
        raise self.machine.fail(node, f"invalid operands to {node.op}")

    def visit_StructRef(self, node: Any) -> CType:
        base = self.visit(node.name)
        if node.type == "->":
            base = ct.strip_array(base)
            base = base.target if isinstance(base, PointerType) else base
        if not isinstance(base, StructType):
            raise self.machine.fail(node, "member access on a non-struct")
        field = base.field(node.field.name)
        if field is None:
            raise self.machine.fail(node.field, f"{base} has no member {node.field.name}")
        return field.ctype

    def visit_ArrayRef(self, node: Any) -> CType:
        base = self._decayed(node.name)
        if isinstance(base, PointerType):
            return base.target
        other = self._decayed(node.subscript)
        if isinstance(other, PointerType):
            return other.target
        raise self.machine.fail(node, "subscript of a non-array")

    def visit_FuncCall(self, node: Any) -> CType:
        m = self.machine
        if not isinstance(node.name, c_ast.ID):
            return self.generic_visit(node)
        name = node.name.name
        ft = m.program.prototypes.get(name)
        if ft is None and name in m.program.functions:
            ft = m.resolve_type(m.program.functions[name].decl.type)
        if isinstance(ft, FunctionType):
            return ft.ret
        raise m.fail(node, f"call to unknown function {name}()")

    def visit_TernaryOp(self, node: Any) -> CType:
        a, b = self._decayed(node.iftrue), self._decayed(node.iffalse)
        if isinstance(a, IntType) and isinstance(b, IntType):
            return ct.common_type(a, b)
        return a

    def visit_Assignment(self, node: Any) -> CType:
        return self.visit(node.lvalue)

    def visit_CompoundLiteral(self, node: Any) -> CType:
        return self.machine.resolve_type(node.type)

    def visit_ExprList(self, node: Any) -> CType:
        return self.visit(node.exprs[-1])

    def visit_Typename(self, node: Any) -> CType:
        return self.machine.resolve_type(node)


def unknown_identifier(name: str) -> str:
    """Why ``name`` cannot be read: the function-name strings gcc predefines are named as such."""
    if name in ("__func__", "__FUNCTION__", "__PRETTY_FUNCTION__"):
        return (f"{name} (the enclosing function's name as a string) is not supported: write the name as a "
                "string literal where it is needed")
    return f"unknown identifier '{name}'"
