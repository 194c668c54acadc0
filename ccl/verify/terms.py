"""The VVM's integers as Z3 terms: 32-bit bit-vectors, each with the interval it is known to
lie in.

A ``Val`` pairs a Z3 term (a 32-bit bit-vector for integers, a Boolean for conditions) with a
closed interval computed by plain interval arithmetic over the declared ranges. The interval
is the cheap structural pass: an obligation that the intervals already decide never reaches
the solver. Bit-vectors make the encoding exact: signed comparison, truncating division and
the remainder with the dividend's sign are the SMT-LIB ``bvslt``, ``bvsdiv`` and ``bvsrem``,
exactly the VVM's ``LT``, ``DIV`` and ``MOD`` once the traps are ruled out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import z3

from onboard.vm.isa import INT_MAX, INT_MIN

WIDTH = 32


@dataclass(frozen=True, eq=False)
class Val:
    """A value of the program: a Z3 term and an interval that contains it."""

    term: z3.ExprRef  # BitVecRef of WIDTH bits, or BoolRef
    lo: int
    hi: int

    @property
    def is_bool(self) -> bool:
        return z3.is_bool(self.term)

    @property
    def bv(self) -> z3.BitVecRef:
        assert isinstance(self.term, z3.BitVecRef)
        return self.term

    @property
    def cond(self) -> z3.BoolRef:
        assert isinstance(self.term, z3.BoolRef)
        return self.term

    def constant(self) -> int | None:
        """The value if the interval holds only one."""
        return self.lo if self.lo == self.hi else None


def bv_const(value: int) -> Val:
    return Val(z3.BitVecVal(value, WIDTH), value, value)


def bool_const(value: bool) -> Val:
    return Val(z3.BoolVal(value), int(value), int(value))


def in_range(term: z3.BitVecRef, lo: int, hi: int) -> z3.BoolRef:
    """``lo <= term <= hi`` (signed); True when the bounds are the full 32-bit range."""
    parts = []
    if lo > INT_MIN:
        parts.append(term >= lo)
    if hi < INT_MAX:
        parts.append(term <= hi)
    return z3.And(*parts) if len(parts) > 1 else parts[0] if parts else z3.BoolVal(True)


def ite(cond: z3.BoolRef, a: Val, b: Val) -> Val:
    """The value ``a`` where ``cond`` holds, else ``b``."""
    if a is b:
        return a
    if z3.is_true(cond):
        return a
    if z3.is_false(cond):
        return b
    return Val(z3.If(cond, a.term, b.term), min(a.lo, b.lo), max(a.hi, b.hi))


def fits(lo: int, hi: int) -> bool:
    return INT_MIN <= lo and hi <= INT_MAX


def widen(term: z3.BitVecRef, width: int) -> z3.BitVecRef:
    """Sign-extend a 32-bit term to ``width`` bits."""
    return z3.SignExt(width - WIDTH, term) if width > WIDTH else term


def _apps(terms: tuple[z3.ExprRef, ...] | list[z3.ExprRef],
          follow: Callable[[z3.ContextObj, object, object, list[object]], list[object]]
          | None = None) -> Iterator[tuple[z3.ContextObj, object, object]]:
    """Every application node of ``terms`` once (context, app, declaration), through the C
    API: building Python wrappers for every node would cost ten times more. ``follow``
    chooses which of a node's arguments to walk into (default: all)."""
    if not terms:
        return
    ctx = terms[0].ctx_ref()
    seen: set[int] = set()
    stack = [t.as_ast() for t in terms]
    while stack:
        a = stack.pop()
        key = z3.Z3_get_ast_id(ctx, a)
        if key in seen:
            continue
        seen.add(key)
        if z3.Z3_get_ast_kind(ctx, a) != z3.Z3_APP_AST:
            continue
        app = z3.Z3_to_app(ctx, a)
        decl = z3.Z3_get_app_decl(ctx, app)
        yield ctx, app, decl
        args = [z3.Z3_get_app_arg(ctx, app, k) for k in range(z3.Z3_get_app_num_args(ctx, app))]
        stack.extend(args if follow is None else follow(ctx, app, decl, args))


def symbols_of(*terms: z3.ExprRef) -> set[str]:
    """Names of the uninterpreted constants (inputs) occurring in ``terms``."""
    names: set[str] = set()
    for ctx, app, decl in _apps(terms):
        name = _input_name(ctx, app, decl)
        if name is not None:
            names.add(name)
    return names


def _input_name(ctx: z3.ContextObj, app: object, decl: object) -> str | None:
    """The name of an application node that is an input (an uninterpreted constant)."""
    if z3.Z3_get_app_num_args(ctx, app) or \
            z3.Z3_get_decl_kind(ctx, decl) != z3.Z3_OP_UNINTERPRETED:
        return None
    return z3.Z3_get_symbol_string(ctx, z3.Z3_get_decl_name(ctx, decl))


def depends_on(terms: list[z3.ExprRef], names: set[str], index: str | None = None) -> bool:
    """Whether an input named in ``names`` occurs in ``terms``. A read ``A[i]`` of an input
    array ``A`` whose index is exactly the input ``index`` does not count as an occurrence
    of ``index``: different iterations of a loop over ``i`` read different elements, each
    free in its range, so such a read makes no iteration depend on another."""
    def constant(ctx: z3.ContextObj, a: object) -> str | None:
        if z3.Z3_get_ast_kind(ctx, a) != z3.Z3_APP_AST:
            return None
        app = z3.Z3_to_app(ctx, a)
        return _input_name(ctx, app, z3.Z3_get_app_decl(ctx, app))

    def follow(ctx: z3.ContextObj, app: object, decl: object, args: list[object]) -> list[object]:
        if index is not None and z3.Z3_get_decl_kind(ctx, decl) == z3.Z3_OP_SELECT and \
                constant(ctx, args[0]) is not None and constant(ctx, args[1]) == index:
            return args[:1]
        return args

    return any(_input_name(ctx, app, decl) in names for ctx, app, decl in _apps(terms, follow))

def selects_of(*terms: z3.ExprRef) -> list[tuple[str, z3.BitVecRef]]:
    """Reads ``A[i]`` of an input array ``A`` in ``terms``: (the array's name, the index)."""
    found: dict[str, tuple[str, z3.BitVecRef]] = {}
    for ctx, app, decl in _apps(terms):
        if z3.Z3_get_decl_kind(ctx, decl) != z3.Z3_OP_SELECT:
            continue
        arr = z3.Z3_get_app_arg(ctx, app, 0)
        if z3.Z3_get_ast_kind(ctx, arr) != z3.Z3_APP_AST:
            continue
        arr_app = z3.Z3_to_app(ctx, arr)
        arr_decl = z3.Z3_get_app_decl(ctx, arr_app)
        if z3.Z3_get_app_num_args(ctx, arr_app) or \
                z3.Z3_get_decl_kind(ctx, arr_decl) != z3.Z3_OP_UNINTERPRETED:
            continue
        index = z3.z3._to_expr_ref(z3.Z3_get_app_arg(ctx, app, 1), terms[0].ctx)
        name = z3.Z3_get_symbol_string(ctx, z3.Z3_get_decl_name(ctx, arr_decl))
        found.setdefault(f"{name}[{index.sexpr()}]", (name, index))
    return [found[k] for k in sorted(found)]
