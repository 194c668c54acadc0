"""Branches, loops and returns: ``JMP JZ JNZ FORPREP FORLOOP RET RETV``.

The control flow itself is written by ``regions`` (if/else, chains, ``for`` loops); what is
left here is the condition a block's final branch hands to it, the loop counter's range
and the ``return``."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.translator.state import Emitter, UnitState


def jump(st: UnitState, d: isa.Decoded, refund: int) -> None:
    return None


def branch(st: UnitState, d: isa.Decoded, refund: int) -> str:
    """The condition under which the fall-through path runs: true for JZ, false for JNZ."""
    e = st.stack.pop()
    if d.opcode == isa.JZ:
        return e.expr if e.is_bool else f"{e.expr} != 0"
    return f"not {e.expr}" if e.is_bool else f"{e.expr} == 0"


def loop_control(st: UnitState, d: isa.Decoded, refund: int) -> None:
    slot = d.operands[0]
    # the loop counter ranges over [start, limit]; the body sees [start, limit - 1]
    lo_r, lim_r = st.lrange(slot), st.lrange(slot + 1)
    st.note_store(slot, (lo_r[0], max(lo_r[1], lim_r[1])))


def return_(st: UnitState, d: isa.Decoded, refund: int) -> None:
    if d.opcode == isa.RETV:
        st.emit(f"return budget, {st.stack.pop().as_int()}")
    else:
        st.emit("return budget, None")


EMITTERS: dict[int, Emitter] = {
    isa.JMP: jump, isa.JZ: branch, isa.JNZ: branch,
    isa.FORPREP: loop_control, isa.FORLOOP: loop_control,
    isa.RET: return_, isa.RETV: return_,
}
