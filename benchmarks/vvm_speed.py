"""VVM execution speed: kernels on the VVM against the same computation in plain Python.

Metrics, measured side by side in one run (the machine is noisy; ratios travel):
- ``ratio_vs_python`` per kernel: VVM time / plain Python time (target <= 3);
- ``metering_overhead`` per kernel: (metered - unmetered) / unmetered (target <= 0.10);
- ``reference_vs_fast``: the plain reference interpreter's time / the fast engine's, for
  scale (what a switch-dispatch interpreter would cost).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _kernels import KERNELS, best_of, compile_text, load, run_unit  # noqa: E402

from onboard.vm.reference import run  # noqa: E402


def _emit(metric: str, value: float, unit: str, **context: object) -> None:
    print(json.dumps({"benchmark": "vvm_speed", "metric": metric, "value": round(value, 4),
                      "unit": unit, **context}), flush=True)


def main() -> None:
    for kernel in KERNELS:
        compiled = compile_text(kernel.ccl, kernel.name)
        metered, host = load(compiled, metered=True)
        unmetered, host_u = load(compiled, metered=False)
        _, host_py = load(compiled)
        cycles = run_unit(metered, kernel.task)

        def vvm(p=metered, name=kernel.task) -> None:
            run_unit(p, name)

        def bare(p=unmetered, name=kernel.task) -> None:
            p.code.functions[p.unit(name)](0)

        def python(h=host_py, fn=kernel.python) -> None:
            fn(h)

        t_vvm = best_of(vvm)
        t_bare = best_of(bare)
        t_py = best_of(python)
        _emit("ratio_vs_python", t_vvm / t_py, "x", kernel=kernel.name,
              vvm_ms=round(t_vvm * 1e3, 3), python_ms=round(t_py * 1e3, 3), cycles=cycles)
        _emit("metering_overhead", (t_vvm - t_bare) / t_bare, "fraction", kernel=kernel.name)
        if kernel.name == "fletcher":
            unit = metered.unit(kernel.task)

            def reference(p=metered, u=unit) -> None:
                ex = run(p.bound, p.memory, u, (), 1 << 62)
                try:
                    next(ex)
                except StopIteration:
                    pass

            t_ref = best_of(reference, repeat=2)
            _emit("reference_vs_fast", t_ref / t_vvm, "x", kernel=kernel.name)


if __name__ == "__main__":
    main()
