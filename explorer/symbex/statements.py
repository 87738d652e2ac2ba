"""Statements and declarations, one ``visit_<Node>`` per kind; the NF's own functions are inlined.

``break``, ``continue`` and ``return`` unwind as the signals below. Branches ask the path state,
which forks; a loop's condition must be decided on the path (loops have a constant bound).
"""
from __future__ import annotations

from typing import Any, Optional

import z3
from pycparser import c_ast

from explorer.symbex import ctype as ct
from explorer.symbex.ctype import CType, FunctionType, PointerType, StructType
from explorer.symbex.program import GlobalVar, Scope, decl_is_const
from explorer.symbex.values import Int, Ptr, SemanticsError, Value, compare, convert_int, truth
from explorer.symbex.visitor import Visitor
from explorer.wording import count

MAX_LOOP_ITERATIONS = 10_000  # per loop instance: NFs copy a few bytes; nf_init fills small tables
# Iterations of an endless loop (for (;;), while (1)) that each decided on data whether to stop: a
# walk through state (while (1) { if (!nf_map_get(...)) break; ... }) that no count bounds. Each such
# iteration lengthens the path condition, so 10,000 of them took hours; a counter's break, the way
# such a loop ends in an NF (parsing options), comes far sooner.
MAX_FORKING_ITERATIONS = 128
MAX_CALL_DEPTH = 64

_EXPRESSIONS = frozenset({"Assignment", "UnaryOp", "BinaryOp", "FuncCall", "ExprList", "TernaryOp", "Cast", "ID",
                          "Constant", "ArrayRef", "StructRef", "CompoundLiteral"})


class Break(Exception):
    """``break``: leaves the innermost loop or switch."""

    def __init__(self, node: Any):
        self.node = node


class Continue(Exception):
    """``continue``: ends the innermost loop's iteration."""

    def __init__(self, node: Any):
        self.node = node


class Return(Exception):
    """``return``: leaves the function with ``value`` (None for ``return;``)."""

    def __init__(self, value: Optional[Value], node: Any):
        self.value = value
        self.node = node


def _place(node: Any) -> tuple[int, int]:
    """Where a statement of one function starts (its file is the function's)."""
    return node.coord.line, node.coord.column or 0


class Statements(Visitor):
    def run(self, node: Any) -> None:
        """Execute one statement."""
        self.machine.step(node)
        try:
            self.visit(node)
        except SemanticsError as error:
            raise self.machine.fail(node, str(error)) from None

    def generic_visit(self, node: Any) -> None:
        if isinstance(node, c_ast.Node) and type(node).__name__ in _EXPRESSIONS:
            self.it.expressions.value(node)
            return
        raise self.machine.fail(node, f"unsupported statement ({type(node).__name__})")

    # ------------------------------------------------------------------ functions
    def call_function(self, name: str, args: list[Value], node: Any) -> Optional[Value]:
        """Inline the NF's function ``name`` with already evaluated ``args``."""
        m = self.machine
        fdef = m.program.functions[name]
        if name in m.call_stack:
            chain = " -> ".join(m.call_stack[m.call_stack.index(name):] + [name])
            raise m.fail(node, f"recursive call to {name}() ({chain}) is not supported")
        if len(m.call_stack) >= MAX_CALL_DEPTH:
            raise m.fail(node, "calls are nested too deeply")
        ft = m.program.prototypes.get(name) or m.resolve_type(fdef.decl.type)
        params = fdef.decl.type.args.params if fdef.decl.type.args is not None else []
        params = [p for p in params if not (isinstance(p, c_ast.Typename) or
                                            (getattr(p, "name", None) is None and
                                             isinstance(p, c_ast.Decl) and
                                             m.resolve_type(p.type) == ct.VOID))]
        if fdef.param_decls:
            raise m.fail(fdef, "K&R-style function definitions are not supported")
        ellipsis = next((p for p in params if isinstance(p, c_ast.EllipsisParam)), None)
        if ellipsis is not None:
            raise m.fail(ellipsis, f"{name}() takes a variable argument list (...), which is not supported: "
                                   "give it a fixed parameter list")
        if len(args) != len(params):
            raise m.fail(node, f"{name}() takes {count(len(params), 'argument')}, {len(args)} given")
        saved = m.scopes
        m.scopes = [m.program.file_scope, Scope()]
        m.call_stack.append(name)
        try:
            for p, arg in zip(params, args):
                pt = m.types.parameter(p.type, m.scopes)
                region = m.fresh(f"local:{p.name}")
                m.new_region(region, "local", f"parameter {p.name}", pt.size)
                m.scopes[-1].vars[p.name] = (region, pt)
                m.store(Ptr(PointerType(pt), region, 0), pt, m.convert(arg, pt, node), node)
            try:
                self.run(fdef.body)
            except Return as ret:
                if len(m.call_stack) == 1:
                    m.returned_at = ret.node
                if ret.value is None or ft.ret == ct.VOID:
                    return None
                return m.convert(ret.value, ft.ret, node)
            except (Break, Continue) as stray:
                raise m.fail(stray.node, f"{'break' if isinstance(stray, Break) else 'continue'} outside a loop "
                                         f"or switch in {name}()") from None
            return None
        finally:
            m.call_stack.pop()
            for scope in m.scopes[1:]:
                m.end_scope(scope)
            m.scopes = saved

    # ------------------------------------------------------------------ declarations
    def declare_global(self, decl: Any) -> None:
        """A file-scope declaration: a prototype, a typedef/tag, or a global variable."""
        m = self.machine
        if isinstance(decl.type, c_ast.FuncDecl):
            ft = m.resolve_type(decl.type)
            assert isinstance(ft, FunctionType)
            m.program.prototypes[decl.name] = ft
            return
        t = m.declared_type(decl)
        if decl.name is None:
            return  # struct / union / enum declaration only
        if "extern" in (decl.storage or []) and decl.init is None:
            raise m.fail(decl, f"extern variable {decl.name} is not defined by the NF")
        if isinstance(t, StructType) and not t.complete:
            raise m.fail(decl, f"variable {decl.name} has incomplete type {t}")
        name = f"global:{decl.name}"
        if m.program.file_scope.vars.get(decl.name) is not None:
            if decl.init is None:
                return  # a tentative re-declaration
            raise m.fail(decl, f"global {decl.name} is defined twice")
        const = decl_is_const(decl)
        region = m.new_region(name, "global", f"global variable {decl.name}", t.size)
        m.program.file_scope.vars[decl.name] = (name, t)
        m.program.globals.append(GlobalVar(decl.name, t, decl.init, m.loc(decl), const))
        if decl.init is not None:
            self.it.initializers.initialize(Ptr(PointerType(t), name, 0), t, decl.init)
        region.readonly = const

    def visit_Decl(self, decl: Any) -> None:
        m = self.machine
        if isinstance(decl.type, c_ast.FuncDecl):
            m.program.prototypes.setdefault(decl.name, m.resolve_type(decl.type))
            return
        t = m.declared_type(decl)
        if decl.name is None:
            return
        storage = decl.storage or []
        if "static" in storage and not decl_is_const(decl):
            raise m.fail(decl, f"static local variable {decl.name} keeps state across packets; state that "
                               "outlives a packet must live in the state library")
        if "extern" in storage:
            raise m.fail(decl, f"extern declaration of {decl.name} inside a function is not supported")
        if isinstance(t, StructType) and not t.complete:
            raise m.fail(decl, f"variable {decl.name} has incomplete type {t}")
        name = m.fresh(f"local:{decl.name}")
        region = m.new_region(name, "local", f"local variable {decl.name}", t.size)
        m.scopes[-1].vars[decl.name] = (name, t)
        if decl.init is not None:
            self.it.initializers.initialize(Ptr(PointerType(t), name, 0), t, decl.init)
        else:
            region.unset = frozenset(range(t.size))
        region.readonly = decl_is_const(decl)  # a const local read at a symbolic index is a table

    def visit_DeclList(self, node: Any) -> None:
        for decl in node.decls:
            self.visit_Decl(decl)

    def visit_Typedef(self, node: Any) -> None:
        t: CType = self.machine.resolve_type(node.type)
        if isinstance(t, StructType) and t.tag is None and t.display is None:
            t.display = node.name
        self.machine.scopes[-1].typedefs[node.name] = t

    def visit_StaticAssert(self, node: Any) -> None:
        if self.it.constant(node.cond) == 0:
            raise self.machine.fail(node, "static assertion failed")

    # ------------------------------------------------------------------ simple statements
    def visit_Compound(self, node: Any) -> None:
        m = self.machine
        m.scopes.append(Scope())
        try:
            for item in node.block_items or []:
                self.it.merger.run(item)
        finally:
            m.end_scope(m.scopes.pop())

    def visit_EmptyStatement(self, node: Any) -> None:
        return

    def visit_Pragma(self, node: Any) -> None:
        return

    def visit_Return(self, node: Any) -> None:
        raise Return(self.it.expressions.value(node.expr) if node.expr is not None else None, node)

    def visit_Break(self, node: Any) -> None:
        raise Break(node)

    def visit_Continue(self, node: Any) -> None:
        raise Continue(node)

    def visit_Goto(self, node: Any) -> None:
        raise self._jump_refused(node.name, node)

    def visit_Label(self, node: Any) -> None:
        raise self._jump_refused(node.name, node)

    def _jump_refused(self, name: str, node: Any) -> Exception:
        """The refusal of goto ``name``, the same whichever of the goto or its label a path reaches
        first: at the function's first goto to it, saying how to write a forward jump (the cleanup
        style) or a backward one without goto."""
        m = self.machine
        fdef = m.program.functions.get(m.call_stack[-1]) if m.call_stack else None
        gotos, labels = [], []
        todo = [fdef.body] if fdef is not None else []
        while todo:
            item = todo.pop()
            if isinstance(item, c_ast.Goto) and item.name == name:
                gotos.append(item)
            elif isinstance(item, c_ast.Label) and item.name == name:
                labels.append(item)
            todo.extend(child for _, child in item.children())
        gotos.sort(key=_place)
        if not gotos:
            return m.fail(node, f"labels (here {name}:) and goto are not supported, and nothing jumps to {name}: "
                                "remove the label")
        first = gotos[0]
        if labels and _place(labels[0]) < _place(first):
            return m.fail(first, f"goto {name} is not supported (the analysis follows structured control flow only); "
                                 f"write this jump back to {name}: as a loop (`while`, `for`) with a constant bound")
        return m.fail(first, f"goto {name} is not supported (the analysis follows structured control flow only); to "
                             f"jump to a common exit, return there instead: put the code after {name}: in a helper "
                             f"and write `return finish(verdict);` for each goto, or wrap the statements before "
                             f"{name}: in `do {{ ... }} while (0)` and write `break;` for each goto (one that is not "
                             "inside a loop or switch)")

    def visit_Case(self, node: Any) -> None:
        raise self.machine.fail(node, "case label outside a switch body")

    def visit_Default(self, node: Any) -> None:
        raise self.machine.fail(node, "default label outside a switch body")

    # ------------------------------------------------------------------ branches
    def condition(self, node: Any) -> bool:
        """The truth of a condition on this path, forking when both sides are feasible."""
        cond = self.it.expressions.truth(node)
        return self.machine.state.branch(cond, self.machine.loc(node))

    def visit_If(self, node: Any) -> None:
        if self.condition(node.cond):
            if node.iftrue is not None:
                self.run(node.iftrue)
        elif isinstance(node.iffalse, c_ast.If):
            # an else-if is explored as ``else { if ... }`` is, merging its own paths: otherwise the
            # paths of a chain of N rules all merge at its first ``if``, each one replaying the tests
            # of every rule above it (the square of the rules)
            self.it.merger.run(node.iffalse)
        elif node.iffalse is not None:
            self.run(node.iffalse)

    def visit_Switch(self, node: Any) -> None:
        m = self.machine
        value = self.it.expressions.value(node.cond)
        if not isinstance(value, Int):
            raise m.fail(node.cond, "switch on a non-integer")
        value = convert_int(value, ct.promote(value.ctype))
        body = node.stmt
        items = body.block_items or [] if isinstance(body, c_ast.Compound) else [body]
        cases, default, labels = self._labels(node, items)

        def test(k: int) -> Any:
            return truth(compare("==", value, labels[k]))

        if isinstance(value.v, int) or m.state.assumptions:  # no fork: the first case that holds
            chosen = next((k for k in range(len(cases)) if m.state.branch(test(k), m.loc(items[cases[k]]))), None)
        else:
            chosen = m.state.choose_case(len(cases), test, lambda k: m.loc(items[cases[k]]))
        start = default if chosen is None else cases[chosen]
        if start is None:
            return
        m.scopes.append(Scope())
        try:
            for item in items[start:]:
                stmts = item.stmts if isinstance(item, (c_ast.Case, c_ast.Default)) else [item]
                for stmt in stmts or []:
                    self.run(stmt)
        except Break:
            pass
        finally:
            m.end_scope(m.scopes.pop())

    def _labels(self, node: Any, items: list[Any]) -> tuple[list[int], Optional[int], list[Int]]:
        """A switch's case items, its default item and its case labels' values, found once per program:
        labels are constants, and every path that replays the switch runs it again."""
        known = self.machine.program.switches
        hit = known.get(id(node))
        if hit is None:
            cases = [i for i, item in enumerate(items) if isinstance(item, c_ast.Case)]
            default = next((i for i, item in enumerate(items) if isinstance(item, c_ast.Default)), None)
            labels = []
            for i in cases:
                label = self.it.expressions.value(items[i].expr)
                if not isinstance(label, Int) or not isinstance(label.v, int):
                    raise self.machine.fail(items[i], "case labels must be constants")
                labels.append(label)
            hit = known[id(node)] = (node, cases, default, labels)
        return hit[1], hit[2], hit[3]

    # ------------------------------------------------------------------ loops
    def loop_condition(self, node: Any, loop: Any) -> bool:
        """A loop's condition must be decided on the path: forks on a loop would make it unbounded.
        One exception: ``bound && test``, a counted bound before a data-dependent test (``while (i < 6
        && mac[i] == 0) i++``). The bound caps the iterations, so the test forks like the ``if (!test)
        break;`` it stands for."""
        state = self.machine.state
        if isinstance(node, c_ast.BinaryOp) and node.op == "&&":
            bound = self._counted(node.left, loop)
            if isinstance(bound, bool):
                if not bound:
                    return False
                test = truth(self.it.expressions.value(node.right))
                return test if isinstance(test, bool) else state.branch(test, self.machine.loc(node.right))
        cond = self._counted(node, loop)
        if isinstance(cond, bool):
            return cond
        can_true = state.possible(cond)
        if can_true and state.possible(z3.Not(cond)):
            raise self._uncounted(loop)
        return can_true

    def _counted(self, node: Any, loop: Any) -> Any:
        """The truth of a loop condition, refused when evaluating it forked the path: a call in it
        (``while (nf_map_get(...))``) decided on state or packet data, which no count bounds."""
        state = self.machine.state
        forks = len(state.decisions)
        cond = truth(self.it.expressions.value(node))
        if len(state.decisions) > forks:
            raise self._uncounted(loop)
        return cond

    def _uncounted(self, loop: Any) -> Exception:
        return self.machine.fail(loop, "the loop's condition depends on packet or state data; loops must have "
                                       "a bound the analyzer can count (a constant number of iterations)")

    def _loop(self, node: Any, cond: Any, body: Any, step: Any, check_first: bool) -> None:
        m = self.machine
        iterations = forking = 0
        first = True
        endless = cond is None or (isinstance(cond, c_ast.Constant)  # for (;;), while (1)
                                   and truth(self.it.expressions.value(cond)) is True)
        heads = m.state.heads if self._notes_heads(body) else None
        start, head = len(m.state.trace), None  # where this run of the loop began (a resumed one too)
        if heads is not None:
            resumed = heads.resume(node, m)
            if resumed is not None:
                iterations, forking, first = resumed.iterations, resumed.forking, False
        try:
            while True:
                if heads is not None and not first:
                    heads.close(head, m.state)
                    head = heads.open(node, start, iterations, forking, m)
                if (check_first or not first) and cond is not None and not self.loop_condition(cond, node):
                    return
                first = False
                iterations += 1
                m.state.budget.check(m.loc(node))  # nested or forking loops add up
                if iterations > MAX_LOOP_ITERATIONS:
                    raise m.fail(node, f"the loop did not finish after {MAX_LOOP_ITERATIONS} iterations: "
                                       "it never ends, or runs longer than the analyzer unrolls a loop "
                                       "(keep NF loops short, e.g. over the 6 bytes of a MAC or 8 rules)")
                decisions = len(m.state.decisions)
                try:
                    if body is not None:
                        self.it.merger.run(body, loop_body=True)
                except Break:
                    return
                except Continue:
                    pass
                forking += endless and len(m.state.decisions) > decisions
                if forking > MAX_FORKING_ITERATIONS:
                    raise m.fail(node, f"the loop went round {MAX_FORKING_ITERATIONS} times on one path, each "
                                       "time deciding on packet or state data whether to stop; loops must have a "
                                       "bound the analyzer can count (a condition such as i < 8)")
                if step is not None:
                    self.it.expressions.value(step)
        finally:
            if heads is not None:
                heads.close(head, m.state)

    def _notes_heads(self, body: Any) -> bool:
        """Whether this loop notes where its iterations start (``loop_heads``): when paths are merged
        and its body may fork (a loop that never forks queues no path, and a snapshot per iteration
        would only cost)."""
        m = self.machine
        return (m.state.heads is not None and m.mode == "process" and not m.state.assumptions
                and body is not None and m.program.facts.may_fork(body))

    def visit_While(self, node: Any) -> None:
        self._loop(node, node.cond, node.stmt, None, True)

    def visit_DoWhile(self, node: Any) -> None:
        self._loop(node, node.cond, node.stmt, None, False)

    def visit_For(self, node: Any) -> None:
        m = self.machine
        m.scopes.append(Scope())
        try:
            if node.init is not None:
                if isinstance(node.init, (c_ast.DeclList, c_ast.Decl)):
                    self.run(node.init)
                else:
                    self.it.expressions.value(node.init)
            self._loop(node, node.cond, node.stmt, node.next, True)
        finally:
            m.end_scope(m.scopes.pop())
