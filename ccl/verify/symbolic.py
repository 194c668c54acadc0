"""Symbolic execution of the typed IR: obligations where the VVM could trap, and cycle costs.

One ``Executor`` runs one procedure (a task, ``on apply``, ``on load``, a rule, or a function
or VMlet instruction on its own) over symbolic inputs (``ccl.verify.inputs``), with the VVM's
semantics (``onboard/vm/reference.py`` is the specification):

* values are 32-bit; ``+ - * / % neg abs`` trap on overflow (``INT_MIN % -1`` included),
  ``/`` and ``%`` on a zero divisor, array accesses out of bounds, stores outside the declared
  range of a state variable or element, ``RANGE`` checks (ranged locals, arguments, results),
  native arguments outside the mission's ranges. Each is an obligation, checked in
  evaluation order, under the path condition that reaches it (``ccl.verify.solver``);
* ``if`` forks the state and merges it with if-then-else terms; ``&&``/``||`` short-circuit;
* calls of functions and VMlet instructions are inlined (there is no recursion);
* a ``for`` body is executed once, for an arbitrary iteration: the counter is unknown between
  the bounds, and what the body writes (locals, state, arrays) is unknown within its declared
  range, both on entry to the body and after the loop. Sound because the VVM enforces the
  ranges on every store: ranged types are the loop invariants.

Alongside, every instruction ``ccl.codegen`` emits is charged its mission cycles, following
codegen's choices exactly (short-circuit jumps, ``RANGE`` only where codegen emits one, the
``JMP`` over an ``else``, the trailing ``RET``), giving the procedure's cost expression
(``ccl.verify.cost``). A loop costs its trip count times the arbitrary iteration's cost,
which is the exact worst case when an iteration's cost depends neither on its counter nor on
what earlier iterations left. When it does (a window that widens with the counter, a branch
on the first iteration, a flag set once), that product can be far above anything a run
reaches, so the first iterations are executed again one by one, from the actual state with
the actual counter, for their cost only: all of them when the loop has at most
``UNROLL_TRIPS`` iterations (exact), the first ``PEEL_TRIPS`` otherwise, the arbitrary
iteration standing for the rest. A loop that may ``return`` costs, on the path that
returns, the iterations before the one that returns, then that one up to its ``return``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import z3

from ccl import ir
from ccl.ranges import OPCODES, binary_range, unary_range
from ccl.verify.cost import (
    ZERO,
    Bounds,
    CLoop,
    CNative,
    CSum,
    CycleTable,
    Encoder,
    choose,
    cost_terms,
)
from ccl.verify.counter_sum import CounterSum
from ccl.verify.inputs import Inputs, Role, array_default
from ccl.verify.irtext import text
from ccl.verify.irwalk import expressions, statements, subexpressions
from ccl.verify.obligations import Kind
from ccl.verify.solver import Checker, Detail
from ccl.verify.terms import (
    WIDTH,
    Val,
    bool_const,
    bv_const,
    depends_on,
    fits,
    in_range,
    ite,
    widen,
)
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.isa import INT_MAX, INT_MIN
from onboard.vm.machine import Limits

#: Unknowns an iteration of a loop makes for itself (the others are the same for all).
_PER_ITERATION = frozenset({Role.COUNTER, Role.CARRIED, Role.CARRIED_ARRAY, Role.NATIVE,
                            Role.CHOICE})

#: Loops of at most this many iterations whose cost depends on the iteration are executed
#: one iteration after the other, for an exact worst case.
UNROLL_TRIPS = 16
#: Longer ones: the first iterations executed on their own (the rest are arbitrary ones).
PEEL_TRIPS = 1
#: Iterations executed one by one per entry point at most (nested loops multiply).
UNROLL_BUDGET = 256

# --------------------------------------------------------------------------- state


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


class _Jump(Enum):
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


def _narrow(v: Val, ty: ir.IntType) -> Val:
    """``v`` after a check that it lies in ``ty`` (the VVM traps otherwise)."""
    return Val(v.term, max(v.lo, ty.lo), min(v.hi, ty.hi)) if v.lo < ty.lo or v.hi > ty.hi \
        else v


def _value_of(model: z3.ModelRef, term: z3.ExprRef) -> int:
    v = model.eval(term, model_completion=True)
    if z3.is_bool(v):
        return int(z3.is_true(v))
    assert isinstance(v, z3.BitVecNumRef)
    return v.as_signed_long()


# --------------------------------------------------------------------------- executor


class Executor:
    """Executes procedures of one program over the unknowns in ``inputs``."""

    def __init__(self, program: ir.Program, mission: MissionProfile, cycles: CycleTable,
                 inputs: Inputs, checker: Checker) -> None:
        self.program = program
        self.mission = mission
        self.cyc = cycles
        self.inputs = inputs
        self.check = checker
        #: Facts that hold wherever a loop body runs, as implications (for cost queries).
        self.loop_facts: list[z3.BoolRef] = []
        self.frame_budget = Limits.of(mission).frame_budget
        #: The dearest native call seen (an upper bound of its one-piece charge).
        self.largest_native = 0
        self._writes: dict[tuple[str, str], Writes] = {}
        # Inside iterations executed one by one for their cost: obligations are not checked
        # again (the arbitrary iteration's cover them).
        self._cost_only = 0
        # Iterations that may still be executed one by one (bounds the work per entry point).
        self._unroll_left = UNROLL_BUDGET
        # While a loop body runs: the interval of every value assigned to a local (by id)
        # or a state variable (by name), innermost loop last.
        self._assigned: list[dict[int | str, tuple[int, int]]] = []
        #: How comparisons and sums were built (term id -> operator and operands), so a
        #: loop's cost can be summed over its counter (``counter_sum``).
        self.shapes: dict[int, tuple[ir.BinOp, Val, Val]] = {}
        self._functions: dict[str, dict[str, ir.Procedure]] = {
            program.name: inputs.index.functions}
        #: State that other tasks may write while a job of this entry point is suspended
        #: (``interleave``): every read of it may see any value of its type.
        self.interleaved = Writes({}, frozenset(), frozenset())

    def interleave(self, others: Sequence[ir.Procedure]) -> None:
        """Let the state variables and arrays that ``others`` (the other tasks) write change
        between any two instructions: a job is suspended when its next instruction does
        not fit in what is left of a frame, and the next frame runs the jobs of earlier
        deadlines first, whatever state they write."""
        vars_: set[str] = set()
        arrays: set[str] = set()
        for proc in others:
            w = self.writes(proc.body, self.program)
            vars_.update(w.vars)
            arrays.update(w.arrays)
        self.interleaved = Writes({}, frozenset(vars_), frozenset(arrays))

    def _function(self, program: ir.Program, name: str) -> ir.Procedure:
        """Function ``name`` of ``program`` (this one or a VMlet it uses)."""
        by_name = self._functions.get(program.name)
        if by_name is None:
            by_name = self._functions[program.name] = {f.name: f for f in program.functions}
        return by_name[name]

    # -- entry points

    def run(self, proc: ir.Procedure, where: str, *, params: tuple[Val, ...] = (),
            entry_cost: int = 0, free_returns: bool = False) -> CSum:
        """Execute ``proc`` from a run's start; its cost in cycles (entry cost included)."""
        locals_ = {p.id: v for p, v in zip(proc.params, params, strict=True)}
        mem = Memory({}, {}, self.inputs)
        st = State(locals_, mem, ())
        st.charge(entry_cost)
        frame = Frame(proc, self.program, where, 0, free_returns)
        _value, _mem, cost = self._body(frame, st)
        return cost

    def standalone_args(self, proc: ir.Procedure) -> tuple[Val, ...]:
        """Unknown arguments anywhere in their declared types (a procedure on its own)."""
        return tuple(self.inputs.fresh(Role.ARG, p.name, p.type) for p in proc.params)

    def rule(self, rule: ir.Rule, where: str) -> Val:
        """The value of a rule's condition (its obligations are checked on the way)."""
        st = State({}, Memory({}, {}, self.inputs), ())
        frame = Frame(rule.proc, self.program, where, 0)
        return self.value(rule.cond, st, frame)

    # -- procedures and calls

    def _body(self, frame: Frame, st: State) -> tuple[Val | None, Memory, CSum]:
        end = self.block(frame.proc.body, st, frame)
        if end is not None:
            if not ir.always_returns(frame.proc.body) and not frame.free_returns:
                end.charge(self.cyc[isa.RET])
            frame.exits.append(Exit(z3.And(*end.conds[frame.cond_base:]), None, end.mem,
                                    end.absolute()))
        return _join(frame.exits)

    def inline(self, proc: ir.Procedure, program: ir.Program, args: list[Val], st: State,
               caller: Frame, free_returns: bool) -> Val | None:
        callee = State({p.id: v for p, v in zip(proc.params, args, strict=True)},
                       st.mem.copy(), st.conds)
        frame = Frame(proc, program, f"{caller.where} > {proc.name}", len(st.conds),
                      free_returns)
        value, mem, cost = self._body(frame, callee)
        st.mem = mem
        st.cost = st.cost.then(cost)
        return value

    # -- statements

    def block(self, stmts: tuple[ir.Stmt, ...], st: State, fr: Frame) -> State | None:
        for s in stmts:
            nxt = self.stmt(s, st, fr)
            if nxt is None:
                return None  # every path has returned: what follows never runs
            st = nxt
        return st

    def stmt(self, s: ir.Stmt, st: State, fr: Frame) -> State | None:
        c = self.cyc
        if isinstance(s, (ir.Let, ir.AssignLocal)):
            v = self.value(s.value, st, fr)
            ty = s.local.type
            if isinstance(ty, ir.IntType):
                if needs_range_check(ty, s.value.type):
                    st.charge(c[isa.RANGE])
                v = self.store_check(Kind.RANGE, v, ty, s.value.span, st, fr,
                                     f"the value stored in `{s.local.name}` is within {ty}")
            st.charge(c[isa.STORE_L])
            st.locals[s.local.id] = v
            if isinstance(s, ir.AssignLocal):
                self._note_assigned(s.local.id, v)
        elif isinstance(s, ir.AssignGlobal):
            v = self.value(s.value, st, fr)
            st.charge(c[isa.STORE_G])
            ty = s.glob.type
            st.mem.vars[s.glob.name] = self.store_check(
                Kind.RANGE, v, ty, s.value.span, st, fr,
                f"the value stored in `{s.glob.name}` is within {ty}")
            self._note_assigned(s.glob.name, st.mem.vars[s.glob.name])
        elif isinstance(s, ir.AssignElement):
            index = self.value(s.index, st, fr)
            v = self.value(s.value, st, fr)
            st.charge(c[isa.STORE_A])
            self.index_check(s.array, index, s.index.span, st, fr)
            ty = s.array.type
            v = self.store_check(Kind.RANGE, v, ty, s.value.span, st, fr,
                                 f"the value stored in `{s.array.name}[...]` is within {ty}")
            st.mem.arrays[s.array.name] = z3.Store(st.mem.array(s.array.name), index.bv, v.bv)
        elif isinstance(s, ir.If):
            return self.if_stmt(s, st, fr)
        elif isinstance(s, ir.For):
            return self.for_stmt(s, st, fr)
        elif isinstance(s, ir.Return):
            value = None
            if s.value is not None:
                value = self.value(s.value, st, fr)
                ret = fr.proc.returns
                if isinstance(ret, ir.IntType):
                    if needs_range_check(ret, s.value.type):
                        st.charge(c[isa.RANGE])
                    value = self.store_check(Kind.RESULT, value, ret, s.value.span, st, fr,
                                             f"the result of `{fr.proc.name}` is within {ret}")
            if not fr.free_returns:
                st.charge(c[isa.RETV] if s.value is not None else c[isa.RET])
            fr.exits.append(Exit(z3.And(*st.conds[fr.cond_base:]), value, st.mem,
                                 st.absolute()))
            return None
        elif isinstance(s, ir.ExprStmt):
            self.value(s.expr, st, fr)
            if s.expr.type is not None:
                st.charge(c[isa.POP])
        elif isinstance(s, ir.Hide):
            st.charge(c[isa.HIDE])
        else:  # pragma: no cover - the IR is closed
            raise TypeError(s)
        return st

    def if_stmt(self, s: ir.If, st: State, fr: Frame) -> State | None:
        cond = self.branch(s.cond, st, fr, _Jump.UNLESS)
        then = self.block(s.then, st.fork(cond), fr)
        if s.otherwise and then is not None and not ir.always_returns(s.then):
            then.charge(self.cyc[isa.JMP])
        other = self.block(s.otherwise, st.fork(z3.Not(cond)), fr)
        return _merge(st, cond, then, other)

    def for_stmt(self, s: ir.For, st: State, fr: Frame) -> State:
        c = self.cyc
        lo = self.value(s.lo, st, fr)
        st.charge(c[isa.STORE_L])
        hi = self.value(s.hi, st, fr)
        st.charge(c[isa.STORE_L] + c[isa.FORPREP])
        writes = self.writes(s.body, fr.program)
        tag = f"{s.span.line}:{s.span.col}"
        body = State(dict(st.locals), st.mem.copy(), st.conds)
        assert isinstance(s.counter.type, ir.IntType)
        once = ir.always_returns(s.body)
        known = set(self.inputs.by_key)  # what an iteration makes beyond these is its own
        carried: set[str] = set()
        if once:
            # Every iteration returns: only the first one ever runs, from this state.
            counter = lo
        else:
            # An arbitrary iteration: what the body writes is anything in its type.
            carried = self._havoc(body, writes, tag)
            counter = self.inputs.fresh(Role.COUNTER, s.counter.name, s.counter.type)
            if ir.may_return(s.body):
                self.inputs.guessed.add(counter.bv.decl().name())
        body.locals[s.counter.id] = counter
        entry = (lo.bv <= counter.bv, counter.bv < hi.bv)
        body.conds = body.conds + entry
        self.loop_facts.append(z3.Implies(lo.bv < hi.bv, z3.And(*entry)))
        outer_exits, outer_base = fr.exits, fr.cond_base
        fr.exits, fr.cond_base = [], len(st.conds)
        self._assigned.append({})
        try:
            end = self.block(s.body, body, fr)
        finally:
            assigned = self._assigned.pop()
            for key, r in assigned.items():  # an inner loop's assignments are the outer's
                self._note_range(key, r)
        iteration = ZERO  # the cycles of an iteration that does not return
        if end is not None:
            end.charge(c[isa.FORLOOP])
            iteration = end.absolute()
        loop_exits = fr.exits
        fr.exits, fr.cond_base = outer_exits, outer_base
        before = st.absolute()
        ran = lo.bv < hi.bv
        prefix = st.conds[fr.cond_base:]
        if once:
            # The first iteration returns; the code after the loop runs only if it never ran.
            for e in loop_exits:
                fr.exits.append(Exit(z3.And(*prefix, ran, e.cond), e.value, e.mem,
                                     before.then(e.cost)))
            st.conds = st.conds + (z3.Not(ran),)
            self._havoc(st, writes, tag)
            return st
        if loop_exits:
            # A `return` inside the body leaves at some iteration, or never. Leaving at the
            # iteration of counter `i` costs the `i - lo` whole iterations before it, then
            # that one up to its `return`. The earlier ones did not return, and each may
            # take its own dearest path: they are charged at an iteration of their own,
            # over unknowns of its own, not at the returning one's (whose values made it
            # return, and may make the rest of it cheap).
            took = self.inputs.fresh(Role.CHOICE, f"return from the loop at {tag}",
                                     ir.BOOL).cond
            other = self._other_iteration(s, st, fr, lo, hi, writes, tag)
            earlier = before.add(CLoop(lo, counter, other))
            for e in loop_exits:
                fr.exits.append(Exit(z3.And(*prefix, took, ran, e.cond), e.value, e.mem,
                                     earlier.then(e.cost)))
            st.conds = st.conds + (z3.Not(z3.And(took, ran, z3.Or(*(e.cond for e in
                                                                     loop_exits)))),)
            st.cost = st.cost.add(CLoop(lo, hi, iteration))
        else:
            variant = {k for k in set(self.inputs.by_key) - known
                       if self.inputs.by_key[k].role in _PER_ITERATION}
            st.cost = st.cost.then(self._loop_cost(s, st, fr, lo, hi, counter, carried,
                                                   iteration, writes, assigned, tag, variant))
        # After the loop, whatever the body wrote is again anything in its type.
        self._havoc(st, writes, tag)
        return st

    def _other_iteration(self, s: ir.For, st: State, fr: Frame, lo: Val, hi: Val,
                         writes: Writes, tag: str) -> CSum:
        """The cycles of a whole iteration of loop ``s`` that does not return, executed
        again over fresh unknowns (counter, carried state, native results) for its cost
        only: any iteration's cost is at most this one's maximum."""
        return self._iteration_cost(s, st, fr, lo, hi, 0, writes, tag, {})

    def _iteration_cost(self, s: ir.For, st: State, fr: Frame, lo: Val, hi: Val, skip: int,
                        writes: Writes, tag: str,
                        narrowed: dict[int | str, tuple[int, int]]) -> CSum:
        """The cycles of an iteration of loop ``s`` after its first ``skip``, that does not
        return, executed again (for its cost only) over fresh unknowns: the counter, the
        carried state (in ``narrowed`` intervals where given), native results."""
        body = State(dict(st.locals), st.mem.copy(), st.conds)
        self._havoc(body, writes, tag, narrowed)
        counter = self.inputs.fresh(Role.COUNTER, s.counter.name, s.counter.type)
        self.inputs.guessed.add(counter.bv.decl().name())
        body.locals[s.counter.id] = counter
        w = WIDTH + 2
        entry = (widen(counter.bv, w) >= widen(lo.bv, w) + skip, counter.bv < hi.bv)
        body.conds = body.conds + entry
        self.loop_facts.append(z3.Implies(widen(hi.bv, w) - widen(lo.bv, w) > skip,
                                          z3.And(*entry)))
        outer_exits, outer_base = fr.exits, fr.cond_base
        fr.exits, fr.cond_base = [], len(st.conds)
        self._cost_only += 1
        try:
            end = self.block(s.body, body, fr)
        finally:
            self._cost_only -= 1
            fr.exits, fr.cond_base = outer_exits, outer_base
        if end is None:  # every path returns
            return ZERO
        end.charge(self.cyc[isa.FORLOOP])
        return end.absolute()

    def _note_assigned(self, key: int | str, v: Val) -> None:
        if self._assigned:
            self._note_range(key, (v.lo, v.hi))

    def _note_range(self, key: int | str, r: tuple[int, int]) -> None:
        if self._assigned:
            d = self._assigned[-1]
            old = d.get(key)
            d[key] = r if old is None else (min(old[0], r[0]), max(old[1], r[1]))

    def _loop_cost(self, s: ir.For, st: State, fr: Frame, lo: Val, hi: Val, counter: Val,
                   carried: set[str], iteration: CSum, writes: Writes,
                   assigned: dict[int | str, tuple[int, int]], tag: str,
                   variant: set[str]) -> CSum:
        """The cycles of a loop that never returns, from ``st`` (the state on entry).

        Every iteration at the worst of an arbitrary one is exact when an iteration's cost
        depends on neither its counter nor what earlier iterations left: then all can be the
        worst at once. Otherwise it may be loose (a window that grows with the counter, a
        branch taken at the first iteration only, a flag the first iteration sets), so the
        first iterations are executed one by one, from the actual state, with the actual
        counter: all of them when the loop is short (exact), the first one otherwise."""
        trips = max(0, hi.hi - lo.lo)
        key = counter.bv.decl().name()
        if trips == 0 or not depends_on(cost_terms(iteration), carried | {key}, key):
            return CSum(0, (CLoop(lo, hi, iteration),))
        if trips > UNROLL_TRIPS and not depends_on(cost_terms(iteration), carried, None):
            # The cost depends on the counter alone: summed over it in closed form when it
            # does so through guards (`if s < k`) and triangular inner loops (`0 .. i`).
            summed = CounterSum(self.shapes, counter, variant | {key}).of(iteration, lo, hi)
            if summed is not None:
                return summed
        first = trips if trips <= UNROLL_TRIPS else PEEL_TRIPS
        if first > self._unroll_left:
            return CSum(0, (CLoop(lo, hi, iteration),))
        self._unroll_left -= first
        cost, after = self._unrolled(s, st, fr, lo, hi, first)
        if first < trips:
            # The ones after those start from what the first left, or from a value the body
            # assigns: an iteration over that narrower state stands for them (a flag set on
            # the first iteration stays set), else the arbitrary iteration does.
            rest = self._later_iteration(s, st, fr, lo, hi, first, writes, assigned, after, tag)
            if rest is None:
                rest = iteration
                w = WIDTH + 2
                self.loop_facts.append(z3.Implies(
                    widen(hi.bv, w) - widen(lo.bv, w) > first,
                    widen(counter.bv, w) >= widen(lo.bv, w) + first))
            cost = cost.add(CLoop(lo, hi, rest, skip=first))
        return cost

    def _later_iteration(self, s: ir.For, st: State, fr: Frame, lo: Val, hi: Val, first: int,
                         writes: Writes, assigned: dict[int | str, tuple[int, int]],
                         after: State, tag: str) -> CSum | None:
        """The cost of an iteration after the first ``first``, executed again (for its
        cost only) from a state where each carried local and state variable lies in the
        hull of its value after those iterations and of every value the body assigns it
        (sound: it holds either); None when that narrows nothing."""
        narrowed: dict[int | str, tuple[int, int]] = {}
        for lid in writes.locals:
            r = assigned.get(lid)
            v = after.locals.get(lid)
            if r is None or v is None:
                continue
            narrowed[lid] = (min(r[0], v.lo), max(r[1], v.hi))
        for name in writes.vars:
            r = assigned.get(name)
            if r is None:
                continue
            v = after.mem.var(name)
            narrowed[name] = (min(r[0], v.lo), max(r[1], v.hi))
        declared: dict[int | str, ir.Type] = {lid: loc.type for lid, loc in writes.locals.items()}
        declared.update({n: self.inputs.index.globals[n].type for n in writes.vars})
        if not any(_narrower(r, declared[k]) for k, r in narrowed.items()):
            return None
        return self._iteration_cost(s, st, fr, lo, hi, first, writes, tag, narrowed)

    def _unrolled(self, s: ir.For, entry: State, fr: Frame, lo: Val, hi: Val,
                  count: int) -> tuple[CSum, State]:
        """The cycles of the first ``count`` iterations of loop ``s``, one after the other
        from state ``entry`` (for the cost only: the obligations are the arbitrary
        iteration's), and the state after them on the path where they all ran: iteration
        ``j`` runs only if every earlier one did, so each runs from the previous one's end
        and costs its cycles where the loop has more than ``j`` iterations."""
        w = WIDTH + 2
        span = widen(hi.bv, w) - widen(lo.bv, w)
        cur = State(dict(entry.locals), entry.mem.copy(), entry.conds)
        total = ZERO
        self._cost_only += 1
        try:
            for j in range(count):
                runs = span > j
                it = State(dict(cur.locals), cur.mem.copy(), cur.conds + (runs,))
                it.locals[s.counter.id] = Val(lo.bv + j if j else lo.bv, lo.lo + j,
                                              min(lo.hi + j, hi.hi - 1))
                end = self.block(s.body, it, fr)
                assert end is not None  # the body never returns
                end.charge(self.cyc[isa.FORLOOP])
                total = total.then(choose(runs, end.absolute(), ZERO))
                cur = end
        finally:
            self._cost_only -= 1
        return total, cur

    def _havoc(self, st: State, writes: Writes, tag: str,
               narrowed: dict[int | str, tuple[int, int]] | None = None) -> set[str]:
        """Make everything ``writes`` names unknown in its type (or in the interval
        ``narrowed`` gives it); the unknowns' keys."""
        keys = set()
        narrowed = narrowed or {}
        for lid, local in writes.locals.items():
            if lid in st.locals:
                v = st.locals[lid] = self._carried(local.name, local.type, narrowed.get(lid))
                if z3.is_app_of(v.term, z3.Z3_OP_UNINTERPRETED):
                    keys.add(v.term.decl().name())
        index = self.inputs.index
        for name in sorted(writes.vars):  # sorted: the same unknowns on every run
            g = index.globals[name]
            v = st.mem.vars[name] = self._carried(name, g.type, narrowed.get(name), g.value)
            if z3.is_app_of(v.term, z3.Z3_OP_UNINTERPRETED):
                keys.add(v.term.decl().name())
        for name in sorted(writes.arrays):
            a = st.mem.arrays[name] = self.inputs.array(
                Role.CARRIED_ARRAY, name, default=array_default(index.arrays[name]))
            keys.add(a.decl().name())
        return keys

    def _carried(self, name: str, ty: ir.Type, r: tuple[int, int] | None,
                 default: int | None = None) -> Val:
        """A value carried into an iteration: unknown in ``ty``, or in ``r`` if narrower."""
        if r is not None and _narrower(r, ty):
            if r[0] == r[1]:
                return bool_const(bool(r[0])) if isinstance(ty, ir.BoolType) \
                    else bv_const(r[0])
            if isinstance(ty, ir.IntType):
                return self.inputs.fresh(Role.CARRIED, name, ir.IntType(*r), default=default)
        return self.inputs.fresh(Role.CARRIED, name, ty, default=default)

    # -- what code writes

    def writes(self, stmts: tuple[ir.Stmt, ...], program: ir.Program) -> Writes:
        locals_: dict[int, ir.Local] = {}
        vars_: set[str] = set()
        arrays: set[str] = set()

        for st in statements(stmts):
            if isinstance(st, ir.AssignLocal):
                locals_[st.local.id] = st.local
            elif isinstance(st, ir.AssignGlobal):
                vars_.add(st.glob.name)
            elif isinstance(st, ir.AssignElement):
                arrays.add(st.array.name)
            for e in expressions(st):
                for x in subexpressions(e):
                    if isinstance(x, ir.Call):
                        w = self._function_writes(x.function, program)
                        vars_.update(w.vars)
                        arrays.update(w.arrays)
        return Writes(locals_, frozenset(vars_), frozenset(arrays))

    def _function_writes(self, name: str, program: ir.Program) -> Writes:
        key = (program.name, name)
        if key not in self._writes:
            w = self.writes(self._function(program, name).body, program)
            self._writes[key] = Writes({}, w.vars, w.arrays)
        return self._writes[key]

    # -- obligations

    def require(self, kind: Kind, span: ir.Span, st: State, fr: Frame,
                formula: Callable[[], z3.BoolRef], message: str, trivial: bool,
                detail: Detail | None = None) -> None:
        """Obligation ``formula`` (built only when the intervals do not already decide it)."""
        if self._cost_only:
            return
        if trivial:
            self.check.proven_by_ranges(kind, span, fr.where, message)
        else:
            self.check.require(kind, span, fr.where, st.conds, formula(), message, False,
                               detail)

    def store_check(self, kind: Kind, v: Val, ty: ir.IntType, span: ir.Span, st: State,
                    fr: Frame, message: str) -> Val:
        """``v`` must lie in ``ty`` (a store, argument or result); returns it narrowed."""
        if ty.is_full:
            return v

        def detail(m: z3.ModelRef) -> str:
            return f"the value is {_value_of(m, v.term)}, outside {ty.lo} .. {ty.hi}"

        self.require(kind, span, st, fr, lambda: in_range(v.bv, ty.lo, ty.hi), message,
                     ty.lo <= v.lo and v.hi <= ty.hi, detail)
        return _narrow(v, ty)

    def index_check(self, array: ir.Array, index: Val, span: ir.Span, st: State,
                    fr: Frame) -> None:
        n = array.length

        def detail(m: z3.ModelRef) -> str:
            return (f"index {_value_of(m, index.term)} is out of bounds: `{array.name}` has "
                    f"{n} entries")

        self.require(Kind.INDEX, span, st, fr, lambda: in_range(index.bv, 0, n - 1),
                     f"the index into `{array.name}` is within 0 .. {n - 1}",
                     0 <= index.lo and index.hi < n, detail)

    # -- expressions: values

    def value(self, e: ir.Expr, st: State, fr: Frame) -> Val:
        """Evaluate ``e`` as codegen's ``expr`` does (pushing its value)."""
        c = self.cyc
        if isinstance(e, ir.Const):
            st.charge(c[isa.PUSH])
            return bool_const(bool(e.value)) if isinstance(e.type, ir.BoolType) \
                else bv_const(e.value)
        if isinstance(e, ir.LocalRef):
            st.charge(c[isa.LOAD_L])
            return st.locals[e.local.id]
        if isinstance(e, ir.GlobalRef):
            st.charge(c[isa.LOAD_G])
            g = e.glob
            if not g.writable:
                return self.inputs.param(g.name)
            if g.name in self.interleaved.vars:  # another task may have written it since
                return self.inputs.fresh(Role.CARRIED, g.name, g.type, default=g.value)
            return st.mem.var(g.name)
        if isinstance(e, ir.ArrayRef):
            index = self.value(e.index, st, fr)
            st.charge(c[isa.LOAD_A])
            self.index_check(e.array, index, e.index.span, st, fr)
            name = e.array.name
            array = st.mem.array(name) if name not in self.interleaved.arrays else \
                self.inputs.array(Role.CARRIED_ARRAY, name,
                                  default=array_default(self.inputs.index.arrays[name]))
            return self.inputs.read(array, index, e.array.type)
        if isinstance(e, ir.Unary):
            return self.unary(e, st, fr)
        if isinstance(e, ir.Binary):
            if e.op in ir.LOGICAL:  # codegen's materialize: jumps, then PUSH 1 or PUSH 0
                cond = self.branch(e, st, fr, _Jump.UNLESS)
                push, jmp = c[isa.PUSH], c[isa.JMP]
                st.cost = st.cost.then(choose(cond, CSum(push + jmp), CSum(push)))
                return Val(cond, 0, 1)
            a = self.value(e.left, st, fr)
            b = self.value(e.right, st, fr)
            return self.binary(e, a, b, st, fr)
        if isinstance(e, ir.Call):
            callee = self._function(fr.program, e.function)
            args = self.args(e.args, callee, st, fr)
            st.charge(c.call(isa.CALL, fr.program.name, callee.name))
            result = self.inline(callee, fr.program, args, st, fr, free_returns=False)
            return result if result is not None else bv_const(0)
        if isinstance(e, ir.InstrCall):
            vmlet = next(p for p in (fr.program, *fr.program.uses) if p.name == e.vmlet)
            instr = vmlet.instr(e.vmlet, e.instr)
            args = self.args(e.args, instr, st, fr)
            st.charge(c.call(isa.EXT_BASE, vmlet.name, instr.name))
            result = self.inline(instr, vmlet, args, st, fr, free_returns=True)
            assert result is not None  # instructions return a value
            return result
        if isinstance(e, ir.NativeCall):
            return self.native(e, st, fr)
        if isinstance(e, ir.EnvRead):
            st.charge(c[isa.ENV])
            return self.inputs.env_value(e.key, e.type)
        raise TypeError(e)  # pragma: no cover - the IR is closed

    def args(self, exprs: tuple[ir.Expr, ...], callee: ir.Procedure, st: State,
             fr: Frame) -> list[Val]:
        out = []
        what = "instruction" if callee.kind is ir.ProcKind.INSTR else "function"
        for a, p in zip(exprs, callee.params, strict=True):
            v = self.value(a, st, fr)
            if isinstance(p.type, ir.IntType):
                if needs_range_check(p.type, a.type):
                    st.charge(self.cyc[isa.RANGE])
                v = self.store_check(Kind.ARGUMENT, v, p.type, a.span, st, fr,
                                     f"argument `{p.name}` of {what} `{callee.name}` is "
                                     f"within {p.type}")
            out.append(v)
        return out

    def native(self, e: ir.NativeCall, st: State, fr: Frame) -> Val:
        args = [self.value(a, st, fr) for a in e.args]
        decl = self.mission.natives[e.native.name]
        call = self.cyc[isa.CALLN]
        checked = []
        for v, a, (pname, ty) in zip(args, e.args, e.native.params, strict=True):
            checked.append(self.store_check(
                Kind.NATIVE_ARG, v, ty, a.span, st, fr,
                f"argument `{pname}` of native `{e.native.name}` is within {ty.lo} .. {ty.hi}"))
        own = CNative(decl.name, decl.cost, tuple(a.name for a in decl.args), tuple(checked))
        st.cost = st.cost.plus(call).add(own)
        self.frame_check(own, call, e, st, fr)
        if e.type is None:
            return bv_const(0)
        return self.inputs.fresh(Role.NATIVE, e.native.name, e.type,
                                 tuple(v.bv for v in checked))

    def frame_check(self, own: CNative, call: int, e: ir.NativeCall, st: State,
                    fr: Frame) -> None:
        """One native call must fit in what a frame leaves the VVM after the patch reserve:
        the VVM never splits an instruction across frames."""
        bounds = Bounds()
        cost = CSum(call, (own,))
        _lo, hi = bounds.of(cost)
        self.largest_native = max(self.largest_native, hi)
        if self._cost_only:
            return
        budget = self.frame_budget
        message = (f"a call of `{e.native.name}` fits in one frame's share ({budget} cycles "
                   "after the patch reserve)")
        if hi <= budget:
            self.check.proven_by_ranges(Kind.NATIVE_FRAME, e.span, fr.where, message)
            return
        term = Encoder(max(WIDTH + 2, bounds.max_abs.bit_length() + 2)).of(cost)

        def detail(m: z3.ModelRef) -> str:
            return f"this call costs {_value_of(m, term)} cycles"

        self.require(Kind.NATIVE_FRAME, e.span, st, fr, lambda: term <= budget, message, False,
                     detail)

    def unary(self, e: ir.Unary, st: State, fr: Frame) -> Val:
        v = self.value(e.operand, st, fr)
        if e.op is ir.UnOp.NOT:
            st.charge(self.cyc[isa.NOT])
            return Val(z3.Not(v.cond), 1 - v.hi, 1 - v.lo)
        st.charge(self.cyc[isa.NEG if e.op is ir.UnOp.NEG else isa.ABS])
        word = "-" if e.op is ir.UnOp.NEG else "abs"

        def detail(m: z3.ModelRef) -> str:
            return f"{word}({_value_of(m, v.term)}) = {-_value_of(m, v.term)} overflows"

        self.require(Kind.OVERFLOW, e.span, st, fr, lambda: v.bv != INT_MIN,
                     f"`{text(e)}` stays within 32 bits", v.lo > INT_MIN, detail)
        r = unary_range(e.op, ir.IntType(max(v.lo, INT_MIN + 1), max(v.hi, INT_MIN + 1)))
        term = -v.bv if e.op is ir.UnOp.NEG else z3.If(v.bv < 0, -v.bv, v.bv)
        return Val(term, r.lo, r.hi)

    def binary(self, e: ir.Binary, a: Val, b: Val, st: State, fr: Frame) -> Val:
        op = e.op
        c = self.cyc
        if op in ir.COMPARISONS:
            st.charge(c[OPCODES[op]])
            out = _compare(op, a, b)
            if not a.is_bool:
                self.shapes[out.term.get_id()] = (op, a, b)
            return out
        st.charge(c[OPCODES[op]])
        x, y = a.bv, b.bv
        ta, tb = ir.IntType(a.lo, a.hi), ir.IntType(b.lo, b.hi)
        if op in (ir.BinOp.ADD, ir.BinOp.SUB, ir.BinOp.MUL):
            self.require(Kind.OVERFLOW, e.span, st, fr, lambda: _no_overflow(op, x, y),
                         f"`{text(e)}` stays within 32 bits", fits(*_exact(op, a, b)),
                         _overflow_detail(op, a, b))
            term = x + y if op is ir.BinOp.ADD else x - y if op is ir.BinOp.SUB else x * y
            r = binary_range(op, ta, tb)
            out = Val(term, r.lo, r.hi)
            if op is not ir.BinOp.MUL:
                self.shapes[term.get_id()] = (op, a, b)
            return out
        if op in (ir.BinOp.DIV, ir.BinOp.MOD):
            self.require(Kind.DIV_ZERO, e.right.span, st, fr, lambda: y != 0,
                         f"the divisor `{text(e.right)}` is not 0", not b.lo <= 0 <= b.hi,
                         lambda m: "the divisor is 0")
            self.require(Kind.OVERFLOW, e.span, st, fr, lambda: z3.Or(x != INT_MIN, y != -1),
                         f"`{text(e)}` stays within 32 bits",
                         a.lo > INT_MIN or not b.lo <= -1 <= b.hi,
                         lambda m: f"{INT_MIN} {op.value} -1 overflows")
            r = binary_range(op, ta, tb)
            term = x / y if op is ir.BinOp.DIV else z3.SRem(x, y)
            return Val(term, r.lo, r.hi)
        r = binary_range(op, ta, tb)  # MIN, MAX
        if op is ir.BinOp.MIN:
            return Val(z3.If(x <= y, x, y), r.lo, r.hi)
        return Val(z3.If(x >= y, x, y), r.lo, r.hi)

    # -- expressions: conditions

    def branch(self, e: ir.Expr, st: State, fr: Frame, jump: _Jump) -> z3.BoolRef:
        """Evaluate condition ``e`` as codegen's ``jump_unless``/``jump_if`` do."""
        c = self.cyc
        if isinstance(e, ir.Const):
            if bool(e.value) == (jump is _Jump.IF):
                st.charge(c[isa.JMP])  # an unconditional jump
            return z3.BoolVal(bool(e.value))
        if isinstance(e, ir.Binary) and e.op is ir.BinOp.AND:
            left = self.branch(e.left, st, fr, _Jump.UNLESS)
            holds = st.fork(left)
            right = self.branch(e.right, holds, fr, jump)
            st.absorb(_merge(st, left, holds, st.fork(z3.Not(left))) or st)
            return z3.And(left, right)
        if isinstance(e, ir.Binary) and e.op is ir.BinOp.OR:
            left = self.branch(e.left, st, fr, _Jump.IF)
            fails = st.fork(z3.Not(left))
            right = self.branch(e.right, fails, fr, jump)
            st.absorb(_merge(st, left, st.fork(left), fails) or st)
            return z3.Or(left, right)
        if isinstance(e, ir.Unary) and e.op is ir.UnOp.NOT:
            flipped = _Jump.IF if jump is _Jump.UNLESS else _Jump.UNLESS
            return z3.Not(self.branch(e.operand, st, fr, flipped))
        v = self.value(e, st, fr)
        st.charge(c[isa.JZ if jump is _Jump.UNLESS else isa.JNZ])
        if v.lo == v.hi:  # decided by the intervals: one side never runs
            return z3.BoolVal(bool(v.lo))
        return v.cond


# --------------------------------------------------------------------------- helpers

def _exact(op: ir.BinOp, a: Val, b: Val) -> tuple[int, int]:
    """The interval of ``a op b`` in unbounded integers (before any overflow trap)."""
    if op is ir.BinOp.ADD:
        return a.lo + b.lo, a.hi + b.hi
    if op is ir.BinOp.SUB:
        return a.lo - b.hi, a.hi - b.lo
    p = (a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi)
    return min(p), max(p)


def _no_overflow(op: ir.BinOp, x: z3.BitVecRef, y: z3.BitVecRef) -> z3.BoolRef:
    """``x op y`` fits in 32 signed bits (z3's exact predicates for + - *)."""
    if op is ir.BinOp.ADD:
        return z3.And(z3.BVAddNoOverflow(x, y, True), z3.BVAddNoUnderflow(x, y))
    if op is ir.BinOp.SUB:
        return z3.And(z3.BVSubNoOverflow(x, y), z3.BVSubNoUnderflow(x, y, True))
    return z3.And(z3.BVMulNoOverflow(x, y, True), z3.BVMulNoUnderflow(x, y))


def _overflow_detail(op: ir.BinOp, a: Val, b: Val) -> Detail:
    def detail(m: z3.ModelRef) -> str:
        x, y = _value_of(m, a.term), _value_of(m, b.term)
        r = x + y if op is ir.BinOp.ADD else x - y if op is ir.BinOp.SUB else x * y
        return f"{x} {op.value} {y} = {r}, outside {INT_MIN} .. {INT_MAX}"
    return detail


def _compare(op: ir.BinOp, a: Val, b: Val) -> Val:
    if a.is_bool:
        eq = a.cond == b.cond
        term = eq if op is ir.BinOp.EQ else z3.Not(eq)
        return Val(term, 0, 1)
    x, y = a.bv, b.bv
    terms: dict[ir.BinOp, Callable[[], z3.BoolRef]] = {
        ir.BinOp.EQ: lambda: x == y, ir.BinOp.NE: lambda: x != y,
        ir.BinOp.LT: lambda: x < y, ir.BinOp.LE: lambda: x <= y,
        ir.BinOp.GT: lambda: x > y, ir.BinOp.GE: lambda: x >= y,
    }
    # Decided by the intervals alone? (keeps rules and conditions cheap)
    always = {ir.BinOp.LT: a.hi < b.lo, ir.BinOp.LE: a.hi <= b.lo, ir.BinOp.GT: a.lo > b.hi,
              ir.BinOp.GE: a.lo >= b.hi, ir.BinOp.EQ: a.lo == a.hi == b.lo == b.hi,
              ir.BinOp.NE: a.hi < b.lo or b.hi < a.lo}[op]
    never = {ir.BinOp.LT: a.lo >= b.hi, ir.BinOp.LE: a.lo > b.hi, ir.BinOp.GT: a.hi <= b.lo,
             ir.BinOp.GE: a.hi < b.lo, ir.BinOp.EQ: a.hi < b.lo or b.hi < a.lo,
             ir.BinOp.NE: a.lo == a.hi == b.lo == b.hi}[op]
    lo, hi = (1, 1) if always else (0, 0) if never else (0, 1)
    return Val(terms[op](), lo, hi)


def _narrower(r: tuple[int, int], ty: ir.Type) -> bool:
    """Whether interval ``r`` excludes some value of type ``ty``."""
    lo, hi = (0, 1) if isinstance(ty, ir.BoolType) else \
        (ty.lo, ty.hi) if isinstance(ty, ir.IntType) else (INT_MIN, INT_MAX)
    return r[0] > lo or r[1] < hi


def _merge(parent: State, cond: z3.BoolRef, then: State | None,
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
    mem = _merge_mem(cond, then.mem, other.mem)
    n = len(parent.conds)
    t_extra, o_extra = then.conds[n:], other.conds[n:]
    conds = parent.conds
    if len(t_extra) > 1 or len(o_extra) > 1:  # a side lost paths to a `return`
        conds = conds + (z3.Or(z3.And(*t_extra), z3.And(*o_extra)),)
    return State(locals_, mem, conds, parent.base,
                 parent.cost.then(choose(cond, then.cost, other.cost)))


def _merge_mem(cond: z3.BoolRef, a: Memory, b: Memory) -> Memory:
    # A name only one side holds was not touched on the other: it has its initial value.
    vars_ = {k: ite(cond, a.var(k), b.var(k)) for k in dict.fromkeys((*a.vars, *b.vars))}
    arrays = {}
    for k in dict.fromkeys((*a.arrays, *b.arrays)):
        x, y = a.array(k), b.array(k)
        arrays[k] = x if x is y else z3.If(cond, x, y)
    return Memory(vars_, arrays, a.initial)


def _join(exits: list[Exit]) -> tuple[Val | None, Memory, CSum]:
    """The result, memory and cost of a procedure from the paths that left it."""
    last = exits[-1]
    value, mem, cost = last.value, last.mem, last.cost
    for e in reversed(exits[:-1]):
        if value is not None and e.value is not None:
            value = ite(e.cond, e.value, value)
        elif value is None:
            value = e.value
        mem = _merge_mem(e.cond, e.mem, mem)
        cost = choose(e.cond, e.cost, cost)
    return value, mem, cost
