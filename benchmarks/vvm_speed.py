"""VVM execution speed: kernels on the VVM against the same computation in the best plain
Python, and what metering costs under the mission's real frame budget.

The Python baseline of each kernel is the fastest straightforward Python for it (locals,
conditional expressions rather than ``min``/``max`` calls, helpers written in place, lists
iterated directly; the same natives): see ``_kernels.BASELINE``. The VVM runs the way the
scheduler runs it: metered, ``frame_budget`` cycles a frame (the CoRoT share less the patch
reserve, from the mission profile: 190,000), resumed each frame until the task is done.

Every figure is measured side by side in one run (the machine is noisy; ratios travel):
each repeat times every variant of a kernel in turn (each time the best of ``INNER``
calls), the ratio is taken within the repeat, and a figure is the median over ``REPEATS``
repeats with ``min``/``max`` in its context. Metrics, per kernel:
- ``ratio_vs_python``: VVM (metered, real frame budget) / best Python (target <= 1.25);
- ``ratio_unmetered_vs_python``: the VVM without metering / best Python: what the
  translated code itself costs, before metering;
- ``metering_overhead``: (metered under the real budget - unmetered) / unmetered
  (target <= 0.10); a kernel longer than a frame suspends and resumes ``frames`` times;
- ``metering_overhead_unlimited``: the same with an unlimited budget (never suspends), for
  comparison with earlier figures;
- ``reference_vs_fast`` (Fletcher): the plain reference interpreter's time / the fast
  engine's, for scale (what a switch-dispatch interpreter would cost).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _kernels import (  # noqa: E402
    BASELINE,
    KERNELS,
    best_of,
    compile_text,
    load,
    run_framed,
    run_unit,
)

from onboard.vm.machine import Limits  # noqa: E402
from onboard.vm.reference import run  # noqa: E402

REPEATS = 11
INNER = 5


def _emit(metric: str, value: float, unit: str, **context: object) -> None:
    print(json.dumps({"benchmark": "vvm_speed", "metric": metric, "value": round(value, 4),
                      "unit": unit, **context}), flush=True)


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(INNER):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _spread(samples: list[float]) -> dict[str, float]:
    """min/median/max of a figure over the repeats (the median is the figure)."""
    return {"min": round(min(samples), 4), "median": round(statistics.median(samples), 4),
            "max": round(max(samples), 4), "repeats": len(samples)}


def _ratios(t: dict[str, list[float]], num: str, den: str, minus: float = 0) -> list[float]:
    """``num / den - minus`` within each repeat."""
    return [a / b - minus for a, b in zip(t[num], t[den], strict=True)]


def _ms(t: dict[str, list[float]], name: str) -> float:
    return round(statistics.median(t[name]) * 1e3, 3)


def main() -> None:
    for kernel in KERNELS:
        compiled = compile_text(kernel.ccl, kernel.name)
        frame_budget = Limits.of(compiled.mission).frame_budget
        metered, _ = load(compiled, metered=True)
        unmetered, _ = load(compiled, metered=False)
        _, host_py = load(compiled)
        cycles = run_unit(metered, kernel.task)
        frames = run_framed(metered, kernel.task, frame_budget)
        fn_bare = unmetered.code.functions[unmetered.unit(kernel.task)]
        variants: dict[str, Callable[[], object]] = {
            "python": lambda h=host_py, fn=kernel.python: fn(h),
            "framed": lambda p=metered, n=kernel.task, b=frame_budget: run_framed(p, n, b),
            "unlimited": lambda p=metered, n=kernel.task: run_unit(p, n),
            "bare": lambda f=fn_bare: f(0),
        }
        for fn in variants.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(REPEATS):
            names = list(variants)
            names = names[r % len(names):] + names[:r % len(names)]  # no variant always first
            for name in names:
                times[name].append(_best(variants[name]))
        t = times
        vs_py = _ratios(t, "framed", "python")
        _emit("ratio_vs_python", statistics.median(vs_py), "x", kernel=kernel.name,
              spread=_spread(vs_py), vvm_ms=_ms(t, "framed"), python_ms=_ms(t, "python"),
              cycles=cycles, frames=frames, frame_budget=frame_budget, baseline=BASELINE)
        bare_py = _ratios(t, "bare", "python")
        _emit("ratio_unmetered_vs_python", statistics.median(bare_py), "x",
              kernel=kernel.name, spread=_spread(bare_py), unmetered_ms=_ms(t, "bare"),
              python_ms=_ms(t, "python"), baseline=BASELINE)
        over = _ratios(t, "framed", "bare", 1)
        _emit("metering_overhead", statistics.median(over), "fraction", kernel=kernel.name,
              spread=_spread(over), frame_budget=frame_budget, frames=frames,
              metered_ms=_ms(t, "framed"), unmetered_ms=_ms(t, "bare"))
        over_u = _ratios(t, "unlimited", "bare", 1)
        _emit("metering_overhead_unlimited", statistics.median(over_u), "fraction",
              kernel=kernel.name, spread=_spread(over_u), budget="unlimited")
        if kernel.name == "fletcher":
            unit = metered.unit(kernel.task)

            def reference(p=metered, u=unit) -> None:
                ex = run(p.bound, p.memory, u, (), 1 << 62)
                try:
                    next(ex)
                except StopIteration:
                    pass

            t_ref = best_of(reference, repeat=2)
            _emit("reference_vs_fast", t_ref / min(t["unlimited"]), "x", kernel=kernel.name)


if __name__ == "__main__":
    main()
