"""Cross-check: what ``ccl verify`` claims, run on the VVM.

The verifier is trusted because the VVM confirms it, on the corpus (``cases/``), the
contract's configurations (``missions/corot/configs/``), the VMlets they run on, and a few
programs of this file's own that exercise entry points and loop shapes the others do not:

* every refuted *safety* obligation whose counterexample replays exactly (values at the
  start of the run) traps on the VVM, with the trap of its kind (``bad_index`` with
  ``n = 100`` traps with an index fault);
* every entry point (task, ``on apply``, ``on load``, VMlet instruction, function nobody
  calls) run with the inputs of its worst case (parameters, state, tables, native results,
  arguments) costs at most the proven bound, and at least 95 % of it when the verifier says
  the worst case is exact: the bound is safe and tight. A proven program never traps; a
  refuted one may trap on the way (then with a trap one of its refuted obligations names);
* what the verifier refutes structurally (code, data, stack, call depth), the VVM refuses
  to load, for the same reason.

Functions and instructions are run on their own, so their costs are compared as the
verifier counts them, at a call site: a function's bound includes the ``CALL`` its caller
pays; an instruction's, its dispatch (``EXT``) and not its return (an instruction's body
is inlined at its opcode, so its ``RET`` costs nothing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from test_corpus import CASE_FILES, CASES, compile_case, verified
from verify_replay import TRAP_OF, run, unit_of

from ccl.diagnostics import CclError
from ccl.driver import Compiled, Compiler
from ccl.verify import Kind, Replay, VerifyReport, WorstCase, verify_program
from ccl.verify.replay import TrialHost, observe
from onboard.vm.faults import TrapCode
from onboard.vm.loader import LoadError
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "missions" / "corot" / "configs"
PHOTOMETRY = ROOT / "missions" / "corot" / "vmlets" / "photometry.ccl"
TIGHT = 0.95  # an exact worst case: the VVM reaches at least this share of the bound

#: Programs of this file's own (file name: text), for shapes the corpus does not have.
EXTRA = {
    # Functions nobody calls are entry points of their own, with arguments; one refuted
    # with an argument in its counterexample.
    "xc_functions.ccl": """\
mission corot;
config xc_functions version 1;
uses photometry;
table gains[8] : int[0..255] = [1, 2, 3, 4, 5, 6, 7, 8];
fn pick(k: int[0..20], v: int[0..65535]) -> int[0..1000000] {
    if k > 7 { return 0; }
    if v > 1000 { return gains[k] * 100; }
    return min(v * gains[k], 1000000);
}
fn unchecked(k: int[0..20]) -> int { return gains[k]; }
""",
    # A short loop whose cost grows with its counter (a window of k x 4k pixels).
    "xc_growing.ccl": """\
mission corot;
config xc_growing version 1;
uses photometry;
param n : int[0..12] = 4;
param star : int[0..5999] = 0;
var best : int[0..268431360];
task grow every 10 s {
    for k in 1 .. n + 1 {
        best = max(best, window_sum(star, k * 4, k));
    }
}
""",
    # A long loop whose first iteration is dear and the others cheap.
    "xc_first.ccl": """\
mission corot;
config xc_first version 1;
uses photometry;
param n : int[0..3000] = 100;
var base : int[0..16777215];
task sweep every 30 s {
    for s in 0 .. n {
        if s == 0 {
            base = window_sum(s, 32, 32) / 64;
        } else {
            if flux(s) > base { flag(s, 3); }
        }
    }
}
""",
    # Two calls of one native that must return alike (the VVM replays one value for all).
    "xc_natives.ccl": """\
mission corot;
config xc_natives version 1;
uses photometry;
param n : int[0..1000] = 10;
task pair every 10 s {
    for s in 0 .. n {
        let a = noise(s);
        let b = noise(s + 1);
        if a <= 10 { flag(s, 1); }
        if b >= 5 { flag(s, 2); }
    }
}
""",
    # A loop that returns from a function, and a branch on a table inside a loop.
    "xc_tables.ccl": """\
mission corot;
config xc_tables version 1;
uses photometry;
param n : int[0..64] = 10;
param m : int[0..500] = 100;
table level[64] : int[0..100];
table mask[500] : int[0..255];
var found : int[0..64];
fn find(limit: int[0..64]) -> int[0..64] {
    for i in 0 .. limit {
        if level[i] > 90 { return i; }
    }
    return limit;
}
task look every 5 s {
    found = find(n);
    for s in 0 .. m {
        if mask[s] > 127 { flag(s, mask[s]); }
    }
}
""",
}

#: The VVM's load-time refusal for each structural obligation the verifier refutes.
LOAD_REFUSAL = {Kind.CODE_MEMORY: "code-too-large", Kind.DATA_MEMORY: "data-too-large",
                Kind.STACK: "stack-overflow", Kind.CALL_DEPTH: "call-depth",
                Kind.FRAME_CHARGE: "frame-charge"}


# --------------------------------------------------------------------------- the programs


# The extra programs are files (the compiler reads files), written once per session.
_EXTRA_DIR = tempfile.TemporaryDirectory(prefix="ccl-crosscheck-")


@cache
def _extra_folder() -> Path:
    folder = Path(_EXTRA_DIR.name)
    for name, text in EXTRA.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _compiled_config(path: Path) -> Callable[[], tuple[Compiled, VerifyReport]]:
    def load() -> tuple[Compiled, VerifyReport]:
        compiled = Compiler().compile(path)
        return compiled, verify_program(compiled)
    return load


def _compiled_extra(name: str) -> Callable[[], tuple[Compiled, VerifyReport]]:
    def load() -> tuple[Compiled, VerifyReport]:
        compiled = Compiler().compile(_extra_folder() / name)
        return compiled, verify_program(compiled)
    return load


def _compiled_case(path: Path) -> Callable[[], tuple[Compiled, VerifyReport]]:
    return lambda: verified(path)  # the corpus's cache: test_corpus verifies them once


def _compiled_vmlet(path: Path) -> Callable[[], tuple[Compiled, VerifyReport]]:
    def load() -> tuple[Compiled, VerifyReport]:
        compiled = compile_case(path)
        return compiled, verify_program(compiled)
    return load


def _sources() -> dict[str, Callable[[], tuple[Compiled, VerifyReport]]]:
    out: dict[str, Callable[[], tuple[Compiled, VerifyReport]]] = {}
    for path in CASE_FILES:
        out[f"case:{path.stem}"] = _compiled_case(path)
    for path in sorted(CONFIGS.glob("*.ccl")):
        try:
            Compiler().check(path)
        except CclError:
            continue  # refused by the front end (bad_syntax.ccl): nothing to verify
        out[f"corot:{path.stem}"] = _compiled_config(path)
    out["vmlet:photometry"] = _compiled_vmlet(PHOTOMETRY)
    out["vmlet:testkit"] = _compiled_vmlet(CASES / "vmlets" / "testkit.ccl")
    for name in EXTRA:
        out[f"extra:{Path(name).stem}"] = _compiled_extra(name)
    return out


SOURCES = _sources()


@cache
def program(name: str) -> tuple[Compiled, VerifyReport]:
    """Program ``name`` compiled and verified (once per session)."""
    return SOURCES[name]()


def _loads(report: VerifyReport) -> bool:
    """Whether the VVM accepts the program (no structural refutation)."""
    return not any(o.kind in LOAD_REFUSAL for o in report.refuted)


# --------------------------------------------------------------------------- running


def _entry_kind(report: VerifyReport, where: str) -> tuple[str, str]:
    """(kind, name) of the entry point an obligation's procedure is checked in."""
    name = unit_of(where)
    if name.startswith("rule "):
        return "rule", name
    by_name = {w.name: w.kind for w in report.budgets.worst_cases}
    return by_name[name], name


# --------------------------------------------------------------------------- parameters


def _safety_cases() -> list[tuple[str, int]]:
    out = []
    for name in SOURCES:
        report = program(name)[1]
        if not _loads(report):
            continue
        for k, o in enumerate(report.refuted):
            cex = o.counterexample
            if o.kind.is_safety and cex is not None and cex.replay.exact:
                out.append((name, k))
    return out


def _safety_id(case: tuple[str, int]) -> str:
    name, k = case
    o = program(name)[1].refuted[k]
    line = f"{o.span.line}:{o.span.col}" if o.span is not None else "-"
    return f"{name}-{o.where}-{o.kind.value}@{line}"


def _worst_cases() -> list[tuple[str, str]]:
    out = []
    for name in SOURCES:
        report = program(name)[1]
        if _loads(report):
            out += [(name, w.name) for w in report.budgets.worst_cases]
    return out


def _refused() -> list[str]:
    return [name for name in SOURCES if not _loads(program(name)[1])]


SAFETY = _safety_cases()
WORST = _worst_cases()
REFUSED = _refused()


# --------------------------------------------------------------------------- tests

#: Proven corpus cases whose bound is an upper bound the VVM does not reach (and say so): a
#: flag set once is assumed, in an arbitrary iteration, to be either value.
UPPER_BOUNDS = {("proven_bool_locals", "count_loud")}


def test_the_cross_check_covers_what_it_must() -> None:
    """bad_index's refutation, exo_e1's filter and every proven corpus case are checked."""
    assert any(name == "corot:bad_index" for name, _ in SAFETY)
    assert ("corot:exo_e1", "cosmic_filter") in WORST
    for path in CASE_FILES:
        report = program(f"case:{path.stem}")[1]
        if report.status == "proven":
            for w in report.budgets.worst_cases:
                # exact: the VVM run from the witness costs the bound
                assert w.exact or (path.stem, w.name) in UPPER_BOUNDS, (path.stem, w.name)
                assert (f"case:{path.stem}", w.name) in WORST
    kinds = {program(name)[1].refuted[k].kind for name, k in SAFETY}
    assert kinds == {Kind.OVERFLOW, Kind.DIV_ZERO, Kind.INDEX, Kind.RANGE, Kind.ARGUMENT,
                     Kind.RESULT, Kind.NATIVE_ARG}
    entry_kinds = {w.kind for name, entry in WORST
                   for w in program(name)[1].budgets.worst_cases if w.name == entry}
    assert entry_kinds == {"task", "on apply", "on load", "instr", "fn"}
    assert set(REFUSED) == {f"case:{p.stem}" for p in CASE_FILES
                            if p.stem in ("refuted_call_depth", "refuted_code_memory",
                                          "refuted_data_memory", "refuted_stack")}


def test_bad_index_traps_at_n_100() -> None:
    """The contract: `bad_index` is refuted with n = 100, and that run faults on an index."""
    compiled, report = program("corot:bad_index")
    (o,) = [o for o in report.refuted if o.kind is Kind.INDEX]
    assert o.counterexample is not None and o.counterexample.value("n") == 100
    assert o.counterexample.replay.exact
    seen = observe(compiled, "task", "mark", o.counterexample.replay)
    assert seen.trap is TrapCode.INDEX


@pytest.mark.parametrize("case", SAFETY, ids=[_safety_id(c) for c in SAFETY])
def test_a_refuted_safety_obligation_traps_on_the_vvm(case: tuple[str, int]) -> None:
    name, k = case
    compiled, report = program(name)
    o = report.refuted[k]
    assert o.counterexample is not None
    replay = o.counterexample.replay
    kind, entry = _entry_kind(report, o.where)
    seen = observe(compiled, kind, entry, replay)
    assert seen.trap is TRAP_OF[o.kind], (o.where, o.message, o.counterexample.text())


@pytest.mark.parametrize("case", WORST, ids=[f"{n}-{e}" for n, e in WORST])
def test_the_worst_case_bound_is_safe_and_tight_on_the_vvm(case: tuple[str, str]) -> None:
    name, entry = case
    compiled, report = program(name)
    w: WorstCase = report.worst_case(entry)
    replay = w.witness.replay if w.witness is not None else Replay()
    seen = observe(compiled, w.kind, w.name, replay)
    assert seen.cycles <= w.bound, f"{w.kind} {w.name}: the VVM used {seen.cycles:,} " \
        f"cycles, more than the proven bound {w.bound:,}"
    if seen.trap is not None:
        # Only a refuted program may trap, and only the way one of its refutations says.
        traps = {TRAP_OF[o.kind] for o in report.refuted if o.kind.is_safety}
        assert report.status == "refuted" and seen.trap in traps, (w.name, seen.trap)
        return
    reached = w.bound if w.exact else w.cycles
    assert seen.cycles >= TIGHT * reached, f"{w.kind} {w.name}: the VVM used " \
        f"{seen.cycles:,} cycles with the worst case's inputs, under {TIGHT:.0%} of " \
        f"{reached:,}"


def test_exo_e1_filter_takes_its_worst_path() -> None:
    """The contract's filter at its worst: 6000 stars, each one flagged as a cosmic ray (the
    natives `flux` and `noise` decide it), exactly the proven bound."""
    compiled, report = program("corot:exo_e1")
    w = report.worst_case("cosmic_filter")
    assert w.exact and w.witness is not None
    replay = w.witness.replay
    assert replay.global_values()["n_stars"] == 6000
    host = TrialHost.of(compiled.mission, replay)
    vm = VVM(compiled.mission, host)
    for v in compiled.vmlets:
        vm.load_vmlet(v.image)
    vm.activate(vm.prepare(compiled.image), run_on_apply=False)
    for name, value in replay.globals:
        vm.set_global(name, value)
    out = vm.call("cosmic_filter")
    assert out.fault is None
    assert host.calls == {"flux": 6000, "noise": 6000, "flag": 6000}
    assert out.cycles == w.bound


@pytest.mark.parametrize("name", REFUSED)
def test_the_vvm_refuses_what_the_verifier_refutes_structurally(name: str) -> None:
    compiled, report = program(name)
    expected = {LOAD_REFUSAL[o.kind] for o in report.refuted if o.kind in LOAD_REFUSAL}
    with pytest.raises(LoadError) as refused:
        run(compiled, compiled.image.functions[0].name, Replay())
    assert refused.value.code in expected
