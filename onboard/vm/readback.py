"""Read-back: the values a running configuration holds, by name, as a table dump (cFS) or a
memory dump (PUS service 6) would show them: parameters and state variables (scalars),
tables and state arrays, each with its declared range.

Pure: it reads a program's data memory and its image's declarations, changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from onboard.vm.loader import Program


@dataclass(frozen=True)
class Value:
    """One named datum on board: ``kind`` is ``param``, ``state``, ``table`` or ``array``
    (a state array); ``values`` has one element for a scalar."""

    name: str
    kind: str
    lo: int
    hi: int
    values: tuple[int, ...]

    @property
    def scalar(self) -> bool:
        return self.kind in ("param", "state")

    def to_json(self) -> dict[str, Any]:
        """The datum as JSON: ``value`` for a scalar, ``values`` for an array."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "range": [self.lo, self.hi]}
        if self.scalar:
            out["value"] = self.values[0]
        else:
            out["values"] = list(self.values)
        return out


def read_back(program: Program, names: Iterable[str] = ()) -> tuple[Value, ...]:
    """The values of ``program``'s globals then arrays, in declaration order; only those
    called one of ``names`` when some are given (a ``KeyError`` names any that is not
    declared)."""
    image, memory = program.image, program.memory
    out = [Value(g.name, "state" if g.writable else "param", g.lo, g.hi,
                 (memory.globals[i],))
           for i, g in enumerate(image.globals)]
    out += [Value(a.name, "array" if a.writable else "table", a.lo, a.hi,
                  tuple(memory.arrays[i]))
            for i, a in enumerate(image.arrays)]
    wanted = tuple(names)
    if not wanted:
        return tuple(out)
    by_name = {v.name: v for v in out}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise KeyError(", ".join(unknown))
    return tuple(by_name[n] for n in wanted)
