"""Loops under symbolic execution: an arbitrary iteration over carried unknowns, loops
that may return, and the exact cost of loops whose iterations cost differently (summed over
the counter in closed form, unrolled, or peeled)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import z3

from ccl import ir
from ccl.verify.cost import ZERO, CLoop, CSum, CycleTable, choose, cost_terms
from ccl.verify.counter_sum import CounterSum
from ccl.verify.inputs import Inputs, Role, array_default
from ccl.verify.symbolic.state import Exit, Frame, State, Writes, narrower
from ccl.verify.terms import WIDTH, Val, bool_const, bv_const, depends_on, widen
from onboard.vm import isa

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


class Loops:
    """The loop half of ``Executor`` (a mixin: the state is the executor's)."""

    cyc: CycleTable
    inputs: Inputs
    loop_facts: list[z3.BoolRef]
    shapes: dict[int, tuple[ir.BinOp, Val, Val]]
    _cost_only: int
    _unroll_left: int
    _assigned: list[dict[int | str, tuple[int, int]]]

    if TYPE_CHECKING:  # provided by Executor and Values
        def block(self, stmts: tuple[ir.Stmt, ...], st: State, fr: Frame) -> State | None: ...

        def value(self, e: ir.Expr, st: State, fr: Frame) -> Val: ...

        def writes(self, stmts: tuple[ir.Stmt, ...], program: ir.Program) -> Writes: ...

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
        if not any(narrower(r, declared[k]) for k, r in narrowed.items()):
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
        if r is not None and narrower(r, ty):
            if r[0] == r[1]:
                return bool_const(bool(r[0])) if isinstance(ty, ir.BoolType) \
                    else bv_const(r[0])
            if isinstance(ty, ir.IntType):
                return self.inputs.fresh(Role.CARRIED, name, ir.IntType(*r), default=default)
        return self.inputs.fresh(Role.CARRIED, name, ty, default=default)
