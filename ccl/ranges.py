"""Integer semantics and interval arithmetic shared by folding, checking and cost analysis.

The arithmetic is the VVM's: 32-bit signed, overflow is an error (never wrapped), division
truncates toward zero and the remainder takes the dividend's sign (as in C). The interval
functions give the range of a result from the ranges of the operands; results are clipped to
32 bits, because a value outside traps at run time and never reaches anyone.
"""

from __future__ import annotations

from ccl.ir import BinOp, IntType, UnOp
from onboard.isa import INT_MAX, INT_MIN


class ArithmeticError_(Exception):
    """A constant operation that would trap at run time (overflow, division by zero)."""


def fits(value: int) -> bool:
    return INT_MIN <= value <= INT_MAX


def tdiv(a: int, b: int) -> int:
    """Division truncating toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def tmod(a: int, b: int) -> int:
    """Remainder of ``tdiv``: ``a == tdiv(a, b) * b + tmod(a, b)``."""
    return a - tdiv(a, b) * b


def apply_binary(op: BinOp, a: int, b: int) -> int:
    """The VVM's result of ``a op b``; raises ArithmeticError_ where the VVM would trap."""
    if op is BinOp.ADD:
        r = a + b
    elif op is BinOp.SUB:
        r = a - b
    elif op is BinOp.MUL:
        r = a * b
    elif op in (BinOp.DIV, BinOp.MOD):
        if b == 0:
            raise ArithmeticError_("division by zero")
        # The VVM computes the quotient for `%` too, so -2147483648 % -1 traps as
        # -2147483648 / -1 does (the quotient 2147483648 overflows), though the remainder is 0.
        if not fits(tdiv(a, b)):
            raise ArithmeticError_(f"{a} {op.value} {b} overflows 32 bits (the quotient "
                                   f"{tdiv(a, b)} does not fit)")
        r = tdiv(a, b) if op is BinOp.DIV else tmod(a, b)
    elif op is BinOp.MIN:
        r = min(a, b)
    elif op is BinOp.MAX:
        r = max(a, b)
    elif op is BinOp.EQ:
        r = int(a == b)
    elif op is BinOp.NE:
        r = int(a != b)
    elif op is BinOp.LT:
        r = int(a < b)
    elif op is BinOp.LE:
        r = int(a <= b)
    elif op is BinOp.GT:
        r = int(a > b)
    elif op is BinOp.GE:
        r = int(a >= b)
    elif op is BinOp.AND:
        r = int(bool(a) and bool(b))
    else:
        r = int(bool(a) or bool(b))
    if not fits(r):
        raise ArithmeticError_(f"{a} {op.value} {b} = {r} overflows 32 bits")
    return r


def apply_unary(op: UnOp, a: int) -> int:
    r = -a if op is UnOp.NEG else abs(a) if op is UnOp.ABS else int(not a)
    if not fits(r):
        raise ArithmeticError_(f"{op.value}({a}) overflows 32 bits")
    return r


def clip(lo: int, hi: int) -> IntType:
    """The 32-bit part of ``lo .. hi`` (a value outside it traps before it is used)."""
    lo, hi = max(lo, INT_MIN), min(hi, INT_MAX)
    if lo > hi:  # entirely outside: every evaluation traps; any range will do
        lo = hi = min(max(lo, INT_MIN), INT_MAX)
    return IntType(lo, hi)


def binary_range(op: BinOp, a: IntType, b: IntType) -> IntType:
    """Range of ``a op b`` for arithmetic operators."""
    if op is BinOp.ADD:
        return clip(a.lo + b.lo, a.hi + b.hi)
    if op is BinOp.SUB:
        return clip(a.lo - b.hi, a.hi - b.lo)
    if op is BinOp.MUL:
        p = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
        return clip(min(p), max(p))
    if op is BinOp.MIN:
        return IntType(min(a.lo, b.lo), min(a.hi, b.hi))
    if op is BinOp.MAX:
        return IntType(max(a.lo, b.lo), max(a.hi, b.hi))
    if op is BinOp.DIV:
        divisors = [d for d in (b.lo, b.hi, -1, 1) if b.lo <= d <= b.hi and d != 0]
        if not divisors:
            return clip(0, 0)  # always divides by zero: always traps
        q = [tdiv(n, d) for n in (a.lo, a.hi) for d in divisors]
        return clip(min(q), max(q))
    if op is BinOp.MOD:
        m = max(abs(b.lo), abs(b.hi))
        if m == 0:
            return clip(0, 0)
        lo = 0 if a.lo >= 0 else max(a.lo, -(m - 1))
        hi = 0 if a.hi <= 0 else min(a.hi, m - 1)
        return IntType(lo, hi)
    raise ValueError(f"{op} is not arithmetic")


def unary_range(op: UnOp, a: IntType) -> IntType:
    if op is UnOp.NEG:
        return clip(-a.hi, -a.lo)
    if a.lo >= 0:
        return a
    if a.hi <= 0:
        return clip(-a.hi, -a.lo)
    return clip(0, max(-a.lo, a.hi))
