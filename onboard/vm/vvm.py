"""The Virtual Virtual Machine: loads VMlets, becomes the VM they describe, runs one
configuration under the reconfiguration share, and reports telemetry.

This is the object the onboard software (and every simulation) drives::

    vm = VVM(profile, host)
    vm.load_vmlet(photometry_image)
    vm.load(exo_e1_image)            # verified, bound, translated; on apply runs first
    vm.run_for(6 * 3600 * 1000)      # simulated milliseconds
    vm.telemetry.summary(...)

``call`` runs one code unit to completion outside the scheduler (tests, ground
cross-checks); ``run_for`` runs the periodic tasks frame by frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from onboard.mission import MissionProfile
from onboard.vm.faults import Fault, Trap
from onboard.vm.host import Host
from onboard.vm.image import Image
from onboard.vm.loader import LoadedVmlet, LoadError, Program, load_config, load_vmlet
from onboard.vm.machine import Limits
from onboard.vm.reference import Memory
from onboard.vm.scheduler import Background, Scheduler
from onboard.vm.telemetry import Telemetry

#: Budget of ``call`` when none is given: effectively unlimited, but finite.
UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Outcome:
    """The result of running one code unit: value, cycles, the fault if it trapped, and
    whether it ran out of budget before its end."""

    result: int | None
    cycles: int
    fault: Fault | None
    exhausted: bool = False  # stopped when the budget ran out (``VVM.run``)


class Reconfigurer(Background, Protocol):
    """What drives a VVM's reconfiguration (``onboard.patching.reconfiguration``), as the
    VVM sees it: work run first in every frame, in the patch reserve, a door for complete
    patches, and a telemetry summary. The VVM knows nothing else of patches."""

    def receive(self, data: bytes, ticket: int) -> object: ...
    def status(self) -> dict[str, Any]: ...


class VVM:
    """One onboard VVM instance for one mission and host."""

    def __init__(self, profile: MissionProfile, host: Host, *,
                 task_budget: int | None = None, patch_reserve: int | None = None) -> None:
        """A VVM runs only what is loaded directly until a ``Reconfigurer`` attaches to it
        (``attach``) to take patches. ``task_budget`` and ``patch_reserve`` (cycles per
        frame) default to the whole share less the mission's patch reserve, and that
        reserve; an application of a ``Board`` (``onboard.vm.board``) has its part of the
        share and its slice of the reserve instead."""
        self.profile = profile
        self.host = host
        self.vmlets: dict[str, LoadedVmlet] = {}
        self.program: Program | None = None
        self.telemetry = Telemetry(profile.frame_ms, profile.share_cycles_per_frame)
        self.scheduler = Scheduler(profile.frame_ms,
                                   Limits.of(profile).frame_budget if task_budget is None
                                   else task_budget, host, self.telemetry)
        self.patch_reserve = profile.patch_reserve_cycles_per_frame if patch_reserve is None \
            else patch_reserve
        self.reconfiguration: Reconfigurer | None = None

    def attach(self, reconfigurer: Reconfigurer) -> None:
        """Let ``reconfigurer`` take patches (``receive_patch``) and run first in every
        frame, in the mission's patch reserve."""
        self.reconfiguration = reconfigurer
        self.scheduler.background = reconfigurer
        self.scheduler.reserve_per_frame = self.patch_reserve

    @property
    def now_ms(self) -> int:
        return self.scheduler.now_ms

    # ------------------------------------------------------------------ loading

    def load_vmlet(self, image: Image) -> LoadedVmlet:
        """Load (or replace) a VMlet, on the layers below it already loaded; raise
        ``LoadError`` and change nothing on failure."""
        with _loading(image):
            loaded = load_vmlet(image, self.profile, self.host, tuple(self.vmlets.values()))
        self.vmlets[image.name] = loaded
        return loaded

    def prepare(self, config: Image, vmlets: Sequence[Image] = ()) -> Program:
        """Verify, bind and translate ``config`` (with ``vmlets`` loaded on top of the ones
        already here) without switching to it; raise ``LoadError``, also when the engine
        itself fails on it (a translator bug must refuse a configuration, never crash)."""
        with _loading(config):
            candidates = dict(self.vmlets)
            for image in vmlets:
                candidates[image.name] = load_vmlet(image, self.profile, self.host,
                                                    tuple(candidates.values()))
            return load_config(config, tuple(candidates.values()), self.profile, self.host)

    def activate(self, program: Program, *, run_on_apply: bool = True,
                 carry_state: bool = True) -> None:
        """Switch to ``program`` at the next frame boundary; its ``on apply`` runs first.
        With ``carry_state``, its state variables and arrays of unchanged name and type take
        the values they have in the program it replaces. All or nothing: if it raises, the
        VVM runs what it ran before, untouched."""
        if carry_state and self.program is not None and self.program is not program:
            carry(self.program, program)  # writes only the new program's memory
        self.scheduler.install(program, run_on_apply=run_on_apply)
        for v in program.vmlets:
            self.vmlets[v.image.name] = v
        self.program = program
        img = program.image
        self.telemetry.config_hash = img.content_hash
        self.telemetry.config_name = img.name
        self.telemetry.config_version = img.version

    def deactivate(self) -> None:
        """Run no configuration (a rollback of the first one ever applied)."""
        self.program = None
        self.telemetry.config_hash, self.telemetry.config_name = b"", ""
        self.telemetry.config_version = 0
        self.scheduler.uninstall()

    def receive_patch(self, data: bytes, ticket: int = 0) -> object:
        """A complete patch, for checking and applying inside the patch reserve by the
        attached reconfigurer; ``ticket`` names it in fates (the transfer id). Returns the
        reconfigurer's answer (``onboard.patching.patcher.Fate``)."""
        if self.reconfiguration is None:
            raise LoadError("no-patcher", "no reconfiguration is attached to this VVM")
        return self.reconfiguration.receive(data, ticket)

    def load(self, config: Image, vmlets: Sequence[Image] = ()) -> Program:
        """Load a configuration and switch to it (``prepare`` then ``activate``)."""
        program = self.prepare(config, vmlets)
        self.activate(program)
        return program

    # ------------------------------------------------------------------ running

    def run_for(self, ms: int, *, finish_jobs: bool = False) -> None:
        """Advance the simulated clock by ``ms`` milliseconds, running tasks."""
        self.scheduler.run_until(self.scheduler.now_ms + ms, finish_jobs=finish_jobs)

    def call(self, name: str, args: Sequence[int] = (), budget: int | None = None) -> Outcome:
        """Run code unit ``name`` of the active program to its end (outside the scheduler)
        with ``budget`` cycles at most (unlimited if None); a trap is returned, not raised."""
        give = UNLIMITED if budget is None else budget
        outcome = run_unit(self._active(), name, args, give, self.now_ms)
        if outcome.exhausted:
            raise LoadError("budget", f"`{name}` needs more than {give} cycles")
        return outcome

    def run(self, program: Program, name: str, args: Sequence[int] = (),
            budget: int = UNLIMITED) -> Outcome:
        """Run code unit ``name`` of ``program`` (prepared, active or not) once, outside the
        scheduler, with ``budget`` cycles at most: a trap is returned, not raised, and a run
        that needs more than ``budget`` is stopped there (``exhausted``), never resumed."""
        return run_unit(program, name, args, budget, self.now_ms)

    def global_value(self, name: str) -> int:
        program = self._active()
        for i, g in enumerate(program.image.globals):
            if g.name == name:
                return program.memory.globals[i]
        raise KeyError(name)

    def set_global(self, name: str, value: int) -> None:
        """Set a global (tests and ground cross-checks; patches change parameters on
        board). The value must lie in the global's declared range."""
        program = self._active()
        for i, g in enumerate(program.image.globals):
            if g.name == name:
                if not g.lo <= value <= g.hi:
                    raise ValueError(f"{name} = {value} is outside [{g.lo}, {g.hi}]")
                program.memory.globals[i] = value
                return
        raise KeyError(name)

    def array_values(self, name: str) -> list[int]:
        program = self._active()
        for i, a in enumerate(program.image.arrays):
            if a.name == name:
                return list(program.memory.arrays[i])
        raise KeyError(name)

    def rules_hold(self) -> list[str]:
        """The flight rules that do not hold for the current values (empty: all hold)."""
        program = self._active()
        broken = []
        for rule in program.image.rules:
            out = self.call(program.image.functions[rule.function].name)
            if out.fault is not None or out.result != 1:
                broken.append(rule.text)
        return broken

    def status(self) -> dict[str, Any]:
        """Telemetry as a JSON-ready dictionary."""
        out = self.telemetry.summary(self.now_ms, self.profile.frame_cycles)
        out["mission"] = self.profile.name
        out["vmlets"] = [{"name": v.image.name, "version": v.image.version,
                          "hash": v.image.content_hash.hex(), "visible": sorted(v.visible)}
                         for v in self.vmlets.values()]
        out["share_cycles_per_frame"] = self.profile.share_cycles_per_frame
        out["task_budget_per_frame"] = self.scheduler.budget_per_frame
        out["patch_reserve_per_frame"] = self.scheduler.reserve_per_frame
        if self.program is not None and self.program.code.fallbacks:
            # units the translator could not translate, running on the reference engine
            functions = self.program.image.functions
            out["engine_fallbacks"] = {functions[i].name: why
                                       for i, why in self.program.code.fallbacks.items()}
        if self.reconfiguration is not None:
            out.update(self.reconfiguration.status())
        return out

    def _active(self) -> Program:
        if self.program is None:
            raise LoadError("no-config", "no configuration is loaded")
        return self.program


def run_unit(program: Program, name: str, args: Sequence[int] = (),
             budget: int | None = None, now_ms: int = 0) -> Outcome:
    """Run code unit ``name`` of ``program`` (active or only prepared) once, outside the
    scheduler, metered, with ``budget`` cycles at most (unlimited if None): a trap is
    returned (dated ``now_ms``), not raised, and a run that needs more than the budget is
    stopped there (``exhausted``), never resumed."""
    unit = program.unit(name)
    fn = program.code.functions[unit]
    give = UNLIMITED if budget is None else budget
    try:
        gen = fn(give, *args)
        next(gen)
    except StopIteration as done:
        left, result = done.value
        return Outcome(result, give - left, None)
    except Trap as trap:
        fault = Fault(now_ms, name, trap.code, program.image.functions[trap.unit].name,
                      trap.offset)
        return Outcome(None, give - trap.remaining, fault)
    gen.close()
    return Outcome(None, give, None, exhausted=True)


def carry(old: Program, new: Program) -> None:
    """Give ``new``'s state variables and arrays the values of ``old``'s of the same name
    and declared type (range, and length for arrays), in place (the translated code holds
    the memory's lists)."""
    carry_from(old.image, old.memory, new)


def carry_from(image: Image, memory: Memory, new: Program) -> None:
    """``carry`` from the data ``memory`` of a configuration ``image`` that need not be
    loaded (a saved state, after a reset)."""
    globals_ = {g.name: (i, g) for i, g in enumerate(image.globals) if g.writable}
    for i, g in enumerate(new.image.globals):
        hit = globals_.get(g.name)
        if g.writable and hit is not None and (hit[1].lo, hit[1].hi) == (g.lo, g.hi):
            new.memory.globals[i] = memory.globals[hit[0]]
    arrays = {a.name: (i, a) for i, a in enumerate(image.arrays) if a.writable}
    for i, a in enumerate(new.image.arrays):
        was = arrays.get(a.name)
        if a.writable and was is not None and \
                (was[1].lo, was[1].hi, was[1].length) == (a.lo, a.hi, a.length):
            new.memory.arrays[i][:] = memory.arrays[was[0]]


@contextmanager
def _loading(image: Image) -> Iterator[None]:
    """Turn any failure while loading ``image`` into a ``LoadError``: whatever an image does
    to the engine, the VVM refuses it and runs on."""
    try:
        yield
    except LoadError:
        raise
    except Exception as exc:  # a bug of the engine, met by this image
        raise LoadError("internal", f"`{image.name}` v{image.version} cannot be loaded: the "
                                    f"VVM failed on it ({type(exc).__name__}: {exc})") \
            from None
