"""Code of another unit translated in place: a short pure function at its calls, and a
straight-line VMlet instruction's body at its uses (so that a VMlet-defined instruction
costs what a built-in one would).

The inlined body's locals become the caller's expressions (its arguments) or fresh
temporaries, and its operand stack a stack of its own; its instructions are written by the
same emitters as the caller's."""

from __future__ import annotations

from collections import Counter

from onboard.vm import isa
from onboard.vm.binding import Bound
from onboard.vm.translator.state import UnitState
from onboard.vm.translator.values import Value, is_literal


def inline_locals(st: UnitState, args: list[Value], n_locals: int,
                  body: list[isa.Decoded]) -> list[Value]:
    """The locals of an inlined ``body``: its arguments, then zeros."""
    reads = Counter(x.operands[0] for x in body if x.opcode == isa.LOAD_L)
    if any(x.opcode in (isa.STORE_A, isa.STORE_G) for x in body):
        reads = Counter({k: 2 for k in range(len(args))})  # it may write what they read
    locals_: list[Value] = []
    for k, a in enumerate(args):
        # a read of an outer local stays as it is: the body cannot write it (but what the
        # body returns may be that read, flushed if the caller then writes the local); so
        # does unchecked arithmetic or a load the body reads once (it writes no memory)
        if a.lazy and reads[k] <= 1:
            locals_.append(a)
            continue
        if not (a.expr.isidentifier() or is_literal(a.expr)) or a.is_bool:
            a = st.materialize(a)
        locals_.append(Value(a.expr, a.rng, local=a.local))
    return locals_ + [Value("0", (0, 0))] * (n_locals - len(args))


def _inline_local(st: UnitState, x: isa.Decoded, stack: list[Value],
                  locals_: list[Value]) -> bool:
    """Translate a LOAD_L/STORE_L of an inlined body; False for other instructions."""
    if x.opcode == isa.LOAD_L:
        stack.append(locals_[x.operands[0]])
        return True
    if x.opcode == isa.STORE_L:
        e = stack.pop()
        t = st.ctx.temp()  # a new name per store: entries on the stack keep theirs
        st.emit(f"{t} = {e.as_int()}")
        locals_[x.operands[0]] = Value(t, e.rng)
        return True
    return False


def inline_call(st: UnitState, d: isa.Decoded, refund: int, fast: bool,
                metered_each: bool) -> None:
    """A call of a short straight-line function, translated in place. Exactly as if
    called: each of its instructions is charged (and may suspend) in turn, and its
    traps name it and its own offsets."""
    callee = d.operands[0]
    body = st.costs.inline_callee(callee)
    assert body is not None
    costs = st.costs.body_costs(body)
    metered = not fast and metered_each and st.metered
    if metered:
        st.meter_single(st.bound.call_cost[callee])
    cu = st.bound.image.functions[callee]
    locals_ = inline_locals(st, st.pop_args(cu.n_params), cu.n_locals, body)
    stack: list[Value] = []
    suffix = sum(costs)
    caller_stack = st.stack
    st.trap_unit = callee
    try:
        for x, c in zip(body, costs, strict=True):
            suffix -= c
            if metered:
                st.meter_single(c)
            if _inline_local(st, x, stack, locals_):
                continue
            if x.opcode == isa.RETV:
                caller_stack.append(stack.pop())
                break
            st.stack = stack
            st.emit_instr(x, refund + suffix if fast else 0)
    finally:
        st.stack = caller_stack
        st.trap_unit = None


def inline_body(st: UnitState, vm: Bound, function: int, args: list[Value], offset: int,
                refund: int) -> None:
    """Translate a straight-line VMlet instruction body in place (its traps are the
    instruction's, at ``offset``). The instruction is charged in full before its body
    runs: a trap inside the body refunds only what follows the instruction in its
    block."""
    cu = vm.image.functions[function]
    names = st.ctx.bind_vmlet_natives(vm)
    code = list(isa.decode(cu.code))
    locals_ = inline_locals(st, args, cu.n_locals, code)
    stack: list[Value] = []
    for x in code:
        if _inline_local(st, x, stack, locals_):
            continue
        if x.opcode == isa.RETV:
            st.stack.append(stack.pop())
            return
        saved = st.stack, st.bound, st.native_names
        st.stack, st.bound, st.native_names = stack, vm, names
        try:
            st.emit_instr(isa.Decoded(offset, x.opcode, x.operands, x.size), refund)
        finally:
            st.stack, st.bound, st.native_names = saved
    raise ValueError("VMlet instruction body without RETV")
