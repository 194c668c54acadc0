"""Value ranges, the translator's static knowledge of what a value can be.

A range is an inclusive ``(lo, hi)`` pair of Python ints; it may reach outside 32 bits when
it describes a result before its overflow check. The translator leaves out every check that
a range proves cannot fail."""

from __future__ import annotations

from onboard.vm.isa import INT_MAX, INT_MIN

Range = tuple[int, int]
FULL: Range = (INT_MIN, INT_MAX)
BOOL: Range = (0, 1)


def hull(a: Range, b: Range) -> Range:
    """The smallest range holding both ``a`` and ``b``."""
    return (min(a[0], b[0]), max(a[1], b[1]))


def fits(r: Range) -> bool:
    """Whether every value of ``r`` is a 32-bit integer (no overflow check needed)."""
    return INT_MIN <= r[0] and r[1] <= INT_MAX


def clamp(r: Range) -> Range:
    """The 32-bit part of ``r``: what is left after an overflow check."""
    return (max(r[0], INT_MIN), min(r[1], INT_MAX))


def within(r: Range, lo: int, hi: int) -> bool:
    """Whether ``r`` lies inside ``lo .. hi`` (a check against those bounds cannot fail)."""
    return lo <= r[0] and r[1] <= hi


def outside(expr: str, r: Range, lo: int, hi: int) -> str:
    """A Python condition, true when ``expr`` (a name, of range ``r``) lies outside
    ``lo .. hi``: only the bounds ``r`` does not already prove, each a plain comparison
    (CPython fuses a comparison with the jump that follows it; a chained comparison it does
    not). At least one comparison, so that it can stand in an ``if``."""
    sides = []
    if r[0] < lo:
        sides.append(f"{expr} < {lo}")
    if r[1] > hi or not sides:
        sides.append(f"{expr} > {hi}")
    return " or ".join(sides)
