"""Named constants: ordered so that each is computed after those it uses, and computed
once, on first use (a type's bounds, another constant, an expression)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ccl import ir
from ccl.sema.reporter import Abort

if TYPE_CHECKING:
    from ccl.sema.expressions import ExpressionChecker


class Constants:
    """The `const` declarations of one file and the values computed so far."""

    def __init__(self, exprs: ExpressionChecker) -> None:
        self.exprs = exprs
        self.rep = exprs.rep
        self.decls: dict[str, Any] = {}
        self.values: dict[str, ir.NamedConst] = {}  # in the order they were computed
        self.busy: set[str] = set()
        self.failed: set[str] = set()  # reported: uses of them say nothing more

    def declare(self, name: str, decl: Any) -> None:
        """Record the declaration of constant ``name``."""
        self.decls[name] = decl

    def compute_all(self) -> None:
        """Compute every constant (those with errors are left out, as failed)."""
        for name in self.order():
            try:
                self.value(name)
            except Abort:
                self.failed.add(name)

    def order(self) -> list[str]:
        """The constants, each after the constants its value and type use, so that
        evaluating them in this order never recurses through another (a walk with its own
        stack: chains of constants may be long). A cycle is E-CONST-CYCLE at the constant
        the walk meets again; its constants are left out (as failed)."""
        uses = {name: [n for n in _names_in(d.value, d.type) if n in self.decls]
                for name, d in self.decls.items()}
        on_path: set[str] = set()
        done: set[str] = set()
        order: list[str] = []
        for start in uses:  # in the order of the text
            if start in done:
                continue
            path, pending = [start], [iter(uses[start])]
            on_path.add(start)
            while pending:
                used = next(pending[-1], None)
                if used is None:
                    pending.pop()
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    order.append(finished)
                elif used in on_path:
                    cycle = path[path.index(used):]
                    if not self.failed.intersection(cycle):
                        self.rep.err("E-CONST-CYCLE", f"constant `{used}` is defined in terms "
                                     "of itself", self.rep.name_span(self.decls[used], used),
                                     "constants must be computable from literals")
                    self.failed.update(cycle)
                elif used not in done:
                    on_path.add(used)
                    path.append(used)
                    pending.append(iter(uses[used]))
        return [name for name in order if name not in self.failed]

    def value(self, name: str) -> ir.NamedConst:
        """The value of constant ``name``, computed on first use."""
        if name in self.values:
            return self.values[name]
        if name in self.failed:
            raise Abort()  # its error is reported
        d = self.decls[name]
        sp = self.rep.name_span(d, name)
        if name in self.busy:
            raise self.rep.fail("E-CONST-CYCLE", f"constant `{name}` is defined in terms of "
                                "itself", sp, "constants must be computable from literals")
        self.busy.add(name)
        try:
            exprs = self.exprs
            declared = exprs.type_of(d.type) if d.type is not None else None
            value = exprs.constant(d.value, "a constant's value")
            td = value.type.nominal if isinstance(value.type, ir.IntType) else None
            vtype: ir.Type = (ir.BOOL if isinstance(value.type, ir.BoolType)
                              else ir.IntType(td.lo, td.hi, td) if td is not None else ir.INT)
            if declared is not None:
                exprs.check_assignable(declared, value, self.rep.span(d.value))
                vtype = declared
            const = ir.NamedConst(name, value.value, vtype, sp)
            self.values[name] = const
            return const
        finally:
            self.busy.discard(name)


def _names_in(*nodes: Any) -> Iterator[str]:
    """The names that syntax tree nodes (expressions, types, or None) mention: plain,
    called or indexed. A loop with its own stack, as expressions may be long."""
    stack = [n for n in reversed(nodes) if n is not None]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind == "Expr":
            stack.extend(reversed(node.operands))
        elif kind == "Type":
            stack.extend(n for n in (node.hi, node.lo) if n is not None)
        elif kind == "Operand":
            name = node.name or node.call or node.element
            if name:
                yield name
            stack.extend(reversed(node.args))
            stack.extend(n for n in (node.index, node.expr) if n is not None)
