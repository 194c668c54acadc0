"""Expressions under symbolic execution: their values (z3 terms with intervals), the
obligations where the VVM could trap while computing them, and the cycles codegen's
instructions for them cost; conditions as codegen branches on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import z3

from ccl import ir
from ccl.ranges import OPCODES, binary_range, unary_range
from ccl.verify.cost import Bounds, CNative, CSum, CycleTable, Encoder, choose
from ccl.verify.inputs import Inputs, Role, array_default
from ccl.verify.irtext import text
from ccl.verify.obligations import Kind
from ccl.verify.solver import Checker, Detail
from ccl.verify.symbolic.state import (
    Frame,
    Jump,
    State,
    Writes,
    merge,
    narrow,
    needs_range_check,
    value_of,
)
from ccl.verify.terms import WIDTH, Val, bool_const, bv_const, fits, in_range
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.isa import INT_MAX, INT_MIN


class Values:
    """The expression half of ``Executor`` (a mixin: the state is the executor's)."""

    cyc: CycleTable
    inputs: Inputs
    check: Checker
    mission: MissionProfile
    interleaved: Writes
    frame_budget: int
    largest_native: int
    shapes: dict[int, tuple[ir.BinOp, Val, Val]]
    _cost_only: int

    if TYPE_CHECKING:  # provided by Executor
        def _function(self, program: ir.Program, name: str) -> ir.Procedure: ...

        def inline(self, proc: ir.Procedure, program: ir.Program, args: list[Val], st: State,
                   caller: Frame, free_returns: bool) -> Val | None: ...

    # -- obligations

    def require(self, kind: Kind, span: ir.Span, st: State, fr: Frame,
                formula: Callable[[], z3.BoolRef], message: str, trivial: bool,
                detail: Detail | None = None) -> None:
        """Obligation ``formula`` (built only when the intervals do not already decide it)."""
        if self._cost_only:
            return
        if trivial:
            self.check.proven_by_ranges(kind, span, fr.where, message)
        else:
            self.check.require(kind, span, fr.where, st.conds, formula(), message, False,
                               detail)

    def store_check(self, kind: Kind, v: Val, ty: ir.IntType, span: ir.Span, st: State,
                    fr: Frame, message: str) -> Val:
        """``v`` must lie in ``ty`` (a store, argument or result); returns it narrowed."""
        if ty.is_full:
            return v

        def detail(m: z3.ModelRef) -> str:
            return f"the value is {value_of(m, v.term)}, outside {ty.lo} .. {ty.hi}"

        self.require(kind, span, st, fr, lambda: in_range(v.bv, ty.lo, ty.hi), message,
                     ty.lo <= v.lo and v.hi <= ty.hi, detail)
        return narrow(v, ty)

    def range_checked(self, kind: Kind, v: Val, ty: ir.IntType, e: ir.Expr, st: State,
                      fr: Frame, message: str) -> Val:
        """``v``, the value of ``e``, stored where ``ty`` is declared (a ranged local, an
        argument, a result): the ``RANGE`` codegen emits there, if it emits one, and the
        obligation; returns it narrowed."""
        if needs_range_check(ty, e.type):
            st.charge(self.cyc[isa.RANGE])
        return self.store_check(kind, v, ty, e.span, st, fr, message)

    def index_check(self, array: ir.Array, index: Val, span: ir.Span, st: State,
                    fr: Frame) -> None:
        n = array.length

        def detail(m: z3.ModelRef) -> str:
            return (f"index {value_of(m, index.term)} is out of bounds: `{array.name}` has "
                    f"{n} entries")

        self.require(Kind.INDEX, span, st, fr, lambda: in_range(index.bv, 0, n - 1),
                     f"the index into `{array.name}` is within 0 .. {n - 1}",
                     0 <= index.lo and index.hi < n, detail)

    # -- values

    def value(self, e: ir.Expr, st: State, fr: Frame) -> Val:
        """Evaluate ``e`` as codegen's ``expr`` does (pushing its value)."""
        c = self.cyc
        if isinstance(e, ir.Const):
            st.charge(c[isa.PUSH])
            return bool_const(bool(e.value)) if isinstance(e.type, ir.BoolType) \
                else bv_const(e.value)
        if isinstance(e, ir.LocalRef):
            st.charge(c[isa.LOAD_L])
            return st.locals[e.local.id]
        if isinstance(e, ir.GlobalRef):
            st.charge(c[isa.LOAD_G])
            g = e.glob
            if not g.writable:
                return self.inputs.param(g.name)
            if g.name in self.interleaved.vars:  # another task may have written it since
                return self.inputs.fresh(Role.CARRIED, g.name, g.type, default=g.value)
            return st.mem.var(g.name)
        if isinstance(e, ir.ArrayRef):
            index = self.value(e.index, st, fr)
            st.charge(c[isa.LOAD_A])
            self.index_check(e.array, index, e.index.span, st, fr)
            name = e.array.name
            array = st.mem.array(name) if name not in self.interleaved.arrays else \
                self.inputs.array(Role.CARRIED_ARRAY, name,
                                  default=array_default(self.inputs.index.arrays[name]))
            return self.inputs.read(array, index, e.array.type)
        if isinstance(e, ir.Unary):
            return self.unary(e, st, fr)
        if isinstance(e, ir.Binary):
            if e.op in ir.LOGICAL:  # codegen's materialize: jumps, then PUSH 1 or PUSH 0
                cond = self.branch(e, st, fr, Jump.UNLESS)
                push, jmp = c[isa.PUSH], c[isa.JMP]
                st.cost = st.cost.then(choose(cond, CSum(push + jmp), CSum(push)))
                return Val(cond, 0, 1)
            a = self.value(e.left, st, fr)
            b = self.value(e.right, st, fr)
            return self.binary(e, a, b, st, fr)
        if isinstance(e, ir.Call):
            callee = self._function(fr.program, e.function)
            args = self.args(e.args, callee, st, fr)
            st.charge(c.call(isa.CALL, fr.program.name, callee.name))
            result = self.inline(callee, fr.program, args, st, fr, free_returns=False)
            return result if result is not None else bv_const(0)
        if isinstance(e, ir.InstrCall):
            vmlet = next(p for p in (fr.program, *fr.program.stack) if p.name == e.vmlet)
            instr = vmlet.instr(e.vmlet, e.instr)
            args = self.args(e.args, instr, st, fr)
            st.charge(c.call(isa.EXT_BASE, vmlet.name, instr.name))
            result = self.inline(instr, vmlet, args, st, fr, free_returns=True)
            assert result is not None  # instructions return a value
            return result
        if isinstance(e, ir.NativeCall):
            return self.native(e, st, fr)
        if isinstance(e, ir.EnvRead):
            st.charge(c[isa.ENV])
            return self.inputs.env_value(e.key, e.type)
        raise TypeError(e)  # pragma: no cover - the IR is closed

    def args(self, exprs: tuple[ir.Expr, ...], callee: ir.Procedure, st: State,
             fr: Frame) -> list[Val]:
        out = []
        what = "instruction" if callee.kind is ir.ProcKind.INSTR else "function"
        for a, p in zip(exprs, callee.params, strict=True):
            v = self.value(a, st, fr)
            if isinstance(p.type, ir.IntType):
                v = self.range_checked(Kind.ARGUMENT, v, p.type, a, st, fr,
                                       f"argument `{p.name}` of {what} `{callee.name}` is "
                                       f"within {p.type}")
            out.append(v)
        return out

    def native(self, e: ir.NativeCall, st: State, fr: Frame) -> Val:
        args = [self.value(a, st, fr) for a in e.args]
        decl = self.mission.natives[e.native.name]
        call = self.cyc[isa.CALLN]
        checked = []
        for v, a, (pname, ty) in zip(args, e.args, e.native.params, strict=True):
            checked.append(self.store_check(
                Kind.NATIVE_ARG, v, ty, a.span, st, fr,
                f"argument `{pname}` of native `{e.native.name}` is within {ty.lo} .. {ty.hi}"))
        own = CNative(decl.name, decl.cost, tuple(a.name for a in decl.args), tuple(checked))
        st.cost = st.cost.plus(call).add(own)
        self.frame_check(own, call, e, st, fr)
        if e.type is None:
            return bv_const(0)
        return self.inputs.fresh(Role.NATIVE, e.native.name, e.type,
                                 tuple(v.bv for v in checked))

    def frame_check(self, own: CNative, call: int, e: ir.NativeCall, st: State,
                    fr: Frame) -> None:
        """One native call must fit in what a frame leaves the VVM after the patch reserve:
        the VVM never splits an instruction across frames."""
        bounds = Bounds()
        cost = CSum(call, (own,))
        _lo, hi = bounds.of(cost)
        self.largest_native = max(self.largest_native, hi)
        if self._cost_only:
            return
        budget = self.frame_budget
        message = (f"a call of `{e.native.name}` fits in one frame's share ({budget} cycles "
                   "after the patch reserve)")
        if hi <= budget:
            self.check.proven_by_ranges(Kind.NATIVE_FRAME, e.span, fr.where, message)
            return
        term = Encoder(max(WIDTH + 2, bounds.max_abs.bit_length() + 2)).of(cost)

        def detail(m: z3.ModelRef) -> str:
            return f"this call costs {value_of(m, term)} cycles"

        self.require(Kind.NATIVE_FRAME, e.span, st, fr, lambda: term <= budget, message, False,
                     detail)

    def unary(self, e: ir.Unary, st: State, fr: Frame) -> Val:
        v = self.value(e.operand, st, fr)
        if e.op is ir.UnOp.NOT:
            st.charge(self.cyc[isa.NOT])
            return Val(z3.Not(v.cond), 1 - v.hi, 1 - v.lo)
        st.charge(self.cyc[isa.NEG if e.op is ir.UnOp.NEG else isa.ABS])
        word = "-" if e.op is ir.UnOp.NEG else "abs"

        def detail(m: z3.ModelRef) -> str:
            return f"{word}({value_of(m, v.term)}) = {-value_of(m, v.term)} overflows"

        self.require(Kind.OVERFLOW, e.span, st, fr, lambda: v.bv != INT_MIN,
                     f"`{text(e)}` stays within 32 bits", v.lo > INT_MIN, detail)
        r = unary_range(e.op, ir.IntType(max(v.lo, INT_MIN + 1), max(v.hi, INT_MIN + 1)))
        term = -v.bv if e.op is ir.UnOp.NEG else z3.If(v.bv < 0, -v.bv, v.bv)
        return Val(term, r.lo, r.hi)

    def binary(self, e: ir.Binary, a: Val, b: Val, st: State, fr: Frame) -> Val:
        op = e.op
        c = self.cyc
        if op in ir.COMPARISONS:
            st.charge(c[OPCODES[op]])
            out = _compare(op, a, b)
            if not a.is_bool:
                self.shapes[out.term.get_id()] = (op, a, b)
            return out
        st.charge(c[OPCODES[op]])
        x, y = a.bv, b.bv
        ta, tb = ir.IntType(a.lo, a.hi), ir.IntType(b.lo, b.hi)
        if op in (ir.BinOp.ADD, ir.BinOp.SUB, ir.BinOp.MUL):
            self.require(Kind.OVERFLOW, e.span, st, fr, lambda: _no_overflow(op, x, y),
                         f"`{text(e)}` stays within 32 bits", fits(*_exact(op, a, b)),
                         _overflow_detail(op, a, b))
            term = x + y if op is ir.BinOp.ADD else x - y if op is ir.BinOp.SUB else x * y
            r = binary_range(op, ta, tb)
            out = Val(term, r.lo, r.hi)
            if op is not ir.BinOp.MUL:
                self.shapes[term.get_id()] = (op, a, b)
            return out
        if op in (ir.BinOp.DIV, ir.BinOp.MOD):
            self.require(Kind.DIV_ZERO, e.right.span, st, fr, lambda: y != 0,
                         f"the divisor `{text(e.right)}` is not 0", not b.lo <= 0 <= b.hi,
                         lambda m: "the divisor is 0")
            self.require(Kind.OVERFLOW, e.span, st, fr, lambda: z3.Or(x != INT_MIN, y != -1),
                         f"`{text(e)}` stays within 32 bits",
                         a.lo > INT_MIN or not b.lo <= -1 <= b.hi,
                         lambda m: f"{INT_MIN} {op.value} -1 overflows")
            r = binary_range(op, ta, tb)
            term = x / y if op is ir.BinOp.DIV else z3.SRem(x, y)
            return Val(term, r.lo, r.hi)
        r = binary_range(op, ta, tb)  # MIN, MAX
        if op is ir.BinOp.MIN:
            return Val(z3.If(x <= y, x, y), r.lo, r.hi)
        return Val(z3.If(x >= y, x, y), r.lo, r.hi)

    # -- conditions

    def branch(self, e: ir.Expr, st: State, fr: Frame, jump: Jump) -> z3.BoolRef:
        """Evaluate condition ``e`` as codegen's ``jump_unless``/``jump_if`` do."""
        c = self.cyc
        if isinstance(e, ir.Const):
            if bool(e.value) == (jump is Jump.IF):
                st.charge(c[isa.JMP])  # an unconditional jump
            return z3.BoolVal(bool(e.value))
        if isinstance(e, ir.Binary) and e.op is ir.BinOp.AND:
            left = self.branch(e.left, st, fr, Jump.UNLESS)
            holds = st.fork(left)
            right = self.branch(e.right, holds, fr, jump)
            st.absorb(merge(st, left, holds, st.fork(z3.Not(left))) or st)
            return z3.And(left, right)
        if isinstance(e, ir.Binary) and e.op is ir.BinOp.OR:
            left = self.branch(e.left, st, fr, Jump.IF)
            fails = st.fork(z3.Not(left))
            right = self.branch(e.right, fails, fr, jump)
            st.absorb(merge(st, left, st.fork(left), fails) or st)
            return z3.Or(left, right)
        if isinstance(e, ir.Unary) and e.op is ir.UnOp.NOT:
            flipped = Jump.IF if jump is Jump.UNLESS else Jump.UNLESS
            return z3.Not(self.branch(e.operand, st, fr, flipped))
        v = self.value(e, st, fr)
        st.charge(c[isa.JZ if jump is Jump.UNLESS else isa.JNZ])
        if v.lo == v.hi:  # decided by the intervals: one side never runs
            return z3.BoolVal(bool(v.lo))
        return v.cond


# --------------------------------------------------------------------------- helpers

def _exact(op: ir.BinOp, a: Val, b: Val) -> tuple[int, int]:
    """The interval of ``a op b`` in unbounded integers (before any overflow trap)."""
    if op is ir.BinOp.ADD:
        return a.lo + b.lo, a.hi + b.hi
    if op is ir.BinOp.SUB:
        return a.lo - b.hi, a.hi - b.lo
    p = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    return min(p), max(p)


def _no_overflow(op: ir.BinOp, x: z3.BitVecRef, y: z3.BitVecRef) -> z3.BoolRef:
    """``x op y`` fits in 32 signed bits (z3's exact predicates for + - *)."""
    if op is ir.BinOp.ADD:
        return z3.And(z3.BVAddNoOverflow(x, y, True), z3.BVAddNoUnderflow(x, y))
    if op is ir.BinOp.SUB:
        return z3.And(z3.BVSubNoOverflow(x, y), z3.BVSubNoUnderflow(x, y, True))
    return z3.And(z3.BVMulNoOverflow(x, y, True), z3.BVMulNoUnderflow(x, y))


def _overflow_detail(op: ir.BinOp, a: Val, b: Val) -> Detail:
    def detail(m: z3.ModelRef) -> str:
        x, y = value_of(m, a.term), value_of(m, b.term)
        r = x + y if op is ir.BinOp.ADD else x - y if op is ir.BinOp.SUB else x * y
        return f"{x} {op.value} {y} = {r}, outside {INT_MIN} .. {INT_MAX}"
    return detail


def _compare(op: ir.BinOp, a: Val, b: Val) -> Val:
    if a.is_bool:
        eq = a.cond == b.cond
        term = eq if op is ir.BinOp.EQ else z3.Not(eq)
        return Val(term, 0, 1)
    x, y = a.bv, b.bv
    terms: dict[ir.BinOp, Callable[[], z3.BoolRef]] = {
        ir.BinOp.EQ: lambda: x == y, ir.BinOp.NE: lambda: x != y,
        ir.BinOp.LT: lambda: x < y, ir.BinOp.LE: lambda: x <= y,
        ir.BinOp.GT: lambda: x > y, ir.BinOp.GE: lambda: x >= y,
    }
    # Decided by the intervals alone? (keeps rules and conditions cheap)
    always = {ir.BinOp.LT: a.hi < b.lo, ir.BinOp.LE: a.hi <= b.lo, ir.BinOp.GT: a.lo > b.hi,
              ir.BinOp.GE: a.lo >= b.hi, ir.BinOp.EQ: a.lo == a.hi == b.lo == b.hi,
              ir.BinOp.NE: a.hi < b.lo or b.hi < a.lo}[op]
    never = {ir.BinOp.LT: a.lo >= b.hi, ir.BinOp.LE: a.lo > b.hi, ir.BinOp.GT: a.hi <= b.lo,
             ir.BinOp.GE: a.hi < b.lo, ir.BinOp.EQ: a.hi < b.lo or b.hi < a.lo,
             ir.BinOp.NE: a.lo == a.hi == b.lo == b.hi}[op]
    lo, hi = (1, 1) if always else (0, 0) if never else (0, 1)
    return Val(terms[op](), lo, hi)
