"""Running what the verifier found on the VVM: a host whose natives return chosen values, and
a run of one entry point from the values of a counterexample or a worst case."""

from __future__ import annotations

from collections.abc import Mapping

from ccl.driver import Compiled
from ccl.verify import Kind, Replay
from onboard.faults import TrapCode
from onboard.host import NativeFn
from onboard.mission import MissionProfile
from onboard.vvm import VVM, Outcome

#: The trap the VVM raises when an obligation of this kind fails.
TRAP_OF = {
    Kind.OVERFLOW: TrapCode.OVERFLOW, Kind.DIV_ZERO: TrapCode.DIV_ZERO,
    Kind.INDEX: TrapCode.INDEX, Kind.RANGE: TrapCode.RANGE, Kind.ARGUMENT: TrapCode.RANGE,
    Kind.RESULT: TrapCode.RANGE, Kind.NATIVE_ARG: TrapCode.NATIVE_ARG,
}


class ScriptedHost:
    """A host whose every native returns one fixed value (clamped into its result range)."""

    def __init__(self, profile: MissionProfile, natives: Mapping[str, int],
                 env: Mapping[str, int]) -> None:
        self.profile = profile
        self.values = dict(natives)
        self.env_values = dict(env)
        self.calls: dict[str, int] = {}

    def native(self, name: str) -> NativeFn | None:
        decl = self.profile.natives.get(name)
        if decl is None:
            return None
        result = None
        if decl.result is not None:
            lo, hi = decl.result
            result = min(max(self.values.get(name, lo), lo), hi)

        def call(*_args: int) -> int | None:
            self.calls[name] = self.calls.get(name, 0) + 1
            return result

        return call

    def env(self, key: str) -> int:
        return self.env_values.get(key, self.profile.env[key].value)

    def advance(self, now_ms: int) -> None:
        pass


def run(compiled: Compiled, unit: str, replay: Replay, args: tuple[int, ...] = ()) -> Outcome:
    """Load ``compiled`` on a fresh VVM, set the replay's state and run ``unit`` once."""
    host = ScriptedHost(compiled.mission, replay.native_values(), replay.env_values())
    vm = VVM(compiled.mission, host)
    for v in compiled.vmlets:
        vm.load_vmlet(v.image)
    program = vm.prepare(compiled.image)
    vm.activate(program, run_on_apply=False)
    values = replay.global_values()
    for g in compiled.image.globals:
        if g.name in values:
            vm.set_global(g.name, values[g.name])
    for i, a in enumerate(compiled.image.arrays):
        program.memory.arrays[i][:] = replay.array_values(a.name, a.length, a.lo, a.hi)
    return vm.call(unit, args)


def unit_of(where: str) -> str:
    """The code unit an obligation's procedure runs as: `task mark > clamp` runs in `mark`."""
    head = where.split(" > ")[0]
    return head.removeprefix("task ").removeprefix("fn ").removeprefix("instr ")
