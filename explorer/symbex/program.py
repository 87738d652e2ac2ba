"""The NF's file scope: functions, prototypes, typedefs, tags, enum constants and globals, and the
resolution of pycparser declarators into C types."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from pycparser import c_ast

from explorer.errors import UnsupportedError
from explorer.frontend import ParsedNF
from explorer.frontend.columns import column_of
from explorer.ir import Location
from explorer.nfsource.number_lists import NumberElements
from explorer.symbex.node_facts import NodeFacts
from explorer.symbex.ctype import (INT, LONG, UINT, ULLONG, ULONG, USHORT, VOID, ArrayType, CType, FunctionType,
                                   PointerType, StructType, int_type_from_specifiers)


class Scope:
    """One block's names: variables (region name and type), typedefs, struct tags, enum constants."""

    __slots__ = ("vars", "typedefs", "tags", "enums")

    def __init__(self) -> None:
        self.vars: dict[str, tuple[str, CType]] = {}
        self.typedefs: dict[str, CType] = {}
        self.tags: dict[str, StructType] = {}
        self.enums: dict[str, int] = {}


@dataclass(frozen=True)
class GlobalVar:
    name: str
    ctype: CType
    init: Any  # pycparser node or None
    location: Optional[Location]
    const: bool


def location_of(node: Any) -> Optional[Location]:
    coord = getattr(node, "coord", None)
    if coord is None or getattr(coord, "line", None) is None:
        return None
    return Location(str(coord.file), int(coord.line), column_of(coord))


def unsupported(node: Any, message: str) -> UnsupportedError:
    return UnsupportedError(message, location=location_of(node))


class TypeResolver:
    """Turns pycparser type nodes into CTypes within a chain of scopes (innermost last).

    ``constant`` evaluates array sizes and enumerator values (the interpreter's concrete evaluator).
    """

    def __init__(self, constant: Callable[[Any], int]):
        self.constant = constant

    def lookup_typedef(self, scopes: list[Scope], name: str) -> Optional[CType]:
        for scope in reversed(scopes):
            if name in scope.typedefs:
                return scope.typedefs[name]
        return None

    def lookup_tag(self, scopes: list[Scope], name: str) -> Optional[StructType]:
        for scope in reversed(scopes):
            if name in scope.tags:
                return scope.tags[name]
        return None

    def declared(self, node: Any, init: Any, scopes: list[Scope]) -> CType:
        """A declaration's type: ``T x[] = {...}`` (or ``= "..."``) takes its length from the
        initializer, as C does: one past the highest index it sets (designators included)."""
        if isinstance(node, c_ast.ArrayDecl) and node.dim is None and init is not None:
            length = self._initializer_length(init)
            if length is not None:
                return self.resolve(c_ast.ArrayDecl(node.type, c_ast.Constant("int", str(length)), node.dim_quals,
                                                    node.coord), scopes)
        return self.resolve(node, scopes)

    def _initializer_length(self, init: Any) -> Optional[int]:
        if isinstance(init, c_ast.Constant) and init.type == "string":
            from explorer.symbex.literals import string_bytes  # literals reports through this module

            return len(string_bytes(init))  # with its NUL
        if not isinstance(init, c_ast.InitList):
            return None
        if isinstance(init.exprs, NumberElements):  # plain numbers: one element each, no nodes made
            return len(init.exprs)
        index = length = 0
        for expr in init.exprs:
            if isinstance(expr, c_ast.NamedInitializer):
                designator = expr.name[0]
                if type(designator).__name__ == "ArrayDesignator":  # pycparser 3 wraps [index]
                    designator = designator.expr
                if isinstance(designator, c_ast.ID):
                    return None  # a member designator: the initializer's own check names it
                index = self.constant(designator)
            index += 1
            length = max(length, index)
        return length

    def resolve(self, node: Any, scopes: list[Scope]) -> CType:
        if isinstance(node, c_ast.Typename):
            return self.resolve(node.type, scopes)
        if isinstance(node, c_ast.TypeDecl):
            return self.resolve(node.type, scopes)
        if isinstance(node, c_ast.PtrDecl):
            target = node.type
            if isinstance(target, c_ast.FuncDecl):
                raise unsupported(node, "function pointers are not supported")
            return PointerType(self.resolve(target, scopes))
        if isinstance(node, c_ast.ArrayDecl):
            elem = self.resolve(node.type, scopes)
            if node.dim is None:
                raise unsupported(node, "an array without a size needs an initializer the analyzer can count; "
                                        "give the size explicitly")
            try:
                length = self.constant(node.dim)
            except UnsupportedError as error:
                raise UnsupportedError("variable-length arrays are not supported: an array's size must be a "
                                       "constant", location=location_of(node.dim) or error.location) from None
            if length < 0:
                raise unsupported(node, f"array of negative size {length}")
            if length * max(elem.size, 1) > 1 << 24:
                raise unsupported(node, f"array of {length} elements is too large for the analyzer")
            return ArrayType(elem, length)
        if isinstance(node, c_ast.FuncDecl):
            ret = self.resolve(node.type, scopes)
            params: list[CType] = []
            variadic = False
            if node.args is not None:
                for p in node.args.params:
                    if isinstance(p, c_ast.ID):  # int f(a) int a; { ... }
                        name = getattr(node.type, "declname", None) or "the function"
                        raise unsupported(node, f"{name}() is defined in the old (K&R) style, its parameters typed "
                                                "in declarations after the ')', which is not supported: type them in "
                                                f"the parameter list, as in `int {name}(int {p.name})`")
                    if isinstance(p, c_ast.EllipsisParam):
                        variadic = True
                        continue
                    pt = self.parameter(p.type, scopes)
                    if pt == VOID and getattr(p, "name", None) is None:
                        continue
                    params.append(pt)
            return FunctionType(ret, tuple(params), variadic)
        if isinstance(node, c_ast.IdentifierType):
            names = list(node.names)
            if names == ["void"]:
                return VOID
            if any(n in ("float", "double") for n in names):
                raise unsupported(node, "floating-point types are not supported")
            if "__int128" in names:
                raise unsupported(node, f"128-bit integers ({' '.join(names)}) are not supported: the analysis "
                                        "and the NIC's fields work on at most 64 bits; use uint64_t (or two of them)")
            try:
                it = int_type_from_specifiers(names)
            except ValueError as error:
                raise unsupported(node, str(error)) from None
            if it is not None:
                return it
            if len(names) == 1:
                td = self.lookup_typedef(scopes, names[0])
                if td is not None:
                    return td
            raise unsupported(node, f"unknown type '{' '.join(names)}'")
        if isinstance(node, (c_ast.Struct, c_ast.Union)):
            return self.struct(node, scopes)
        if isinstance(node, c_ast.Enum):
            self.enum(node, scopes)
            return INT
        raise unsupported(node, f"unsupported type construct {type(node).__name__}")

    def parameter(self, node: Any, scopes: list[Scope]) -> CType:
        """A parameter's type: an array parameter is a pointer (C11 6.7.6.3), so `uint8_t packet[]`
        needs no size."""
        if isinstance(node, c_ast.ArrayDecl):
            return PointerType(self.resolve(node.type, scopes))
        return self.param_type(self.resolve(node, scopes))

    @staticmethod
    def param_type(t: CType) -> CType:
        if isinstance(t, ArrayType):
            return PointerType(t.elem)
        if isinstance(t, FunctionType):
            raise UnsupportedError("function pointers are not supported")
        return t

    def struct(self, node: Any, scopes: list[Scope]) -> StructType:
        union = isinstance(node, c_ast.Union)
        if node.decls is None:  # a reference: struct foo
            if node.name is None:
                raise unsupported(node, "anonymous struct without members")
            found = self.lookup_tag(scopes, node.name)
            if found is None:
                found = StructType(node.name, union)  # incomplete (e.g. struct nf_map)
                scopes[0].tags[node.name] = found
            return found
        st = None
        if node.name is not None:
            st = scopes[-1].tags.get(node.name)
            if st is not None and st.complete:
                raise unsupported(node, f"redefinition of struct {node.name}")
        if st is None:
            st = StructType(node.name, union)
            if node.name is not None:
                scopes[-1].tags[node.name] = st
        members: list[tuple[str, CType]] = []
        for decl in node.decls:
            if isinstance(decl.type, c_ast.ArrayDecl) and decl.type.dim is None:
                raise unsupported(decl, f"flexible array members are not supported (here {decl.name}[]): the "
                                        "analysis needs each object's size; give the array its largest length")
            if getattr(decl, "bitsize", None) is not None:
                raise unsupported(decl, f"bit-fields are not supported (here {decl.name or 'an unnamed one'}): their "
                                        "layout is the compiler's; give each flag a whole uint8_t member, or keep "
                                        "the bits in one integer member and test them with masks (`flags & 0x1`)")
            mt = self.resolve(decl.type, scopes)
            if isinstance(mt, StructType) and not mt.complete:
                raise unsupported(decl, f"member of incomplete type {mt}")
            if isinstance(mt, FunctionType):
                raise unsupported(decl, "function members are not supported")
            name = decl.name
            if name is None:  # anonymous struct/union member: not needed by NFs
                raise unsupported(decl, "anonymous struct or union members are not supported")
            members.append((name, mt))
        st.complete_with(members)
        return st

    def enum(self, node: Any, scopes: list[Scope]) -> None:
        if node.values is None:
            return
        value = -1
        for enumerator in node.values.enumerators:
            value = self.constant(enumerator.value) if enumerator.value is not None else value + 1
            scopes[-1].enums[enumerator.name] = value


# gcc's builtins an NF may call without declaring them (``explorer.state_api.BUILTINS``).
BUILTIN_PROTOTYPES = {"__builtin_expect": FunctionType(LONG, (LONG, LONG)),
                      "__builtin_bswap16": FunctionType(USHORT, (USHORT,)),
                      "__builtin_bswap32": FunctionType(UINT, (UINT,)),
                      "__builtin_bswap64": FunctionType(ULLONG, (ULLONG,)),
                      "__builtin_popcount": FunctionType(INT, (UINT,)),
                      "__builtin_popcountl": FunctionType(INT, (ULONG,)),
                      "__builtin_popcountll": FunctionType(INT, (ULLONG,)),
                      **{f"__builtin_{op}{suffix}": FunctionType(INT, (t,)) for op in ("clz", "ctz")
                         for suffix, t in (("", UINT), ("l", ULONG), ("ll", ULLONG))},
                      "__builtin_constant_p": FunctionType(INT, (), variadic=True)}


class Program:
    """Everything at file scope, collected before nf_init runs."""

    def __init__(self, parsed: ParsedNF, forking_call: Callable[[str], bool]):
        self.parsed = parsed
        self.functions: dict[str, Any] = {}  # name -> FuncDef
        self.prototypes: dict[str, FunctionType] = dict(BUILTIN_PROTOTYPES)
        self.file_scope = Scope()
        self.globals: list[GlobalVar] = []
        self.facts = NodeFacts(lambda name: name in self.functions or forking_call(name))
        # (bytes, value) of the host-order constants the NF converts to network order (nf_htons /
        # nf_htonl of a constant, in any run): a key's constant bytes equal to one are shown as the
        # NF wrote them (192.0.2.1, port 8080), not as the number their memory reads as.
        self.converted: set[tuple[int, int]] = set()
        # id(Switch) -> (the node, its case items, its default item, the cases' label values)
        self.switches: dict[int, tuple[Any, list[int], Optional[int], list[Any]]] = {}


def call_before_declaration(items: list[Any]) -> Optional[Any]:
    """The first call to a function the NF defines further down, with no declaration above the
    call: C11 has no implicit declarations (gcc refuses the file), and the analysis must not give
    the call a prototype the compiler never saw."""
    class Calls(c_ast.NodeVisitor):
        def __init__(self) -> None:
            self.found: list[Any] = []

        def visit_FuncCall(self, node: Any) -> None:
            if isinstance(node.name, c_ast.ID):
                self.found.append(node)
            self.generic_visit(node)

    declared: set[str] = set()
    early: dict[str, Any] = {}  # name -> its first call above any declaration
    for item in items:
        if isinstance(item, c_ast.Decl) and isinstance(item.type, c_ast.FuncDecl):
            declared.add(item.name)
        elif isinstance(item, c_ast.FuncDef):
            declared.add(item.decl.name)
            calls = Calls()
            calls.visit(item.body)
            for call in calls.found:
                if call.name.name not in declared:
                    early.setdefault(call.name.name, call)
    defined = {item.decl.name for item in items if isinstance(item, c_ast.FuncDef)}
    return next((call for name, call in early.items() if name in defined), None)


def is_const(quals: Any) -> bool:
    return "const" in (quals or [])


def decl_is_const(decl: Any) -> bool:
    """Whether a declared object itself (not what it points to) is const-qualified."""
    t = decl.type
    while isinstance(t, c_ast.ArrayDecl):
        t = t.type
    if isinstance(t, c_ast.PtrDecl):
        return is_const(t.quals)
    return isinstance(t, c_ast.TypeDecl) and is_const(t.quals)
