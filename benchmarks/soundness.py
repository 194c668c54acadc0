"""Benchmark: the soundness campaign (``ccl.soundness.campaign``) over many random programs.

Each program (a CoRoT configuration and the VMlet it uses, generated from its seed) is
compiled and verified; every proven one is flown on the real scheduler at the verifier's
witnesses and at adversarial inputs and judged against its proof. The programs run on
``cli.executor``: ``--workers`` local processes (default: the cores), or a Ray cluster with
``--ray ADDRESS``; the figures are the same either way (``ccl campaign`` is the command).

Prints one JSON line per figure::

    {"benchmark": "soundness", "metric": ..., "value": ..., "unit": ..., "seed": ..., ...}

``programs``, ``proven``, ``refuted``, ``unknown``; the four failure counts, which must be
0: ``proven_but_refused_by_the_board``, ``proven_but_trapped``, ``proven_but_overran``,
``bound_below_observed``; ``campaign_errors`` (programs the campaign itself could not
handle: a generated text the front end refused, a crash in any stage; also must be 0);
``tightness_median`` and ``tightness_p90`` (a task's proven bound over the most cycles it
took in any flight, over every task of every proven program); ``rate`` (programs per
second, wall clock); ``features`` (programs that reach each feature, as context).

For every failure a line with metric ``failure`` gives the seed, what failed, and the file
the program was written to (``--failures`` folder, one folder per seed: ``ccl verify`` on
its ``camp.ccl`` reproduces it). ``--programs 1 --seed S`` runs program S alone.
Exit 1 if anything failed.

Usage: ``python benchmarks/soundness.py [--programs N] [--workers N | --ray ADDRESS]
[--seed N] [--failures DIR] [--timeout-ms N]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.soundness.campaign import (  # noqa: E402
    FEATURES,
    TIMEOUT_MS,
    Outcome,
    counts,
    quantile,
    run_one,
    tightness,
    write_failure,
)
from cli.console import Failure  # noqa: E402
from cli.executor import Executor, local_cores  # noqa: E402

NAME = "soundness"


def _figure(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": NAME, "metric": metric, "value": value, "unit": unit,
                      **context}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=local_cores(),
                        help="local processes (1: in this process)")
    parser.add_argument("--ray", metavar="ADDRESS", help="run on the Ray cluster at ADDRESS")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first program")
    parser.add_argument("--failures", type=Path, default=Path("soundness-failures"),
                        help="folder for the programs that failed")
    parser.add_argument("--timeout-ms", type=int, default=TIMEOUT_MS,
                        help="solver time limit per query")
    args = parser.parse_args(argv)
    if args.programs < 1 or args.workers < 1 or args.timeout_ms < 1:
        parser.error("--programs, --workers and --timeout-ms must be positive")
    seeds = range(args.seed, args.seed + args.programs)
    executor = Executor(args.workers, args.ray)
    start = time.perf_counter()
    outcomes: list[Outcome] = []
    try:
        results = executor.map(partial(run_one, timeout_ms=args.timeout_ms), seeds)
        for k, o in enumerate(results, start=1):
            outcomes.append(o)
            if o.failed:
                path = write_failure(args.failures, o)
                _figure("failure", o.seed, "seed", verdict=o.verdict, file=str(path),
                        problems=list(o.problems)[:5])
            if k % 500 == 0:
                print(f"soundness: {k}/{args.programs} programs, "
                      f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    except Failure as failure:
        print("\n".join(failure.lines("soundness")), file=sys.stderr)
        return failure.code
    seconds = time.perf_counter() - start
    ratios = tightness(outcomes)
    features = Counter(f for o in outcomes for f in o.features)
    context = {"seed": args.seed, "workers": args.workers, "ran_on":
               executor.describe(args.programs), "timeout_ms": args.timeout_ms}
    for metric, value in counts(outcomes).items():
        _figure(metric, value, "programs", **context)
    _figure("flights", sum(o.flights for o in outcomes), "flights", **context)
    _figure("tightness_median", round(quantile(ratios, 0.5), 4), "bound/observed",
            tasks=len(ratios), **context)
    _figure("tightness_p90", round(quantile(ratios, 0.9), 4), "bound/observed",
            tasks=len(ratios), **context)
    _figure("rate", round(len(outcomes) / seconds, 3), "programs/s", seconds=round(seconds, 1),
            features={f: features[f] for f in FEATURES}, **context)
    failed = any(o.failed for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
