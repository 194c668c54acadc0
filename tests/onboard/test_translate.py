"""The fast engine (``onboard.translate``) against the reference interpreter, cycle for cycle.

Both engines run the same code on the same inputs, each on its own copy of memory and its own
host with the same seed, under several budget slicings (one huge budget, frames of 1000
cycles, and 37 or 5 cycles: suspension almost everywhere). They must agree on the result or
the trap (code, unit, offset), the cycles charged, the budget left at every suspension, and
the memory afterwards.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from ccl_programs import configurations
from hypothesis import HealthCheck, assume, given, note, settings

from ccl.diagnostics import CclError
from ccl.driver import Compiler
from missions.corot.natives import make_host
from onboard.faults import Trap
from onboard.loader import Program, load_config, load_vmlet
from onboard.reference import run

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


_FRAMES = """mission corot;
config frames version 1;
var out : int[0..10] = 0;
fn small(x : int[0..10]) -> int[0..10] {{
    if x > 100 {{ return 0; }}
    return x;
}}
fn big(x : int[0..10]) -> int[0..10] {{
    if x > 100 {{
{lets}
        return 0;
    }}
    return x;
}}
task t_small every 1 s {{ out = small(1); }}
task t_big every 1 s {{ out = big(1); }}
"""


def test_a_call_is_charged_the_frame_it_pushes_on_both_engines(tmp_path: Path) -> None:
    """``small`` and ``big`` run the same instructions; ``big`` has 60 more locals (never
    used on this path). A CALL charges ``frame_slot`` cycles per local of its callee, so the
    task calling ``big`` costs exactly that much more, on both engines and in any slicing
    (a flat call cost let a frame of 131,072 locals go for 20 cycles)."""
    lets = "\n".join(f"        let a{i} : int[0..10] = x;" for i in range(60))
    path = tmp_path / "frames.ccl"
    path.write_text(_FRAMES.format(lets=lets))
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
