"""Semantic analysis: one pass over the syntax tree that produces the typed IR.

It resolves names (a configuration sees natives and VMlet instructions only through the
VMlets it ``uses``), gives every expression a type and a range, folds constants, computes
loop bounds, and rejects what CCL forbids: unknown or duplicate names, values outside their
declared ranges, recursion, ``while``, natives no used VMlet exposes, wrong argument counts.

It collects every error it can (not just the first) and raises them together. It does not
prove anything: overflow, bounds and budgets are ``ccl verify``'s job.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccl import ir
from ccl.diagnostics import CclError, Diagnostic, Source, Span, did_you_mean
from ccl.limits import MAX_NESTING, recursion_headroom
from ccl.ranges import ArithmeticError_, apply_binary, apply_unary, binary_range, unary_range
from ccl.syntax import literal_value, parse
from onboard.mission import MissionProfile
from onboard.vm.isa import EXT_COUNT, INT_MAX, INT_MIN

BUILTINS = ("min", "max", "abs", "env")
KEYWORDS = frozenset({
    "mission", "config", "vmlet", "version", "uses", "const", "param", "rule", "table", "var",
    "fn", "instr", "task", "every", "on", "expose", "hide", "let", "if", "else", "for", "in",
    "while", "return", "int", "bool", "true", "false", "from", "column",
})

# Binding strength of binary operators (higher binds tighter); all are left-associative.
PRECEDENCE = {
    "||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}
MAX_TABLE_LENGTH = 1 << 20
MAX_ERRORS = 100  # the checker stops at this many errors in one file

#: Loads the checked IR of a VMlet by name, for ``uses`` (provided by ``ccl.driver``).
VmletLoader = Callable[[str, Span], ir.Program]


class _Abort(Exception):
    """Stops analysis of one declaration after an error has been recorded."""


@dataclass
class _FnSig:
    name: str
    kind: ir.ProcKind
    params: tuple[tuple[str, ir.Type], ...]
    returns: ir.Type | None
    decl: Any
    vmlet: str = ""  # for instructions: the VMlet defining them


@dataclass
class _ProcState:
    """What the analyzer knows inside one procedure body."""

    name: str
    kind: ir.ProcKind
    returns: ir.Type | None
    locals: list[ir.Local] = field(default_factory=list)
    scopes: list[dict[str, ir.Local]] = field(default_factory=lambda: [{}])
    calls: list[tuple[str, Span]] = field(default_factory=list)
    # How deep the statements being analyzed nest in the IR (`ir.nested`): each `if`,
    # `else if` and `for` body is one deeper. Kept within MAX_NESTING as the IR is built,
    # since walks of statements (the missing-return check) come before `check_nesting`.
    depth: int = 0

    def lookup(self, name: str) -> ir.Local | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def declare(self, local: ir.Local) -> None:
        self.scopes[-1][local.name] = local
        self.locals.append(local)


def analyze(
    source: Source, mission_loader: Callable[[str, Span], MissionProfile], vmlets: VmletLoader
) -> ir.Program:
    """Check a parsed source and build its IR."""
    model = parse(source)
    with recursion_headroom():  # the analysis recurses as deep as the program nests
        return _Analyzer(source, model, mission_loader, vmlets).run()


class _Analyzer:
    def __init__(
        self, source: Source, model: Any,
        mission_loader: Callable[[str, Span], MissionProfile], vmlets: VmletLoader,
    ) -> None:
        self.src = source
        self.model = model
        self.mission_loader = mission_loader
        self.vmlet_loader = vmlets
        self.diags: list[Diagnostic] = []
        self.mission: MissionProfile | None = None
        self.kind: ir.ProgramKind | None = None
        self.symbols: dict[str, tuple[str, Any]] = {}  # module scope: name -> (kind, payload)
        self.declared_at: dict[str, Span] = {}
        self.consts: dict[str, ir.NamedConst] = {}
        self.const_decls: dict[str, Any] = {}
        self.const_busy: set[str] = set()
        self.const_failed: set[str] = set()  # reported: uses of them say nothing more
        self.globals: list[ir.Global] = []
        self.arrays: list[ir.Array] = []
        self.fn_sigs: dict[str, _FnSig] = {}
        self.instr_sigs: dict[str, list[_FnSig]] = {}  # unqualified name -> candidates
        self.natives: dict[str, ir.NativeSig] = {}  # visible natives
        self.hidden_by: dict[str, str] = {}  # native -> VMlet that hides it
        self.uses: list[ir.Program] = []
        self.proc: _ProcState | None = None
        self.call_graph: dict[str, list[tuple[str, Span]]] = {}
        self.own_name = ""
        self.version = 0
        self.constant_what = ""  # what the constant expression being analyzed is, if any
        self.declared_kind: dict[str, str] = {}  # module names: their declaration's kind
        self.failed: set[str] = set()  # declarations whose analysis stopped at an error
        # VMlet instructions called, each with its first call in the text: each takes one
        # of the image's EXT_COUNT extension opcodes.
        self.instr_uses: dict[tuple[str, str], Span] = {}

    # ------------------------------------------------------------------ helpers

    def span(self, obj: Any) -> Span:
        return self.src.span(obj._tx_position, obj._tx_position_end)

    def word_offset(self, obj: Any, word: str, skip: int = 0) -> int:
        """Offset of the first occurrence of ``word`` as a whole word inside ``obj`` (after
        ``skip`` earlier occurrences: a name repeated in a list gets its own span), or -1."""
        end = obj._tx_position_end
        text = self.src.text
        i = text.find(word, obj._tx_position, end)
        while i >= 0:
            before = text[i - 1] if i > 0 else " "
            j = i + len(word)
            after = text[j] if j < len(text) else " "
            if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
                if not skip:
                    return i
                skip -= 1
            i = text.find(word, i + 1, end)
        return -1

    def word_end(self, obj: Any, word: str) -> int:
        """Offset just after ``word`` inside ``obj`` (the end of ``obj`` if it is not there)."""
        i = self.word_offset(obj, word)
        return i + len(word) if i >= 0 else obj._tx_position_end

    def name_span(self, obj: Any, name: str, skip: int = 0) -> Span:
        """Span of ``name`` inside ``obj`` (see ``word_offset``); all of ``obj`` if absent."""
        i = self.word_offset(obj, name, skip)
        return self.src.span(i, i + len(name)) if i >= 0 else self.span(obj)

    def literal(self, text: str, sp: Span) -> int:
        """The value of integer literal ``text`` (E-LITERAL if it is malformed)."""
        try:
            return literal_value(text)
        except ValueError as exc:
            hint = ("CCL has no octal numbers: write the decimal without leading zeros, or "
                    "hexadecimal (`0x...`)" if "leading zero" in str(exc)
                    else "a number is decimal digits (`1200`) or `0x` and hexadecimal digits "
                    "(`0xFF`), with `_` between digits")
            raise self.fail("E-LITERAL", str(exc), sp, hint) from None

    def kind_word(self, name: str) -> str:
        """What a module-level name is, as a message says it: "a parameter"."""
        kind = self.declared_kind.get(name, "")
        return _KIND_WORDS.get(kind, f"a {kind or 'name'}")

    def err(self, code: str, message: str, span: Span | None, hint: str = "",
            notes: Sequence[str] = ()) -> None:
        if len(self.diags) + 1 >= MAX_ERRORS:  # enough to work on; the rest could take long
            notes = (*notes, f"stopped after {MAX_ERRORS} errors")
            self.diags.append(Diagnostic(code, message, span, hint, notes=tuple(notes)))
            raise CclError(self.diags)
        self.diags.append(Diagnostic(code, message, span, hint, notes=tuple(notes)))

    def fail(self, code: str, message: str, span: Span | None, hint: str = "") -> _Abort:
        self.err(code, message, span, hint)
        return _Abort()

    def guarded(self, items: Sequence[Any], fn: Callable[[Any], Any]) -> Iterator[Any]:
        """Apply ``fn`` to each item, skipping (not stopping at) items with errors."""
        for item in items:
            try:
                yield fn(item)
            except _Abort:
                self.failed.add(getattr(item, "name", ""))
                continue

    # ------------------------------------------------------------------ driver

    def run(self) -> ir.Program:
        decls = list(self.model.decls)
        by_type: dict[str, list[Any]] = {}
        for d in decls:
            by_type.setdefault(type(d).__name__, []).append(d)
        self.header(by_type)
        if self.diags:
            raise CclError(self.diags)
        assert self.kind is not None and self.mission is not None
        self.check_placement(decls)
        if self.kind is ir.ProgramKind.CONFIG:
            for u in by_type.get("UsesDecl", []):
                for k, name in enumerate(u.names):
                    self.use_vmlet(name, self.name_span(u, name, u.names[:k].count(name)))
        if self.kind is ir.ProgramKind.VMLET:
            # Before the names are declared: a VMlet's own `fn`/`instr`/`const` must not
            # take the name of a native it exposes (E-SHADOW, as in a configuration).
            self.vmlet_exposure(by_type)
        self.declare_names(decls)
        for name in self.const_order():
            try:
                self.const_value(name)
            except _Abort:
                self.const_failed.add(name)
        list(self.guarded(by_type.get("ParamDecl", []), self.param))
        list(self.guarded(by_type.get("VarDecl", []), self.var))
        list(self.guarded(by_type.get("TableDecl", []), self.table))
        self.collect_signatures(by_type)
        functions = tuple(self.guarded(by_type.get("FnDecl", []), self.function))
        instrs = tuple(self.guarded(by_type.get("InstrDecl", []), self.instr))
        tasks = tuple(self.guarded(by_type.get("TaskDecl", []), self.task))
        rules = tuple(self.guarded(by_type.get("RuleDecl", []), self.rule))
        handlers: dict[ir.ProcKind, ir.Procedure] = {}
        for event in by_type.get("OnDecl", []):
            try:
                proc = self.on_event(event)
            except _Abort:
                continue
            if proc.kind in handlers:
                self.err("E-DUPLICATE", f"`on {event.event}` is declared twice",
                         self.src.span(event._tx_position, self.word_end(event, event.event)),
                         f"the first is at {handlers[proc.kind].span}; put both bodies in one")
                continue
            handlers[proc.kind] = proc
        on_apply = handlers.get(ir.ProcKind.ON_APPLY)
        on_load = handlers.get(ir.ProcKind.ON_LOAD)
        self.check_recursion()
        self.check_instr_count()
        if not self.diags:  # depths through calls are defined once there is no recursion
            self.check_nesting(functions, instrs, [*(t.proc for t in tasks), *handlers.values()])
        if self.diags:
            raise CclError(self.diags)
        head = by_type.get("ConfigDecl") or by_type.get("VmletDecl")
        assert head
        exposes = tuple(n for e in by_type.get("ExposeDecl", []) for n in e.names)
        hides = tuple(n for e in by_type.get("HideDecl", []) for n in e.names)
        return ir.Program(
            kind=self.kind,
            name=head[0].name,
            version=self.version,
            mission=self.mission.name,
            file=self.src.path,
            uses=tuple(self.uses),
            consts=tuple(self.consts.values()),
            globals=tuple(self.globals),
            arrays=tuple(self.arrays),
            rules=rules,
            functions=functions,
            tasks=tasks,
            on_apply=on_apply,
            instrs=instrs,
            exposes=exposes,
            hides=hides,
            on_load=on_load,
            natives=tuple(self.natives.values()),
        )

    # ------------------------------------------------------------------ header

    def header(self, by_type: dict[str, list[Any]]) -> None:
        missions = by_type.get("MissionDecl", [])
        configs = by_type.get("ConfigDecl", [])
        vmlets = by_type.get("VmletDecl", [])
        start = self.src.span(0)
        if not missions:
            self.err("E-NO-MISSION", "missing `mission NAME;`", start,
                     "every CCL file names its mission first, e.g. `mission corot;`")
        for extra in missions[1:]:
            self.err("E-DUPLICATE", "`mission` is declared twice", self.span(extra),
                     f"the first is at {self.span(missions[0])}")
        heads = configs + vmlets
        if not heads:
            self.err("E-NO-HEADER", "missing `config NAME version N;` or `vmlet NAME version N;`",
                     start, "a file is either a configuration or a VMlet")
        for extra in heads[1:]:
            self.err("E-DUPLICATE", "a file holds one `config` or `vmlet` declaration",
                     self.span(extra), f"the first is at {self.span(heads[0])}")
        if heads:
            self.kind = ir.ProgramKind.CONFIG if configs else ir.ProgramKind.VMLET
            self.own_name = heads[0].name
            try:
                self.version = self.literal(heads[0].version,
                                            self.name_span(heads[0], heads[0].version))
            except _Abort:
                pass
            else:
                if not 0 < self.version <= INT_MAX:
                    self.err("E-VERSION", f"version {self.version} is out of range",
                             self.span(heads[0]),
                             "versions are positive integers that increase with every change")
        if missions:
            try:
                self.mission = self.mission_loader(missions[0].name,
                                                   self.name_span(missions[0], missions[0].name))
            except CclError as exc:
                self.diags.extend(exc.diagnostics)

    _CONFIG_ONLY = {"ParamDecl": "param", "RuleDecl": "rule", "TableDecl": "table",
                    "VarDecl": "var", "TaskDecl": "task", "UsesDecl": "uses"}
    _VMLET_ONLY = {"InstrDecl": "instr", "ExposeDecl": "expose", "HideDecl": "hide"}

    def check_placement(self, decls: list[Any]) -> None:
        for d in decls:
            t = type(d).__name__
            if self.kind is ir.ProgramKind.VMLET and t in self._CONFIG_ONLY:
                self.err("E-PLACEMENT", f"`{self._CONFIG_ONLY[t]}` belongs in a configuration, "
                         "not in a VMlet", self.span(d),
                         "a VMlet defines instructions, exposes natives and has `on load`")
            elif self.kind is ir.ProgramKind.CONFIG and t in self._VMLET_ONLY:
                self.err("E-PLACEMENT", f"`{self._VMLET_ONLY[t]}` belongs in a VMlet, "
                         "not in a configuration", self.span(d),
                         "put it in a `vmlet` file and `uses` that VMlet")

    def use_vmlet(self, name: str, span: Span) -> None:
        assert self.mission is not None
        if any(u.name == name for u in self.uses):
            self.err("E-DUPLICATE", f"VMlet `{name}` is used twice", span)
            return
        try:
            vm = self.vmlet_loader(name, span)
        except CclError as exc:
            self.diags.extend(exc.diagnostics)
            return
        if vm.mission != self.mission.name:
            self.err("E-MISSION-MISMATCH", f"VMlet `{name}` is for mission `{vm.mission}`, "
                     f"not `{self.mission.name}`", span)
            return
        self.uses.append(vm)
        for native in vm.hides:
            self.hidden_by.setdefault(native, name)
        for native in vm.exposes:
            if native not in vm.hides:
                native_sig = _native_sig(self.mission, native)
                if native_sig is not None:
                    self.natives[native] = native_sig
        for proc in vm.instrs:
            sig = _FnSig(proc.name, ir.ProcKind.INSTR,
                         tuple((p.name, p.type) for p in proc.params), proc.returns, None, name)
            self.instr_sigs.setdefault(proc.name, []).append(sig)

    def vmlet_exposure(self, by_type: dict[str, list[Any]]) -> None:
        """Check `expose`/`hide` of a VMlet; its own code sees what it exposes."""
        assert self.mission is not None
        exposed: dict[str, Span] = {}
        for kind in ("ExposeDecl", "HideDecl"):
            for d in by_type.get(kind, []):
                for k, name in enumerate(d.names):
                    sp = self.name_span(d, name, d.names[:k].count(name))
                    if name not in self.mission.natives:
                        self.err("E-UNKNOWN-NATIVE",
                                 f"mission `{self.mission.name}` has no native `{name}`", sp,
                                 did_you_mean(name, self.mission.natives)
                                 or f"natives: {', '.join(self.mission.natives)}")
                    elif kind == "ExposeDecl":
                        if name in exposed:
                            self.err("E-DUPLICATE", f"`{name}` is exposed twice", sp)
                        exposed[name] = sp
                    elif name in exposed:
                        self.err("E-EXPOSE-HIDE", f"`{name}` is both exposed and hidden", sp,
                                 f"it is exposed at {exposed[name]}")
        for name in exposed:
            sig = _native_sig(self.mission, name)
            if sig is not None:
                self.natives[name] = sig

    # ------------------------------------------------------------------ module names

    def declare_names(self, decls: list[Any]) -> None:
        kinds = {"ConstDecl": "const", "ParamDecl": "param", "TableDecl": "table",
                 "VarDecl": "var", "FnDecl": "fn", "InstrDecl": "instr", "TaskDecl": "task"}
        for d in decls:
            kind = kinds.get(type(d).__name__)
            if kind is None:
                continue
            name = d.name
            sp = self.name_span(d, name)
            if name in self.declared_at:
                self.err("E-DUPLICATE", f"`{name}` is already defined",
                         sp, f"the first definition is at {self.declared_at[name]}")
                continue
            if name in BUILTINS or name in KEYWORDS:
                self.err("E-RESERVED", f"`{name}` is a reserved word of CCL", sp,
                         "choose another name")
                continue
            if name in self.natives or name in self.instr_sigs:
                what = "a native" if name in self.natives else "a VMlet instruction"
                where = ("this VMlet exposes it" if self.kind is ir.ProgramKind.VMLET
                         else "a VMlet in use provides it")
                self.err("E-SHADOW", f"`{name}` is already {what} visible here", sp,
                         f"{where}; choose another name")
                continue
            self.declared_at[name] = sp
            self.declared_kind[name] = kind
            self.symbols[name] = (kind, d)
            if kind == "const":
                self.const_decls[name] = d

    def const_order(self) -> list[str]:
        """The constants, each after the constants its value and type use, so that
        evaluating them in this order never recurses through another (a walk with its own
        stack: chains of constants may be long). A cycle is E-CONST-CYCLE at the constant
        the walk meets again; its constants are left out (as failed)."""
        uses = {name: [n for n in _names_in(d.value, d.type) if n in self.const_decls]
                for name, d in self.const_decls.items()}
        on_path: set[str] = set()
        done: set[str] = set()
        order: list[str] = []
        for start in uses:  # in the order of the text
            if start in done:
                continue
            path, pending = [start], [iter(uses[start])]
            on_path.add(start)
            while pending:
                used = next(pending[-1], None)
                if used is None:
                    pending.pop()
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                    order.append(finished)
                elif used in on_path:
                    cycle = path[path.index(used):]
                    if not self.const_failed.intersection(cycle):
                        self.err("E-CONST-CYCLE", f"constant `{used}` is defined in terms of "
                                 "itself", self.name_span(self.const_decls[used], used),
                                 "constants must be computable from literals")
                    self.const_failed.update(cycle)
                elif used not in done:
                    on_path.add(used)
                    path.append(used)
                    pending.append(iter(uses[used]))
        return [name for name in order if name not in self.const_failed]

    def const_value(self, name: str) -> ir.NamedConst:
        if name in self.consts:
            return self.consts[name]
        if name in self.const_failed:
            raise _Abort()  # its error is reported
        d = self.const_decls[name]
        sp = self.name_span(d, name)
        if name in self.const_busy:
            raise self.fail("E-CONST-CYCLE", f"constant `{name}` is defined in terms of itself",
                            sp, "constants must be computable from literals")
        self.const_busy.add(name)
        try:
            declared = self.type_of(d.type) if d.type is not None else None
            value = self.constant(d.value, "a constant's value")
            vtype: ir.Type = ir.BOOL if isinstance(value.type, ir.BoolType) else ir.INT
            if declared is not None:
                self.check_assignable(declared, value, self.span(d.value))
                vtype = declared
            const = ir.NamedConst(name, value.value, vtype, sp)
            self.consts[name] = const
            return const
        finally:
            self.const_busy.discard(name)

    # ------------------------------------------------------------------ types

    def type_of(self, t: Any) -> ir.Type:
        if t.name == "bool":
            if t.lo is not None:
                raise self.fail("E-TYPE", "`bool` takes no range", self.span(t))
            return ir.BOOL
        if t.lo is None:
            return ir.INT
        lo = self.constant_int(t.lo, "a range bound")
        hi = self.constant_int(t.hi, "a range bound")
        if lo > hi:
            raise self.fail("E-EMPTY-RANGE", f"the range int[{lo}..{hi}] is empty", self.span(t),
                            "write the smaller bound first")
        return ir.IntType(lo, hi)

    def int_type(self, t: Any, what: str) -> ir.IntType:
        ty = self.type_of(t)
        if not isinstance(ty, ir.IntType):
            raise self.fail("E-TYPE", f"{what} must be an integer type", self.span(t))
        return ty

    def constant(self, expr: Any, what: str) -> ir.Const:
        saved, self.constant_what = self.constant_what, what
        try:
            value = self.expr(expr)
        finally:
            self.constant_what = saved
        if not isinstance(value, ir.Const):
            raise self.fail("E-NOT-CONSTANT", f"{what} must be a constant expression",
                            self.span(expr),
                            "use literals, `const` names and operators; not parameters or "
                            "variables")
        return value

    def constant_int(self, expr: Any, what: str) -> int:
        c = self.constant(expr, what)
        if not isinstance(c.type, ir.IntType):
            raise self.fail("E-TYPE", f"{what} must be an integer, not a boolean", c.span)
        return c.value

    def check_assignable(self, target: ir.Type, value: ir.Expr, span: Span,
                         what: str = "value") -> None:
        if isinstance(target, ir.BoolType) != isinstance(value.type, ir.BoolType):
            raise self.fail("E-TYPE", f"expected {_type_word(target)}, found "
                            f"{_type_word(value.type)}", span,
                            "compare to get a boolean (`x != 0`)"
                            if isinstance(target, ir.BoolType) else "")
        if isinstance(value, ir.Const) and isinstance(target, ir.IntType):
            if not target.contains(value.value):
                raise self.fail("E-OUT-OF-RANGE",
                                f"the {what} {value.value} is outside {target}", span,
                                f"use a value in {target.lo} .. {target.hi}, or widen the range")

    # ------------------------------------------------------------------ data declarations

    def param(self, d: Any) -> None:
        ty = self.int_type(d.type, "a parameter")
        sp = self.name_span(d, d.name)
        if d.value is None:
            raise self.fail("E-PARAM-VALUE", f"parameter `{d.name}` has no value", sp,
                            f"give it one: `param {d.name} : {ty} = {ty.lo};`")
        value = self.constant(d.value, "a parameter's value")
        self.check_assignable(ty, value, self.span(d.value), "initial value")
        g = ir.Global(d.name, ir.GlobalKind.PARAM, ty, value.value, len(self.globals), sp)
        self.globals.append(g)
        self.symbols[d.name] = ("global", g)

    def var(self, d: Any) -> None:
        ty = self.int_type(d.type, "a state variable")
        sp = self.name_span(d, d.name)
        init = 0
        if d.value is not None:
            c = self.constant(d.value, "a state variable's initial value")
            self.check_assignable(ty, c, self.span(d.value), "initial value")
            init = c.value
        elif not ty.contains(0):
            raise self.fail("E-OUT-OF-RANGE", f"`{d.name}` starts at 0, which is outside {ty}",
                            sp, f"give an initial value: `= {ty.lo}`")
        if d.size is None:
            g = ir.Global(d.name, ir.GlobalKind.VAR, ty, init, len(self.globals), sp)
            self.globals.append(g)
            self.symbols[d.name] = ("global", g)
            return
        length = self.array_length(d)
        a = ir.Array(d.name, ir.ArrayKind.VAR, ty, length, (init,) * length, len(self.arrays), sp)
        self.arrays.append(a)
        self.symbols[d.name] = ("array", a)

    def array_length(self, d: Any) -> int:
        length = self.constant_int(d.size, "an array size")
        if not 0 < length <= MAX_TABLE_LENGTH:
            raise self.fail("E-SIZE", f"array size {length} must be in 1 .. {MAX_TABLE_LENGTH}",
                            self.span(d.size))
        return length

    def table(self, d: Any) -> None:
        ty = self.int_type(d.type, "a table")
        sp = self.name_span(d, d.name)
        length = self.array_length(d)
        init = d.init
        if init is None:
            if not ty.contains(0):
                raise self.fail("E-OUT-OF-RANGE",
                                f"table `{d.name}` is zero-filled, but 0 is outside {ty}", sp,
                                "give its contents: `= [ ... ]` or `from \"file.csv\"`")
            values: tuple[int, ...] = (0,) * length
        elif type(init).__name__ == "ListInit":
            items = [self.constant(v, "a table value") for v in init.values]
            if len(items) != length:
                raise self.fail("E-SIZE", f"table `{d.name}` has {length} entries but "
                                f"{len(items)} values are given", self.span(init),
                                "give exactly one value per entry")
            for item in items:
                self.check_assignable(ty, item, item.span, "table value")
            values = tuple(i.value for i in items)
        else:
            values = self.table_from_file(d, init, ty, length)
        a = ir.Array(d.name, ir.ArrayKind.TABLE, ty, length, values, len(self.arrays), sp)
        self.arrays.append(a)
        self.symbols[d.name] = ("array", a)

    def table_from_file(self, d: Any, init: Any, ty: ir.IntType, length: int) -> tuple[int, ...]:
        sp = self.span(init)
        path = Path(self.src.path).parent / init.path
        try:
            reader = csv.reader(path.read_text(encoding="utf-8-sig").splitlines())
            # Each row with the CSV file's own line number, for messages (``path:line``).
            rows = [(reader.line_num, row) for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error):
            raise self.fail("E-READ", f"cannot read table data {path}", sp,
                            "the path is relative to the .ccl file") from None
        rows = [(n, r) for n, r in rows if r and not r[0].lstrip().startswith("#")]
        column = 0
        if init.column:
            header = [h.strip() for h in rows[0][1]] if rows else []
            if init.column not in header:
                raise self.fail("E-TABLE-FILE", f"{path} has no column `{init.column}`", sp,
                                f"columns: {', '.join(header)}")
            column = header.index(init.column)
            rows = rows[1:]
        if len(rows) != length:
            raise self.fail("E-SIZE", f"{path} has {len(rows)} rows; table `{d.name}` has "
                            f"{length} entries", sp)
        values = []
        for n, row in rows:
            where = f"{path}:{n}"
            if column >= len(row):
                raise self.fail("E-TABLE-FILE", f"{where}: the row has no column "
                                f"{init.column or 1}", sp)
            cell = row[column].strip()
            try:
                v = -literal_value(cell[1:]) if cell[:1] == "-" else literal_value(cell)
            except ValueError as exc:
                raise self.fail("E-TABLE-FILE", f"{where}: {exc}", sp,
                                "table data are integers written as in CCL: `1200`, `-5`, "
                                "`0xFF`, without leading zeros") from None
            if not ty.contains(v):
                raise self.fail("E-OUT-OF-RANGE", f"{where}: value {v} is outside {ty}", sp)
            values.append(v)
        return tuple(values)

    # ------------------------------------------------------------------ procedures

    def collect_signatures(self, by_type: dict[str, list[Any]]) -> None:
        for kind_name, kind in (("FnDecl", ir.ProcKind.FUNCTION), ("InstrDecl", ir.ProcKind.INSTR)):
            for d in by_type.get(kind_name, []):
                if d.name not in self.symbols or self.symbols[d.name][1] is not d:
                    continue  # a duplicate, already reported
                try:
                    params = tuple((p.name, self.type_of(p.type)) for p in d.params)
                    returns = self.type_of(d.ret) if d.ret is not None else None
                except _Abort:
                    continue
                sig = _FnSig(d.name, kind, params, returns, d, self.own_name)
                if kind is ir.ProcKind.FUNCTION:
                    self.fn_sigs[d.name] = sig
                else:
                    self.instr_sigs.setdefault(d.name, []).append(sig)

    def procedure(self, name: str, kind: ir.ProcKind, d: Any,
                  params: Sequence[tuple[str, ir.Type, Span]], returns: ir.Type | None,
                  body: Any) -> ir.Procedure:
        state = _ProcState(name, kind, returns)
        self.proc = state
        try:
            param_locals = []
            for pname, ptype, psp in params:
                self.check_local_name(pname, psp, "argument")
                local = ir.Local(pname, len(state.locals), ptype, psp, is_param=True)
                state.declare(local)
                param_locals.append(local)
            errors_before = len(self.diags)
            stmts = self.block(body)
            # A statement with an error is dropped from ``stmts``: if it was a `return`, the
            # missing return would only be a consequence of that error.
            if returns is not None and len(self.diags) == errors_before and \
                    not ir.always_returns(stmts):
                self.err("E-MISSING-RETURN", f"`{name}` can reach its end without returning "
                         f"a value", self.span(d), "add a `return` on every path")
            self.call_graph[name] = state.calls
            return ir.Procedure(name, kind, tuple(param_locals), tuple(state.locals), returns,
                                stmts, self.name_span(d, name) if name in self.declared_at
                                else self.span(d))
        finally:
            self.proc = None

    def function(self, d: Any) -> ir.Procedure:
        sig = self.fn_sigs.get(d.name)
        if sig is None or sig.decl is not d:
            raise _Abort()
        params = [(p.name, t, self.name_span(p, p.name))
                  for p, (_, t) in zip(d.params, sig.params, strict=True)]
        return self.procedure(d.name, ir.ProcKind.FUNCTION, d, params, sig.returns, d.body)

    def instr(self, d: Any) -> ir.Procedure:
        sig = next((s for s in self.instr_sigs.get(d.name, []) if s.decl is d), None)
        if sig is None:
            raise _Abort()
        params = [(p.name, t, self.name_span(p, p.name))
                  for p, (_, t) in zip(d.params, sig.params, strict=True)]
        if sig.returns is None:
            raise self.fail("E-INSTR-RESULT", f"instruction `{d.name}` must return a value",
                            self.name_span(d, d.name), "declare a result: `-> int`")
        return self.procedure(d.name, ir.ProcKind.INSTR, d, params, sig.returns, d.body)

    def task(self, d: Any) -> ir.Task:
        assert self.mission is not None
        period = self.constant_int(d.period, "a task period")
        period_ms = period * 1000 if d.unit == "s" else period
        sp = self.name_span(d, d.name)
        frame = self.mission.frame_ms
        if period_ms <= 0 or period_ms % frame:
            raise self.fail("E-PERIOD", f"period {period} {d.unit} is not a positive multiple "
                            f"of the {frame} ms scheduling frame", self.span(d.period),
                            f"mission `{self.mission.name}` releases tasks on frame boundaries")
        proc = self.procedure(d.name, ir.ProcKind.TASK, d, (), None, d.body)
        return ir.Task(d.name, period_ms, proc, sp)

    def on_event(self, d: Any) -> ir.Procedure:
        expected = "apply" if self.kind is ir.ProgramKind.CONFIG else "load"
        if d.event != expected:
            where = "a configuration" if expected == "apply" else "a VMlet"
            raise self.fail("E-EVENT", f"`on {d.event}` is not an event of {where}",
                            self.name_span(d, d.event), f"{where} has `on {expected}`")
        kind = ir.ProcKind.ON_APPLY if expected == "apply" else ir.ProcKind.ON_LOAD
        return self.procedure(f"on {expected}", kind, d, (), None, d.body)

    def rule(self, d: Any) -> ir.Rule:
        text = self.src.text[d.cond._tx_position:d.cond._tx_position_end].strip()
        proc_state = _ProcState("rule", ir.ProcKind.RULE, ir.BOOL)
        self.proc = proc_state
        try:
            cond = self.expr(d.cond)
        finally:
            self.proc = None
        sp = self.span(d.cond)
        if not isinstance(cond.type, ir.BoolType):
            raise self.fail("E-TYPE", "a rule must be a condition (a boolean)", sp)
        for node, _ in ir.nested((cond,)):
            if isinstance(node, ir.GlobalRef) and node.glob.kind is not ir.GlobalKind.PARAM:
                raise self.fail("E-RULE", f"a rule may only read parameters; `{node.glob.name}` "
                                "is a state variable", node.span,
                                "flight rules constrain what the ground may set")
            if isinstance(node, (ir.ArrayRef, ir.NativeCall, ir.InstrCall, ir.Call,
                                 ir.EnvRead)):
                raise self.fail("E-RULE", "a rule may only use parameters, constants and "
                                "operators", node.span)
        proc = ir.Procedure(f"rule {len(self.call_graph)}", ir.ProcKind.RULE, (), (), ir.BOOL,
                            (ir.Return(cond, sp),), sp)
        if self.nesting_depth("", proc, {}, report=True) > MAX_NESTING:
            raise _Abort()  # (reported) before the evaluation below walks it
        values = {g.name: g.value for g in self.globals}
        held = _evaluate(cond, values)
        if held is None:  # it traps (division by zero, overflow): it does not hold either
            raise self.fail("E-RULE-VIOLATED", f"rule `{text}` traps for this "
                            "configuration's values (division by zero or overflow)", sp,
                            "change the parameter values, or the rule")
        if held == 0:
            raise self.fail("E-RULE-VIOLATED", f"rule `{text}` does not hold for this "
                            "configuration's values", sp,
                            "change the parameter values, or the rule")
        return ir.Rule(text, cond, proc, sp)

    def check_recursion(self) -> None:
        """Report cycles of calls among functions (and instructions), each once.

        One depth-first walk over the call graph (linear in its size): a call to a
        procedure still on the walk's path closes a cycle."""
        reported: set[frozenset[str]] = set()
        done: set[str] = set()
        for start in self.call_graph:
            if start in done:
                continue
            path = [start]
            on_path = {start: 0}
            pending = [iter(self.call_graph[start])]
            while pending:
                step = next(pending[-1], None)
                if step is None:
                    pending.pop()
                    finished = path.pop()
                    del on_path[finished]
                    done.add(finished)
                    continue
                callee, sp = step
                if callee in on_path:
                    cycle = path[on_path[callee]:] + [callee]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        self.err("E-RECURSION", "recursion: " + " -> ".join(cycle), sp,
                                 "CCL has no recursion (calls are inlined for verification); "
                                 "use a `for` loop")
                elif callee not in done and callee in self.call_graph:
                    on_path[callee] = len(path)
                    path.append(callee)
                    pending.append(iter(self.call_graph[callee]))

    def check_instr_count(self) -> None:
        """E-TOO-MANY-INSTRS at the first call of the first VMlet instruction beyond the
        EXT_COUNT an image can bind (in the order of the text)."""
        if len(self.instr_uses) <= EXT_COUNT:
            return
        firsts = sorted(self.instr_uses.items(), key=lambda item: (item[1].line, item[1].col))
        (vmlet, instr), sp = firsts[EXT_COUNT]
        what = "configuration" if self.kind is ir.ProgramKind.CONFIG else "VMlet"
        self.err("E-TOO-MANY-INSTRS", f"`{vmlet}.{instr}` is the {EXT_COUNT + 1}th VMlet "
                 f"instruction this {what} calls; an image can call at most {EXT_COUNT}", sp,
                 f"it calls {len(firsts)} different ones; each takes one of the "
                 f"{EXT_COUNT} extension opcodes of the image; write some as functions (`fn`) "
                 "of this file instead")

    def check_nesting(self, functions: Sequence[ir.Procedure], instrs: Sequence[ir.Procedure],
                      others: Sequence[ir.Procedure]) -> None:
        """E-TOO-DEEP where code nests deeper than MAX_NESTING, counting through calls:
        the verifier inlines every call, so a call nests its callee's body where it is.
        Callees are measured before their callers, with a loop and its own stack (call
        chains may be long); each procedure reports its first point too deep, once."""
        # This file's functions are ("", "fn", name), as its calls name them; a VMlet's
        # instructions are (vmlet, "instr", name) wherever they are called from.
        index: dict[_ProcKey, ir.Procedure] = {}
        for program, fns, ins in (("", functions, ()), (self.own_name, (), instrs),
                                  *((u.name, u.functions, u.instrs) for u in self.uses)):
            index.update({(program, "fn", f.name): f for f in fns})
            index.update({(program, "instr", i.name): i for i in ins})
        own = {("", "fn", f.name) for f in functions} | \
            {(self.own_name, "instr", i.name) for i in instrs}
        depths: dict[_ProcKey, int] = {}
        for key in index:
            pending = [key]
            while pending:
                k = pending[-1]
                if k in depths:
                    pending.pop()
                    continue
                program = "" if k in own else k[0]  # whose functions its calls name
                missing = [c for c in _callees(program, index[k])
                           if c in index and c not in depths]
                if missing and len(pending) <= len(index):  # (no cycles: recursion is refused)
                    pending.extend(missing)
                    continue
                pending.pop()
                depths[k] = self.nesting_depth(program, index[k], depths, report=k in own)
        for proc in others:
            self.nesting_depth("", proc, depths, report=True)

    def nesting_depth(self, program: str, proc: ir.Procedure, depths: dict[_ProcKey, int],
                      report: bool) -> int:
        """How deep ``proc`` nests, through calls: the depths of its callees are in
        ``depths``; its calls of functions are of ``program``'s ("" for this file's). If
        ``report``, E-TOO-DEEP where it first nests too deep."""
        deepest = 0
        for node, depth in ir.nested(proc.body):
            key = _callee_key(program, node)
            inner = depths.get(key, 0) if key is not None else 0
            # (A callee too deep has reported it: its callers do not repeat it.)
            if report and depth + inner > MAX_NESTING >= max(deepest, inner):
                self.too_deep(node, depth, inner)
            deepest = max(deepest, depth + inner)
        return deepest

    def too_deep(self, node: ir.Stmt | ir.Expr, depth: int, inner: int) -> None:
        limit = (f"code may nest at most {MAX_NESTING} levels: each enclosing statement, "
                 "operator, call and index counts one, and a call counts the levels of the "
                 "body it calls too")
        if isinstance(node, (ir.Call, ir.InstrCall)) and depth <= MAX_NESTING:
            name = node.function if isinstance(node, ir.Call) else node.instr
            self.err("E-TOO-DEEP", f"this call nests {depth + inner} levels deep: `{name}` "
                     f"nests {inner} levels itself (calls are inlined for verification)",
                     node.span, limit)
        else:
            self.err("E-TOO-DEEP", f"this nests more than {MAX_NESTING} levels deep",
                     node.span, limit + "; split a long expression with `let` locals "
                     "(`a + b + c` nests one level per operator)")

    # ------------------------------------------------------------------ statements

    def check_local_name(self, name: str, sp: Span, what: str) -> None:
        """Reject a local name (``what``: "argument", "local", "loop counter") that is
        reserved, already defined in this block, or would hide another name."""
        assert self.proc is not None
        if name in KEYWORDS or name in BUILTINS:
            raise self.fail("E-RESERVED", f"`{name}` is a reserved word of CCL", sp)
        existing = self.proc.lookup(name)
        if existing is not None:
            first = ("argument" if existing.is_param else
                     "loop counter" if existing.is_loop_counter else "local")
            hint = f"the {first} `{name}` is defined at {existing.span}; choose another name"
            if name in self.proc.scopes[-1]:
                where = (f"an argument of `{self.proc.name}`" if existing.is_param
                         else "defined in this block")
                raise self.fail("E-DUPLICATE", f"`{name}` is already {where}", sp, hint)
            raise self.fail("E-DUPLICATE", f"{what} `{name}` would hide the {first} `{name}` "
                            "of an enclosing block", sp, hint)
        if name in self.declared_at:
            raise self.fail("E-SHADOW", f"{what} `{name}` would hide the "
                            f"{self.kind_word(name).split(' ', 1)[1]} `{name}`", sp,
                            f"it is defined at {self.declared_at[name]}; choose another name")

    def block(self, block: Any) -> tuple[ir.Stmt, ...]:
        """Analyze a block in a new scope; statements with errors are skipped."""
        assert self.proc is not None
        self.proc.scopes.append({})
        try:
            out: list[ir.Stmt] = []
            for s in block.stmts:
                try:
                    result = getattr(self, "stmt_" + type(s).__name__)(s)
                except _Abort:
                    continue
                if isinstance(result, tuple):
                    out.extend(result)
                else:
                    out.append(result)
            return tuple(out)
        finally:
            self.proc.scopes.pop()

    def stmt_LetStmt(self, s: Any) -> ir.Stmt:
        assert self.proc is not None
        sp = self.name_span(s, s.name)
        value = self.expr(s.value)
        if s.type is not None:
            ty = self.type_of(s.type)
            self.check_assignable(ty, value, self.span(s.value))
        else:
            ty = ir.BOOL if isinstance(value.type, ir.BoolType) else ir.INT
        self.check_local_name(s.name, sp, "local")
        local = ir.Local(s.name, len(self.proc.locals), ty, sp)
        self.proc.declare(local)
        return ir.Let(local, value, self.span(s))

    def stmt_AssignStmt(self, s: Any) -> ir.Stmt | tuple[ir.Stmt, ...]:
        assert self.proc is not None
        sp = self.span(s)
        target: str = s.target or s.element
        name_sp = self.src.span(s._tx_position, s._tx_position + len(target))
        value = self.expr(s.value)
        current: ir.Expr
        local = self.proc.lookup(target)
        if local is not None:
            if s.index is not None:
                raise self.fail("E-TYPE", f"`{target}` is not an array", name_sp)
            if local.is_loop_counter:
                raise self.fail("E-READONLY", f"loop counter `{target}` cannot be assigned",
                                name_sp, "loops run a fixed number of times; use a `let`")
            if local.is_param:
                raise self.fail("E-READONLY", f"argument `{target}` cannot be assigned",
                                name_sp, f"copy it: `let {target}_ = {target};`")
            current = ir.LocalRef(local, local.type, name_sp)
            value = self.compound(s, current, value)
            self.check_assignable(local.type, value, self.span(s.value))
            return ir.AssignLocal(local, value, sp)
        if target in self.natives or target in self.instr_sigs:
            what = "a native" if target in self.natives else "a VMlet instruction"
            raise self.fail("E-NOT-ASSIGNABLE", f"`{target}` is {what}, not a variable",
                            name_sp)
        kind, payload = self.lookup_module(target, name_sp)
        if kind == "global":
            g: ir.Global = payload
            if s.index is not None:
                raise self.fail("E-TYPE", f"`{target}` is not an array", name_sp)
            if not g.writable:
                raise self.fail("E-READONLY", f"parameter `{g.name}` cannot be assigned on board",
                                name_sp, "parameters change only through patches; use a `var` "
                                "for state")
            value = self.compound(s, ir.GlobalRef(g, g.type, name_sp), value)
            self.check_assignable(g.type, value, self.span(s.value))
            return ir.AssignGlobal(g, value, sp)
        if kind == "array":
            a: ir.Array = payload
            if s.index is None:
                raise self.fail("E-TYPE", f"`{a.name}` is an array; assign one element: "
                                f"`{a.name}[i] = ...`", name_sp)
            if not a.writable:
                raise self.fail("E-READONLY", f"table `{a.name}` cannot be assigned on board",
                                name_sp, "tables change only through patches; use a `var` array "
                                "for state")
            index = self.index_expr(a, s.index)
            first: tuple[ir.Stmt, ...] = ()
            if s.op != "=" and any(isinstance(n, (ir.Call, ir.NativeCall, ir.InstrCall))
                                   for n, _ in ir.nested((index,))):
                # `a[f()] += e` reads and writes the element `f()` names: `f` runs once (its
                # result in a local no name can reach), not once per use of the index.
                assert isinstance(index.type, ir.IntType)
                held = ir.Local(f"{a.name}[...]", len(self.proc.locals), index.type,
                                index.span)
                self.proc.locals.append(held)
                first = (ir.Let(held, index, index.span),)
                index = ir.LocalRef(held, held.type, index.span)
            value = self.compound(s, ir.ArrayRef(a, index, a.type, name_sp), value)
            self.check_assignable(a.type, value, self.span(s.value))
            return (*first, ir.AssignElement(a, index, value, sp))
        raise self.fail("E-NOT-ASSIGNABLE", f"`{target}` is {self.kind_word(target)}, "
                        "not a variable", name_sp)

    def compound(self, s: Any, current: ir.Expr, value: ir.Expr) -> ir.Expr:
        if s.op == "=":
            return value
        op = {"+=": ir.BinOp.ADD, "-=": ir.BinOp.SUB, "*=": ir.BinOp.MUL}[s.op]
        return self.binary(op, current, value, self.span(s))

    def stmt_IfStmt(self, s: Any) -> ir.Stmt:
        # `if a {..} else if b {..} else {..}` is `if a {..} else { if b {..} else {..} }`:
        # analyzed in the order written, nested from the last `else if` outwards (a loop,
        # not a recursion: chains may be long). The k-th `else if` is k levels deeper.
        assert self.proc is not None
        base = self.proc.depth
        arms = []
        try:
            for k, arm in enumerate((s, *s.elifs)):
                if base + k + 1 > MAX_NESTING:
                    word = "if" if arm is s else "else if"
                    raise self.fail("E-TOO-DEEP", f"this `{word}` nests more than {MAX_NESTING} "
                                    "levels deep",
                                    self.src.span(arm._tx_position, arm.then._tx_position),
                                    "each `else if` is nested in the `else` before it, and code "
                                    f"may nest at most {MAX_NESTING} levels: split the chain, or "
                                    "look the value up in a table")
                self.proc.depth = base + k + 1
                arms.append((self.condition(arm.cond), self.block(arm.then),
                             s._tx_position if arm is s else self.word_offset(arm, "if")))
            self.proc.depth = base + len(arms)
            otherwise = self.block(s.otherwise) if s.otherwise is not None else ()
        finally:
            self.proc.depth = base
        for cond, then, start in reversed(arms):
            otherwise = (ir.If(cond, then, otherwise,
                               self.src.span(start, s._tx_position_end)),)
        return otherwise[0]

    def condition(self, e: Any) -> ir.Expr:
        cond = self.expr(e)
        if not isinstance(cond.type, ir.BoolType):
            raise self.fail("E-TYPE", f"a condition must be a boolean, not {_type_word(cond.type)}",
                            self.span(e), "compare it: `x != 0`")
        return cond

    def stmt_ForStmt(self, s: Any) -> ir.Stmt:
        assert self.proc is not None
        lo = self.int_expr(s.lo, "a loop bound")
        hi = self.int_expr(s.hi, "a loop bound")
        assert isinstance(lo.type, ir.IntType) and isinstance(hi.type, ir.IntType)
        sp = self.name_span(s, s.var)
        max_trips = max(0, hi.type.hi - lo.type.lo)
        counter_type = ir.IntType(lo.type.lo, max(lo.type.lo, hi.type.hi - 1))
        self.proc.scopes.append({})
        try:
            self.check_local_name(s.var, sp, "loop counter")
            counter = ir.Local(s.var, len(self.proc.locals), counter_type, sp,
                               is_loop_counter=True)
            self.proc.declare(counter)
            self.proc.depth += 1
            try:
                body = self.block(s.body)
            finally:
                self.proc.depth -= 1
        finally:
            self.proc.scopes.pop()
        return ir.For(counter, lo, hi, body, max_trips, self.span(s))

    def stmt_WhileStmt(self, s: Any) -> ir.Stmt:
        sp = self.src.span(s._tx_position, s._tx_position + len("while"))
        raise self.fail("E-WHILE", "`while` is not in CCL: every loop needs a bound the "
                        "compiler can compute", sp,
                        "use `for i in 0 .. N { ... }` with N from a constant or a ranged "
                        "parameter")

    def stmt_ReturnStmt(self, s: Any) -> ir.Stmt:
        assert self.proc is not None
        sp = self.span(s)
        if s.value is None:
            if self.proc.returns is not None:
                raise self.fail("E-RETURN", f"`{self.proc.name}` must return "
                                f"{_type_word(self.proc.returns)}", sp, "write `return VALUE;`")
            return ir.Return(None, sp)
        if self.proc.returns is None:
            what = (f"`{self.proc.name}`" if self.proc.name == self.proc.kind.value
                    else f"{self.proc.kind.value} `{self.proc.name}`")  # `on apply` or task `t`
            raise self.fail("E-RETURN", f"{what} returns no value", sp,
                            "write `return;`" if self.proc.kind is not ir.ProcKind.FUNCTION
                            else "write `return;`, or declare a result type `-> int`")
        value = self.expr(s.value)
        self.check_assignable(self.proc.returns, value, self.span(s.value), "returned value")
        return ir.Return(value, sp)

    def stmt_HideStmt(self, s: Any) -> tuple[ir.Stmt, ...]:
        assert self.proc is not None
        if self.proc.kind is not ir.ProcKind.ON_LOAD:
            raise self.fail("E-PLACEMENT", "`hide` as a statement belongs in a VMlet's "
                            "`on load`", self.span(s))
        out = []
        for name in s.names:
            if name not in self.natives:
                raise self.fail("E-UNKNOWN-NATIVE", f"`{name}` is not a native this VMlet "
                                "exposes", self.name_span(s, name),
                                did_you_mean(name, self.natives))
            out.append(ir.Hide(name, self.span(s)))
        return tuple(out)

    def stmt_ExprStmt(self, s: Any) -> ir.Stmt:
        e = self.expr(s.expr, void_ok=True)
        if not isinstance(e, (ir.Call, ir.NativeCall, ir.InstrCall)):
            hint = ""
            if isinstance(e, ir.Binary) and e.op is ir.BinOp.EQ:
                hint = "to assign, write `=`"
            raise self.fail("E-UNUSED", "this expression computes a value that is never used",
                            self.span(s.expr), hint or "assign it, or remove it")
        return ir.ExprStmt(e, self.span(s))

    # ------------------------------------------------------------------ expressions

    def int_expr(self, e: Any, what: str) -> ir.Expr:
        value = self.expr(e)
        if not isinstance(value.type, ir.IntType):
            raise self.fail("E-TYPE", f"{what} must be an integer, not "
                            f"{_type_word(value.type)}", self.span(e))
        return value

    def expr(self, e: Any, *, void_ok: bool = False) -> ir.Expr:
        """Analyze a flat ``Expr`` node by precedence climbing. Its value is used unless
        ``void_ok`` (an expression statement): then it may be a call that returns nothing."""
        operands = e.operands
        if len(operands) == 1:
            value = self.operand(operands[0])
            if value.type is None and not void_ok:
                raise self.no_value(value)
            return value
        ops = e.ops
        values = [self.operand(o) for o in operands]
        starts = [o._tx_position for o in operands]
        ends = [o._tx_position_end for o in operands]
        pos = 0

        def climb(min_prec: int) -> tuple[ir.Expr, int, int]:
            nonlocal pos
            left, lstart, lend = values[pos], starts[pos], ends[pos]
            while pos < len(ops) and PRECEDENCE[ops[pos]] >= min_prec:
                op = ops[pos]
                prec = PRECEDENCE[op]
                pos += 1
                right, _, rend = climb(prec + 1)
                left = self.binary(_BINOPS[op], left, right, self.src.span(lstart, rend))
                lend = rend
            return left, lstart, lend

        result, _, _ = climb(1)
        return result

    def operand(self, o: Any) -> ir.Expr:
        """An operand and its prefix operators (``o.ops``, e.g. ``"- !"``), innermost first."""
        if not o.ops:
            return self.atom(o, o._tx_position)
        ops = [c for c in o.ops if c in "-!"]
        if ops[-1] == "-" and o.value and _literal_or_none(o.value) == INT_MAX + 1:
            # -2147483648 is INT_MIN: the one literal that fits only when negated.
            minus = o._tx_position + o.ops.rindex("-")
            value: ir.Expr = ir.Const(INT_MIN, ir.IntType(INT_MIN, INT_MIN),
                                      self.src.span(minus, o._tx_position_end))
            ops.pop()
        else:
            # The operators' text runs up to the atom (it takes the blanks after them).
            value = self.atom(o, o._tx_position + len(o.ops))
        sp = self.src.span(o._tx_position, o._tx_position_end)
        for op in reversed(ops):
            value = self.unary_op(ir.UnOp.NEG if op == "-" else ir.UnOp.NOT, value, sp)
        return value

    def no_value(self, call: ir.Expr) -> _Abort:
        """E-TYPE for a call that returns nothing, used where a value is needed."""
        if isinstance(call, ir.NativeCall):
            name = call.native.name
            hint = f"native `{name}` has no result: call it as a statement, `{name}(...);`"
        else:
            assert isinstance(call, (ir.Call, ir.InstrCall))
            name, keyword = ((call.function, "fn") if isinstance(call, ir.Call)
                             else (call.instr, "instr"))
            hint = (f"call it as a statement, `{name}(...);`, or declare a result: "
                    f"`{keyword} {name}(...) -> int`")
        return self.fail("E-TYPE", f"`{name}` returns no value, so its call cannot be used "
                         "as a value", call.span, hint)

    def unary_op(self, op: ir.UnOp, value: ir.Expr, sp: Span) -> ir.Expr:
        if value.type is None:
            raise self.no_value(value)
        if op is ir.UnOp.NOT:
            if not isinstance(value.type, ir.BoolType):
                raise self.fail("E-TYPE", "`!` applies to a boolean", sp, "use `x == 0`")
            ty: ir.Type = ir.BOOL
        else:
            if not isinstance(value.type, ir.IntType):
                raise self.fail("E-TYPE", f"`{op.value}` applies to an integer, not a boolean",
                                sp)
            ty = unary_range(op, value.type)
        if isinstance(value, ir.Const):
            try:
                return ir.Const(apply_unary(op, value.value), ty, sp)
            except ArithmeticError_ as exc:
                raise self.fail("E-CONST-ARITH", f"constant expression traps: {exc}", sp) from None
        return ir.Unary(op, value, ty, sp)

    def binary(self, op: ir.BinOp, left: ir.Expr, right: ir.Expr, sp: Span) -> ir.Expr:
        for side in (left, right):
            if side.type is None:
                raise self.no_value(side)
        lb, rb = isinstance(left.type, ir.BoolType), isinstance(right.type, ir.BoolType)
        ty: ir.Type
        if op in ir.LOGICAL:
            if not (lb and rb):
                raise self.fail("E-TYPE", f"`{op.value}` combines booleans", sp,
                                "compare integers first: `x != 0`")
            ty = ir.BOOL
        elif op in ir.COMPARISONS:
            if lb != rb or (lb and op not in (ir.BinOp.EQ, ir.BinOp.NE)):
                raise self.fail("E-TYPE", f"`{op.value}` compares two integers", sp)
            ty = ir.BOOL
        else:
            if lb or rb:
                raise self.fail("E-TYPE", f"`{op.value}` applies to integers, not booleans", sp)
            assert isinstance(left.type, ir.IntType) and isinstance(right.type, ir.IntType)
            ty = binary_range(op, left.type, right.type)
        if isinstance(left, ir.Const) and isinstance(right, ir.Const):
            try:
                return ir.Const(apply_binary(op, left.value, right.value), ty, sp)
            except ArithmeticError_ as exc:
                raise self.fail("E-CONST-ARITH", f"constant expression traps: {exc}", sp) from None
        if op in (ir.BinOp.DIV, ir.BinOp.MOD) and isinstance(right, ir.Const) and not right.value:
            raise self.fail("E-DIV-ZERO", "division by zero", sp)
        return ir.Binary(op, left, right, ty, sp)

    def atom(self, a: Any, start: int) -> ir.Expr:
        """The operand ``a`` without its prefix operators; its text starts at ``start``."""
        if a.name or a.call or a.element:
            return self.ref(a, start)
        if a.expr is not None:  # ( expr )
            return self.expr(a.expr)
        sp = self.src.span(start, a._tx_position_end)
        if a.boolean:
            return ir.Const(int(a.boolean == "true"), ir.BOOL, sp)
        value = self.literal(a.value, sp)
        if value > INT_MAX:
            raise self.fail("E-LITERAL", f"{a.value} does not fit in 32 bits", sp,
                            f"integers are 32-bit: {INT_MIN} .. {INT_MAX} ({INT_MAX + 1} "
                            "is allowed only negated, as the smallest integer)"
                            if value == INT_MAX + 1 else
                            f"integers are 32-bit: {INT_MIN} .. {INT_MAX}")
        return ir.Const(value, ir.IntType(value, value), sp)

    def lookup_module(self, name: str, sp: Span) -> tuple[str, Any]:
        if name in self.symbols:
            kind, payload = self.symbols[name]
            if kind == "const":
                return "const", self.const_value(name)
            return kind, payload
        candidates = list(self.symbols) + (list(self.proc.scopes[-1]) if self.proc else [])
        if self.proc:
            candidates += [n for s in self.proc.scopes for n in s]
        raise self.fail("E-UNKNOWN-NAME", f"unknown name `{name}`", sp,
                        did_you_mean(name, candidates))

    def ref(self, a: Any, start: int) -> ir.Expr:
        """A name in an expression (plain, called or indexed), starting at ``start``."""
        name: str = a.name or a.call or a.element
        sp = self.src.span(start, a._tx_position_end)
        name_sp = self.src.span(start, start + len(name))
        if a.call:
            return self.call(a, name, sp, name_sp)
        if "." in name:
            raise self.fail("E-UNKNOWN-NAME", f"`{name}` is not a value", name_sp,
                            "qualified names refer to VMlet instructions: `vmlet.instr(...)`")
        if self.proc is not None:
            local = self.proc.lookup(name)
            if local is not None:
                if a.index is not None:
                    raise self.fail("E-TYPE", f"`{name}` is not an array", name_sp)
                return ir.LocalRef(local, local.type, sp)
        if name in self.natives or name in self.instr_sigs or name in self.fn_sigs:
            raise self.fail("E-TYPE", f"`{name}` is a function; call it: `{name}(...)`", name_sp)
        kind, payload = self.lookup_module(name, name_sp)
        if kind == "const":
            c: ir.NamedConst = payload
            if a.index is not None:
                raise self.fail("E-TYPE", f"`{name}` is a constant, not an array", name_sp)
            ty = ir.IntType(c.value, c.value) if isinstance(c.type, ir.IntType) else ir.BOOL
            return ir.Const(c.value, ty, sp)
        if kind == "global":
            g: ir.Global = payload
            if a.index is not None:
                raise self.fail("E-TYPE", f"`{name}` is not an array", name_sp)
            return ir.GlobalRef(g, g.type, sp)
        if kind == "array":
            arr: ir.Array = payload
            if a.index is None:
                raise self.fail("E-TYPE", f"`{name}` is an array; read one element: "
                                f"`{name}[i]`", name_sp)
            return ir.ArrayRef(arr, self.index_expr(arr, a.index), arr.type, sp)
        if kind in ("param", "var", "table"):
            if name in self.failed:
                # declared, but its own declaration has an error (already reported)
                raise _Abort()
            # Not analyzed yet: we are in a data declaration before it, where only
            # constants may appear (bodies and rules are analyzed after all data).
            raise self.fail("E-NOT-CONSTANT", f"`{name}` is {_KIND_WORDS[kind]}, not a "
                            "constant", name_sp, "use literals, `const` names and operators; not "
                            "parameters or variables")
        raise self.fail("E-TYPE", f"`{name}` is {_KIND_WORDS.get(kind, 'a ' + kind)}, not a "
                        "value", name_sp)

    def index_expr(self, arr: ir.Array, e: Any) -> ir.Expr:
        index = self.int_expr(e, "an index")
        if isinstance(index, ir.Const) and not 0 <= index.value < arr.length:
            raise self.fail("E-INDEX", f"index {index.value} is out of bounds: `{arr.name}` has "
                            f"{arr.length} entries", index.span,
                            f"indices run from 0 to {arr.length - 1}")
        return index

    def call(self, a: Any, name: str, sp: Span, name_sp: Span) -> ir.Expr:
        raw_args = list(a.args)
        if name in ("min", "max", "abs"):
            return self.builtin(name, raw_args, sp, name_sp)
        if self.constant_what and (
                name == "env" or "." in name or name in self.declared_kind
                or name in self.instr_sigs or name in self.natives):
            raise self.fail("E-NOT-CONSTANT", f"{self.constant_what} must be a constant "
                            "expression, and a call is not", name_sp,
                            "calls run on board; compute it from literals, `const` names, "
                            "operators, `min`, `max` and `abs`")
        if name == "env":
            return self.env_read(raw_args, sp, name_sp)
        if "." in name:
            vmlet, instr = name.split(".", 1)
            sigs = [s for s in self.instr_sigs.get(instr, []) if s.vmlet == vmlet]
            if not sigs:
                known = [f"{s.vmlet}.{s.name}" for ss in self.instr_sigs.values() for s in ss]
                raise self.fail("E-UNKNOWN-NAME", f"no VMlet in use defines `{name}`", name_sp,
                                did_you_mean(name, known))
            return self.call_instr(sigs[0], raw_args, sp, name_sp)
        if self.proc is not None and self.proc.lookup(name) is not None:
            raise self.fail("E-TYPE", f"`{name}` is a local variable, not a function", name_sp)
        if name in self.fn_sigs:
            sig = self.fn_sigs[name]
            args = self.args(name, sig.params, raw_args, sp, name_sp)
            if self.proc is not None:
                self.proc.calls.append((name, name_sp))
            return ir.Call(name, args, sig.returns, sp)
        if name in self.instr_sigs:
            sigs = self.instr_sigs[name]
            if len(sigs) > 1:
                which = ", ".join(f"`{s.vmlet}.{name}`" for s in sigs)
                raise self.fail("E-AMBIGUOUS", f"`{name}` is defined by several VMlets in use",
                                name_sp, f"qualify it: {which}")
            return self.call_instr(sigs[0], raw_args, sp, name_sp)
        if name in self.natives:
            return self.call_native(self.natives[name], raw_args, sp, name_sp)
        assert self.mission is not None
        if name in self.mission.natives:
            raise self.fail(*self.hidden_native(name, name_sp))
        if name in self.symbols:
            raise self.fail("E-TYPE", f"`{name}` is {self.kind_word(name)}, not a function",
                            name_sp)
        callables = list(self.fn_sigs) + list(self.instr_sigs) + list(self.natives) + \
            ["min", "max", "abs", "env"]
        raise self.fail("E-UNKNOWN-NAME", f"unknown function `{name}`", name_sp,
                        did_you_mean(name, callables))

    def hidden_native(self, name: str, sp: Span) -> tuple[str, str, Span, str]:
        assert self.mission is not None
        native = self.mission.natives[name]
        if self.kind is ir.ProgramKind.VMLET:
            return ("E-NATIVE-HIDDEN", f"native `{name}` is not exposed by this VMlet", sp,
                    f"add `expose {name};` if programs on this VMlet may use it")
        used = ", ".join(u.name for u in self.uses)
        if name in self.hidden_by:
            why = f"VMlet `{self.hidden_by[name]}` hides it"
        elif not used:
            why = "this configuration uses no VMlet (`uses NAME;`)"
        else:
            why = f"it is not exposed by {used}"
        return ("E-NATIVE-HIDDEN", f"native `{name}` is not visible here: {why}", sp,
                f"`{name}` needs the `{native.capability}` capability; use a VMlet that "
                "exposes it")

    def args(self, name: str, params: Sequence[tuple[str, ir.Type]], raw: list[Any],
             sp: Span, name_sp: Span) -> tuple[ir.Expr, ...]:
        if len(raw) != len(params):
            sig = ", ".join(f"{p}: {t}" for p, t in params)
            raise self.fail("E-ARITY", f"`{name}` takes {len(params)} argument"
                            f"{'s' if len(params) != 1 else ''}, {len(raw)} given", sp,
                            f"`{name}({sig})`")
        out = []
        for (pname, ptype), r in zip(params, raw, strict=True):
            value = self.expr(r)
            self.check_assignable(ptype, value, self.span(r), f"argument `{pname}`")
            out.append(value)
        return tuple(out)

    def call_native(self, native: ir.NativeSig, raw: list[Any], sp: Span,
                    name_sp: Span) -> ir.Expr:
        args = self.args(native.name, native.params, raw, sp, name_sp)
        return ir.NativeCall(native, args, native.result, sp)

    def call_instr(self, sig: _FnSig, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        args = self.args(sig.name, sig.params, raw, sp, name_sp)
        if self.proc is not None and sig.vmlet == self.own_name:
            self.proc.calls.append((sig.name, name_sp))
        first = self.instr_uses.setdefault((sig.vmlet, sig.name), name_sp)
        if (name_sp.line, name_sp.col) < (first.line, first.col):
            self.instr_uses[(sig.vmlet, sig.name)] = name_sp
        return ir.InstrCall(sig.vmlet, sig.name, args, sig.returns, sp)

    def builtin(self, name: str, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        if name == "abs":
            if len(raw) != 1:
                raise self.fail("E-ARITY", f"`abs` takes 1 argument, {len(raw)} given", sp)
            return self.unary_op(ir.UnOp.ABS, self.int_expr(raw[0], "the argument of `abs`"),
                                 sp)
        if len(raw) < 2:
            raise self.fail("E-ARITY", f"`{name}` takes 2 or more arguments, {len(raw)} given",
                            sp)
        op = ir.BinOp.MIN if name == "min" else ir.BinOp.MAX
        values = [self.int_expr(r, f"an argument of `{name}`") for r in raw]
        result = values[0]
        for v in values[1:]:
            result = self.binary(op, result, v, sp)
        return result

    def env_read(self, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        assert self.mission is not None
        keys = self.mission.env
        key_operand = raw[0].operands[0] if len(raw) == 1 else None
        if key_operand is None or len(raw[0].operands) != 1 or key_operand.ops or \
                not key_operand.name:
            raise self.fail("E-ARITY", "`env` takes one environment key: `env(ccd)`", sp,
                            f"keys of mission `{self.mission.name}`: {', '.join(keys)}")
        key = key_operand.name
        if key not in keys:
            raise self.fail("E-UNKNOWN-NAME", f"mission `{self.mission.name}` has no "
                            f"environment key `{key}`", self.span(raw[0]),
                            did_you_mean(key, keys) or f"keys: {', '.join(keys)}")
        k = keys[key]
        return ir.EnvRead(key, ir.IntType(k.lo, k.hi), sp)


# --------------------------------------------------------------------------- helpers

#: A procedure that can be called: (program, "fn" or "instr", name).
_ProcKey = tuple[str, str, str]


def _callee_key(program: str, node: ir.Stmt | ir.Expr) -> _ProcKey | None:
    """The procedure ``node`` (in code of ``program``) calls, if it is a call of one."""
    if isinstance(node, ir.Call):
        return (program, "fn", node.function)
    if isinstance(node, ir.InstrCall):
        return (node.vmlet, "instr", node.instr)
    return None


def _callees(program: str, proc: ir.Procedure) -> list[_ProcKey]:
    return [k for node, _ in ir.nested(proc.body)
            if (k := _callee_key(program, node)) is not None]


_BINOPS = {op.value: op for op in ir.BinOp}


def _literal_or_none(text: str) -> int | None:
    try:
        return literal_value(text)
    except ValueError:
        return None


def _names_in(*nodes: Any) -> Iterator[str]:
    """The names that syntax tree nodes (expressions, types, or None) mention: plain,
    called or indexed. A loop with its own stack, as expressions may be long."""
    stack = [n for n in reversed(nodes) if n is not None]
    while stack:
        node = stack.pop()
        kind = type(node).__name__
        if kind == "Expr":
            stack.extend(reversed(node.operands))
        elif kind == "Type":
            stack.extend(n for n in (node.hi, node.lo) if n is not None)
        elif kind == "Operand":
            name = node.name or node.call or node.element
            if name:
                yield name
            stack.extend(reversed(node.args))
            stack.extend(n for n in (node.index, node.expr) if n is not None)


# How the kinds of module-level declarations read in messages.
_KIND_WORDS = {
    "const": "a constant", "param": "a parameter", "var": "a state variable", "table": "a table",
    "fn": "a function", "instr": "an instruction", "task": "a task",
}


def _type_word(t: ir.Type | None) -> str:
    if t is None:
        return "no value"
    return "a boolean" if isinstance(t, ir.BoolType) else f"an integer ({t})"


def _native_sig(mission: MissionProfile, name: str) -> ir.NativeSig | None:
    n = mission.natives.get(name)
    if n is None:
        return None
    params = tuple((a.name, ir.IntType(a.lo, a.hi)) for a in n.args)
    result = ir.IntType(*n.result) if n.result is not None else None
    return ir.NativeSig(n.name, params, result, n.cost.text, n.capability)


def _evaluate(e: ir.Expr, params: dict[str, int]) -> int | None:
    """Value of a rule's condition for given parameter values (None if it would trap)."""
    try:
        return _eval(e, params)
    except ArithmeticError_:
        return None


def _eval(e: ir.Expr, params: dict[str, int]) -> int:
    if isinstance(e, ir.Const):
        return e.value
    if isinstance(e, ir.GlobalRef):
        return params[e.glob.name]
    if isinstance(e, ir.Unary):
        return apply_unary(e.op, _eval(e.operand, params))
    if isinstance(e, ir.Binary):
        left = _eval(e.left, params)
        if e.op is ir.BinOp.AND and not left:
            return 0
        if e.op is ir.BinOp.OR and left:
            return 1
        return apply_binary(e.op, left, _eval(e.right, params))
    raise ValueError(f"cannot evaluate {type(e).__name__} in a rule")
