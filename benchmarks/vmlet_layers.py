"""A three-layer VMlet stack against the same instructions in one VMlet, and against the
same operations written as functions of the configuration or in place.

``low`` defines ``clamp`` and ``med3``; ``mid`` uses ``low`` and defines ``smooth`` from
them; ``top`` uses ``mid`` and defines ``score`` from ``smooth`` and ``clamp``. ``flat`` is
one VMlet with the same four instructions, written the same way; ``fns`` is the
configuration with them as its own ``fn``s. The task (the same text on all three) scores
every window of a table. After loading, a stack is one level of interpretation: every
layer's code is translated to host code and bound through the layers at load time, so the
stack must run as fast as the flat VMlet (metric ``ratio_layers_vs_flat``, target <= 1.10,
median of alternated rounds of CPU time, with their spread) and cost exactly the same cycles (an
extension opcode is charged the same whichever VMlet defines it). Against ``fns`` the
cycles differ by design: a VMlet instruction whose body is straight-line code of fixed cost
is charged dispatch and body at once and inlined, a ``CALL`` is charged its own dispatch;
against ``inline`` (the operations written in the task with ``min``/``max``) a stack is
charged the dispatch and frame of each instruction, nested ones included, which the
built-in operations do not have (the machine model's charge: docs/language.md section 18),
but runs as fast (metric ``ratio_layers_vs_inline``): an instruction built on fixed-cost
instructions is of fixed cost, through the layers, and the whole stack is written in place.
Load time (verification and translation of the stack) is not measured here.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _kernels import SIGNAL, _list, load, run_unit  # noqa: E402

from ccl.driver import Compiled, Compiler  # noqa: E402

N = len(SIGNAL)
CLAMP = "(v: int[0..10000], hi: int[0..10000]) -> int[0..10000] { return min(v, hi); }"
MED3 = ("(a: int[0..10000], b: int[0..10000], c: int[0..10000]) -> int[0..10000] "
        "{ return max(min(a, b), min(max(a, b), c)); }")
SMOOTH = ("(a: int[0..10000], b: int[0..10000], c: int[0..10000]) -> int[0..10000] "
          "{ return clamp(med3(a, b, c), 9000); }")
SCORE = ("(a: int[0..10000], b: int[0..10000], c: int[0..10000]) -> int[0..20000] "
         "{ return smooth(a, b, c) + clamp(c, 5000); }")
VMLETS = {
    "low": f"vmlet low version 1;\nmission corot;\ninstr clamp{CLAMP}\ninstr med3{MED3}\n",
    "mid": f"vmlet mid version 1;\nmission corot;\nuses low;\ninstr smooth{SMOOTH}\n",
    "top": f"vmlet top version 1;\nmission corot;\nuses mid;\ninstr score{SCORE}\n",
    "flat": (f"vmlet flat version 1;\nmission corot;\ninstr clamp{CLAMP}\ninstr med3{MED3}\n"
             f"instr smooth{SMOOTH}\ninstr score{SCORE}\n"),
}
FUNCTIONS = f"fn clamp{CLAMP}\nfn med3{MED3}\nfn smooth{SMOOTH}\nfn score{SCORE}\n"


#: The same operations written in the task with the ISA's own instructions (`min`, `max`,
#: `+`): what a VM with them built in would run, with no call at all.
INLINE = "min(max(min(a, b), min(max(a, b), c)), 9000) + min(c, 5000)"


def config(name: str, uses: str, functions: str = "", score: str = "") -> str:
    """The same task on VMlet ``uses`` (or on the configuration's own ``functions``, or
    with ``score`` written in place)."""
    return f"""mission corot;
config {name} version 1;
{f"uses {uses};" if uses else ""}
{functions}
table signal[{N}] : int[0..10000] = {_list(SIGNAL)};
var out[{N}] : int[0..20000];
task scores every 1 s {{
    for i in 1 .. {N - 1} {{
        let a = signal[i - 1];
        let b = signal[i];
        let c = signal[i + 1];
        out[i] = {score or "score(a, b, c)"};
    }}
}}
"""


def cpu_best_of(fn: Callable[[], object], repeat: int = 7) -> float:
    """The least CPU time of ``repeat`` calls, after a warm-up: CPU time, not wall time,
    since the machine is shared (a preempted run would otherwise count time it did not
    run)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def compile_all() -> dict[str, Compiled]:
    """The three variants, compiled from files in one folder (VMlets are found beside)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, text in VMLETS.items():
            (folder / f"{name}.ccl").write_text(text)
        out = {}
        for name, text in (("layers", config("layers", "top")),
                           ("flat", config("flat_app", "flat")),
                           ("fns", config("fns", "", FUNCTIONS)),
                           ("inline", config("inline", "", score=INLINE))):
            (folder / f"app_{name}.ccl").write_text(text)
            out[name] = Compiler().compile(folder / f"app_{name}.ccl")
        return out


def main() -> None:
    compiled = compile_all()
    assert [v.program.name for v in compiled["layers"].vmlets] == ["low", "mid", "top"]
    programs = {name: load(c)[0] for name, c in compiled.items()}
    cycles = {name: run_unit(p, "scores") for name, p in programs.items()}
    arrays = {name: p.memory.arrays for name, p in programs.items()}
    assert arrays["layers"] == arrays["flat"] == arrays["fns"] == arrays["inline"], \
        "the variants disagree"
    assert cycles["layers"] == cycles["flat"], "a stack must cost what one VMlet costs"
    fallbacks = {n: p.code.fallbacks for n, p in programs.items() if p.code.fallbacks}
    assert not fallbacks, f"units left to the reference interpreter: {fallbacks}"
    assert "def v0_" not in programs["layers"].code.source, "layers run out of line"
    ratios: dict[str, list[float]] = {"flat": [], "fns": [], "inline": []}
    for _ in range(5):  # alternate, so that drift in machine speed hits all alike
        t_layers = cpu_best_of(lambda: run_unit(programs["layers"], "scores"))
        for other, found in ratios.items():
            program = programs[other]
            found.append(t_layers / cpu_best_of(lambda p=program: run_unit(p, "scores")))
    vs_flat, vs_fns = ratios["flat"], ratios["fns"]
    context = {"layers": 3, "windows": N - 2, "rounds": 5,
               **{f"cycles_{name}": c for name, c in cycles.items()}}
    print(json.dumps({"benchmark": "vmlet_layers", "metric": "ratio_layers_vs_flat",
                      "value": round(statistics.median(vs_flat), 4), "unit": "x",
                      "spread": [round(min(vs_flat), 4), round(max(vs_flat), 4)],
                      "reference": "the same instructions in one VMlet", **context}))
    print(json.dumps({"benchmark": "vmlet_layers", "metric": "ratio_layers_vs_functions",
                      "value": round(statistics.median(vs_fns), 4), "unit": "x",
                      "spread": [round(min(vs_fns), 4), round(max(vs_fns), 4)],
                      "reference": "the same operations as the configuration's own fns",
                      **context}))
    vs_inline = ratios["inline"]
    print(json.dumps({"benchmark": "vmlet_layers", "metric": "ratio_layers_vs_inline",
                      "value": round(statistics.median(vs_inline), 4), "unit": "x",
                      "spread": [round(min(vs_inline), 4), round(max(vs_inline), 4)],
                      "reference": "the same operations written in place with min/max/+",
                      **context}))


if __name__ == "__main__":
    main()
