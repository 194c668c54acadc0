"""The order of semantic analysis: header, visible names, declarations, data, bodies,
whole-file checks; then the IR of the program."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ccl import ir
from ccl.diagnostics import Source
from ccl.sema import checks
from ccl.sema.bodies import Bodies
from ccl.sema.declarations import (
    ByType,
    Declarations,
    ImportLoader,
    MissionLoader,
    VmletLoader,
)
from ccl.sema.expressions import ExpressionChecker
from ccl.sema.reporter import Abort, Reporter
from ccl.sema.symbols import ModuleScope


@dataclass(frozen=True)
class Procedures:
    """The analyzed procedures of one file."""

    functions: tuple[ir.Procedure, ...]
    instrs: tuple[ir.Procedure, ...]
    tasks: tuple[ir.Task, ...]
    rules: tuple[ir.Rule, ...]
    handlers: dict[ir.ProcKind, ir.Procedure]


def _releasing_body(analyze: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``analyze`` of a declaration with a body, which then drops the body's syntax tree:
    its IR (or its errors) is all that is used afterwards, and the syntax of a big file's
    bodies would otherwise live beside their IR until the end (twice the memory)."""

    def analyze_and_release(decl: Any) -> Any:
        try:
            return analyze(decl)
        finally:
            decl.body = None

    return analyze_and_release


class Analyzer:
    """Checks one parsed file (``model``) and builds its IR."""

    def __init__(self, source: Source, model: Any, mission_loader: MissionLoader,
                 vmlets: VmletLoader, import_loader: ImportLoader | None = None) -> None:
        self.model = model
        self.rep = Reporter(source)
        self.module = ModuleScope()
        self.exprs = ExpressionChecker(self.rep, self.module)
        self.decls = Declarations(self.exprs, mission_loader, vmlets)
        self.bodies = Bodies(self.exprs)
        self.app: ir.Application | None = None  # the configuration's application clause
        self.import_loader = import_loader
        self.imported: tuple[ir.NativeSig, ...] = ()
        self.exported: tuple[str, ...] = ()

    def guarded(self, items: Sequence[Any], fn: Callable[[Any], Any]) -> Iterator[Any]:
        """Apply ``fn`` to each item, skipping (not stopping at) items with errors."""
        for item in items:
            try:
                yield fn(item)
            except Abort:
                self.module.failed.add(getattr(item, "name", ""))
                continue

    def run(self) -> ir.Program:
        """The checked program; raises CclError with every error found."""
        decls = list(self.model.decls)
        by_type: ByType = {}
        for d in decls:
            by_type.setdefault(type(d).__name__, []).append(d)
        self.decls.header(by_type)
        self.rep.raise_if_any()
        assert self.module.kind is not None and self.module.mission is not None
        self.declare(decls, by_type)
        procedures = self.procedures(by_type)
        self.rep.raise_if_any()
        return self.program(by_type, procedures)

    def declare(self, decls: list[Any], by_type: ByType) -> None:
        """What is visible, the module-level names and the data, in that order."""
        self.decls.check_placement(decls)
        self.app = self.decls.application(by_type.get("ApplicationDecl", []))
        self.decls.uses(by_type)
        self.imported = self.decls.imports(by_type.get("ImportDecl", []), self.import_loader)
        self.exported = self.decls.exports(by_type.get("FnDecl", []), self.app)
        if self.module.kind is ir.ProgramKind.VMLET:
            # Before the names are declared: a VMlet's own `fn`/`instr`/`const` must not
            # take the name of a native it exposes (E-SHADOW, as in a configuration).
            self.decls.vmlet_exposure(by_type)
        self.decls.declare_names(decls)
        self.exprs.constants.compute_all()
        list(self.guarded(by_type.get("TypeDecl", []), self.exprs.define_type))
        list(self.guarded(by_type.get("ParamDecl", []), self.decls.param))
        list(self.guarded(by_type.get("VarDecl", []), self.decls.var))
        list(self.guarded(by_type.get("TableDecl", []), self.decls.table))
        self.decls.collect_signatures(by_type)

    def procedures(self, by_type: ByType) -> Procedures:
        """Functions, instructions, tasks, rules and event handlers, then the whole-file
        checks."""
        functions = tuple(self.guarded(by_type.get("FnDecl", []),
                                       _releasing_body(self.bodies.function)))
        instrs = tuple(self.guarded(by_type.get("InstrDecl", []),
                                    _releasing_body(self.bodies.instr)))
        tasks = tuple(self.guarded(by_type.get("TaskDecl", []),
                                   _releasing_body(self.bodies.task)))
        rules = tuple(self.guarded(by_type.get("RuleDecl", []),
                                   lambda d: self.bodies.rule(d, self.decls.globals)))
        handlers = self.handlers(by_type.get("OnDecl", []))
        checks.check_recursion(self.rep, self.bodies.call_graph)
        checks.check_instr_count(self.rep, self.module.instr_uses, self.module.kind)
        if not self.rep.diags:  # depths through calls are defined once there is no recursion
            checks.check_nesting(self.rep, self.module.own_name, self.module.uses, functions,
                                 instrs, [*(t.proc for t in tasks), *handlers.values()])
        return Procedures(functions, instrs, tasks, rules, handlers)

    def handlers(self, events: list[Any]) -> dict[ir.ProcKind, ir.Procedure]:
        """The `on apply` or `on load` handler (E-DUPLICATE for a second one)."""
        handlers: dict[ir.ProcKind, ir.Procedure] = {}
        for event in events:
            try:
                proc = self.bodies.on_event(event)
            except Abort:
                continue
            if proc.kind in handlers:
                self.rep.err("E-DUPLICATE", f"`on {event.event}` is declared twice",
                             self.rep.src.span(event._tx_position,
                                               self.rep.word_end(event, event.event)),
                             f"the first is at {handlers[proc.kind].span}; put both bodies "
                             "in one")
                continue
            handlers[proc.kind] = proc
        return handlers

    def program(self, by_type: ByType, procs: Procedures) -> ir.Program:
        """The IR of the checked file."""
        module = self.module
        assert module.kind is not None and module.mission is not None
        head = by_type.get("ConfigDecl") or by_type.get("VmletDecl")
        assert head
        return ir.Program(
            kind=module.kind,
            name=head[0].name,
            version=self.decls.version,
            mission=module.mission.name,
            file=self.rep.src.path,
            uses=tuple(module.uses),
            consts=tuple(self.exprs.constants.values.values()),
            globals=tuple(self.decls.globals),
            arrays=tuple(self.decls.arrays),
            rules=procs.rules,
            functions=procs.functions,
            tasks=procs.tasks,
            on_apply=procs.handlers.get(ir.ProcKind.ON_APPLY),
            instrs=procs.instrs,
            exposes=tuple(n for e in by_type.get("ExposeDecl", []) for n in e.names),
            hides=tuple(n for e in by_type.get("HideDecl", []) for n in e.names),
            on_load=procs.handlers.get(ir.ProcKind.ON_LOAD),
            natives=tuple(module.natives.values()),
            offered_instrs=self.offered_instrs(procs.instrs),
            application=self.app,
            exports=self.exported,
            imports=self.imported,
            types=tuple(t for t in module.types.values() if t.vmlet == module.own_name),
        )

    def offered_instrs(self, own: tuple[ir.Procedure, ...]) -> tuple[tuple[str, str], ...]:
        """What instructions programs on this VMlet see: its own, and those of its layers
        it does not replace (an instruction named like one below is a replacement: without
        `replaces` it is refused)."""
        if self.module.kind is not ir.ProgramKind.VMLET:
            return ()
        names = {p.name for p in own}
        lower = [(s.vmlet, s.name) for sigs in self.module.instr_sigs.values() for s in sigs
                 if s.vmlet != self.module.own_name and s.name not in names]
        return tuple((self.module.own_name, p.name) for p in own) + tuple(lower)
