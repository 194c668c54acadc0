"""Calls: ``CALL`` (another unit of the image), ``CALLN`` (a host native), the VMlet
instructions (opcodes from ``EXT_BASE``) and ``HIDE``.

A call that is not inlined is a ``yield from`` the callee's generator when metered (the
callee may suspend); a straight-line VMlet instruction is translated in place
(``inlining.inline_body``), any other one calls its body's out-of-line function. The host is
checked, not trusted: arguments and results are checked against the native's declared
ranges."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.faults import TrapCode
from onboard.vm.translator.costs import inlinable
from onboard.vm.translator.inlining import inline_body
from onboard.vm.translator.ranges import FULL, outside, within
from onboard.vm.translator.state import Emitter, UnitState
from onboard.vm.translator.values import Value


def call(st: UnitState, d: isa.Decoded, refund: int) -> None:
    callee = d.operands[0]
    cu = st.bound.image.functions[callee]
    args = [e.as_int() for e in st.pop_args(cu.n_params)]
    st.materialize_stack()
    t = st.ctx.temp()
    call = f"{st.spec.callee_names(callee)}(budget{''.join(', ' + a for a in args)})"
    line = f"budget, {t} = yield from {call}" if st.metered else f"budget, {t} = {call}"
    if st.refund_extra:
        # charged ahead for later instructions: a trap in the callee gives it back
        st.emit("try:")
        st.emit(f"    {line}")
        st.emit("except Trap as trap:")
        st.emit(f"    trap.remaining += 0{st.refund_extra}")
        st.emit("    raise")
    else:
        st.emit(line)
    if cu.returns:
        st.stack.append(Value(t, FULL))


def call_native(st: UnitState, d: isa.Decoded, refund: int) -> None:
    n = st.bound.natives[d.operands[0]]
    args = st.pop_args(n.n_args)
    # a native changes neither locals nor data memory: what is lazy may stay so
    st.materialize_stack(keep_lazy=True)
    values = []
    for a, (lo, hi) in zip(args, n.arg_ranges, strict=True):
        v = a.as_int()
        if not within(a.rng, lo, hi):
            v = st.materialize(a).expr
            st.emit(f"if {outside(v, a.rng, lo, hi)}: "
                    f"{st.trap(TrapCode.NATIVE_ARG, d.offset, refund)}")
        values.append(v)
    call = f"{st.native_names[d.operands[0]]}({', '.join(values)})"
    if n.result is None:
        st.emit(call)
        return
    t = st.ctx.temp()
    lo, hi = n.result
    st.emit(f"{t} = {call}")
    # the host is checked, not trusted: ranges downstream rely on the declared result
    # (and a host that returns no integer at all traps as on the reference engine)
    st.emit(f"if not isinstance({t}, int) or {outside(t, FULL, lo, hi)}: "
            f"{st.trap(TrapCode.NATIVE_RESULT, d.offset, refund)}")
    st.stack.append(Value(t, (lo, hi)))


def vmlet_instruction(st: UnitState, d: isa.Decoded, refund: int) -> None:
    ext = st.bound.ext[d.opcode - isa.EXT_BASE]
    cu = ext.vmlet.image.functions[ext.function]
    args = st.pop_args(cu.n_params)
    if inlinable(st.bound, d.opcode):
        inline_body(st, ext.vmlet, ext.function, args, d.offset, refund)
        return
    st.materialize_stack()
    name = st.ctx.out_of_line[(id(ext.vmlet), ext.function)]
    t = st.ctx.temp()
    call = f"{name}(budget{''.join(', ' + a.as_int() for a in args)})"
    st.emit("try:")
    st.emit(f"    budget, {t} = yield from {call}" if st.metered
            else f"    budget, {t} = {call}")
    st.emit("except Trap as e:")
    # a VMlet instruction is one instruction: its traps are reported where it is used
    st.emit(f"    raise Trap(e.code, {st.spec.unit}, {d.offset}, e.remaining) from None")
    if cu.returns:
        st.stack.append(Value(t, FULL))


def hide(st: UnitState, d: isa.Decoded, refund: int) -> None:
    raise ValueError("HIDE runs only in a VMlet's on load, by the reference engine")


EMITTERS: dict[int, Emitter] = {isa.CALL: call, isa.CALLN: call_native, isa.HIDE: hide}
