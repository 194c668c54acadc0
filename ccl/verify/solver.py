"""Discharging obligations: intervals first, then Z3, with counterexamples.

One ``Checker`` per procedure keeps one incremental Z3 solver holding the facts about the
procedure's unknowns. Each obligation is checked where it arises, under the path condition
that reaches it: the solver looks for values that satisfy the path and break the obligation.
None (unsat): proven. Some (sat): refuted, and the model, pushed first towards the extremes of
the parameters' ranges, is the counterexample. Neither within the time limit: unknown.

Afterwards the obligation is *assumed* (asserted under its path condition), as the VVM would
have trapped otherwise; so every counterexample shows the first trap on its path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import z3

from ccl.diagnostics import Span
from ccl.verify.inputs import Inputs
from ccl.verify.obligations import Kind, Method, Obligation, Status

#: Builds the detail line of a counterexample from the model ("1024 > 512").
Detail = Callable[[z3.ModelRef], str]


#: Z3 resource units one millisecond of ``timeout_ms`` buys. The limit that decides is this
#: count of units, not the clock, so a verdict does not depend on how loaded the machine is
#: (calibrated on the 2-core development machine, where Z3 spends about 1,000 to 3,000
#: units a millisecond); the clock stops a query only far beyond it.
RLIMIT_PER_MS = 3_000
WALL_CLOCK_FACTOR = 20


def solver_for(timeout_ms: int) -> z3.Solver:
    """A solver for the verifier's queries (bit-vectors, arrays) under ``timeout_ms``: a
    deterministic resource limit, with a far wall-clock backstop."""
    solver = z3.SolverFor("QF_AUFBV")
    solver.set(rlimit=max(1, timeout_ms) * RLIMIT_PER_MS,
               timeout=max(1, timeout_ms) * WALL_CLOCK_FACTOR)
    return solver


class Checker:
    """Checks the obligations of one procedure."""

    def __init__(self, inputs: Inputs, timeout_ms: int,
                 assumptions: Sequence[z3.BoolRef] = ()) -> None:
        self.inputs = inputs
        self.timeout_ms = timeout_ms
        self.solver = solver_for(timeout_ms)
        self.solver.add(*assumptions)
        self._synced = 0
        self._queries = 0
        self.results: list[Obligation] = []
        #: What was assumed after each check: the obligation under its path condition.
        self.assumed: list[z3.BoolRef] = []

    def _sync(self) -> None:
        facts = self.inputs.facts
        if self._synced < len(facts):
            self.solver.add(*facts[self._synced:])
            self._synced = len(facts)

    def proven_by_ranges(self, kind: Kind, span: Span | None, where: str,
                         message: str) -> Obligation:
        """Record an obligation the intervals of the declared ranges already prove."""
        ob = Obligation(kind, Status.PROVEN, span, message, where, Method.RANGES)
        self.results.append(ob)
        return ob

    def require(self, kind: Kind, span: Span | None, where: str, conds: Sequence[z3.BoolRef],
                formula: z3.BoolRef, message: str, trivial: bool,
                detail: Detail | None = None) -> Obligation:
        """Check that ``formula`` holds wherever ``conds`` do; record and return the verdict.
        ``trivial``: the intervals already prove it (no solver call)."""
        if trivial or z3.is_true(formula):
            return self.proven_by_ranges(kind, span, where, message)
        self._sync()
        start = time.perf_counter()
        s = self.solver
        # "Some run reaches here and breaks it", behind a fresh literal (cheaper than
        # push/pop, and what the solver learns stays valid for the next obligations).
        self._queries += 1
        broken = z3.Bool(f"broken#{self._queries}")
        s.add(z3.Implies(broken, z3.And(*conds, z3.Not(formula))))
        verdict = s.check(broken)
        if verdict == z3.sat:
            model = s.model()
            preferences = self.inputs.preferences([formula, *conds])
            if preferences and s.check(broken, *preferences) == z3.sat:
                model = s.model()
            else:
                chosen: list[z3.BoolRef] = []
                for preference in preferences:
                    if s.check(broken, *chosen, preference) == z3.sat:
                        model = s.model()
                        chosen.append(preference)
            cex = self.inputs.counterexample(model, [formula, *conds],
                                             detail(model) if detail else "")
            ob = Obligation(kind, Status.REFUTED, span, message, where, Method.Z3, cex,
                            seconds=time.perf_counter() - start)
        elif verdict == z3.unsat:
            ob = Obligation(kind, Status.PROVEN, span, message, where, Method.Z3,
                            seconds=time.perf_counter() - start)
        else:
            ob = Obligation(kind, Status.UNKNOWN, span, message, where, Method.Z3,
                            reason=_unknown_reason(s, self.timeout_ms),
                            seconds=time.perf_counter() - start)
        assumed = z3.Implies(z3.And(*conds), formula) if conds else formula
        s.add(assumed)
        self.assumed.append(assumed)
        self.results.append(ob)
        return ob


def _unknown_reason(solver: z3.Solver, timeout_ms: int) -> str:
    reason = solver.reason_unknown()
    if reason in ("timeout", "canceled", "max. resource limit exceeded"):
        return f"the solver gave up at its limit (--timeout {timeout_ms / 1000:g} s)"
    return f"the solver gave up ({reason})"
