"""The fast engine (``onboard.vm.translator``) against the reference interpreter, cycle for cycle.

Both engines run the same code on the same inputs, each on its own copy of memory and its own
host with the same seed, under several budget slicings (one huge budget, frames of 1000
cycles, and 37 or 5 cycles: suspension almost everywhere). They must agree on the result or
the trap (code, unit, offset), the cycles charged, the budget left at every suspension, and
the memory afterwards.
"""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from bytecode_programs import PROFILE, Case
from ccl_programs import configurations
from engine_oracle import HOST, check, load
from hypothesis import HealthCheck, assume, given, note, settings
from support import frames_program

from ccl.diagnostics import CclError
from ccl.driver import Compiler
from missions.corot.natives import make_host
from onboard.vm import isa
from onboard.vm.faults import Trap, TrapCode
from onboard.vm.image import (
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageKind,
    InstrDef,
    Task,
    VmletRef,
)
from onboard.vm.isa import INT_MAX, INT_MIN
from onboard.vm.loader import Program, load_config, load_vmlet
from onboard.vm.reference import Memory, run
from onboard.vm.translator import unit as translator_unit
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "ccl" / "cases"


def drive(execution: Generator[int, int, Any], slice_: int) -> tuple[Any, ...]:
    """Run an execution giving it ``slice_`` more cycles at every suspension."""
    given_ = slice_
    yields = []
    try:
        left = next(execution)
        while True:
            yields.append(left)
            given_ += slice_
            left = execution.send(left + slice_)
    except StopIteration as stop:
        left, result = stop.value
        return ("ok", result, given_ - left, tuple(yields))
    except Trap as trap:
        return ("trap", trap.code, trap.unit, trap.offset, given_ - trap.remaining,
                tuple(yields))


def assemble(lines: list[str]) -> bytes:
    """Assemble lines of ``MNEMONIC operand, ...`` and ``label:``."""
    asm = isa.Assembler()
    labels: dict[str, isa.Label] = {}
    for line in lines:
        if line.endswith(":"):
            asm.place(labels.setdefault(line[:-1], isa.Label(line[:-1])))
            continue
        name, _, rest = line.partition(" ")
        operands = [int(x) if x.lstrip("-").isdigit() else
                    labels.setdefault(x, isa.Label(x))
                    for x in (p.strip() for p in rest.split(",")) if x]
        code = isa.EXT_BASE + int(name[3:]) if name.startswith("EXT") else isa.BY_NAME[name].code
        asm.emit(code, *operands)
    return asm.assemble()


def two_programs(path: Path, compiler: Compiler, seed: int = 1) -> tuple[Program, Program]:
    compiled = compiler.compile(path)
    host = make_host(compiled.mission, seed)  # shared: no native here depends on calls made
    out = []
    for _ in range(2):
        vmlets = [load_vmlet(v.image, compiled.mission, host) for v in compiled.vmlets]
        out.append(load_config(compiled.image, vmlets, compiled.mission, host))
    return out[0], out[1]


def assert_same(ref: Program, fast: Program, unit: int, args: tuple[int, ...],
                slices: tuple[int, ...]) -> None:
    for slice_ in slices:
        expected = drive(run(ref.bound, ref.memory, unit, args, slice_), slice_)
        got = drive(fast.code.functions[unit](slice_, *args), slice_)
        where = f"{ref.image.functions[unit].name}{args} in slices of {slice_}"
        assert got[:-1] == expected[:-1], where
        assert got[-1] == expected[-1], f"{where}: suspensions differ"
        assert fast.memory.globals == ref.memory.globals, where
        assert fast.memory.arrays == ref.memory.arrays, where


def _ok_cases() -> list[Path]:
    configs = sorted((ROOT / "missions" / "corot" / "configs").glob("*.ccl"))
    cases = [p for p in sorted(CASES.glob("*.ccl"))
             if p.read_text(encoding="utf-8-sig").startswith("// expect: ok")
             and "\nvmlet " not in p.read_text(encoding="utf-8-sig")]
    return [p for p in configs if p.stem != "bad_syntax"] + cases


@pytest.mark.parametrize("path", _ok_cases(), ids=lambda p: p.stem)
def test_corpus_programs_run_the_same_on_both_engines(path: Path) -> None:
    ref, fast = two_programs(path, Compiler())
    for program in (ref, fast):  # keep the big loops of the contract programs short
        for i, g in enumerate(program.image.globals):
            if g.name == "n_stars":
                program.memory.globals[i] = 150
    values = (0, 1, -3, 7, 2**31 - 1, -(2**31))
    for unit, fn in enumerate(ref.image.functions):
        for args in itertools.islice(itertools.product(values, repeat=fn.n_params), 8):
            assert_same(ref, fast, unit, args, (10**9, 1000, 37))


def test_the_cosmic_filter_suspends_at_the_same_instructions_in_tiny_slices() -> None:
    ref, fast = two_programs(ROOT / "missions/corot/configs/exo_e1.ccl", Compiler())
    for program in (ref, fast):
        program.memory.globals[[g.name for g in program.image.globals].index("n_stars")] = 40
    unit = ref.unit("cosmic_filter")
    for _ in range(3):  # the state carries over: first runs flag everything, later ones not
        assert_same(ref, fast, unit, (), (5, 61))


_compiler = Compiler()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(configurations())
def test_generated_programs_run_the_same_on_both_engines(text: str) -> None:
    note(text)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.ccl"
        path.write_text(text)
        try:
            ref, fast = two_programs(path, _compiler)
        except CclError:
            assume(False)
            return
    for _ in range(2):  # twice: the second run starts from the state the first left
        assert_same(ref, fast, ref.unit("t"), (), (10**9, 23))
    for args in ((0, 0), (5, -7), (2**31 - 1, 2)):
        assert_same(ref, fast, ref.unit("f"), args, (10**9, 17))


_BATCHED = """\
mission corot;
config batched version 1;
uses photometry;
param n : int[0..60] = 40;
param cut : int[0..60] = {cut};
table t[60] : int[0..9] = [{rows}];
var acc : int[-1000..1000];
var out[60] : int[-100..100];
fn f(x: int[0..59]) -> int[-100..100] {{
    if x > 50 {{ return 0; }}
    return 100 / (x - {pole});
}}
task scan every 1 s {{
    for i in 0 .. n {{
        if t[i] > 4 {{
            acc = f(i);
            flag(i, 1);
        }} else {{
            acc = min(acc + 1, 1000);
        }}
        out[i] = 100 / (i - cut);
    }}
}}
"""


@pytest.mark.parametrize("cut, pole, traps_in", [(60, 70, None), (23, 70, "scan"),
                                                  (60, 17, "f"), (0, 70, "scan")])
def test_a_batched_loop_gives_back_what_it_charged_ahead_when_it_traps(
        tmp_path: Path, cut: int, pole: int, traps_in: str | None) -> None:
    """A loop whose iterations are charged per batch (its top-level blocks at once) must
    trap, suspend and finish exactly where the reference does: a trap in the loop's own
    code (``out[i] = 100 / (i - cut)`` at i = cut), in a function it calls (``f`` divides by
    zero at i = pole when t[i] > 4), or none."""
    rows = ", ".join(str((7 * i) % 10) for i in range(60))
    path = tmp_path / "batched.ccl"
    path.write_text(_BATCHED.format(cut=cut, pole=pole, rows=rows))
    ref, fast = two_programs(path, Compiler())
    assert "budget -= (e" in fast.code.source  # the batched form is the one under test
    unit = ref.unit("scan")
    outcome = drive(fast.code.functions[unit](10**9), 10**9)
    if traps_in is None:
        assert outcome[0] == "ok"
    else:
        assert outcome[0] == "trap" and ref.image.functions[outcome[2]].name == traps_in
    for program in (ref, fast):  # both start again from the same state
        program.memory.globals[:] = [g.value for g in program.image.globals]
        for arr, a in zip(program.memory.arrays, program.image.arrays, strict=True):
            arr[:] = a.values
    assert_same(ref, fast, unit, (), (10**9, 1000, 503, 37))




_FIXED_BODY = """\
mission corot;
config fixed_body version 1;
param cut : int[0..80] = {cut};
table t[60] : int[0..9] = [{rows}];
var acc : int[-1000..1000];
task scan every 1 s {{
    let a = 0;
    for i in 0 .. 60 {{
        a = (a + t[i] * 100 / (i - cut)) % 1000;
    }}
    acc = a;
}}
"""


@pytest.mark.parametrize("cut", [80, 0, 29, 59])
def test_a_fixed_cost_loop_longer_than_the_budget_runs_in_batches_of_what_fits(
        tmp_path: Path, cut: int) -> None:
    """A loop whose body is one block of fixed cost, when the budget does not cover all the
    iterations left (a frame of the real budget is shorter than many loops), runs batches of
    the iterations that fit rather than checking the budget every iteration; it must
    suspend, trap (``100 / (i - cut)`` at i = cut) and finish exactly where the reference
    does, and give back what a batch charged ahead when it traps."""
    rows = ", ".join(str((3 * i) % 10) for i in range(60))
    path = tmp_path / "fixed_body.ccl"
    path.write_text(_FIXED_BODY.format(cut=cut, rows=rows))
    ref, fast = two_programs(path, Compiler())
    source = fast.code.source
    assert "c = (l" in source and "budget -= (e" in source  # both forms are under test
    assert_same(ref, fast, ref.unit("scan"), (), (10**9, 1000, 503, 37, 5))


_LAZY = """\
mission corot;
config lazy version 1;
table t[50] : int[0..9] = [{rows}];
var out[50] : int[-2000..2000];
var last : int[-1000..1000];
task mix every 1 s {{
    let a = 3;
    let b = 4;
    for i in 0 .. 50 {{
        let c = (a * 7 + b + t[i]) % 1000;
        a = (b % 5 + t[i]) % 1000;
        b = (c + a * 3 + abs(a - c)) % 1000;
        let d = a % 1000;
        a = b % 1000;
        b = d;
        out[i] = (a + b) % 1000 + min(a % 10, b % 10) - (b % 7) + a / 3;
    }}
    last = a - b;
}}
"""


def test_unchecked_arithmetic_is_written_where_it_is_used_and_computes_the_same(
        tmp_path: Path) -> None:
    """Arithmetic that needs no check and reads only locals is one Python expression where
    its value is used (``a = ((a + x) % 255)``, no temporary per operation); a store into a
    local it reads evaluates it first (the swaps through ``d``), and a suspension between
    the two changes nothing: the same results, traps and suspensions as the reference."""
    rows = ", ".join(str((7 * i) % 10) for i in range(50))
    path = tmp_path / "lazy.ccl"
    path.write_text(_LAZY.format(rows=rows))
    ref, fast = two_programs(path, Compiler())
    source = fast.code.source
    assert "% 1000)" in source and "abs((" in source and " // 3)" in source  # the lazy form
    assert_same(ref, fast, ref.unit("mix"), (), (10**9, 1000, 503, 37, 5))


_COUNTER = """\
mission corot;
config counter version 1;
table signal[40] : int[0..10000] = [{rows}];
var out[40] : int[0..10000];
var peaks : int[0..40];
task filter every 1 s {{
    let n = 0;
    for i in 1 .. 39 {{
        let v = (signal[i - 1] + 2 * signal[i] + signal[i + 1]) / 4;
        out[i] = v;
        if v > 5000 {{ n = n + 1; }}
    }}
    peaks = n;
}}
"""


def test_a_counter_that_keeps_growing_does_not_cost_the_other_locals_their_ranges(
        tmp_path: Path) -> None:
    """``n`` grows by one each pass of the range analysis, so it never settles and may hold
    any value; ``v`` settles at [0, 10000] (a quotient of non-negative values by 4), so
    storing it into ``out`` needs no range check, while ``peaks = n`` keeps its check. Both
    engines agree in every slicing."""
    rows = ", ".join(str((7919 * i) % 10001) for i in range(40))
    path = tmp_path / "counter.ccl"
    path.write_text(_COUNTER.format(rows=rows))
    ref, fast = two_programs(path, Compiler())
    source = fast.code.source
    assert source.count("T_RANGE") == source.count("G[0] = ") > 0  # only peaks = n checks
    assert_same(ref, fast, ref.unit("filter"), (), (10**9, 1000, 503, 37, 5))


def test_a_call_is_charged_the_frame_it_pushes_on_both_engines(tmp_path: Path) -> None:
    """``small`` and ``big`` run the same instructions; ``big`` has 60 more locals (never
    used on this path). A CALL charges ``frame_slot`` cycles per local of its callee, so the
    task calling ``big`` costs exactly that much more, on both engines and in any slicing
    (a flat call cost let a frame of 131,072 locals go for 20 cycles)."""
    path = tmp_path / "frames.ccl"
    path.write_text(frames_program(60))
    ref, fast = two_programs(path, Compiler())
    extra = ref.image.functions[ref.unit("big")].n_locals \
        - ref.image.functions[ref.unit("small")].n_locals
    assert extra >= 60
    cycles = {}
    for task in ("t_small", "t_big"):
        unit = ref.unit(task)
        assert_same(ref, fast, unit, (), (10**9, 1000, 37, 5))
        outcome = drive(fast.code.functions[unit](10**9), 10**9)
        assert outcome[0] == "ok"
        cycles[task] = outcome[2]
    assert cycles["t_big"] - cycles["t_small"] == ref.bound.frame_slot * extra == 2 * extra


# --------------------------------------------------------------------------- bytecode found
# by the engine fuzzer (tests/onboard/test_engine_fuzz.py), minimal: each crashed the
# translated engine or made it disagree with the reference before its fix.


def _case(*units: tuple[str, int, bool, list[str]],
          entries: tuple[tuple[int, tuple[int, ...]], ...] = ((0, ()),)) -> Case:
    """A configuration of assembled units ``(name, params, returns, code lines)``, with a
    writable global ``g`` (0..100) and 4 locals per unit beyond its parameters."""
    functions = tuple(
        CodeUnit(name, params, params + 4, returns, 8, assemble(lines))
        for name, params, returns, lines in units)
    image = Image(kind=ImageKind.CONFIG, name="regress", version=1, mission="corot",
                  globals=(Global("g", True, 0, 100, 0),), functions=functions)
    return Case(image, (), entries)


_EMPTY_LOOP = ["PUSH 0", "STORE_L 0", "PUSH 3", "STORE_L 1", "FORPREP 0, out", "body:",
               "FORLOOP 0, body", "out:", "PUSH 1", "STORE_G 0", "RET"]


def _agree(case: Case) -> None:
    verdict = check(case)
    assert verdict.accepted
    assert verdict.ok, verdict.host_exceptions + verdict.mismatches


def test_a_loop_with_an_empty_body_translates() -> None:
    """``for i in 0 .. 3 { }``: the body is only FORLOOP, charged per batch, so the
    translated ``for`` had no statement (IndentationError at load)."""
    case = _case(("f", 0, False, _EMPTY_LOOP))
    load(case)  # raised IndentationError
    _agree(case)


def test_a_value_carried_by_a_jump_past_a_branch_that_returns_is_kept() -> None:
    """``JNZ`` carries a value; its fall-through pops it and returns. At the target the
    value is there (the verifier says depth 1), but the translator took the depth the
    returning branch left (0), so the call after it got no argument."""
    case = _case(("f", 1, True, ["PUSH 7", "LOAD_L 0", "JNZ on", "POP", "PUSH 0", "RETV",
                                 "on:", "CALL 1", "RETV"]),
                 ("g", 1, True, ["LOAD_L 0", "PUSH 2", "MUL", "STORE_G 0", "PUSH 3",
                                 "RETV"]),
                 entries=((0, (0,)), (0, (1,))))
    _agree(case)


def test_a_store_into_a_parameter_does_not_narrow_its_range() -> None:
    """A parameter holds any argument; the range analysis took only what the unit stores
    into it (5), so ``1 / x`` lost its zero check: ZeroDivisionError instead of a trap."""
    case = _case(("f", 1, False, ["PUSH 1", "LOAD_L 0", "DIV", "POP", "PUSH 5", "STORE_L 0",
                                  "RET"]),
                 entries=((0, (0,)), (0, (3,))))
    _agree(case)
    program = load(case)
    with pytest.raises(Trap) as info:
        next(program.code.functions[0](1000, 0))
    assert info.value.code is TrapCode.DIV_ZERO


def test_an_inlined_call_alone_in_its_block_charges_its_instructions_one_by_one() -> None:
    """``CALL f1`` of a one-line function, inlined, alone in its block (the next call
    starts a block): charged 34 cycles at once, where the reference charges CALL 20, PUSH 4
    and RETV 10 and may suspend between them (in slices of 5 they differ)."""
    case = _case(("f", 0, False, ["CALL 1", "CALL 2", "RET"]),
                 ("one", 0, True, ["PUSH 264", "RETV"]),
                 ("sink", 1, False, ["RET"]))
    _agree(case)
    program = load(case)
    ref = drive(run(program.bound, Memory.of(program.bound), 0, (), 5), 5)
    fast = drive(program.code.functions[0](5), 5)
    assert fast == ref


def test_a_comparison_is_evaluated_before_a_local_it_reads_is_overwritten() -> None:
    """``l1 <= (5 == ccd)`` stays a lazy Python expression on the symbolic stack; a store
    into ``l1`` before it is used must evaluate it first (it returned 0, the reference 1:
    only direct reads of a local were flushed)."""
    case = _case(("f", 1, True, ["LOAD_L 1", "PUSH 5", "PUSH 1", "EQ", "LE", "PUSH 1",
                                 "STORE_L 1", "RETV"]),
                 entries=((0, (5,)),))
    _agree(case)
    assert drive(load(case).code.functions[0](100, 5), 100)[:2] == ("ok", 1)


def test_what_an_inlined_call_returns_is_evaluated_before_its_argument_changes() -> None:
    """``id(x)`` is inlined and returns the caller's ``l0`` itself; a store into ``l0``
    before the result is used must not change the result."""
    case = _case(("f", 1, True, ["LOAD_L 0", "CALL 1", "PUSH 1", "STORE_L 0", "RETV"]),
                 ("id", 1, True, ["LOAD_L 0", "RETV"]),
                 entries=((0, (7,)),))
    _agree(case)
    assert drive(load(case).code.functions[0](100, 7), 100)[:2] == ("ok", 7)


# --------------------------------------------------------------------------- the safety net


def test_a_unit_the_translator_cannot_compile_runs_on_the_reference_engine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A translator bug that yields code Python refuses (here: the empty loop body, with
    the fix taken out) costs that unit its speed, not the board: it runs on the reference
    interpreter, the other units stay translated, and ``fallbacks`` says why."""
    monkeypatch.setattr(translator_unit, "fill_empty_suites", lambda lines: lines)
    case = _case(("f", 0, False, _EMPTY_LOOP), ("g", 0, False, ["PUSH 2", "STORE_G 0", "RET"]))
    program = load(case)
    assert list(program.code.fallbacks) == [0]
    assert "IndentationError" in program.code.fallbacks[0]
    assert "def u1(" in program.code.source
    verdict = check(case)
    assert not verdict.host_exceptions and not verdict.mismatches
    assert verdict.fallbacks == [f"unit 0: {program.code.fallbacks[0]}"]


def test_units_using_a_vmlet_instruction_that_cannot_be_translated_run_on_the_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The out-of-line translation of a VMlet instruction body raises: the units that use
    the instruction fall back to the reference interpreter, the others do not."""
    real = translator_unit.UnitTranslator.translate

    def failing(self: Any) -> str:
        if self.state.spec.fn_name.startswith("v"):
            raise IndexError("pop from empty list")
        return real(self)

    monkeypatch.setattr(translator_unit.UnitTranslator, "translate", failing)
    kit = _selfy(["LOAD_L 0", "PUSH 0", "JZ e", "e:", "RETV"])  # a branch: out of line
    case = _case(("f", 0, False, ["PUSH 3", "EXT0", "STORE_G 0", "RET"]),
                 ("g", 0, False, ["PUSH 2", "STORE_G 0", "RET"]))
    image = dataclasses.replace(
        case.image, uses=(VmletRef(kit.name, kit.version, kit.content_hash),),
        ext=(ExtRef(kit.name, "twice_inc"),))
    case = Case(image, (kit,), ((0, ()), (1, ())))
    program = load(case)
    assert program.bound.ext[0].fixed_cost is None  # translated out of line
    assert list(program.code.fallbacks) == [0]
    assert "VMlet instruction 0: IndexError" in program.code.fallbacks[0]
    verdict = check(case)
    assert not verdict.host_exceptions and not verdict.mismatches


def test_a_vvm_runs_a_configuration_the_translator_fails_on_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the whole VVM: the configuration loads and activates, its task runs (on the
    reference engine) and telemetry names the unit and why."""
    monkeypatch.setattr(translator_unit, "fill_empty_suites", lambda lines: lines)
    case = _case(("tick", 0, False, _EMPTY_LOOP))
    image = dataclasses.replace(case.image, tasks=(Task("tick", 100, 0),))
    vm = VVM(PROFILE, HOST)
    vm.load(image)
    vm.run_for(300)
    status = vm.status()
    assert "IndentationError" in status["engine_fallbacks"]["tick"]
    assert status["tasks"][0]["runs"] == 3 and status["fault_count"] == 0
    assert vm.global_value("g") == 1


def _selfy(twice: list[str], on_load: bool = False) -> Image:
    """A VMlet whose instruction ``twice_inc`` uses its own instruction ``inc`` (as the
    verifier allows); with ``on_load``, its ``on load`` code uses ``inc`` too."""
    functions = [CodeUnit("twice_inc", 1, 1, True, 2, assemble(twice)),
                 CodeUnit("inc", 1, 1, True, 2, assemble(["LOAD_L 0", "PUSH 1", "ADD",
                                                          "RETV"]))]
    if on_load:
        functions.append(CodeUnit("boot", 0, 0, False, 1,
                                  assemble(["PUSH 1", "EXT0", "POP", "RET"])))
    return Image(kind=ImageKind.VMLET, name="selfy", version=1, mission="corot",
                 ext=(ExtRef("selfy", "inc"),), functions=tuple(functions),
                 instrs=(InstrDef("twice_inc", 0), InstrDef("inc", 1)),
                 on_load=2 if on_load else None)


def test_a_vmlet_instruction_may_use_the_vmlets_own_instructions() -> None:
    """The loader bound a VMlet's own extension opcodes to nothing, so a body using one
    crashed both engines (IndexError); the translator named out-of-line bodies by the
    configuration's opcode, not the VMlet's. Bodies charged as they run (a branch) and a
    trap inside the inner instruction (``inc`` of INT_MAX) are reported at the outer one."""
    vm = _selfy(["LOAD_L 0", "EXT0", "EXT0", "PUSH 0", "JZ e", "e:", "RETV"])
    image = Image(kind=ImageKind.CONFIG, name="c", version=1, mission="corot",
                  uses=(VmletRef("selfy", 1, vm.content_hash),),
                  ext=(ExtRef("selfy", "twice_inc"), ExtRef("selfy", "inc")),
                  globals=(Global("g", True, INT_MIN, INT_MAX, 0),),
                  functions=(CodeUnit("f", 1, 1, False, 1,
                                      assemble(["LOAD_L 0", "EXT0", "EXT1", "STORE_G 0",
                                                "RET"])),))
    case = Case(image, (vm,), ((0, (5,)), (0, (INT_MAX - 2,)), (0, (INT_MAX,))))
    _agree(case)
    program = load(case)
    assert drive(program.code.functions[0](10**6, 5), 10**6)[0] == "ok"
    assert program.memory.globals[0] == 8
    trap = drive(program.code.functions[0](10**6, INT_MAX), 10**6)
    assert trap[:4] == ("trap", TrapCode.OVERFLOW, 0, 2)  # at f's EXT0, offset 2


def test_a_vmlets_on_load_may_use_its_own_instructions() -> None:
    vm = _selfy(["LOAD_L 0", "EXT0", "EXT0", "RETV"], on_load=True)
    loaded = load_vmlet(vm, PROFILE, HOST)  # raised IndexError
    assert loaded.on_load_cycles > 0


class _BrokenHost:
    """A host whose ``flux`` breaks its contract: it returns no integer at all."""

    def __init__(self, profile: Any) -> None:
        self.inner = make_host(profile, 1)

    def native(self, name: str) -> Any:
        return (lambda *_: None) if name == "flux" else self.inner.native(name)

    def env(self, key: str) -> int:
        return self.inner.env(key)

    def advance(self, now_ms: int) -> None:
        self.inner.advance(now_ms)


def test_a_native_that_returns_no_integer_traps_alike_on_both_engines(tmp_path: Path) -> None:
    """The reference traps ``native-result``; the translated engine raised TypeError (a
    host fault the scheduler could only call internal)."""
    path = tmp_path / "broken.ccl"
    path.write_text("mission corot;\nconfig broken version 1;\nuses photometry;\n"
                    "var v : int[0..16777215] = 0;\ntask t every 1 s { v = flux(3); }\n")
    (tmp_path / "photometry.ccl").write_text(
        (ROOT / "missions/corot/vmlets/photometry.ccl").read_text())
    compiled = Compiler().compile(path)
    host = _BrokenHost(compiled.mission)
    programs = []
    for _ in range(2):
        vmlets = [load_vmlet(v.image, compiled.mission, host) for v in compiled.vmlets]
        programs.append(load_config(compiled.image, vmlets, compiled.mission, host))
    ref, fast = programs
    unit = ref.unit("t")
    assert_same(ref, fast, unit, (), (10**9, 37))
    outcome = drive(fast.code.functions[unit](10**9), 10**9)
    assert outcome[0] == "trap" and outcome[1].name == "NATIVE_RESULT"


# --------------------------------------------------------------------------- dispatch


def test_every_opcode_has_one_emitter_and_one_reference_step() -> None:
    """Both engines look an instruction up by its opcode: every opcode of the ISA has its
    translation and its step, every extension opcode is a VMlet instruction, and an opcode
    the ISA does not define has neither (it is refused, never silently skipped)."""
    from onboard.vm import reference
    from onboard.vm.translator.instructions import calls, emitter_for

    for op in isa.BY_CODE:
        assert callable(emitter_for(op))
        assert reference._STEP[op] is not reference._invalid, isa.BY_CODE[op].name
    for op in range(isa.EXT_BASE, 256):
        assert emitter_for(op) is calls.vmlet_instruction
        assert reference._STEP[op] is reference._ext
    undefined = [op for op in range(isa.EXT_BASE) if op not in isa.BY_CODE]
    assert 0x00 in undefined and 0x29 in undefined
    for op in undefined:
        assert reference._STEP[op] is reference._invalid
        with pytest.raises(ValueError, match="no translation"):
            emitter_for(op)
