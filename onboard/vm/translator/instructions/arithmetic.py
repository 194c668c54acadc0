"""Arithmetic, comparisons and range checks: ``ADD SUB MUL DIV MOD NEG ABS MIN MAX EQ NE
LT LE GT GE NOT RANGE``.

Each result gets the range its operands' ranges allow; the overflow, division-by-zero and
range checks are written only where those ranges do not prove them. Comparisons stay lazy:
they are evaluated where they are used (a branch condition, usually); so does arithmetic
that needs no check and reads only locals, temporaries and literals (see ``_lazy``), so
that ``a = (a + x) % 255`` is one Python statement, not three with a temporary each."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.faults import TrapCode
from onboard.vm.isa import INT_MAX, INT_MIN
from onboard.vm.translator.ranges import BOOL, Range, clamp, fits, outside, within
from onboard.vm.translator.state import Emitter, UnitState
from onboard.vm.translator.values import Value, is_literal

_CMP = {isa.EQ: "==", isa.NE: "!=", isa.LT: "<", isa.LE: "<=", isa.GT: ">", isa.GE: ">="}
_ARITH = {isa.ADD: "+", isa.SUB: "-", isa.MUL: "*"}


def _product(ra: Range, rb: Range) -> Range:
    p = (ra[0] * rb[0], ra[0] * rb[1], ra[1] * rb[0], ra[1] * rb[1])
    return (min(p), max(p))


def _pure(e: Value) -> bool:
    """An operand whose value only locals, temporaries and literals make: nothing another
    task or a native can change, so it may be evaluated later (before its locals change:
    ``reads``, flushed by the store). Temporaries are never written twice."""
    return not e.is_bool and (e.lazy or e.expr.isidentifier() or is_literal(e.expr))


def _lazy(aa: Value, bb: Value, expr: str, r: Range) -> Value:
    """The unchecked result ``expr`` of pure operands, evaluated where it is used."""
    return Value(f"({expr})", r, reads=aa.slots() | bb.slots(), lazy=True,
                 memory=aa.memory | bb.memory)


def add_sub_mul(st: UnitState, d: isa.Decoded, refund: int) -> None:
    bb, aa = st.stack.pop(), st.stack.pop()
    ra, rb = aa.rng, bb.rng
    if d.opcode == isa.ADD:
        r = (ra[0] + rb[0], ra[1] + rb[1])
    elif d.opcode == isa.SUB:
        r = (ra[0] - rb[1], ra[1] - rb[0])
    else:
        r = _product(ra, rb)
    expr = f"{aa.as_int()} {_ARITH[d.opcode]} {bb.as_int()}"
    if fits(r) and _pure(aa) and _pure(bb):
        st.stack.append(_lazy(aa, bb, expr, r))
        return
    t = st.ctx.temp()
    st.emit(f"{t} = {expr}")
    if not fits(r):
        st.emit(f"if {outside(t, r, INT_MIN, INT_MAX)}: "
                f"{st.trap(TrapCode.OVERFLOW, d.offset, refund)}")
        r = clamp(r)
    st.stack.append(Value(t, r))


def div_mod(st: UnitState, d: isa.Decoded, refund: int) -> None:
    bb, aa = st.stack.pop(), st.stack.pop()
    av, bv = aa.as_int(), bb.as_int()
    # Python's // and % agree with truncating division for a >= 0 and b > 0
    floor_ok = aa.rng[0] >= 0 and bb.rng[0] >= 0  # b == 0 traps first
    if d.opcode == isa.DIV and floor_ok and bb.rng[0] > 0:
        # a >= 0 and b > 0: the quotient is monotonic in both (smallest a over largest b)
        r = (aa.rng[0] // bb.rng[1], aa.rng[1] // bb.rng[0])
    elif d.opcode == isa.DIV:
        m = max(abs(aa.rng[0]), abs(aa.rng[1]))
        r = clamp((-m, m))
    else:
        m = max(abs(bb.rng[0]), abs(bb.rng[1]))
        r = clamp((0 if aa.rng[0] >= 0 else -(m - 1), 0 if aa.rng[1] <= 0 else m - 1))
    op = "//" if d.opcode == isa.DIV else "%"
    if floor_ok and bb.rng[0] > 0 and _pure(aa) and _pure(bb):  # nothing to check
        st.stack.append(_lazy(aa, bb, f"{av} {op} {bv}", r))
        return
    t = st.ctx.temp()
    if bb.rng[0] <= 0 <= bb.rng[1]:
        bv = st.materialize(bb).expr
        st.emit(f"if {bv} == 0: {st.trap(TrapCode.DIV_ZERO, d.offset, refund)}")
    may_overflow = aa.rng[0] <= INT_MIN and bb.rng[0] <= -1 <= bb.rng[1]
    overflow = st.trap(TrapCode.OVERFLOW, d.offset, refund)
    if d.opcode == isa.DIV:
        st.emit(f"{t} = {av} // {bv}" if floor_ok else f"{t} = _tdiv({av}, {bv})")
        if may_overflow:
            st.emit(f"if {t} > {INT_MAX}: {overflow}")
    else:
        if may_overflow:  # INT_MIN % -1 traps like INT_MIN / -1 does
            st.emit(f"if {av} == {INT_MIN} and {bv} == -1: {overflow}")
        st.emit(f"{t} = {av} % {bv}" if floor_ok else f"{t} = _tmod({av}, {bv})")
    st.stack.append(Value(t, r))


def _overflowing_unary(st: UnitState, d: isa.Decoded, refund: int, aa: Value, expr: str,
                       r: Range) -> None:
    """``t = expr`` of range ``r``, checked for overflow unless ``r`` fits (then lazy, if
    its operand is pure)."""
    if fits(r) and _pure(aa):
        st.stack.append(_lazy(aa, aa, expr, r))
        return
    t = st.ctx.temp()
    st.emit(f"{t} = {expr}")
    if not fits(r):
        st.emit(f"if {t} > {INT_MAX}: {st.trap(TrapCode.OVERFLOW, d.offset, refund)}")
        r = clamp(r)
    st.stack.append(Value(t, r))


def neg(st: UnitState, d: isa.Decoded, refund: int) -> None:
    aa = st.stack.pop()
    _overflowing_unary(st, d, refund, aa, f"-{aa.as_int()}", (-aa.rng[1], -aa.rng[0]))


def abs_(st: UnitState, d: isa.Decoded, refund: int) -> None:
    aa = st.stack.pop()
    lo, hi = aa.rng
    r = (lo, hi) if lo >= 0 else ((-hi, -lo) if hi <= 0 else (0, max(-lo, hi)))
    _overflowing_unary(st, d, refund, aa, f"abs({aa.as_int()})", r)


def min_max(st: UnitState, d: isa.Decoded, refund: int) -> None:
    bb, aa = st.stack.pop(), st.stack.pop()
    is_min = d.opcode == isa.MIN
    f = min if is_min else max
    r = (f(aa.rng[0], bb.rng[0]), f(aa.rng[1], bb.rng[1]))
    # a conditional expression is several times faster than calling min/max; it names
    # each operand twice, so an operand that is an expression is evaluated first
    av, bv = (e.expr if e.expr.isidentifier() or is_literal(e.expr)
              else st.materialize(e).expr for e in (aa, bb))
    t = st.ctx.temp()
    st.emit(f"{t} = {av} if {av} {'<' if is_min else '>'} {bv} else {bv}")
    st.stack.append(Value(t, r))


def compare(st: UnitState, d: isa.Decoded, refund: int) -> None:
    bb, aa = st.stack.pop(), st.stack.pop()
    # evaluated where it is used: a later store into a local it reads flushes it
    st.stack.append(Value(f"({aa.as_int()} {_CMP[d.opcode]} {bb.as_int()})", BOOL,
                          is_bool=True, reads=aa.slots() | bb.slots(),
                          memory=aa.memory | bb.memory))


def not_(st: UnitState, d: isa.Decoded, refund: int) -> None:
    aa = st.stack.pop()
    st.stack.append(Value(f"(not {aa.expr})", BOOL, is_bool=True, reads=aa.slots(),
                          memory=aa.memory))


def range_check(st: UnitState, d: isa.Decoded, refund: int) -> None:
    lo, hi = d.operands
    e = st.stack[-1]
    if not within(e.rng, lo, hi):
        e = st.materialize(e)
        st.emit(f"if {outside(e.expr, e.rng, lo, hi)}: "
                f"{st.trap(TrapCode.RANGE, d.offset, refund)}")
    st.stack[-1] = Value(e.expr, (max(lo, e.rng[0]), min(hi, e.rng[1])), e.is_bool, e.local,
                         e.reads, e.lazy, e.memory)


EMITTERS: dict[int, Emitter] = {
    isa.ADD: add_sub_mul, isa.SUB: add_sub_mul, isa.MUL: add_sub_mul,
    isa.DIV: div_mod, isa.MOD: div_mod, isa.NEG: neg, isa.ABS: abs_,
    isa.MIN: min_max, isa.MAX: min_max,
    **{op: compare for op in _CMP}, isa.NOT: not_, isa.RANGE: range_check,
}
