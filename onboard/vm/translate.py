"""The execution engine: verified bytecode translated into Python generator functions.

Each code unit becomes one generator function, compiled once when its image is loaded.
The operand stack disappears (stack slots become Python locals and expressions), counted
loops become Python ``for`` loops, forward jumps become ``if``/``else`` where the code is
structured that way (and a guarded chain of blocks where it is not), and the bytecode of a
straight-line VMlet instruction is inlined at each use, so that a VMlet-defined instruction
costs what a built-in one would: one level of interpretation.

Metering is exact and cheap. Every basic block knows its static cost; when the budget
covers the whole block it is charged at once (fast path), otherwise the block runs
instruction by instruction and yields the remaining budget exactly before the first
instruction that does not fit (slow path): the same behaviour as ``onboard.vm.reference``,
cycle for cycle. A trap in the fast path gives back the cost of the block's instructions
after the trapping one, so charges stay exact.

Checks that cannot fail are left out: a flow-insensitive range analysis (declared ranges of
globals, arrays, native results and environment values, constants, and the ranges of what is
stored in each local, iterated to a fixpoint) proves most overflow, bounds and range checks
unnecessary. It relies only on invariants the VVM itself enforces.

Verified code never makes loading fail: a unit the translator cannot translate (it raises,
or emits code Python refuses: a translator bug) runs on the reference interpreter instead,
as units with dead code do; ``Translated.fallbacks`` and the VVM's status name such units.
``tests/onboard/test_engine_fuzz.py`` (and ``benchmarks/engine_fuzz.py`` at length) runs
random verifier-accepted bytecode on both engines and counts every fallback as a failure.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from onboard.mission import formula_floordiv
from onboard.vm import isa, machine
from onboard.vm.binding import Bound, NativeBinding
from onboard.vm.faults import Trap, TrapCode
from onboard.vm.isa import INT_MAX, INT_MIN
from onboard.vm.reference import Memory, run

Range = tuple[int, int]
FULL: Range = (INT_MIN, INT_MAX)
BOOL: Range = (0, 1)


@dataclass
class _Entry:
    """A value on the symbolic operand stack."""

    expr: str  # Python expression: a literal, a local or temp name, or a comparison
    rng: Range
    is_bool: bool = False  # evaluates to a Python bool (convert before storing)
    local: int | None = None  # a direct read of this local slot (flush before it changes)
    reads: frozenset[int] = frozenset()  # local slots a lazy expression reads (flush too)

    def slots(self) -> frozenset[int]:
        """Every local slot whose current value this expression reads."""
        return self.reads if self.local is None else self.reads | {self.local}


@dataclass
class _Block:
    start: int  # index into the instruction list
    end: int  # exclusive

    @property
    def kind(self) -> str:
        return "block"


@dataclass
class _Loop:
    prep: int  # index of FORPREP (the last instruction of the block before)
    latch: int  # index of FORLOOP
    slot: int
    body: list[_Block | _Loop] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "loop"


def _hull(a: Range, b: Range) -> Range:
    return (min(a[0], b[0]), max(a[1], b[1]))


def _fits(r: Range) -> bool:
    return INT_MIN <= r[0] and r[1] <= INT_MAX


_CMP = {isa.EQ: "==", isa.NE: "!=", isa.LT: "<", isa.LE: "<=", isa.GT: ">", isa.GE: ">="}
_ARITH = {isa.ADD: "+", isa.SUB: "-", isa.MUL: "*"}


class _Context:
    """Names shared by all units of one translated image (the exec namespace)."""

    def __init__(self, bound: Bound, memory: Memory, metered: bool) -> None:
        self.bound = bound
        self.memory = memory
        self.metered = metered
        self.namespace: dict[str, Any] = {
            "Trap": Trap, "_tdiv": machine.tdiv, "_tmod": machine.tmod, "_fdiv": formula_floordiv,
            "G": memory.globals, "min": min, "max": max, "abs": abs,
        }
        for code in TrapCode:
            self.namespace[f"T_{code.name}"] = code
        for i, arr in enumerate(memory.arrays):
            self.namespace[f"A{i}"] = arr
        self.sources: list[str] = []
        # (id of the VMlet's Bound, unit of an instruction body) -> its out-of-line function
        self.out_of_line: dict[tuple[int, int], str] = {}
        self._vmlet_names: dict[int, list[str]] = {}
        self._temp = 0

    def bind_natives(self, prefix: str, natives: Sequence[NativeBinding]) -> list[str]:
        names = []
        for i, n in enumerate(natives):
            name = f"{prefix}n{i}"
            self.namespace[name] = n.fn
            names.append(name)
        return names

    def temp(self) -> str:
        self._temp += 1
        return f"t{self._temp}"

    def bind_vmlet_natives(self, vm: Bound) -> list[str]:
        """Names of a VMlet's natives in the namespace (bound once per VMlet)."""
        if id(vm) not in self._vmlet_names:
            self._vmlet_names[id(vm)] = self.bind_natives(f"x{len(self._vmlet_names)}_",
                                                          vm.natives)
        return self._vmlet_names[id(vm)]


@dataclass
class _UnitSpec:
    """Where a code unit comes from and how its natives, ext opcodes and traps are named."""

    bound: Bound
    unit: int
    fn_name: str
    native_names: list[str]
    inline: bool  # a VMlet instruction body translated out of line: returns are free
    memory: Memory
    callee_names: Callable[[int], str]  # CALL operand -> function name


class _UnitTranslator:
    """Translates one code unit into the source of one (generator) function."""

    def __init__(self, ctx: _Context, spec: _UnitSpec, local_ranges: dict[int, Range]) -> None:
        self.ctx = ctx
        self.spec = spec
        self.b = spec.bound
        self.cu = self.b.image.functions[spec.unit]
        self.ins = list(isa.decode(self.cu.code))
        self.index_of = {d.offset: i for i, d in enumerate(self.ins)}
        self.local_ranges = local_ranges
        self.stored: dict[int, Range] = {}  # ranges of values stored per slot, this pass
        self.known: dict[int, Range] = {}  # ranges stored earlier in the current block
        self.refund_extra = ""  # in a loop charged as a whole: what later iterations cost
        self.unchecked = False  # the budget is known to cover this code: charge, never check
        self.trap_unit: int | None = None  # inside an inlined callee: traps are its own
        self._inline_calls: dict[int, list[isa.Decoded] | None] = {}
        self._callee_worst: dict[int, int | None] = {}
        self.precharged: frozenset[int] = frozenset()  # blocks charged per batch, not each
        self.lines: list[str] = []
        self.stack: list[_Entry] = []
        self.indent = 1
        self.region_depth = 0
        self.inline_count = 0

    # ------------------------------------------------------------------ emission helpers

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    def trap(self, code: TrapCode, offset: int, refund: int) -> str:
        """A trap at ``offset``; ``refund``: cycles charged ahead for later instructions."""
        r = f" + {refund}" if refund else ""
        unit = self.spec.unit if self.trap_unit is None else self.trap_unit
        return f"raise Trap(T_{code.name}, {unit}, {offset}, budget{r}{self.refund_extra})"

    def lrange(self, slot: int) -> Range:
        return self.local_ranges.get(slot, FULL)

    def note_store(self, slot: int, rng: Range) -> None:
        old = self.stored.get(slot)
        self.stored[slot] = rng if old is None else _hull(old, rng)

    def value(self, e: _Entry) -> str:
        """An int-valued expression for ``e`` (bools become 0/1)."""
        return f"(1 if {e.expr} else 0)" if e.is_bool else e.expr

    def materialize(self, e: _Entry) -> _Entry:
        if e.expr.isidentifier() and not e.is_bool and e.local is None:
            return e
        t = self.ctx.temp()
        self.emit(f"{t} = {self.value(e)}")
        return _Entry(t, e.rng)

    def flush_local(self, slot: int) -> None:
        """Stack entries that read ``slot`` are evaluated before it changes."""
        for i, e in enumerate(self.stack):
            if e.local == slot or slot in e.reads:
                self.stack[i] = self.materialize(e)

    def spill(self) -> None:
        """Put the stack in the canonical names s0, s1... (block boundaries)."""
        for i, e in enumerate(self.stack):
            name = f"s{i}"
            if e.expr != name or e.is_bool:
                self.emit(f"{name} = {self.value(e)}")
            self.stack[i] = _Entry(name, FULL)

    def reset_stack(self, depth: int) -> None:
        self.stack = [_Entry(f"s{i}", FULL) for i in range(depth)]

    # ------------------------------------------------------------------ structure

    def block_starts(self) -> set[int]:
        """Instruction indices where a basic block starts."""
        starts = {0}
        for i, d in enumerate(self.ins):
            op = d.opcode
            t = d.target()
            if t is not None:
                starts.add(self.index_of[t])
            if op in (isa.JMP, isa.JZ, isa.JNZ, isa.RET, isa.RETV, isa.FORPREP, isa.FORLOOP):
                if i + 1 < len(self.ins):
                    starts.add(i + 1)
            if op == isa.FORLOOP:
                starts.add(i)
            if op == isa.CALLN and self.b.natives[d.operands[0]].constant_cost is None:
                starts.add(i)  # a native whose cost depends on its arguments meters alone
                if i + 1 < len(self.ins):
                    starts.add(i + 1)
            if (op == isa.CALL and self.inline_callee(d.operands[0]) is None) or \
                    (op >= isa.EXT_BASE and not self.inlinable(op)):
                starts.add(i)  # calls meter their own dispatch (the callee may suspend)
                if i + 1 < len(self.ins):
                    starts.add(i + 1)
        return starts

    def items(self, lo: int, hi: int, starts: set[int]) -> list[_Block | _Loop]:
        """Blocks and loops of the instruction range [lo, hi)."""
        out: list[_Block | _Loop] = []
        i = lo
        current = lo
        while i < hi:
            d = self.ins[i]
            if i != current and i in starts:
                out.append(_Block(current, i))
                current = i
            if d.opcode == isa.FORPREP:
                out.append(_Block(current, i + 1))
                exit_ = d.target()
                assert exit_ is not None
                latch = self.index_of[exit_ - self.ins[self.index_of[exit_] - 1].size]
                loop = _Loop(i, latch, d.operands[0])
                loop.body = self.items(i + 1, latch, starts)
                out.append(loop)
                i = latch + 1
                current = i
                continue
            i += 1
        if current < hi:
            out.append(_Block(current, hi))
        return out

    # ------------------------------------------------------------------ translation

    def translate(self) -> str:
        cu = self.cu
        params = ", ".join(f"l{i}" for i in range(cu.n_params))
        head = f"def {self.spec.fn_name}(budget{', ' if params else ''}{params}):"
        for slot in range(cu.n_params, cu.n_locals):
            self.emit(f"l{slot} = 0")
        starts = self.block_starts()
        self.region(self.items(0, len(self.ins), starts), len(self.ins))
        if self.ctx.metered:
            self.emit("yield budget  # never reached: makes this a generator")
        return "\n".join([head, *self.lines])

    def region(self, items: list[_Block | _Loop], end: int) -> None:
        """Emit a sequence of items; forward jumps target items of the same sequence or
        ``end`` (an instruction index: the region's exit)."""
        starts = {it.start: k for k, it in enumerate(items) if isinstance(it, _Block)}
        tree = self.structure(items, 0, len(items), end, starts)
        if tree is not None:
            self.emit_tree(tree, items)
        else:
            self.emit_chain(items, end, starts)

    def jump_target(self, block: _Block) -> int | None:
        """Instruction index a block's final jump goes to, if it ends with one."""
        d = self.ins[block.end - 1]
        if d.opcode in (isa.JMP, isa.JZ, isa.JNZ):
            t = d.target()
            assert t is not None
            return self.index_of[t]
        return None

    def structure(self, items: list[_Block | _Loop], lo: int, hi: int, exit_at: int,
                  starts: dict[int, int]) -> list[tuple[Any, ...]] | None:
        """A nested if/else tree for items[lo:hi] whose jumps all stay inside or go to
        ``exit_at``; None if the jumps are not nested that way."""
        def index(target: int) -> int | None:
            if target == exit_at:
                return hi
            return starts.get(target)

        out: list[tuple[Any, ...]] = []
        k = lo
        while k < hi:
            it = items[k]
            if isinstance(it, _Loop):
                out.append(("loop", k))
                k += 1
                continue
            t = self.jump_target(it)
            op = self.ins[it.end - 1].opcode
            if t is None:
                out.append(("block", k))
                k += 1
                continue
            tk = index(t)
            if tk is None or tk <= k or tk > hi:
                return None
            if op == isa.JMP:
                if tk != hi:
                    return None
                out.append(("jump", k))  # to the exit of this sequence: the rest is skipped
                k += 1
                if k != hi:
                    return None  # code after an unconditional jump out: not structured
                continue
            # conditional: then = items[k+1:tk], optionally else = items[tk:e]
            then_end = tk
            last = items[tk - 1] if tk - 1 > k else None
            if isinstance(last, _Block) and self.ins[last.end - 1].opcode == isa.JMP:
                e = self.jump_target(last)
                assert e is not None
                ek = index(e)
                if ek is not None and tk < ek <= hi:
                    then_tree = self.structure_sub(items, k + 1, tk, e, starts, True)
                    else_tree = self.structure_sub(items, tk, ek, e, starts, False)
                    if then_tree is not None and else_tree is not None:
                        out.append(("if", k, then_tree, else_tree))
                        k = ek
                        continue
            then_tree = self.structure_sub(items, k + 1, then_end, t, starts, False)
            if then_tree is None:
                return None
            out.append(("if", k, then_tree, None))
            k = then_end
        return out

    def structure_sub(self, items: list[_Block | _Loop], lo: int, hi: int, exit_at: int,
                      starts: dict[int, int],
                      drop_final_jump: bool) -> list[tuple[Any, ...]] | None:
        # entries into (lo, hi) from before lo would break nesting
        for j in range(0, lo):
            it = items[j]
            if isinstance(it, _Block):
                t = self.jump_target(it)
                if t is not None:
                    tk = starts.get(t)
                    if tk is not None and lo < tk < hi:
                        return None
        if lo == hi:
            return []
        if drop_final_jump:
            tree = self.structure(items, lo, hi, exit_at, starts)
            # the final JMP to exit_at is represented as ("jump", k): harmless at the end
            return tree
        return self.structure(items, lo, hi, exit_at, starts)

    def emit_tree(self, tree: list[tuple[Any, ...]], items: list[_Block | _Loop]) -> None:
        for node in tree:
            kind = node[0]
            if kind == "loop":
                self.emit_loop(items[node[1]])  # type: ignore[arg-type]
            elif kind in ("block", "jump"):
                self.emit_block(items[node[1]])  # type: ignore[arg-type]
                self.spill()
            else:
                _, k, then_tree, else_tree = node
                cond = self.emit_block(items[k])  # type: ignore[arg-type]
                assert cond is not None
                self.spill()
                depth = len(self.stack)
                self.emit(f"if {cond}:")
                self.indent += 1
                self.emit_tree(then_tree, items) if then_tree else self.emit("pass")
                self.indent -= 1
                # Where the branches join, the stack holds what the jump carried; with an
                # else, what the then branch's final jump carries. (A then branch that
                # ends in a return leaves a stack that says nothing about the join.)
                join = depth
                if else_tree:
                    join = len(self.stack)
                    self.reset_stack(depth)
                    self.emit("else:")
                    self.indent += 1
                    self.emit_tree(else_tree, items)
                    self.indent -= 1
                self.reset_stack(join)

    def emit_chain(self, items: list[_Block | _Loop], end: int, starts: dict[int, int]) -> None:
        """General forward jumps: run item k when the chain variable says k."""
        var = f"x{self.region_depth}"
        self.region_depth += 1
        self.emit(f"{var} = 0")
        depth_at: dict[int, int] = {0: len(self.stack)}
        for k, it in enumerate(items):
            self.emit(f"if {var} == {k}:")
            self.indent += 1
            self.reset_stack(depth_at.get(k, 0))
            if isinstance(it, _Loop):
                self.emit_loop(it)
                self.emit(f"{var} = {k + 1}")
                depth_at[k + 1] = 0
            else:
                cond = self.emit_block(it)
                op = self.ins[it.end - 1].opcode
                t = self.jump_target(it)
                tk = len(items) if t == end else (starts.get(t) if t is not None else None)
                self.spill()
                depth = len(self.stack)
                if op == isa.JMP:
                    self.emit(f"{var} = {tk}")
                    depth_at[tk] = depth  # type: ignore[index]
                elif cond is not None:
                    self.emit(f"{var} = {k + 1} if {cond} else {tk}")
                    depth_at[k + 1] = depth
                    depth_at[tk] = depth  # type: ignore[index]
                elif op not in (isa.RET, isa.RETV):
                    self.emit(f"{var} = {k + 1}")
                    depth_at[k + 1] = depth
            self.indent -= 1
        self.region_depth -= 1
        self.reset_stack(depth_at.get(len(items), 0))

    def emit_loop(self, loop: _Loop) -> None:
        s = loop.slot
        lim = s + 1
        # In the body the counter is below the limit (the verifier guarantees the body
        # writes neither), which removes most index and argument checks on it.
        # The block that ends with FORPREP set the counter and the limit: their ranges there
        # are sharper than the flow-insensitive ones (which include the initial zero).
        outer = self.local_ranges.get(s)
        start = self.known.get(s, self.lrange(s))
        limit = self.known.get(lim, self.lrange(lim))
        self.local_ranges[s] = (start[0], max(start[0], limit[1] - 1))
        self.emit(f"if l{s} < l{lim}:")
        self.indent += 1
        per_iteration = self.fixed_body_cost(loop)
        if per_iteration is not None and self.ctx.metered:
            # A straight-line body of fixed cost: when the budget covers every iteration
            # left, charge them all at once and run the body unmetered. A trap gives back
            # what the iterations after it (and the rest of its own) would have cost.
            forloop = self.b.op_cost[isa.FORLOOP]
            self.emit(f"c = (l{lim} - l{s}) * {per_iteration}")
            self.emit("if budget >= c:")
            self.indent += 1
            self.emit("budget -= c")
            self.emit(f"for l{s} in range(l{s}, l{lim}):")
            self.indent += 1
            self.reset_stack(0)
            self.ctx.metered = False
            self.refund_extra = f" + {forloop} + (l{lim} - 1 - l{s}) * {per_iteration}"
            try:
                self.region(loop.body, loop.latch)
            finally:
                self.ctx.metered = True
                self.refund_extra = ""
            self.indent -= 1
            self.emit(f"l{s} = l{lim}")
            self.indent -= 1
            self.emit("else:")
            self.indent += 1
        worst = None if per_iteration is not None else self.worst_iteration_cost(loop)
        if worst is not None and self.ctx.metered and not self.unchecked:
            self.emit_headroom_loop(loop, worst)
        else:
            self.emit(f"for l{s} in range(l{s}, l{lim}):")
            self.indent += 1
            self.reset_stack(0)
            if loop.body:
                self.region(loop.body, loop.latch)
            self.meter_single(self.b.op_cost[isa.FORLOOP])
            self.indent -= 1
            self.emit(f"l{s} = l{lim}")
        if per_iteration is not None and self.ctx.metered:
            self.indent -= 1
        self.indent -= 1
        if outer is None:
            del self.local_ranges[s]
        else:
            self.local_ranges[s] = outer

    def emit_headroom_loop(self, loop: _Loop, worst: int) -> None:
        """A loop whose iterations cannot suspend on their own: run as many iterations as
        the budget covers even on their most expensive path without checking the budget
        (charging exactly what runs), then one checked iteration, and again. What every
        iteration runs (its top-level blocks and FORLOOP) is charged once per batch when
        the body's structure allows; a trap gives back what the batch did not run."""
        s, lim = loop.slot, loop.slot + 1
        self.emit(f"while l{s} < l{lim}:")
        self.indent += 1
        self.emit(f"k{s} = budget // {worst}")
        self.emit(f"if k{s}:")
        self.indent += 1
        self.emit(f"e{s} = min(l{lim}, l{s} + k{s})")
        plan = self.hoisting(loop)
        if plan is not None:
            self.emit(f"budget -= (e{s} - l{s}) * {plan[1]}")
        self.emit(f"for l{s} in range(l{s}, e{s}):")
        self.indent += 1
        self.reset_stack(0)
        self.unchecked = True
        outer_extra = self.refund_extra
        try:
            if plan is None:
                self.region(loop.body, loop.latch)
                self.meter_single(self.b.op_cost[isa.FORLOOP])
            else:
                tree, base, rest = plan
                self.precharged = frozenset(loop.body[node[1]].start for node in tree)
                for node, after in zip(tree, rest, strict=True):
                    self.refund_extra = f" + {after} + (e{s} - 1 - l{s}) * {base}" \
                        + outer_extra
                    self.emit_tree([node], loop.body)
        finally:
            self.unchecked = False
            self.precharged = frozenset()
            self.refund_extra = outer_extra
        self.indent -= 1
        self.emit(f"l{s} = e{s}")
        self.indent -= 1
        self.emit("else:")
        self.indent += 1
        self.reset_stack(0)
        self.region(loop.body, loop.latch)
        self.meter_single(self.b.op_cost[isa.FORLOOP])
        self.emit(f"l{s} += 1")
        self.indent -= 1
        self.indent -= 1

    def hoisting(self, loop: _Loop) -> tuple[list[tuple[Any, ...]], int, list[int]] | None:
        """For a headroom loop: the if/else tree of its body, the cycles every iteration
        spends (top-level blocks and FORLOOP), and for each top-level node the part of those
        that follows it. None when the body may return or is not structured."""
        body = loop.body
        blocks = [it for it in body if isinstance(it, _Block)]
        if len(blocks) != len(body) or any(self.ins[i].opcode in (isa.RET, isa.RETV)
                                           for it in blocks for i in range(it.start, it.end)):
            return None
        starts = {it.start: k for k, it in enumerate(blocks)}
        tree = self.structure(body, 0, len(body), loop.latch, starts)
        if tree is None:
            return None
        costs = []
        for node in tree:
            block = blocks[node[1]]
            costs.append(sum(self.cost(i) for i in range(block.start, block.end)))
        forloop = self.b.op_cost[isa.FORLOOP]
        rest = [sum(costs[j + 1:]) + forloop for j in range(len(costs))]
        return tree, sum(costs) + forloop, rest

    def worst_iteration_cost(self, loop: _Loop) -> int | None:
        """An upper bound of one iteration's cycles (every block of the body once: jumps go
        forward) if no instruction in it can suspend on its own; None otherwise."""
        total = self.b.op_cost[isa.FORLOOP]
        for item in loop.body:
            if not isinstance(item, _Block):
                return None
            for i in range(item.start, item.end):
                d = self.ins[i]
                op = d.opcode
                if op == isa.CALL and self.inline_callee(d.operands[0]) is None:
                    # called, metered by itself: it cannot suspend when the budget covers
                    # its most expensive run
                    callee = self.callee_worst(d.operands[0])
                    if callee is None:
                        return None
                    total += self.cost(i) + callee
                    continue
                if (op >= isa.EXT_BASE and not self.inlinable(op)) or \
                        (op == isa.CALLN and
                         self.b.natives[d.operands[0]].constant_cost is None):
                    return None
                total += self.cost(i)
        return total

    def callee_worst(self, callee: int) -> int | None:
        """The most cycles a run of function ``callee`` charges (every instruction once: it
        has no loop), or None if that is not known statically."""
        if callee in self._callee_worst:
            return self._callee_worst[callee]
        self._callee_worst[callee] = None  # no recursion: the verifier refused it
        total: int | None = 0
        for x in isa.decode(self.b.image.functions[callee].code):
            op = x.opcode
            if op in (isa.FORPREP, isa.FORLOOP):
                total = None
            elif op == isa.CALLN:
                c = self.b.natives[x.operands[0]].constant_cost
                total = None if c is None else total + c  # type: ignore[operator]
            elif op == isa.CALL:
                c = self.callee_worst(x.operands[0])
                total = None if c is None else total + self.b.call_cost[x.operands[0]] + c  # type: ignore[operator]
            elif op >= isa.EXT_BASE:
                fixed = self.b.ext[op - isa.EXT_BASE].fixed_cost
                total = None if fixed is None else total + self.b.ext_cost[op - isa.EXT_BASE]  # type: ignore[operator]
            else:
                total += self.b.op_cost[op]  # type: ignore[operator]
            if total is None:
                break
        self._callee_worst[callee] = total
        return total

    def fixed_body_cost(self, loop: _Loop) -> int | None:
        """Cycles of one iteration (FORLOOP included) if the body is one straight-line block
        of fixed cost that cannot suspend on its own; None otherwise."""
        if len(loop.body) != 1 or not isinstance(loop.body[0], _Block):
            return None
        block = loop.body[0]
        total = self.b.op_cost[isa.FORLOOP]
        for i in range(block.start, block.end):
            d = self.ins[i]
            op = d.opcode
            if op in (isa.JMP, isa.JZ, isa.JNZ, isa.RET, isa.RETV, isa.FORPREP,
                      isa.FORLOOP) or (op >= isa.EXT_BASE and not self.inlinable(op)) or \
                    (op == isa.CALL and self.inline_callee(d.operands[0]) is None) or \
                    (op == isa.CALLN and self.b.natives[d.operands[0]].constant_cost is None):
                return None
            total += self.cost(i)
        return total

    # ------------------------------------------------------------------ blocks

    def meter_single(self, cost: int) -> None:
        if self.ctx.metered and cost and self.unchecked:
            self.emit(f"budget -= {cost}")
        elif self.ctx.metered and cost:
            self.emit(f"while budget < {cost}:")
            self.emit("    budget = yield budget")
            self.emit(f"budget -= {cost}")

    def emit_block(self, block: _Block) -> str | None:
        """Emit one basic block (metered); returns the branch condition of a final
        JZ/JNZ (a Python expression that is true when the fall-through path runs)."""
        self.known = {}
        instrs = range(block.start, block.end)
        costs = [self.cost(i) for i in instrs]
        first = self.ins[block.start]
        if first.opcode == isa.CALLN and self.b.natives[first.operands[0]].constant_cost is None:
            self.emit_dynamic_native(block.start)
            return None
        precharged = self.unchecked and block.start in self.precharged
        if (first.opcode == isa.CALL and self.inline_callee(first.operands[0]) is None) or \
                (first.opcode >= isa.EXT_BASE and not self.inlinable(first.opcode)):
            if not precharged:
                self.meter_single(costs[0])
            return self.translate_instr(block.start, 0)
        total = sum(costs)
        if not self.ctx.metered or total == 0:
            return self.run_instrs(instrs, costs, fast=True)
        if self.unchecked:
            if not precharged:
                self.emit(f"budget -= {total}")
            return self.run_instrs(instrs, costs, fast=True)
        # one instruction is metered as one charge, unless it is a call inlined here: its
        # callee's instructions are charged (and may suspend) one by one
        single = len(instrs) == 1 and not (
            first.opcode == isa.CALL and self.inline_callee(first.operands[0]) is not None)
        if single or self.is_cheap_block(costs):
            self.meter_single(total) if single else None
            if single:
                return self.run_instrs(instrs, costs, fast=False, metered_each=False)
        saved_stack = list(self.stack)
        saved_temp = self.ctx._temp
        saved_stored = dict(self.stored)
        self.emit(f"if budget >= {total}:")
        self.indent += 1
        self.emit(f"budget -= {total}")
        cond_fast = self.run_instrs(instrs, costs, fast=True)
        fast_stack = self.stack
        self.indent -= 1
        self.emit("else:")
        self.indent += 1
        self.stack = saved_stack
        self.ctx._temp = saved_temp
        self.stored = saved_stored
        cond_slow = self.run_instrs(instrs, costs, fast=False)
        self.indent -= 1
        assert cond_fast == cond_slow and [e.expr for e in fast_stack] == \
            [e.expr for e in self.stack], "fast and slow paths diverged"
        return cond_fast

    @staticmethod
    def is_cheap_block(costs: list[int]) -> bool:
        return False

    def run_instrs(self, instrs: range, costs: list[int], fast: bool,
                   metered_each: bool = True) -> str | None:
        cond = None
        suffix = sum(costs)
        for i, c in zip(instrs, costs, strict=True):
            suffix -= c
            d = self.ins[i]
            if d.opcode == isa.CALL and self.inline_callee(d.operands[0]) is not None:
                self.inline_call(i, suffix, fast, metered_each)
                continue
            if not fast and metered_each and self.ctx.metered and c:
                self.emit(f"while budget < {c}:")
                self.emit("    budget = yield budget")
                self.emit(f"budget -= {c}")
            cond = self.translate_instr(i, suffix if fast else 0)
        return cond

    def cost(self, i: int) -> int:
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

    def body_costs(self, body: list[isa.Decoded]) -> list[int]:
        """Cycles of each instruction of an inlined callee (its return is not free)."""
        return [self.b.natives[x.operands[0]].constant_cost or 0 if x.opcode == isa.CALLN
                else self.b.op_cost[x.opcode] for x in body]

    _INLINE_OPS = frozenset({isa.PUSH, isa.POP, isa.DUP, isa.LOAD_L, isa.STORE_L, isa.LOAD_G,
                             isa.LOAD_A, isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.MOD, isa.NEG,
                             isa.ABS, isa.MIN, isa.MAX, isa.EQ, isa.NE, isa.LT, isa.LE,
                             isa.GT, isa.GE, isa.NOT, isa.RANGE, isa.ENV, isa.RETV})

    def inline_callee(self, callee: int) -> list[isa.Decoded] | None:
        """The body of a function worth inlining at its calls: short, straight-line, pure
        (reads only), returning a value. None if it must be called."""
        if self.trap_unit is not None or self.b is not self.spec.bound or self.spec.inline:
            return None
        if callee not in self._inline_calls:
            cu = self.b.image.functions[callee]
            body = list(isa.decode(cu.code))
            ok = cu.returns and len(body) <= 48 and body[-1].opcode == isa.RETV and all(
                x.opcode in self._INLINE_OPS for x in body) and \
                sum(x.opcode == isa.RETV for x in body) == 1
            self._inline_calls[callee] = body if ok else None
        return self._inline_calls[callee]

    def inlinable(self, op: int) -> bool:
        """A VMlet instruction whose body is straight-line code of fixed cost: inlined."""
        return self.b.ext[op - isa.EXT_BASE].fixed_cost is not None

    def emit_dynamic_native(self, i: int) -> None:
        d = self.ins[i]
        n = self.b.natives[d.operands[0]]
        args = self.stack[len(self.stack) - n.n_args:]
        if self.ctx.metered:
            env = {name: f"({self.value(a)})" for name, a in zip(n.arg_names, args, strict=True)}
            formula = _formula_source(n.formula.tree, env)
            self.emit(f"c = {n.call_cost} + {formula}")
            self.emit("while budget < c:")
            self.emit("    budget = yield budget")
            self.emit("budget -= c")
        self.translate_instr(i, 0)
        return None

    # ------------------------------------------------------------------ instructions

    def translate_instr(self, i: int, refund: int) -> str | None:
        d = self.ins[i]
        op = d.opcode
        s = self.stack
        off = d.offset
        if op == isa.PUSH:
            imm = d.operands[0]
            s.append(_Entry(repr(imm), (imm, imm)))
        elif op == isa.POP:
            s.pop()
        elif op == isa.DUP:
            s[-1] = self.materialize(s[-1])
            s.append(s[-1])
        elif op == isa.LOAD_L:
            slot = d.operands[0]
            s.append(_Entry(f"l{slot}", self.lrange(slot), local=slot))
        elif op == isa.STORE_L:
            slot = d.operands[0]
            e = s.pop()
            self.flush_local(slot)
            self.emit(f"l{slot} = {self.value(e)}")
            self.note_store(slot, e.rng)
            self.known[slot] = e.rng
        elif op == isa.LOAD_G:
            g = d.operands[0]
            lo, hi = self.spec.memory.global_ranges[g]
            t = self.ctx.temp()
            self.emit(f"{t} = G[{g}]" if not self.spec.inline else f"{t} = 0")
            s.append(_Entry(t, (lo, hi)))
        elif op == isa.STORE_G:
            g = d.operands[0]
            e = s.pop()
            lo, hi = self.spec.memory.global_ranges[g]
            v = self.value(e)
            if not (lo <= e.rng[0] and e.rng[1] <= hi):
                e = self.materialize(e)
                v = e.expr
                self.emit(f"if not {lo} <= {v} <= {hi}: {self.trap(TrapCode.RANGE, off, refund)}")
            self.emit(f"G[{g}] = {v}")
        elif op == isa.LOAD_A:
            a = d.operands[0]
            idx = s.pop()
            n = len(self.spec.memory.arrays[a])
            iv = self.value(idx)
            if not (0 <= idx.rng[0] and idx.rng[1] < n):
                idx = self.materialize(idx)
                iv = idx.expr
                self.emit(f"if not 0 <= {iv} < {n}: {self.trap(TrapCode.INDEX, off, refund)}")
            t = self.ctx.temp()
            self.emit(f"{t} = A{a}[{iv}]")
            s.append(_Entry(t, self.spec.memory.array_ranges[a]))
        elif op == isa.STORE_A:
            a = d.operands[0]
            e = s.pop()
            idx = s.pop()
            n = len(self.spec.memory.arrays[a])
            lo, hi = self.spec.memory.array_ranges[a]
            iv, v = self.value(idx), self.value(e)
            checks = []
            if not (0 <= idx.rng[0] and idx.rng[1] < n):
                idx = self.materialize(idx)
                iv = idx.expr
                checks.append(f"if not 0 <= {iv} < {n}: {self.trap(TrapCode.INDEX, off, refund)}")
            if not (lo <= e.rng[0] and e.rng[1] <= hi):
                e = self.materialize(e)
                v = e.expr
                checks.append(f"if not {lo} <= {v} <= {hi}: "
                              f"{self.trap(TrapCode.RANGE, off, refund)}")
            for c in checks:
                self.emit(c)
            self.emit(f"A{a}[{iv}] = {v}")
        elif op in _ARITH:
            bb, aa = s.pop(), s.pop()
            ra, rb = aa.rng, bb.rng
            if op == isa.ADD:
                r = (ra[0] + rb[0], ra[1] + rb[1])
            elif op == isa.SUB:
                r = (ra[0] - rb[1], ra[1] - rb[0])
            else:
                p = (ra[0] * rb[0], ra[0] * rb[1], ra[1] * rb[0], ra[1] * rb[1])
                r = (min(p), max(p))
            t = self.ctx.temp()
            self.emit(f"{t} = {self.value(aa)} {_ARITH[op]} {self.value(bb)}")
            if not _fits(r):
                self.emit(f"if {t} > {INT_MAX} or {t} < {INT_MIN}: "
                          f"{self.trap(TrapCode.OVERFLOW, off, refund)}")
                r = (max(r[0], INT_MIN), min(r[1], INT_MAX))
            s.append(_Entry(t, r))
        elif op in (isa.DIV, isa.MOD):
            bb, aa = s.pop(), s.pop()
            t = self.ctx.temp()
            av, bv = self.value(aa), self.value(bb)
            if bb.rng[0] <= 0 <= bb.rng[1]:
                bb = self.materialize(bb)
                bv = bb.expr
                self.emit(f"if {bv} == 0: {self.trap(TrapCode.DIV_ZERO, off, refund)}")
            # Python's // and % agree with truncating division for a >= 0 and b > 0
            floor_ok = aa.rng[0] >= 0 and bb.rng[0] >= 0  # b == 0 has trapped above
            if op == isa.DIV:
                self.emit(f"{t} = {av} // {bv}" if floor_ok else f"{t} = _tdiv({av}, {bv})")
                if aa.rng[0] <= INT_MIN and bb.rng[0] <= -1 <= bb.rng[1]:
                    self.emit(f"if {t} > {INT_MAX}: {self.trap(TrapCode.OVERFLOW, off, refund)}")
                m = max(abs(aa.rng[0]), abs(aa.rng[1]))
                s.append(_Entry(t, (max(-m, INT_MIN), min(m, INT_MAX))))
            else:
                if aa.rng[0] <= INT_MIN and bb.rng[0] <= -1 <= bb.rng[1]:
                    # INT_MIN % -1 traps like INT_MIN / -1 does
                    self.emit(f"if {av} == {INT_MIN} and {bv} == -1: "
                              f"{self.trap(TrapCode.OVERFLOW, off, refund)}")
                self.emit(f"{t} = {av} % {bv}" if floor_ok else f"{t} = _tmod({av}, {bv})")
                m = max(abs(bb.rng[0]), abs(bb.rng[1]))
                lo = 0 if aa.rng[0] >= 0 else -(m - 1)
                hi = 0 if aa.rng[1] <= 0 else m - 1
                s.append(_Entry(t, (max(lo, INT_MIN), min(hi, INT_MAX))))
        elif op == isa.NEG:
            aa = s.pop()
            r = (-aa.rng[1], -aa.rng[0])
            t = self.ctx.temp()
            self.emit(f"{t} = -{self.value(aa)}")
            if not _fits(r):
                self.emit(f"if {t} > {INT_MAX}: {self.trap(TrapCode.OVERFLOW, off, refund)}")
                r = (max(r[0], INT_MIN), min(r[1], INT_MAX))
            s.append(_Entry(t, r))
        elif op == isa.ABS:
            aa = s.pop()
            lo, hi = aa.rng
            r = (lo, hi) if lo >= 0 else ((-hi, -lo) if hi <= 0 else (0, max(-lo, hi)))
            t = self.ctx.temp()
            self.emit(f"{t} = abs({self.value(aa)})")
            if not _fits(r):
                self.emit(f"if {t} > {INT_MAX}: {self.trap(TrapCode.OVERFLOW, off, refund)}")
                r = (max(r[0], INT_MIN), min(r[1], INT_MAX))
            s.append(_Entry(t, r))
        elif op in (isa.MIN, isa.MAX):
            bb, aa = s.pop(), s.pop()
            fn = "min" if op == isa.MIN else "max"
            f = min if op == isa.MIN else max
            r = (f(aa.rng[0], bb.rng[0]), f(aa.rng[1], bb.rng[1]))
            t = self.ctx.temp()
            av, bv = self.value(aa), self.value(bb)
            # a conditional expression is several times faster than calling min/max
            cmp = "<" if fn == "min" else ">"
            if aa.expr.isidentifier() and bb.expr.isidentifier() or (
                    _is_literal(aa.expr) or _is_literal(bb.expr)):
                self.emit(f"{t} = {av} if {av} {cmp} {bv} else {bv}")
            else:
                self.emit(f"{t} = {fn}({av}, {bv})")
            s.append(_Entry(t, r))
        elif op in _CMP:
            bb, aa = s.pop(), s.pop()
            # evaluated where it is used: a later store into a local it reads flushes it
            s.append(_Entry(f"({self.value(aa)} {_CMP[op]} {self.value(bb)})", BOOL,
                            is_bool=True, reads=aa.slots() | bb.slots()))
        elif op == isa.NOT:
            aa = s.pop()
            s.append(_Entry(f"(not {aa.expr})", BOOL, is_bool=True, reads=aa.slots()))
        elif op == isa.RANGE:
            lo, hi = d.operands
            e = s[-1]
            if not (lo <= e.rng[0] and e.rng[1] <= hi):
                e = self.materialize(e)
                self.emit(f"if not {lo} <= {e.expr} <= {hi}: "
                          f"{self.trap(TrapCode.RANGE, off, refund)}")
            s[-1] = _Entry(e.expr, (max(lo, e.rng[0]), min(hi, e.rng[1])), e.is_bool, e.local,
                           e.reads)
        elif op == isa.JMP:
            return None
        elif op in (isa.JZ, isa.JNZ):
            e = s.pop()
            # the fall-through path runs when the condition is true for JZ, false for JNZ
            if op == isa.JZ:
                return e.expr if e.is_bool else f"{e.expr} != 0"
            return f"not {e.expr}" if e.is_bool else f"{e.expr} == 0"
        elif op in (isa.FORPREP, isa.FORLOOP):
            slot = d.operands[0]
            # the loop counter ranges over [start, limit]; the body sees [start, limit - 1]
            lo_r, lim_r = self.lrange(slot), self.lrange(slot + 1)
            self.note_store(slot, (lo_r[0], max(lo_r[1], lim_r[1])))
            return None
        elif op in (isa.RET, isa.RETV):
            if op == isa.RETV:
                e = s.pop()
                self.emit(f"return budget, {self.value(e)}")
            else:
                self.emit("return budget, None")
        elif op == isa.CALLN:
            self.call_native(i, refund)
        elif op == isa.CALL:
            callee = d.operands[0]
            cu = self.b.image.functions[callee]
            args = [self.value(e) for e in s[len(s) - cu.n_params:]] if cu.n_params else []
            del s[len(s) - cu.n_params:]
            for k in range(len(s)):
                s[k] = self.materialize(s[k])
            t = self.ctx.temp()
            call = f"{self.spec.callee_names(callee)}(budget{''.join(', ' + a for a in args)})"
            line = f"budget, {t} = yield from {call}" if self.ctx.metered \
                else f"budget, {t} = {call}"
            if self.refund_extra:
                # charged ahead for later instructions: a trap in the callee gives it back
                self.emit("try:")
                self.emit(f"    {line}")
                self.emit("except Trap as trap:")
                self.emit(f"    trap.remaining += 0{self.refund_extra}")
                self.emit("    raise")
            else:
                self.emit(line)
            if cu.returns:
                s.append(_Entry(t, FULL))
        elif op >= isa.EXT_BASE:
            self.ext(i, refund)
        elif op == isa.ENV:
            env = self.b.env[d.operands[0]]
            s.append(_Entry(repr(env), (env, env)))
        elif op == isa.HIDE:
            raise ValueError("HIDE runs only in a VMlet's on load, by the reference engine")
        return None

    def call_native(self, i: int, refund: int) -> None:
        d = self.ins[i]
        s = self.stack
        n = self.b.natives[d.operands[0]]
        off = d.offset
        args = s[len(s) - n.n_args:] if n.n_args else []
        del s[len(s) - n.n_args:]
        for k in range(len(s)):
            s[k] = self.materialize(s[k])
        values = []
        for a, (lo, hi) in zip(args, n.arg_ranges, strict=True):
            v = self.value(a)
            if not (lo <= a.rng[0] and a.rng[1] <= hi):
                a = self.materialize(a)
                v = a.expr
                self.emit(f"if not {lo} <= {v} <= {hi}: "
                          f"{self.trap(TrapCode.NATIVE_ARG, off, refund)}")
            values.append(v)
        name = self.spec.native_names[d.operands[0]]
        call = f"{name}({', '.join(values)})"
        if n.result is None:
            self.emit(call)
            return
        t = self.ctx.temp()
        lo, hi = n.result
        self.emit(f"{t} = {call}")
        # the host is checked, not trusted: ranges downstream rely on the declared result
        # (and a host that returns no integer at all traps as on the reference engine)
        self.emit(f"if not isinstance({t}, int) or not {lo} <= {t} <= {hi}: "
                  f"{self.trap(TrapCode.NATIVE_RESULT, off, refund)}")
        s.append(_Entry(t, (lo, hi)))

    def ext(self, i: int, refund: int) -> None:
        d = self.ins[i]
        s = self.stack
        k = d.opcode - isa.EXT_BASE
        ext = self.b.ext[k]
        cu = ext.vmlet.image.functions[ext.function]
        args = s[len(s) - cu.n_params:] if cu.n_params else []
        del s[len(s) - cu.n_params:]
        if self.inlinable(d.opcode):
            self.inline_body(ext.vmlet, ext.function, args, d.offset, refund, i)
            return
        for j in range(len(s)):
            s[j] = self.materialize(s[j])
        name = self.ctx.out_of_line[(id(ext.vmlet), ext.function)]
        t = self.ctx.temp()
        call = f"{name}(budget{''.join(', ' + self.value(a) for a in args)})"
        self.emit("try:")
        self.emit(f"    budget, {t} = yield from {call}" if self.ctx.metered
                  else f"    budget, {t} = {call}")
        self.emit("except Trap as e:")
        # a VMlet instruction is one instruction: its traps are reported where it is used
        self.emit(f"    raise Trap(e.code, {self.spec.unit}, {d.offset}, e.remaining) from None")
        if cu.returns:
            s.append(_Entry(t, FULL))

    def inline_call(self, i: int, refund: int, fast: bool, metered_each: bool) -> None:
        """A call of a short straight-line function, translated in place. Exactly as if
        called: each of its instructions is charged (and may suspend) in turn, and its
        traps name it and its own offsets."""
        d = self.ins[i]
        callee = d.operands[0]
        body = self.inline_callee(callee)
        assert body is not None
        costs = self.body_costs(body)
        call_cost = self.b.call_cost[callee]
        metered = not fast and metered_each and self.ctx.metered
        if metered:
            self.meter_single(call_cost)
        cu = self.b.image.functions[callee]
        s = self.stack
        args = s[len(s) - cu.n_params:] if cu.n_params else []
        del s[len(s) - cu.n_params:]
        locals_ = self.inline_locals(args, cu.n_locals)
        stack: list[_Entry] = []
        suffix = sum(costs)
        saved_ins, saved_stack = self.ins, self.stack
        self.trap_unit = callee
        try:
            for x, c in zip(body, costs, strict=True):
                suffix -= c
                if metered:
                    self.meter_single(c)
                if self.inline_local(x, stack, locals_):
                    continue
                if x.opcode == isa.RETV:
                    saved_stack.append(stack.pop())
                    break
                self.ins, self.stack = [x], stack
                self.translate_instr(0, refund + suffix if fast else 0)
        finally:
            self.ins, self.stack = saved_ins, saved_stack
            self.trap_unit = None

    def inline_locals(self, args: list[_Entry], n_locals: int) -> list[_Entry]:
        """The locals of an inlined body: its arguments, then zeros."""
        locals_: list[_Entry] = []
        for a in args:
            # a read of an outer local stays as it is: the body cannot write it (but what the
            # body returns may be that read, flushed if the caller then writes the local)
            if not (a.expr.isidentifier() or _is_literal(a.expr)) or a.is_bool:
                a = self.materialize(a)
            locals_.append(_Entry(a.expr, a.rng, local=a.local))
        return locals_ + [_Entry("0", (0, 0))] * (n_locals - len(args))

    def inline_local(self, x: isa.Decoded, stack: list[_Entry], locals_: list[_Entry]) -> bool:
        """Translate a LOAD_L/STORE_L of an inlined body; False for other instructions."""
        if x.opcode == isa.LOAD_L:
            stack.append(locals_[x.operands[0]])
            return True
        if x.opcode == isa.STORE_L:
            e = stack.pop()
            t = self.ctx.temp()  # a new name per store: entries on the stack keep theirs
            self.emit(f"{t} = {self.value(e)}")
            locals_[x.operands[0]] = _Entry(t, e.rng)
            return True
        return False

    def inline_body(self, vm: Bound, function: int, args: list[_Entry], offset: int,
                    refund: int, at: int) -> None:
        """Translate a straight-line VMlet instruction body in place."""
        cu = vm.image.functions[function]
        body = list(isa.decode(cu.code))
        names = self.ctx.bind_vmlet_natives(vm)
        locals_ = self.inline_locals(args, cu.n_locals)
        # The instruction is charged in full before its body runs: a trap inside the body
        # refunds only what follows the instruction in its block.
        r = refund
        stack: list[_Entry] = []
        for x in body:
            op = x.opcode
            if self.inline_local(x, stack, locals_):
                continue
            elif op == isa.RETV:
                self.stack.append(stack.pop())
                return
            elif op == isa.CALLN:
                saved, self.stack = self.stack, stack
                saved_b, self.b = self.b, vm
                saved_names, self.spec.native_names = self.spec.native_names, names
                try:
                    self.call_native_at(x, r, offset)
                finally:
                    self.stack, self.b, self.spec.native_names = saved, saved_b, saved_names
            else:
                saved, self.stack = self.stack, stack
                saved_b, self.b = self.b, vm
                saved_ins = self.ins
                self.ins = [isa.Decoded(offset, x.opcode, x.operands, x.size)]
                try:
                    self.translate_instr(0, r)
                finally:
                    self.stack, self.b, self.ins = saved, saved_b, saved_ins
        raise ValueError("VMlet instruction body without RETV")

    def call_native_at(self, x: isa.Decoded, refund: int, offset: int) -> None:
        saved_ins = self.ins
        self.ins = [isa.Decoded(offset, x.opcode, x.operands, x.size)]
        try:
            self.call_native(0, refund)
        finally:
            self.ins = saved_ins


def _fill_empty_suites(lines: list[str]) -> list[str]:
    """``lines`` with ``pass`` in every compound statement that got no body: code whose
    instructions all vanish in translation (an empty loop body whose FORLOOP is charged per
    batch, a branch that only jumps on) leaves a bare ``for``/``if``/``else``, which Python
    refuses (IndentationError)."""
    out: list[str] = []
    last = len(lines) - 1
    for k, line in enumerate(lines):
        out.append(line)
        if line.endswith(":"):
            body = " " * (len(line) - len(line.lstrip(" ")) + 4)
            if k == last or not lines[k + 1].startswith(body):
                out.append(body + "pass")
    return out


def _is_literal(expr: str) -> bool:
    return expr.lstrip("-").isdigit()


def _formula_source(node: ast.expr, env: dict[str, str]) -> str:
    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return env.get(node.id, node.id)
    if isinstance(node, ast.UnaryOp):
        return f"(-{_formula_source(node.operand, env)})"
    if isinstance(node, ast.BinOp):
        a, b = _formula_source(node.left, env), _formula_source(node.right, env)
        if isinstance(node.op, ast.FloorDiv):
            return f"_fdiv({a}, {b})"
        sym = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}[type(node.op)]
        return f"({a} {sym} {b})"
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return f"{node.func.id}({', '.join(_formula_source(a, env) for a in node.args)})"


# --------------------------------------------------------------------------- the image


def _on_reference(bound: Bound, memory: Memory, unit: int) -> Callable[..., Any]:
    def unit_fn(budget: int, *args: int) -> Any:
        return run(bound, memory, unit, args, budget)
    return unit_fn


@dataclass
class Translated:
    """An image's code units as Python callables (generator functions when metered).

    ``fallbacks``: units the translator could not translate (a translator bug met by
    verified code), which run on the reference interpreter instead, with why."""

    functions: list[Callable[..., Any]]
    source: str
    fallbacks: dict[int, str] = field(default_factory=dict)


def _translate_unit(ctx: _Context, spec: _UnitSpec, max_passes: int) -> str:
    """The source of one unit, its local ranges iterated to a fixpoint."""
    ranges: dict[int, Range] = {}
    cu = spec.bound.image.functions[spec.unit]
    for slot in range(cu.n_params):
        ranges[slot] = FULL  # arguments: any value (a store must not narrow them)
    for slot in range(cu.n_params, cu.n_locals):
        ranges[slot] = (0, 0)  # locals start at zero
    for _ in range(max_passes):
        ut = _UnitTranslator(ctx, spec, ranges)
        src = ut.translate()
        new = dict(ranges)
        for slot, r in ut.stored.items():
            new[slot] = _hull(new.get(slot, r), r)
        if new == ranges:
            break
        ranges = new
    else:
        # not settled: everything assigned in the unit may be any 32-bit value
        ranges = {slot: FULL for slot in ranges}
        ut = _UnitTranslator(ctx, spec, ranges)
        src = ut.translate()
    return "\n".join(_fill_empty_suites(src.split("\n")))


def translate(bound: Bound, memory: Memory, *, metered: bool = True,
              reference_units: frozenset[int] = frozenset(),
              max_passes: int = 4) -> Translated:
    """Translate every code unit of ``bound`` (whose code the verifier has accepted), but
    those in ``reference_units``, which run on the reference interpreter.

    Never fails on verified code: a unit whose translation raises or does not compile (a
    translator bug) runs on the reference interpreter, and so does every unit that uses a
    VMlet instruction whose out-of-line translation failed; ``Translated.fallbacks`` says
    which and why."""
    ctx = _Context(bound, memory, metered)
    natives = ctx.bind_natives("", bound.natives)
    n_units = len(bound.image.functions)
    names = [f"u{i}" for i in range(n_units)]
    extra, vmlet_of = _out_of_line(ctx, bound)
    specs = [_UnitSpec(bound, i, names[i], natives, False, memory, names.__getitem__)
             for i in range(n_units) if i not in reference_units] + extra
    failed: dict[str, str] = {}  # function name -> why it could not be translated
    sources: dict[str, str] = {}
    for spec in specs:
        try:
            sources[spec.fn_name] = _translate_unit(ctx, spec, max_passes)
        except Exception as exc:  # noqa: BLE001 - a translator bug: the reference runs it
            failed[spec.fn_name] = f"{type(exc).__name__}: {exc}"
    filename = f"<vvm {bound.image.name} v{bound.image.version}>"
    source = "\n\n".join(sources.values())
    try:
        exec(compile(source, filename, "exec"), ctx.namespace)
    except Exception:  # noqa: BLE001 - find the units that do not compile, one by one
        for name, src in sources.items():
            try:
                exec(compile(src, filename, "exec"), ctx.namespace)
            except Exception as exc:  # noqa: BLE001
                failed[name] = f"{type(exc).__name__}: {exc}"
    fallbacks = _fallbacks(bound, failed, names, vmlet_of)
    for i in (*reference_units, *fallbacks):
        ctx.namespace[names[i]] = _on_reference(bound, memory, i)
    return Translated([ctx.namespace[n] for n in names], source, fallbacks)


def _out_of_line(ctx: _Context, bound: Bound) -> tuple[list[_UnitSpec], dict[int, int]]:
    """The VMlet code translated out of line: for each VMlet (number ``m``) with an
    instruction that cannot be inlined (used by the configuration, or by the VMlet's own
    code), every unit as a function its code may call (``v{m}_u{j}``) and each such
    instruction's body, whose returns are free (``v{m}_i{j}``), once each. Returns the
    specs and, for each extension opcode of ``bound`` translated out of line, its VMlet."""
    empty = Memory([], (), [], ())
    extra: list[_UnitSpec] = []
    numbers: dict[int, int] = {}  # id of a VMlet's Bound -> m

    def body(vm: Bound, function: int) -> None:
        key = (id(vm), function)
        if key in ctx.out_of_line:
            return
        if id(vm) not in numbers:
            m = numbers[id(vm)] = len(numbers)
            natives = ctx.bind_natives(f"v{m}_", vm.natives)
            plain = [f"v{m}_u{j}" for j in range(len(vm.image.functions))]
            for j in range(len(vm.image.functions)):
                extra.append(_UnitSpec(vm, j, plain[j], natives, False, empty,
                                       plain.__getitem__))
            ctx.out_of_line[key] = name = f"v{m}_i{function}"
            for e in vm.ext:  # its own instructions, used by its own code
                if e.fixed_cost is None:
                    body(vm, e.function)
        else:
            m = numbers[id(vm)]
            ctx.out_of_line[key] = name = f"v{m}_i{function}"
        first = next(s for s in extra if s.bound is vm)
        extra.append(_UnitSpec(vm, function, name, first.native_names, True, empty,
                               first.callee_names))

    vmlet_of: dict[int, int] = {}
    for k, ext in enumerate(bound.ext):
        if ext.fixed_cost is None:
            body(ext.vmlet, ext.function)
            vmlet_of[k] = numbers[id(ext.vmlet)]
    return extra, vmlet_of


def _fallbacks(bound: Bound, failed: dict[str, str], names: list[str],
               vmlet_of: dict[int, int]) -> dict[int, str]:
    """The units of ``bound`` that run on the reference interpreter because their own
    translation failed or that of the VMlet code an instruction they use runs
    (``v{m}_...``: ``vmlet_of`` maps extension opcodes to ``m``) did."""
    out = {i: why for i, name in enumerate(names) if (why := failed.get(name)) is not None}
    broken_vmlets: dict[int, str] = {}
    for name, why in failed.items():
        if name.startswith("v"):
            broken_vmlets.setdefault(int(name[1:name.index("_")]), why)
    broken = {k: broken_vmlets[m] for k, m in vmlet_of.items() if m in broken_vmlets}
    if broken:
        for i, unit in enumerate(bound.image.functions):
            if i in out:
                continue
            used = {d.opcode - isa.EXT_BASE for d in isa.decode(unit.code)
                    if d.opcode >= isa.EXT_BASE}
            hit = sorted(used & broken.keys())
            if hit:
                out[i] = f"VMlet instruction {hit[0]}: {broken[hit[0]]}"
    return out
