"""Constants, the operand stack, locals, globals and arrays: ``PUSH POP DUP ENV LOAD_L
STORE_L LOAD_G STORE_G LOAD_A STORE_A``.

Locals are Python locals (``l0``, ``l1``...), globals the list ``G`` and arrays ``A0``,
``A1``...; a store checks the declared range of its target, and an array access its index,
unless the value's range already proves it."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.faults import TrapCode
from onboard.vm.translator.ranges import outside, within
from onboard.vm.translator.state import Emitter, UnitState
from onboard.vm.translator.values import Value, is_literal


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
    rng = st.spec.memory.global_ranges[g]
    if st.loads_may_wait and not st.spec.inline:
        st.stack.append(Value(f"G[{g}]", rng, lazy=True, memory=frozenset({f"G{g}"})))
        return
    t = st.ctx.temp()
    st.emit(f"{t} = G[{g}]" if not st.spec.inline else f"{t} = 0")
    st.stack.append(Value(t, rng))


def store_global(st: UnitState, d: isa.Decoded, refund: int) -> None:
    g = d.operands[0]
    e = st.stack.pop()
    lo, hi = st.spec.memory.global_ranges[g]
    v = e.as_int()
    if not within(e.rng, lo, hi):
        v = st.materialize(e).expr
        st.emit(f"if {outside(v, e.rng, lo, hi)}: {st.trap(TrapCode.RANGE, d.offset, refund)}")
    st.flush_memory(f"G{g}")
    st.emit(f"G[{g}] = {v}")


def _checked_index(st: UnitState, idx: Value, n: int, offset: int, refund: int) -> tuple[
        str, str | None]:
    """The index expression, and the check that it is within ``n`` entries unless its
    range proves it."""
    if within(idx.rng, 0, n - 1):
        return idx.as_int(), None
    iv = st.materialize(idx).expr
    return iv, f"if {outside(iv, idx.rng, 0, n - 1)}: {st.trap(TrapCode.INDEX, offset, refund)}"


def _pure_index(idx: Value) -> bool:
    """An index that can be written into a load evaluated later: a literal, a local, a
    temporary or unchecked arithmetic of those (flushed when a local it reads changes)."""
    return not idx.is_bool and (idx.lazy or idx.expr.isidentifier() or is_literal(idx.expr))


def load_array(st: UnitState, d: isa.Decoded, refund: int) -> None:
    a = d.operands[0]
    n = len(st.spec.memory.arrays[a])
    idx = st.stack.pop()
    el = st.element
    if el is not None and idx.local == el[0] and a == el[1] and within(idx.rng, 0, n - 1):
        # the loop iterates this array (which nothing in it stores), the counter in range
        st.stack.append(Value(el[2], st.spec.memory.array_ranges[a]))
        return
    iv, check = _checked_index(st, idx, n, d.offset, refund)
    rng = st.spec.memory.array_ranges[a]
    if check:
        st.emit(check)
    elif st.loads_may_wait and _pure_index(idx):
        st.stack.append(Value(f"A{a}[{iv}]", rng, reads=idx.slots(), lazy=True,
                              memory=idx.memory | {f"A{a}"}))
        return
    t = st.ctx.temp()
    st.emit(f"{t} = A{a}[{iv}]")
    st.stack.append(Value(t, rng))


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
        range_check = f"if {outside(v, e.rng, lo, hi)}: " \
            f"{st.trap(TrapCode.RANGE, d.offset, refund)}"
    for check in (index_check, range_check):
        if check:
            st.emit(check)
    st.flush_memory(f"A{a}")
    st.emit(f"A{a}[{iv}] = {v}")


EMITTERS: dict[int, Emitter] = {
    isa.PUSH: push, isa.POP: pop, isa.DUP: dup, isa.ENV: env,
    isa.LOAD_L: load_local, isa.STORE_L: store_local,
    isa.LOAD_G: load_global, isa.STORE_G: store_global,
    isa.LOAD_A: load_array, isa.STORE_A: store_array,
}
