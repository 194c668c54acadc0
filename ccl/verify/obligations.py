"""Obligations: the facts ``ccl verify`` must establish, each with a source span and a verdict.

An obligation is one property at one place of one procedure: "this ``+`` cannot overflow",
"this index is inside its table", "this task fits in its CPU share". Each is proven (by the
declared ranges alone, or by Z3), refuted (with a counterexample: the values that break it)
or unknown (the solver gave up within its time limit; never reported as proven).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ccl.diagnostics import Span


class Kind(Enum):
    """What an obligation is about. The values are stable: JSON, tests and corpus headers."""

    OVERFLOW = "overflow"  # 32-bit signed overflow of + - * / % neg abs
    DIV_ZERO = "div-zero"  # division or remainder by zero
    INDEX = "index"  # array index out of bounds
    RANGE = "range"  # a store outside the declared range of a local, state variable or element
    ARGUMENT = "argument"  # a function or instruction argument outside the declared range
    RESULT = "result"  # a returned value outside the declared result range
    NATIVE_ARG = "native-arg"  # a native argument outside the range the mission declares
    RULE = "rule"  # a flight rule that fails for a reachable parameter set
    NATIVE_FRAME = "native-frame"  # one native call costs more than a frame's share
    CPU_SHARE = "cpu-share"  # the tasks' worst case plus the patch reserve exceed the share
    CODE_MEMORY = "code-memory"
    DATA_MEMORY = "data-memory"
    STACK = "stack"  # operand stack of a code unit deeper than the mission allows
    CALL_DEPTH = "call-depth"  # more nested calls than the mission allows
    FRAME_CHARGE = "frame-charge"  # one instruction charged more than a frame leaves tasks
    ON_LOAD = "on-load"  # a VMlet's `on load` needs more cycles than the VVM gives it
    LOAD = "load"  # the VVM's load-time verifier refuses the image
    # an instruction that `replaces` a host service or a lower layer's instruction returns
    # outside its declared range, or may cost more than it
    REPLACES = "replaces"

    @property
    def code(self) -> str:
        """The diagnostic code of a refutation, e.g. ``V-INDEX``."""
        return "V-" + self.value.upper()

    @property
    def is_safety(self) -> bool:
        """A run-time property: if refuted, some run of the VVM traps."""
        return self in SAFETY


SAFETY = frozenset({Kind.OVERFLOW, Kind.DIV_ZERO, Kind.INDEX, Kind.RANGE, Kind.ARGUMENT,
                    Kind.RESULT, Kind.NATIVE_ARG})
BUDGET = frozenset({Kind.NATIVE_FRAME, Kind.CPU_SHARE, Kind.CODE_MEMORY, Kind.DATA_MEMORY,
                    Kind.STACK, Kind.CALL_DEPTH, Kind.FRAME_CHARGE, Kind.ON_LOAD, Kind.LOAD,
                    Kind.REPLACES})


class Status(Enum):
    PROVEN = "proven"
    REFUTED = "refuted"
    UNKNOWN = "unknown"


class Method(Enum):
    """How a verdict was reached."""

    RANGES = "ranges"  # interval arithmetic over the declared ranges: no solver needed
    Z3 = "z3"
    ARITHMETIC = "arithmetic"  # a budget compared with a limit


@dataclass(frozen=True)
class Value:
    """One value of a counterexample or a worst case: ``name = value`` and what it is."""

    name: str  # as shown: `n`, `i`, `t[50]`, `flux(3)`
    value: int
    role: str  # param, var, table, counter, local, native, env, array


@dataclass(frozen=True)
class Replay:
    """What it takes to reproduce a counterexample or a worst case on the VVM, from the start
    of the procedure: parameter and state values, array contents, native results (one value
    per native), environment values, and the arguments of a function or instruction verified
    on its own. ``exact`` is False when the values were found for an arbitrary iteration of a
    loop (state carried from earlier iterations), or when one native must return different
    values at different calls: then a run from the start may not reproduce it."""

    globals: tuple[tuple[str, int], ...] = ()
    arrays: tuple[tuple[str, tuple[tuple[int, int], ...], int], ...] = ()  # name, entries, default
    natives: tuple[tuple[str, int], ...] = ()
    env: tuple[tuple[str, int], ...] = ()
    exact: bool = True
    args: tuple[int, ...] = ()

    def global_values(self) -> dict[str, int]:
        return dict(self.globals)

    def native_values(self) -> dict[str, int]:
        return dict(self.natives)

    def env_values(self) -> dict[str, int]:
        return dict(self.env)

    def array_values(self, name: str, length: int, lo: int, hi: int) -> list[int]:
        """The contents of array ``name``, every value clamped into ``lo .. hi`` (entries the
        solver never looked at may hold anything)."""
        for n, entries, default in self.arrays:
            if n == name:
                values = [min(max(default, lo), hi)] * length
                for i, v in entries:
                    if 0 <= i < length:
                        values[i] = min(max(v, lo), hi)
                return values
        return [min(max(0, lo), hi)] * length


@dataclass(frozen=True)
class Counterexample:
    """Values that break an obligation (shown) and how to replay them."""

    values: tuple[Value, ...]
    replay: Replay = field(default_factory=Replay)
    detail: str = ""  # e.g. "exposure_s * coadd = 1024, which is > 512"

    def value(self, name: str) -> int:
        for v in self.values:
            if v.name == name:
                return v.value
        raise KeyError(name)

    def text(self) -> str:
        return ", ".join(f"{v.name} = {v.value}" for v in self.values)


@dataclass(frozen=True)
class Obligation:
    """One property at one place, and its verdict."""

    kind: Kind
    status: Status
    span: Span | None
    message: str  # what must hold, e.g. "index of `t` within 0 .. 49"
    where: str  # the procedure (and call chain) it was checked in, e.g. "task mark"
    method: Method
    counterexample: Counterexample | None = None
    reason: str = ""  # for unknown: why the solver gave up
    seconds: float = 0.0
    broken: str = ""  # what a refutation says where "refuted: <message>" would read as held

    @property
    def stated(self) -> str:
        """The message as the verdict shows it: for a refuted obligation, what was broken."""
        return self.broken if self.status is Status.REFUTED and self.broken else self.message

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind.value, "status": self.status.value,
                                  "message": self.stated, "where": self.where,
                                  "method": self.method.value}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, column=self.span.col,
                       end_line=self.span.end_line, end_column=self.span.end_col)
        if self.counterexample is not None:
            cex = self.counterexample
            out["counterexample"] = {v.name: v.value for v in cex.values}
            if cex.detail:
                out["detail"] = cex.detail
            out["replay_exact"] = cex.replay.exact
        if self.reason:
            out["reason"] = self.reason
        return out
