"""The soundness campaign's deterministic slice (``ccl.soundness.campaign``;
``benchmarks/soundness.py`` runs 10,000 programs).

A fixed range of seeds: every program is generated, verified and, if proven, flown on the
real scheduler at its witnesses and at adversarial inputs. None may be proven and then
refused by the board, trap, overrun or take more cycles than its bound; every verdict and
every feature the generator aims at must actually be reached (or the slice proves little);
and the oracle must be able to fail: a bound one cycle short, and a task set the verifier
refutes for its CPU share, flown as if proven, are caught.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ccl.driver import Compiled, Compiler
from ccl.soundness.campaign import (
    FEATURES,
    TIMEOUT_MS,
    Outcome,
    _Writer,
    examine,
    flight_inputs,
    generate,
    run_one,
)
from ccl.soundness.trial import Rig, fly
from ccl.verify import Kind, VerifyReport, verify_program

#: The slice: about a minute on one core.
SEEDS = range(1, 181)


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return [run_one(seed) for seed in SEEDS]


def _verified(seed: int, folder: Path) -> tuple[Compiled, VerifyReport, list[VerifyReport]]:
    compiled = Compiler().compile(generate(seed).write(folder / f"s{seed}"))
    return (compiled, verify_program(compiled, timeout_ms=TIMEOUT_MS),
            [verify_program(v, timeout_ms=TIMEOUT_MS) for v in compiled.vmlets])


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def test_no_proven_program_fails_on_board(outcomes: list[Outcome]) -> None:
    failed = [(o.seed, o.verdict, o.problems) for o in outcomes if o.failed]
    assert not failed, failed
    proven = [o for o in outcomes if o.verdict == "proven"]
    assert sum(o.refused_by_board for o in proven) == 0
    assert sum(o.trapped for o in proven) == 0
    assert sum(o.overran for o in proven) == 0
    assert sum(o.bound_below_observed for o in proven) == 0
    # and every proven program was flown, more than once (witnesses, adversarial inputs)
    assert all(o.flights >= 2 for o in proven)
    ratios = [r for o in proven for r in o.ratios]
    assert ratios and min(ratios) >= 1


def test_the_slice_reaches_every_verdict_and_feature(outcomes: list[Outcome]) -> None:
    verdicts = Counter(o.verdict for o in outcomes)
    assert verdicts["proven"] > 0 and verdicts["refuted"] > 0 and verdicts["unknown"] > 0, \
        verdicts
    flown = Counter(f for o in outcomes if o.verdict == "proven" for f in o.features)
    assert all(flown[f] > 0 for f in FEATURES), flown


def test_programs_are_the_same_for_the_same_seed() -> None:
    assert generate(7) == generate(7)
    assert generate(7).config != generate(8).config


def test_a_bound_one_cycle_short_is_caught(outcomes: list[Outcome], folder: Path) -> None:
    # A proven program whose bound the flights reach exactly (bound / observed = 1).
    seed = next(o.seed for o in outcomes if o.verdict == "proven" and 1.0 in o.ratios)
    compiled, report, vmlet_reports = _verified(seed, folder)
    assert examine(compiled, report, vmlet_reports).sound
    short = tuple(replace(w, bound=w.bound - 1) if w.kind == "task" else w
                  for w in report.budgets.worst_cases)
    wrong = replace(report, budgets=replace(report.budgets, worst_cases=short))
    e = examine(compiled, wrong, vmlet_reports)
    assert e.below and not e.sound and any("above the bound" in p for p in e.problems)


def test_an_overloaded_task_set_flown_as_if_proven_overruns(outcomes: list[Outcome],
                                                            folder: Path) -> None:
    # Programs refuted for their CPU share alone: some of them, flown anyway, overrun.
    candidates = [o.seed for o in outcomes if o.verdict == "refuted"][:40]
    caught = 0
    for seed in candidates:
        compiled, report, vmlet_reports = _verified(seed, folder)
        if {o.kind for o in report.refuted} != {Kind.CPU_SHARE}:
            continue
        e = examine(compiled, report, vmlet_reports)
        if e.overran:
            assert not e.sound and any("overruns" in p for p in e.problems)
            caught += 1
            break
    assert caught == 1


def test_a_rig_flies_as_a_fresh_vvm_does(outcomes: list[Outcome], folder: Path) -> None:
    # The rig checks the patch once and loads once per environment; each of its flights
    # must be the flight a fresh VVM makes.
    seeds = [o.seed for o in outcomes if o.verdict == "proven" and o.flights >= 4][:2]
    for seed in seeds:
        compiled, report, vmlet_reports = _verified(seed, folder)
        rig = Rig(compiled)
        for _label, inputs in flight_inputs(compiled, report, vmlet_reports):
            assert rig.fly(inputs) == fly(compiled, inputs)


def test_every_kind_of_block_is_drawn_and_written() -> None:
    """Each kind ``_Writer.block`` draws has its method, and each writes lines that open
    and close as many braces (a kind without its method would only fail when drawn)."""
    kinds = _Writer._BLOCK_KINDS
    assert len(kinds) == len(set(kinds)) == len(_Writer._BLOCK_WEIGHTS)
    for seed, kind in enumerate(kinds):
        writer = _Writer(random.Random(seed))
        method = getattr(writer, f"block_{kind}")
        lines = method("    ", "i1", "j1", "n")
        assert lines and all(line.startswith("    ") for line in lines)
        text = "\n".join(lines)
        assert text.count("{") == text.count("}"), (kind, text)
