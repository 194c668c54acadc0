"""The ``ccl campaign`` command: the soundness campaign (``ccl.soundness.campaign``).

``ccl campaign [--programs N] [--seed S] [--timeout-ms MS] [--failures DIR] [--jobs N |
--ray ADDRESS] [--json]``: programs ``S`` .. ``S + N - 1`` are each generated from their
seed, compiled, verified and, if proven, flown on the real scheduler and judged against
their proof. The programs run on local processes (``--jobs``, default the cores) or on a
Ray cluster (``--ray``); the report is the same however they ran (it is made from the
outcomes in seed order; only the times differ). Every failure is written to
``DIR/seed-N`` (``ccl verify DIR/seed-N/camp.ccl`` reproduces its verdict). Exit 0 when no
proven program failed on board and the campaign handled every program, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import click

from ccl.soundness.campaign import (
    COUNTS,
    FEATURES,
    TIMEOUT_MS,
    Outcome,
    counts,
    quantile,
    run_one,
    tightness,
    write_failure,
)
from cli.console import EXIT_OK, EXIT_REJECTED, note, out_console, progress
from cli.executor import Executor, executor_options
from cli.options import output_options


def outcome_json(o: Outcome) -> dict[str, Any]:
    """One program's outcome, without its times (the same on any machine, in any order)."""
    return {"seed": o.seed, "verdict": o.verdict, "features": sorted(o.features),
            "flights": o.flights, "failed": o.failed, "ratios": list(o.ratios),
            "problems": list(o.problems)}


@click.command("campaign")
@click.option("--programs", type=click.IntRange(min=1), default=100, show_default=True,
              help="How many programs to generate and try.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="The seed of the first program (program k has seed SEED + k).")
@click.option("--timeout-ms", type=click.IntRange(min=1), default=TIMEOUT_MS,
              show_default=True, help="Solver time limit per query, in milliseconds.")
@click.option("--failures", type=click.Path(file_okay=False),
              default="campaign-failures", show_default=True,
              help="Folder the failed programs are written to (only if one fails).")
@executor_options
@output_options
def campaign(programs: int, seed: int, timeout_ms: int, failures: str, executor: Executor,
             as_json: bool) -> None:
    """Try the verifier's promise on random CoRoT programs: verify each, fly the proven
    ones at their worst cases and adversarial inputs, and judge every flight."""
    seeds = range(seed, seed + programs)
    where = executor.describe(programs)
    note(f"campaign: {programs} programs from seed {seed} on {where}")
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    found: list[dict[str, Any]] = []
    results = executor.map(partial(run_one, timeout_ms=timeout_ms), seeds)
    with progress("campaign", programs, "programs") as ticker:
        for o in results:
            outcomes.append(o)
            ticker.advance()
            if o.failed:
                path = write_failure(Path(failures), o)
                found.append({"seed": o.seed, "verdict": o.verdict, "file": str(path),
                              "problems": list(o.problems)[:5]})
    seconds = time.perf_counter() - start
    tally = counts(outcomes)
    ratios = tightness(outcomes)
    ok = not found
    if as_json:
        click.echo(json.dumps({
            "ok": ok, **tally, "tightness_median": round(quantile(ratios, 0.5), 4),
            "tightness_p90": round(quantile(ratios, 0.9), 4), "seconds": round(seconds, 2),
            "ran_on": where, "failures": found, "outcomes": [outcome_json(o) for o in outcomes],
        }, indent=2))
        sys.exit(EXIT_OK if ok else EXIT_REJECTED)
    out = out_console(markup=False)
    out.print(f"campaign: {programs} programs (seeds {seed} .. {seed + programs - 1}), "
              f"{seconds:.1f} s on {where}")
    out.print(f"  verdicts: {tally['proven']} proven, {tally['refuted']} refuted, "
              f"{tally['unknown']} unknown")
    out.print("  " + ", ".join(f"{k.replace('_', ' ')}: {tally[k]}" for k in COUNTS[4:]))
    out.print(f"  tightness (bound / most cycles seen, {len(ratios)} tasks): median "
              f"{quantile(ratios, 0.5):.3f}, p90 {quantile(ratios, 0.9):.3f}")
    reached = {f: sum(f in o.features for o in outcomes) for f in FEATURES}
    out.print("  features: " + ", ".join(f"{f} {n}" for f, n in reached.items()))
    for f in found:
        out.print(f"  FAILED seed {f['seed']} ({f['verdict']}): {f['file']}: "
                  + "; ".join(f["problems"])[:500])
    out.print(f"  result: {'sound' if ok else 'FAILURES'}")
    sys.exit(EXIT_OK if ok else EXIT_REJECTED)
