"""The symbolic executor: entry points (a task, a handler, a rule, a procedure on its own),
inlined calls, statements, and what code writes. Loops are ``Loops``'s, expressions
``Values``'s."""

from __future__ import annotations

from collections.abc import Sequence

import z3

from ccl import ir
from ccl.verify.cost import CSum, CycleTable
from ccl.verify.inputs import Inputs, Role
from ccl.verify.irwalk import expressions, statements, subexpressions
from ccl.verify.obligations import Kind
from ccl.verify.solver import Checker
from ccl.verify.symbolic.loops import UNROLL_BUDGET, Loops
from ccl.verify.symbolic.state import (
    Exit,
    Frame,
    Jump,
    Memory,
    State,
    Writes,
    join,
    merge,
)
from ccl.verify.symbolic.values import Values
from ccl.verify.terms import Val
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.machine import Limits


class Executor(Loops, Values):
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
        return join(frame.exits)

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
                v = self.range_checked(Kind.RANGE, v, ty, s.value, st, fr,
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
                    value = self.range_checked(Kind.RESULT, value, ret, s.value, st, fr,
                                               f"the result of `{fr.proc.name}` is within "
                                               f"{ret}")
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
        cond = self.branch(s.cond, st, fr, Jump.UNLESS)
        then = self.block(s.then, st.fork(cond), fr)
        if s.otherwise and then is not None and not ir.always_returns(s.then):
            then.charge(self.cyc[isa.JMP])
        other = self.block(s.otherwise, st.fork(z3.Not(cond)), fr)
        return merge(st, cond, then, other)

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
