"""Replays: what ``ccl verify`` found (a counterexample, a worst case), run on the VVM.

A counterexample or a worst case comes with the values that reach it (``Replay``): the
parameters, state and arrays at the start of the run, one result per native, the
environment, a function's arguments. ``observe`` runs the entry point on a fresh VVM from
those values, with the VVM's own engines, and reports its cycles as the verifier counts
them and its trap; ``reaches`` says whether a worst case's witness costs exactly its bound
there, which is when ``ccl verify`` calls the bound exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ccl import ir
from ccl.compiled import Compiled
from ccl.verify.cost import CycleTable
from ccl.verify.obligations import Replay
from ccl.verify.report import WorstCase
from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.faults import Trap, TrapCode
from onboard.vm.host import NativeFn
from onboard.vm.image import Image, ImageKind
from onboard.vm.loader import LoadError, Program
from onboard.vm.reference import Memory
from onboard.vm.reference import run as reference_run
from onboard.vm.vvm import VVM, Outcome


@dataclass(frozen=True)
class NativeScript:
    """What a native returns: ``first`` for its first ``calls`` calls, then ``then``
    (values are clamped into the native's declared result range)."""

    first: int
    calls: int = 0
    then: int = 0


class TrialHost:
    """A spacecraft whose natives follow ``NativeScript``s (default: the top of their
    result range) and whose environment values are ``env`` (default: the profile's)."""

    def __init__(self, profile: MissionProfile, scripts: Mapping[str, NativeScript],
                 env: Mapping[str, int] | None = None) -> None:
        self.profile = profile
        self.scripts = dict(scripts)
        self.env_values = dict(env or {})
        self.calls: dict[str, int] = {}

    @staticmethod
    def of(profile: MissionProfile, replay: Replay) -> TrialHost:
        """The host a counterexample or a worst case runs on: one value per native."""
        return TrialHost(profile, {n: NativeScript(v) for n, v in replay.native_values().items()},
                         replay.env_values())

    def native(self, name: str) -> NativeFn | None:
        decl = self.profile.natives.get(name)
        if decl is None:
            return None
        result = decl.result

        def call(*_args: int) -> int | None:
            script = self.scripts.get(name)  # looked up at each call: scripts may change
            n = self.calls.get(name, 0)
            self.calls[name] = n + 1
            if result is None:
                return None
            lo, hi = result
            if script is None:
                return hi
            value = script.first if n < script.calls or not script.calls else script.then
            return min(max(value, lo), hi)

        return call

    def env(self, key: str) -> int:
        return self.env_values.get(key, self.profile.env[key].value)

    def advance(self, now_ms: int) -> None:
        return None



#: Cycles one run of a VMlet instruction may take on its own (far more than any needs).
_BUDGET = 1 << 40


@dataclass(frozen=True)
class Observed:
    """One run of an entry point on the VVM: its cycles as the verifier counts them (at a
    call site, for functions and instructions) and the trap, if it trapped."""

    cycles: int
    trap: TrapCode | None


def _unit_name(image: Image, kind: str, name: str) -> str:
    """The code unit entry point ``name`` (of ``kind``, as in ``WorstCase.kind``) runs as."""
    if kind == "on apply":
        assert image.on_apply is not None
        return image.functions[image.on_apply].name
    if kind == "on load":
        assert image.on_load is not None
        return image.functions[image.on_load].name
    if kind == "rule":
        return image.functions[image.rules[int(name.removeprefix("rule ")) - 1].function].name
    return name


def _any_args(compiled: Compiled, kind: str, name: str) -> tuple[int, ...]:
    program = compiled.program
    proc = program.function(name) if kind == "fn" else program.instr(program.name, name)
    return tuple(min(max(0, p.type.lo), p.type.hi) if isinstance(p.type, ir.IntType) else 0
                 for p in proc.params)


#: Loaded programs kept for the next replays of the same image (a ``ccl verify`` replays
#: every exact worst case and counterexample): loading translates every unit, which cost
#: far more than the runs. Keyed by the compiled object (kept alive here, so its id is not
#: reused) and the environment values, which binding turns into constants.
_LOADED: dict[tuple[int, tuple[tuple[str, int], ...]],
              tuple[Compiled, VVM, TrialHost, Program]] = {}
_LOADED_MAX = 8


def _loaded(compiled: Compiled, replay: Replay) -> tuple[VVM, TrialHost, Program]:
    """A VVM running ``compiled`` on a host whose environment is the replay's; its natives
    and data are set by the caller before each run. The VMlets' ``on load`` runs once, at
    this load, with every native at the top of its result range, as in the load obligation
    (``structural``): a witness's native values are those of the entry point's calls."""
    env = tuple(sorted(replay.env_values().items()))
    key = (id(compiled), env)
    hit = _LOADED.get(key)
    if hit is not None and hit[0] is compiled:
        return hit[1], hit[2], hit[3]
    host = TrialHost(compiled.mission, {}, dict(env))
    vm = VVM(compiled.mission, host)
    for v in compiled.vmlets:
        vm.load_vmlet(v.image)
    program = vm.prepare(compiled.image)
    vm.activate(program, run_on_apply=False)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.pop(next(iter(_LOADED)))
    _LOADED[key] = (compiled, vm, host, program)
    return vm, host, program


def run_entry(compiled: Compiled, unit: str, replay: Replay,
              args: tuple[int, ...] = ()) -> Outcome:
    """Run code unit ``unit`` of ``compiled`` once, outside the scheduler, from the
    replay's natives, environment and data (on a VVM that loaded it; loaded once for all
    the replays of one image and environment: every run starts from the same state)."""
    vm, host, program = _loaded(compiled, replay)
    host.scripts = {n: NativeScript(v) for n, v in replay.native_values().items()}
    host.calls.clear()
    values = replay.global_values()
    for i, g in enumerate(compiled.image.globals):
        value = values.get(g.name, g.value)
        program.memory.globals[i] = min(max(value, g.lo), g.hi)
    for i, a in enumerate(compiled.image.arrays):
        program.memory.arrays[i][:] = replay.array_values(a.name, a.length, a.lo, a.hi)
    return vm.call(unit, args)


def observe(compiled: Compiled, kind: str, name: str, replay: Replay) -> Observed:
    """Run entry point ``name`` (of ``kind``, as in ``WorstCase.kind``) of ``compiled`` on
    the VVM from the values of ``replay``. Raises ``LoadError`` if the VVM refuses it."""
    cycles = CycleTable.of(compiled.mission, (compiled.image,))
    if kind in ("fn", "instr") and not replay.args:
        # No witness (the cost does not depend on the inputs): any arguments will do.
        replay = replace(replay, args=_any_args(compiled, kind, name))
    if compiled.image.kind is ImageKind.VMLET:
        vm = VVM(compiled.mission, TrialHost.of(compiled.mission, replay))
        if kind == "on load":
            try:
                loaded = vm.load_vmlet(compiled.image)
            except LoadError as exc:
                trapped = re.search(r"on load trapped: (\w+) at", exc.message)
                if exc.code != "on-load-trap" or trapped is None:
                    raise
                return Observed(0, TrapCode[trapped.group(1).upper()])
            return Observed(loaded.on_load_cycles, None)
        loaded = vm.load_vmlet(compiled.image)
        unit = compiled.image.function_index(name)
        execution = reference_run(loaded.bound, Memory([], (), [], ()), unit, replay.args,
                                  _BUDGET)
        try:
            next(execution)
        except StopIteration as done:
            left = done.value[0]
        except Trap as trap:
            return Observed(_BUDGET - trap.remaining, trap.code)
        else:  # pragma: no cover - an instruction is far cheaper than the budget
            raise AssertionError(f"{name} ran out of {_BUDGET} cycles")
        # At a call site: the dispatch instead of the one return the unit ran on its own.
        return Observed(_BUDGET - left - cycles[isa.RETV]
                        + cycles.call(isa.EXT_BASE, compiled.image.name, name), None)
    out = run_entry(compiled, _unit_name(compiled.image, kind, name), replay,
                    replay.args if kind == "fn" else ())
    # the caller's CALL, and the callee's frame
    extra = cycles.call(isa.CALL, compiled.image.name, name) if kind == "fn" else 0
    return Observed(out.cycles + extra, out.fault.code if out.fault is not None else None)


def reaches(compiled: Compiled, worst: WorstCase) -> bool:
    """Whether the worst case's witness, run on the VVM, costs exactly its bound: only then
    is the bound the worst case rather than an upper bound that may not be reached."""
    replay = worst.witness.replay if worst.witness is not None else Replay()
    try:
        seen = observe(compiled, worst.kind, worst.name, replay)
    except LoadError:
        return False
    return seen.trap is None and seen.cycles == worst.bound
