"""The verifier's results: the report value (``VerifyReport``, ``Budgets``) and its renderings.

``verify_program`` returns a ``VerifyReport``; this module holds its dataclasses, its JSON
form (stable keys, for ``--json`` and for ``ccl pack``) and the text a person reads: proof
groups, worst cases, the budget table and, for every refuted or unknown obligation, a
diagnostic with the source line, a caret and the counterexample (``ccl.diagnostics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from ccl.diagnostics import Diagnostic, Source, Span, render
from ccl.verify.obligations import Counterexample, Kind, Obligation, Status

# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class WorstCase:
    """The worst-case cycles of one entry point: a task, ``on apply``, ``on load`` or a VMlet
    instruction (its dispatch and inlined body).

    ``bound`` is proven; ``cycles`` is what the cost model reaches with the inputs in
    ``witness``; ``exact`` means the VVM, run from the witness, costs exactly ``bound``
    (otherwise the bound may not be reached). In a loop, the witness holds the values of
    one arbitrary iteration (and of the iterations executed one by one): every iteration
    is meant to be like it. Its
    ``replay.exact`` is False when it rests on values an abstraction chose (state carried
    into that iteration, a native returning different values at different calls): a run
    from the start with those values may then fall short of ``cycles``."""

    name: str
    kind: str  # "task", "on apply", "on load", "instr", "fn"
    period_ms: int | None
    cycles: int
    bound: int
    exact: bool
    witness: Counterexample | None
    span: Span | None
    seconds: float = 0.0

    @property
    def cycles_per_s(self) -> Fraction:
        """Average load of a task: its bound every period (0 for the others)."""
        if not self.period_ms:
            return Fraction(0)
        return Fraction(self.bound * 1000, self.period_ms)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "kind": self.kind,
                                  "worst_cycles": self.cycles, "bound": self.bound,
                                  "exact": self.exact,
                                  "label": "exact" if self.exact
                                  else "upper bound, may not be reached"}
        if self.period_ms:
            out["period_ms"] = self.period_ms
            out["cycles_per_s"] = float(self.cycles_per_s)
        if self.witness is not None:
            out["worst_case"] = {v.name: v.value for v in self.witness.values}
        return out


@dataclass(frozen=True)
class Budgets:
    """CPU, memory and uplink figures of one program against its mission's limits."""

    clock_hz: int
    frame_ms: int
    share_percent: int
    share_cycles_per_s: int  # the reconfiguration share
    reserve_cycles_per_s: int  # kept for patch handling, inside the share
    frame_budget: int  # cycles per frame left for VVM code after the reserve
    worst_cases: tuple[WorstCase, ...]
    code_bytes: int  # this program's code units plus those of the VMlets it uses
    code_limit: int
    data_bytes: int  # parameters, tables and state at their ranged widths
    data_limit: int
    max_stack: int
    stack_limit: int
    call_depth: int
    call_depth_limit: int
    patch_bytes: int
    patch_estimate: str  # how patch_bytes was obtained
    uplink_bits_per_day: int
    passes_per_day: int
    passes_needed: int
    days_needed: int
    application: str = ""  # its application's name: the share is that application's part

    @property
    def tasks(self) -> tuple[WorstCase, ...]:
        return tuple(w for w in self.worst_cases if w.kind == "task")

    @property
    def load_cycles_per_s(self) -> Fraction:
        """Tasks at their worst plus the patch reserve, in cycles per second."""
        return sum((w.cycles_per_s for w in self.tasks), Fraction(0)) + self.reserve_cycles_per_s

    @property
    def cpu_percent(self) -> float:
        return float(self.load_cycles_per_s * 100 / self.clock_hz)

    @property
    def share_used_percent(self) -> float:
        return float(self.load_cycles_per_s * 100 / self.share_cycles_per_s)

    def to_json(self) -> dict[str, object]:
        return {
            "cpu": {"clock_hz": self.clock_hz, "frame_ms": self.frame_ms,
                    "share_percent": self.share_percent,
                    "share_cycles_per_s": self.share_cycles_per_s,
                    "reserve_cycles_per_s": self.reserve_cycles_per_s,
                    "load_cycles_per_s": float(self.load_cycles_per_s),
                    "cpu_percent": round(self.cpu_percent, 4),
                    "share_used_percent": round(self.share_used_percent, 4),
                    "frame_budget": self.frame_budget,
                    **({"application": self.application} if self.application else {})},
            "worst_cases": [w.to_json() for w in self.worst_cases],
            "memory": {"code_bytes": self.code_bytes, "code_limit": self.code_limit,
                       "data_bytes": self.data_bytes, "data_limit": self.data_limit,
                       "max_stack": self.max_stack, "stack_limit": self.stack_limit,
                       "call_depth": self.call_depth,
                       "call_depth_limit": self.call_depth_limit},
            "uplink": {"patch_bytes": self.patch_bytes, "estimate": self.patch_estimate,
                       "bits_per_day": self.uplink_bits_per_day,
                       "passes_per_day": self.passes_per_day,
                       "passes_needed": self.passes_needed, "days_needed": self.days_needed},
        }


@dataclass(frozen=True)
class VerifyReport:
    """Everything ``ccl verify`` established about one program.

    ``status`` is ``proven`` when every obligation is, ``refuted`` when one is refuted, else
    ``unknown`` (never proven when the solver gave up on something)."""

    name: str
    kind: str  # "config" or "vmlet"
    file: str
    obligations: tuple[Obligation, ...]
    budgets: Budgets
    seconds: float

    @property
    def status(self) -> str:
        states = {o.status for o in self.obligations}
        if Status.REFUTED in states:
            return Status.REFUTED.value
        if Status.UNKNOWN in states:
            return Status.UNKNOWN.value
        return Status.PROVEN.value

    @property
    def refuted(self) -> tuple[Obligation, ...]:
        return _distinct(o for o in self.obligations if o.status is Status.REFUTED)

    @property
    def unknown(self) -> tuple[Obligation, ...]:
        return _distinct(o for o in self.obligations if o.status is Status.UNKNOWN)

    def worst_case(self, name: str) -> WorstCase:
        for w in self.budgets.worst_cases:
            if w.name == name:
                return w
        raise KeyError(name)

    def groups(self) -> dict[Kind, dict[str, int]]:
        """Obligations counted by kind: proven by ranges, by Z3 or by arithmetic, refuted,
        unknown."""
        out: dict[Kind, dict[str, int]] = {}
        for o in self.obligations:
            g = out.setdefault(o.kind, {"ranges": 0, "z3": 0, "arithmetic": 0, "refuted": 0,
                                        "unknown": 0})
            if o.status is Status.PROVEN:
                g[o.method.value] += 1
            else:
                g[o.status.value] += 1
        return dict(sorted(out.items(), key=lambda kv: list(Kind).index(kv[0])))

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file, "name": self.name, "kind": self.kind, "status": self.status,
            "seconds": round(self.seconds, 3),
            "groups": {k.value: g for k, g in self.groups().items()},
            "refuted": [o.to_json() for o in self.refuted],
            "unknown": [o.to_json() for o in self.unknown],
            "budgets": self.budgets.to_json(),
            "obligations": len(self.obligations),
        }


def _distinct(obs: Iterable[Obligation]) -> tuple[Obligation, ...]:
    """One obligation per kind and place (an inlined function is checked at every call)."""
    seen: set[tuple[Kind, Span | None, str]] = set()
    out = []
    for o in obs:
        key = (o.kind, o.span, o.message)
        if key not in seen:
            seen.add(key)
            out.append(o)
    return tuple(out)


# --------------------------------------------------------------------------- text

_HINTS = {
    Kind.OVERFLOW: "narrow the ranges of the operands, or compute in smaller steps",
    Kind.DIV_ZERO: "exclude 0 from the divisor's range, or test it before dividing",
    Kind.INDEX: "bound the index by the array's length (e.g. with `min`), or narrow the "
                "range of what it is computed from",
    Kind.RANGE: "clamp the value (`min`/`max`) or widen the declared range",
    Kind.ARGUMENT: "clamp the argument or widen the parameter's declared range",
    Kind.RESULT: "clamp the result or widen the declared result range",
    Kind.NATIVE_ARG: "clamp the argument into the native's range (see the mission profile)",
    Kind.RULE: "narrow the parameters' ranges so that every combination satisfies the rule",
    Kind.NATIVE_FRAME: "call the native with smaller arguments",
    Kind.CPU_SHARE: "narrow the ranges of the parameters that bound the loops, lengthen the "
                    "periods, or do less per run",
    Kind.CODE_MEMORY: "remove code, or split the configuration",
    Kind.DATA_MEMORY: "shorten the tables or narrow the element ranges",
    Kind.STACK: "split the expression into `let` steps",
    Kind.CALL_DEPTH: "flatten the chain of calls",
    Kind.FRAME_CHARGE: "split the work: a native call with smaller arguments, a VMlet "
                       "instruction with a shorter body, or a function with fewer locals",
    Kind.ON_LOAD: "do less in the VMlet's `on load`",
    Kind.REPLACES: "narrow the replacement's declared result range (clamp what it returns) "
                   "and keep its worst case within the replaced one's, or rename it and let "
                   "the configurations call it by its new name",
    Kind.LOAD: "the board would refuse this image for the reason shown; a native hidden by "
               "a VMlet's `on load` in this mission's environment cannot be called",
}


def diagnostic(o: Obligation) -> Diagnostic:
    """A refuted or unknown obligation as a diagnostic (rendered with a caret)."""
    notes: list[str] = []
    if o.status is Status.REFUTED:
        message = f"refuted: {o.stated}"
        cex = o.counterexample
        if cex is not None:
            if cex.values:
                notes.append(f"counterexample: {cex.text()}")
            if cex.detail:
                notes.append(cex.detail)
            if not cex.replay.exact:
                notes.append("the values hold at some iteration of a loop (state carried "
                             "from earlier iterations is anything in its declared range)")
    else:
        message = f"unknown: {o.message}"
        notes.append(o.reason or "the solver could not decide")
    notes.append(f"in {o.where}")
    hint = _HINTS[o.kind] if o.status is Status.REFUTED else \
        "raise the per-obligation time limit (--timeout SECONDS)"
    return Diagnostic(o.kind.code, message, o.span, hint,
                      severity="error" if o.status is Status.REFUTED else "warning",
                      notes=tuple(notes))


def _n(value: int | float | Fraction) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.0f}"


def _pct(value: float) -> str:
    return f"{value:.2f} %" if value < 10 else f"{value:.1f} %"


def group_lines(report: VerifyReport) -> list[tuple[str, str]]:
    """(kind, verdict text) per obligation kind."""
    out = []
    for kind, g in report.groups().items():
        parts = []
        proven = g["ranges"] + g["z3"] + g["arithmetic"]
        if proven:
            how = [f"{g[m]} by {m}" for m in ("ranges", "z3", "arithmetic") if g[m]]
            parts.append(f"{proven} proven ({', '.join(how)})")
        if g["refuted"]:
            parts.append(f"{g['refuted']} refuted")
        if g["unknown"]:
            parts.append(f"{g['unknown']} unknown")
        out.append((kind.value, ", ".join(parts)))
    return out


def worst_case_line(w: WorstCase) -> str:
    what = f"task {w.name} every {_period(w.period_ms)}" if w.kind == "task" else \
        f"{w.kind} {w.name}" if w.kind in ("instr", "fn") else w.kind
    if w.exact:
        text = f"{what}: {_n(w.cycles)} cycles"
    elif w.cycles == w.bound:
        text = f"{what}: at most {_n(w.bound)} cycles (upper bound, may not be reached)"
    else:
        text = (f"{what}: at most {_n(w.bound)} cycles (upper bound, may not be reached; "
                f"{_n(w.cycles)} in the cost model)")
    if w.witness is not None and w.witness.values:
        params = [v for v in w.witness.values if v.role == "param"]
        shown = params or list(w.witness.values)[:4]
        text += " at " + ", ".join(f"{v.name} = {v.value}" for v in shown)
    return text


def _period(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"


def budget_rows(b: Budgets) -> list[tuple[str, str, str, str]]:
    """(budget, used, limit, verdict) rows of the budget table."""
    load = b.load_cycles_per_s
    ok = "ok"
    rows = [
        ("CPU (cycles/s)", f"{_n(load)} incl. {_n(b.reserve_cycles_per_s)} patch reserve",
         f"{_n(b.share_cycles_per_s)} ({b.share_percent} % of {_n(b.clock_hz)})",
         f"{_pct(b.share_used_percent)} of the share, {_pct(b.cpu_percent)} of the CPU"
         + ("" if load <= b.share_cycles_per_s else "  OVER")),
        ("code (bytes)", _n(b.code_bytes), _n(b.code_limit),
         ok if b.code_bytes <= b.code_limit else "OVER"),
        ("data (bytes)", _n(b.data_bytes), _n(b.data_limit),
         ok if b.data_bytes <= b.data_limit else "OVER"),
        ("operand stack", str(b.max_stack), str(b.stack_limit),
         ok if b.max_stack <= b.stack_limit else "OVER"),
        ("call depth", str(b.call_depth), str(b.call_depth_limit),
         ok if b.call_depth <= b.call_depth_limit else "OVER"),
        ("uplink", f"estimated patch size {_n(b.patch_bytes)} bytes ({b.patch_estimate})",
         f"{_n(b.uplink_bits_per_day)} bits/day, {b.passes_per_day} passes",
         f"{b.passes_needed} pass{'es' if b.passes_needed != 1 else ''}, "
         f"{b.days_needed} day{'s' if b.days_needed != 1 else ''}"),
    ]
    return rows


def render_text(report: VerifyReport, sources: Mapping[str, Source]) -> str:
    """The report as plain text (for pipes and logs)."""
    lines = [f"{report.file}: {report.kind} {report.name}: {report.status.upper()} "
             f"({len(report.obligations)} obligations, {report.seconds:.2f} s)"]
    lines.append("  proofs:")
    for kind, verdict in group_lines(report):
        lines.append(f"    {kind:<13s} {verdict}")
    if report.budgets.worst_cases:
        lines.append("  worst cases:")
        for w in report.budgets.worst_cases:
            lines.append(f"    {worst_case_line(w)}")
    lines.append("  budgets:")
    for name, used, limit, verdict in budget_rows(report.budgets):
        lines.append(f"    {name:<15s} {used}  of  {limit}:  {verdict}")
    for o in (*report.refuted, *report.unknown):
        lines.append(render(diagnostic(o), dict(sources)))
    return "\n".join(lines)

