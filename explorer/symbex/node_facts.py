"""Facts about AST nodes the interpreter asks again and again, memoized per node (one instance per
program, whose AST keeps the node ids unique):

* ``pure(expr)``: evaluating it has no side effects, so the interpreter may evaluate it
  speculatively (a symbolic ``&&``, ``||`` or ``?:`` becomes one condition or one ``If`` term
  instead of a fork);
* ``may_fork(stmt)``: running it may fork the path (a branch, a loop, a call of the NF's own
  functions or of a library function with a 0/1 result), so it is worth merging (see ``merging``).
"""
from __future__ import annotations

from typing import Any, Callable

from pycparser import c_ast

PURE_CALLS = frozenset({"nf_ntohs", "nf_htons", "nf_ntohl", "nf_htonl", "nf_hash"})
_BRANCHES = (c_ast.If, c_ast.Switch, c_ast.For, c_ast.While, c_ast.DoWhile, c_ast.TernaryOp)


class NodeFacts:
    def __init__(self, forking_call: Callable[[str], bool]):
        self._forking_call = forking_call
        self._pure: dict[int, bool] = {}
        self._forks: dict[int, bool] = {}

    def pure(self, node: Any) -> bool:
        hit = self._pure.get(id(node))
        if hit is None:
            hit = self._pure[id(node)] = _pure(node)
        return hit

    def may_fork(self, node: Any) -> bool:
        hit = self._forks.get(id(node))
        if hit is None:
            hit = self._forks[id(node)] = self._may_fork(node)
        return hit

    def _may_fork(self, node: Any) -> bool:
        if isinstance(node, _BRANCHES):
            return True
        if isinstance(node, c_ast.BinaryOp) and node.op in ("&&", "||"):
            return True
        if isinstance(node, c_ast.FuncCall) and (not isinstance(node.name, c_ast.ID)
                                                 or self._forking_call(node.name.name)):
            return True
        return any(self._may_fork(child) for _, child in node.children())


def _pure(node: Any) -> bool:
    if isinstance(node, c_ast.Assignment):
        return False
    if isinstance(node, c_ast.UnaryOp) and node.op in ("++", "--", "p++", "p--"):
        return False
    if isinstance(node, c_ast.FuncCall):
        if not (isinstance(node.name, c_ast.ID) and node.name.name in PURE_CALLS):
            return False
    if isinstance(node, c_ast.Constant) and node.type == "string":
        return False  # allocates a region
    if isinstance(node, c_ast.CompoundLiteral):
        return False
    return all(_pure(child) for _, child in node.children())
