"""What the code of one unit costs, as far as it is known before it runs, and which calls
are translated in place (inlined) rather than called.

These are the static facts metering is built on: the cycles of each instruction (a call
inlined here costs its callee's instructions too), the cost of a loop iteration when it is
fixed or bounded, and which instructions meter themselves (a call that may suspend, a
native whose cost depends on its arguments)."""

from __future__ import annotations

from onboard.vm import isa
from onboard.vm.binding import Bound
from onboard.vm.translator.context import UnitSpec
from onboard.vm.translator.structure import Block, Loop

#: The instructions a function may use to be inlined at its calls: it only reads.
INLINE_OPS = frozenset({isa.PUSH, isa.POP, isa.DUP, isa.LOAD_L, isa.STORE_L, isa.LOAD_G,
                        isa.LOAD_A, isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.MOD, isa.NEG,
                        isa.ABS, isa.MIN, isa.MAX, isa.EQ, isa.NE, isa.LT, isa.LE,
                        isa.GT, isa.GE, isa.NOT, isa.RANGE, isa.ENV, isa.RETV})
#: The longest function inlined at its calls, in instructions.
INLINE_MAX = 48
_BRANCHES = (isa.JMP, isa.JZ, isa.JNZ, isa.RET, isa.RETV, isa.FORPREP, isa.FORLOOP)


def inlinable(bound: Bound, op: int) -> bool:
    """A VMlet instruction whose body is straight-line code of fixed cost: inlined."""
    return bound.ext[op - isa.EXT_BASE].fixed_cost is not None


class UnitCosts:
    """The static costs of one unit's instructions ``ins`` and its inlining decisions."""

    def __init__(self, spec: UnitSpec, ins: list[isa.Decoded]) -> None:
        self.spec = spec
        self.b = spec.bound
        self.ins = ins
        self._inline_calls: dict[int, list[isa.Decoded] | None] = {}
        self._callee_worst: dict[int, int | None] = {}

    # ------------------------------------------------------------------ inlining

    def inline_callee(self, callee: int) -> list[isa.Decoded] | None:
        """The body of a function worth inlining at its calls: short, straight-line, pure
        (reads only), returning a value. None if it must be called (always in a VMlet
        instruction's body translated out of line)."""
        if self.spec.inline:
            return None
        if callee not in self._inline_calls:
            cu = self.b.image.functions[callee]
            body = list(isa.decode(cu.code))
            ok = cu.returns and len(body) <= INLINE_MAX and body[-1].opcode == isa.RETV and \
                all(x.opcode in INLINE_OPS for x in body) and \
                sum(x.opcode == isa.RETV for x in body) == 1
            self._inline_calls[callee] = body if ok else None
        return self._inline_calls[callee]

    def is_inlined_call(self, d: isa.Decoded) -> bool:
        """A ``CALL`` translated in place."""
        return d.opcode == isa.CALL and self.inline_callee(d.operands[0]) is not None

    def is_metered_call(self, d: isa.Decoded) -> bool:
        """A call that meters its own dispatch (the callee may suspend): a ``CALL`` that is
        not inlined, a VMlet instruction that is not."""
        return (d.opcode == isa.CALL and self.inline_callee(d.operands[0]) is None) or \
            (d.opcode >= isa.EXT_BASE and not inlinable(self.b, d.opcode))

    def is_dynamic_native(self, d: isa.Decoded) -> bool:
        """A native call whose cost depends on its arguments: it meters alone."""
        return d.opcode == isa.CALLN and self.b.natives[d.operands[0]].constant_cost is None

    def meters_alone(self, d: isa.Decoded) -> bool:
        """An instruction that is a basic block of its own."""
        return self.is_dynamic_native(d) or self.is_metered_call(d)

    # ------------------------------------------------------------------ cycles

    def cost(self, i: int) -> int:
        """The cycles instruction ``i`` is charged up front (a call inlined here: with its
        callee's instructions; a dynamic native: 0, it meters itself)."""
        d = self.ins[i]
        op = d.opcode
        if op in (isa.RET, isa.RETV) and self.spec.inline:
            return 0
        if op == isa.CALLN:
            c = self.b.natives[d.operands[0]].constant_cost
            return c if c is not None else 0  # dynamic natives meter themselves
        if op >= isa.EXT_BASE:
            return self.b.ext_cost[op - isa.EXT_BASE]
        if op == isa.CALL:
            body = self.inline_callee(d.operands[0])
            call = self.b.call_cost[d.operands[0]]
            return call + sum(self.body_costs(body)) if body is not None else call
        return self.b.op_cost[op]

    def block_cost(self, block: Block) -> int:
        """The cycles of every instruction of ``block``."""
        return sum(self.cost(i) for i in range(block.start, block.end))

    def body_costs(self, body: list[isa.Decoded]) -> list[int]:
        """Cycles of each instruction of an inlined callee (its return is not free)."""
        return [self.b.natives[x.operands[0]].constant_cost or 0 if x.opcode == isa.CALLN
                else self.b.op_cost[x.opcode] for x in body]

    def callee_worst(self, callee: int) -> int | None:
        """The most cycles a run of function ``callee`` charges (every instruction once: it
        has no loop), or None if that is not known statically."""
        if callee in self._callee_worst:
            return self._callee_worst[callee]
        self._callee_worst[callee] = None  # no recursion: the verifier refused it
        total: int | None = 0
        for x in isa.decode(self.b.image.functions[callee].code):
            c = self._worst_in_callee(x)
            total = None if c is None or total is None else total + c
            if total is None:
                break
        self._callee_worst[callee] = total
        return total

    def _worst_in_callee(self, x: isa.Decoded) -> int | None:
        """The most cycles instruction ``x`` of a called function charges, if known."""
        op = x.opcode
        if op in (isa.FORPREP, isa.FORLOOP):
            return None
        if op == isa.CALLN:
            return self.b.natives[x.operands[0]].constant_cost
        if op == isa.CALL:
            c = self.callee_worst(x.operands[0])
            return None if c is None else self.b.call_cost[x.operands[0]] + c
        if op >= isa.EXT_BASE:
            fixed = self.b.ext[op - isa.EXT_BASE].fixed_cost
            return None if fixed is None else self.b.ext_cost[op - isa.EXT_BASE]
        return self.b.op_cost[op]

    def fixed_body_cost(self, loop: Loop) -> int | None:
        """Cycles of one iteration (FORLOOP included) if the body is one straight-line block
        of fixed cost that cannot suspend on its own; None otherwise."""
        if len(loop.body) != 1 or not isinstance(loop.body[0], Block):
            return None
        block = loop.body[0]
        total = self.b.op_cost[isa.FORLOOP]
        for i in range(block.start, block.end):
            d = self.ins[i]
            if d.opcode in _BRANCHES or self.meters_alone(d):
                return None
            total += self.cost(i)
        return total

    def worst_iteration_cost(self, loop: Loop) -> int | None:
        """An upper bound of one iteration's cycles (every block of the body once: jumps go
        forward) if no instruction in it can suspend on its own; None otherwise."""
        total = self.b.op_cost[isa.FORLOOP]
        for item in loop.body:
            if not isinstance(item, Block):
                return None
            for i in range(item.start, item.end):
                d = self.ins[i]
                if d.opcode == isa.CALL and self.inline_callee(d.operands[0]) is None:
                    # called, metered by itself: it cannot suspend when the budget covers
                    # its most expensive run
                    callee = self.callee_worst(d.operands[0])
                    if callee is None:
                        return None
                    total += self.cost(i) + callee
                elif self.meters_alone(d):
                    return None
                else:
                    total += self.cost(i)
        return total
