"""The NF rewritten for a strategy: its pycparser AST transformed, printed with CGenerator.

The NF is parsed by ``explorer.frontend`` (so with the configuration it was analysed with: its
macros are expanded, and the values they had are the ones printed). Declarations that come from
the project's own headers (nf.h and the analyser's small libc) are dropped: the printed file
includes ``nf_parallel.h``, which brings the real nf.h. Then, per strategy:

* seq: nothing changes.
* sn: every variable with static storage becomes ``_Thread_local`` (each core's nf_init fills its
  own handles); the capacity argument of each allocation of a sharded map, vector or dchain is
  wrapped in ``nf_sn_capacity()``; ``nf_dchain_allocate_new_index`` becomes
  ``nf_sn_allocate_new_index`` (which notes a core's share running out).
* locks, tm: allocations, ``nf_vector_borrow``/``nf_vector_return`` and
  ``nf_dchain_rejuvenate_index`` call the runtime's ``nf_par_*`` versions (see nf_parallel.h).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pycparser import c_ast, c_generator

from explorer.codegen.planning import DIVIDED_KINDS, ParallelPlan
from explorer.errors import GenerateError
from explorer.frontend import parse_nf
from explorer.ir import Location
from explorer.nfsource import FRONTEND_INCLUDE, RUNTIME_INCLUDE
from explorer.state_api import ALLOCATIONS

RENAMES = {
    "seq": {},
    "sn": {"nf_dchain_allocate_new_index": "nf_sn_allocate_new_index"},
    "locks": {"nf_map_allocate": "nf_par_map_allocate", "nf_vector_allocate": "nf_par_vector_allocate",
              "nf_dchain_allocate": "nf_par_dchain_allocate", "nf_sketch_allocate": "nf_par_sketch_allocate",
              "nf_cht_allocate": "nf_par_cht_allocate", "nf_vector_borrow": "nf_par_vector_borrow",
              "nf_vector_return": "nf_par_vector_return",
              "nf_dchain_rejuvenate_index": "nf_par_dchain_rejuvenate_index"},
}
RENAMES["tm"] = RENAMES["locks"]


@dataclass(frozen=True)
class TransformedNF:
    """The printed NF and what the transformation did (for the file's header comment)."""

    text: str
    changes: tuple[str, ...]


def _location(node: c_ast.Node) -> Optional[Location]:
    coord = getattr(node, "coord", None)
    if coord is None or getattr(coord, "line", None) is None:
        return None
    return Location(str(coord.file), int(coord.line), int(getattr(coord, "column", 0) or 0))


def _ours(file: str) -> bool:
    """Whether a file is one of the project's own headers (its declarations come from nf.h)."""
    try:
        parent = Path(file).resolve().parent
    except (OSError, ValueError):
        return False
    return parent in (FRONTEND_INCLUDE.resolve(), RUNTIME_INCLUDE.resolve())


class _Rewriter(c_ast.NodeVisitor):
    """Renames calls, wraps capacities and checks that rewritten functions are only called."""

    def __init__(self, plan: ParallelPlan):
        self.plan = plan
        self.renames = RENAMES[plan.strategy]
        self.divided = {o.name for o in plan.objects
                        if plan.strategy == "sn" and o.decision == "shard" and o.kind in DIVIDED_KINDS
                        and o.per_core != o.capacity}
        self.found: set[str] = set()
        self.called: set[int] = set()  # ids of ID nodes that are the name of a call
        self.changes: dict[str, int] = {}

    def _count(self, change: str) -> None:
        self.changes[change] = self.changes.get(change, 0) + 1

    def visit_FuncCall(self, node: c_ast.FuncCall) -> None:
        name = node.name.name if isinstance(node.name, c_ast.ID) else None
        if name is not None:
            self.called.add(id(node.name))
            if name in ALLOCATIONS:
                self._allocation(node, name)
            if name in self.renames:
                node.name = c_ast.ID(self.renames[name], coord=node.name.coord)
                self.called.add(id(node.name))
                self._count(f"{name} -> {self.renames[name]}")
        self.generic_visit(node)

    def _allocation(self, node: c_ast.FuncCall, name: str) -> None:
        args = node.args.exprs if node.args is not None else []
        out = args[-1] if args else None
        target = out.expr.name if (isinstance(out, c_ast.UnaryOp) and out.op == "&"
                                   and isinstance(out.expr, c_ast.ID)) else None
        position = ALLOCATIONS[name].capacity_arg
        if target is None:
            if self.divided:
                raise GenerateError(f"{name} must be called with &<global handle> as its last argument, so that "
                                    "nfx can tell which object it allocates", location=_location(node))
            return
        if target in self.divided and position is not None and position < len(args):
            kind = self.plan.object(target).kind
            if ALLOCATIONS[name].kind != kind:
                raise GenerateError(f"{target} is a {kind}, but {name} allocates it", location=_location(node))
            args[position] = c_ast.FuncCall(c_ast.ID("nf_sn_capacity"), c_ast.ExprList([args[position]]),
                                            coord=args[position].coord)
            self.found.add(target)
            self._count(f"capacity of {target} -> nf_sn_capacity(...)")

    def visit_ID(self, node: c_ast.ID) -> None:
        if node.name in self.renames and id(node) not in self.called:
            raise GenerateError(f"{node.name} is used other than by calling it; the {self.plan.strategy} strategy "
                                f"must replace its calls", location=_location(node))


def _thread_local(decl: c_ast.Decl) -> bool:
    """Make a variable with static storage thread-local; False when it is not such a variable."""
    if isinstance(decl.type, c_ast.FuncDecl) or "extern" in decl.storage or "typedef" in decl.storage:
        return False
    if decl.name is None:  # a struct or enum declaration
        return False
    if "_Thread_local" not in decl.storage:
        decl.storage = [s for s in decl.storage if s == "static"] + ["_Thread_local"] + \
                       [s for s in decl.storage if s != "static"]
    return True


class _StaticLocals(c_ast.NodeVisitor):
    """Static variables inside functions (sn makes them per core too)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_Decl(self, node: c_ast.Decl) -> None:
        if "static" in node.storage and _thread_local(node):
            self.names.append(node.name)
        self.generic_visit(node)


def nf_ast(plan: ParallelPlan) -> c_ast.FileAST:
    """The NF's own declarations, parsed with the plan's configuration."""
    parsed = parse_nf(plan.source, dict(plan.overrides))
    if tuple(sorted(parsed.defines)) != plan.defines:
        raise GenerateError(f"{plan.source} has changed since it was analysed: its configuration is now "
                            f"{dict(parsed.defines)}, the plan has {dict(plan.defines)}; analyse it again")
    ext = [node for node in parsed.ast.ext if node.coord is None or not _ours(str(node.coord.file))]
    return c_ast.FileAST(ext)


def transform(plan: ParallelPlan) -> TransformedNF:
    """The NF's C text for ``plan.strategy``."""
    ast = nf_ast(plan)
    rewriter = _Rewriter(plan)
    rewriter.visit(ast)
    missing = sorted(rewriter.divided - rewriter.found)
    if missing:
        raise GenerateError(f"{plan.source}: cannot find where nf_init allocates {', '.join(missing)} (expected a "
                            f"call like nf_map_allocate(size, capacity, &{missing[0]}))")
    changes = [f"{change} (x{count})" if count > 1 else change for change, count in sorted(rewriter.changes.items())]
    if plan.strategy == "sn":
        shared = [node.name for node in ast.ext if isinstance(node, c_ast.Decl) and _thread_local(node)]
        locals_ = _StaticLocals()
        for node in ast.ext:
            if isinstance(node, c_ast.FuncDef):
                locals_.visit(node)
        if shared or locals_.names:
            changes.append("thread-local (one per core): " + ", ".join(shared + locals_.names))
    body = c_generator.CGenerator().visit(ast)
    return TransformedNF(body, tuple(changes))
