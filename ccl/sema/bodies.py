"""Procedure bodies: functions, VMlet instructions, tasks, `on apply`/`on load` and flight
rules. Each body is analyzed in its own ``ProcScope``; the calls it makes are recorded in
the call graph for the recursion and nesting checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ccl import ir
from ccl.diagnostics import Span
from ccl.limits import MAX_NESTING
from ccl.ranges import ArithmeticError_, evaluate
from ccl.sema.checks import CallGraph, nesting_depth
from ccl.sema.expressions import ExpressionChecker
from ccl.sema.reporter import Abort
from ccl.sema.statements import Statements
from ccl.sema.symbols import ProcScope
from ccl.syntax import unpacked


class Bodies:
    """Analyzes the procedures and rules of one file into IR."""

    def __init__(self, exprs: ExpressionChecker) -> None:
        self.exprs = exprs
        self.rep = exprs.rep
        self.module = exprs.module
        self.statements = Statements(exprs)
        self.call_graph: CallGraph = {}

    def procedure(self, name: str, kind: ir.ProcKind, d: Any,
                  params: Sequence[tuple[str, ir.Type, Span]], returns: ir.Type | None,
                  body: Any) -> ir.Procedure:
        """The procedure ``name`` declared by ``d``, with its arguments and ``body``."""
        state = ProcScope(name, kind, returns)
        self.exprs.proc = self.statements.proc = state
        try:
            param_locals = []
            for pname, ptype, psp in params:
                self.statements.check_local_name(pname, psp, "argument")
                local = ir.Local(pname, len(state.locals), ptype, psp, is_param=True)
                state.declare(local)
                param_locals.append(local)
            errors_before = len(self.rep.diags)
            stmts = self.statements.block(unpacked(body))  # a big file's body is packed
            # A statement with an error is dropped from ``stmts``: if it was a `return`, the
            # missing return would only be a consequence of that error.
            if returns is not None and len(self.rep.diags) == errors_before and \
                    not ir.always_returns(stmts):
                self.rep.err("E-MISSING-RETURN", f"`{name}` can reach its end without "
                             "returning a value", self.rep.span(d), "add a `return` on every path")
            self.call_graph[name] = state.calls
            return ir.Procedure(name, kind, tuple(param_locals), tuple(state.locals), returns,
                                stmts, self.rep.name_span(d, name)
                                if name in self.module.declared_at else self.rep.span(d))
        finally:
            self.exprs.proc = None

    def function(self, d: Any) -> ir.Procedure:
        """`fn name(args) [-> type] { ... }`"""
        sig = self.module.fn_sigs.get(d.name)
        if sig is None or sig.decl is not d:
            raise Abort()
        params = [(p.name, t, self.rep.name_span(p, p.name))
                  for p, (_, t) in zip(d.params, sig.params, strict=True)]
        return self.procedure(d.name, ir.ProcKind.FUNCTION, d, params, sig.returns, d.body)

    def instr(self, d: Any) -> ir.Procedure:
        """`instr name(args) -> type { ... }` of a VMlet."""
        sig = next((s for s in self.module.instr_sigs.get(d.name, []) if s.decl is d), None)
        if sig is None:
            raise Abort()
        params = [(p.name, t, self.rep.name_span(p, p.name))
                  for p, (_, t) in zip(d.params, sig.params, strict=True)]
        if sig.returns is None:
            raise self.rep.fail("E-INSTR-RESULT", f"instruction `{d.name}` must return a value",
                                self.rep.name_span(d, d.name), "declare a result: `-> int`")
        proc = self.procedure(d.name, ir.ProcKind.INSTR, d, params, sig.returns, d.body)
        return dataclasses.replace(proc, replaces=d.replaces) if d.replaces else proc

    def task(self, d: Any) -> ir.Task:
        """`task name every N ms|s { ... }`: the period is a multiple of the frame."""
        mission = self.module.mission
        assert mission is not None
        period = self.exprs.constant_int(d.period, "a task period")
        period_ms = period * 1000 if d.unit == "s" else period
        sp = self.rep.name_span(d, d.name)
        frame = mission.frame_ms
        if period_ms <= 0 or period_ms % frame:
            raise self.rep.fail("E-PERIOD", f"period {period} {d.unit} is not a positive "
                                f"multiple of the {frame} ms scheduling frame",
                                self.rep.span(d.period),
                                f"mission `{mission.name}` releases tasks on frame boundaries")
        proc = self.procedure(d.name, ir.ProcKind.TASK, d, (), None, d.body)
        return ir.Task(d.name, period_ms, proc, sp)

    def on_event(self, d: Any) -> ir.Procedure:
        """`on apply` of a configuration, `on load` of a VMlet."""
        expected = "apply" if self.module.kind is ir.ProgramKind.CONFIG else "load"
        if d.event != expected:
            where = "a configuration" if expected == "apply" else "a VMlet"
            raise self.rep.fail("E-EVENT", f"`on {d.event}` is not an event of {where}",
                                self.rep.name_span(d, d.event), f"{where} has `on {expected}`")
        kind = ir.ProcKind.ON_APPLY if expected == "apply" else ir.ProcKind.ON_LOAD
        return self.procedure(f"on {expected}", kind, d, (), None, d.body)

    def rule(self, d: Any, globals_: Sequence[ir.Global]) -> ir.Rule:
        """`rule cond;`: a condition on parameters only, which must hold for their values
        (``globals_``) in this configuration."""
        rep = self.rep
        text = rep.src.text[d.cond._tx_position:d.cond._tx_position_end].strip()
        self.exprs.proc = ProcScope("rule", ir.ProcKind.RULE, ir.BOOL)
        try:
            cond = self.exprs.expr(d.cond)
        finally:
            self.exprs.proc = None
        sp = rep.span(d.cond)
        if not isinstance(cond.type, ir.BoolType):
            raise rep.fail("E-TYPE", "a rule must be a condition (a boolean)", sp)
        for node, _ in ir.nested((cond,)):
            if isinstance(node, ir.GlobalRef) and node.glob.kind is not ir.GlobalKind.PARAM:
                raise rep.fail("E-RULE", f"a rule may only read parameters; `{node.glob.name}` "
                               "is a state variable", node.span,
                               "flight rules constrain what the ground may set")
            if isinstance(node, (ir.ArrayRef, ir.NativeCall, ir.InstrCall, ir.Call,
                                 ir.EnvRead)):
                raise rep.fail("E-RULE", "a rule may only use parameters, constants and "
                               "operators", node.span)
        proc = ir.Procedure(f"rule {len(self.call_graph)}", ir.ProcKind.RULE, (), (), ir.BOOL,
                            (ir.Return(cond, sp),), sp)
        if nesting_depth(rep, "", proc, {}, report=True) > MAX_NESTING:
            raise Abort()  # (reported) before the evaluation below walks it
        held = _evaluate(cond, {g.name: g.value for g in globals_})
        if held is None:  # it traps (division by zero, overflow): it does not hold either
            raise rep.fail("E-RULE-VIOLATED", f"rule `{text}` traps for this "
                           "configuration's values (division by zero or overflow)", sp,
                           "change the parameter values, or the rule")
        if held == 0:
            raise rep.fail("E-RULE-VIOLATED", f"rule `{text}` does not hold for this "
                           "configuration's values", sp,
                           "change the parameter values, or the rule")
        return ir.Rule(text, cond, proc, sp)


def _evaluate(e: ir.Expr, params: dict[str, int]) -> int | None:
    """Value of a rule's condition for given parameter values (None if it would trap)."""
    try:
        return evaluate(e, params)
    except ArithmeticError_:
        return None
