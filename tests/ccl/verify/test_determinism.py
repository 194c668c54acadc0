"""``ccl verify`` reports the same thing for a program whatever the process did before it:
the same verdicts, bounds and counterexamples, and the same worst-case inputs (witnesses),
in any order, serial or on several processes.

Two pieces of process state used to leak into a report: Z3's default context (a fresh one
per program) and the moment Python's cyclic collector ran. Z3 reuses the ids of freed
terms, and the ids order its search; terms held by a reference cycle (the cost maximizer's
recursive closure held its solver) were freed whenever the collector ran, which depended
on everything the process had allocated before. Campaign seed 4, verified after seeds 5, 10
and 15 in one process, was reported (and flown) at another witness than alone. So no Z3
object may be left to the collector: reference counting frees them, at the same points of
every run.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ccl.driver import Compiled, Compiler
from ccl.soundness.campaign import TIMEOUT_MS, generate
from ccl.verify import VerifyReport, verify_program

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "missions" / "corot" / "configs"
#: Campaign programs whose witnesses depended on what ran before: 4 after 5, 10 and 15
#: (in this order, verified one after another, as ``--jobs 1`` does) was another than alone.
SEEDS = (5, 10, 15, 4, 2)


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


def test_a_verification_leaves_no_solver_term_to_the_cyclic_collector(tmp_path: Path) -> None:
    paths = [*_campaign_programs(tmp_path), CONFIGS / "exo_e1.ccl"]
    programs = {str(p): Compiler().compile(p) for p in paths}
    gc.collect()
    try:
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds, to look at it
        for path, compiled in programs.items():
            verify_program(compiled, timeout_ms=TIMEOUT_MS)
            gc.collect()
            held = sorted({type(o).__qualname__ for o in gc.garbage
                           if type(o).__module__.startswith("z3")})
            assert held == [], (path, held)
            gc.garbage.clear()
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _campaign_programs(folder: Path) -> list[Path]:
    """The configurations of ``SEEDS``, each in a folder of its own (beside its VMlet)."""
    return [generate(seed).write(folder / f"seed{seed}") for seed in SEEDS]


def _everything(report: VerifyReport) -> str:
    """The report as ``ccl verify --json`` gives it, without its times, and every
    counterexample's and witness's replay (the inputs the VVM is run from), as text."""
    data = report.to_json()
    del data["seconds"]
    replays = [repr(o.counterexample.replay) for o in report.obligations
               if o.counterexample is not None]
    replays += [repr(w.witness.replay) for w in report.budgets.worst_cases
                if w.witness is not None]
    return json.dumps(data, sort_keys=True) + "\n" + "\n".join(replays)


def test_reports_are_byte_identical_in_any_order_in_one_process(tmp_path: Path) -> None:
    compiler = Compiler()
    programs: dict[str, Compiled] = {
        p.parent.name: compiler.compile(p) for p in _campaign_programs(tmp_path)}
    for name in ("exo_e1_v6.ccl", "bad_rule.ccl"):
        programs[name] = compiler.compile(CONFIGS / name)
    names = list(programs)

    def verify_in(order: list[str], collect_at: int) -> dict[str, str]:
        out = {}
        for k, name in enumerate(order):
            if k == collect_at:  # the collector's counters as a program starts differ too
                gc.collect()
            out[name] = _everything(verify_program(programs[name], timeout_ms=TIMEOUT_MS))
        return out

    first = verify_in(names, -1)
    assert {json.loads(r.split("\n")[0])["status"] for r in first.values()} == {
        "proven", "refuted"}
    assert any("worst_case" in r for r in first.values())
    for order, collect_at in ((names[::-1], 2), (names[2:] + names[:2], 1)):
        # The same compiled programs again (the VVMs that replay witnesses are kept
        # between verifications of one program), in other orders.
        again = verify_in(order, collect_at)
        assert again == first, [n for n in names if again[n] != first[n]]


def _timeless(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _timeless(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_timeless(v) for v in data]
    return data


def test_verify_gives_the_same_json_on_one_process_and_on_two(tmp_path: Path) -> None:
    files = [*_campaign_programs(tmp_path), CONFIGS / "exo_e1_v6.ccl", CONFIGS / "bad_rule.ccl"]
    env = {**os.environ, "CCL_PROOF_CACHE": "off"}  # prove every time, never reuse a proof
    runs = {jobs: subprocess.run([sys.executable, "-m", "cli.ccl", "verify", *map(str, files),
                                  "--json", "--timeout", "0.3", "--jobs", jobs],
                                 capture_output=True, text=True, cwd=ROOT, env=env,
                                 timeout=600)
            for jobs in ("1", "2")}
    one, two = runs["1"], runs["2"]
    assert one.returncode == two.returncode == 1, (one.stderr, two.stderr)  # some refuted
    serial = json.loads(one.stdout)
    assert [f["file"] for f in serial["files"]] == [str(f) for f in files]
    assert any(w.get("worst_case") for f in serial["files"]
               for w in f["budgets"]["worst_cases"])
    assert json.dumps(_timeless(json.loads(two.stdout))) == json.dumps(_timeless(serial))
