"""The base of the interpreter's visitors: ``visit(node)`` dispatches to ``visit_<ClassName>`` as
pycparser's ``NodeVisitor`` does, with the lookup cached per node class."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from explorer.symbex.interpreter import Interpreter


class Visitor:
    def __init__(self, it: "Interpreter"):
        self.it = it
        self.machine = it.machine
        self._methods: dict[type, Callable[[Any], Any]] = {}

    def visit(self, node: Any) -> Any:
        cls = type(node)
        method = self._methods.get(cls)
        if method is None:
            method = getattr(self, "visit_" + cls.__name__, None) or self.generic_visit
            self._methods[cls] = method
        return method(node)

    def generic_visit(self, node: Any) -> Any:
        raise NotImplementedError(type(node).__name__)
