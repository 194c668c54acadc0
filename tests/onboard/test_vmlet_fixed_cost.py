"""A VMlet instruction built only on fixed-cost instructions (through the layers) is itself
of fixed cost: charged in one piece, translated in place, and charged exactly what it was
charged when its body ran instruction by instruction (a nested instruction still costs its
own dispatch, frame and body). One that uses an instruction with a loop stays out of line.
Both engines agree cycle for cycle under every budget slicing, traps included, and ``ccl
verify``'s worst case is what the VVM meters."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from engine_oracle import drive, plans, schedule
from support import start_vvm
from vmlet_layers import write

from ccl.driver import Compiled, Compiler
from ccl.verify import verify_program
from onboard.vm import isa
from onboard.vm.binding import Bound, ExtBinding
from onboard.vm.faults import TrapCode
from onboard.vm.loader import Program
from onboard.vm.reference import Memory, run

LOW = """\
vmlet low version 1;
mission corot;
instr clamp(v: int[0..100000], hi: int[0..100000]) -> int[0..100000] { return min(v, hi); }
instr ratio(a: int[0..100000], b: int[0..100]) -> int[0..100000] { return a / b; }
instr tally(n: int[0..8]) -> int[0..64] {
    let s : int[0..64] = 0;
    for i in 0 .. n { s = min(s + i, 64); }
    return s;
}
"""
MID = """\
vmlet mid version 1;
mission corot;
uses low;
instr scaled(a: int[0..100000], b: int[0..100]) -> int[0..100000] {
    return clamp(ratio(a, b), 90000);
}
instr twice(n: int[0..8]) -> int[0..128] { return tally(n) + tally(n); }
"""
TOP = """\
vmlet top version 1;
mission corot;
uses mid;
instr score(a: int[0..100000], b: int[0..100]) -> int[0..100000] {
    return clamp(scaled(a, b) + 7, 100000);
}
"""
APP = """\
mission corot;
config app version 1;
uses top;
param d : int[{lo}..100] = {d};
var out : int[0..100000];
var loops : int[0..128];
task t every 1 s {{
    for s in 0 .. 8 {{
        out = score(s * 1000 + 5, d);
        {loops}
    }}
}}
"""


def compiled(folder: Path, d: int = 3, loops: bool = True) -> Compiled:
    """The three layers and a configuration scoring with divisor ``d`` (0: it traps inside
    `low.ratio`, two layers below the instruction it calls), and calling `mid.twice`,
    whose `low.tally` has a loop, if ``loops``."""
    for name, text in (("low", LOW), ("mid", MID), ("top", TOP)):
        write(folder, name, text)
    app = write(folder, "app", APP.format(lo=1 if d else 0, d=d,
                                          loops="loops = twice(s);" if loops else ""))
    return Compiler().compile(app)


def ext_index(bound: Bound, name: str) -> int:
    return next(k for k, e in enumerate(bound.ext) if e.name == name)


def task_unit(program: Program) -> int:
    return program.image.tasks[0].function


def as_run(bound: Bound, seen: dict[int, Bound] | None = None) -> Bound:
    """``bound`` with every VMlet instruction, through the layers, charged as it runs (no
    fixed cost): the charging before nested instructions could be of fixed cost."""
    seen = {} if seen is None else seen
    if id(bound) in seen:
        return seen[id(bound)]
    out = seen[id(bound)] = dataclasses.replace(bound, ext=())
    ext = tuple(ExtBinding(bound if e.vmlet is bound else as_run(e.vmlet, seen), e.function,
                           e.name, None) for e in bound.ext)
    # an instruction of the VMlet's own refers to the rebuilt VMlet
    ext = tuple(dataclasses.replace(e, vmlet=out) if e.vmlet is bound else e for e in ext)
    object.__setattr__(out, "ext", ext)  # Bound is frozen; a VMlet binds to itself
    return out


def reference(bound: Bound, unit: int, plan: tuple[str, int], exact: int) -> tuple:
    first, again = schedule(plan, exact)
    return drive(run(bound, Memory.of(bound), unit, (), first), (first, again))


def test_an_instruction_on_fixed_cost_layers_is_fixed_cost_and_translated_in_place(
        tmp_path: Path) -> None:
    vm = start_vvm(compiled(tmp_path, loops=False))
    program = vm.program
    assert program is not None
    b = program.bound
    score = b.ext[ext_index(b, "top.score")]
    scaled = next(e for e in score.vmlet.ext if e.name == "mid.scaled")
    assert score.fixed_cost is not None and scaled.fixed_cost is not None
    assert all(e.fixed_cost is not None for e in scaled.vmlet.ext
               if e.name in ("low.clamp", "low.ratio"))
    # no VMlet code is translated out of line: the three layers are written in place
    assert "def v0_" not in program.code.source and program.code.fallbacks == {}
    out = vm.call("t")
    assert out.fault is None and vm.global_value("out") == 7005 // 3 + 7
    # the charge is the one it had when the bodies ran as they went: only its timing moved
    unit = task_unit(program)
    old = reference(as_run(b), unit, ("big", 0), 0)
    new = reference(b, unit, ("big", 0), 0)
    assert old[0] == new[0] == "ok" and old[2] == new[2] == out.cycles
    assert old[3] == new[3] == ()  # no suspension with a huge budget
    # ... and the instruction is one piece: its largest single charge is the whole of it
    assert program.facts.largest_charge >= b.ext_cost[ext_index(b, "top.score")]


def test_an_instruction_using_one_with_a_loop_stays_out_of_line(tmp_path: Path) -> None:
    vm = start_vvm(compiled(tmp_path))
    program = vm.program
    assert program is not None
    b = program.bound
    twice = b.ext[ext_index(b, "mid.twice")]
    assert twice.fixed_cost is None
    assert next(e for e in twice.vmlet.ext if e.name == "low.tally").fixed_cost is None
    assert b.ext[ext_index(b, "top.score")].fixed_cost is not None
    assert "def v0_i" in program.code.source  # twice (and tally) as functions
    out = vm.call("t")
    assert out.fault is None and vm.global_value("loops") == 2 * sum(range(7))


@pytest.mark.parametrize("d", [3, 0], ids=["runs", "traps"])
def test_both_engines_agree_under_every_budget_slicing(tmp_path: Path, d: int) -> None:
    """The translated code (the three layers in place, `twice` out of line) and the
    reference interpreter: the same result or trap (code, unit, offset), the same cycles,
    the same budget left at every suspension, under each slicing."""
    vm = start_vvm(compiled(tmp_path, d))
    program = vm.program
    assert program is not None
    unit = task_unit(program)
    exact = 0
    slicings = plans(random.Random(d)) + [("slices", n) for n in (60, 200, 1000)]
    ends = []
    for plan in slicings:
        ref = reference(program.bound, unit, plan, exact)
        first, again = schedule(plan, exact)
        program.memory.globals[:] = Memory.of(program.bound).globals
        fast = drive(program.code.functions[unit](first), (first, again))
        assert fast == ref, plan
        ends.append(ref[:2])  # "cut": followed for its first MAX_RESUMES suspensions only
        if plan[0] == "big":
            exact = ref[-2]
    finished = [e for e in ends if e[0] != "cut"]
    assert len(finished) >= len(slicings) - 2  # only tiny random frames may be cut
    assert {e[0] for e in finished} == {"ok" if d else "trap"}
    assert d or {e[1] for e in finished} == {TrapCode.DIV_ZERO}


def test_a_trap_two_layers_down_is_the_instructions_own_and_charged_in_full(
        tmp_path: Path) -> None:
    vm = start_vvm(compiled(tmp_path, d=0))
    program = vm.program
    assert program is not None
    b = program.bound
    unit = task_unit(program)
    k = ext_index(b, "top.score")
    at = next(ins.offset for ins in isa.decode(program.image.functions[unit].code)
              if ins.opcode == isa.EXT_BASE + k)
    out = vm.call("t")
    assert out.fault is not None
    assert (out.fault.code, out.fault.unit, out.fault.offset) == (TrapCode.DIV_ZERO, "t", at)
    # one cycle short of what the trap charged, the run waits before the instruction: the
    # whole instruction was charged at once, and nothing of it is refunded by the trap
    short = reference(b, unit, ("exact", 0), out.cycles - 1)
    assert short[0] == "trap" and len(short[-1]) == 1
    waited_with = short[-1][0]
    before = out.cycles - 1 - waited_with
    assert out.cycles - before == b.ext_cost[k] and waited_with < b.ext_cost[k]
    # when the bodies ran as they went, the trap charged less: up to the division only
    old = reference(as_run(b), unit, ("big", 0), 0)
    assert old[:4] == ("trap", TrapCode.DIV_ZERO, unit, at) and old[4] < out.cycles


def test_the_proven_worst_case_is_the_metered_cycles(tmp_path: Path) -> None:
    app = compiled(tmp_path)
    report = verify_program(app, timeout_ms=2000)
    assert report.status == "proven"
    worst = report.worst_case("t")
    out = start_vvm(app).call("t")
    assert out.fault is None
    assert out.cycles == worst.bound
