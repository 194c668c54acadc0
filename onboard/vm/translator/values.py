"""What the translator's symbolic operand stack holds: Python expressions with ranges.

The bytecode's operand stack disappears in translation: each entry is the Python expression
that computes it (a literal, a local or temporary name, a comparison evaluated where it is
used, a load from data memory evaluated where it is used when nothing can suspend the code
in between), with what the range analysis knows of its value."""

from __future__ import annotations

from dataclasses import dataclass

from onboard.vm.translator.ranges import Range


@dataclass(frozen=True)
class Value:
    """A value on the symbolic operand stack."""

    expr: str  # Python expression: a literal, a local or temp name, or a comparison
    rng: Range
    is_bool: bool = False  # evaluates to a Python bool (convert before storing)
    local: int | None = None  # a direct read of this local slot (flush before it changes)
    reads: frozenset[int] = frozenset()  # local slots a lazy expression reads (flush too)
    lazy: bool = False  # unchecked arithmetic of locals, temporaries and literals
    # data memory a lazy expression reads (``A0``, ``G2``: flush before a store into it)
    memory: frozenset[str] = frozenset()

    def slots(self) -> frozenset[int]:
        """Every local slot whose current value this expression reads."""
        return self.reads if self.local is None else self.reads | {self.local}

    def as_int(self) -> str:
        """An int-valued expression for this value (bools become 0/1)."""
        return f"(1 if {self.expr} else 0)" if self.is_bool else self.expr


def is_literal(expr: str) -> bool:
    """Whether ``expr`` is an integer literal."""
    return expr.lstrip("-").isdigit()
