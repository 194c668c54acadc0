"""Expressions: every one gets a type and a range, constants are folded.

``ExpressionChecker`` also checks types written in the source and constant expressions
(range bounds, sizes, initial values), since those are expressions too. Names resolve
through the ``ModuleScope``'s typed symbols and, inside a body, the ``ProcScope``'s locals;
calls are ``Calls``'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ccl import ir
from ccl.diagnostics import Span, did_you_mean
from ccl.ranges import ArithmeticError_, apply_binary, apply_unary, binary_range, unary_range
from ccl.sema.calls import Calls
from ccl.sema.constants import Constants
from ccl.sema.reporter import Abort, Reporter
from ccl.sema.symbols import (
    KIND_WORDS,
    ArraySymbol,
    ConstSymbol,
    DataSymbol,
    GlobalSymbol,
    ModuleScope,
    ProcScope,
    Symbol,
)
from ccl.syntax import literal_value
from onboard.vm.isa import INT_MAX, INT_MIN

# Binding strength of binary operators (higher binds tighter); all are left-associative.
PRECEDENCE = {
    "||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}
_BINOPS = {op.value: op for op in ir.BinOp}


class ExpressionChecker:
    """Types, constants and expressions of one file."""

    def __init__(self, rep: Reporter, module: ModuleScope) -> None:
        self.rep = rep
        self.src = rep.src
        self.module = module
        self.constants = Constants(self)
        self.calls = Calls(self)
        self.proc: ProcScope | None = None  # the body being analyzed, if any
        self.constant_what = ""  # what the constant expression being analyzed is, if any

    # ------------------------------------------------------------------ types and constants

    def type_of(self, t: Any) -> ir.Type:
        """The type a syntax ``Type`` node writes."""
        if t.name == "bool":
            if t.lo is not None:
                raise self.rep.fail("E-TYPE", "`bool` takes no range", self.rep.span(t))
            return ir.BOOL
        if t.lo is None:
            return ir.INT
        lo = self.constant_int(t.lo, "a range bound")
        hi = self.constant_int(t.hi, "a range bound")
        if lo > hi:
            raise self.rep.fail("E-EMPTY-RANGE", f"the range int[{lo}..{hi}] is empty",
                                self.rep.span(t), "write the smaller bound first")
        return ir.IntType(lo, hi)

    def int_type(self, t: Any, what: str) -> ir.IntType:
        """The type ``t`` writes, which must be an integer type (it types ``what``)."""
        ty = self.type_of(t)
        if not isinstance(ty, ir.IntType):
            raise self.rep.fail("E-TYPE", f"{what} must be an integer type", self.rep.span(t))
        return ty

    def constant(self, expr: Any, what: str) -> ir.Const:
        """``expr``, which must be a constant expression (``what`` names it in messages)."""
        saved, self.constant_what = self.constant_what, what
        try:
            value = self.expr(expr)
        finally:
            self.constant_what = saved
        if not isinstance(value, ir.Const):
            raise self.rep.fail("E-NOT-CONSTANT", f"{what} must be a constant expression",
                                self.rep.span(expr),
                                "use literals, `const` names and operators; not parameters or "
                                "variables")
        return value

    def constant_int(self, expr: Any, what: str) -> int:
        """The value of ``expr``, which must be a constant integer expression."""
        c = self.constant(expr, what)
        if not isinstance(c.type, ir.IntType):
            raise self.rep.fail("E-TYPE", f"{what} must be an integer, not a boolean", c.span)
        return c.value

    def check_assignable(self, target: ir.Type, value: ir.Expr, span: Span,
                         what: str = "value") -> None:
        """Reject ``value`` where a ``target`` is expected: the other of int and bool, or a
        constant outside the target's range."""
        if isinstance(target, ir.BoolType) != isinstance(value.type, ir.BoolType):
            raise self.rep.fail("E-TYPE", f"expected {type_word(target)}, found "
                                f"{type_word(value.type)}", span,
                                "compare to get a boolean (`x != 0`)"
                                if isinstance(target, ir.BoolType) else "")
        if isinstance(value, ir.Const) and isinstance(target, ir.IntType):
            if not target.contains(value.value):
                raise self.rep.fail("E-OUT-OF-RANGE",
                                    f"the {what} {value.value} is outside {target}", span,
                                    f"use a value in {target.lo} .. {target.hi}, or widen the "
                                    "range")

    # ------------------------------------------------------------------ expressions

    def int_expr(self, e: Any, what: str) -> ir.Expr:
        """``e``, which must be an integer (``what`` names it in messages)."""
        value = self.expr(e)
        if not isinstance(value.type, ir.IntType):
            raise self.rep.fail("E-TYPE", f"{what} must be an integer, not "
                                f"{type_word(value.type)}", self.rep.span(e))
        return value

    def condition(self, e: Any) -> ir.Expr:
        """``e``, which must be a boolean."""
        cond = self.expr(e)
        if not isinstance(cond.type, ir.BoolType):
            raise self.rep.fail("E-TYPE", f"a condition must be a boolean, not "
                                f"{type_word(cond.type)}", self.rep.span(e),
                                "compare it: `x != 0`")
        return cond

    def expr(self, e: Any, *, void_ok: bool = False) -> ir.Expr:
        """Analyze a flat ``Expr`` node by precedence climbing. Its value is used unless
        ``void_ok`` (an expression statement): then it may be a call that returns nothing."""
        operands = e.operands
        if len(operands) == 1:
            value = self.operand(operands[0])
            if value.type is None and not void_ok:
                raise self.no_value(value)
            return value
        ops = e.ops
        values = [self.operand(o) for o in operands]
        starts = [o._tx_position for o in operands]
        ends = [o._tx_position_end for o in operands]
        # A method, not a closure: a closure that calls itself is a cycle, which the
        # compile's paused collector would not free (it held the operands of every
        # expression until the compile ended).
        result, _, _ = self.climb(ops, values, starts, ends, 0, 1)
        return result

    def climb(self, ops: Sequence[str], values: list[ir.Expr], starts: list[int],
              ends: list[int], pos: int, min_prec: int) -> tuple[ir.Expr, int, int]:
        """Precedence climbing from operand ``pos`` (operands ``values``, their text from
        ``starts`` to ``ends``, the operators ``ops`` between them): the expression of the
        operators of precedence ``min_prec`` or more, where its text ends, and the operand
        after it."""
        left, lstart, lend = values[pos], starts[pos], ends[pos]
        while pos < len(ops) and PRECEDENCE[ops[pos]] >= min_prec:
            op = ops[pos]
            prec = PRECEDENCE[op]
            right, rend, pos = self.climb(ops, values, starts, ends, pos + 1, prec + 1)
            left = self.binary(_BINOPS[op], left, right, self.src.span(lstart, rend))
            lend = rend
        return left, lend, pos

    def operand(self, o: Any) -> ir.Expr:
        """An operand and its prefix operators (``o.ops``, e.g. ``"- !"``), innermost first."""
        if not o.ops:
            return self.atom(o, o._tx_position)
        ops = [c for c in o.ops if c in "-!"]
        if ops[-1] == "-" and o.value and _literal_or_none(o.value) == INT_MAX + 1:
            # -2147483648 is INT_MIN: the one literal that fits only when negated.
            minus = o._tx_position + o.ops.rindex("-")
            value: ir.Expr = ir.Const(INT_MIN, ir.IntType(INT_MIN, INT_MIN),
                                      self.src.span(minus, o._tx_position_end))
            ops.pop()
        else:
            # The operators' text runs up to the atom (it takes the blanks after them).
            value = self.atom(o, o._tx_position + len(o.ops))
        sp = self.src.span(o._tx_position, o._tx_position_end)
        for op in reversed(ops):
            value = self.unary_op(ir.UnOp.NEG if op == "-" else ir.UnOp.NOT, value, sp)
        return value

    def no_value(self, call: ir.Expr) -> Abort:
        """E-TYPE for a call that returns nothing, used where a value is needed."""
        if isinstance(call, ir.NativeCall):
            name = call.native.name
            hint = f"native `{name}` has no result: call it as a statement, `{name}(...);`"
        else:
            assert isinstance(call, (ir.Call, ir.InstrCall))
            name, keyword = ((call.function, "fn") if isinstance(call, ir.Call)
                             else (call.instr, "instr"))
            hint = (f"call it as a statement, `{name}(...);`, or declare a result: "
                    f"`{keyword} {name}(...) -> int`")
        return self.rep.fail("E-TYPE", f"`{name}` returns no value, so its call cannot be used "
                             "as a value", call.span, hint)

    def unary_op(self, op: ir.UnOp, value: ir.Expr, sp: Span) -> ir.Expr:
        """``op value``, folded if ``value`` is constant."""
        if value.type is None:
            raise self.no_value(value)
        if op is ir.UnOp.NOT:
            if not isinstance(value.type, ir.BoolType):
                raise self.rep.fail("E-TYPE", "`!` applies to a boolean", sp, "use `x == 0`")
            ty: ir.Type = ir.BOOL
        else:
            if not isinstance(value.type, ir.IntType):
                raise self.rep.fail("E-TYPE", f"`{op.value}` applies to an integer, not a "
                                    "boolean", sp)
            ty = unary_range(op, value.type)
        if isinstance(value, ir.Const):
            try:
                return ir.Const(apply_unary(op, value.value), ty, sp)
            except ArithmeticError_ as exc:
                raise self.rep.fail("E-CONST-ARITH", f"constant expression traps: {exc}",
                                    sp) from None
        return ir.Unary(op, value, ty, sp)

    def binary(self, op: ir.BinOp, left: ir.Expr, right: ir.Expr, sp: Span) -> ir.Expr:
        """``left op right``, folded if both are constant."""
        for side in (left, right):
            if side.type is None:
                raise self.no_value(side)
        lb, rb = isinstance(left.type, ir.BoolType), isinstance(right.type, ir.BoolType)
        ty: ir.Type
        if op in ir.LOGICAL:
            if not (lb and rb):
                raise self.rep.fail("E-TYPE", f"`{op.value}` combines booleans", sp,
                                    "compare integers first: `x != 0`")
            ty = ir.BOOL
        elif op in ir.COMPARISONS:
            if lb != rb or (lb and op not in (ir.BinOp.EQ, ir.BinOp.NE)):
                raise self.rep.fail("E-TYPE", f"`{op.value}` compares two integers", sp)
            ty = ir.BOOL
        else:
            if lb or rb:
                raise self.rep.fail("E-TYPE", f"`{op.value}` applies to integers, not "
                                    "booleans", sp)
            assert isinstance(left.type, ir.IntType) and isinstance(right.type, ir.IntType)
            ty = binary_range(op, left.type, right.type)
        if isinstance(left, ir.Const) and isinstance(right, ir.Const):
            try:
                return ir.Const(apply_binary(op, left.value, right.value), ty, sp)
            except ArithmeticError_ as exc:
                raise self.rep.fail("E-CONST-ARITH", f"constant expression traps: {exc}",
                                    sp) from None
        if op in (ir.BinOp.DIV, ir.BinOp.MOD) and isinstance(right, ir.Const) and not right.value:
            raise self.rep.fail("E-DIV-ZERO", "division by zero", sp)
        return ir.Binary(op, left, right, ty, sp)

    def atom(self, a: Any, start: int) -> ir.Expr:
        """The operand ``a`` without its prefix operators; its text starts at ``start``."""
        if a.name or a.call or a.element:
            return self.ref(a, start)
        if a.expr is not None:  # ( expr )
            return self.expr(a.expr)
        sp = self.src.span(start, a._tx_position_end)
        if a.boolean:
            return ir.Const(int(a.boolean == "true"), ir.BOOL, sp)
        value = self.rep.literal(a.value, sp)
        if value > INT_MAX:
            shown = (a.value if len(a.value) <= 24  # a number shown whole, a huge one cut
                     else f"{a.value[:12]}... ({len(a.value):,} characters)")
            raise self.rep.fail("E-LITERAL", f"{shown} does not fit in 32 bits", sp,
                                f"integers are 32-bit: {INT_MIN} .. {INT_MAX} ({INT_MAX + 1} "
                                "is allowed only negated, as the smallest integer)"
                                if value == INT_MAX + 1 else
                                f"integers are 32-bit: {INT_MIN} .. {INT_MAX}")
        return ir.Const(value, ir.IntType(value, value), sp)

    # ------------------------------------------------------------------ names

    def lookup_module(self, name: str, sp: Span) -> Symbol | ir.NamedConst:
        """The module-level symbol ``name`` (a constant's value for a constant);
        E-UNKNOWN-NAME if there is none."""
        symbols = self.module.symbols
        if name in symbols:
            symbol = symbols[name]
            if isinstance(symbol, ConstSymbol):
                return self.constants.value(name)
            return symbol
        candidates = list(self.module.symbols) + \
            (list(self.proc.scopes[-1]) if self.proc else [])
        if self.proc:
            candidates += [n for s in self.proc.scopes for n in s]
        raise self.rep.fail("E-UNKNOWN-NAME", f"unknown name `{name}`", sp,
                            did_you_mean(name, candidates))

    def ref(self, a: Any, start: int) -> ir.Expr:
        """A name in an expression (plain, called or indexed), starting at ``start``."""
        name: str = a.name or a.call or a.element
        sp = self.src.span(start, a._tx_position_end)
        name_sp = self.src.span(start, start + len(name))
        if a.call:
            return self.calls.call(a, name, sp, name_sp)
        if "." in name:
            raise self.rep.fail("E-UNKNOWN-NAME", f"`{name}` is not a value", name_sp,
                                "qualified names refer to VMlet instructions: "
                                "`vmlet.instr(...)`")
        if self.proc is not None:
            local = self.proc.lookup(name)
            if local is not None:
                if a.index is not None:
                    raise self.rep.fail("E-TYPE", f"`{name}` is not an array", name_sp)
                return ir.LocalRef(local, local.type, sp)
        module = self.module
        if name in module.natives or name in module.instr_sigs or name in module.fn_sigs:
            raise self.rep.fail("E-TYPE", f"`{name}` is a function; call it: `{name}(...)`",
                                name_sp)
        symbol = self.lookup_module(name, name_sp)
        if isinstance(symbol, ir.NamedConst):
            if a.index is not None:
                raise self.rep.fail("E-TYPE", f"`{name}` is a constant, not an array", name_sp)
            ty = (ir.IntType(symbol.value, symbol.value) if isinstance(symbol.type, ir.IntType)
                  else ir.BOOL)
            return ir.Const(symbol.value, ty, sp)
        if isinstance(symbol, GlobalSymbol):
            if a.index is not None:
                raise self.rep.fail("E-TYPE", f"`{name}` is not an array", name_sp)
            return ir.GlobalRef(symbol.glob, symbol.glob.type, sp)
        if isinstance(symbol, ArraySymbol):
            arr = symbol.array
            if a.index is None:
                raise self.rep.fail("E-TYPE", f"`{name}` is an array; read one element: "
                                    f"`{name}[i]`", name_sp)
            return ir.ArrayRef(arr, self.index_expr(arr, a.index), arr.type, sp)
        if isinstance(symbol, DataSymbol):
            if name in self.module.failed:
                # declared, but its own declaration has an error (already reported)
                raise Abort()
            # Not analyzed yet: we are in a data declaration before it, where only
            # constants may appear (bodies and rules are analyzed after all data).
            raise self.rep.fail("E-NOT-CONSTANT", f"`{name}` is {KIND_WORDS[symbol.kind]}, "
                                "not a constant", name_sp, "use literals, `const` names and "
                                "operators; not parameters or variables")
        raise self.rep.fail("E-TYPE", f"`{name}` is "
                            f"{KIND_WORDS.get(symbol.kind, 'a ' + symbol.kind)}, not a value",
                            name_sp)

    def index_expr(self, arr: ir.Array, e: Any) -> ir.Expr:
        """The index ``e`` into ``arr`` (E-INDEX if it is a constant out of bounds)."""
        index = self.int_expr(e, "an index")
        if isinstance(index, ir.Const) and not 0 <= index.value < arr.length:
            raise self.rep.fail("E-INDEX", f"index {index.value} is out of bounds: "
                                f"`{arr.name}` has {arr.length} entries", index.span,
                                f"indices run from 0 to {arr.length - 1}")
        return index


def type_word(t: ir.Type | None) -> str:
    """A type as a message says it: "a boolean", "an integer (int[0..9])"."""
    if t is None:
        return "no value"
    return "a boolean" if isinstance(t, ir.BoolType) else f"an integer ({t})"


def _literal_or_none(text: str) -> int | None:
    try:
        return literal_value(text)
    except ValueError:
        return None
