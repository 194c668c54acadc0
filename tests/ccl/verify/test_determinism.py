"""``ccl verify`` reports the same counterexamples and worst-case inputs for a program
whatever the process proved before it (a fresh solver context per program)."""

from __future__ import annotations

import gc
from pathlib import Path

from ccl.driver import Compiler
from ccl.verify import verify_program

CONFIGS = Path(__file__).resolve().parents[3] / "missions" / "corot" / "configs"


def _worst_cases(compiler: Compiler, name: str) -> list[object]:
    report = verify_program(compiler.compile(CONFIGS / name)).to_json()
    return [w.get("worst_case") for w in report["budgets"]["worst_cases"]]


def test_a_programs_report_does_not_depend_on_what_was_proved_before() -> None:
    alone = _worst_cases(Compiler(), "exo_e1_v6.ccl")
    compiler = Compiler()
    for other in ("bad_budget.ccl", "bad_index.ccl", "bad_rule.ccl", "exo_e1.ccl"):
        verify_program(compiler.compile(CONFIGS / other))
    gc.collect()  # freed terms: Z3 reuses their ids
    after = _worst_cases(compiler, "exo_e1_v6.ccl")
    assert any(alone) and after == alone
