"""Verifying a whole program: every entry point, every rule, every budget.

``verify_program`` is the verifier's one public operation (``ccl verify`` and ``ccl pack``
call it). In order:

1. the structural pass (``ccl.verify.structural``): code, data, operand stack, call depth;
2. each flight rule, for every parameter set in the declared ranges;
3. each task, ``on apply``, ``on load``, VMlet instruction and uncalled function, by symbolic
   execution (``ccl.verify.symbolic``) with Z3: safety obligations, then the worst-case
   cycles maximised exactly, and the inputs that reach them. Rules are assumed here (those
   relating the parameters an entry point reads, ``inputs.RuleFacts``): the VVM re-checks
   them before it accepts new parameters, so no other parameter set is reachable;
4. ``on load`` within the cycles the VVM gives it (``onboard.vm.machine.Limits``);
5. the CPU share: the tasks at their worst, after ``on apply``, never overrun on the VVM's
   scheduler (``onboard.vm.machine.schedulability``: earliest deadline first in what each
   frame leaves after the patch reserve, less the most a frame can lose at its end);
6. the uplink: the patch's size and the passes it needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import z3

from ccl import ir
from ccl.codegen import generate
from ccl.compiled import Compiled
from ccl.limits import recursion_headroom
from ccl.ranges import ArithmeticError_, evaluate
from ccl.verify import replacements, structural
from ccl.verify.cost import CycleTable, maximize
from ccl.verify.inputs import Inputs, ProgramIndex, RuleFacts
from ccl.verify.irtext import text
from ccl.verify.obligations import (
    Counterexample,
    Kind,
    Method,
    Obligation,
    Status,
    Value,
)
from ccl.verify.replay import reaches
from ccl.verify.report import Budgets, VerifyReport, WorstCase
from ccl.verify.solver import Checker
from ccl.verify.symbolic import Executor
from ccl.verify.terms import Val
from onboard.mission import MissionProfile, find_mission
from onboard.vm import isa, machine
from onboard.vm.board import part_cycles
from onboard.vm.image import Image
from onboard.vm.machine import Limits

#: Default time limit of one solver query (one obligation, one step of a maximisation).
DEFAULT_TIMEOUT_MS = 10_000


Step = Callable[[], None]
"""Called after each step of a verification (``verification_steps`` of them): progress."""


def verification_steps(program: ir.Program) -> int:
    """How many steps ``verify_program`` reports for ``program``: the structural pass, the
    rules, and each entry point."""
    return 2 + len(_entry_points(program))


def verify_program(target: Compiled | ir.Program, mission: MissionProfile | None = None, *,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS,
                   step: Step | None = None) -> VerifyReport:
    """Prove (or refute, with counterexamples) everything ``ccl verify`` promises about a
    checked configuration or VMlet, and measure its budgets against ``mission`` (by default
    the program's own mission profile).

    ``target`` is a ``ccl.driver.Compiled`` (preferred: its image is what goes up) or a
    checked ``ir.Program`` (compiled here). ``timeout_ms`` bounds each solver query; an
    obligation the solver cannot decide in time is ``unknown``, never proven. ``step`` is
    called after each of ``verification_steps`` steps (to show progress).
    """
    with recursion_headroom():  # the IR nests as deep as ccl.limits allows
        fresh_solver_context()
        return _verify(target, mission, timeout_ms, step or (lambda: None))


def fresh_solver_context() -> None:
    """Give Z3 a new default context, so that which model (which counterexample, which
    worst-case input) it returns depends on this program alone, not on what the process
    proved before or on when Python freed earlier terms (Z3 reuses the ids of freed terms).
    Terms of earlier programs keep their own context; no term outlives its program."""
    z3.z3._main_ctx = None  # main_ctx() makes a new one on next use
    # Ctrl-C is Python's: a KeyboardInterrupt once the query at hand returns (within its
    # time limit). Z3's own handler, on by default, would only cancel that query, which
    # then reads "unknown", and the verification would go on to the next.
    z3.set_param("ctrl_c", False)


def _entry_points(program: ir.Program
                  ) -> list[tuple[ir.Procedure, str, str, int | None, ir.Span]]:
    """What is verified by symbolic execution, each on its own: (procedure, kind, name,
    period, span)."""
    entries: list[tuple[ir.Procedure, str, str, int | None, ir.Span]] = [
        (t.proc, "task", t.name, t.period_ms, t.span) for t in program.tasks]
    if program.on_apply is not None:
        entries.append((program.on_apply, "on apply", "on apply", None, program.on_apply.span))
    if program.on_load is not None:
        entries.append((program.on_load, "on load", "on load", None, program.on_load.span))
    entries += [(p, "instr", p.name, None, p.span) for p in program.instrs]
    called = structural.called_functions(program)
    # an exported function is an entry too: its worst case is what its callers are charged
    entries += [(f, "fn", f.name, None, f.span) for f in program.functions
                if f.name not in called or f.name in program.exports]
    return entries


def _verify(target: Compiled | ir.Program, mission: MissionProfile | None,
            timeout_ms: int, step: Step) -> VerifyReport:
    start = time.perf_counter()
    compiled = target if isinstance(target, Compiled) else None
    if isinstance(target, Compiled):
        program, image = target.program, target.image
        vmlet_images = tuple(v.image for v in target.vmlets)
        mission = mission or target.mission
    else:
        program = target
        images: dict[str, Image] = {}
        for vm in program.stack:  # lower layers first: a VMlet's image pins the ones below
            images[vm.name] = generate(vm, images)[0]
        image, _ = generate(program, images)
        vmlet_images = tuple(images.values())
        mission = mission or find_mission(program.mission)
    cycles = CycleTable.of(mission, (image, *vmlet_images))
    run = _Run(program, mission, cycles, timeout_ms, ProgramIndex.of(program), compiled)
    shape, obligations = structural.check(program, image, vmlet_images, mission)
    step()
    rule_facts = run.rules(obligations)
    step()
    worst: list[WorstCase] = []
    for proc, kind, name, period, span in _entry_points(program):
        wc, obs = run.entry(proc, kind, name, period, span, rule_facts)
        worst.append(wc)
        obligations += obs
        step()
    obligations += replacements.obligations(program, mission,
                                            _instr_cost(program, mission, worst, timeout_ms))
    budgets = _budgets(mission, tuple(worst), shape, image, program.application)
    obligations += _on_load(budgets, Limits.of(mission).on_load_cycles)
    obligations += _cpu_share(budgets, max(shape.largest_charge, run.largest_native))
    return VerifyReport(program.name, program.kind.value, program.file, tuple(obligations),
                        budgets, time.perf_counter() - start)


def _instr_cost(program: ir.Program, mission: MissionProfile, worst: list[WorstCase],
                timeout_ms: int) -> replacements.InstrCost:
    """The proven worst case of a VMlet instruction: from ``worst`` for ``program``'s own,
    by verifying the VMlet (once) for those of the VMlets it runs on."""
    reports: dict[str, VerifyReport] = {}

    def cost(vm: ir.Program, name: str) -> int:
        if vm is program:
            return next(w.bound for w in worst if w.kind == "instr" and w.name == name)
        if vm.name not in reports:
            reports[vm.name] = verify_program(vm, mission, timeout_ms=timeout_ms)
        return next(w.bound for w in reports[vm.name].budgets.worst_cases
                    if w.kind == "instr" and w.name == name)

    return cost


@dataclass
class _Run:
    program: ir.Program
    mission: MissionProfile
    cycles: CycleTable
    timeout_ms: int
    index: ProgramIndex
    compiled: Compiled | None  # what the VVM runs, to replay worst cases on (None: nothing)
    largest_native: int = 0  # the dearest native call any entry point makes, in cycles

    def _executor(self, checker: Checker, inputs: Inputs) -> Executor:
        return Executor(self.program, self.mission, self.cycles, inputs, checker)

    def rules(self, obligations: list[Obligation]) -> RuleFacts:
        """Check every rule; return what the rules guarantee (assumed everywhere else)."""
        facts: list[tuple[tuple[str, ...], z3.BoolRef]] = []
        for k, rule in enumerate(self.program.rules, start=1):
            inputs = Inputs(self.program, index=self.index)
            checker = Checker(inputs, self.timeout_ms)
            where = f"rule {k}"
            value = self._executor(checker, inputs).rule(rule, where)
            params = dict(inputs.params)  # the ones the rule reads
            checker.require(Kind.RULE, rule.span, where, (), value.cond,
                            f"rule `{rule.text}` holds for every parameter set in the "
                            "declared ranges", value.lo == 1,
                            partial(_rule_model_detail, rule, params))
            broken = (f"rule `{rule.text}` can be broken: a parameter set in the declared "
                      "ranges violates it")
            obligations += [replace(o, broken=broken) if o.kind is Kind.RULE else o
                            for o in checker.results]
            facts.append((tuple(params), z3.And(*checker.assumed)))
        return RuleFacts.of(facts)

    def entry(self, proc: ir.Procedure, kind: str, name: str, period: int | None,
              span: ir.Span, rule_facts: RuleFacts) -> tuple[WorstCase, list[Obligation]]:
        """Verify one entry point and find its worst-case cycles."""
        inputs = Inputs(self.program, rule_facts, self.index)
        checker = Checker(inputs, self.timeout_ms)
        ex = self._executor(checker, inputs)
        if kind == "task":  # `on apply` runs before any task, to its end
            ex.interleave([t.proc for t in self.program.tasks if t.name != name])
        where = f"{kind} {name}" if kind not in ("on apply", "on load") else kind
        params = ex.standalone_args(proc)
        # a function or instruction is measured at a call site: its call and frame included
        op = {"instr": isa.EXT_BASE, "fn": isa.CALL}.get(kind)
        entry_cost = 0 if op is None else self.cycles.call(op, self.program.name, proc.name)
        cost = ex.run(proc, where, params=params, entry_cost=entry_cost,
                      free_returns=kind == "instr")
        self.largest_native = max(self.largest_native, ex.largest_native)
        facts = [*inputs.facts, *ex.loop_facts]  # the rules' facts are among the inputs'
        m = maximize(cost, facts, self.timeout_ms,
                     prefer=lambda term: inputs.worst_preferences([term]))
        witness = inputs.counterexample(m.model, [m.term]) \
            if m.model is not None and m.term is not None else None
        wc = WorstCase(name, kind, period, m.value, m.bound, m.exact, witness, span, m.seconds)
        if wc.exact:
            # Exact only if the VVM, run from the witness, costs exactly the bound: the cost
            # model may stand an arbitrary iteration for all of them.
            wc = replace(wc, exact=self.compiled is not None and reaches(self.compiled, wc))
        return wc, checker.results


def _rule_model_detail(rule: ir.Rule, params: dict[str, Val], m: z3.ModelRef) -> str:
    values = {n: m.eval(v.term, model_completion=True).as_signed_long()  # type: ignore[attr-defined]
              for n, v in params.items()}
    return _rule_detail(rule.cond, values)


def _rule_detail(cond: ir.Expr, values: dict[str, int]) -> str:
    """Why a rule fails for ``values``: its two sides, or that it traps."""
    try:
        if isinstance(cond, ir.Binary) and cond.op in ir.COMPARISONS:
            left, right = evaluate(cond.left, values), evaluate(cond.right, values)
            return f"{text(cond.left)} = {left}, which is not {cond.op.value} {right}"
        return f"`{text(cond)}` is false"
    except ArithmeticError_ as exc:
        return f"evaluating the rule traps: {exc}"


# --------------------------------------------------------------------------- budgets


def _budgets(mission: MissionProfile, worst: tuple[WorstCase, ...], shape: structural.Shape,
             image: Image, application: ir.Application | None = None) -> Budgets:
    """The figures of one program. An application (``application NAME share N %;``) runs in
    its own part of the share, which its scheduler gives its tasks whole (the patch reserve
    is apart, ``onboard.vm.board``): its tasks are proven within that part."""
    link = mission.raw.get("link", {})
    bits_per_day = int(link.get("uplink_bits_per_day", 0))
    passes_per_day = int(link.get("max_uplink_passes_per_day", 1)) or 1
    patch_bytes, how = patch_size(image)
    bits = patch_bytes * 8
    per_pass = bits_per_day // passes_per_day
    frames_per_s = 1000 / mission.frame_ms
    share = mission.share_percent if application is None else application.share_percent
    return Budgets(
        clock_hz=mission.clock_hz,
        frame_ms=mission.frame_ms,
        share_percent=share,
        share_cycles_per_s=mission.clock_hz * share // 100,
        reserve_cycles_per_s=0 if application is not None else
        round(mission.patch_reserve_cycles_per_frame * frames_per_s),
        frame_budget=Limits.of(mission).frame_budget if application is None else
        part_cycles(mission, application.share_percent),
        worst_cases=worst,
        code_bytes=shape.code_bytes, code_limit=mission.code_bytes,
        data_bytes=shape.data_bytes, data_limit=mission.data_bytes,
        max_stack=shape.max_stack, stack_limit=mission.max_stack,
        call_depth=shape.call_depth, call_depth_limit=mission.max_call_depth,
        patch_bytes=patch_bytes, patch_estimate=how,
        uplink_bits_per_day=bits_per_day, passes_per_day=passes_per_day,
        passes_needed=math.ceil(bits / per_pass) if per_pass else 0,
        days_needed=math.ceil(bits / bits_per_day) if bits_per_day else 0,
        application=application.name if application is not None else "",
    )


def patch_size(image: Image) -> tuple[int, str]:
    """Bytes of the patch that carries ``image``, and how that figure was obtained."""
    return len(image.encode()), "full image"


def _on_load(b: Budgets, limit: int) -> list[Obligation]:
    """A VMlet's ``on load`` runs within the cycles the VVM gives it, or the load fails."""
    w = next((w for w in b.worst_cases if w.kind == "on load"), None)
    if w is None:
        return []
    message = f"`on load` needs at most the {limit:,} cycles the VVM gives it"
    if w.bound <= limit:
        return [Obligation(Kind.ON_LOAD, Status.PROVEN, w.span, message, "on load",
                           Method.Z3)]
    detail = f"its worst case is {w.bound:,} cycles"
    if w.cycles <= limit:
        return [Obligation(Kind.ON_LOAD, Status.UNKNOWN, w.span, message, "on load",
                           Method.Z3, reason="the worst case could not be computed exactly: "
                           + detail)]
    values = w.witness.values if w.witness is not None else ()
    return [Obligation(Kind.ON_LOAD, Status.REFUTED, w.span, message, "on load", Method.Z3,
                       Counterexample(values, detail=f"its worst case is {w.cycles:,} cycles"))]


def _cpu_share(b: Budgets, largest_charge: int) -> list[Obligation]:
    """Every task job finishes before its next release on the VVM's scheduler, from the
    switch on (``on apply`` first), for the tasks at their worst."""
    tasks = b.tasks
    on_apply = next((w for w in b.worst_cases if w.kind == "on apply"), None)
    if not tasks:
        return []
    heaviest = max(tasks, key=lambda w: w.cycles_per_s)
    share = b.share_cycles_per_s
    loss = machine.frame_loss(largest_charge)
    whose = (f"application {b.application}'s {b.share_percent} % part of the CPU share "
             f"({share:,} cycles/s" if b.application else
             f"{b.share_percent} % CPU share ({share:,} cycles/s with the patch reserve")
    message = (f"the tasks at their worst, after `on apply`, never overrun in the "
               f"{whose}; {b.frame_budget:,} cycles per frame for the tasks, of which up to "
               f"{loss:,} may be lost at a frame's end)")
    where = "all tasks" if len(tasks) > 1 else f"task {heaviest.name}"

    def verdict(cycles: Callable[[WorstCase], int]) -> machine.Schedulability:
        return machine.schedulability(
            [(w.period_ms or 0, cycles(w)) for w in tasks], frame_ms=b.frame_ms,
            frame_budget=b.frame_budget, largest_charge=largest_charge,
            burst=cycles(on_apply) if on_apply is not None else 0)

    bound = verdict(lambda w: w.bound)
    if bound.ok:
        return [Obligation(Kind.CPU_SHARE, Status.PROVEN, heaviest.span, message, where,
                           Method.ARITHMETIC)]
    reached = verdict(lambda w: w.cycles)
    detail = _schedule_detail(b, reached if not reached.ok else bound, heaviest)
    if reached.ok:
        return [Obligation(Kind.CPU_SHARE, Status.UNKNOWN, heaviest.span, message, where,
                           Method.Z3, reason="the worst case could not be computed exactly: "
                           + detail)]
    values: tuple[Value, ...] = ()
    replay = None
    if heaviest.witness is not None:
        values = tuple(v for v in heaviest.witness.values if v.role == "param") or \
            heaviest.witness.values
        replay = heaviest.witness.replay
    cex = Counterexample(values, replay, detail) if replay is not None else \
        Counterexample(values, detail=detail)
    return [Obligation(Kind.CPU_SHARE, Status.REFUTED, heaviest.span, message, where,
                       Method.Z3, cex)]


def _schedule_detail(b: Budgets, v: machine.Schedulability, heaviest: WorstCase) -> str:
    load = (f"worst case {float(b.load_cycles_per_s):,.0f} cycles/s with the patch reserve "
            f"of {b.reserve_cycles_per_s:,}: {b.share_used_percent:.1f} % of the share, "
            f"{b.cpu_percent:.2f} % of the CPU; task {heaviest.name} needs "
            f"{heaviest.cycles:,} cycles every {heaviest.period_ms} ms")
    if v.at_ms:
        load += (f"; by {v.at_ms:,} ms after a switch {v.demand:,} cycles are due but only "
                 f"{v.supply:,} are supplied ({v.supply_per_frame:,} per frame)")
    return load
