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
    TypeSymbol,
)
from ccl.sema.type_words import mixing_hint, type_word
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
        self.defining: set[str] = set()  # types whose definition is being analyzed
        self.failed_types: set[str] = set()  # own types whose definition has an error

    # ------------------------------------------------------------------ types and constants

    def type_of(self, t: Any) -> ir.Type:
        """The type a syntax ``Type`` node writes."""
        if t.name == "bool":
            if t.lo is not None:
                raise self.rep.fail("E-TYPE", "`bool` takes no range", self.rep.span(t))
            return ir.BOOL
        if t.name != "int":
            return self.named_type(t)
        if t.lo is None:
            return ir.INT
        lo = self.constant_int(t.lo, "a range bound")
        hi = self.constant_int(t.hi, "a range bound")
        if lo > hi:
            raise self.rep.fail("E-EMPTY-RANGE", f"the range int[{lo}..{hi}] is empty",
                                self.rep.span(t), "write the smaller bound first")
        return ir.IntType(lo, hi)

    def named_type(self, t: Any) -> ir.IntType:
        """A type a VMlet defines, ``q16``, or a part of its range in its own units,
        ``q16[0..1]`` (held as 0 .. 65536)."""
        td = self.type_def(t.name, self.rep.name_span(t, t.name))
        if t.lo is None:
            return ir.IntType(td.lo, td.hi, td)
        lo = self.constant_int(t.lo, "a range bound")
        hi = self.constant_int(t.hi, "a range bound")
        if lo > hi:
            raise self.rep.fail("E-EMPTY-RANGE", f"the range {t.name}[{lo}..{hi}] is empty",
                                self.rep.span(t), "write the smaller bound first")
        held_lo, held_hi = lo * td.scale, hi * td.scale
        if not td.lo <= held_lo <= held_hi <= td.hi:
            whole = f"{-(-td.lo // td.scale)} .. {td.hi // td.scale}"
            raise self.rep.fail("E-OUT-OF-RANGE", f"{t.name}[{lo}..{hi}] is outside the "
                                f"range of {t.name}", self.rep.span(t),
                                f"a {t.name} holds whole numbers in {whole}, and what lies "
                                "between them in steps of "
                                f"1/{td.scale}" if td.scale > 1 else
                                f"a {t.name} is in {td.lo} .. {td.hi}")
        return ir.IntType(held_lo, held_hi, td)

    def type_def(self, name: str, sp: Span) -> ir.TypeDef:
        """The visible type ``name`` (a VMlet's own is defined on first use)."""
        if name in self.module.types:
            return self.module.types[name]
        symbol = self.module.symbols.get(name)
        if isinstance(symbol, TypeSymbol):
            return self.define_type(symbol.decl)
        if name in self.module.symbols:
            raise self.rep.fail("E-TYPE", f"`{name}` is {self.module.kind_word(name)}, not a "
                                "type", sp, "types are `int`, `bool` and the types of the "
                                "VMlets in use")
        known = ["int", "bool", *self.module.types,
                 *(n for n, s in self.module.symbols.items() if isinstance(s, TypeSymbol))]
        raise self.rep.fail("E-UNKNOWN-NAME", f"unknown type `{name}`", sp,
                            did_you_mean(name, known)
                            or f"types here: {', '.join(known)}; a VMlet defines more "
                            "(`type q16 = int scale 65536;`), seen through `uses`")

    def define_type(self, d: Any) -> ir.TypeDef:
        """`type NAME = int[lo..hi] [scale S];` of this VMlet."""
        module = self.module
        if d.name in module.types and module.types[d.name].vmlet == module.own_name:
            return module.types[d.name]
        if d.name in self.failed_types:
            raise Abort()
        sp = self.rep.name_span(d, d.name)
        if d.name in self.defining:
            raise self.rep.fail("E-CONST-CYCLE", f"type `{d.name}` is defined in terms of "
                                "itself", sp, "its bounds and scale must not need the type")
        self.defining.add(d.name)
        try:
            if d.base.name != "int":
                raise self.rep.fail("E-TYPE", f"type `{d.name}` must rest on `int` or "
                                    f"`int[lo..hi]`, not `{d.base.name}`",
                                    self.rep.span(d.base),
                                    "a VMlet's type is a ranged integer with a name of its own")
            base = self.type_of(d.base)
            assert isinstance(base, ir.IntType)
            scale = 1
            if d.scale is not None:
                scale = self.constant_int(d.scale, "a scale")
                if scale < 1:
                    raise self.rep.fail("E-OUT-OF-RANGE", f"the scale {scale} of type "
                                        f"`{d.name}` is not positive",
                                        self.rep.span(d.scale), "a value x of the type stands "
                                        "for x / scale: `scale 65536` is 16 bits of fraction")
        except Abort:
            self.failed_types.add(d.name)
            raise
        finally:
            self.defining.discard(d.name)
        td = ir.TypeDef(d.name, module.own_name, base.lo, base.hi, scale, sp)
        module.types[d.name] = td
        return td

    def opaque(self, t: ir.Type | None) -> ir.TypeDef | None:
        """The VMlet type of ``t`` if it is opaque here: a value of a VMlet's type is not an
        int, except in the code of the VMlet that defines it, which works on the integers
        it rests on (its instructions are the type's operations)."""
        if not isinstance(t, ir.IntType) or t.nominal is None:
            return None
        module = self.module
        if module.kind is ir.ProgramKind.VMLET and t.nominal.vmlet == module.own_name:
            return None
        return t.nominal

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
        want, found = self.opaque(target), self.opaque(value.type)
        if want != found:
            raise self.rep.fail("E-TYPE", f"expected {type_word(target)}, found "
                                f"{type_word(value.type)}", span, mixing_hint(want, found))
        if isinstance(value, ir.Const) and isinstance(target, ir.IntType):
            if not target.contains(value.value):
                td = target.nominal
                shown = (str(value.value) if td is None or td.scale == 1 else
                         f"{value.value / td.scale:g} (held as {value.value})")
                raise self.rep.fail("E-OUT-OF-RANGE",
                                    f"the {what} {shown} is outside {target}", span,
                                    f"use a value in {target.lo} .. {target.hi}, or widen the "
                                    "range" if td is None else
                                    f"use a value in {target}, or widen the range")

    # ------------------------------------------------------------------ expressions

    def int_expr(self, e: Any, what: str, *, typed_ok: bool = False) -> ir.Expr:
        """``e``, which must be an integer (``what`` names it in messages), or, if
        ``typed_ok``, a value of a VMlet's type too."""
        value = self.expr(e)
        if not isinstance(value.type, ir.IntType):
            raise self.rep.fail("E-TYPE", f"{what} must be an integer, not "
                                f"{type_word(value.type)}", self.rep.span(e))
        td = self.opaque(value.type)
        if td is not None and not typed_ok:
            raise self.rep.fail("E-TYPE", f"{what} must be an integer, not "
                                f"{type_word(value.type)}", self.rep.span(e),
                                mixing_hint(None, td))
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
            td = self.opaque(value.type)
            if td is not None:
                raise self.rep.fail("E-TYPE", f"`{op.value}` does not apply to "
                                    f"{type_word(value.type)}", sp, self.operations_hint(td))
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
            ltd, rtd = self.opaque(left.type), self.opaque(right.type)
            if ltd != rtd:  # two values of one VMlet type compare; nothing else mixes
                raise self.rep.fail("E-TYPE", f"`{op.value}` compares "
                                    f"{type_word(left.type)} with {type_word(right.type)}",
                                    sp, mixing_hint(ltd, rtd))
            ty = ir.BOOL
        else:
            if lb or rb:
                raise self.rep.fail("E-TYPE", f"`{op.value}` applies to integers, not "
                                    "booleans", sp)
            assert isinstance(left.type, ir.IntType) and isinstance(right.type, ir.IntType)
            ty = binary_range(op, left.type, right.type)
            ltd, rtd = self.opaque(left.type), self.opaque(right.type)
            if ltd is not None and ltd == rtd and op in (ir.BinOp.MIN, ir.BinOp.MAX):
                ty = ir.IntType(ty.lo, ty.hi, ltd)  # the smaller of two q16 is a q16
            elif ltd is not None or rtd is not None:
                td = ltd or rtd
                assert td is not None
                what = (f"`{op.value}`" if op not in (ir.BinOp.MIN, ir.BinOp.MAX)
                        else f"`{op.value}` of two values of different types")
                raise self.rep.fail("E-TYPE", f"{what} does not apply to "
                                    f"{type_word(left.type)} and {type_word(right.type)}",
                                    sp, self.operations_hint(td))
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

    def operations_hint(self, td: ir.TypeDef) -> str:
        """Where the operations of VMlet type ``td`` are: its VMlet's instructions."""
        ops = sorted({s.name for sigs in self.module.instr_sigs.values() for s in sigs
                      if s.vmlet == td.vmlet and any(
                          isinstance(t, ir.IntType) and t.nominal == td
                          for t in (*(p for _, p in s.params), s.returns))})
        listed = f" ({', '.join(ops)})" if ops else ""
        return (f"a {td.name} is not an int: its operations are the instructions of VMlet "
                f"`{td.vmlet}`{listed}; or convert it, `int(x)`")

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
        if name in module.types:
            raise self.rep.fail("E-TYPE", f"`{name}` is a type, not a value", name_sp,
                                f"convert a number to it: `{name}(n)`")
        if name in module.natives or name in module.instr_sigs or name in module.fn_sigs:
            raise self.rep.fail("E-TYPE", f"`{name}` is a function; call it: `{name}(...)`",
                                name_sp)
        symbol = self.lookup_module(name, name_sp)
        if isinstance(symbol, ir.NamedConst):
            if a.index is not None:
                raise self.rep.fail("E-TYPE", f"`{name}` is a constant, not an array", name_sp)
            ty = (ir.IntType(symbol.value, symbol.value, symbol.type.nominal)
                  if isinstance(symbol.type, ir.IntType) else ir.BOOL)
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


def _literal_or_none(text: str) -> int | None:
    try:
        return literal_value(text)
    except ValueError:
        return None
