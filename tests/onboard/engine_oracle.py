"""The differential oracle of the two execution engines: a generated case
(``bytecode_programs``) is loaded through the real loader (verify, bind, translate), then
its entry points run on the translated engine (the one that flies) and on the reference
interpreter, each on its own copy of data memory, under several budget slicings.

The contract (``onboard.vm.reference``, ``onboard.vm.translator``): the engines agree cycle for
cycle, so for every slicing they must give the same result or the same trap (code, unit,
offset), charge the same cycles, suspend with the same budget left at every suspension,
make the same native calls with the same arguments, and leave the same data memory. A
host exception (anything but a ``Trap``) from either engine or from the loader, on a case
the verifier accepts, is a failure, as is any disagreement.

Slicings: one huge budget; exactly the cycles the run needs and one fewer (the last
instruction must then wait); a constant slice given at every suspension (as a test gives
frames); and absolute budgets drawn at random at every suspension, which may be less than
what is left (as the scheduler gives what is left of the next frame). A run stops being
followed after ``MAX_RESUMES`` suspensions (a native whose cost grows with its arguments
may never fit): both engines are compared up to there.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from bytecode_programs import PROFILE, Case

from onboard.vm.faults import Trap, TrapCode
from onboard.vm.loader import LoadedVmlet, LoadError, Program, load_config, load_vmlet
from onboard.vm.reference import Memory, run
from onboard.vm.verifier import REASONS
from onboard.vm.vvm import VVM

BIG = 1 << 40
MAX_RESUMES = 400


class FuzzHost:
    """A host whose natives are pure functions of their arguments (so both engines see the
    same values), each call logged in ``log``. ``flux`` returns a value outside its declared
    range for some stars, so the engines' check of native results is exercised."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def native(self, name: str) -> Callable[..., int | None] | None:
        return getattr(self, f"_{name}", None)

    def env(self, key: str) -> int:
        return PROFILE.env[key].value

    def advance(self, now_ms: int) -> None:
        return None

    def _flux(self, star: int) -> int:
        self.log.append(("flux", star))
        return 16_777_216 if star % 500 == 7 else (star * 2_654_435_761) % 16_777_216

    def _noise(self, star: int) -> int:
        self.log.append(("noise", star))
        return star * 11 % 65_536

    def _flag(self, star: int, code: int) -> None:
        self.log.append(("flag", star, code))

    def _window_sum(self, star: int, w: int, h: int) -> int:
        self.log.append(("window_sum", star, w, h))
        return (star * w + h) % 268_431_361

    def _heater_set(self, zone: int, mk: int) -> None:
        self.log.append(("heater_set", zone, mk))


HOST = FuzzHost()
_loaded: dict[bytes, LoadedVmlet] = {}


def loaded_vmlet(image: Any) -> LoadedVmlet:
    """A VMlet of the pool, loaded once per process."""
    key = image.content_hash
    if key not in _loaded:
        _loaded[key] = load_vmlet(image, PROFILE, HOST)
    return _loaded[key]


# --------------------------------------------------------------------------- driving

Schedule = tuple[int, Callable[[int], int]]  # first budget; next budget given what is left
Outcome = tuple[Any, ...]


def drive(execution: Generator[int, int, Any], schedule: Schedule) -> Outcome:
    """Run an execution under ``schedule``: (kind, result or trap, cycles charged,
    budgets left at each suspension)."""
    first, again = schedule
    sent = first
    charged = 0
    yields: list[int] = []
    try:
        left = next(execution)
        while True:
            yields.append(left)
            charged += sent - left
            if len(yields) > MAX_RESUMES:
                execution.close()
                return ("cut", charged, tuple(yields))
            sent = again(left)
            left = execution.send(sent)
    except StopIteration as stop:
        left, result = stop.value
        return ("ok", result, charged + sent - left, tuple(yields))
    except Trap as trap:
        return ("trap", trap.code, trap.unit, trap.offset, charged + sent - trap.remaining,
                tuple(yields))


def schedule(plan: tuple[str, int], exact: int) -> Schedule:
    """A fresh budget schedule for ``plan`` (kind, parameter); ``exact``: the cycles the
    run took with a huge budget."""
    kind, p = plan
    if kind == "big":
        return BIG, lambda left: left + BIG
    if kind == "exact":
        return exact, lambda left: left + BIG
    if kind == "one short":
        return exact - 1, lambda left: left + 1
    if kind == "slices":
        return p, lambda left: left + p
    r = random.Random(p)  # "frames": absolute budgets, as the scheduler gives them
    top = r.choice((80, 80, 600))  # mostly tiny; sometimes a few iterations of a loop
    return r.randint(0, top), lambda left: r.randint(0, top)


def plans(rng: random.Random) -> list[tuple[str, int]]:
    """The slicings of one case: the huge budget first (it measures ``exact``)."""
    return [("big", 0), ("exact", 0), ("one short", 0),
            ("slices", rng.choice((1, 3, 5, 11, 37, 101, 499))),
            ("frames", rng.randrange(1 << 30))]


# --------------------------------------------------------------------------- the oracle


@dataclass
class Verdict:
    """What checking one case found."""

    accepted: bool = False
    host_exceptions: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)  # units the translator gave up on

    @property
    def ok(self) -> bool:
        return not self.host_exceptions and not self.mismatches and not self.fallbacks


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    at = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _difference(fast: Outcome, ref: Outcome) -> str:
    """How two outcomes differ, in one line."""
    if fast[:-1] != ref[:-1]:
        return f"translated {fast[:-1]}, reference {ref[:-1]}"
    a, b = fast[-1], ref[-1]
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
             min(len(a), len(b)))
    return (f"suspensions differ from the {i + 1}th on: translated {a[i:i + 6]} "
            f"({len(a)} in all), reference {b[i:i + 6]} ({len(b)})")


def _reset(memory: Memory, globals_: list[int], arrays: list[list[int]]) -> None:
    memory.globals[:] = globals_
    for arr, init in zip(memory.arrays, arrays, strict=True):
        arr[:] = init


def load(case: Case) -> Program:
    """Load ``case`` through the real loader path (raises ``LoadError``)."""
    vmlets = [loaded_vmlet(vm) for vm in case.vmlets]
    return load_config(case.image, vmlets, PROFILE, HOST)


def check(case: Case, seed: int = 0) -> Verdict:
    """Load ``case`` and run its entry points on both engines under every slicing."""
    verdict = Verdict()
    try:
        program = load(case)
    except LoadError as exc:
        if exc.code not in REASONS:  # refused for another reason than the verifier's
            verdict.accepted = True
            verdict.host_exceptions.append(f"load refused: {exc}")
        return verdict
    except Exception as exc:  # noqa: BLE001 - a loader or translator failure is a finding
        verdict.accepted = True
        verdict.host_exceptions.append(f"load: {_where(exc)}")
        return verdict
    verdict.accepted = True
    verdict.fallbacks += [f"unit {i}: {why}" for i, why in program.code.fallbacks.items()]
    fast_memory = program.memory
    ref_memory = Memory.of(program.bound)
    init_globals = list(fast_memory.globals)
    init_arrays = [list(a) for a in fast_memory.arrays]
    exact: dict[int, int] = {}  # entry -> cycles it took with a huge budget
    for plan in plans(random.Random(seed)):
        _reset(fast_memory, init_globals, init_arrays)
        _reset(ref_memory, init_globals, init_arrays)
        for e, (unit, args) in enumerate(case.entries):
            if plan[0] in ("exact", "one short") and (e not in exact or exact[e] <= 0):
                break  # a run before was cut (or took nothing): nothing exact to give
            where = f"unit {unit}{args}, {plan[0]} {plan[1]}, entry {e}"
            HOST.log = []
            try:
                first, again = schedule(plan, exact.get(e, 0))
                ref = drive(run(program.bound, ref_memory, unit, args, first), (first, again))
            except Exception as exc:  # noqa: BLE001
                verdict.host_exceptions.append(f"reference, {where}: {_where(exc)}")
                return verdict
            ref_log = HOST.log
            HOST.log = []
            try:
                first, again = schedule(plan, exact.get(e, 0))
                fast = drive(program.code.functions[unit](first, *args), (first, again))
            except Exception as exc:  # noqa: BLE001
                verdict.host_exceptions.append(f"translated, {where}: {_where(exc)}")
                return verdict
            fast_log = HOST.log
            if fast != ref:
                verdict.mismatches.append(f"{where}: {_difference(fast, ref)}")
                return verdict
            if fast_log != ref_log:
                verdict.mismatches.append(f"{where}: natives called {fast_log[:6]} by the "
                                          f"translated engine, {ref_log[:6]} by the reference")
                return verdict
            if fast_memory.globals != ref_memory.globals or \
                    fast_memory.arrays != ref_memory.arrays:
                verdict.mismatches.append(f"{where}: data memory differs")
                return verdict
            if plan[0] == "big":
                exact[e] = -1 if ref[0] == "cut" else ref[-2]
    return verdict


# --------------------------------------------------------------------------- the whole VVM

#: Simulated time a case's tasks run for on the VVM.
VVM_MS = 700


def _reference_engine(program: Program) -> None:
    """Make every unit of ``program`` run on the reference interpreter (over its own
    memory), in place of the translated code."""
    def unit_fn(unit: int) -> Callable[..., Any]:
        return lambda budget, *args: run(program.bound, program.memory, unit, args, budget)
    program.code.functions[:] = [unit_fn(u) for u in range(len(program.image.functions))]


def check_vvm(case: Case) -> list[str]:
    """The whole VVM path, twice: load the VMlets and the configuration into a VVM and
    activate it (``on apply`` first), run its tasks for ``VVM_MS``, once on the translated
    engine and once with every unit on the reference interpreter. Nothing may raise, no
    fault may be ``internal``, and both must report the same telemetry and data memory.
    Returns the findings (empty: none)."""
    runs = []
    for engine in ("translated", "reference"):
        vm = VVM(PROFILE, HOST)
        try:
            for image in case.vmlets:
                vm.load_vmlet(image)
            program = vm.prepare(case.image)
            if engine == "reference":
                _reference_engine(program)
            vm.activate(program)
            vm.run_for(VVM_MS)
        except LoadError as exc:
            if exc.code in REASONS:
                return []  # refused by the verifier: nothing to run
            return [f"VVM, {engine}: load refused: {exc}"]
        except Exception as exc:  # noqa: BLE001 - nothing may come out of the VVM
            return [f"VVM, {engine}: {_where(exc)}"]
        tm = vm.telemetry
        internal = [str(f) for f in tm.faults if f.code is TrapCode.INTERNAL]
        if internal:
            return [f"VVM, {engine}: internal faults {internal[:3]}"]
        runs.append(({n: s.as_dict() for n, s in tm.tasks.items()}, [str(f) for f in tm.faults],
                     list(tm.frames), list(tm.cycles), program.memory.globals,
                     program.memory.arrays))
    if runs[0] != runs[1]:
        what = ("task statistics", "faults", "busy frames", "frame cycles", "globals",
                "arrays")
        k = next(i for i, (a, b) in enumerate(zip(*runs, strict=True)) if a != b)
        return [f"VVM: {what[k]} differ: translated {str(runs[0][k])[:200]}, reference "
                f"{str(runs[1][k])[:200]}"]
    return []
