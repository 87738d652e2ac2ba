"""Expressions: the rvalue of each kind of C expression, one ``visit_<Node>`` per kind.

Objects are found by the lvalue visitor and read through the machine; calls go to the NF's own
functions (inlined by the statement visitor) or to the library's models. A symbolic ``&&``, ``||``
or ``?:`` whose other operands have no side effects becomes one condition or one ``If`` term; only
otherwise does the path fork.
"""
from __future__ import annotations

import warnings
from typing import Any

import z3
from pycparser import c_ast

from explorer.errors import AnalysisWarning
from explorer.symbex import ctype as ct
from explorer.symbex.bitvec import bv, from_state
from explorer.symbex.ctype import ArrayType, FunctionType, IntType, PointerType, StructType, VoidType
from explorer.symbex.literals import char_value, int_constant, string_bytes
from explorer.symbex.lvalues import is_lvalue
from explorer.symbex.memory import value_of
from explorer.symbex.models import CallContext, model_for
from explorer.symbex.render import Renderer
from explorer.symbex.state import NeedsFork
from explorer.symbex.static_types import unknown_identifier
from explorer.symbex.values import (Agg, Int, Ptr, SemanticsError, Value, add, arithmetic, bool_int, compare,
                                    convert_int, logical_not, mask, pointer_compare, truth, unary)
from explorer.symbex.visitor import Visitor
from explorer.wording import count

ASM_NAMES = frozenset({"asm", "__asm__", "__asm"})
# Expressions pycparser reads that the analysis has no model for, in the words of their C spelling
# (the parser's class name told the user nothing).
_UNSUPPORTED = {
    "Compound": "statement expressions ({ ... }), a GNU extension, are not supported: put the statements "
                "before the expression, or in a helper function that returns the value",
    "GenericSelection": "_Generic selections are not supported: write out the branch for the argument's type",
}
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


class Expressions(Visitor):
    def value(self, node: Any) -> Value:
        """The rvalue of an expression (arrays decay to pointers)."""
        return self.visit(node)

    def truth(self, node: Any) -> Any:
        """The C truth of an expression: a Python bool when known, else a Z3 Bool."""
        try:
            return truth(self.visit(node))
        except SemanticsError as error:
            raise self.machine.fail(node, str(error)) from None

    def generic_visit(self, node: Any) -> Value:
        kind = type(node).__name__
        raise self.machine.fail(node, _UNSUPPORTED.get(kind, f"this kind of expression ({kind}) is not supported"))

    def _object(self, node: Any) -> Value:
        ptr, t = self.it.lvalues.address(node, reading=True)
        return self.machine.value_at(ptr, t, node)

    # ------------------------------------------------------------------ names and literals
    def visit_ID(self, node: Any) -> Value:
        m = self.machine
        hit = m.lookup_var(node.name)
        if hit is not None:
            region, t = hit
            return m.value_at(Ptr(PointerType(t), region, 0), t, node)
        enum = m.lookup_enum(node.name)
        if enum is not None:
            return Int(ct.INT, enum & mask(32))
        if m.is_function(node.name):
            raise m.fail(node, f"function pointers are not supported (here {node.name} is used as a value)")
        raise m.fail(node, unknown_identifier(node.name))

    def visit_Constant(self, node: Any) -> Value:
        m = self.machine
        if node.type == "string":
            data = string_bytes(node)
            name = m.fresh("string")
            region = m.new_region(name, "const", "a string literal", len(data))
            region.cells = list(data)
            region.readonly = True
            return Ptr(PointerType(ct.CHAR), name, 0)
        if node.type == "char":
            return Int(ct.INT, char_value(node) & mask(32))
        if node.type in ("float", "double", "long double"):
            raise m.fail(node, "floating-point constants are not supported")
        try:
            value, t = int_constant(node.value)
        except ValueError:
            raise m.fail(node, f"invalid integer constant {node.value}") from None
        return Int(t, value)

    def visit_Typename(self, node: Any) -> Value:
        raise self.machine.fail(node, "a type name is not a value")

    def visit_InitList(self, node: Any) -> Value:
        raise self.machine.fail(node, "a brace initializer is only valid in a declaration or compound literal")

    # ------------------------------------------------------------------ objects
    def visit_ArrayRef(self, node: Any) -> Value:
        return self._object(node)

    def visit_CompoundLiteral(self, node: Any) -> Value:
        return self._object(node)

    def visit_StructRef(self, node: Any) -> Value:
        if node.type == "." and not is_lvalue(node.name):
            return self._member_of_value(node)
        return self._object(node)

    def _member_of_value(self, node: Any) -> Value:
        """``f().member``: a member of a struct that lives in no object."""
        m = self.machine
        agg = self.visit(node.name)
        if not isinstance(agg, Agg) or not isinstance(agg.ctype, StructType):
            raise m.fail(node, "member access on a non-struct")
        field = agg.ctype.field(node.field.name)
        if field is None:
            raise m.fail(node.field, f"{agg.ctype} has no member {node.field.name}")
        cells = agg.cells[field.offset:field.offset + field.ctype.size]
        if isinstance(field.ctype, ArrayType):
            raise m.fail(node, "array member of a struct returned by value")
        try:
            return value_of(cells, field.ctype)
        except SemanticsError as error:
            raise m.fail(node, str(error)) from None

    # ------------------------------------------------------------------ operators
    def visit_Cast(self, node: Any) -> Value:
        m = self.machine
        t = m.resolve_type(node.to_type)
        value = self.visit(node.expr)
        if t == ct.VOID:
            return Int(ct.INT, 0)
        if isinstance(t, FunctionType) or (isinstance(t, PointerType) and isinstance(t.target, FunctionType)):
            raise m.fail(node, "function pointers are not supported")
        if isinstance(t, StructType) and t.union:
            raise m.fail(node, f"a cast to a union ({t}), a GNU extension, is not supported: declare a {t} and set "
                               "the member the value is for")
        if isinstance(t, (StructType, ArrayType)):
            raise m.fail(node, f"cast to {t} is not valid C")
        return m.convert(value, t, node)

    def visit_UnaryOp(self, node: Any) -> Value:
        m = self.machine
        op = node.op
        if op in ("sizeof", "_Alignof"):
            t = (m.resolve_type(node.expr) if isinstance(node.expr, c_ast.Typename)
                 else self.it.static_types.type_of(node.expr))
            if op == "_Alignof":
                return Int(ct.SIZE_T, t.align)
            if isinstance(t, (VoidType, FunctionType)) or (isinstance(t, StructType) and not t.complete):
                raise m.fail(node, f"sizeof of incomplete type {t}")
            return Int(ct.SIZE_T, t.size)
        if op == "&":
            if isinstance(node.expr, c_ast.ID) and m.lookup_var(node.expr.name) is None and \
                    m.is_function(node.expr.name):
                raise m.fail(node, f"function pointers are not supported (here &{node.expr.name})")
            ptr, t = self.it.lvalues.address(node.expr)
            return ptr.retype(PointerType(t))
        if op == "*":
            return self._object(node)
        if op in ("++", "--", "p++", "p--"):
            ptr, t = self.it.lvalues.address(node.expr)
            old = m.load(ptr, t, node)
            new = m.convert(self._add(old, Int(ct.INT, 1), "+" if "+" in op else "-", node), t, node)
            m.store(ptr, t, new, node)
            return new if not op.startswith("p") else old
        value = self.visit(node.expr)
        try:
            if op == "!":
                return logical_not(value)
            if not isinstance(value, Int):
                raise m.fail(node, f"operator {op} needs an integer")
            return unary(op, value)
        except SemanticsError as error:
            raise m.fail(node, str(error)) from None

    def _add(self, a: Value, b: Value, op: str, node: Any) -> Value:
        try:
            return add(a, b, op)
        except SemanticsError as error:
            raise self.machine.fail(node, str(error)) from None

    def visit_BinaryOp(self, node: Any) -> Value:
        m = self.machine
        op = node.op
        if op == "&&" or op == "||":
            return self._logical(node)
        a = self.visit(node.left)
        b = self.visit(node.right)
        if op in ("+", "-"):
            return self._add(a, b, op, node)
        try:
            if op in _COMPARISONS:
                if isinstance(a, Ptr) or isinstance(b, Ptr):
                    a = a if isinstance(a, Ptr) else m.convert(a, PointerType(ct.VOID), node)
                    b = b if isinstance(b, Ptr) else m.convert(b, PointerType(ct.VOID), node)
                    return pointer_compare(op, a, b)
                if not (isinstance(a, Int) and isinstance(b, Int)):
                    raise m.fail(node, f"invalid operands to {op}")
                self._negative_made_unsigned(a, b, node)
                self._negative_made_unsigned(b, a, node)
                return compare(op, a, b)
            if not (isinstance(a, Int) and isinstance(b, Int)):
                raise m.fail(node, f"invalid operands to {op}")
            self._defined(op, a, b, node)
            return arithmetic(op, a, b)
        except SemanticsError as error:
            raise m.fail(node, str(error)) from None

    def _negative_made_unsigned(self, constant: Int, other: Int, node: Any) -> None:
        """Warn when a comparison turns a negative constant into a huge unsigned number, as C's usual
        arithmetic conversions do (``now > AGE`` with ``--define AGE=-5`` never holds, so nothing
        expires): gcc's -Wsign-compare says so, but the build keeps it a warning that nobody sees."""
        if not (isinstance(constant.v, int) and not isinstance(other.v, int)):
            return
        t = ct.common_type(constant.ctype, other.ctype)
        value = constant.signed_value()
        if t.signed or value >= 0:
            return
        location = self.machine.loc(node)
        warnings.warn(AnalysisWarning(
            f"{location}: {value} is compared with an unsigned {t.bits}-bit value, so C reads it as "
            f"{value & mask(t.bits)}; if it came from a define (an expiry, a capacity), give a value of 0 "
            f"or more", location, f"warning: {value} compared as unsigned ({value & mask(t.bits)})"),
            stacklevel=2)

    def _defined(self, op: str, a: Int, b: Int, node: Any) -> None:
        """Refuse a division by a packet-derived value that can be 0 on this path, or a shift by one
        that can reach the width: C leaves both undefined, and the built NF would not do what the
        analysis assumes (x86 stops a division by zero with SIGFPE and takes shift counts modulo
        the width, where Z3 answers all ones and 0). Values from state are left to the NF: a cell
        may hold what only the NF knows is never zero."""
        if isinstance(b.v, int) or from_state(b.v):
            return
        state = self.machine.state
        if op in ("/", "%"):
            bad, what = b.v == 0, "division by"
            fix = "test it first (e.g. return NF_DROP when it is 0)"
        elif op in ("<<", ">>"):
            width = ct.promote(a.ctype).bits
            if width >= 1 << b.v.size():  # a count too narrow to reach the width
                return
            bad, what = z3.UGE(b.v, width), "shift by"
            fix = f"mask it first (e.g. & {width - 1})"
        else:
            return
        if state.possible(bad):
            example = state.example(bad, b.v)
            raise self.machine.fail(node, f"{what} {Renderer().text(b.v)}, which can be {example} on this path: "
                                          f"undefined in C, so the built NF would not do what the analysis "
                                          f"assumes; {fix}")

    def _logical(self, node: Any) -> Value:
        """``&&`` / ``||``: short-circuit when the left side is known; when it is symbolic and the right
        side has no side effects, one condition ``a && b`` (no fork); otherwise fork on the left."""
        state = self.machine.state
        is_and = node.op == "&&"
        left = self.truth(node.left)
        if isinstance(left, bool):
            if left != is_and:
                return bool_int(left)
            return bool_int(self.truth(node.right))
        if self.machine.program.facts.pure(node.right):
            state.assumptions.append(left if is_and else z3.Not(left))
            try:
                right = self.truth(node.right)
            except NeedsFork:
                right = None
            finally:
                state.assumptions.pop()
            if right is not None:
                if isinstance(right, bool):
                    if is_and:
                        return bool_int(left) if right else bool_int(False)
                    return bool_int(True) if right else bool_int(left)
                return bool_int(z3.And(left, right) if is_and else z3.Or(left, right))
        if state.branch(left, self.machine.loc(node.left)) != is_and:
            return bool_int(not is_and)
        return bool_int(self.truth(node.right))

    def visit_TernaryOp(self, node: Any) -> Value:
        m = self.machine
        cond = self.truth(node.cond)
        if isinstance(cond, bool):
            return self._arm(node, self.visit(node.iftrue if cond else node.iffalse))
        if m.program.facts.pure(node.iftrue) and m.program.facts.pure(node.iffalse):
            merged = self._merged_arms(node, cond)
            if merged is not None:
                return merged
        if m.state.branch(cond, m.loc(node.cond)):
            return self._arm(node, self.visit(node.iftrue))
        return self._arm(node, self.visit(node.iffalse))

    def _merged_arms(self, node: Any, cond: Any) -> Any:
        """``cond ? a : b`` as one ``If`` term when both arms are integers evaluated without a fork."""
        assumptions = self.machine.state.assumptions
        try:
            assumptions.append(cond)
            try:
                a = self.visit(node.iftrue)
            finally:
                assumptions.pop()
            assumptions.append(z3.Not(cond))
            try:
                b = self.visit(node.iffalse)
            finally:
                assumptions.pop()
        except NeedsFork:
            return None
        if not (isinstance(a, Int) and isinstance(b, Int)):
            return None
        t = ct.common_type(a.ctype, b.ctype)
        a, b = convert_int(a, t), convert_int(b, t)
        if isinstance(a.v, int) and isinstance(b.v, int) and a.v == b.v:
            return a
        return Int(t, z3.If(cond, bv(a.v, t.bits), bv(b.v, t.bits)))

    def _arm(self, node: Any, value: Value) -> Value:
        """The value of one arm of ``?:`` in the type of the whole expression (the usual arithmetic
        conversions of both arms: ``1 ? -1 : 0u`` is 4294967295)."""
        if not isinstance(value, Int):
            return value
        static = self.it.static_types
        a = ct.strip_array(static.type_of(node.iftrue))
        b = ct.strip_array(static.type_of(node.iffalse))
        if isinstance(a, IntType) and isinstance(b, IntType):
            return convert_int(value, ct.common_type(a, b))
        return value

    def visit_Assignment(self, node: Any) -> Value:
        m = self.machine
        ptr, t = self.it.lvalues.address(node.lvalue)
        if isinstance(t, ArrayType):
            raise m.fail(node, "arrays cannot be assigned")
        rhs = self.visit(node.rvalue)
        if node.op == "=":
            if isinstance(t, StructType):
                if not isinstance(rhs, Agg) or rhs.ctype.size != t.size:
                    raise m.fail(node, f"assignment of {getattr(rhs, 'ctype', '?')} to {t}")
                m.write(ptr, rhs.cells, node)
                return rhs
            value = m.convert(rhs, t, node)
        else:
            old = m.load(ptr, t, node)
            op = node.op[:-1]
            if op in ("+", "-"):
                result = self._add(old, rhs, op, node)
            else:
                if not (isinstance(old, Int) and isinstance(rhs, Int)):
                    raise m.fail(node, f"invalid operands to {node.op}")
                try:
                    self._defined(op, old, rhs, node)
                    result = arithmetic(op, old, rhs)
                except SemanticsError as error:
                    raise m.fail(node, str(error)) from None
            value = m.convert(result, t, node)
        m.store(ptr, t, value, node)
        return value

    def visit_ExprList(self, node: Any) -> Value:
        value: Value = Int(ct.INT, 0)
        for expr in node.exprs:
            value = self.visit(expr)
        return value

    # ------------------------------------------------------------------ calls
    def _state_argument(self, name: str, k: int, value: Value, param: Any, node: Any) -> Value:
        """An integer argument of an nf.h function converted to its parameter's type; a constant it
        cannot hold is refused, as gcc's -Werror=overflow refuses it in the build (a capacity of
        2^32 would silently become 0). gcc's builtins take any integer as C converts it
        (``__builtin_ctz(-8)`` is 3, without a warning)."""
        if not (isinstance(value, Int) and isinstance(param, IntType)):
            return value
        converted = self.machine.convert(value, param, node)
        if value.concrete and not name.startswith("__builtin_") and isinstance(converted, Int) and (
                (value.signed_value() if value.ctype.signed else value.v) !=
                (converted.signed_value() if param.signed else converted.v)):
            shown = value.signed_value() if value.ctype.signed else value.v
            raise self.machine.fail(node, f"argument {k + 1} of {name}() is {shown}, which its parameter "
                                          f"({'' if param.signed else 'unsigned '}{param.bits}-bit) cannot hold")
        return converted

    def visit_FuncCall(self, node: Any) -> Value:
        m = self.machine
        if not isinstance(node.name, c_ast.ID):
            raise m.fail(node, "calls through function pointers are not supported")
        name = node.name.name
        arg_nodes = list(node.args.exprs) if node.args is not None else []
        if name in ASM_NAMES:
            raise m.fail(node, f"inline assembly ({name}) is not supported: the analysis cannot see what it does to "
                               "the packet or the state; write it in C")
        if m.lookup_var(name) is not None:
            raise m.fail(node, f"calls through function pointers are not supported ({name} is a variable)")
        if name in m.program.functions:
            args = [self.visit(a) for a in arg_nodes]
            result = self.it.statements.call_function(name, args, node)
            return result if result is not None else Int(ct.INT, 0)
        model = model_for(name)
        if model is not None and not model.evaluates_arguments:  # __builtin_constant_p(x): x is not run
            return model.call(CallContext(name, [], arg_nodes, node, m, self.it.static_types)) or Int(ct.INT, 0)
        if model is not None:
            args = [self.visit(a) for a in arg_nodes]
            ft = m.program.prototypes.get(name)
            if ft is not None and len(args) != len(ft.params):
                raise m.fail(node, f"{name}() takes {count(len(ft.params), 'argument')}, {len(args)} given")
            if ft is not None:  # integers pass as the prototype's type, as in C
                args = [self._state_argument(name, k, a, p, arg_nodes[k])
                        for k, (a, p) in enumerate(zip(args, ft.params))]
            ctx = CallContext(name, args, arg_nodes, node, m, self.it.static_types)
            result = model.call(ctx)
            return result if result is not None else Int(ct.INT, 0)
        raise m.fail(node, f"call to unknown function {name}(); an NF may call only nf.h's functions, "
                           "memcpy/memset/memcmp, __builtin_expect, __builtin_bswap16/32/64, __builtin_popcount(l/ll), "
                           "__builtin_clz(l/ll), __builtin_ctz(l/ll), __builtin_constant_p and functions it defines")
