"""Walking the typed IR: the sub-expressions of an expression, the expressions and nested
blocks of a statement, and the functions a body calls."""

from __future__ import annotations

from collections.abc import Iterator

from ccl import ir


def children(e: ir.Expr) -> tuple[ir.Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, ir.Unary):
        return (e.operand,)
    if isinstance(e, ir.Binary):
        return (e.left, e.right)
    if isinstance(e, ir.ArrayRef):
        return (e.index,)
    if isinstance(e, (ir.Call, ir.NativeCall, ir.InstrCall)):
        return e.args
    return ()


def expressions(s: ir.Stmt) -> tuple[ir.Expr, ...]:
    """The expressions ``s`` evaluates itself (not those of nested blocks)."""
    if isinstance(s, (ir.Let, ir.AssignLocal, ir.AssignGlobal)):
        return (s.value,)
    if isinstance(s, ir.AssignElement):
        return (s.index, s.value)
    if isinstance(s, ir.If):
        return (s.cond,)
    if isinstance(s, ir.For):
        return (s.lo, s.hi)
    if isinstance(s, ir.Return):
        return (s.value,) if s.value is not None else ()
    if isinstance(s, ir.ExprStmt):
        return (s.expr,)
    return ()


def statements(body: tuple[ir.Stmt, ...]) -> Iterator[ir.Stmt]:
    """Every statement of ``body``, nested blocks included."""
    for s in body:
        yield s
        if isinstance(s, ir.If):
            yield from statements(s.then)
            yield from statements(s.otherwise)
        elif isinstance(s, ir.For):
            yield from statements(s.body)


def subexpressions(e: ir.Expr) -> Iterator[ir.Expr]:
    yield e
    for c in children(e):
        yield from subexpressions(c)


def callees(body: tuple[ir.Stmt, ...]) -> set[str]:
    """Names of the functions ``body`` calls (directly)."""
    return {x.function for s in statements(body) for e in expressions(s)
            for x in subexpressions(e) if isinstance(x, ir.Call)}
