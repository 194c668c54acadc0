"""The soundness campaign: random configurations for CoRoT, verified, then flown.

``ccl verify`` promises that a proven configuration is accepted by the board and never
traps, never runs a task past its proven bound and never makes a task miss its frame. The
campaign tries that promise on random programs aimed at the features where the ground's
model of the machine and the machine have disagreed (issue 10): loops with early returns,
multi-rate tasks, VMlet instructions of large fixed cost, ``on apply`` and ``on load``,
large tables, deep call chains, natives at the edges of their ranges, guards on loop
counters, triangular loops, flags cleared on the first iteration, and state one task
writes and reads again after a loop while other tasks write it too.

``generate(seed)`` writes one configuration and the VMlet it runs on (``random.Random``
seeded per program, so that programs can be made and run in any order, in parallel).
``run_one(seed)`` compiles, verifies (the configuration and its VMlet) and, if proven,
flies it on the real scheduler (``ccl.soundness.trial.fly``) at the witness of every worst
case the verifier reported and at adversarial inputs (parameter extremes, tables at their
extremes that change part-way, natives that return one value for some calls and then
another), and judges every flight against the proof. Nothing here knows what anything
costs: bounds come from the verifier, cycles from the VVM's telemetry.

Run by ``ccl campaign`` (``cli/campaign_command.py``, over local processes or a Ray
cluster), ``benchmarks/soundness.py`` and ``tests/ccl/verify/test_campaign.py``.
"""

from __future__ import annotations

import random
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ccl.diagnostics import CclError
from ccl.driver import Compiled, Compiler
from ccl.soundness.trial import Flight, Inputs, Rig, hyperperiod_ms, judge
from ccl.verify.obligations import Replay
from ccl.verify.program import verify_program
from ccl.verify.replay import NativeScript
from ccl.verify.report import VerifyReport

#: The features the generator aims at; ``Generated.features`` says which a program has.
FEATURES = ("early_return", "multi_rate", "fixed_cost_instr", "on_apply", "on_load",
            "large_table", "deep_calls", "native_edges", "counter_guard", "triangular",
            "flag", "env", "shared_state")

#: Solver time limit per query: modest, so that a program verifies in a fraction of a
#: second; a query that needs longer is unknown (never proven).
TIMEOUT_MS = 300

CONFIG = "camp"
VMLET = "campvm"
MISSION = "corot"
PERIODS_MS = (100, 100, 200, 300, 400, 500, 1000)

_STAR_MAX = 5999  # the natives' star argument: int[0..5999]


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Generated:
    """One generated program: a configuration and the VMlet it uses, as CCL text."""

    seed: int
    config: str
    vmlet: str
    features: frozenset[str]

    def write(self, folder: Path) -> Path:
        """Write both files into ``folder`` (created); return the configuration's path
        (``ccl verify`` on it finds the VMlet next to it)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{VMLET}.ccl").write_text(self.vmlet)
        path = folder / f"{CONFIG}.ccl"
        path.write_text(self.config)
        return path

    def text(self) -> str:
        """Both files, for a report: the configuration then the VMlet."""
        return (f"// ---- {CONFIG}.ccl (seed {self.seed})\n{self.config}"
                f"// ---- {VMLET}.ccl\n{self.vmlet}")


class _Writer:
    """Writes one random configuration and its VMlet from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.features: set[str] = set()
        self.n_fresh = 0
        self.fns: list[str] = []  # function definitions
        # the shape of the module, drawn once
        self.n_hi = rng.choice([3, 8, 20, 60, 150, rng.randint(1, 200)])
        self.nb_hi = rng.randint(0, self.n_hi)
        self.k_lo, self.k_hi = rng.choice([(-10, 10), (0, 1000), (1, 50), (-100000, 100000)])
        self.t_len = rng.choice([8, 32, 256, 1000])
        self.t_hi = rng.choice([1, 9, 255, 65535])
        self.big: tuple[int, int] | None = None  # length, hi of the large table
        if rng.random() < 0.15:
            self.big = rng.choice([(100_000, 255), (300_000, 255), (200_000, 65535),
                                   (140_000, 65535), (600_000, 255)])
            self.features.add("large_table")
        # the VMlet: a straight-line instruction of D heater_set calls (fixed cost, 128
        # cycles a call: about 1,480 are more than a frame leaves the tasks), an
        # instruction charged as it runs, a loop instruction with an early return, and
        # maybe an `on load`. Long bodies are rare: the VVM translates a fixed-cost body at
        # every call site, and that is most of a program's time in the campaign. One as
        # long as a frame leaves no frame any time for the tasks (a frame may lose almost
        # all of it), so those are refuted: rarer still.
        self.crunch_len = rng.choices([1, 10, 40, 100, 350, 700, 1483, 1490],
                                      [60, 60, 50, 14, 14, 8, 1, 1])[0]
        self.chain: int | None = None  # depth of the call chain, if any

    # -- names and small pieces

    def fresh(self, stem: str) -> str:
        self.n_fresh += 1
        return f"{stem}{self.n_fresh}"

    def star(self, counter: str | None = None) -> str:
        """An expression in 0 .. 5999 (a native's star argument)."""
        r = self.rng.random()
        if counter is not None and r < 0.6:
            return counter  # counters run below n's top, 200 at most
        if r < 0.8:
            self.features.add("native_edges")
            return self.rng.choice(["0", str(_STAR_MAX)])
        return "min(max(k, 0), 5999)"

    def side(self) -> str:
        """A window side for ``window_sum``: 1 .. 64, at the edges often."""
        return self.rng.choice(["1", "8", "16", "32", "64", "64", "w",
                                str(self.rng.randint(1, 64))])

    def t_index(self, counter: str) -> str:
        """An index of ``t0`` from a loop counter (0 .. n - 1), mostly within bounds."""
        if self.n_hi <= self.t_len or self.rng.random() < 0.08:
            return counter  # may be out of bounds: then refuted (an index trap)
        return self.rng.choice([f"{counter} % {self.t_len}", f"min({counter}, {self.t_len - 1})"])

    def table_value(self) -> int:
        return self.rng.choice([0, self.t_hi, self.t_hi // 2, 1 if self.t_hi > 1 else 0])

    # -- statements

    def dear(self, counter: str | None = None) -> str:
        """A costly statement (its cost often depends on its arguments)."""
        r = self.rng.random()
        if r < 0.45:
            self.features.add("native_edges")
            return f"acc = window_sum({self.star(counter)}, {self.side()}, {self.side()});"
        if r < 0.6:
            return f"acc = pick({self.star(counter)}, {self.side()});"
        if r < 0.75:
            return self.dear_crunch()
        if r < 0.88:
            return f"last = {self.chain_call(counter)};"
        self.features.add("native_edges")
        return f"flag({self.star(counter)}, 255);"

    def dear_crunch(self) -> str:
        self.features.add("fixed_cost_instr")
        return f"last = crunch(min(max(k, 0), 1000), {self.rng.randint(1, 10)});"

    def chain_call(self, counter: str | None) -> str:
        if self.chain is None:
            self.chain = self.rng.choice([1, 2, 4, 8, 12, 14, 15, 16])
        if self.chain >= 4:
            self.features.add("deep_calls")
        arg = f"min({counter}, 100)" if counter is not None else "min(max(k, 0), 100)"
        return f"f0({arg})"

    def cheap(self, counter: str | None = None) -> str:
        r = self.rng.random()
        if r < 0.3:
            return "cnt = min(cnt + 1, 1000000);"
        if r < 0.55:
            return f"acc = flux({self.star(counter)});"
        if r < 0.7 and counter is not None:
            return f"hist[{counter} % 4] = min(hist[{counter} % 4] + 1, 1000000);"
        if r < 0.85:
            return f"last = min(noise({self.star(counter)}), 1000);"
        if counter is not None:
            return f"last = min(t0[{self.t_index(counter)}], 1000);"
        return "last = min(last + 1, 1000);"

    def stmt(self, counter: str | None = None) -> str:
        return self.dear(counter) if self.rng.random() < 0.4 else self.cheap(counter)

    # -- blocks of a task body

    # One method per kind of block; each draws from the generator in the same order.
    _BLOCK_KINDS = ("plain", "early_return", "triangular", "counter_guard", "flag",
                    "native_edges", "nested", "env", "nested_return", "state", "data_loop",
                    "else_if", "shared")
    _BLOCK_WEIGHTS = (2, 3, 2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 2)

    def block(self, ind: str) -> list[str]:
        """A block of a task body, indented by ``ind``, of a kind drawn at random."""
        kind = self.rng.choices(self._BLOCK_KINDS, self._BLOCK_WEIGHTS)[0]
        i = self.fresh("i")
        j = self.fresh("j")
        hi = self.rng.choice(["n", "n", "nb", str(self.n_hi)])
        method: Callable[[str, str, str, str], list[str]] = getattr(self, f"block_{kind}")
        return method(ind, i, j, hi)

    def block_plain(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """One to three statements."""
        return [f"{ind}{self.stmt()}" for _ in range(self.rng.randint(1, 3))]

    def block_early_return(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A loop that may return early."""
        self.features.add("early_return")
        c1, c2 = self.table_value(), self.table_value()
        lines = [f"{ind}for {i} in 0 .. {hi} {{"]
        if self.rng.random() < 0.6:
            lines += [f"{ind}    if t0[{self.t_index(i)}] > {c1} {{ {self.dear(i)} }}"]
        if self.rng.random() < 0.3:
            self.features.add("native_edges")
            test = f"flux({i}) >= {self.rng.choice([1, 16777215, 1000])}"
        else:
            test = f"t0[{self.t_index(i)}] == {c2}"
        lines += [f"{ind}    if {test} {{ {self.dear(i)} return; }}",
                  f"{ind}    {self.cheap(i)}", f"{ind}}}"]
        return lines

    def block_triangular(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A loop nest whose inner bounds depend on the outer counter."""
        self.features.add("triangular")
        inner = self.rng.choice([f"0 .. {i}", f"{i} .. {hi}", f"0 .. {i} + 1"])
        return [f"{ind}for {i} in 0 .. {hi} {{",
                f"{ind}    for {j} in {inner} {{ {self.stmt(j)} }}", f"{ind}}}"]

    def block_counter_guard(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A loop whose dear branch depends on the counter."""
        self.features.add("counter_guard")
        guard = self.rng.choice([f"{i} < nb", f"{i} >= nb", f"{i} < {self.rng.randint(0, 20)}",
                                 f"{i} < nb && t0[{self.t_index(i)}] > {self.table_value()}"])
        return [f"{ind}for {i} in 0 .. {hi} {{",
                f"{ind}    if {guard} {{ {self.dear(i)} }} else {{ {self.cheap(i)} }}",
                f"{ind}}}"]

    def block_flag(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A loop whose dear branch runs once (or again when the data set the flag)."""
        self.features.add("flag")
        first = self.fresh("first")
        lines = [f"{ind}let {first} : int[0..1] = 1;", f"{ind}for {i} in 0 .. {hi} {{",
                 f"{ind}    if {first} == 1 {{ {self.dear(i)} {first} = 0; }}",
                 f"{ind}    {self.cheap(i)}"]
        if self.rng.random() < 0.2:  # set again by the data: dear more than once
            lines.append(f"{ind}    if t0[{self.t_index(i)}] == {self.table_value()} "
                         f"{{ {first} = 1; }}")
        return [*lines, f"{ind}}}"]

    def block_native_edges(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """Branches on natives at the edges of their ranges."""
        self.features.add("native_edges")
        test = self.rng.choice(["noise(0) == 65535", "flux(5999) == 0",
                                "noise(min(max(k, 0), 5999)) > 65534",
                                "flux(0) > 16777214"])
        return [f"{ind}if {test} {{ {self.dear()} }} else {{ {self.cheap()} }}",
                f"{ind}{self.rng.choice(['flag(5999, 255);', 'flag(0, 0);'])}"]

    def block_nested(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A loop nest with a short outer loop."""
        lo = self.rng.choice(["0", "0", "nb", "min(nb, 3)"])
        return [f"{ind}for {i} in 0 .. {self.rng.randint(1, 4)} {{",
                f"{ind}    for {j} in {lo} .. {hi} {{ {self.stmt(j)} }}", f"{ind}}}"]

    def block_nested_return(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """An early return from an inner (triangular) loop."""
        self.features.update({"early_return", "triangular"})
        inner = self.rng.choice([f"0 .. {i}", f"{i} .. {hi}", f"0 .. {i} + 1"])
        return [f"{ind}for {i} in 0 .. {hi} {{",
                f"{ind}    for {j} in {inner} {{",
                f"{ind}        if t0[{self.t_index(j)}] == {self.table_value()} "
                f"{{ {self.dear(j)} return; }}",
                f"{ind}        {self.stmt(j)}", f"{ind}    }}",
                f"{ind}    {self.cheap(i)}", f"{ind}}}"]

    def block_shared(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """State written, then read after a loop that may span frames."""
        self.features.add("shared_state")
        var, value, test = self.rng.choice([
            ("cnt", "0", "cnt > 0"), ("last", "1", "last != 1"),
            ("acc", "0", "acc > 100000"), ("last", "0", "last == 1000")])
        return [f"{ind}{var} = {value};",
                f"{ind}for {i} in 0 .. {hi} {{ {self.stmt(i)} }}",
                f"{ind}if {test} {{ {self.dear()} }}"]

    def block_state(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """Cost that depends on state the previous jobs left."""
        test = self.rng.choice(["cnt % 2 == 0", "cnt > 999990", "last == 1000",
                                "hist[0] > hist[1]", "acc < 100"])
        return [f"{ind}if {test} {{ {self.dear()} }} else {{ {self.cheap()} }}",
                f"{ind}cnt = min(cnt + 1, 1000000);"]

    def block_data_loop(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """Trips read from a table or a native."""
        bound = self.rng.choice([f"min(t0[0], {self.n_hi})", "min(noise(7), 12)",
                                 f"min(t0[{self.t_len - 1}], 5)", "min(last, 9)"])
        return [f"{ind}for {i} in 0 .. {bound} {{ {self.stmt(i)} }}"]

    def block_else_if(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A chain on data and natives."""
        return [f"{ind}if t0[0] == {self.table_value()} {{ {self.dear()} }}",
                f"{ind}else if noise(1) > {self.rng.choice([0, 65534, 30000])} "
                f"{{ {self.stmt()} }}",
                f"{ind}else if k > {self.k_lo} {{ {self.dear()} }}",
                f"{ind}else {{ {self.cheap()} }}"]

    def block_env(self, ind: str, i: str, j: str, hi: str) -> list[str]:
        """A branch on an environment key."""
        self.features.add("env")
        key, top = self.rng.choice([("ccd", 3), ("channel", 1)])
        return [f"{ind}if env({key}) == {self.rng.randint(0, top)} {{ {self.dear()} }}"]

    def task(self, name: str, period: int) -> list[str]:
        # Small bodies: a task's worst case is maximised over all its paths at once, and
        # that query grows fast with the loops it holds; features vary across programs.
        body = [line for _ in range(self.rng.choice([1, 1, 2])) for line in self.block("    ")]
        if self.rng.random() < 0.5 and self.crunch_len < 350:
            # Ballast: window sums that fill some share of the task's frames, so that task
            # sets land near the schedulability limit (about 11 of 64 x 64 a frame).
            trips = self.rng.randint(0, 12 * period // 100)
            r = self.fresh("r")
            body.insert(0, f"    for {r} in 0 .. {trips} {{ acc = window_sum({r}, 64, 64); }}")
        return [f"task {name} every {period} ms {{", *body, "}"]

    def scan_fn(self) -> list[str]:
        """A function whose loop returns early (its result: where it stopped)."""
        self.features.add("early_return")
        name = self.fresh("scan")
        i = self.fresh("i")
        lines = [f"fn {name}() -> int[0..{self.n_hi}] {{", f"    for {i} in 0 .. n {{"]
        if self.rng.random() < 0.5:
            lines.append(f"        if t0[{self.t_index(i)}] < {self.table_value()} "
                         f"{{ {self.dear(i)} }}")
        lines += [f"        if t0[{self.t_index(i)}] == {self.table_value()} "
                  f"{{ {self.dear(i)} return {i}; }}", "    }", "    return 0;", "}"]
        self.fns.append("\n".join(lines))
        return [f"    last = {name}();"]

    def chain_fns(self) -> list[str]:
        assert self.chain is not None
        d = self.chain
        out = []
        for level in range(d):
            extra = f"    {self.cheap()}\n" if self.rng.random() < 0.3 else ""
            out.append(f"fn f{level}(v: int[0..100]) -> int[0..100] {{\n{extra}"
                       f"    return f{level + 1}(v);\n}}")
        bottom = self.rng.choice(["min(v + crunch(v, 7), 100)", "min(flux(v), 100)", "v",
                                  "min(spin(min(v, 20)) + v, 100)"])
        out.append(f"fn f{d}(v: int[0..100]) -> int[0..100] {{ return {bottom}; }}")
        return out

    # -- whole files

    def config(self) -> str:
        rng = self.rng
        n_tasks = rng.choices([1, 2, 3], [5, 4, 1])[0]
        periods = [rng.choice(PERIODS_MS) for _ in range(n_tasks)]
        if len(set(periods)) > 1:
            self.features.add("multi_rate")
        tasks: list[str] = []
        for t, period in enumerate(periods):
            lines = self.task(f"job{t}", period)
            if rng.random() < 0.2:  # a function that returns from its loop
                lines[1:1] = self.scan_fn()
            tasks += lines
        on_apply: list[str] = []
        if rng.random() < 0.35:
            self.features.add("on_apply")
            m = rng.choice(["0", "2", "m", "m", "n"])
            body = ["    cnt = 0;", f"    for q in 0 .. {m} {{ {self.dear('q')} }}"]
            on_apply = ["on apply {", *body, "}"]
        hard: list[str] = []
        if rng.random() < 0.04:  # remainders of a product: unknown at a modest timeout
            hard = ["    if (fa * fb) % 1000003 == 17 && (fa * fb) % 999983 == 5 "
                    "{ last = 100 / fz; }"]
            tasks[1:1] = hard
        if self.crunch_len >= 350 and "crunch(" not in "\n".join(tasks):
            # a large fixed-cost instruction is what the program is about: call it
            self.features.add("fixed_cost_instr")
            tasks[1:1] = [f"    {self.dear_crunch()}"]
        if self.chain is not None:
            self.fns += self.chain_fns()
        head = [f"mission {MISSION};", f"config {CONFIG} version 1;", f"uses {VMLET};",
                f"param n : int[0..{self.n_hi}] = {self.n_hi};",
                f"param nb : int[0..{self.nb_hi}] = {self.nb_hi // 2};",
                f"param k : int[{self.k_lo}..{self.k_hi}] = {self.k_lo};",
                "param w : int[1..64] = 8;",
                f"param m : int[0..{rng.choice([1, 4, 10, 40])}] = 1;",
                "param fa : int[2..46340] = 2;", "param fb : int[2..46340] = 2;",
                "param fz : int[0..10] = 1;",
                f"table t0[{self.t_len}] : int[0..{self.t_hi}];",
                "var acc : int[0..268431360];", "var cnt : int[0..1000000];",
                "var last : int[0..1000];", "var hist[4] : int[0..1000000];"]
        if self.big is not None:
            length, hi = self.big
            head += [f"param bi : int[0..{length - 1}] = 0;",
                     f"table big[{length}] : int[0..{hi}];"]
            tasks[1:1] = ["    last = min(big[bi], 1000);"]
        return "\n".join([*head, *self.fns, *tasks, *on_apply, ""])

    def vmlet(self) -> str:
        rng = self.rng
        # The same calls for the same length (arguments at their range edges): VMlets
        # repeat across programs, and each is verified once per process (``_vmlet_report``).
        crunch = [f"    heater_set({7 * (i % 2)}, {320000 if i % 3 else 250000});"
                  for i in range(self.crunch_len)]
        on_load: list[str] = []
        if rng.random() < 0.3:
            self.features.add("on_load")
            trips = rng.choice([0, 5, 30, 50, 60, 70])
            body = f"for q in 0 .. {trips} {{ let z = window_sum(q, 64, 64); }}"
            if rng.random() < 0.4:
                self.features.add("env")
                body = f"if env(ccd) == {rng.randint(0, 3)} {{ {body} }}"
            on_load = ["on load {", f"    {body}", "}"]
        return "\n".join([
            f"vmlet {VMLET} version 1;", f"mission {MISSION};",
            "expose flux, noise, flag, window_sum, heater_set;",
            "instr crunch(a: int[0..1000], b: int[1..10]) -> int[0..1000] {", *crunch,
            "    return a / b;", "}",
            "instr pick(s: int[0..5999], q: int[1..64]) -> int[0..268431360] {",
            "    if q > 32 { return window_sum(s, q, q); }", "    return flux(s);", "}",
            "instr spin(m: int[0..20]) -> int[0..20] {",
            "    for i in 0 .. m { if noise(i) > 60000 { return i; } }", "    return 0;", "}",
            *on_load, ""])


def generate(seed: int) -> Generated:
    """The program of ``seed`` (the same for the same seed, on any machine)."""
    w = _Writer(random.Random(seed))
    vmlet = w.vmlet()
    config = w.config()
    if w.crunch_len < 350:  # below 45,000 cycles, a quarter of a frame: not large
        w.features.discard("fixed_cost_instr")
    return Generated(seed, config, vmlet, frozenset(w.features))


# --------------------------------------------------------------------------- one program


@dataclass(frozen=True)
class Outcome:
    """What happened to one generated program.

    ``verdict`` is the configuration's and its VMlet's together (refuted if either is,
    unknown if either is, else proven), or ``invalid`` when the generator wrote something
    the front end refused (a generator bug), or ``crashed`` when a stage raised. The
    failure flags are about proven programs only; ``ratios`` are bound / worst observed,
    one per task that ran (its worst over all flights). ``program`` (both files) is kept
    when something failed, so that the seed's program can be read without regenerating."""

    seed: int
    verdict: str
    features: frozenset[str] = frozenset()
    flights: int = 0
    refused_by_board: bool = False
    trapped: bool = False
    overran: bool = False
    bound_below_observed: bool = False
    ratios: tuple[float, ...] = ()
    problems: tuple[str, ...] = ()  # what failed, flight by flight
    program: str = ""
    seconds: float = 0.0
    verify_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """A proven program that did not fly as proven, or a program the campaign could
        not handle (invalid text, a crash)."""
        return self.verdict in ("invalid", "crashed") or self.refused_by_board \
            or self.trapped or self.overran or self.bound_below_observed


#: The counts a campaign reports, in order; the failure counts (all but the first four)
#: must be 0.
COUNTS = ("programs", "proven", "refuted", "unknown", "proven_but_refused_by_the_board",
          "proven_but_trapped", "proven_but_overran", "bound_below_observed",
          "campaign_errors")


def counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """How many programs had each verdict, and each kind of failure (``COUNTS``)."""
    verdicts = Counter(o.verdict for o in outcomes)
    proven = [o for o in outcomes if o.verdict == "proven"]
    return {
        "programs": len(outcomes),
        "proven": verdicts["proven"],
        "refuted": verdicts["refuted"],
        "unknown": verdicts["unknown"],
        "proven_but_refused_by_the_board": sum(o.refused_by_board for o in proven),
        "proven_but_trapped": sum(o.trapped for o in proven),
        "proven_but_overran": sum(o.overran for o in proven),
        "bound_below_observed": sum(o.bound_below_observed for o in proven),
        "campaign_errors": verdicts["invalid"] + verdicts["crashed"],
    }


def tightness(outcomes: Sequence[Outcome]) -> list[float]:
    """Every task's proven bound over the most cycles it took, over the proven programs."""
    return [r for o in outcomes if o.verdict == "proven" for r in o.ratios]


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank; 0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def write_failure(folder: Path, o: Outcome) -> Path:
    """Write a failed program's files and what failed into ``folder/seed-N``; return its
    configuration's path (``ccl verify`` on it reproduces the verdict)."""
    where = folder / f"seed-{o.seed}"
    path = generate(o.seed).write(where)
    (where / "problems.txt").write_text("\n".join(o.problems) + "\n")
    return path


def combined_status(reports: list[VerifyReport]) -> str:
    """One verdict for a configuration and its VMlets."""
    states = {r.status for r in reports}
    for status in ("refuted", "unknown"):
        if status in states:
            return status
    return "proven"


def run_one(seed: int, *, timeout_ms: int = TIMEOUT_MS, periods: int = 2,
            program: Generated | None = None) -> Outcome:
    """Generate, compile, verify and, if proven, fly program ``seed`` (or ``program``)."""
    start = time.perf_counter()
    g = program or generate(seed)
    with tempfile.TemporaryDirectory(prefix="ccl-campaign-") as tmp:
        path = g.write(Path(tmp))
        try:
            compiled = Compiler().compile(path)
        except CclError as exc:
            return Outcome(seed, "invalid", g.features, problems=(str(exc)[:2000],),
                           program=g.text(), seconds=time.perf_counter() - start)
        try:
            return _verify_and_fly(g, compiled, timeout_ms, periods, start)
        except Exception:  # noqa: BLE001 - a crash of any stage is a finding, not the end
            return Outcome(seed, "crashed", g.features,
                           problems=(traceback.format_exc()[-3000:],), program=g.text(),
                           seconds=time.perf_counter() - start)


def _verify_and_fly(g: Generated, compiled: Compiled, timeout_ms: int, periods: int,
                    start: float) -> Outcome:
    report = verify_program(compiled, timeout_ms=timeout_ms)
    vmlet_reports = [_vmlet_report(v, timeout_ms) for v in compiled.vmlets]
    verify_seconds = time.perf_counter() - start
    verdict = combined_status([report, *vmlet_reports])
    if verdict != "proven":
        return Outcome(g.seed, verdict, g.features, seconds=time.perf_counter() - start,
                       verify_seconds=verify_seconds)
    e = examine(compiled, report, vmlet_reports, periods=periods)
    return Outcome(g.seed, verdict, g.features, e.flights, e.refused, e.trapped, e.overran,
                   e.below, e.ratios, e.problems, g.text() if e.problems else "",
                   time.perf_counter() - start, verify_seconds)


@dataclass(frozen=True)
class Examination:
    """A configuration flown at all its trial inputs and judged against its reports."""

    flights: int
    refused: bool
    trapped: bool
    overran: bool
    below: bool  # some entry point took more cycles than its bound in some flight
    ratios: tuple[float, ...]  # per task that ran: bound / most cycles in any flight
    problems: tuple[str, ...]

    @property
    def sound(self) -> bool:
        return not (self.refused or self.trapped or self.overran or self.below)


def examine(compiled: Compiled, report: VerifyReport, vmlet_reports: list[VerifyReport],
            *, periods: int = 2) -> Examination:
    """Fly ``compiled`` at every input of ``flight_inputs`` and judge each flight against
    the reports, as if they proved it (the campaign calls this for proven programs only;
    the tests also give it wrong proofs, to see it fail)."""
    on_load_bounds = {r.name: w.bound for r in vmlet_reports for w in r.budgets.worst_cases
                      if w.kind == "on load"}
    worst: dict[str, int] = {}
    problems: list[str] = []
    flags = {"refused": False, "trapped": False, "overran": False, "below": False}
    flights = 0
    rig = Rig(compiled)
    for label, inputs in flight_inputs(compiled, report, vmlet_reports):
        flight = rig.fly(inputs, periods=periods)
        flights += 1
        j = judge(report, flight)
        below = list(j.below)
        for name, cycles in flight.on_load.items():
            if name in on_load_bounds and cycles > on_load_bounds[name]:
                below.append(f"on load of {name}")
        for name, seen in flight.observed.items():
            worst[name] = max(worst.get(name, 0), seen)
        what = []
        if j.refused:
            flags["refused"] = True
            what.append(f"refused by the board: {flight.refused}")
        if j.trapped:
            flags["trapped"] = True
            what.append("trapped: " + "; ".join(str(f) for f in flight.faults
                                                if f.code.name != "OVERRUN"))
        if j.overran:
            flags["overran"] = True
            what.append(f"{flight.overruns} overruns")
        if below:
            flags["below"] = True
            what.append("observed above the bound: " + ", ".join(
                f"{n} {_seen(flight, n)} > {_bound(report, vmlet_reports, n)}" for n in below))
        if what:
            problems.append(f"flight {label}: " + "; ".join(what))
        if j.refused:
            break  # every flight packs the same patch
    bounds = {w.name: w.bound for w in report.budgets.tasks}
    ratios = tuple(bounds[n] / seen for n, seen in sorted(worst.items())
                   if n in bounds and seen > 0)
    return Examination(flights, flags["refused"], flags["trapped"], flags["overran"],
                       flags["below"], ratios, tuple(problems))


#: VMlet reports by image and solver time limit (a VMlet's verdict depends on nothing
#: else), kept for the life of the process: the generator draws VMlets from a few dozen.
_VMLET_REPORTS: dict[tuple[str, int], VerifyReport] = {}


def _vmlet_report(vmlet: Compiled, timeout_ms: int) -> VerifyReport:
    key = (vmlet.image.content_hash.hex(), timeout_ms)
    if key not in _VMLET_REPORTS:
        if len(_VMLET_REPORTS) >= 256:
            _VMLET_REPORTS.clear()
        _VMLET_REPORTS[key] = verify_program(vmlet, timeout_ms=timeout_ms)
    return _VMLET_REPORTS[key]


def _seen(flight: Flight, name: str) -> int | None:
    if name == "on apply":
        return flight.on_apply
    if name.startswith("on load of "):
        return flight.on_load.get(name.removeprefix("on load of "))
    return flight.observed.get(name)


def _bound(report: VerifyReport, vmlet_reports: list[VerifyReport], name: str) -> int | None:
    if name.startswith("on load of "):
        vm = name.removeprefix("on load of ")
        return next((w.bound for r in vmlet_reports if r.name == vm
                     for w in r.budgets.worst_cases if w.kind == "on load"), None)
    return next((w.bound for w in report.budgets.worst_cases if w.name == name), None)


# --------------------------------------------------------------------------- inputs


def flight_inputs(compiled: Compiled, report: VerifyReport,
                  vmlet_reports: list[VerifyReport], *,
                  rng: random.Random | None = None) -> Iterator[tuple[str, Inputs]]:
    """The inputs a proven program is flown at: the witness of each worst case the
    verifier reported (tasks, ``on apply``, the VMlets' ``on load``), then adversarial
    ones: every parameter at its low or high end, tables at one extreme that switch to
    the other half-way through the flight, natives at one end of their result range for
    some calls and then at the other. Distinct inputs only."""
    rng = rng or random.Random(compiled.image.content_hash)
    seen: set[str] = set()

    def once(label: str, inputs: Inputs) -> Iterator[tuple[str, Inputs]]:
        key = repr(inputs)
        if key not in seen:
            seen.add(key)
            yield label, inputs

    for r in (report, *vmlet_reports):
        for w in r.budgets.worst_cases:
            if w.kind in ("task", "on apply", "on load") and w.witness is not None:
                yield from once(f"witness of {w.kind} {w.name}",
                                witness_inputs(compiled, w.witness.replay))
    image = compiled.image
    profile = compiled.mission
    params = list(image.globals)  # parameters and state variables alike
    tables = list(image.arrays)  # tables and state arrays
    natives = {name: n.result for name, n in profile.natives.items() if n.result is not None}
    hyper = hyperperiod_ms(image, profile.frame_ms)
    change = max(profile.frame_ms, hyper // 2 // profile.frame_ms * profile.frame_ms)
    env_edges = {key: (e.lo, e.hi) for key, e in profile.env.items()}

    def scripted(first_low: bool, calls: int) -> dict[str, NativeScript]:
        return {n: NativeScript(lo if first_low else hi, calls, hi if first_low else lo)
                for n, (lo, hi) in natives.items()}

    plans: list[tuple[str, Callable[[], Inputs]]] = [
        ("all high", lambda: Inputs(
            params={g.name: g.hi for g in params},
            tables={a.name: [a.hi] * a.length for a in tables},
            env={k: hi for k, (_, hi) in env_edges.items()})),
        ("all low", lambda: Inputs(
            params={g.name: g.lo for g in params},
            tables={a.name: [a.lo] * a.length for a in tables},
            natives={n: NativeScript(lo) for n, (lo, _) in natives.items()},
            env={k: lo for k, (lo, _) in env_edges.items()})),
        ("high, tables low then high, natives low then high", lambda: Inputs(
            params={g.name: g.hi for g in params},
            tables={a.name: [a.lo] * a.length for a in tables},
            later_tables={a.name: [a.hi] * a.length for a in tables}, change_ms=change,
            natives=scripted(True, rng.choice([1, 2, 5, 20, 100])))),
        ("mixed, tables high then low, natives high then low", lambda: Inputs(
            params={g.name: rng.choice([g.lo, g.hi]) for g in params},
            tables={a.name: _stripes(rng, a.lo, a.hi, a.length) for a in tables},
            later_tables={a.name: [a.lo] * a.length for a in tables}, change_ms=change,
            natives=scripted(False, rng.choice([1, 3, 10, 50])))),
    ]
    reads_env = bool(image.env) or any(v.image.env for v in compiled.vmlets)
    for label, make in plans:
        inputs = make()
        if not reads_env:  # one load serves every flight
            inputs = replace(inputs, env={})
        yield from once(label, inputs)


def witness_inputs(compiled: Compiled, replay: Replay) -> Inputs:
    """The inputs of a worst case's witness: its parameter and state values, its tables'
    and arrays' contents, one value per native and its environment."""
    arrays = {a.name: replay.array_values(a.name, a.length, a.lo, a.hi)
              for a in compiled.image.arrays if any(n == a.name for n, _, _ in replay.arrays)}
    return Inputs(params=replay.global_values(), tables=arrays,
                  natives={n: NativeScript(v) for n, v in replay.native_values().items()},
                  env=replay.env_values())


def _stripes(rng: random.Random, lo: int, hi: int, length: int) -> list[int]:
    """``length`` values at ``lo`` or ``hi``, in runs of random lengths."""
    out: list[int] = []
    while len(out) < length:
        out += [rng.choice([lo, hi])] * rng.choice([1, 1, 2, 5, 50, 1000])
    return out[:length]
