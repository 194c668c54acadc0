"""Constants, the operand stack, locals, globals and arrays: ``PUSH POP DUP ENV LOAD_L
STORE_L LOAD_G STORE_G LOAD_A STORE_A``.

Locals are Python locals (``l0``, ``l1``...), globals the list ``G`` and arrays ``A0``,
``A1``...; a store checks the declared range of its target, and an array access its index,
unless the value's range already proves it."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.faults import TrapCode
from onboard.vm.translator.ranges import within
from onboard.vm.translator.state import Emitter, UnitState
from onboard.vm.translator.values import Value


def push(st: UnitState, d: isa.Decoded, refund: int) -> None:
    imm = d.operands[0]
    st.stack.append(Value(repr(imm), (imm, imm)))


def pop(st: UnitState, d: isa.Decoded, refund: int) -> None:
    st.stack.pop()


def dup(st: UnitState, d: isa.Decoded, refund: int) -> None:
    s = st.stack
    s[-1] = st.materialize(s[-1])
    s.append(s[-1])


def env(st: UnitState, d: isa.Decoded, refund: int) -> None:
    value = st.bound.env[d.operands[0]]
    st.stack.append(Value(repr(value), (value, value)))


def load_local(st: UnitState, d: isa.Decoded, refund: int) -> None:
    slot = d.operands[0]
    st.stack.append(Value(f"l{slot}", st.lrange(slot), local=slot))


def store_local(st: UnitState, d: isa.Decoded, refund: int) -> None:
    slot = d.operands[0]
    e = st.stack.pop()
    st.flush_local(slot)
    st.emit(f"l{slot} = {e.as_int()}")
    st.note_store(slot, e.rng)
    st.known[slot] = e.rng


def load_global(st: UnitState, d: isa.Decoded, refund: int) -> None:
    g = d.operands[0]
    t = st.ctx.temp()
    st.emit(f"{t} = G[{g}]" if not st.spec.inline else f"{t} = 0")
    st.stack.append(Value(t, st.spec.memory.global_ranges[g]))


def store_global(st: UnitState, d: isa.Decoded, refund: int) -> None:
    g = d.operands[0]
    e = st.stack.pop()
    lo, hi = st.spec.memory.global_ranges[g]
    v = e.as_int()
    if not within(e.rng, lo, hi):
        v = st.materialize(e).expr
        st.emit(f"if not {lo} <= {v} <= {hi}: {st.trap(TrapCode.RANGE, d.offset, refund)}")
    st.emit(f"G[{g}] = {v}")


def _checked_index(st: UnitState, idx: Value, n: int, offset: int, refund: int) -> tuple[
        str, str | None]:
    """The index expression, and the check that it is within ``n`` entries unless its
    range proves it."""
    if within(idx.rng, 0, n - 1):
        return idx.as_int(), None
    iv = st.materialize(idx).expr
    return iv, f"if not 0 <= {iv} < {n}: {st.trap(TrapCode.INDEX, offset, refund)}"


def load_array(st: UnitState, d: isa.Decoded, refund: int) -> None:
    a = d.operands[0]
    n = len(st.spec.memory.arrays[a])
    iv, check = _checked_index(st, st.stack.pop(), n, d.offset, refund)
    if check:
        st.emit(check)
    t = st.ctx.temp()
    st.emit(f"{t} = A{a}[{iv}]")
    st.stack.append(Value(t, st.spec.memory.array_ranges[a]))


def store_array(st: UnitState, d: isa.Decoded, refund: int) -> None:
    a = d.operands[0]
    e = st.stack.pop()
    idx = st.stack.pop()
    n = len(st.spec.memory.arrays[a])
    lo, hi = st.spec.memory.array_ranges[a]
    iv, index_check = _checked_index(st, idx, n, d.offset, refund)
    v = e.as_int()
    range_check = None
    if not within(e.rng, lo, hi):
        v = st.materialize(e).expr
        range_check = f"if not {lo} <= {v} <= {hi}: " \
            f"{st.trap(TrapCode.RANGE, d.offset, refund)}"
    for check in (index_check, range_check):
        if check:
            st.emit(check)
    st.emit(f"A{a}[{iv}] = {v}")


EMITTERS: dict[int, Emitter] = {
    isa.PUSH: push, isa.POP: pop, isa.DUP: dup, isa.ENV: env,
    isa.LOAD_L: load_local, isa.STORE_L: store_local,
    isa.LOAD_G: load_global, isa.STORE_G: store_global,
    isa.LOAD_A: load_array, isa.STORE_A: store_array,
}
