"""One basic block, metered: the fast path charges the block's static cost at once when the
budget covers it; the slow path charges instruction by instruction and suspends exactly
before the first instruction that does not fit, as the reference interpreter does. A trap
in the fast path gives back the cost of the block's instructions after the trapping one.

Some blocks are charged otherwise: a native whose cost depends on its arguments computes
its charge first, a call meters its own dispatch, and code known to be covered by the
budget (a loop's batch of iterations) is charged without a check, or not at all when its
batch was charged ahead."""

from __future__ import annotations

import ast

from onboard.vm import isa
from onboard.vm.translator.inlining import inline_call
from onboard.vm.translator.state import UnitState
from onboard.vm.translator.structure import Block


def emit_block(st: UnitState, block: Block) -> str | None:
    """Emit one basic block (metered); returns the branch condition of a final
    JZ/JNZ (a Python expression that is true when the fall-through path runs)."""
    st.known = {}
    instrs = range(block.start, block.end)
    costs = [st.costs.cost(i) for i in instrs]
    first = st.flow.ins[block.start]
    if st.costs.is_dynamic_native(first):
        _emit_dynamic_native(st, first)
        return None
    precharged = st.unchecked and block.start in st.precharged
    if st.costs.is_metered_call(first):
        if not precharged:
            st.meter_single(costs[0])
        return st.emit_instr(first, 0)
    total = sum(costs)
    if not st.metered or total == 0:
        return _run(st, instrs, costs, fast=True)
    if st.unchecked:
        if not precharged:
            st.emit(f"budget -= {total}")
        return _run(st, instrs, costs, fast=True)
    # one instruction is metered as one charge, unless it is a call inlined here: its
    # callee's instructions are charged (and may suspend) one by one
    if len(instrs) == 1 and not st.costs.is_inlined_call(first):
        st.meter_single(total)
        return _run(st, instrs, costs, fast=False, metered_each=False)
    return _emit_fast_and_slow(st, instrs, costs, total)


def _emit_fast_and_slow(st: UnitState, instrs: range, costs: list[int], total: int) -> str | None:
    """The block twice: charged at once when the budget covers it, else one by one. Both
    paths leave the same stack, in the same names."""
    saved_stack = list(st.stack)
    saved_temp = st.ctx.temp_mark()
    saved_stored = dict(st.stored)
    st.emit(f"if budget >= {total}:")
    with st.indented():
        st.emit(f"budget -= {total}")
        cond_fast = _run(st, instrs, costs, fast=True)
    fast_stack = st.stack
    st.emit("else:")
    with st.indented():
        st.stack = saved_stack
        st.ctx.temp_rewind(saved_temp)
        st.stored = saved_stored
        cond_slow = _run(st, instrs, costs, fast=False)
    assert cond_fast == cond_slow and [e.expr for e in fast_stack] == \
        [e.expr for e in st.stack], "fast and slow paths diverged"
    return cond_fast


def _run(st: UnitState, instrs: range, costs: list[int], fast: bool,
         metered_each: bool = True) -> str | None:
    """The instructions of a block: on the fast path each knows what the ones after it
    cost (its refund), on the slow path each is charged before it runs."""
    cond = None
    suffix = sum(costs)
    for i, c in zip(instrs, costs, strict=True):
        suffix -= c
        d = st.flow.ins[i]
        if st.costs.is_inlined_call(d):
            inline_call(st, d, suffix, fast, metered_each)
            continue
        if not fast and metered_each and st.metered and c:
            st.charge_waiting(str(c))
        cond = st.emit_instr(d, suffix if fast else 0)
    return cond


def _emit_dynamic_native(st: UnitState, d: isa.Decoded) -> None:
    """A native whose cost is a formula of its arguments: computed, then charged."""
    n = st.bound.natives[d.operands[0]]
    args = st.stack[len(st.stack) - n.n_args:]
    if st.metered:
        env = {name: f"({a.as_int()})" for name, a in zip(n.arg_names, args, strict=True)}
        st.emit(f"c = {n.call_cost} + {formula_source(n.formula.tree, env)}")
        st.charge_waiting("c")
    st.emit_instr(d, 0)


def formula_source(node: ast.expr, env: dict[str, str]) -> str:
    """Python source of a native's cost formula, its argument names replaced by ``env``."""
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return env.get(node.id, node.id)
    if isinstance(node, ast.UnaryOp):
        return f"(-{formula_source(node.operand, env)})"
    if isinstance(node, ast.BinOp):
        a, b = formula_source(node.left, env), formula_source(node.right, env)
        if isinstance(node.op, ast.FloorDiv):
            return f"_fdiv({a}, {b})"
        sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
        return f"({a} {sym} {b})"
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return f"{node.func.id}({', '.join(formula_source(a, env) for a in node.args)})"
