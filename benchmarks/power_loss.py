"""Power loss at every write of every file the VVM keeps, for every operation of the ``vvm``
simulator (init, a first patch and its commit, a delta and its commit, a patch rolled back
on probation, a bench load), with the reboots' own writes cut too, chains of cuts ``--depth``
deep (cut, reboot, cut the reboot, reboot, ...), torn and clean cuts. Each final reboot goes
through the real path (``Simulator.open``, as ``vvm`` opens a state directory), checks that
the configuration is the old or the new one and runs, that probation resolves, and that the
next patch is accepted (applied and committed for chains up to ``--full-depth``).

    python benchmarks/power_loss.py              # depth 2: every cut, every cut of a reboot
    python benchmarks/power_loss.py --depth 3    # and of the reboot after that

The sweep and its checks are those of ``tests/onboard/test_power_loss.py`` (``make test``
runs depth 1 of the delta and depth 0 of the others). Prints JSON lines per operation and in
total: cut points, reboots, stuck, crashes, and configurations neither old nor new (mixed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load_tests() -> object:
    spec = importlib.util.spec_from_file_location(
        "power_loss_tests", ROOT / "tests" / "onboard" / "test_power_loss.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=2, help="cuts per chain beyond the first")
    parser.add_argument("--full-depth", type=int, default=0,
                        help="chains up to this depth also apply and commit the next patch")
    args = parser.parse_args(argv)
    t: object = _load_tests()
    totals = {"cut_points": 0, "reboots": 0, "stuck": 0, "crashes": 0, "mixed": 0}
    failures: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        configs = t.compile_configs(work)  # type: ignore[attr-defined]
        for name, op in t.OPERATIONS.items():  # type: ignore[attr-defined]
            for torn in (True, False):
                figures = t.sweep(op, configs, work / name,  # type: ignore[attr-defined]
                                  depth=args.depth, torn=torn,
                                  full_check_depth=args.full_depth)
                failures += figures.failures
                for metric in totals:
                    value = getattr(figures, metric)
                    totals[metric] += value
                    print(json.dumps({"benchmark": "power_loss", "metric": metric,
                                      "value": value, "unit": "count", "operation": name,
                                      "cut": "torn" if torn else "clean",
                                      "depth": args.depth}), flush=True)
    for metric, value in totals.items():
        print(json.dumps({"benchmark": "power_loss", "metric": metric, "value": value,
                          "unit": "count", "operation": "all", "depth": args.depth}))
    print(json.dumps({"benchmark": "power_loss", "metric": "seconds",
                      "value": round(time.perf_counter() - started, 1), "unit": "s",
                      "depth": args.depth}))
    for failure in failures[:20]:
        print(failure, file=sys.stderr)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
