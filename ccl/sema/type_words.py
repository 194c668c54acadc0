"""How types read in messages, and a value seen as another type: shared by the checks of
expressions, calls and statements (a type a VMlet defines is a name over a ranged int)."""

from __future__ import annotations

from dataclasses import replace

from ccl import ir


def type_word(t: ir.Type | None) -> str:
    """A type as a message says it: "a boolean", "an integer (int[0..9])", "a q16"."""
    if t is None:
        return "no value"
    if isinstance(t, ir.IntType) and t.nominal is not None:
        return f"a {t}"
    return "a boolean" if isinstance(t, ir.BoolType) else f"an integer ({t})"


def mixing_hint(want: ir.TypeDef | None, found: ir.TypeDef | None) -> str:
    """How to get a value of VMlet type ``want`` (None: an int) from one of ``found``."""
    if want is not None and found is None:
        ratio = (f" (n as a {want.name}), or `{want.name}(n, d)` (n / d)"
                 if want.scale > 1 else "")
        return f"a {want.name} is not an int: convert, `{want.name}(n)`{ratio}"
    if want is None and found is not None:
        cut = " (truncated toward zero)" if found.scale > 1 else ""
        return f"a {found.name} is not an int: convert it, `int(x)`{cut}"
    return "values of two types do not mix: convert through `int(...)`"


def relabel(e: ir.Expr, t: ir.IntType) -> ir.Expr:
    """``e`` with the type ``t``: the same value, seen as another type resting on ints."""
    return replace(e, type=t)  # type: ignore[arg-type]
