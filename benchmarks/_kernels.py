"""Kernels for the VVM benchmarks: each a CCL configuration and the same computation in
plain Python, plus the set-up that loads a configuration on a VVM. Not a benchmark itself.

Each kernel's Python baseline is the fastest straightforward Python for it, so that a ratio
against it says what the VVM costs over the best a programmer would write by hand: locals
only (parameters and natives bound to local names once), conditional expressions rather
than ``min``/``max`` calls, a CCL helper function written in place rather than called, a
list iterated directly where the index serves nothing else. It calls the same natives the
configuration calls (the natives are part of the work). ``BASELINE`` says this in one
line, for the benchmarks' JSON context."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ccl.driver import Compiled, Compiler
from missions.corot.natives import CorotHost, make_host
from onboard.vm.loader import LoadedVmlet, Program, load_config, load_vmlet

ROOT = Path(__file__).resolve().parents[1]
N = 4096
BASELINE = ("fastest straightforward Python: locals, conditional expressions (no min/max "
            "calls), helpers written in place, lists iterated directly; same natives")


def _table(seed: int, n: int, hi: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(hi + 1) for _ in range(n)]


DATA = _table(1, N, 255)
SIGNAL = _table(2, N, 10_000)


def compile_text(text: str, name: str = "kernel") -> Compiled:
    """Compile CCL source text (VMlets are found in the mission's folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.ccl"
        path.write_text(text)
        return Compiler().compile(path)


def load(compiled: Compiled, *, metered: bool = True, seed: int = 1) -> tuple[Program,
                                                                               CorotHost]:
    """A configuration loaded, verified and translated, on a fresh CoRoT host."""
    host = make_host(compiled.mission, seed)
    vmlets: list[LoadedVmlet] = []
    for v in compiled.vmlets:  # lower layers first: each loads on the ones below it
        vmlets.append(load_vmlet(v.image, compiled.mission, host, vmlets))
    return load_config(compiled.image, vmlets, compiled.mission, host, metered=metered), host


def run_unit(program: Program, name: str) -> int:
    """Run a code unit to its end with an unlimited budget; return the cycles it used."""
    budget = 1 << 62
    gen = program.code.functions[program.unit(name)](budget)
    try:
        next(gen)
    except StopIteration as stop:
        return int(budget - stop.value[0])
    raise AssertionError("suspended with an unlimited budget")


def run_framed(program: Program, name: str, budget: int) -> int:
    """Run a code unit to its end the way the scheduler does: ``budget`` cycles a frame,
    resumed with a fresh frame's budget each time it suspends. Return the frames it took."""
    gen = program.code.functions[program.unit(name)](budget)
    frames = 1
    try:
        next(gen)
        while True:
            frames += 1
            gen.send(budget)
    except StopIteration:
        return frames


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """The best wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


@dataclass(frozen=True)
class Kernel:
    name: str
    ccl: str
    task: str
    python: Callable[[CorotHost], object]


def _list(values: list[int]) -> str:
    return "[" + ", ".join(map(str, values)) + "]"


FLETCHER = Kernel("fletcher", f"""
mission corot;
config fletcher version 1;
table data[{N}] : int[0..255] = {_list(DATA)};
var s1 : int[0..254];
var s2 : int[0..254];
task checksum every 1 s {{
    let a = 0;
    let b = 0;
    for i in 0 .. {N} {{
        a = (a + data[i]) % 255;
        b = (b + a) % 255;
    }}
    s1 = a;
    s2 = b;
}}
""", "checksum", lambda host: _fletcher(DATA))


def _fletcher(data: list[int]) -> tuple[int, int]:
    a = b = 0
    for x in data:
        a = (a + x) % 255
        b = (b + a) % 255
    return a, b


SMOOTH = Kernel("smooth", f"""
mission corot;
config smooth version 1;
table signal[{N}] : int[0..10000] = {_list(SIGNAL)};
var out[{N}] : int[0..10000];
var peaks : int[0..{N}];

fn smooth3(a: int, b: int, c: int) -> int {{
    return (a + 2 * b + c) / 4;
}}

task filter every 1 s {{
    let n = 0;
    for i in 1 .. {N - 1} {{
        let v = smooth3(signal[i - 1], signal[i], signal[i + 1]);
        out[i] = v;
        if v > 7000 && v > out[i - 1] {{ n = n + 1; }}
    }}
    peaks = n;
}}
""", "filter", lambda host: _smooth(SIGNAL))


def _smooth(signal: list[int]) -> int:
    out = [0] * N
    n = 0
    for i in range(1, N - 1):
        v = (signal[i - 1] + 2 * signal[i] + signal[i + 1]) // 4  # smooth3, in place
        out[i] = v
        if v > 7000 and v > out[i - 1]:
            n += 1
    return n


def _cosmic_python(host: CorotHost, last1: list[int], last2: list[int], n_stars: int,
                   cr_k10: int) -> int:
    flux, noise, flag = host.flux, host.noise, host.flag
    rejected = 0
    for s in range(n_stars):
        f = flux(s)
        a = last1[s]
        b = last2[s]
        # med3(f, a, b), as the translator writes MIN/MAX: conditional expressions
        lo = f if f < a else a
        hi = f if f > a else a
        hi = hi if hi < b else b
        m = lo if lo > hi else hi
        if abs(f - m) * 10 > cr_k10 * noise(s):
            flag(s, 1)
            rejected = rejected + 1 if rejected < 1_000_000 else 1_000_000  # clamp
        last2[s] = a
        last1[s] = f
    return rejected


_STATE: dict[str, list[int]] = {"last1": [0] * 6000, "last2": [0] * 6000}

COSMIC = Kernel("cosmic_filter", (ROOT / "missions/corot/configs/exo_e1.ccl").read_text(),
                "cosmic_filter",
                lambda host: _cosmic_python(host, _STATE["last1"], _STATE["last2"], 5800, 50))

KERNELS = (COSMIC, FLETCHER, SMOOTH)
