"""The machine model (``onboard.vm.machine``): its semantics, its bounds, its schedulability
test, and that it is the only definition of them in the product."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onboard.mission import find_mission
from onboard.vm import isa, machine
from onboard.vm.faults import TrapCode
from onboard.vm.isa import INT_MAX, INT_MIN

ROOT = Path(__file__).resolve().parents[2]
COROT = find_mission("corot")

int32 = st.integers(INT_MIN, INT_MAX)
BINARY = (isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.MOD, isa.MIN, isa.MAX,
          isa.EQ, isa.NE, isa.LT, isa.LE, isa.GT, isa.GE)


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(("op", "a", "b", "code"), [
    (isa.DIV, INT_MIN, -1, TrapCode.OVERFLOW),
    (isa.MOD, INT_MIN, -1, TrapCode.OVERFLOW),  # the quotient it needs overflows
    (isa.DIV, 7, 0, TrapCode.DIV_ZERO),
    (isa.MOD, 7, 0, TrapCode.DIV_ZERO),
    (isa.ADD, INT_MAX, 1, TrapCode.OVERFLOW),
    (isa.SUB, INT_MIN, 1, TrapCode.OVERFLOW),
    (isa.MUL, 65536, 32768, TrapCode.OVERFLOW),
])
def test_every_trap_of_binary_operations(op: int, a: int, b: int, code: TrapCode) -> None:
    with pytest.raises(machine.ArithmeticTrap) as trap:
        machine.binary(op, a, b)
    assert trap.value.code is code


@pytest.mark.parametrize(("a", "b", "q", "r"), [
    (7, 2, 3, 1), (-7, 2, -3, -1), (7, -2, -3, 1), (-7, -2, 3, -1), (INT_MIN, 1, INT_MIN, 0),
])
def test_division_truncates_and_the_remainder_takes_the_dividends_sign(
        a: int, b: int, q: int, r: int) -> None:
    assert machine.binary(isa.DIV, a, b) == q
    assert machine.binary(isa.MOD, a, b) == r


def test_unary_traps_at_int_min() -> None:
    for op in (isa.NEG, isa.ABS):
        with pytest.raises(machine.ArithmeticTrap):
            machine.unary(op, INT_MIN)
    assert machine.unary(isa.NOT, 0) == 1 and machine.unary(isa.NOT, -5) == 0


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BINARY), int32, int32, int32, int32, st.data())
def test_binary_intervals_hold_every_result(op: int, a1: int, a2: int, b1: int, b2: int,
                                            data: st.DataObject) -> None:
    a, b = (min(a1, a2), max(a1, a2)), (min(b1, b2), max(b1, b2))
    x = data.draw(st.integers(*a))
    y = data.draw(st.sampled_from([b[0], b[1], max(b[0], min(b[1], -1)),
                                   max(b[0], min(b[1], 1)), data.draw(st.integers(*b))]))
    try:
        r = machine.binary(op, x, y)
    except machine.ArithmeticTrap:
        return
    lo, hi = machine.binary_interval(op, a, b)
    assert lo <= r <= hi and machine.fits(r)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from((isa.NEG, isa.ABS, isa.NOT)), int32, int32, st.data())
def test_unary_intervals_hold_every_result(op: int, a1: int, a2: int,
                                           data: st.DataObject) -> None:
    a = (min(a1, a2), max(a1, a2))
    x = data.draw(st.integers(*a))
    try:
        r = machine.unary(op, x)
    except machine.ArithmeticTrap:
        return
    lo, hi = machine.unary_interval(op, a)
    assert lo <= r <= hi


# --------------------------------------------------------------------------- costs, memory


def test_cost_formula_bounds_hold_every_argument() -> None:
    ws = COROT.natives["window_sum"]
    lo, hi = machine.native_charge_bounds(COROT, "window_sum")
    call = COROT.cycles[isa.CostClass.NATIVE]
    assert (lo, hi) == (call + 4 * 1 * 1 + 30, call + 4 * 64 * 64 + 30)
    for w, h in ((1, 1), (7, 64), (64, 64), (33, 2)):
        assert lo <= call + ws.cost.evaluate({"star": 0, "w": w, "h": h}) <= hi
    costs = machine.CostModel.of(COROT)
    assert costs.native_fixed["flux"] == call + 40 and costs.native_fixed["window_sum"] is None


@pytest.mark.parametrize(("lo", "hi", "size"), [
    (0, 0, 1), (0, 255, 1), (-128, 127, 1), (0, 256, 2), (0, 65535, 2), (0, 65536, 4),
    (INT_MIN, INT_MAX, 4), (1_000_000, 1_000_255, 1),
])
def test_slot_bytes_follow_the_declared_range(lo: int, hi: int, size: int) -> None:
    assert machine.slot_bytes(lo, hi) == size


def test_a_large_byte_table_is_counted_a_byte_per_entry() -> None:
    # 140,000 entries of int[0..255]: 140,000 bytes, within CoRoT's 512 KiB
    assert machine.globals_bytes([(0, 255)], [140_000]) == 140_000
    assert machine.globals_bytes([(0, 255)], [140_000]) <= machine.Limits.of(COROT).data_bytes


def test_limits_are_the_profiles() -> None:
    limits = machine.Limits.of(COROT)
    assert limits.frame_budget == 200_000 - 10_000
    assert (limits.code_bytes, limits.data_bytes) == (65_536, 524_288)
    assert limits.on_load_cycles == 1_000_000
    assert limits.max_locals == 524_288 // machine.WORD_BYTES


# --------------------------------------------------------------------------- schedulability


def _simulate(tasks: list[tuple[int, int]], frame_ms: int, supply: int,
              burst: int, horizon: int) -> bool:
    """A frame-by-frame EDF run of jobs needing exactly their cycles, each frame giving
    ``supply``: True when no job is unfinished at its next release."""
    jobs: list[list[int]] = []  # [deadline, left, task]
    if burst:
        jobs.append([0, burst, -1])
    for t in range(0, horizon, frame_ms):
        for i, (p, c) in enumerate(tasks):
            if t % p == 0:
                if any(j[2] == i for j in jobs):
                    return False
                jobs.append([t + p, c, i])
        budget = supply
        for job in sorted(jobs):
            use = min(budget, job[1])
            job[1] -= use
            budget -= use
        jobs = [j for j in jobs if j[1] > 0]
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([100, 200, 300, 500, 1000]),
                          st.integers(0, 3000)), min_size=1, max_size=4),
       st.integers(0, 6000), st.integers(1, 40))
def test_schedulability_agrees_with_a_frame_by_frame_edf_run(
        tasks: list[tuple[int, int]], burst: int, largest: int) -> None:
    verdict = machine.schedulability(tasks, frame_ms=100, frame_budget=2000,
                                     largest_charge=largest, burst=burst)
    supply = 2000 - machine.frame_loss(largest)
    assert verdict.supply_per_frame == supply
    assert verdict.ok == _simulate(tasks, 100, supply, burst, 2 * 3000 + 100_000)


def test_the_loss_at_a_frames_end_is_taken_from_every_frame() -> None:
    # one task that needs the whole budget of every frame: fits only if nothing is lost
    assert machine.schedulability([(100, 190_000)], frame_ms=100, frame_budget=190_000,
                                  largest_charge=1).ok
    late = machine.schedulability([(100, 190_000)], frame_ms=100, frame_budget=190_000,
                                  largest_charge=60)
    assert not late.ok and late.supply_per_frame == 190_000 - 59


def test_on_apply_delays_the_first_jobs() -> None:
    ok = machine.schedulability([(1000, 1_000_000)], frame_ms=100, frame_budget=190_000,
                                largest_charge=1, burst=800_000)
    late = machine.schedulability([(1000, 1_000_000)], frame_ms=100, frame_budget=190_000,
                                  largest_charge=1, burst=1_000_000)
    assert ok.ok and not late.ok and late.at_ms == 1000


# --------------------------------------------------------------------------- fixed costs


def test_a_body_of_fixed_cost_instructions_is_of_fixed_cost_and_costs_their_charges() -> None:
    """Units of one VMlet image: 0 uses 1 (its own instruction) and a lower layer's
    instruction (ext 1, fixed at 40); 2 uses 3, which uses 2 (a cycle: never fixed); 4 uses a
    lower instruction charged as it runs."""
    costs = machine.CostModel.of(COROT)
    c = costs.cycles
    ext0, ext1, ext2, ext3, ext4 = (isa.EXT_BASE + k for k in range(5))
    code = [bytes([isa.LOAD_L, 0, ext0, ext1, isa.RETV]),
            bytes([isa.LOAD_L, 0, isa.LOAD_L, 0, isa.ADD, isa.RETV]),
            bytes([isa.LOAD_L, 0, ext3, isa.RETV]),
            bytes([isa.LOAD_L, 0, ext2, isa.RETV]),
            bytes([isa.LOAD_L, 0, ext4, isa.RETV])]
    own = [1, None, 3, 2, None]
    lower = [None, 40, None, None, None]
    frames = [3, 2, 1, 1, 5]
    fixed = costs.units_fixed_cost(code, (), own, lower, frames)
    unit1 = 2 * c[isa.LOAD_L] + c[isa.ADD]
    assert fixed[1] == unit1
    # a nested instruction costs its dispatch, its frame and its body, as on its own
    assert fixed[0] == c[isa.LOAD_L] + costs.call(ext0, 3) + unit1 + costs.call(ext1, 2) + 40
    assert fixed[2] is None and fixed[3] is None and fixed[4] is None


# --------------------------------------------------------------------------- one definition

#: Names the machine model defines; no other module of the product may define them again.
MODEL_NAMES = {"tdiv", "tmod", "binary_interval", "unary_interval", "opcode_cycles",
               "opcode_costs", "slot_bytes", "width_bytes", "call_frame_bytes", "globals_bytes",
               "admits", "frame_loss", "schedulability", "body_fixed_cost", "units_fixed_cost",
               "frame_setup_cycles", "call_cycles"}
#: Text that restates the model: (pattern, what it restates).
MODEL_TEXT = [
    (r"abs\(\w+\)\s*//\s*abs\(", "truncating division"),
    (r"(profile|mission|p)\.cycles\[", "an instruction's cost (use machine.opcode_cycles)"),
    (r"share_cycles_per_frame\s*-", "the frame budget (use machine.Limits)"),
    (r"\b(SLOT|WORD)_BYTES\s*=", "the size of a data slot (use machine.slot_bytes)"),
    (r"-\s*\(?\s*2\s*\*\*\s*31|2\s*\*\*\s*31\s*-\s*1", "the 32-bit bounds (use isa.INT_MIN)"),
    (r"ON_LOAD_BUDGET\s*=", "the on load budget (use machine.Limits)"),
    (r"frame_slot\w*\s*\*|\*\s*\w*frame_slot", "a frame's set-up (use machine.call_cycles)"),
]
#: Where each definition lives.
HOME = {"onboard/vm/machine.py", "onboard/vm/isa.py", "onboard/mission.py"}


def _sources() -> list[Path]:
    return [p for pkg in ("ccl", "onboard", "ground", "missions")
            for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_machine_model_is_defined_once() -> None:
    found = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel in HOME:
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in MODEL_NAMES:
                found.append(f"{rel}:{node.lineno}: defines {node.name}")
        for pattern, what in MODEL_TEXT:
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{rel}:{line}: restates {what}")
    assert not found, "a second definition of the machine model:\n" + "\n".join(found)


def test_the_scan_finds_a_second_definition() -> None:
    planted = "def _tdiv(a, b):\n    q = abs(a) // abs(b)\n    return q\n"
    tree = ast.parse(planted)
    assert any(isinstance(n, ast.FunctionDef) and n.name.lstrip("_") in MODEL_NAMES
               for n in ast.walk(tree))
    assert re.search(MODEL_TEXT[0][0], planted)
