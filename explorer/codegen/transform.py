"""The NF rewritten for a strategy: the strategy's edits, found on the NF's AST and applied to the
NF's own text (``source_edits``), so that ``nf.c`` keeps the author's comments, macro names and
layout, and its diff against the input is the strategy's edits and nothing else.

What each strategy changes is one row of ``EDITS`` (a new strategy is a new row):

* seq: nothing.
* sn: variables with static storage become ``_Thread_local`` (each core's nf_init fills its own
  handles); the capacity argument of each allocation of an object the plan gives a per-core share
  is wrapped in ``nf_sn_capacity()``; ``nf_dchain_allocate_new_index`` becomes
  ``nf_sn_allocate_new_index`` (which notes a core's share running out).
  With per-core pools (sharding by allocation, ``explorer.codegen.pooling``) a pooled dchain's
  ``nf_dchain_allocate(capacity, &chain)`` becomes ``nf_pool_dchain_allocate(pool, capacity, &chain)``
  and the wrapper of maps' capacities is ``nf_pool_capacity()``.
  With replicated objects that packets write, allocations and every call that may change an
  object go through ``nf_replica.c`` (``REPLICA_RENAMES``), which broadcasts writes.
* locks, tm: allocations, ``nf_vector_borrow``/``nf_vector_return`` and
  ``nf_dchain_rejuvenate_index`` call the runtime's ``nf_par_*`` versions (see nf_parallel.h).

Every ``nf.c`` starts with one added line, ``#include "nf_parallel.h"``: it brings the project's
configuration (``nf_config.h`` defines the values the NF was analysed with that differ from its
own ``#ifndef`` defaults) and declares what the edits call. The NF is located with the plan's
configuration, and the edited text, preprocessed and parsed again with it, must give exactly the
AST the strategy asks for, or nothing is generated.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from pycparser import c_ast, c_generator

from explorer.codegen.source_edits import Edit, SourceAnchors, Token, apply_edits, arguments, first_code_offset, \
    unified_diff
from explorer.errors import GenerateError, NfxError
from explorer.frontend import parse_nf
from explorer.frontend.columns import column_of
from explorer.ir import Location
from explorer.nfsource import FRONTEND_INCLUDE, RUNTIME_INCLUDE
from explorer.nfsource.number_lists import NumberElements
from explorer.state_api import ALLOCATIONS


@dataclass(frozen=True)
class StrategyEdits:
    """What a strategy changes in an NF."""

    renames: dict[str, str] = field(default_factory=dict)  # state call -> the runtime's version
    thread_local: bool = False  # variables with static storage become one per core
    capacity_wrapper: Optional[str] = None  # wraps the capacity of objects the plan gives a per-core share


_LOCKED_CALLS = {"nf_map_allocate": "nf_par_map_allocate", "nf_vector_allocate": "nf_par_vector_allocate",
                 "nf_dchain_allocate": "nf_par_dchain_allocate", "nf_sketch_allocate": "nf_par_sketch_allocate",
                 "nf_cht_allocate": "nf_par_cht_allocate", "nf_vector_borrow": "nf_par_vector_borrow",
                 "nf_vector_return": "nf_par_vector_return",
                 "nf_dchain_rejuvenate_index": "nf_par_dchain_rejuvenate_index"}
EDITS: dict[str, StrategyEdits] = {
    "seq": StrategyEdits(),
    "sn": StrategyEdits({"nf_dchain_allocate_new_index": "nf_sn_allocate_new_index"}, thread_local=True,
                        capacity_wrapper="nf_sn_capacity"),
    "locks": StrategyEdits(_LOCKED_CALLS),
    "tm": StrategyEdits(_LOCKED_CALLS),
}
# sn with replicated objects that packets write: every allocation (objects are registered per core)
# and every call that may change an object go through nf_replica.c, which records the changes to
# replicated objects and broadcasts them.
REPLICA_RENAMES = {name: "nf_rep_" + name.removeprefix("nf_") for name in (
    "nf_map_allocate", "nf_vector_allocate", "nf_dchain_allocate", "nf_sketch_allocate", "nf_cht_allocate",
    "nf_map_put", "nf_map_erase", "nf_vector_borrow", "nf_vector_return", "nf_dchain_allocate_new_index",
    "nf_dchain_rejuvenate_index", "nf_dchain_free_index", "nf_expire_items", "nf_expire_items2",
    "nf_sketch_touch", "nf_sketch_expire")}
PROLOGUE = '#include "nf_parallel.h" /* nfx generate: the configuration and the {strategy} runtime */\n'
# Declaration specifiers: walking back over them from a declaration's type finds where it starts.
_SPECIFIERS = frozenset({"static", "extern", "auto", "register", "_Thread_local", "__thread", "const", "volatile",
                         "restrict", "_Atomic", "inline", "_Noreturn", "signed", "unsigned", "short", "long", "int",
                         "char", "float", "double", "void", "_Bool", "_Complex", "struct", "union", "enum"})
_TYPE_NODES = (c_ast.IdentifierType, c_ast.Struct, c_ast.Union, c_ast.Enum)


@dataclass(frozen=True)
class TransformedNF:
    """The NF's text for a strategy, and what changed."""

    text: str  # nf.c
    headers: tuple[tuple[str, str], ...]  # the NF's own headers (path in the project, text), edited where needed
    changes: tuple[str, ...]  # one line per kind of edit, for people
    diff: str  # the edits, as a unified diff against the NF's files


def _location(node: c_ast.Node) -> Optional[Location]:
    coord = getattr(node, "coord", None)
    if coord is None or getattr(coord, "line", None) is None:
        return None
    return Location(str(coord.file), int(coord.line), int(getattr(coord, "column", 0) or 0))


def _ours(file: str) -> bool:
    """Whether a file is one of the project's own headers (its declarations come from nf.h), or a
    copy of one (the nf.h of a project generated beside the NF, which its #include then finds)."""
    path = Path(file)
    try:
        if path.resolve().parent in (FRONTEND_INCLUDE.resolve(), RUNTIME_INCLUDE.resolve()):
            return True
        original = RUNTIME_INCLUDE / path.name
        return original.is_file() and original.read_bytes() == path.read_bytes()
    except (OSError, ValueError):
        return False


def _own(ast: c_ast.FileAST) -> c_ast.FileAST:
    return c_ast.FileAST([node for node in ast.ext if node.coord is None or not _ours(str(node.coord.file))])


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8", "surrogateescape")  # byte for byte, whatever it holds
    except OSError as error:
        raise GenerateError(f"cannot read {path}: {error.strerror}") from None


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return a == b


def _handle_name(expr: c_ast.Node) -> Optional[str]:
    """The name the analysis gives the object allocated into ``expr`` (``flows``, ``st.flows``,
    ``tables[1]``: ``explorer.symbex.models.allocation.handle_path``), or None when it is not such a
    path of members and constant indices."""
    if isinstance(expr, c_ast.ID):
        return expr.name
    if isinstance(expr, c_ast.StructRef) and expr.type == "." and isinstance(expr.field, c_ast.ID):
        base = _handle_name(expr.name)
        return None if base is None else f"{base}.{expr.field.name}"
    if isinstance(expr, c_ast.ArrayRef) and isinstance(expr.subscript, c_ast.Constant) \
            and expr.subscript.type in ("int", "unsigned int", "long int", "unsigned long int"):
        base = _handle_name(expr.name)
        digits = expr.subscript.value.rstrip("uUlL")
        try:
            index = int(digits, 8) if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB" \
                else int(digits, 0)
        except ValueError:
            return None
        return None if base is None else f"{base}[{index}]"
    return None


class _Walk(c_ast.NodeVisitor):
    """A visitor that does not go into a long list of integer constants (``NumberElements``): a
    table holds nothing to edit or check, and its two million nodes would each be made to be seen."""

    def visit_InitList(self, node: c_ast.InitList) -> None:
        if not isinstance(node.exprs, NumberElements):
            self.generic_visit(node)


class _EditFinder(_Walk):
    """Walks the NF's AST: finds where each edit goes in the source (``edits``) and makes the same
    change in the AST (what the edited text must parse to)."""

    def __init__(self, plan, anchors: SourceAnchors):
        self.plan = plan
        self.anchors = anchors
        self.rules = EDITS[plan.strategy]
        if plan.strategy == "sn" and plan.broadcast:  # replicated objects: see REPLICA_RENAMES
            self.rules = replace(self.rules, renames={**self.rules.renames, **REPLICA_RENAMES})
        self.wrapped = {o.name for o in plan.objects if o.per_core != o.capacity} if self.rules.capacity_wrapper \
            else set()
        self.found: set[str] = set()
        self.called: set[int] = set()  # ids of ID nodes that are the name of a call
        self.edits: list[Edit] = []
        self.changes: dict[str, int] = {}

    def _count(self, change: str) -> None:
        self.changes[change] = self.changes.get(change, 0) + 1

    def _source(self, node: c_ast.Node, what: str) -> Token:
        coord = node.coord
        return self.anchors.source(self.anchors.at(str(coord.file), coord.line, coord.column), what)

    def visit_FuncCall(self, node: c_ast.FuncCall) -> None:
        name = node.name.name if isinstance(node.name, c_ast.ID) else None
        if name is not None:
            self.called.add(id(node.name))
            if name in ALLOCATIONS:
                self._allocation(node, name)
            if name in self.rules.renames and node.name.name == name:  # (a pooled allocation has its own call)
                new = self.rules.renames[name]
                token = self._source(node.name, f"the call to {name} that the {self.plan.strategy} strategy renames")
                self.edits.append(Edit(token.file, token.start, token.end, new))
                node.name = c_ast.ID(new, coord=node.name.coord)
                self.called.add(id(node.name))
                self._count(f"{name} -> {new}")
        self.generic_visit(node)

    def _allocation(self, node: c_ast.FuncCall, name: str) -> None:
        args = node.args.exprs if node.args is not None else []
        out = args[-1] if args else None
        target = _handle_name(out.expr) if isinstance(out, c_ast.UnaryOp) and out.op == "&" else None
        position = ALLOCATIONS[name].capacity_arg
        if target is None:
            target = self._allocated_here(node, name)
            if target is None:
                return
        if target not in self.wrapped or position is None or position >= len(args):
            return
        obj = self.plan.object(target)
        if ALLOCATIONS[name].kind != obj.kind:
            raise GenerateError(f"{target} is a {obj.kind}, but {name} allocates it", location=_location(node))
        if obj.pool >= 0:  # sharding by allocation: the whole range, this core's pool of it
            self._pooled(node, name, target, obj.pool)
            return
        wrapper = "nf_pool_capacity" if self.plan.pools else self.rules.capacity_wrapper
        what = f"the capacity of {target}, which the {self.plan.strategy} strategy wraps in {wrapper}()"
        written = arguments(self.anchors.following(self._source(node.name, what)))
        if written is None or len(written) != len(args) or not written[position]:
            raise GenerateError(f"{what}: the arguments of this {name} come out of a macro expansion, which nfx "
                                "does not edit; write them out in the NF", location=_location(node))
        first, last = written[position][0], written[position][-1]
        self.edits += [Edit(first.file, first.start, first.start, f"{wrapper}("),
                       Edit(last.file, last.end, last.end, ")")]
        args[position] = c_ast.FuncCall(c_ast.ID(wrapper), c_ast.ExprList([args[position]]), coord=args[position].coord)
        self.found.add(target)
        self._count(f"capacity of {target} -> {wrapper}(...)")

    def _allocated_here(self, node: c_ast.FuncCall, name: str) -> Optional[str]:
        """The object a call whose handle is no plain path allocates (in a loop over an array of
        handles, in a helper handed the handle's address), found by the call's location in the plan;
        of several objects one call allocates, the first, once the plan treats them all alike."""
        coord = node.coord
        objects = [o for o in self.plan.objects if o.location is not None and coord is not None
                   and (o.location.line, o.location.col) == (coord.line, column_of(coord))
                   and _same_file(o.location.file, str(coord.file))]
        edited = [o for o in objects if o.name in self.wrapped]
        if not edited:
            if self.wrapped and not objects:
                raise GenerateError(f"{name} must be called with &<global handle> (&flows, &st.flows or "
                                    "&tables[1]) as its last argument, so that nfx can tell which object it "
                                    "allocates", location=_location(node))
            return None
        if len(edited) != len(objects) or len({(o.kind, o.pool) for o in objects}) > 1:
            how = "; ".join(f"{o.name}: {o.treatment}" for o in objects)
            raise GenerateError(f"this {name} allocates {', '.join(o.name for o in objects)}, which the "
                                f"{self.plan.strategy} plan treats differently ({how}), and one call can be edited "
                                "only one way; allocate them in separate calls", location=_location(node))
        self.found.update(o.name for o in objects)
        return objects[0].name

    def _pooled(self, node: c_ast.FuncCall, name: str, target: str, pool: int) -> None:
        """``nf_dchain_allocate(capacity, &chain)`` -> ``nf_pool_dchain_allocate(pool, capacity, &chain)``."""
        call = "nf_pool_dchain_allocate"
        what = f"the allocation of {target}, which the {self.plan.strategy} strategy makes {call}"
        token = self._source(node.name, what)
        written = arguments(self.anchors.following(token))
        if not written or not written[0]:
            raise GenerateError(f"{what}: the arguments of this {name} come out of a macro expansion, which nfx "
                                "does not edit; write them out in the NF", location=_location(node))
        first = written[0][0]
        self.edits += [Edit(token.file, token.start, token.end, call), Edit(first.file, first.start, first.start,
                                                                           f"{pool}, ")]
        node.name = c_ast.ID(call, coord=node.name.coord)
        self.called.add(id(node.name))
        node.args.exprs.insert(0, c_ast.Constant("int", str(pool)))
        self.found.add(target)
        self._count(f"{name} of {target} -> {call}({pool}, ...)")

    def visit_ID(self, node: c_ast.ID) -> None:
        if node.name in self.rules.renames and id(node) not in self.called:
            raise GenerateError(f"{node.name} is used other than by calling it; the {self.plan.strategy} strategy "
                                f"must replace its calls", location=_location(node))

    def thread_local(self, decl: c_ast.Decl) -> None:
        """Make a variable with static storage one per thread, in the AST and in the text."""
        if "_Thread_local" in decl.storage or "__thread" in decl.storage:
            return
        decl.storage = [s for s in decl.storage if s == "static"] + ["_Thread_local"] + \
                       [s for s in decl.storage if s != "static"]
        spec = decl.type
        while not isinstance(spec, _TYPE_NODES):
            spec = spec.type
        anchors = self.anchors
        pre = anchors.preprocessed
        at = anchors.at(str(spec.coord.file), spec.coord.line, spec.coord.column)
        first = at
        while first > 0 and pre[first - 1].value in _SPECIFIERS and pre[first - 1].file == pre[at].file:
            first -= 1
        what = f"the declaration of {decl.name}, which the {self.plan.strategy} strategy makes _Thread_local"
        static = next((i for i in range(first, at + 1) if pre[i].value == "static"), None)
        if static is not None:
            token = anchors.source(static, what)
            self.edits.append(Edit(token.file, token.end, token.end, " _Thread_local"))
        else:
            token = anchors.source(first, what)
            self.edits.append(Edit(token.file, token.start, token.start, "_Thread_local "))


def _static_storage(decl: c_ast.Node, file_scope: bool) -> bool:
    """A named variable whose lifetime is the program's (a global, or a static local)."""
    return (isinstance(decl, c_ast.Decl) and decl.name is not None and not isinstance(decl.type, c_ast.FuncDecl)
            and "extern" not in decl.storage and "typedef" not in decl.storage
            and (file_scope or "static" in decl.storage))


class _StaticLocals(_Walk):
    def __init__(self) -> None:
        self.decls: list[c_ast.Decl] = []

    def visit_Decl(self, node: c_ast.Decl) -> None:
        if _static_storage(node, file_scope=False):
            self.decls.append(node)
        self.generic_visit(node)


def _read_only(decl: c_ast.Decl) -> bool:
    """A const object (``static const uint32_t table[N]``, ``char *const p``; not ``const char *p``,
    a pointer that can change): no core can write it, so the cores share one copy instead of each
    holding its own (a constant table of millions of entries, once per core)."""
    node = decl.type
    while isinstance(node, c_ast.ArrayDecl):
        node = node.type
    return "const" in getattr(node, "quals", ())


def _no_thread_local_addresses(decls: list[c_ast.Decl], names: set[str], strategy: str) -> None:
    """Refuse a variable with static storage initialized with the address of one of ``names``, those
    made one per core (``struct tables *T = &state;``): C has no constant for ``&state`` then (gcc: the
    initializer element is not constant), and each core's T would have to point at its own state."""

    class Uses(_Walk):
        def __init__(self) -> None:
            self.found: Optional[str] = None

        def visit_UnaryOp(self, node: c_ast.UnaryOp) -> None:
            if node.op != "sizeof":  # sizeof state is a constant
                self.generic_visit(node)

        def visit_ID(self, node: c_ast.ID) -> None:
            if node.name in names and self.found is None:
                self.found = node.name

    for decl in decls:
        if decl.init is None:
            continue
        uses = Uses()
        uses.visit(decl.init)
        if uses.found is not None:
            raise GenerateError(f"{decl.name} is initialized with the address of {uses.found}: the {strategy} "
                                f"strategy gives every core its own {uses.found} (_Thread_local), whose address C "
                                f"cannot use in a static initializer; set {decl.name} in nf_init instead",
                                location=_location(decl))


def nf_ast(plan) -> c_ast.FileAST:
    """The NF's own declarations, parsed with the plan's configuration."""
    return _own(_parse(plan).ast)


def _parse(plan):
    parsed = parse_nf(plan.source, dict(plan.overrides), private=True)  # its calls are renamed in place
    if tuple(sorted(parsed.defines)) != plan.defines:
        raise GenerateError(f"{plan.source} has changed since it was analysed: its configuration is now "
                            f"{dict(parsed.defines)}, the plan has {dict(plan.defines)}; analyse it again")
    return parsed


def _headers(plan, parsed) -> dict[str, str]:
    """The NF's own headers (those the project must hold beside nf.c): file as the front end names
    it -> its path in the project, the same path relative to the NF as in the NF's folder (so that
    every relative #include finds it there too). Refuses a header outside the NF's folder."""
    folder = Path(os.path.abspath(plan.source)).parent
    headers = {}
    for name, _ in parsed.source_map.files:
        if name == plan.source or _ours(name):
            continue
        relative = Path(os.path.relpath(os.path.abspath(name), folder))
        if relative.parts[0] == "..":
            raise GenerateError(f"{plan.source} includes {name}: nfx generate copies an NF's own headers into the "
                                "project, and only those in the NF's folder or below it; move it there")
        headers[name] = relative.as_posix()
    return headers


def _canonical(ast: c_ast.FileAST) -> str:
    """The AST as C text, declaration specifiers in a fixed order."""
    class Order(_Walk):
        def visit_Decl(self, node: c_ast.Decl) -> None:
            node.storage = sorted(node.storage)
            self.generic_visit(node)

    Order().visit(ast)
    return _Printer().visit(ast)


class _Printer(c_generator.CGenerator):
    """pycparser's C text, a list of integer constants printed from its distinct spellings (the same
    text: ``-7, 0x1f, ...``) rather than through a node per element."""

    def visit_InitList(self, n: c_ast.InitList) -> str:
        if not isinstance(n.exprs, NumberElements):
            return super().visit_InitList(n)
        numbers = n.exprs.numbers
        printed = {part: ("-" if negated else "") + literal for part, (negated, literal) in numbers.spellings.items()}
        return ", ".join(map(printed.__getitem__, numbers.parts))


def _verify(plan, edited: dict[str, str], expected: c_ast.FileAST) -> None:
    """The edited text (by path in the project), parsed again with the plan's configuration, must be the AST asked for."""
    with tempfile.TemporaryDirectory(prefix="nfx-edits-") as folder:
        for name, text in edited.items():
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            again = parse_nf(str(Path(folder) / Path(plan.source).name), dict(plan.overrides), private=True)
        except NfxError as error:
            raise GenerateError(f"the {plan.strategy} edits of {plan.source} do not parse ({error.message}); "
                                "nothing was generated") from None
    want, got = _canonical(expected), _canonical(_own(again.ast))
    if want != got:
        line = next((a for a, b in zip(want.splitlines(), got.splitlines()) if a != b), "")
        raise GenerateError(f"the {plan.strategy} edits of {plan.source} do not give the NF the strategy needs "
                            f"(a macro around an edited call?); expected '{line.strip()}'; nothing was generated")


def transform(plan) -> TransformedNF:
    """The NF's text (and its own headers') for ``plan.strategy``."""
    parsed = _parse(plan)
    headers = _headers(plan, parsed)
    sources = {name: _read(name) for name in [plan.source, *headers]}
    if parsed.source is None or not parsed.source.text:
        raise GenerateError("the front end gave no preprocessed text to anchor the strategy's edits on")
    finder = _EditFinder(plan, SourceAnchors(parsed.source.text, sources, dict(parsed.source.spellings)))
    ast = _own(parsed.ast)
    finder.visit(ast)
    missing = sorted(finder.wrapped - finder.found)
    if missing:
        raise GenerateError(f"{plan.source}: cannot find where nf_init allocates {', '.join(missing)} (expected a "
                            f"call like nf_map_allocate(size, capacity, &{missing[0]}))")
    changes = [f"{change} (x{count})" if count > 1 else change for change, count in sorted(finder.changes.items())]
    if finder.rules.thread_local:
        globals_ = [node for node in ast.ext if _static_storage(node, file_scope=True)]
        locals_ = _StaticLocals()
        for node in ast.ext:
            if isinstance(node, c_ast.FuncDef):
                locals_.visit(node)
        statics = globals_ + locals_.decls
        shared = [d for d in statics if _read_only(d)]
        per_core = [d for d in statics if not _read_only(d)]
        _no_thread_local_addresses(statics, {d.name for d in per_core}, plan.strategy)
        for decl in per_core:
            finder.thread_local(decl)
        if per_core:
            changes.append("thread-local (one per core): " + ", ".join(d.name for d in per_core))
        if shared:
            changes.append("shared, read-only: " + ", ".join(d.name for d in shared))
    unique = list(dict.fromkeys(finder.edits))  # declarators that share their specifiers share the edit
    edited = {name: apply_edits(text, [e for e in unique if e.file == name]) for name, text in sources.items()}
    _verify(plan, {headers.get(name, Path(name).name): text for name, text in edited.items()}, ast)

    nf_text = sources[plan.source]
    start = first_code_offset(nf_text)
    line_start = nf_text.rfind("\n", 0, start) + 1
    if not nf_text[line_start:start].strip():
        start = line_start
    prologue = Edit(plan.source, start, start, PROLOGUE.format(strategy=plan.strategy))
    nf_c = apply_edits(nf_text, [*[e for e in unique if e.file == plan.source], prologue])
    diff = unified_diff(nf_text, nf_c, plan.source, "nf.c")
    for name in headers:
        diff += unified_diff(sources[name], edited[name], name, headers[name])
    return TransformedNF(nf_c, tuple(sorted((headers[h], edited[h]) for h in headers)), tuple(changes), diff)
