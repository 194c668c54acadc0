"""The translator's faster forms against the reference interpreter, each with a case that a
wrong version of it would get wrong.

- A loop whose counter only loads one array iterates a slice of that array (``for w..``):
  a store into that array in the loop, a call in it, or any other use of the counter must
  keep the loop over the counter, and results, traps, cycles and suspensions stay those of
  the reference.
- A load from data memory is written where its value is used when nothing can suspend the
  code in between: a store into the same array or global first evaluates it.
- A native's result is checked as two plain comparisons after ``isinstance``: a host that
  returns a value out of range, a float in range, or no integer traps ``native-result`` at
  the call, with the cycles the reference charges, even inside a loop charged per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bytecode_programs import Case
from engine_oracle import check, load
from test_translate import _FIXED_BODY, assemble, assert_same, drive, two_programs

from ccl.driver import Compiler
from missions.corot.natives import make_host
from onboard.vm.faults import TrapCode
from onboard.vm.image import Array, CodeUnit, Global, Image, ImageKind
from onboard.vm.loader import Program, load_config, load_vmlet

ROOT = Path(__file__).resolve().parents[2]
SLICES = (10**9, 1000, 503, 37, 5)

_ROWS = ", ".join(str((7 * i + 3) % 256) for i in range(64))


def _programs(tmp_path: Path, text: str) -> tuple[Program, Program]:
    path = tmp_path / "fast.ccl"
    path.write_text(text)
    return two_programs(path, Compiler())


def _unmetered(tmp_path: Path, text: str, task: str) -> Program:
    """The configuration on the engine without metering, its task run to its end (no
    trap's refund names a loop counter there, so only the loop's own reads decide)."""
    path = tmp_path / "unmetered.ccl"
    path.write_text(text)
    compiled = Compiler().compile(path)
    host = make_host(compiled.mission, 1)
    program = load_config(compiled.image, [], compiled.mission, host, metered=False)
    program.code.functions[program.unit(task)](0)
    return program


def _reset(*programs: Program) -> None:
    """Memory back to the image's initial values (both engines start from the same)."""
    for program in programs:
        program.memory.globals[:] = [g.value for g in program.image.globals]
        for arr, a in zip(program.memory.arrays, program.image.arrays, strict=True):
            arr[:] = a.values


def _agree(ref: Program, fast: Program, task: str) -> None:
    unit = ref.unit(task)
    for slice_ in SLICES:
        _reset(ref, fast)
        assert_same(ref, fast, unit, (), (slice_,))


_CHECKSUM = f"""\
mission corot;
config checksum version 1;
table data[64] : int[0..255] = [{_ROWS}];
var s1 : int[0..254];
var s2 : int[0..254];
task checksum every 1 s {{
    let a = 0;
    let b = 0;
    for i in 0 .. 64 {{
        a = (a + data[i]) % 255;
        b = (b + a) % 255;
    }}
    s1 = a;
    s2 = b;
}}
"""


def test_a_loop_that_only_reads_an_array_in_order_iterates_it(tmp_path: Path) -> None:
    """Fletcher's checksum: the loop is written over a slice of the table and computes
    what the reference does, under every slicing (the batches resume mid-table)."""
    ref, fast = _programs(tmp_path, _CHECKSUM)
    assert "for w" in fast.code.source and "in A0[l" in fast.code.source
    _agree(ref, fast, "checksum")
    assert fast.memory.globals[0] != 0  # a sum was computed, not left at its start


_STORES_AHEAD = """\
mission corot;
config ahead version 1;
var v[16] : int[0..1000] = 1;
var last : int[0..1000];
task chain every 1 s {
    let a = 0;
    for i in 0 .. 16 {
        a = (a + v[i]) % 1000;
        v[15] = a;
    }
    last = a;
}
"""


def test_a_store_into_the_array_a_loop_reads_is_seen_by_the_next_load(
        tmp_path: Path) -> None:
    """Each iteration stores the element the last one loads: a slice taken before the
    loop would read the old value there (a = 16 instead of 15 + 15)."""
    ref, fast = _programs(tmp_path, _STORES_AHEAD)
    assert "for w" not in fast.code.source
    _agree(ref, fast, "chain")
    assert fast.memory.globals[0] == 30
    unmetered = _unmetered(tmp_path, _STORES_AHEAD, "chain")
    assert "for w" not in unmetered.code.source
    assert unmetered.memory.globals[0] == 30


_CALL_STORES = """\
mission corot;
config calls version 1;
var v[64] : int[0..255] = 7;
var acc : int[0..254];
fn clear_last() {
    v[63] = 0;
}
task scan every 1 s {
    let a = 0;
    for i in 0 .. 64 {
        a = (a + v[i]) % 255;
        clear_last();
    }
    acc = a;
}
"""


def test_a_loop_that_calls_code_storing_its_array_keeps_loading_it(tmp_path: Path) -> None:
    """The called function zeroes the last element before the loop loads it: 63 sevens
    count, not 64."""
    ref, fast = _programs(tmp_path, _CALL_STORES)
    assert "for w" not in fast.code.source
    _agree(ref, fast, "scan")
    assert fast.memory.globals[0] == 7 * 63 % 255
    unmetered = _unmetered(tmp_path, _CALL_STORES, "scan")
    assert "for w" not in unmetered.code.source
    assert unmetered.memory.globals[0] == 7 * 63 % 255


@pytest.mark.parametrize("cut", [80, 0, 29, 59])
def test_a_loop_that_uses_its_counter_otherwise_runs_over_it(tmp_path: Path,
                                                            cut: int) -> None:
    """``a = (a + t[i] * 100 / (i - cut)) % 1000``: the counter is also divided by (and the
    division may trap, its refund naming the counter): the loop stays over the counter,
    and traps where the reference does."""
    rows = ", ".join(str((7 * i) % 10) for i in range(60))
    ref, fast = _programs(tmp_path, _FIXED_BODY.format(cut=cut, rows=rows))
    assert "for w" not in fast.code.source
    _agree(ref, fast, "scan")
    outcome = drive(fast.code.functions[fast.unit("scan")](10**9), 10**9)
    assert outcome[0] == ("ok" if cut == 80 else "trap")


class _Host:
    """The CoRoT host with ``flux`` replaced."""

    def __init__(self, profile: Any, flux: Callable[[int], Any]) -> None:
        self.inner = make_host(profile, 1)
        self.flux = flux

    def native(self, name: str) -> Any:
        return self.flux if name == "flux" else self.inner.native(name)

    def env(self, key: str) -> int:
        return self.inner.env(key)

    def advance(self, now_ms: int) -> None:
        self.inner.advance(now_ms)


_FLUX_SUM = """\
mission corot;
config fluxes version 1;
uses photometry;
var total : int[0..999];
task sum every 1 s {
    let a = 0;
    for s in 0 .. 50 {
        a = (a + flux(s)) % 1000;
    }
    total = a;
}
"""

_BAD_FLUX: dict[str, Callable[[int], Any]] = {
    "good": lambda s: 1000 + s,
    "above": lambda s: 16_777_216 if s == 37 else 1000 + s,
    "below": lambda s: -1 if s == 12 else 1000 + s,
    "float": lambda s: 1000.0 if s == 20 else 1000 + s,
    "none": lambda s: None if s == 44 else 1000 + s,
    "bool": lambda s: s % 2 == 0,  # an int: 1 or 0, accepted by both engines
}


@pytest.mark.parametrize("case", list(_BAD_FLUX))
def test_a_native_result_out_of_its_range_traps_at_the_call_in_a_batched_loop(
        tmp_path: Path, case: str) -> None:
    """A host breaking its contract at one star traps ``native-result`` at that call on
    both engines, with the same cycles, under every slicing; within its range it runs."""
    path = tmp_path / "fluxes.ccl"
    path.write_text(_FLUX_SUM)
    (tmp_path / "photometry.ccl").write_text(
        (ROOT / "missions/corot/vmlets/photometry.ccl").read_text())
    compiled = Compiler().compile(path)
    host = _Host(compiled.mission, _BAD_FLUX[case])
    programs = []
    for _ in range(2):
        vmlets = [load_vmlet(v.image, compiled.mission, host) for v in compiled.vmlets]
        programs.append(load_config(compiled.image, vmlets, compiled.mission, host))
    ref, fast = programs
    _agree(ref, fast, "sum")
    outcome = drive(fast.code.functions[fast.unit("sum")](10**9), 10**9)
    if case in ("good", "bool"):
        assert outcome[0] == "ok"
    else:
        assert outcome[0] == "trap" and outcome[1] == TrapCode.NATIVE_RESULT


# --------------------------------------------------------------------------- lazy loads

def _memory_case(body: list[str]) -> Case:
    """A task ``for i in 0 .. 3 { body }`` over globals g, h (0..100) and a state array
    v = [1, 2, 3, 4] (0..100), assembled: a loop charged as a whole, where loads may be
    written where they are used."""
    code = ["PUSH 0", "STORE_L 0", "PUSH 3", "STORE_L 1", "FORPREP 0, out", "top:", *body,
            "FORLOOP 0, top", "out:", "RET"]
    unit = CodeUnit("t", 0, 4, False, 8, assemble(code))
    image = Image(kind=ImageKind.CONFIG, name="lazy", version=1, mission="corot",
                  globals=(Global("g", True, 0, 100, 0), Global("h", True, 0, 100, 0)),
                  arrays=(Array("v", True, 0, 100, (1, 2, 3, 4)),), functions=(unit,))
    return Case(image, (), ((0, ()),))


def _agree_and_read(case: Case) -> Program:
    verdict = check(case)
    assert verdict.accepted and verdict.ok, verdict.host_exceptions + verdict.mismatches
    program = load(case)
    assert "for l0 in range(l0, l1):" in program.code.source  # charged as a whole
    drive(program.code.functions[0](10**9), 10**9)
    return program


def test_a_load_left_on_the_stack_sees_the_value_before_a_store_into_its_array() -> None:
    """``x = v[0]; v[0] = v[0] + 1; h = x`` without a local for x: the load waits on the
    operand stack across the store, which must evaluate it first (h = 3, not 4)."""
    case = _memory_case(["PUSH 0", "LOAD_A 0", "PUSH 0", "PUSH 0", "LOAD_A 0", "PUSH 1", "ADD",
                         "STORE_A 0", "STORE_G 1"])
    program = _agree_and_read(case)
    assert program.memory.arrays[0][0] == 4 and program.memory.globals[1] == 3


def test_a_load_left_on_the_stack_sees_the_value_before_a_store_into_its_global() -> None:
    """``x = g; g = g + 1; h = x``, the same with a global (h = 2, not 3)."""
    case = _memory_case(["LOAD_G 0", "LOAD_G 0", "PUSH 1", "ADD", "STORE_G 0", "STORE_G 1"])
    program = _agree_and_read(case)
    assert program.memory.globals == [3, 2]
