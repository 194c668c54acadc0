"""The VVM's integer semantics over the IR's operators: constant folding and the ranges of
results, for checking and cost analysis.

Nothing here defines arithmetic: each IR operator is the VVM instruction ``OPCODES`` names,
and its result, its traps and the interval of its results come from the machine model
(``onboard.vm.machine``), the definition the VVM itself runs. ``&&`` and ``||`` are not
instructions (codegen turns them into jumps) and are folded here.
"""

from __future__ import annotations

from ccl import ir
from ccl.ir import BinOp, IntType, UnOp
from onboard.vm import isa, machine

#: The VVM instruction that computes each IR operator (``&&``/``||`` compile to jumps).
OPCODES: dict[BinOp, int] = {
    BinOp.ADD: isa.ADD, BinOp.SUB: isa.SUB, BinOp.MUL: isa.MUL, BinOp.DIV: isa.DIV,
    BinOp.MOD: isa.MOD, BinOp.MIN: isa.MIN, BinOp.MAX: isa.MAX,
    BinOp.EQ: isa.EQ, BinOp.NE: isa.NE, BinOp.LT: isa.LT, BinOp.LE: isa.LE,
    BinOp.GT: isa.GT, BinOp.GE: isa.GE,
}
UNARY_OPCODES: dict[UnOp, int] = {UnOp.NEG: isa.NEG, UnOp.ABS: isa.ABS, UnOp.NOT: isa.NOT}


class ArithmeticError_(Exception):
    """A constant operation that would trap at run time (overflow, division by zero)."""


def apply_binary(op: BinOp, a: int, b: int) -> int:
    """The VVM's result of ``a op b``; raises ArithmeticError_ where the VVM would trap."""
    if op is BinOp.AND:
        return int(bool(a) and bool(b))
    if op is BinOp.OR:
        return int(bool(a) or bool(b))
    try:
        return machine.binary(OPCODES[op], a, b)
    except machine.ArithmeticTrap as trap:
        raise ArithmeticError_(str(trap)) from None


def apply_unary(op: UnOp, a: int) -> int:
    """The VVM's result of ``op a``; raises ArithmeticError_ where the VVM would trap."""
    try:
        return machine.unary(UNARY_OPCODES[op], a)
    except machine.ArithmeticTrap as trap:
        raise ArithmeticError_(str(trap)) from None


def evaluate(e: ir.Expr, values: dict[str, int]) -> int:
    """The value of a rule's condition (constants, globals, operators) for the globals'
    ``values``, as the VVM computes it; raises ArithmeticError_ where it would trap."""
    if isinstance(e, ir.Const):
        return e.value
    if isinstance(e, ir.GlobalRef):
        return values[e.glob.name]
    if isinstance(e, ir.Unary):
        return apply_unary(e.op, evaluate(e.operand, values))
    if isinstance(e, ir.Binary):
        left = evaluate(e.left, values)
        if e.op is BinOp.AND and not left:
            return 0
        if e.op is BinOp.OR and left:
            return 1
        return apply_binary(e.op, left, evaluate(e.right, values))
    raise ValueError(f"a rule cannot contain {type(e).__name__}")


def clip(lo: int, hi: int) -> IntType:
    """The 32-bit part of ``lo .. hi`` (a value outside it traps before it is used)."""
    return IntType(*machine.clip(lo, hi))


def binary_range(op: BinOp, a: IntType, b: IntType) -> IntType:
    """Range of ``a op b`` for arithmetic operators."""
    if op not in OPCODES or op in (BinOp.EQ, BinOp.NE, BinOp.LT, BinOp.LE, BinOp.GT,
                                   BinOp.GE):
        raise ValueError(f"{op} is not arithmetic")
    return IntType(*machine.binary_interval(OPCODES[op], (a.lo, a.hi), (b.lo, b.hi)))


def unary_range(op: UnOp, a: IntType) -> IntType:
    """Range of ``op a`` for ``-`` and ``abs``."""
    return IntType(*machine.unary_interval(UNARY_OPCODES[op], (a.lo, a.hi)))
