"""Flight trials: a verified configuration packed, checked by the onboard patcher, loaded and
run on the real VVM and scheduler at adversarial inputs, and compared with what was proven.

``ccl verify`` promises that a proven configuration is accepted by the VVM and, on board,
never traps, never runs a task past the cycles it reported, and never makes a task miss its
frame. A trial tests that promise the way the board would break it: the patch goes through
``onboard.patching.patcher`` (the board's checks, bytecode verifier included), the configuration
runs on the VVM's scheduler from its switch (``on apply`` first) for at least one
hyperperiod, with parameters at their extremes, tables that change value part-way, and
natives that return one value for some calls and then another. Every fault, overrun and
task's worst cycles come from the VVM's telemetry.

Used by the soundness campaign (``benchmarks/soundness.py``) and by the tests.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ccl.compiled import Compiled
from ccl.pack import pack
from ccl.verify.replay import NativeScript, TrialHost
from ccl.verify.report import VerifyReport
from onboard.mission import MissionProfile
from onboard.patching.patch_format import development_key
from onboard.patching.patcher import Patcher, PatchRejected
from onboard.patching.store import Store
from onboard.vm.faults import Fault, TrapCode
from onboard.vm.image import Image
from onboard.vm.loader import LoadError, Program
from onboard.vm.machine import Limits
from onboard.vm.reference import Memory
from onboard.vm.scheduler import ON_APPLY
from onboard.vm.vvm import VVM


@dataclass(frozen=True)
class Inputs:
    """One adversarial setting: parameter values, table contents (and, after ``change_ms``
    of flight, other contents), native scripts, and the values of ``env``."""

    params: Mapping[str, int] = field(default_factory=dict)
    tables: Mapping[str, Sequence[int]] = field(default_factory=dict)
    later_tables: Mapping[str, Sequence[int]] = field(default_factory=dict)
    change_ms: int = 0
    natives: Mapping[str, NativeScript] = field(default_factory=dict)
    env: Mapping[str, int] = field(default_factory=dict)  # default: the profile's values


@dataclass(frozen=True)
class Flight:
    """What the VVM reported about one trial."""

    refused: str | None  # the patcher's reason, if the board refused the patch
    faults: tuple[Fault, ...] = ()
    overruns: int = 0
    observed: Mapping[str, int] = field(default_factory=dict)  # task -> worst cycles seen
    frames: int = 0
    on_apply: int | None = None  # cycles `on apply` took, if it ran to its end
    on_load: Mapping[str, int] = field(default_factory=dict)  # VMlet -> its `on load` cycles

    @property
    def trapped(self) -> bool:
        return any(f.code is not TrapCode.OVERRUN for f in self.faults)


def hyperperiod_ms(image: Image, frame_ms: int) -> int:
    """The least common multiple of the tasks' periods (one frame without tasks)."""
    return math.lcm(frame_ms, *(t.period_ms for t in image.tasks))


def fly(compiled: Compiled, inputs: Inputs, *, periods: int = 2,
        max_ms: int = 3_600_000) -> Flight:
    """Pack ``compiled`` (full, development key), check it with the onboard patcher, load it
    on a fresh VVM, apply ``inputs`` and run it from the switch for ``periods``
    hyperperiods (at most ``max_ms``) on the real scheduler."""
    return Rig(compiled).fly(inputs, periods=periods, max_ms=max_ms)


class Rig:
    """One configuration, checked by the onboard patcher once, then flown at many inputs.

    Flights are independent, as if each ran on a fresh VVM: the patch is packed and checked
    once (a refusal is every flight's answer), the configuration is loaded (verified, bound
    and translated) once per environment its inputs give (``env`` is bound at load, and
    the VMlets' ``on load`` runs then), and before each flight its data memory is put back
    as loaded and its natives' scripts start again."""

    def __init__(self, compiled: Compiled) -> None:
        self.profile = compiled.mission
        key = development_key(self.profile.name)
        vmlets = tuple(v.image for v in compiled.vmlets)
        self.refused: str | None = None
        self._loaded: dict[tuple[tuple[str, int], ...], _Loaded | str] = {}
        with tempfile.TemporaryDirectory(prefix="ccl-trial-") as tmp:
            store = Store.init(Path(tmp) / "store")
            patcher = Patcher(self.profile, store, key, accept_unverified=True)
            packed = pack(compiled.image, vmlets, self.profile, key, seq=1)
            try:
                self.accepted = patcher.check(packed.data)
            except PatchRejected as exc:
                self.refused = f"{exc.reason.name.lower()}: {exc.message}"

    def _load(self, env: Mapping[str, int]) -> _Loaded | str:
        key = tuple(sorted(env.items()))
        if key not in self._loaded:
            host = TrialHost(self.profile, {}, env)
            config = self.accepted.configuration
            try:  # the switch: a VMlet's on load may hide what the patcher saw (the board
                # rolls back)
                program = VVM(self.profile, host).prepare(config.config, config.vmlets)
            except LoadError as exc:
                self._loaded[key] = f"{exc.code}: {exc.message}"
            else:
                memory = program.memory
                self._loaded[key] = _Loaded(host, program, list(memory.globals),
                                            [list(a) for a in memory.arrays])
        return self._loaded[key]

    def fly(self, inputs: Inputs, *, periods: int = 2, max_ms: int = 3_600_000) -> Flight:
        """Apply ``inputs`` and run the configuration from the switch for ``periods``
        hyperperiods (at most ``max_ms``) on the real scheduler of a fresh VVM."""
        if self.refused is not None:
            return Flight(refused=self.refused)
        loaded = self._load(inputs.env)
        if isinstance(loaded, str):
            return Flight(refused=loaded)
        profile = self.profile
        program = loaded.restart(inputs.natives)
        vm = VVM(profile, loaded.host)
        _set_inputs(program.memory, program.image, inputs.params, inputs.tables)
        vm.activate(program)
        # The one-shot `on apply` job is not in the task telemetry: keep hold of it to read
        # its cycles after the flight.
        on_apply_job = next((j for j in vm.scheduler.jobs if j.name == ON_APPLY), None)
        span = min(max_ms, periods * hyperperiod_ms(program.image, profile.frame_ms))
        if inputs.later_tables and 0 < inputs.change_ms < span:
            vm.run_for(inputs.change_ms)
            _set_inputs(program.memory, program.image, {}, inputs.later_tables)
            vm.run_for(span - inputs.change_ms)
        else:
            vm.run_for(span)
        tm = vm.telemetry
        observed = {name: s.worst_cycles for name, s in tm.tasks.items()}
        overruns = sum(s.overruns for s in tm.tasks.values())
        applied = on_apply_job.cycles if on_apply_job is not None \
            and on_apply_job not in vm.scheduler.jobs and not any(
                f.task == ON_APPLY for f in tm.faults) else None
        loads = {v.image.name: v.on_load_cycles for v in program.vmlets}
        return Flight(None, tuple(tm.faults), overruns, observed, span // profile.frame_ms,
                      applied, loads)


@dataclass(frozen=True)
class _Loaded:
    """A configuration loaded once for one environment, and its memory as loaded."""

    host: TrialHost
    program: Program
    globals: list[int]
    arrays: list[list[int]]

    def restart(self, natives: Mapping[str, NativeScript]) -> Program:
        """The program with its memory as loaded (in place: the translated code holds its
        lists) and natives that follow ``natives`` from their first call."""
        memory = self.program.memory
        memory.globals[:] = self.globals
        for live, saved in zip(memory.arrays, self.arrays, strict=True):
            live[:] = saved
        self.host.scripts = dict(natives)
        self.host.calls = {}
        return self.program


def _set_inputs(memory: Memory, image: Image, params: Mapping[str, int],
                tables: Mapping[str, Sequence[int]]) -> None:
    """Write parameter values and table contents (clamped into their declared ranges)
    into a program's data memory, in place (the translated code holds its lists)."""
    for i, g in enumerate(image.globals):
        if g.name in params:
            memory.globals[i] = min(max(params[g.name], g.lo), g.hi)
    for i, a in enumerate(image.arrays):
        if a.name in tables:
            values = list(tables[a.name])[:a.length]
            values += [a.lo] * (a.length - len(values))
            memory.arrays[i][:] = [min(max(v, a.lo), a.hi) for v in values]


@dataclass(frozen=True)
class Judgement:
    """A trial of a proven configuration against its proof."""

    refused: bool
    trapped: bool
    overran: bool
    below: tuple[str, ...]  # tasks whose observed cycles exceed the proven bound
    ratios: tuple[float, ...]  # bound / observed per task that ran

    @property
    def sound(self) -> bool:
        return not (self.refused or self.trapped or self.overran or self.below)


def judge(report: VerifyReport, flight: Flight) -> Judgement:
    """Compare a flight with the proof: refusal, traps, overruns, bounds below observed
    (the tasks', and ``on apply``'s when it ran to its end)."""
    bounds = {w.name: w.bound for w in report.budgets.tasks}
    below = sorted(n for n, seen in flight.observed.items()
                   if n in bounds and seen > bounds[n])
    apply_bound = next((w.bound for w in report.budgets.worst_cases if w.kind == "on apply"),
                       None)
    if flight.on_apply is not None and apply_bound is not None \
            and flight.on_apply > apply_bound:
        below.append(ON_APPLY)
    ratios = tuple(bounds[n] / seen for n, seen in flight.observed.items()
                   if n in bounds and seen > 0)
    return Judgement(flight.refused is not None, flight.trapped, flight.overruns > 0,
                     tuple(below), ratios)


def frame_budget(profile: MissionProfile) -> int:
    """What a frame leaves the tasks (for generators that aim near it)."""
    return Limits.of(profile).frame_budget
