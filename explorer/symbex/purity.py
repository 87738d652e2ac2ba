"""Whether evaluating an expression has no side effects, so that the interpreter may evaluate it
speculatively (a symbolic ``&&``, ``||`` or ``?:`` becomes one condition or one ``If`` term instead
of a fork)."""
from __future__ import annotations

from typing import Any

from pycparser import c_ast

PURE_CALLS = frozenset({"nf_ntohs", "nf_htons", "nf_ntohl", "nf_htonl", "nf_hash"})



class Purity:
    """``purity(node)``, memoized by node id (one instance per program, whose AST keeps the ids unique)."""

    def __init__(self) -> None:
        self._cache: dict[int, bool] = {}

    def __call__(self, node: Any) -> bool:
        hit = self._cache.get(id(node))
        if hit is None:
            hit = self._cache[id(node)] = _pure(node)
        return hit


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
