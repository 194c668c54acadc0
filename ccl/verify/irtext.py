"""Typed IR expressions back to CCL text, for the verifier's messages (``a * b``, ``t[i]``)."""

from __future__ import annotations

from ccl import ir

_PREC = {
    ir.BinOp.OR: 1, ir.BinOp.AND: 2, ir.BinOp.EQ: 3, ir.BinOp.NE: 3, ir.BinOp.LT: 4,
    ir.BinOp.LE: 4, ir.BinOp.GT: 4, ir.BinOp.GE: 4, ir.BinOp.ADD: 5, ir.BinOp.SUB: 5,
    ir.BinOp.MUL: 6, ir.BinOp.DIV: 6, ir.BinOp.MOD: 6,
}


def text(e: ir.Expr, outer: int = 0) -> str:
    """CCL source for ``e`` (constants folded, so it may differ from what was written)."""
    if isinstance(e, ir.Const):
        if isinstance(e.type, ir.BoolType):
            return "true" if e.value else "false"
        return str(e.value)
    if isinstance(e, ir.LocalRef):
        return e.local.name
    if isinstance(e, ir.GlobalRef):
        return e.glob.name
    if isinstance(e, ir.ArrayRef):
        return f"{e.array.name}[{text(e.index)}]"
    if isinstance(e, ir.Unary):
        if e.op is ir.UnOp.ABS:
            return f"abs({text(e.operand)})"
        return f"{e.op.value}{text(e.operand, 7)}"
    if isinstance(e, ir.Binary):
        if e.op in (ir.BinOp.MIN, ir.BinOp.MAX):
            return f"{e.op.value}({text(e.left)}, {text(e.right)})"
        prec = _PREC[e.op]
        s = f"{text(e.left, prec)} {e.op.value} {text(e.right, prec + 1)}"
        return f"({s})" if prec < outer else s
    if isinstance(e, ir.Call):
        return f"{e.function}({', '.join(text(a) for a in e.args)})"
    if isinstance(e, ir.NativeCall):
        return f"{e.native.name}({', '.join(text(a) for a in e.args)})"
    if isinstance(e, ir.InstrCall):
        return f"{e.instr}({', '.join(text(a) for a in e.args)})"
    if isinstance(e, ir.EnvRead):
        return f"env({e.key})"
    raise TypeError(e)  # pragma: no cover - the IR is closed
