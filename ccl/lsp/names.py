"""The names a checked program can see, and where each is declared: what hover,
go-to-definition and completion answer.

Built from the IR of a program that checked (``ccl.ir.Program``) and its mission profile,
so that every answer is the compiler's: a parameter's range is the one the analysis
computed, a native's cost is the profile's formula, the VMlet exposing it is the one the
configuration ``uses``. Names are resolved as CCL scopes them: the locals of the procedure
the position is in, then the file's declarations, then VMlet instructions, natives and
built-ins. A procedure reaches from its name to the next top-level declaration.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

from ccl import ir
from ccl.diagnostics import Span
from ccl.sema.symbols import BUILTINS, KEYWORDS
from onboard.mission import MissionProfile

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_BUILTIN_DOCS = {
    "min": "min(a, b): the smaller of two integers",
    "max": "max(a, b): the larger of two integers",
    "abs": "abs(a): the absolute value of an integer",
    "env": "env(key): a value the host reports (a key of the mission's [env] table)",
}


@dataclass(frozen=True)
class Name:
    """One name and what an editor shows of it."""

    name: str
    kind: str  # const, param, var, table, fn, task, instr, type, native, local, builtin, keyword
    detail: str  # one line, as it would be declared: `param coadd : int[1..8] = 8`
    doc: str = ""  # more: a native's documentation, cost and VMlet
    span: Span | None = None  # where it is declared (None: built-ins and keywords)


@dataclass(frozen=True)
class _Scope:
    """The locals of one procedure, and the lines it covers (1-based, inclusive)."""

    first_line: int
    last_line: int
    locals: tuple[Name, ...]


def word_at(text: str, line: int, character: int) -> tuple[str, int]:
    """The identifier at 0-based ``line``/``character`` of ``text`` and the character it
    starts at (``("", character)`` if there is none)."""
    lines = text.split("\n", line + 1)
    if line >= len(lines):
        return "", character
    for m in _WORD.finditer(lines[line]):
        if m.start() <= character <= m.end():
            return m.group(0), m.start()
    return "", character


def _type_text(t: ir.Type | None) -> str:
    return str(t) if t is not None else ""


def _local_word(v: ir.Local) -> str:
    return "parameter" if v.is_param else "loop counter" if v.is_loop_counter else "let"


def _signature(p: ir.Procedure, prefix: str) -> str:
    """``fn clamp(v: int, lo: int, hi: int) -> int``; ``prefix`` is "fn" or, for an
    instruction, "instr photometry." (it is qualified by its VMlet)."""
    params = ", ".join(f"{a.name}: {a.type}" for a in p.params)
    returns = f" -> {p.returns}" if p.returns is not None else ""
    space = "" if prefix.endswith(".") else " "
    return f"{prefix}{space}{p.name}({params}){returns}"


def _native_doc(sig: ir.NativeSig, mission: MissionProfile | None, exposed_by: str) -> str:
    native = mission.natives.get(sig.name) if mission is not None else None
    lines = []
    if native is not None and native.doc:
        lines.append(native.doc)
    worst = (f" (at most {native.worst_cost():,} cycles)"
             if native is not None and not sig.cost.strip().isdigit() else "")
    lines.append(f"cost: {sig.cost} cycles{worst}, plus the call")
    where = f"mission {mission.name}" if mission is not None else "the mission"
    lines.append(f"native of {where}, capability `{sig.capability}`"
                 + (f", exposed by VMlet `{exposed_by}`" if exposed_by else ""))
    return "\n".join(lines)


def _native_span(mission: MissionProfile | None, name: str) -> Span | None:
    """Where ``name`` is declared in the mission profile (its ``name = "..."`` line)."""
    if mission is None:
        return None
    try:
        text = mission.path.read_text(encoding="utf-8")
    except OSError:
        return None
    m = re.search(rf'^\s*name\s*=\s*"{re.escape(name)}"', text, re.MULTILINE)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    return Span(str(mission.path), line, col, line, col + len(m.group(0).lstrip()))


class Names:
    """Every name visible in one checked program, by where it can be used."""

    def __init__(self, program: ir.Program, mission: MissionProfile | None) -> None:
        self.program = program
        self.top: dict[str, Name] = {}
        self._scopes: list[_Scope] = []
        self._declare(program, mission)

    # -- queries

    def lookup(self, name: str, line: int) -> Name | None:
        """What ``name`` means at 1-based ``line``: a local of the procedure there, else a
        name of the file, a VMlet instruction, a native, a built-in or a keyword."""
        scope = self._scope_at(line)
        if scope is not None:
            found = [n for n in scope.locals if n.name == name]
            # several locals of one name (in sibling blocks): the last declared above
            above = [n for n in found if n.span is not None and n.span.line <= line]
            if above or found:
                return (above or found)[-1]
        return self.top.get(name)

    def visible(self, line: int) -> list[Name]:
        """Every name usable at 1-based ``line`` (locals first), for completion."""
        scope = self._scope_at(line)
        seen: dict[str, Name] = {}
        for n in (scope.locals if scope is not None else ()):
            seen.setdefault(n.name, n)
        for n in self.top.values():
            seen.setdefault(n.name, n)
        return list(seen.values())

    # -- building

    def _add(self, n: Name) -> None:
        self.top.setdefault(n.name, n)

    def _declare(self, p: ir.Program, mission: MissionProfile | None) -> None:
        for c in p.consts:
            self._add(Name(c.name, "const", f"const {c.name} = {c.value}", span=c.span))
        for g in p.globals:
            self._add(Name(g.name, g.kind.value, f"{g.kind.value} {g.name} : {g.type}"
                           + (f" = {g.value}" if g.kind is ir.GlobalKind.PARAM else ""),
                           span=g.span))
        for a in p.arrays:
            self._add(Name(a.name, a.kind.value, f"{a.kind.value} {a.name}[{a.length}] : "
                           f"{a.type}", span=a.span))
        for f in p.functions:
            self._add(Name(f.name, "fn", _signature(f, "fn"), span=f.span))
        for t in p.tasks:
            self._add(Name(t.name, "task", f"task {t.name} every {t.period_ms} ms",
                           span=t.span))
        own = (p,) if p.kind is ir.ProgramKind.VMLET else ()
        for vm in (*own, *p.uses):
            # what a VMlet offers: its instructions and those of its layers it does not
            # replace (an image of before layering: exactly its own)
            offered = vm.offered_instrs or tuple((vm.name, i.name) for i in vm.instrs)
            layers = {layer.name: layer for layer in (vm, *vm.stack)}
            for owner, instr in offered:
                proc, layer = vm.instr(owner, instr), layers.get(owner, vm)
                self._add(Name(instr, "instr", _signature(proc, f"instr {owner}."),
                               f"instruction of VMlet `{owner}` version {layer.version} "
                               f"({Path(layer.file).name})", proc.span))
        for vm in (*own, *p.uses):  # the types a VMlet and its layers define
            for layer in (vm, *vm.stack):
                for td in layer.types:
                    base = ir.IntType(td.lo, td.hi)
                    scale = f" scale {td.scale}" if td.scale > 1 else ""
                    self._add(Name(td.name, "type", f"type {td.name} = {base}{scale}",
                                   f"type of VMlet `{td.vmlet}` ({Path(layer.file).name}): "
                                   f"not an int; `{td.name}(n)` makes one, `int(x)` reads one",
                                   td.span))
        for sig in p.natives:
            exposed_by = next((layer.name for u in p.uses for layer in (u, *u.stack)
                               if sig.name in layer.exposes), "")
            params = ", ".join(f"{n}: {t}" for n, t in sig.params)
            result = f" -> {sig.result}" if sig.result is not None else ""
            self._add(Name(sig.name, "native", f"native {sig.name}({params}){result}",
                           _native_doc(sig, mission, exposed_by),
                           _native_span(mission, sig.name)))
        for b in BUILTINS:
            self._add(Name(b, "builtin", _BUILTIN_DOCS.get(b, b)))
        for k in sorted(KEYWORDS):
            self._add(Name(k, "keyword", f"keyword `{k}`"))
        self._scopes = self._procedure_scopes(p)

    @staticmethod
    def _procedure_scopes(p: ir.Program) -> list[_Scope]:
        """Each procedure's locals and the lines from its name to the next declaration."""
        procs = [*p.functions, *(t.proc for t in p.tasks),
                 *(h for h in (p.on_apply, p.on_load) if h is not None),
                 *(p.instrs if p.kind is ir.ProgramKind.VMLET else ())]
        starts = sorted({s.line for s in (
            *(c.span for c in p.consts), *(g.span for g in p.globals),
            *(a.span for a in p.arrays), *(r.span for r in p.rules),
            *(pr.span for pr in procs)) if s is not None and s.file == p.file})
        scopes = []
        for pr in procs:
            if pr.span is None or pr.span.file != p.file:
                continue
            i = bisect.bisect_right(starts, pr.span.line)
            last = starts[i] - 1 if i < len(starts) else 1 << 30
            scopes.append(_Scope(pr.span.line, last, tuple(
                Name(v.name, "local", f"{_local_word(v)} {v.name} : {_type_text(v.type)}",
                     f"in {pr.kind.value} {pr.name}", v.span) for v in pr.locals)))
        scopes.sort(key=lambda s: s.first_line)
        return scopes

    def _scope_at(self, line: int) -> _Scope | None:
        for s in self._scopes:
            if s.first_line <= line <= s.last_line:
                return s
        return None
