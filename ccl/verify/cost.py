"""Worst-case cycles: cost expressions over the program's symbolic values, and their exact
maximum.

The symbolic executor (``ccl.verify.symbolic``) builds, for every procedure, a *cost
expression*: the cycles the VVM charges for the bytecode ``ccl.codegen`` emits (every
instruction at its mission cost class; ``CALLN`` plus the native's cost formula on its
arguments; an extension opcode's dispatch plus its inlined body, whose returns are free),
with an if-then-else wherever the path depends on a value and a product wherever a loop
repeats its body. Maximising that expression over every input the program can see gives
the worst case and the inputs that reach it.

Two steps, cheap first: interval arithmetic gives an upper bound (every branch at its worse
side, every loop at its most trips, every native at its dearest arguments); then Z3 is asked
whether some input reaches it. Usually one does, and the bound is exact; otherwise a binary
search with Z3 closes the gap exactly (or stops at a time limit, keeping the sound upper
bound and saying it may not be tight).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import z3

from ccl.verify.solver import solver_for
from ccl.verify.terms import WIDTH, Val, widen
from onboard.mission import CostFormula, MissionProfile
from onboard.vm.image import Image
from onboard.vm.machine import call_cycles, opcode_cycles

# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, eq=False)
class CSum:
    """``k`` plus the sum of ``parts``: the cost of a straight run of code."""

    k: int
    parts: tuple[CostNode, ...] = ()

    def plus(self, cycles: int) -> CSum:
        return CSum(self.k + cycles, self.parts) if cycles else self

    def then(self, other: CSum) -> CSum:
        """This cost followed by ``other``."""
        if not other.parts:
            return self.plus(other.k)
        return CSum(self.k + other.k, self.parts + other.parts)

    def add(self, node: CostNode) -> CSum:
        return CSum(self.k, self.parts + (node,))

    @property
    def constant(self) -> bool:
        return not self.parts


@dataclass(frozen=True, eq=False)
class CIte:
    """``then`` where ``cond`` holds, else ``other``."""

    cond: z3.BoolRef
    then: CSum
    other: CSum


@dataclass(frozen=True, eq=False)
class CLoop:
    """``max(0, hi - lo - skip)`` iterations of ``body`` (bounds evaluated once, on entry):
    the iterations of a loop after the first ``skip``, which are counted on their own."""

    lo: Val
    hi: Val
    body: CSum
    skip: int = 0

    @property
    def trips_range(self) -> tuple[int, int]:
        """The fewest and the most iterations the bounds' intervals allow."""
        return (max(0, self.hi.lo - self.lo.hi - self.skip),
                max(0, self.hi.hi - self.lo.lo - self.skip))

    def trips(self, width: int) -> z3.BitVecRef:
        """The number of iterations as a ``width``-bit term (wide enough not to overflow)."""
        span = widen(self.hi.bv, width) - widen(self.lo.bv, width) - self.skip
        return z3.If(span > 0, span, z3.BitVecVal(0, width))


@dataclass(frozen=True, eq=False)
class CNative:
    """A native's own cycles: its cost formula on the call's arguments."""

    name: str
    formula: CostFormula
    arg_names: tuple[str, ...]
    args: tuple[Val, ...]


CostNode = CIte | CLoop | CNative
ZERO = CSum(0)


def choose(cond: z3.BoolRef, then: CSum, other: CSum) -> CSum:
    """The cost ``then`` where ``cond`` holds, else ``other`` (simplified when it can be)."""
    if then is other or (then.constant and other.constant and then.k == other.k):
        return then
    if z3.is_true(cond):
        return then
    if z3.is_false(cond):
        return other
    common = min(then.k, other.k)
    if then.constant and other.constant:
        return CSum(common, (CIte(cond, CSum(then.k - common), CSum(other.k - common)),))
    return CSum(common, (CIte(cond, then.plus(-common), other.plus(-common)),))


def cost_nodes(c: CSum | CostNode) -> Iterator[CSum | CostNode]:
    """Every node of a cost, once each (shared subtrees included once)."""
    seen: set[int] = set()
    stack: list[CSum | CostNode] = [c]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        yield n
        if isinstance(n, CSum):
            stack.extend(n.parts)
        elif isinstance(n, CIte):
            stack.extend((n.then, n.other))
        elif isinstance(n, CLoop):
            stack.append(n.body)


def cost_terms(c: CSum | CostNode) -> list[z3.ExprRef]:
    """The Z3 terms a cost depends on: conditions of its branches, bounds of its loops, and
    the arguments its natives' cost formulas read."""
    out: list[z3.ExprRef] = []
    for n in cost_nodes(c):
        if isinstance(n, CIte):
            out.append(n.cond)
        elif isinstance(n, CLoop):
            out += (n.lo.term, n.hi.term)
        elif not isinstance(n, CSum):
            used = _formula_names(n.formula)
            out += [a.term for name, a in zip(n.arg_names, n.args, strict=True) if name in used]
    return out


def _formula_names(formula: CostFormula) -> frozenset[str]:
    return frozenset(x.id for x in ast.walk(formula.tree) if isinstance(x, ast.Name)
                     and x.id not in ("min", "max"))


# --------------------------------------------------------------------------- cycle table


@dataclass(frozen=True)
class CycleTable:
    """Cycles of each opcode under a mission's CPU model, and of each call by the frame
    its callee needs."""

    cycles: tuple[int, ...]  # by opcode; extension opcodes: the dispatch
    frame_slot: int = 0  # cycles per local of a frame a call pushes
    frames: Mapping[tuple[str, str], int] = field(default_factory=dict)  # locals by
    # (image, code unit): what the compiler gave each function and instruction

    @staticmethod
    def of(profile: MissionProfile, images: Iterable[Image] = ()) -> CycleTable:
        """The board's table (``onboard.vm.machine.opcode_cycles``), with the frames of the
        code units of ``images`` (the configuration's and its VMlets')."""
        frames = {(im.name, f.name): f.n_locals for im in images for f in im.functions}
        return CycleTable(opcode_cycles(profile), profile.frame_slot_cycles, frames)

    def __getitem__(self, opcode: int) -> int:
        return self.cycles[opcode]

    def call(self, opcode: int, image: str, unit: str) -> int:
        """What a ``CALL`` (or extension ``opcode``) of code unit ``unit`` of ``image``
        is charged: the machine model's ``call_cycles`` on that unit's frame."""
        return call_cycles(self.cycles, self.frame_slot, opcode, self.frames[(image, unit)])


# --------------------------------------------------------------------------- intervals


class Bounds:
    """Interval bounds of cost expressions (memoised: expressions share sub-expressions)."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[int, int]] = {}
        self.max_abs = 0  # the largest magnitude any sub-expression can take

    def of(self, c: CSum | CostNode) -> tuple[int, int]:
        key = id(c)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if isinstance(c, CSum):
            lo = hi = c.k
            for p in c.parts:
                plo, phi = self.of(p)
                lo, hi = lo + plo, hi + phi
        elif isinstance(c, CIte):
            a, b = self.of(c.then), self.of(c.other)
            lo, hi = min(a[0], b[0]), max(a[1], b[1])
        elif isinstance(c, CLoop):
            trips = c.trips_range
            body = self.of(c.body)
            lo, hi = _mul(trips, body)
            self._note(trips[1])
        else:
            args = dict(zip(c.arg_names, ((a.lo, a.hi) for a in c.args), strict=True))
            lo, hi = c.formula.bounds(args)
            self._note(c.formula.magnitude(args))
        self._note(lo, hi)
        self._memo[key] = (lo, hi)
        return lo, hi

    def _note(self, *values: int) -> None:
        for v in values:
            self.max_abs = max(self.max_abs, abs(v))


def _constant(node: ast.Constant) -> int:
    """An integer literal of a cost formula (the mission loader admits no other)."""
    assert isinstance(node.value, int), node.value
    return node.value


def _mul(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    p = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return min(p), max(p)


# --------------------------------------------------------------------------- Z3 encoding


class Encoder:
    """Cost expressions as Z3 bit-vectors of a width that cannot overflow."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._memo: dict[int, z3.BitVecRef] = {}

    def of(self, c: CSum | CostNode) -> z3.BitVecRef:
        key = id(c)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        w = self.width
        out: z3.BitVecRef
        if isinstance(c, CSum):
            out = z3.BitVecVal(c.k, w)
            for p in c.parts:
                out = out + self.of(p)
        elif isinstance(c, CIte):
            out = z3.If(c.cond, self.of(c.then), self.of(c.other))
        elif isinstance(c, CLoop):
            out = c.trips(w) * self.of(c.body)
        else:
            env = {n: widen(a.bv, w) for n, a in zip(c.arg_names, c.args, strict=True)}
            out = self._formula(c.formula.tree, env)
        self._memo[key] = out
        return out

    def _formula(self, node: ast.expr, env: dict[str, z3.BitVecRef]) -> z3.BitVecRef:
        w = self.width
        if isinstance(node, ast.Constant):
            return z3.BitVecVal(_constant(node), w)
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.UnaryOp):
            return -self._formula(node.operand, env)
        if isinstance(node, ast.BinOp):
            a, b = self._formula(node.left, env), self._formula(node.right, env)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            q, r = a / b, z3.SRem(a, b)  # truncating; adjust to Python's floor division
            floor = z3.If(z3.And(r != 0, (r < 0) != (b < 0)), q - 1, q)
            return z3.If(b == 0, z3.BitVecVal(0, w), floor)
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        args = [self._formula(x, env) for x in node.args]
        out = args[0]
        for x in args[1:]:
            out = z3.If(x < out, x, out) if node.func.id == "min" else z3.If(x > out, x, out)
        return out


# --------------------------------------------------------------------------- maximum


@dataclass(frozen=True)
class Maximum:
    """The worst case of a cost expression.

    ``value`` is the largest cost some input reaches (``model`` holds such an input; None
    when the cost does not depend on inputs). ``bound`` is a proven upper bound: equal to
    ``value`` when ``exact``; larger when the solver stopped early (``reason`` says why)."""

    value: int
    bound: int
    exact: bool
    model: z3.ModelRef | None
    term: z3.BitVecRef | None
    reason: str = ""
    seconds: float = 0.0


#: Values to prefer in the model of a worst case (given the cost's Z3 term).
Preferences = Callable[[z3.BitVecRef], Sequence[z3.BoolRef]]


def maximize(cost: CSum, facts: Sequence[z3.BoolRef], timeout_ms: int,
             prefer: Preferences | None = None) -> Maximum:
    """The exact maximum of ``cost`` over every input satisfying ``facts``, and an input
    reaching it (satisfying as many of ``prefer``'s preferences as it can)."""
    start = time.perf_counter()
    m = _Maximizer(cost, facts, timeout_ms)
    value, bound, model, reason, reached = m.run(cost)
    term = m.enc.of(cost) if not cost.constant else None
    if model is not None and term is not None and prefer is not None:
        model = m.polish(model, reached, prefer(term))
    return Maximum(value, bound, value == bound, model, term, reason,
                   time.perf_counter() - start)


class _Maximizer:
    """Exact maximisation in three steps, cheapest first.

    1. *Attain the interval bound*: every part of the cost at the top of its interval, every
       loop at its most trips with its body at the top of its interval. One query without
       any multiplication (each loop is ``trips == T`` and its body's own target), usually
       satisfiable: then the interval bound is the exact maximum.
    2. *Refine the loops*: maximise each loop's trip count and body on their own (recursively,
       so nested loops too) and try to attain the refined bound the same way.
    3. *Binary search* on the cost itself (with its products), between the best cost reached
       and the refined bound; a query the solver cannot decide in time stops the search,
       keeping the (sound) upper bound.
    """

    def __init__(self, cost: CSum, facts: Sequence[z3.BoolRef], timeout_ms: int) -> None:
        self.bounds = Bounds()
        self.bounds.of(cost)
        self.enc = Encoder(max(WIDTH + 2, self.bounds.max_abs.bit_length() + 2))
        self.solver = solver_for(timeout_ms)
        self.solver.add(*facts)
        self.reason = ""
        self._refined: dict[int, tuple[int, int]] = {}  # loop: (max trips, max body)

    def check(self, *assumptions: z3.BoolRef) -> z3.CheckSatResult:
        verdict = self.solver.check(*assumptions)
        if verdict == z3.unknown:
            self.reason = self.solver.reason_unknown()
        return verdict

    def run(self, c: CSum) -> tuple[int, int, z3.ModelRef | None, str, z3.BoolRef]:
        """(maximum reached, proven bound, model reaching it, why the two differ, a formula
        that holds wherever the maximum is reached)."""
        if c.constant:
            return c.k, c.k, None, "", z3.BoolVal(True)
        nonneg = self.bounds.of(c)[0] >= 0 and all(
            self.bounds.of(n)[0] >= 0 for n in _loops(c))
        top = self.bounds.of(c)[1]
        if nonneg:
            for refined in (False, True):
                targets = self._targets(c, refined)
                top = targets[id(c)]
                goal = self._attain(c, targets)
                if self.check(goal) == z3.sat:
                    return top, top, self.solver.model(), "", goal
        return self._search(self.enc.of(c), top)

    def _search(self, term: z3.BitVecRef, top: int
                ) -> tuple[int, int, z3.ModelRef | None, str, z3.BoolRef]:
        if self.check(term >= top) == z3.sat:
            return top, top, self.solver.model(), "", term >= top
        verdict = self.check()
        if verdict != z3.sat:  # nothing satisfies the facts: no run reaches this code
            return 0, 0 if verdict == z3.unsat else top, None, self.reason, z3.BoolVal(True)
        model = self.solver.model()
        best = model.eval(term, model_completion=True).as_signed_long()
        top -= 1
        while best < top:
            mid = (best + top + 1) // 2
            verdict = self.check(term >= mid)
            if verdict == z3.sat:
                model = self.solver.model()
                best = model.eval(term, model_completion=True).as_signed_long()
            elif verdict == z3.unsat:
                top = mid - 1
            else:
                return best, top, model, self.reason, term >= best
        return best, best, model, "", term >= best

    # -- targets: the value each node must take for the whole to reach its bound

    def _targets(self, c: CSum, refined: bool) -> dict[int, int]:
        out: dict[int, int] = {}
        self._target(c, refined, out)
        return out

    def _target(self, n: CSum | CostNode, refined: bool, out: dict[int, int]) -> int:
        # A method, not a recursive closure: a closure that calls itself is a reference
        # cycle, and this one held the maximizer (its solver, its terms) until Python's
        # cyclic collector ran. When that was depended on everything the process had done
        # before; Z3 reuses the ids of freed terms, and the ids order its search, so the
        # worst-case input reported for the next entry point depended on it too.
        key = id(n)
        if key in out:
            return out[key]
        if isinstance(n, CSum):
            v = n.k + sum(self._target(p, refined, out) for p in n.parts)
        elif isinstance(n, CIte):
            v = max(self._target(n.then, refined, out), self._target(n.other, refined, out))
        elif isinstance(n, CLoop):
            body = self._target(n.body, refined, out)
            trips = self.bounds.of(n)[1] // body if body else 0
            if refined:
                trips, body = self._refine(n)
                self._target(n.body, refined, out)  # its parts keep their interval targets
                out[id(n.body)] = body
            else:
                trips = n.trips_range[1]
            v = trips * body
        else:
            v = self.bounds.of(n)[1]
        out[key] = v
        return v

    def _refine(self, n: CLoop) -> tuple[int, int]:
        """The most trips of loop ``n`` and the most cycles of one iteration, each exact."""
        key = id(n)
        if key not in self._refined:
            trips = self._search(n.trips(self.enc.width), n.trips_range[1])[1]
            body = self.run(n.body)[1]
            self._refined[key] = (trips, body)
        return self._refined[key]

    def _attain(self, n: CSum | CostNode, targets: dict[int, int]) -> z3.BoolRef:
        """Node ``n`` takes its target value (every node is at most its target)."""
        if isinstance(n, CSum):
            return z3.And(*(self._attain(p, targets) for p in n.parts))
        goal = targets[id(n)]
        if isinstance(n, CIte):
            options = []
            if targets[id(n.then)] == goal:
                options.append(z3.And(n.cond, self._attain(n.then, targets)))
            if targets[id(n.other)] == goal:
                options.append(z3.And(z3.Not(n.cond), self._attain(n.other, targets)))
            return z3.Or(*options)
        if isinstance(n, CLoop):
            if goal == 0:
                return z3.BoolVal(True)
            body = targets[id(n.body)]
            reach = self._attain(n.body, targets) if body == self.bounds.of(n.body)[1] \
                else self.enc.of(n.body) >= body
            return z3.And(n.trips(self.enc.width) == goal // body, reach)
        return self.enc.of(n) >= goal

    def polish(self, model: z3.ModelRef, reached: z3.BoolRef,
               preferences: Sequence[z3.BoolRef]) -> z3.ModelRef:
        """A model where ``reached`` holds (the maximum is reached) that satisfies as many
        preferences as it can."""
        if not preferences or all(z3.is_true(model.eval(p, model_completion=True))
                                  for p in preferences):
            return model
        s = self.solver
        s.push()
        s.add(reached)
        if s.check(*preferences) == z3.sat:
            model = s.model()
        else:
            for p in preferences:
                if s.check(p) == z3.sat:
                    model = s.model()
                    s.add(p)
        s.pop()
        return model


def _loops(c: CSum | CostNode) -> list[CLoop]:
    return [n for n in cost_nodes(c) if isinstance(n, CLoop)]
