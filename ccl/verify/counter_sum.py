"""Summing a loop's cost over its counter, in closed form, where the counter decides it.

A loop of ``n`` iterations whose iteration cost depends on the counter is charged ``n``
times its dearest iteration by default, which can be far above anything the VVM runs: a
guard on the counter (``if s < n_bright { dear } else { cheap }``) is dear in only some
iterations, and a triangular inner loop (``for j in 0 .. i``) runs ``0, 1, 2, ...`` times.
When the iteration cost depends on the loop's own unknowns only through such shapes, the
sum over the counter is exact and expressible with the cost algebra's own nodes:

* a guard ``counter < X`` (``<=``, ``>``, ``>=``, either side, negated) with ``X`` fixed
  for the loop splits the range at ``X``: the ``then`` side summed over ``[lo, min(hi, X))``,
  the other over ``[max(lo, X), hi)``;
* an inner loop over ``[a, counter + k)`` with ``a`` fixed and a body that does not depend
  on the outer iteration runs ``max(0, i - A)`` times at counter ``i`` (``A = a - k``); over
  ``[L, H)`` that is ``n (L' - A) + n (n - 1) / 2`` with ``L' = max(L, A)``, ``n = H - L'``,
  and ``n (n - 1) / 2 = floor(n / 2) (n - 1 + n mod 2)``;
* a part that depends on nothing of the iteration is charged once per iteration.

Anything else that depends on the iteration gives up (None): the caller keeps its other
methods. Sound because each iteration's cost is counted once, at its own counter.
"""

from __future__ import annotations

import z3

from ccl import ir
from ccl.verify.cost import CIte, CLoop, CostNode, CSum, cost_terms
from ccl.verify.terms import Val, bv_const, depends_on
from onboard.vm.isa import INT_MAX, INT_MIN

Shapes = dict[int, tuple[ir.BinOp, Val, Val]]

#: Nesting of guards and inner loops summed at most (each level adds terms to maximise).
MAX_DEPTH = 4


class CounterSum:
    """Sums iteration costs over the range of ``counter``; ``variant`` names every unknown
    an iteration makes (its counter included), ``shapes`` how terms were built."""

    def __init__(self, shapes: Shapes, counter: Val, variant: set[str]) -> None:
        self.shapes = shapes
        self.counter = counter
        self.variant = variant

    def of(self, c: CSum, lo: Val, hi: Val, depth: int = 0) -> CSum | None:
        """The cycles of iterations with counters ``lo .. hi - 1`` whose cost is ``c``."""
        if depth > MAX_DEPTH:
            return None
        fixed: list[CostNode] = []
        out = CSum(0)
        for part in c.parts:
            if not self._varies(part):
                fixed.append(part)
                continue
            summed = self._part(part, lo, hi, depth)
            if summed is None:
                return None
            out = out.then(summed)
        return CSum(0, (CLoop(lo, hi, CSum(c.k, tuple(fixed))),)).then(out)

    def _varies(self, node: CSum | CostNode) -> bool:
        return depends_on(cost_terms(node), self.variant, None)

    def _part(self, node: CostNode, lo: Val, hi: Val, depth: int) -> CSum | None:
        if isinstance(node, CIte):
            guard = self._guard(node.cond)
            if guard is None:
                return None
            x, below = guard
            then, other = (node.then, node.other) if below else (node.other, node.then)
            first = self.of(then, lo, _min(hi, x), depth + 1)
            second = self.of(other, _max(lo, x), hi, depth + 1)
            if first is None or second is None:
                return None
            return first.then(second)
        if isinstance(node, CLoop):
            return self._triangle(node, lo, hi)
        return None

    # -- shapes

    def _fixed(self, v: Val) -> bool:
        return not depends_on([v.term], self.variant, None)

    def _offset(self, v: Val) -> int | None:
        """``k`` when ``v`` is the counter plus the constant ``k``."""
        if v.term.eq(self.counter.term):
            return 0
        shape = self.shapes.get(v.term.get_id())
        if shape is None:
            return None
        op, a, b = shape
        if a.term.eq(self.counter.term) and b.lo == b.hi:
            return b.lo if op is ir.BinOp.ADD else -b.lo
        if op is ir.BinOp.ADD and b.term.eq(self.counter.term) and a.lo == a.hi:
            return a.lo
        return None

    def _guard(self, cond: z3.BoolRef) -> tuple[Val, bool] | None:
        """``(X, True)`` when ``cond`` is ``counter < X``, ``(X, False)`` when it is its
        negation, with ``X`` fixed for the loop."""
        negated = False
        while z3.is_not(cond):
            cond, negated = cond.arg(0), not negated
        shape = self.shapes.get(cond.get_id())
        if shape is None:
            return None
        op, a, b = shape
        if a.term.eq(self.counter.term) and self._fixed(b):
            bound = b
        elif b.term.eq(self.counter.term) and self._fixed(a):
            op = {ir.BinOp.LT: ir.BinOp.GT, ir.BinOp.LE: ir.BinOp.GE, ir.BinOp.GT: ir.BinOp.LT,
                  ir.BinOp.GE: ir.BinOp.LE}.get(op, op)
            bound = a
        else:
            return None
        if op is ir.BinOp.LT:
            return bound, not negated
        if op is ir.BinOp.GE:
            return bound, negated
        if op in (ir.BinOp.LE, ir.BinOp.GT) and bound.hi < INT_MAX:
            plus = Val(bound.bv + 1, bound.lo + 1, bound.hi + 1)  # i <= b  <=>  i < b + 1
            return plus, (op is ir.BinOp.LE) != negated
        return None

    def _triangle(self, inner: CLoop, lo: Val, hi: Val) -> CSum | None:
        """An inner loop over ``[a, counter + k)``: see the module docstring."""
        k = self._offset(inner.hi)
        if k is None or inner.skip or not self._fixed(inner.lo) or self._varies(inner.body):
            return None
        if not (_fits(inner.lo.lo - k) and _fits(inner.lo.hi - k)):
            return None
        start = Val(inner.lo.bv - k if k else inner.lo.bv, inner.lo.lo - k, inner.lo.hi - k)
        first = _max(lo, start)  # the first counter whose inner loop runs
        n_lo, n_hi = hi.lo - first.hi, hi.hi - first.lo
        if not (_fits(n_lo) and _fits(n_hi)):
            return None
        n = Val(hi.bv - first.bv, n_lo, n_hi)
        half = Val(n.bv / 2, _tdiv2(n_lo), _tdiv2(n_hi))
        odd = Val(1 - z3.SRem(n.bv, 2), 0, 2)  # 1 - (n mod 2): n (n-1)/2 = half (n - odd)
        body = inner.body
        zero = bv_const(0)
        return CSum(0, (CLoop(first, hi, CSum(0, (CLoop(start, first, body),))),
                        CLoop(odd, n, CSum(0, (CLoop(zero, half, body),)))))


def _fits(v: int) -> bool:
    return INT_MIN <= v <= INT_MAX


def _tdiv2(v: int) -> int:
    return v // 2 if v >= 0 else -((-v) // 2)


def _min(a: Val, b: Val) -> Val:
    return Val(z3.If(a.bv <= b.bv, a.bv, b.bv), min(a.lo, b.lo), min(a.hi, b.hi))


def _max(a: Val, b: Val) -> Val:
    return Val(z3.If(a.bv >= b.bv, a.bv, b.bv), max(a.lo, b.lo), max(a.hi, b.hi))
