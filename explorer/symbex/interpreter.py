"""The interpreter: a visitor over pycparser's AST that executes C on concrete and symbolic values.

Statements are ``exec_<Node>`` methods and expressions ``eval_<Node>`` (rvalues) or
``addr_<Node>`` (lvalues: a pointer and a type). Branches ask the PathState, which forks;
calls to nf.h's library go to ``explorer.symbex.library``; NF helper functions are inlined.
"""
from __future__ import annotations

from typing import Any, Optional

import z3
from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.ir import Location
from explorer.symbex import ctype as ct
from explorer.symbex.ctype import ArrayType, CType, FunctionType, IntType, PointerType, StructType, VoidType
from explorer.symbex.memory import Region, cells_of, value_of
from explorer.symbex.program import GlobalVar, Program, Scope, TypeResolver, decl_is_const, location_of
from explorer.symbex.state import NeedsFork, PathState
from explorer.symbex.bitvec import bv
from explorer.symbex.values import (Agg, Int, Ptr, SemanticsError, Value, arithmetic, bool_int, compare, convert,
                                    convert_int, index_offset, logical_not, mask, offset_add, pointer_compare,
                                    truth, unary)

MAX_LOOP_ITERATIONS = 10_000  # per loop instance: NFs copy a few bytes; nf_init fills small tables
MAX_STEPS = 500_000  # statements per run (nf_init, or one path of nf_process)
MAX_CALL_DEPTH = 64

PURE_CALLS = frozenset({"nf_ntohs", "nf_htons", "nf_ntohl", "nf_htonl", "nf_hash"})
ASM_NAMES = frozenset({"asm", "__asm__", "__asm"})


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value: Optional[Value], node: Any):
        self.value = value
        self.node = node


def _int_constant(text: str) -> tuple[int, IntType]:
    """An integer literal's value and type (C11 6.4.4.1)."""
    lower = text.lower()
    suffix = ""
    while lower and lower[-1] in "ul":
        suffix = lower[-1] + suffix
        lower = lower[:-1]
    if lower.startswith("0x"):
        value, decimal = int(lower[2:], 16), False
    elif lower.startswith("0b"):
        value, decimal = int(lower[2:], 2), False
    elif len(lower) > 1 and lower.startswith("0"):
        value, decimal = int(lower, 8), False
    else:
        value, decimal = int(lower), True
    unsigned = "u" in suffix
    longs = suffix.count("l")
    candidates: list[IntType]
    if longs == 0:
        candidates = [ct.INT, ct.LONG, ct.LLONG] if decimal else [ct.INT, ct.UINT, ct.LONG, ct.ULONG, ct.LLONG, ct.ULLONG]
    elif longs == 1:
        candidates = [ct.LONG, ct.LLONG] if decimal else [ct.LONG, ct.ULONG, ct.LLONG, ct.ULLONG]
    else:
        candidates = [ct.LLONG] if decimal else [ct.LLONG, ct.ULLONG]
    if unsigned:
        candidates = [ct.UNSIGNED_OF.get(c, c) for c in candidates]
    for c in candidates:
        limit = 1 << (c.bits - 1 if c.signed else c.bits)
        if value < limit:
            return value, c
    return value & mask(64), ct.ULLONG


_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11, "?": 63}


def _unescape(body: str) -> bytes:
    """The bytes of a C string or character literal's body; ValueError for a malformed escape."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.extend(ch.encode())
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "x":
            j = i + 2
            while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                raise ValueError("\\x without hex digits")
            out.append(int(body[i + 2:j], 16) & 0xFF)
            i = j
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out.append(_ESCAPES.get(nxt, ord(nxt) if nxt else 0))
            i += 2
    return bytes(out)


class Interpreter:
    """Executes one run: nf_init (mode "init") or one path of nf_process (mode "process")."""

    def __init__(self, program: Program, memory: dict[str, Region], state: PathState, mode: str,
                 library: Any):
        self.program = program
        self.memory = memory
        self.state = state
        self.mode = mode
        self.library = library
        self.scopes: list[Scope] = [program.file_scope]
        self.types = TypeResolver(self.constant)
        self.call_stack: list[str] = []
        self.returned_at: Any = None  # the return statement that ended the outermost call
        self.steps = 0
        self._counter = 0
        self._pure_cache: dict[int, bool] = {}

    # ------------------------------------------------------------------ helpers
    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}#{self._counter}"

    def loc(self, node: Any) -> Optional[Location]:
        return location_of(node)

    def fail(self, node: Any, message: str) -> UnsupportedError:
        return UnsupportedError(message, location=self.loc(node))

    def resolve_type(self, node: Any) -> CType:
        return self.types.resolve(node, self.scopes)

    def constant(self, node: Any) -> int:
        value = self.eval(node)
        if not isinstance(value, Int) or not isinstance(value.v, int):
            raise self.fail(node, "a constant expression is required here")
        return value.signed_value()

    def lookup_var(self, name: str) -> Optional[tuple[str, CType]]:
        for scope in reversed(self.scopes):
            hit = scope.vars.get(name)
            if hit is not None:
                return hit
        return None

    def lookup_enum(self, name: str) -> Optional[int]:
        for scope in reversed(self.scopes):
            if name in scope.enums:
                return scope.enums[name]
        return None

    def new_region(self, name: str, kind: str, label: str, size: int) -> Region:
        region = Region(name, kind, label, size)
        self.memory[name] = region
        return region

    # ------------------------------------------------------------------ memory
    def _region(self, ptr: Ptr, node: Any, n: int, write: bool) -> tuple[Region, int]:
        if ptr.region is None:
            raise self.fail(node, "dereference of a NULL or integer pointer (did a header accessor return NULL "
                                  "on this path?)")
        region = self.memory.get(ptr.region)
        if region is None:
            raise self.fail(node, "dereference of a pointer to a variable that no longer exists")
        offset = ptr.offset
        if not isinstance(offset, int):
            offset = self.bounded_offset(region, offset, n, node)
        if region.kind == "packet":
            raise self.fail(node, "the packet's bytes are read directly; use nf_ether_header(), nf_ipv4_header() "
                                  "and nf_tcpudp_header() so that every header field has a name")
        if region.kind == "handle":
            raise self.fail(node, f"the state object {region.label} is opaque; use the library's functions")
        if not region.alive:
            raise self.fail(node, f"{region.label} is used after nf_vector_return")
        if write:
            if region.readonly:
                raise self.fail(node, f"write to read-only {region.label}")
            if region.kind == "global" and self.mode == "process":
                raise self.fail(node, f"nf_process writes {region.label}; state that outlives a packet must live "
                                      "in the state library (globals are written only by nf_init)")
        try:
            region.check(offset, n)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        return region, offset

    def bounded_offset(self, region: Region, offset: Any, n: int, node: Any) -> int:
        in_bounds = z3.ULE(bv(offset, 64), max(region.size - n, 0)) if region.size >= n else False
        if not self.state.proves(in_bounds):
            raise self.fail(node, f"a symbolic index into {region.label} cannot be bounded within its "
                                  f"{region.size} bytes")
        return self.state.concretize(offset, self.loc(node), "a pointer offset")

    def read(self, ptr: Ptr, n: int, node: Any) -> tuple:
        region, offset = self._region(ptr, node, n, write=False)
        self.library.note_read(region, offset, n)
        return tuple(region.cells[offset:offset + n])

    def write(self, ptr: Ptr, cells: tuple, node: Any) -> None:
        region, offset = self._region(ptr, node, len(cells), write=True)
        region.write(offset, cells, self.loc(node) if region.kind == "header" else None)

    def load(self, ptr: Ptr, t: CType, node: Any) -> Value:
        if isinstance(t, (VoidType, FunctionType)) or (isinstance(t, StructType) and not t.complete):
            raise self.fail(node, f"cannot read a value of type {t}")
        cells = self.read(ptr, t.size, node)
        try:
            return value_of(cells, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def store(self, ptr: Ptr, t: CType, value: Value, node: Any) -> None:
        try:
            cells = cells_of(value, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        self.write(ptr, cells, node)

    def convert(self, value: Value, t: CType, node: Any) -> Value:
        try:
            return convert(value, t)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    # ------------------------------------------------------------------ declarations
    def declare_global(self, decl: Any) -> None:
        """A file-scope declaration: a prototype, a typedef/tag, or a global variable."""
        if isinstance(decl.type, c_ast.FuncDecl):
            ft = self.resolve_type(decl.type)
            assert isinstance(ft, FunctionType)
            self.program.prototypes[decl.name] = ft
            return
        t = self.resolve_type(decl.type)
        if decl.name is None:
            return  # struct / union / enum declaration only
        if "extern" in (decl.storage or []) and decl.init is None:
            raise self.fail(decl, f"extern variable {decl.name} is not defined by the NF")
        if isinstance(t, StructType) and not t.complete:
            raise self.fail(decl, f"variable {decl.name} has incomplete type {t}")
        name = f"global:{decl.name}"
        existing = self.program.file_scope.vars.get(decl.name)
        if existing is not None:
            if decl.init is None:
                return  # a tentative re-declaration
            raise self.fail(decl, f"global {decl.name} is defined twice")
        const = decl_is_const(decl)
        region = self.new_region(name, "global", f"global variable {decl.name}", t.size)
        self.program.file_scope.vars[decl.name] = (name, t)
        self.program.globals.append(GlobalVar(decl.name, t, decl.init, self.loc(decl), const))
        if decl.init is not None:
            self.initialize(Ptr(PointerType(t), name, 0), t, decl.init)
        region.readonly = const

    def declare_local(self, decl: Any) -> None:
        if isinstance(decl.type, c_ast.FuncDecl):
            ft = self.resolve_type(decl.type)
            self.program.prototypes.setdefault(decl.name, ft)
            return
        t = self.resolve_type(decl.type)
        if decl.name is None:
            return
        storage = decl.storage or []
        if "static" in storage and not decl_is_const(decl):
            raise self.fail(decl, f"static local variable {decl.name} keeps state across packets; state that "
                                  "outlives a packet must live in the state library")
        if "extern" in storage:
            raise self.fail(decl, f"extern declaration of {decl.name} inside a function is not supported")
        if isinstance(t, StructType) and not t.complete:
            raise self.fail(decl, f"variable {decl.name} has incomplete type {t}")
        name = self.fresh(f"local:{decl.name}")
        self.new_region(name, "local", f"local variable {decl.name}", t.size)
        self.scopes[-1].vars[decl.name] = (name, t)
        if decl.init is not None:
            self.initialize(Ptr(PointerType(t), name, 0), t, decl.init)

    def initialize(self, ptr: Ptr, t: CType, init: Any) -> None:
        """Store the initializer ``init`` for an object of type ``t`` at ``ptr`` (rest zeroed)."""
        if isinstance(init, c_ast.InitList):
            self.write(ptr, (0,) * t.size, init)
            self._init_list(ptr, t, init)
            return
        if isinstance(t, ArrayType) and isinstance(init, c_ast.Constant) and init.type == "string":
            data = self._string_bytes(init)
            if len(data) > t.size + 1:
                raise self.fail(init, "string initializer is longer than the array")
            self.write(ptr, tuple(data[:t.size]) + (0,) * (t.size - min(len(data), t.size)), init)
            return
        value = self.eval(init)
        if isinstance(t, (StructType, ArrayType)):
            if not isinstance(value, Agg) or value.ctype.size != t.size:
                raise self.fail(init, f"initializer of type {getattr(value, 'ctype', '?')} for an object of type {t}")
            self.write(ptr, value.cells, init)
            return
        self.store(ptr, t, self.convert(value, t, init), init)

    def _init_list(self, ptr: Ptr, t: CType, init: Any) -> None:
        if isinstance(t, StructType):
            index = 0
            for expr in init.exprs:
                target = expr
                if isinstance(expr, c_ast.NamedInitializer):
                    designator = expr.name[0]
                    if not isinstance(designator, c_ast.ID):
                        raise self.fail(expr, "array designator used for a struct")
                    names = [f.name for f in t.fields]
                    if designator.name not in names:
                        raise self.fail(expr, f"{t} has no member {designator.name}")
                    index = names.index(designator.name)
                    target = expr.expr
                    if len(expr.name) > 1:
                        field = t.fields[index]
                        sub = c_ast.NamedInitializer(expr.name[1:], expr.expr, expr.coord)
                        self._init_list(Ptr(PointerType(field.ctype), ptr.region, ptr.offset + field.offset),
                                        field.ctype, c_ast.InitList([sub], expr.coord))
                        index += 1
                        continue
                if index >= len(t.fields):
                    raise self.fail(expr, f"too many initializers for {t}")
                field = t.fields[index]
                self._init_member(Ptr(PointerType(field.ctype), ptr.region, ptr.offset + field.offset),
                                  field.ctype, target)
                index += 1
                if t.union:
                    break
            return
        if isinstance(t, ArrayType):
            index = 0
            for expr in init.exprs:
                target = expr
                if isinstance(expr, c_ast.NamedInitializer):
                    designator = expr.name[0]
                    if isinstance(designator, c_ast.ID):
                        raise self.fail(expr, "member designator used for an array")
                    if type(designator).__name__ == "ArrayDesignator":  # pycparser 3 wraps [index]
                        designator = designator.expr
                    index = self.constant(designator)
                    target = expr.expr
                    if len(expr.name) > 1:
                        sub = c_ast.NamedInitializer(expr.name[1:], expr.expr, expr.coord)
                        self._init_list(Ptr(PointerType(t.elem), ptr.region, ptr.offset + index * t.elem.size),
                                        t.elem, c_ast.InitList([sub], expr.coord))
                        index += 1
                        continue
                if not 0 <= index < t.length:
                    raise self.fail(expr, f"initializer index {index} is outside the array of {t.length}")
                self._init_member(Ptr(PointerType(t.elem), ptr.region, ptr.offset + index * t.elem.size),
                                  t.elem, target)
                index += 1
            return
        # a scalar in braces: { x }
        if len(init.exprs) != 1:
            raise self.fail(init, "a scalar initializer takes one value")
        self._init_member(ptr, t, init.exprs[0])

    def _init_member(self, ptr: Ptr, t: CType, expr: Any) -> None:
        if isinstance(expr, c_ast.InitList):
            self._init_list(ptr, t, expr)
            return
        if isinstance(t, (StructType, ArrayType)) and not (
                isinstance(t, ArrayType) and isinstance(expr, c_ast.Constant) and expr.type == "string"):
            value = self.eval(expr)
            if isinstance(value, Agg) and value.ctype.size == t.size:
                self.write(ptr, value.cells, expr)
                return
            raise self.fail(expr, f"initialize the {t} member with braces ({{...}}); brace elision is not supported")
        self.initialize(ptr, t, expr)

    def _string_bytes(self, node: Any) -> bytes:
        text = node.value
        if not (text.startswith('"') and text.endswith('"')):
            raise self.fail(node, "wide or prefixed string literals are not supported")
        try:
            return _unescape(text[1:-1]) + b"\0"
        except ValueError as error:
            raise self.fail(node, f"malformed string literal ({error})") from None

    # ------------------------------------------------------------------ functions
    def call_function(self, name: str, args: list[Value], node: Any) -> Optional[Value]:
        """Inline the NF's function ``name`` with already evaluated ``args``."""
        fdef = self.program.functions[name]
        if name in self.call_stack:
            chain = " -> ".join(self.call_stack[self.call_stack.index(name):] + [name])
            raise self.fail(node, f"recursive call to {name}() ({chain}) is not supported")
        if len(self.call_stack) >= MAX_CALL_DEPTH:
            raise self.fail(node, "calls are nested too deeply")
        ft = self.program.prototypes.get(name) or self.resolve_type(fdef.decl.type)
        params = fdef.decl.type.args.params if fdef.decl.type.args is not None else []
        params = [p for p in params if not (isinstance(p, c_ast.Typename) or
                                            (getattr(p, "name", None) is None and
                                             isinstance(p, c_ast.Decl) and
                                             self.resolve_type(p.type) == ct.VOID))]
        if fdef.param_decls:
            raise self.fail(fdef, "K&R-style function definitions are not supported")
        if len(args) != len(params) or any(isinstance(p, c_ast.EllipsisParam) for p in params):
            raise self.fail(node, f"{name}() takes {len(params)} arguments, {len(args)} given")
        saved = self.scopes
        self.scopes = [self.program.file_scope, Scope()]
        self.call_stack.append(name)
        try:
            for p, arg in zip(params, args):
                pt = self.types.param_type(self.resolve_type(p.type))
                region = self.fresh(f"local:{p.name}")
                self.new_region(region, "local", f"parameter {p.name}", pt.size)
                self.scopes[-1].vars[p.name] = (region, pt)
                self.store(Ptr(PointerType(pt), region, 0), pt, self.convert(arg, pt, node), node)
            try:
                self.exec(fdef.body)
            except _Return as ret:
                if len(self.call_stack) == 1:
                    self.returned_at = ret.node
                if ret.value is None or ft.ret == ct.VOID:
                    return None
                return self.convert(ret.value, ft.ret, node)
            return None
        finally:
            self.call_stack.pop()
            self.scopes = saved

    # ------------------------------------------------------------------ statements
    def exec(self, node: Any) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(node, f"the analysis of this path exceeded {MAX_STEPS} steps")
        method = getattr(self, "exec_" + type(node).__name__, None)
        if method is None:
            if isinstance(node, c_ast.Node) and type(node).__name__ in _EXPRESSIONS:
                self.eval(node)
                return
            raise self.fail(node, f"unsupported statement ({type(node).__name__})")
        try:
            method(node)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def exec_Compound(self, node: Any) -> None:
        self.scopes.append(Scope())
        try:
            for item in node.block_items or []:
                self.exec(item)
        finally:
            self.scopes.pop()

    def exec_Decl(self, node: Any) -> None:
        self.declare_local(node)

    def exec_DeclList(self, node: Any) -> None:
        for decl in node.decls:
            self.declare_local(decl)

    def exec_Typedef(self, node: Any) -> None:
        self.scopes[-1].typedefs[node.name] = self._typedef_type(node)

    def _typedef_type(self, node: Any) -> CType:
        t = self.resolve_type(node.type)
        if isinstance(t, StructType) and t.tag is None and t.display is None:
            t.display = node.name
        return t

    def exec_EmptyStatement(self, node: Any) -> None:
        return

    def exec_Pragma(self, node: Any) -> None:
        return

    def exec_StaticAssert(self, node: Any) -> None:
        if self.constant(node.cond) == 0:
            raise self.fail(node, "static assertion failed")

    def exec_Return(self, node: Any) -> None:
        raise _Return(self.eval(node.expr) if node.expr is not None else None, node)

    def exec_Break(self, node: Any) -> None:
        raise _Break()

    def exec_Continue(self, node: Any) -> None:
        raise _Continue()

    def exec_Goto(self, node: Any) -> None:
        raise self.fail(node, f"goto {node.name} is not supported; use structured control flow")

    def exec_Label(self, node: Any) -> None:
        raise self.fail(node, f"labels (here {node.name}:) and goto are not supported")

    def exec_If(self, node: Any) -> None:
        if self.condition(node.cond):
            if node.iftrue is not None:
                self.exec(node.iftrue)
        elif node.iffalse is not None:
            self.exec(node.iffalse)

    def condition(self, node: Any, labels: Optional[tuple[str, str]] = None) -> bool:
        value = self.eval(node)
        try:
            cond = truth(value)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        return self.state.branch(cond, self.loc(node), labels)

    def loop_condition(self, node: Any, loop: Any) -> bool:
        """A loop's condition must be decided on the path: forks on a loop would make it unbounded."""
        value = self.eval(node)
        cond = truth(value)
        if isinstance(cond, bool):
            return cond
        can_true = self.state.possible(cond)
        if can_true and self.state.possible(z3.Not(cond)):
            raise self.fail(loop, "the loop's condition depends on packet or state data; loops must have a "
                                  "bound the analyzer can count (a constant number of iterations)")
        return can_true

    def _loop(self, node: Any, cond: Any, body: Any, step: Any, check_first: bool) -> None:
        iterations = 0
        first = True
        while True:
            if (check_first or not first) and cond is not None and not self.loop_condition(cond, node):
                return
            first = False
            iterations += 1
            if iterations > MAX_LOOP_ITERATIONS:
                raise self.fail(node, f"the loop did not finish after {MAX_LOOP_ITERATIONS} iterations")
            try:
                if body is not None:
                    self.exec(body)
            except _Break:
                return
            except _Continue:
                pass
            if step is not None:
                self.eval(step)

    def exec_While(self, node: Any) -> None:
        self._loop(node, node.cond, node.stmt, None, True)

    def exec_DoWhile(self, node: Any) -> None:
        self._loop(node, node.cond, node.stmt, None, False)

    def exec_For(self, node: Any) -> None:
        self.scopes.append(Scope())
        try:
            if node.init is not None:
                if isinstance(node.init, (c_ast.DeclList, c_ast.Decl)):
                    self.exec(node.init)
                else:
                    self.eval(node.init)
            if node.cond is None:
                self._loop(node, None, node.stmt, node.next, True)
            else:
                self._loop(node, node.cond, node.stmt, node.next, True)
        finally:
            self.scopes.pop()

    def exec_Switch(self, node: Any) -> None:
        value = self.eval(node.cond)
        if not isinstance(value, Int):
            raise self.fail(node.cond, "switch on a non-integer")
        value = convert_int(value, ct.promote(value.ctype))
        body = node.stmt
        items = body.block_items or [] if isinstance(body, c_ast.Compound) else [body]
        start = None
        default = None
        for i, item in enumerate(items):
            if isinstance(item, c_ast.Case):
                label = self.eval(item.expr)
                if not isinstance(label, Int) or not isinstance(label.v, int):
                    raise self.fail(item, "case labels must be constants")
                cond = truth(compare("==", value, label))
                if self.state.branch(cond, self.loc(item)):
                    start = i
                    break
            elif isinstance(item, c_ast.Default):
                default = i
        if start is None:
            start = default
        if start is None:
            return
        self.scopes.append(Scope())
        try:
            for item in items[start:]:
                stmts = item.stmts if isinstance(item, (c_ast.Case, c_ast.Default)) else [item]
                for stmt in stmts or []:
                    self.exec(stmt)
        except _Break:
            pass
        finally:
            self.scopes.pop()

    def exec_Case(self, node: Any) -> None:
        raise self.fail(node, "case label outside a switch body")

    def exec_Default(self, node: Any) -> None:
        raise self.fail(node, "default label outside a switch body")

    # ------------------------------------------------------------------ expressions
    def eval(self, node: Any) -> Value:
        """The rvalue of an expression (arrays decay to pointers)."""
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            raise self.fail(node, f"unsupported expression ({type(node).__name__})")
        return method(node)

    def addr(self, node: Any) -> tuple[Ptr, CType]:
        """The lvalue of an expression: where it lives and its type."""
        method = getattr(self, "addr_" + type(node).__name__, None)
        if method is None:
            raise self.fail(node, "this expression does not designate an object")
        return method(node)

    def _lvalue_value(self, ptr: Ptr, t: CType, node: Any) -> Value:
        if isinstance(t, ArrayType):
            return Ptr(PointerType(t.elem), ptr.region, ptr.offset)
        if isinstance(t, FunctionType):
            raise self.fail(node, "function pointers are not supported")
        return self.load(ptr, t, node)

    def eval_ID(self, node: Any) -> Value:
        hit = self.lookup_var(node.name)
        if hit is not None:
            region, t = hit
            return self._lvalue_value(Ptr(PointerType(t), region, 0), t, node)
        enum = self.lookup_enum(node.name)
        if enum is not None:
            return Int(ct.INT, enum & mask(32))
        if node.name in self.program.functions or node.name in self.program.prototypes:
            raise self.fail(node, f"function pointers are not supported (here {node.name} is used as a value)")
        raise self.fail(node, f"unknown identifier '{node.name}'")

    def addr_ID(self, node: Any) -> tuple[Ptr, CType]:
        hit = self.lookup_var(node.name)
        if hit is None:
            if node.name in self.program.functions or node.name in self.program.prototypes:
                raise self.fail(node, f"function pointers are not supported (here &{node.name})")
            raise self.fail(node, f"'{node.name}' does not designate an object")
        region, t = hit
        return Ptr(PointerType(t), region, 0), t

    def eval_Constant(self, node: Any) -> Value:
        kind = node.type
        if kind == "string":
            data = self._string_bytes(node)
            name = self.fresh("string")
            region = self.new_region(name, "const", "a string literal", len(data))
            region.cells = list(data)
            region.readonly = True
            return Ptr(PointerType(ct.CHAR), name, 0)
        if kind == "char":
            text = node.value
            if not (text.startswith("'") and text.endswith("'")):
                raise self.fail(node, "wide character constants are not supported")
            try:
                data = _unescape(text[1:-1])
            except ValueError as error:
                raise self.fail(node, f"malformed character constant ({error})") from None
            if len(data) != 1:
                raise self.fail(node, "multi-character constants are not supported")
            value = data[0] - 256 if data[0] >= 128 else data[0]
            return Int(ct.INT, value & mask(32))
        if kind in ("float", "double", "long double"):
            raise self.fail(node, "floating-point constants are not supported")
        try:
            value, t = _int_constant(node.value)
        except ValueError:
            raise self.fail(node, f"invalid integer constant {node.value}") from None
        return Int(t, value)

    def eval_Cast(self, node: Any) -> Value:
        t = self.resolve_type(node.to_type)
        value = self.eval(node.expr)
        if t == ct.VOID:
            return Int(ct.INT, 0)
        if isinstance(t, FunctionType) or (isinstance(t, PointerType) and isinstance(t.target, FunctionType)):
            raise self.fail(node, "function pointers are not supported")
        if isinstance(t, (StructType, ArrayType)):
            raise self.fail(node, f"cast to {t} is not valid C")
        return self.convert(value, t, node)

    def eval_UnaryOp(self, node: Any) -> Value:
        op = node.op
        if op == "sizeof":
            t = self.resolve_type(node.expr) if isinstance(node.expr, c_ast.Typename) else self.static_type(node.expr)
            if isinstance(t, (VoidType, FunctionType)) or (isinstance(t, StructType) and not t.complete):
                raise self.fail(node, f"sizeof of incomplete type {t}")
            return Int(ct.SIZE_T, t.size)
        if op == "_Alignof":
            t = self.resolve_type(node.expr) if isinstance(node.expr, c_ast.Typename) else self.static_type(node.expr)
            return Int(ct.SIZE_T, t.align)
        if op == "&":
            if isinstance(node.expr, c_ast.ID) and self.lookup_var(node.expr.name) is None and (
                    node.expr.name in self.program.functions or node.expr.name in self.program.prototypes):
                raise self.fail(node, f"function pointers are not supported (here &{node.expr.name})")
            ptr, t = self.addr(node.expr)
            return ptr.retype(PointerType(t))
        if op == "*":
            ptr, t = self.addr(node)
            return self._lvalue_value(ptr, t, node)
        if op in ("++", "--", "p++", "p--"):
            ptr, t = self.addr(node.expr)
            old = self.load(ptr, t, node)
            delta = Int(ct.INT, 1)
            new = self._add(old, delta, "+" if "+" in op else "-", node)
            new = self.convert(new, t, node)
            self.store(ptr, t, new, node)
            return new if not op.startswith("p") else old
        value = self.eval(node.expr)
        try:
            if op == "!":
                return logical_not(value)
            if not isinstance(value, Int):
                raise self.fail(node, f"operator {op} needs an integer")
            return unary(op, value)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def addr_UnaryOp(self, node: Any) -> tuple[Ptr, CType]:
        if node.op != "*":
            raise self.fail(node, "this expression does not designate an object")
        value = self.eval(node.expr)
        if not isinstance(value, Ptr):
            raise self.fail(node, "dereference of a non-pointer")
        t = value.ctype.target
        if isinstance(t, FunctionType):
            raise self.fail(node, "function pointers are not supported")
        return value, t

    def _add(self, a: Value, b: Value, op: str, node: Any) -> Value:
        """``a + b`` / ``a - b`` including pointer arithmetic."""
        try:
            if isinstance(a, Ptr) and isinstance(b, Int):
                return self._ptr_add(a, b, op, node)
            if isinstance(a, Int) and isinstance(b, Ptr) and op == "+":
                return self._ptr_add(b, a, op, node)
            if isinstance(a, Ptr) and isinstance(b, Ptr) and op == "-":
                if a.region != b.region:
                    raise self.fail(node, "subtraction of pointers into different objects")
                size = max(a.ctype.target.size, 1)
                diff = offset_add(a.offset, -b.offset if isinstance(b.offset, int) else -bv(b.offset, 64))
                if isinstance(diff, int):
                    return Int(ct.PTRDIFF_T, (diff // size) & mask(64))
                return Int(ct.PTRDIFF_T, diff / size)
            if isinstance(a, Int) and isinstance(b, Int):
                return arithmetic(op, a, b)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None
        raise self.fail(node, f"invalid operands to {op}")

    def _ptr_add(self, p: Ptr, i: Int, op: str, node: Any) -> Ptr:
        target = p.ctype.target
        if isinstance(target, FunctionType):
            raise self.fail(node, "function pointers are not supported")
        if isinstance(target, StructType) and not target.complete:
            raise self.fail(node, f"arithmetic on a pointer to incomplete {target}")
        delta = index_offset(i, max(target.size, 1))
        if op == "-":
            delta = -delta if isinstance(delta, int) else -delta
        return Ptr(p.ctype, p.region, offset_add(p.offset, delta))

    def eval_BinaryOp(self, node: Any) -> Value:
        op = node.op
        if op == "&&" or op == "||":
            return self._logical(node)
        a = self.eval(node.left)
        b = self.eval(node.right)
        if op in ("+", "-"):
            return self._add(a, b, op, node)
        try:
            if op in ("==", "!=", "<", "<=", ">", ">="):
                if isinstance(a, Ptr) or isinstance(b, Ptr):
                    a = a if isinstance(a, Ptr) else self.convert(a, PointerType(ct.VOID), node)
                    b = b if isinstance(b, Ptr) else self.convert(b, PointerType(ct.VOID), node)
                    return pointer_compare(op, a, b)
                if not (isinstance(a, Int) and isinstance(b, Int)):
                    raise self.fail(node, f"invalid operands to {op}")
                return compare(op, a, b)
            if not (isinstance(a, Int) and isinstance(b, Int)):
                raise self.fail(node, f"invalid operands to {op}")
            return arithmetic(op, a, b)
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def _logical(self, node: Any) -> Value:
        """``&&`` / ``||``: short-circuit when the left side is known; when it is symbolic and the right
        side has no side effects, one condition ``a && b`` (no fork); otherwise fork on the left."""
        is_and = node.op == "&&"
        left = self._truth(node.left)
        if isinstance(left, bool):
            if left != is_and:
                return bool_int(left)
            return bool_int(self._truth(node.right))
        if self.pure(node.right):
            self.state.assumptions.append(left if is_and else z3.Not(left))
            try:
                right = self._truth(node.right)
            except NeedsFork:
                right = None
            finally:
                self.state.assumptions.pop()
            if right is not None:
                if isinstance(right, bool):
                    if is_and:
                        return bool_int(left) if right else bool_int(False)
                    return bool_int(True) if right else bool_int(left)
                return bool_int(z3.And(left, right) if is_and else z3.Or(left, right))
        if self.state.branch(left, self.loc(node.left)) != is_and:
            return bool_int(not is_and)
        return bool_int(self._truth(node.right))

    def _truth(self, node: Any) -> Any:
        try:
            return truth(self.eval(node))
        except SemanticsError as error:
            raise self.fail(node, str(error)) from None

    def eval_TernaryOp(self, node: Any) -> Value:
        cond = self._truth(node.cond)
        if isinstance(cond, bool):
            return self._arm(node, self.eval(node.iftrue if cond else node.iffalse))
        if self.pure(node.iftrue) and self.pure(node.iffalse):
            try:
                self.state.assumptions.append(cond)
                try:
                    a = self.eval(node.iftrue)
                finally:
                    self.state.assumptions.pop()
                self.state.assumptions.append(z3.Not(cond))
                try:
                    b = self.eval(node.iffalse)
                finally:
                    self.state.assumptions.pop()
            except NeedsFork:
                a = b = None
            if isinstance(a, Int) and isinstance(b, Int):
                t = ct.common_type(a.ctype, b.ctype)
                a, b = convert_int(a, t), convert_int(b, t)
                if isinstance(a.v, int) and isinstance(b.v, int) and a.v == b.v:
                    return a
                return Int(t, z3.If(cond, bv(a.v, t.bits), bv(b.v, t.bits)))
        if self.state.branch(cond, self.loc(node.cond)):
            return self._arm(node, self.eval(node.iftrue))
        return self._arm(node, self.eval(node.iffalse))

    def _arm(self, node: Any, value: Value) -> Value:
        """The value of one arm of ``?:`` in the type of the whole expression (the usual arithmetic
        conversions of both arms: ``1 ? -1 : 0u`` is 4294967295)."""
        if not isinstance(value, Int):
            return value
        a = ct.strip_array(self.static_type(node.iftrue))
        b = ct.strip_array(self.static_type(node.iffalse))
        if isinstance(a, IntType) and isinstance(b, IntType):
            return convert_int(value, ct.common_type(a, b))
        return value

    def eval_Assignment(self, node: Any) -> Value:
        ptr, t = self.addr(node.lvalue)
        if isinstance(t, ArrayType):
            raise self.fail(node, "arrays cannot be assigned")
        rhs = self.eval(node.rvalue)
        if node.op == "=":
            if isinstance(t, StructType):
                if not isinstance(rhs, Agg) or rhs.ctype.size != t.size:
                    raise self.fail(node, f"assignment of {getattr(rhs, 'ctype', '?')} to {t}")
                self.write(ptr, rhs.cells, node)
                return rhs
            value = self.convert(rhs, t, node)
        else:
            old = self.load(ptr, t, node)
            op = node.op[:-1]
            if op in ("+", "-"):
                result = self._add(old, rhs, op, node)
            else:
                if not (isinstance(old, Int) and isinstance(rhs, Int)):
                    raise self.fail(node, f"invalid operands to {node.op}")
                try:
                    result = arithmetic(op, old, rhs)
                except SemanticsError as error:
                    raise self.fail(node, str(error)) from None
            value = self.convert(result, t, node)
        self.store(ptr, t, value, node)
        return value

    def eval_ExprList(self, node: Any) -> Value:
        value: Value = Int(ct.INT, 0)
        for expr in node.exprs:
            value = self.eval(expr)
        return value

    def eval_ArrayRef(self, node: Any) -> Value:
        ptr, t = self.addr_ArrayRef(node)
        return self._lvalue_value(ptr, t, node)

    def addr_ArrayRef(self, node: Any) -> tuple[Ptr, CType]:
        base = self.eval(node.name)
        index = self.eval(node.subscript)
        if isinstance(base, Int) and isinstance(index, Ptr):
            base, index = index, base
        if not isinstance(base, Ptr) or not isinstance(index, Int):
            raise self.fail(node, "subscript of a non-array")
        elem = base.ctype.target
        if isinstance(elem, (VoidType, FunctionType)) or (isinstance(elem, StructType) and not elem.complete):
            raise self.fail(node, f"subscript of a pointer to {elem}")
        if not index.concrete:
            index = self._bounded_index(base, index, elem, node)
        delta = index_offset(index, elem.size)
        return Ptr(PointerType(elem), base.region, offset_add(base.offset, delta)), elem

    def _bounded_index(self, base: Ptr, index: Int, elem: CType, node: Any) -> Int:
        """A symbolic index: prove it stays inside the array, then fork over its values."""
        region = self.memory.get(base.region) if base.region is not None else None
        if region is None or not isinstance(base.offset, int):
            raise self.fail(node, "a symbolic index into an object the analyzer cannot bound")
        signed = convert_int(index, ct.LONG if index.ctype.signed else ct.ULONG)
        count = (region.size - base.offset) // max(elem.size, 1)
        low = -(base.offset // max(elem.size, 1))
        idx = bv(signed.v, 64)
        cond = z3.And(idx >= low, idx < count) if index.ctype.signed else z3.ULT(idx, count)
        if not self.state.proves(cond):
            raise self.fail(node.subscript, f"index may be outside {region.label} ({count} elements): bound it "
                                            "with a check first")
        value = self.state.concretize(index.v, self.loc(node.subscript), "the array index")
        return Int(index.ctype, value)

    def eval_StructRef(self, node: Any) -> Value:
        if node.type == ".":
            if not self._is_lvalue(node.name):
                agg = self.eval(node.name)
                if not isinstance(agg, Agg) or not isinstance(agg.ctype, StructType):
                    raise self.fail(node, "member access on a non-struct")
                field = agg.ctype.field(node.field.name)
                if field is None:
                    raise self.fail(node.field, f"{agg.ctype} has no member {node.field.name}")
                cells = agg.cells[field.offset:field.offset + field.ctype.size]
                if isinstance(field.ctype, ArrayType):
                    raise self.fail(node, "array member of a struct returned by value")
                try:
                    return value_of(cells, field.ctype)
                except SemanticsError as error:
                    raise self.fail(node, str(error)) from None
        ptr, t = self.addr_StructRef(node)
        return self._lvalue_value(ptr, t, node)

    def _is_lvalue(self, node: Any) -> bool:
        if isinstance(node, (c_ast.ID, c_ast.ArrayRef, c_ast.CompoundLiteral)):
            return True
        if isinstance(node, c_ast.UnaryOp) and node.op == "*":
            return True
        if isinstance(node, c_ast.StructRef):
            return node.type == "->" or self._is_lvalue(node.name)
        return False

    def addr_StructRef(self, node: Any) -> tuple[Ptr, CType]:
        if node.type == "->":
            base = self.eval(node.name)
            if not isinstance(base, Ptr):
                raise self.fail(node, "-> applied to a non-pointer")
            st = base.ctype.target
        else:
            base, st = self.addr(node.name)
        if not isinstance(st, StructType) or not st.complete:
            raise self.fail(node, f"member access on {st}, not a complete struct or union")
        field = st.field(node.field.name)
        if field is None:
            raise self.fail(node.field, f"{st} has no member {node.field.name}")
        return Ptr(PointerType(field.ctype), base.region, offset_add(base.offset, field.offset)), field.ctype

    def eval_CompoundLiteral(self, node: Any) -> Value:
        ptr, t = self.addr_CompoundLiteral(node)
        return self._lvalue_value(ptr, t, node)

    def addr_CompoundLiteral(self, node: Any) -> tuple[Ptr, CType]:
        t = self.resolve_type(node.type)
        name = self.fresh("literal")
        self.new_region(name, "local", "a compound literal", t.size)
        ptr = Ptr(PointerType(t), name, 0)
        self.initialize(ptr, t, node.init)
        return ptr, t

    def eval_InitList(self, node: Any) -> Value:
        raise self.fail(node, "a brace initializer is only valid in a declaration or compound literal")

    def eval_FuncCall(self, node: Any) -> Value:
        if not isinstance(node.name, c_ast.ID):
            raise self.fail(node, "calls through function pointers are not supported")
        name = node.name.name
        arg_nodes = list(node.args.exprs) if node.args is not None else []
        if name in ASM_NAMES:
            raise self.fail(node, "inline assembly is not supported")
        if self.lookup_var(name) is not None:
            raise self.fail(node, f"calls through function pointers are not supported ({name} is a variable)")
        if name in self.program.functions:
            args = [self.eval(a) for a in arg_nodes]
            result = self.call_function(name, args, node)
            return result if result is not None else Int(ct.INT, 0)
        if self.library.handles(name):
            args = [self.eval(a) for a in arg_nodes]
            result = self.library.call(self, name, args, arg_nodes, node)
            return result if result is not None else Int(ct.INT, 0)
        raise self.fail(node, f"call to unknown function {name}(); an NF may call only nf.h's functions, "
                              "memcpy/memset/memcmp and functions it defines")

    def eval_Typename(self, node: Any) -> Value:
        raise self.fail(node, "a type name is not a value")

    # ------------------------------------------------------------------ static typing (sizeof)
    def static_type(self, node: Any) -> CType:
        """The type of an expression without evaluating it (for sizeof and key layouts)."""
        if isinstance(node, c_ast.ID):
            hit = self.lookup_var(node.name)
            if hit is not None:
                return hit[1]
            if self.lookup_enum(node.name) is not None:
                return ct.INT
            if node.name in self.program.prototypes:
                return self.program.prototypes[node.name]
            raise self.fail(node, f"unknown identifier '{node.name}'")
        if isinstance(node, c_ast.Constant):
            if node.type == "string":
                return ArrayType(ct.CHAR, len(self._string_bytes(node)))
            if node.type == "char":
                return ct.INT
            return self.eval_Constant(node).ctype
        if isinstance(node, c_ast.Cast):
            return self.resolve_type(node.to_type)
        if isinstance(node, c_ast.UnaryOp):
            if node.op in ("sizeof", "_Alignof"):
                return ct.SIZE_T
            inner = self.static_type(node.expr)
            if node.op == "&":
                return PointerType(inner)
            if node.op == "*":
                inner = ct.strip_array(inner)
                if not isinstance(inner, PointerType):
                    raise self.fail(node, "dereference of a non-pointer")
                return inner.target
            if node.op == "!":
                return ct.INT
            if node.op in ("-", "+", "~"):
                return ct.promote(inner) if isinstance(inner, IntType) else inner
            return inner
        if isinstance(node, c_ast.BinaryOp):
            if node.op in ("==", "!=", "<", "<=", ">", ">=", "&&", "||"):
                return ct.INT
            a = ct.strip_array(self.static_type(node.left))
            b = ct.strip_array(self.static_type(node.right))
            if isinstance(a, PointerType) and isinstance(b, PointerType):
                return ct.PTRDIFF_T
            if isinstance(a, PointerType):
                return a
            if isinstance(b, PointerType):
                return b
            if isinstance(a, IntType) and isinstance(b, IntType):
                if node.op in ("<<", ">>"):
                    return ct.promote(a)
                return ct.common_type(a, b)
            raise self.fail(node, f"invalid operands to {node.op}")
        if isinstance(node, c_ast.StructRef):
            base = self.static_type(node.name)
            if node.type == "->":
                base = ct.strip_array(base)
                base = base.target if isinstance(base, PointerType) else base
            if not isinstance(base, StructType):
                raise self.fail(node, "member access on a non-struct")
            field = base.field(node.field.name)
            if field is None:
                raise self.fail(node.field, f"{base} has no member {node.field.name}")
            return field.ctype
        if isinstance(node, c_ast.ArrayRef):
            base = ct.strip_array(self.static_type(node.name))
            if isinstance(base, PointerType):
                return base.target
            other = ct.strip_array(self.static_type(node.subscript))
            if isinstance(other, PointerType):
                return other.target
            raise self.fail(node, "subscript of a non-array")
        if isinstance(node, c_ast.FuncCall) and isinstance(node.name, c_ast.ID):
            ft = self.program.prototypes.get(node.name.name)
            if ft is None and node.name.name in self.program.functions:
                ft = self.resolve_type(self.program.functions[node.name.name].decl.type)
            if isinstance(ft, FunctionType):
                return ft.ret
            raise self.fail(node, f"call to unknown function {node.name.name}()")
        if isinstance(node, c_ast.TernaryOp):
            a = ct.strip_array(self.static_type(node.iftrue))
            b = ct.strip_array(self.static_type(node.iffalse))
            if isinstance(a, IntType) and isinstance(b, IntType):
                return ct.common_type(a, b)
            return a
        if isinstance(node, c_ast.Assignment):
            return self.static_type(node.lvalue)
        if isinstance(node, c_ast.CompoundLiteral):
            return self.resolve_type(node.type)
        if isinstance(node, c_ast.ExprList):
            return self.static_type(node.exprs[-1])
        if isinstance(node, c_ast.Typename):
            return self.resolve_type(node)
        raise self.fail(node, f"cannot determine the type of this expression ({type(node).__name__})")

    # ------------------------------------------------------------------ purity
    def pure(self, node: Any) -> bool:
        """Whether evaluating ``node`` has no side effects (so it may be evaluated speculatively)."""
        key = id(node)
        hit = self._pure_cache.get(key)
        if hit is None:
            hit = self._pure(node)
            self._pure_cache[key] = hit
        return hit

    def _pure(self, node: Any) -> bool:
        if isinstance(node, c_ast.Assignment):
            return False
        if isinstance(node, c_ast.UnaryOp) and node.op in ("++", "--", "p++", "p--"):
            return False
        if isinstance(node, c_ast.FuncCall):
            if not (isinstance(node.name, c_ast.ID) and node.name.name in PURE_CALLS):
                return False
        if isinstance(node, (c_ast.CompoundLiteral, c_ast.Constant)) and getattr(node, "type", None) == "string":
            return False  # allocates a region
        if isinstance(node, c_ast.CompoundLiteral):
            return False
        return all(self._pure(child) for _, child in node.children())


_EXPRESSIONS = frozenset({"Assignment", "UnaryOp", "BinaryOp", "FuncCall", "ExprList", "TernaryOp", "Cast", "ID",
                          "Constant", "ArrayRef", "StructRef", "CompoundLiteral"})

