"""Proven means safe on board: one regression per class of disagreement between what
``ccl verify`` proved and what the VVM did, each flown on the real scheduler at the inputs
that broke it (``ccl.soundness.trial``).

Each case is a configuration that today's verifier either proves (and then the flight at
adversarial inputs must be clean: accepted, no trap, no overrun, every task within its
bound) or refutes (and then the flight shows why: the board refuses it, or it overruns).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import frames_program

from ccl.driver import Compiled, Compiler
from ccl.soundness.trial import Inputs, NativeScript, TrialHost, fly, judge
from ccl.verify import Kind, VerifyReport, verify_program
from onboard.vm.loader import LoadError
from onboard.vm.machine import Limits
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[3]
VMLETS = ROOT / "missions" / "corot" / "vmlets"


def build(tmp_path: Path, name: str, text: str,
          vmlets: dict[str, str] | None = None) -> tuple[Compiled, VerifyReport]:
    for vm_name, vm_text in (vmlets or {}).items():
        (tmp_path / f"{vm_name}.ccl").write_text(vm_text)
    if "uses photometry;" in text:
        (tmp_path / "photometry.ccl").write_text((VMLETS / "photometry.ccl").read_text())
    path = tmp_path / f"{name}.ccl"
    path.write_text(text)
    compiled = Compiler().compile(path)
    return compiled, verify_program(compiled, timeout_ms=30_000)


def refuted_kinds(report: VerifyReport) -> set[Kind]:
    return {o.kind for o in report.refuted}


def task_bound(report: VerifyReport, name: str) -> int:
    return next(w.bound for w in report.budgets.tasks if w.name == name)


# --------------------------------------------------------------------------- early return

EARLY_RETURN = """\
mission corot;
config early version 1;
uses photometry;
param n : int[0..100] = 100;
table t[100] : int[0..9];
var found : int[0..100];
fn scan() -> int[0..100] {
    for i in 0 .. n {
        if t[i] < 5 {
            let a = window_sum(i, 8, 8);
            let b = window_sum(i, 8, 8);
        }
        if t[i] == 7 {
            let c = window_sum(i, 64, 64);
            return i;
        }
    }
    return 0;
}
task s every 1 s { found = scan(); }
"""


def test_a_loop_that_returns_charges_earlier_iterations_at_their_own_worst(
        tmp_path: Path) -> None:
    compiled, report = build(tmp_path, "early", EARLY_RETURN)
    assert report.status == "proven"
    # The dearest run: 99 iterations take the dear branch, the last one returns after the
    # dearest call. Charging the earlier ones like the returning one (cheap) said 71,076
    # (86,874 against 71,076 before call frames were charged by size: 10 more now).
    flight = fly(compiled, Inputs(params={"n": 100}, tables={"t": [0] * 99 + [7]}))
    verdict = judge(report, flight)
    assert verdict.sound, (flight, verdict)
    assert flight.observed["s"] == task_bound(report, "s") == 86_884


# --------------------------------------------------------------------------- end of frame

FRAME_END = """\
mission corot;
config frame_end version 1;
uses photometry;
param n : int[0..K] = K;
var acc : int[0..268431360];
task dear every 200 ms {
    for k in 0 .. n { acc = window_sum(k, 64, 64); }
}
"""


def test_time_lost_at_a_frames_end_is_in_the_schedulability_proof(tmp_path: Path) -> None:
    # 23 calls of 16,434 cycles every 2 frames of 190,000: 2.00 % under the share on
    # average, but each frame loses what is left when the next call does not fit.
    compiled, report = build(tmp_path, "frame_end", FRAME_END.replace("K", "23"))
    assert Kind.CPU_SHARE in refuted_kinds(report)
    flight = fly(compiled, Inputs(params={"n": 23}))
    assert flight.refused is None and flight.overruns > 0  # the refutation is real


def test_a_task_set_that_fits_despite_the_loss_is_proven_and_flies(tmp_path: Path) -> None:
    compiled, report = build(tmp_path, "frame_end", FRAME_END.replace("K", "20"))
    assert report.status == "proven"
    flight = fly(compiled, Inputs(params={"n": 20}))
    assert judge(report, flight).sound, flight


# --------------------------------------------------------------------------- one-piece charges


def _long_instruction(statements: int) -> str:
    body = "\n".join(f"    let x{i} = a / b;" for i in range(statements))
    return f"""\
vmlet bulky version 1;
mission corot;
instr crunch(a: int[0..1000], b: int[1..10]) -> int {{
{body}
    return a / b;
}}
"""


BULKY_USER = """\
mission corot;
config bulky_user version 1;
uses bulky;
var r : int;
task t every 1 s { r = crunch(100, 3); }
"""


def test_an_instruction_dearer_than_a_frame_is_refused_on_the_ground(tmp_path: Path) -> None:
    # 3,700 divisions in one straight-line body: charged in one piece, about 192,000
    # cycles, more than the 190,000 a frame leaves the tasks: it could never start.
    compiled, report = build(tmp_path, "bulky_user", BULKY_USER,
                             {"bulky": _long_instruction(3_700)})
    assert Kind.FRAME_CHARGE in refuted_kinds(report)
    flight = fly(compiled, Inputs())
    assert flight.refused is not None and "frame-charge" in flight.refused


def test_an_instruction_that_fits_a_frame_is_proven_and_flies(tmp_path: Path) -> None:
    compiled, report = build(tmp_path, "bulky_user", BULKY_USER,
                             {"bulky": _long_instruction(500)})
    assert report.status == "proven"
    assert judge(report, fly(compiled, Inputs())).sound


# --------------------------------------------------------------------------- on apply, on load

ON_APPLY = """\
mission corot;
config burst version 1;
uses photometry;
param m : int[0..200] = M;
var acc : int[0..268431360];
task steady every 100 ms {
    for k in 0 .. 8 { acc = window_sum(k, 64, 64); }
}
on apply {
    for k in 0 .. m { acc = window_sum(k, 64, 64); }
}
"""


def test_on_apply_is_charged_where_it_runs(tmp_path: Path) -> None:
    # The steady task needs 8 of 11 calls a frame; an on apply of 100 calls runs first and
    # starves its first jobs. A utilisation test (tasks alone) proved it.
    compiled, report = build(tmp_path, "burst", ON_APPLY.replace("M;", "100;"))
    assert Kind.CPU_SHARE in refuted_kinds(report)
    flight = fly(compiled, Inputs(params={"m": 100}))
    assert flight.overruns > 0


def test_a_short_on_apply_is_proven_and_flies(tmp_path: Path) -> None:
    compiled, report = build(tmp_path, "burst", ON_APPLY.replace("param m : int[0..200]",
                                                                 "param m : int[0..2]")
                             .replace("M;", "2;"))
    assert report.status == "proven"
    assert judge(report, fly(compiled, Inputs(params={"m": 2}))).sound


ON_LOAD = """\
vmlet slow version 1;
mission corot;
expose flux;
instr one(a: int) -> int { return a; }
on load {
    for k in 0 .. N { let w = window_sum(k, 64, 64); }
}
"""


def test_on_load_is_proven_within_the_boards_budget(tmp_path: Path) -> None:
    limit = Limits.of(Compiler().mission("corot")).on_load_cycles
    text = ON_LOAD.replace("expose flux;", "expose flux, window_sum;")
    compiled, report = build(tmp_path, "slow", text.replace("N", "70"))
    assert Kind.ON_LOAD in refuted_kinds(report)
    vm = VVM(compiled.mission, _null_host(compiled))
    with pytest.raises(LoadError) as exc:
        vm.load_vmlet(compiled.image)
    assert exc.value.code == "on-load-budget" and f"{limit}" in exc.value.message
    compiled, report = build(tmp_path, "slow", text.replace("N", "50"))
    assert report.status == "proven"
    VVM(compiled.mission, _null_host(compiled)).load_vmlet(compiled.image)


def _null_host(compiled: Compiled) -> TrialHost:
    return TrialHost(compiled.mission, {})


# --------------------------------------------------------------------------- memory, depth

BIG_TABLE = """\
mission corot;
config big version 1;
param i : int[0..N1] = 0;
table bytes[N] : int[0..255];
var last : int[0..255];
task t every 1 s { last = bytes[i]; }
"""


@pytest.mark.parametrize(("entries", "fits"), [(140_000, True), (600_000, False)])
def test_data_memory_is_counted_alike_on_both_sides(tmp_path: Path, entries: int,
                                                    fits: bool) -> None:
    text = BIG_TABLE.replace("N1", str(entries - 1)).replace("[N]", f"[{entries}]")
    compiled, report = build(tmp_path, "big", text)
    assert (Kind.DATA_MEMORY not in refuted_kinds(report)) == fits
    flight = fly(compiled, Inputs(params={"i": entries - 1}, tables={"bytes": [255]}))
    assert (flight.refused is None) == fits, flight.refused
    if fits:
        assert judge(report, flight).sound


def _chain(depth: int) -> str:
    fns = [f"fn f{k}(v: int[0..100]) -> int {{ return f{k + 1}(v); }}" for k in range(depth)]
    fns.append(f"fn f{depth}(v: int[0..100]) -> int {{ return med3(v, v, v); }}")
    return """\
mission corot;
config deep version 1;
uses photometry;
var r : int;
""" + "\n".join(reversed(fns)) + "\ntask t every 1 s { r = f0(7); }\n"


@pytest.mark.parametrize(("depth", "fits"), [(14, True), (15, False)])
def test_call_depth_counts_vmlet_instructions_on_both_sides(tmp_path: Path, depth: int,
                                                            fits: bool) -> None:
    # task -> f0 -> ... -> f{depth} -> med3: depth + 2 nested frames; CoRoT allows 16.
    compiled, report = build(tmp_path, "deep", _chain(depth))
    assert (Kind.CALL_DEPTH not in refuted_kinds(report)) == fits
    flight = fly(compiled, Inputs())
    assert (flight.refused is None) == fits, flight.refused


# --------------------------------------------------------------------------- call frames


def test_a_call_is_charged_its_callees_frame_on_both_sides(tmp_path: Path) -> None:
    """``big`` runs what ``small`` runs but has 80 more locals: the proof charges the
    frame as the VVM does (frame_slot cycles per local), exactly, and the flight agrees."""
    compiled, report = build(tmp_path, "frames", frames_program(80))
    assert report.status == "proven"
    flight = fly(compiled, Inputs())
    assert judge(report, flight).sound
    for task in ("t_small", "t_big"):
        assert flight.observed[task] == task_bound(report, task)
    functions = {f.name: f for f in compiled.image.functions}
    extra = functions["big"].n_locals - functions["small"].n_locals
    assert extra >= 80
    assert task_bound(report, "t_big") - task_bound(report, "t_small") == \
        compiled.mission.frame_slot_cycles * extra


# --------------------------------------------------------------------------- a native's script


def test_natives_that_change_their_answer_part_way(tmp_path: Path) -> None:
    text = """\
mission corot;
config flip version 1;
uses photometry;
param n : int[0..2000] = 2000;
var hits : int[0..1000000];
task scan every 1 s {
    for s in 0 .. n {
        if flux(s) > 1000 { flag(s, 1); hits = min(hits + 1, 1000000); }
    }
}
"""
    compiled, report = build(tmp_path, "flip", text)
    assert report.status == "proven"
    for script in (NativeScript(0, 700, 5000), NativeScript(5000, 1300, 0)):
        flight = fly(compiled, Inputs(params={"n": 2000}, natives={"flux": script}))
        assert judge(report, flight).sound, flight


# --------------------------------------------------------------------------- tight bounds

TIGHT_SHAPES = {
    # triangular: the inner loop runs 0, 1, 2 ... times (the product said 29,690,768)
    "tri": ("""\
mission corot;
config tri version 1;
uses photometry;
param n : int[0..300] = 300;
var acc : int[0..268431360];
task tri every 10 s {
    for i in 0 .. n {
        for j in 0 .. i { acc = window_sum(j, 8, 8); }
    }
}
""", {"n": 300}, 14_899_836),
    # a guard on the counter: dear for the first n_bright stars only (said 25,194,036)
    "guard": ("""\
mission corot;
config guard version 1;
uses photometry;
param n : int[0..6000] = 6000;
param n_bright : int[0..200] = 200;
var acc : int[0..268431360];
task g every 10 s {
    for s in 0 .. n {
        if s < n_bright { acc = window_sum(s, 32, 32); } else { acc = flux(s); }
    }
}
""", {"n": 6000, "n_bright": 200}, 1_414_036),
    # a flag the first iteration clears: dear once, beyond 16 trips (said 99,342,044)
    "flag": ("""\
mission corot;
config flag version 1;
uses photometry;
param n : int[0..6000] = 6000;
var acc : int[0..268431360];
task f every 10 s {
    let first : int[0..1] = 1;
    for s in 0 .. n {
        if first == 1 { acc = window_sum(s, 64, 64); first = 0; }
        acc = flux(s);
    }
}
""", {"n": 6000}, 598_504),
}


@pytest.mark.parametrize("name", sorted(TIGHT_SHAPES))
def test_shapes_the_vvm_runs_at_a_fraction_of_the_product_are_bound_exactly(
        tmp_path: Path, name: str) -> None:
    text, params, cycles = TIGHT_SHAPES[name]
    compiled, report = build(tmp_path, name, text)
    assert report.status == "proven"
    worst = report.budgets.tasks[0]
    assert worst.exact and worst.bound == cycles
    flight = fly(compiled, Inputs(params=params))
    assert judge(report, flight).sound and flight.observed[worst.name] == cycles


# --------------------------------------------------------------------------- hidden by on load

HIDING_VMLET = """\
vmlet shy version 1;
mission corot;
instr id(a: int) -> int { return a; }
expose flux, noise;
on load {
    if env(ccd) >= 0 { hide flux; }
}
"""

USES_HIDDEN = """\
mission corot;
config needy version 1;
uses shy;
var v : int[0..16777215] = 0;
task t every 1 s { v = {native}(3); }
"""


@pytest.mark.parametrize("native, loads", [("flux", False), ("noise", True)])
def test_a_native_hidden_by_on_load_is_refuted_as_the_board_refuses_it(
        tmp_path: Path, native: str, loads: bool) -> None:
    """A VMlet's ``on load`` hides ``flux`` in every environment: a configuration calling
    it was proven, then refused by the board (hidden-native). The ground now loads the
    image as the board does, VMlets' ``on load`` included."""
    compiled, report = build(tmp_path, "needy", USES_HIDDEN.replace("{native}", native),
                             {"shy": HIDING_VMLET})
    assert (report.status == "proven") == loads
    assert (Kind.LOAD in refuted_kinds(report)) == (not loads)
    flight = fly(compiled, Inputs())
    assert (flight.refused is None) == loads, flight.refused
    if not loads:
        load = next(o for o in report.refuted if o.kind is Kind.LOAD)
        assert load.counterexample is not None and "hidden-native" in load.counterexample.detail


# --------------------------------------------------------------------------- interleaved jobs

SHARED_STATE = """\
mission corot;
config shared version 1;
uses photometry;
table small[1] : int[0..9];
var slot : int[0..100];
var acc : int[0..268431360];
var out : int[0..9];
task long every 1 s {
    slot = 0;
    for k in 0 .. 20 { acc = window_sum(k, 64, 64); }
    USE
}
task tick every 100 ms { slot = 100; }
"""


def test_state_another_task_writes_may_change_while_a_job_is_suspended(
        tmp_path: Path) -> None:
    # `long` needs 329,000 cycles: it is suspended at the end of its first frame, and
    # `tick` (earlier deadline) runs first in the next one and sets `slot` to 100. So
    # `slot` is not the 0 `long` stored: found by the soundness campaign (seed 10293),
    # where the verifier proved this index and the VVM trapped on it.
    compiled, report = build(tmp_path, "shared", SHARED_STATE.replace(
        "USE", "out = small[slot];"))
    assert Kind.INDEX in refuted_kinds(report)
    flight = fly(compiled, Inputs())
    assert flight.trapped  # the refutation is real


def test_costs_that_depend_on_shared_state_are_bound_for_any_value(tmp_path: Path) -> None:
    compiled, report = build(tmp_path, "shared", SHARED_STATE.replace(
        "USE", "if slot == 100 { acc = window_sum(0, 64, 64); }"))
    assert report.status == "proven"
    flight = fly(compiled, Inputs())
    verdict = judge(report, flight)
    assert verdict.sound, (flight, verdict)  # the bound said 329,265; the VVM took 345,717
    assert flight.observed["long"] == task_bound(report, "long")
