"""The state of symbolic execution: memory, paths, frames of inlined calls, and how the
paths of a fork (or the exits of a procedure) are joined again."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import z3

from ccl import ir
from ccl.verify.cost import ZERO, CSum, choose
from ccl.verify.inputs import Inputs
from ccl.verify.terms import Val, ite
from onboard.vm.isa import INT_MAX, INT_MIN


@dataclass
class Memory:
    """The writable data a procedure sees: state variables and arrays (tables included,
    though nothing writes them).

    Only what the procedure touched is held here; anything else still has its value at the
    start of the run, which ``initial`` creates when first asked."""

    vars: dict[str, Val]
    arrays: dict[str, z3.ArrayRef]
    initial: Inputs

    def copy(self) -> Memory:
        return Memory(dict(self.vars), dict(self.arrays), self.initial)

    def var(self, name: str) -> Val:
        v = self.vars.get(name)
        if v is None:
            v = self.vars[name] = self.initial.var(name)
        return v

    def array(self, name: str) -> z3.ArrayRef:
        a = self.arrays.get(name)
        if a is None:
            a = self.arrays[name] = self.initial.initial_array(name)
        return a


@dataclass
class State:
    """One path (or a merge of paths) through a procedure.

    ``conds`` is the path condition. Costs are kept relative: ``base`` is the cycles spent
    up to the last fork, ``cost`` those since, so that the two sides of a fork share their
    common prefix."""

    locals: dict[int, Val]
    mem: Memory
    conds: tuple[z3.BoolRef, ...]
    base: CSum = ZERO
    cost: CSum = ZERO

    def charge(self, cycles: int) -> None:
        self.cost = self.cost.plus(cycles)

    def absolute(self) -> CSum:
        return self.base.then(self.cost)

    def fork(self, cond: z3.BoolRef) -> State:
        return State(dict(self.locals), self.mem.copy(), self.conds + (cond,),
                     self.absolute(), ZERO)

    def absorb(self, other: State) -> None:
        self.locals, self.mem, self.conds = other.locals, other.mem, other.conds
        self.base, self.cost = other.base, other.cost


@dataclass(frozen=True)
class Exit:
    """A path that left the procedure (``return``), with what it left behind."""

    cond: z3.BoolRef  # relative to the procedure's (or loop iteration's) entry
    value: Val | None
    mem: Memory
    cost: CSum  # cycles since the procedure's (or loop iteration's) entry


@dataclass
class Frame:
    """A procedure being executed (inlined calls get a frame of their own)."""

    proc: ir.Procedure
    program: ir.Program
    where: str
    cond_base: int
    free_returns: bool = False  # a VMlet instruction's body: its RET/RETV cost nothing
    exits: list[Exit] = field(default_factory=list)


class Jump(Enum):
    """How codegen branches on a condition."""

    UNLESS = "unless"  # codegen's jump_unless: falls through when the condition holds
    IF = "if"  # codegen's jump_if: jumps when it holds


def needs_range_check(target: ir.Type, value: ir.Type | None) -> bool:
    """Whether ``ccl.codegen`` emits a ``RANGE`` check storing a ``value`` into ``target``."""
    if not isinstance(target, ir.IntType) or target.is_full:
        return False
    return not (isinstance(value, ir.IntType) and target.includes(value))


@dataclass(frozen=True)
class Writes:
    """What a piece of code may assign."""

    locals: dict[int, ir.Local]
    vars: frozenset[str]
    arrays: frozenset[str]


def narrow(v: Val, ty: ir.IntType) -> Val:
    """``v`` after a check that it lies in ``ty`` (the VVM traps otherwise)."""
    return Val(v.term, max(v.lo, ty.lo), min(v.hi, ty.hi)) if v.lo < ty.lo or v.hi > ty.hi \
        else v


def value_of(model: z3.ModelRef, term: z3.ExprRef) -> int:
    v = model.eval(term, model_completion=True)
    if z3.is_bool(v):
        return int(z3.is_true(v))
    assert isinstance(v, z3.BitVecNumRef)
    return v.as_signed_long()


def narrower(r: tuple[int, int], ty: ir.Type) -> bool:
    """Whether interval ``r`` excludes some value of type ``ty``."""
    lo, hi = (0, 1) if isinstance(ty, ir.BoolType) else \
        (ty.lo, ty.hi) if isinstance(ty, ir.IntType) else (INT_MIN, INT_MAX)
    return r[0] > lo or r[1] < hi


def merge(parent: State, cond: z3.BoolRef, then: State | None,
           other: State | None) -> State | None:
    """Join the two sides of a fork on ``cond`` (either may have returned on every path)."""
    if then is None and other is None:
        return None
    if then is None or other is None:
        alive = then if then is not None else other
        assert alive is not None
        return State(alive.locals, alive.mem, alive.conds, parent.base,
                     parent.cost.then(alive.cost))
    locals_ = {k: ite(cond, v, other.locals[k]) for k, v in then.locals.items()
               if k in other.locals}
    mem = merge_mem(cond, then.mem, other.mem)
    n = len(parent.conds)
    t_extra, o_extra = then.conds[n:], other.conds[n:]
    conds = parent.conds
    if len(t_extra) > 1 or len(o_extra) > 1:  # a side lost paths to a `return`
        conds = conds + (z3.Or(z3.And(*t_extra), z3.And(*o_extra)),)
    return State(locals_, mem, conds, parent.base,
                 parent.cost.then(choose(cond, then.cost, other.cost)))


def merge_mem(cond: z3.BoolRef, a: Memory, b: Memory) -> Memory:
    # A name only one side holds was not touched on the other: it has its initial value.
    vars_ = {k: ite(cond, a.var(k), b.var(k)) for k in dict.fromkeys((*a.vars, *b.vars))}
    arrays = {}
    for k in dict.fromkeys((*a.arrays, *b.arrays)):
        x, y = a.array(k), b.array(k)
        arrays[k] = x if x is y else z3.If(cond, x, y)
    return Memory(vars_, arrays, a.initial)


def join(exits: list[Exit]) -> tuple[Val | None, Memory, CSum]:
    """The result, memory and cost of a procedure from the paths that left it."""
    last = exits[-1]
    value, mem, cost = last.value, last.mem, last.cost
    for e in reversed(exits[:-1]):
        if value is not None and e.value is not None:
            value = ite(e.cond, e.value, value)
        elif value is None:
            value = e.value
        mem = merge_mem(e.cond, e.mem, mem)
        cost = choose(e.cond, e.cost, cost)
    return value, mem, cost
