"""The state of one unit's translation, which every part of the translator reads and writes
(as a single-pass compiler's parser state): the source written so far, the symbolic
operand stack, what the range analysis knows of the locals, and how the code being written
is metered and where its traps are reported."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from onboard.vm import isa
from onboard.vm.binding import Bound
from onboard.vm.faults import TrapCode
from onboard.vm.translator.context import ImageContext, UnitSpec
from onboard.vm.translator.costs import UnitCosts
from onboard.vm.translator.ranges import FULL, Range, hull
from onboard.vm.translator.structure import ControlFlow
from onboard.vm.translator.values import Value
from onboard.vm.translator.writer import SourceWriter

#: Writes the Python of one instruction (``refund``: cycles charged ahead for the
#: instructions after it, which a trap gives back); returns the condition of a branch.
Emitter = Callable[["UnitState", isa.Decoded, int], "str | None"]


class UnitState:
    """One unit's translation in progress (one pass of the range analysis)."""

    def __init__(self, ctx: ImageContext, spec: UnitSpec, local_ranges: dict[int, Range],
                 emitter_for: Callable[[int], Emitter]) -> None:
        self.ctx = ctx
        self.spec = spec
        self.emitter_for = emitter_for
        # whose code is being written: a VMlet's inside its instruction's inlined body
        self.bound: Bound = spec.bound
        self.native_names = spec.native_names
        self.metered = ctx.metered  # off inside a loop charged as a whole
        self.flow = ControlFlow(list(isa.decode(spec.bound.image.functions[spec.unit].code)))
        self.costs = UnitCosts(spec, self.flow.ins)
        self.out = SourceWriter()
        self.stack: list[Value] = []
        self.local_ranges = local_ranges
        self.stored: dict[int, Range] = {}  # ranges of values stored per slot, this pass
        self.known: dict[int, Range] = {}  # ranges stored earlier in the current block
        self.refund_extra = ""  # in a loop charged as a whole: what later iterations cost
        self.unchecked = False  # the budget is known to cover this code: charge, never check
        self.trap_unit: int | None = None  # inside an inlined callee: traps are its own
        self.precharged: frozenset[int] = frozenset()  # blocks charged per batch, not each
        self.chain_depth = 0  # chains of blocks being written, one inside the other
        # in a loop written as iteration over an array: (counter slot, array, name of the
        # element), the name standing for every load of that array at the counter
        self.element: tuple[int, int, str] | None = None

    # ------------------------------------------------------------------ writing

    def emit(self, line: str) -> None:
        """Write one line of the unit's source."""
        self.out.emit(line)

    def indented(self) -> AbstractContextManager[None]:
        """Lines written inside are the body of the last ``...:`` line."""
        return self.out.indented()

    def emit_instr(self, d: isa.Decoded, refund: int) -> str | None:
        """Write instruction ``d``; the condition of a final branch, if it is one."""
        return self.emitter_for(d.opcode)(self, d, refund)

    def trap(self, code: TrapCode, offset: int, refund: int) -> str:
        """A trap at ``offset``; ``refund``: cycles charged ahead for later instructions."""
        r = f" + {refund}" if refund else ""
        unit = self.spec.unit if self.trap_unit is None else self.trap_unit
        return f"raise Trap(T_{code.name}, {unit}, {offset}, budget{r}{self.refund_extra})"

    def charge_waiting(self, cost: str) -> None:
        """Charge ``cost`` cycles (an expression), suspending until the budget covers it."""
        self.emit(f"while budget < {cost}:")
        self.emit("    budget = yield budget")
        self.emit(f"budget -= {cost}")

    def meter_single(self, cost: int) -> None:
        """Charge one instruction's ``cost`` (checked, unless the budget is known to
        cover it)."""
        if self.metered and cost and self.unchecked:
            self.emit(f"budget -= {cost}")
        elif self.metered and cost:
            self.charge_waiting(str(cost))

    # ------------------------------------------------------------------ the operand stack

    def pop_args(self, n: int) -> list[Value]:
        """The top ``n`` entries, removed from the stack (the first argument first)."""
        s = self.stack
        args = s[len(s) - n:] if n else []
        del s[len(s) - n:]
        return args

    def materialize(self, e: Value) -> Value:
        """``e`` as a name, evaluated now (into a temporary unless it already is one)."""
        if e.expr.isidentifier() and not e.is_bool and e.local is None:
            return e
        t = self.ctx.temp()
        self.emit(f"{t} = {e.as_int()}")
        return Value(t, e.rng)

    def materialize_stack(self, keep_lazy: bool = False) -> None:
        """Evaluate every entry now (before a call, which may change what they read), or
        (``keep_lazy``) every one but unchecked arithmetic and loads."""
        for k in range(len(self.stack)):
            if not (keep_lazy and self.stack[k].lazy):
                self.stack[k] = self.materialize(self.stack[k])

    def flush_local(self, slot: int) -> None:
        """Stack entries that read ``slot`` are evaluated before it changes."""
        for i, e in enumerate(self.stack):
            if e.local == slot or slot in e.reads:
                self.stack[i] = self.materialize(e)

    def flush_memory(self, name: str) -> None:
        """Stack entries that read ``name`` (``A0``, ``G2``) are evaluated before a store
        into it."""
        for i, e in enumerate(self.stack):
            if name in e.memory:
                self.stack[i] = self.materialize(e)

    @property
    def loads_may_wait(self) -> bool:
        """Whether a load from data memory may be evaluated where it is used rather than
        where it is: nothing can suspend the code being written (a loop charged as a whole
        or per batch, or no metering at all), so nothing but its own stores (which flush
        it) or a call (which evaluates the whole stack) can change memory before the use."""
        return self.unchecked or not self.metered

    def spill(self) -> None:
        """Put the stack in the canonical names s0, s1... (block boundaries)."""
        for i, e in enumerate(self.stack):
            name = f"s{i}"
            if e.expr != name or e.is_bool:
                self.emit(f"{name} = {e.as_int()}")
            self.stack[i] = Value(name, FULL)

    def reset_stack(self, depth: int) -> None:
        """The stack at a join: ``depth`` entries in their canonical names."""
        self.stack = [Value(f"s{i}", FULL) for i in range(depth)]

    # ------------------------------------------------------------------ local ranges

    def lrange(self, slot: int) -> Range:
        """What local ``slot`` may hold (from the previous pass of the analysis)."""
        return self.local_ranges.get(slot, FULL)

    def note_store(self, slot: int, rng: Range) -> None:
        """A value of range ``rng`` is stored in ``slot`` (for the next pass)."""
        old = self.stored.get(slot)
        self.stored[slot] = rng if old is None else hull(old, rng)
