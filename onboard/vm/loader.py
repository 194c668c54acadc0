"""The loader: turns a configuration image and the VMlet images it uses into a runnable program.

Loading a VMlet makes the VVM *become* the VM it describes: its instructions are bound to
extension opcodes, its exposed natives become visible to the programs that use it, its
hidden ones disappear, and its ``on load`` code runs and may hide more (for instance
depending on ``env(ccd)``). Loading a configuration checks that it runs on exactly the VMlet
versions it was compiled against (by content hash), verifies all its code with the
load-time bytecode verifier, binds its natives to the host, and translates its code into
fast host code. Any failure raises ``LoadError`` and nothing is loaded: loading builds new
objects and touches no existing state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from onboard.errors import OnboardError
from onboard.mission import MissionProfile
from onboard.vm.binding import Bound, ExtBinding, bind_natives, ext_fixed_cost
from onboard.vm.faults import Trap
from onboard.vm.host import Host
from onboard.vm.image import Image, ImageKind
from onboard.vm.machine import Limits, opcode_cycles
from onboard.vm.reference import Memory, run
from onboard.vm.translator import Translated, translate
from onboard.vm.verifier import ExtTarget, ImageFacts, Target, VerifyError, verify_image


class LoadError(OnboardError):
    """An image the VVM refuses to load: a stable reason code and one sentence why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class LoadedVmlet:
    """A VMlet as loaded: bound to the host, with what its ``on load`` decided."""

    image: Image
    bound: Bound
    visible: frozenset[str]  # natives programs on this VMlet may call
    hidden: frozenset[str]  # natives its `on load` hid
    on_load_cycles: int
    lower: tuple[LoadedVmlet, ...] = ()  # the VMlets it builds on (`uses`), as loaded

    def stack(self) -> dict[str, LoadedVmlet]:
        """Every layer below this VMlet and then itself, by name, lower layers first."""
        out: dict[str, LoadedVmlet] = {}
        for v in self.lower:
            out.update(v.stack())
        out[self.image.name] = self
        return out


@dataclass(frozen=True)
class Program:
    """A configuration ready to run: bound, translated, with its own data memory."""

    image: Image
    bound: Bound
    memory: Memory
    code: Translated
    facts: ImageFacts
    vmlets: tuple[LoadedVmlet, ...]

    def unit(self, name: str) -> int:
        """Index of the code unit called ``name``."""
        return self.image.function_index(name)


def _env_values(image: Image, profile: MissionProfile, host: Host) -> tuple[int, ...]:
    values = []
    for key in image.env:
        spec = profile.env.get(key)
        if spec is None:
            raise LoadError("unknown-env", f"`{image.name}` reads environment key `{key}`, "
                                           f"which mission `{profile.name}` does not define")
        v = host.env(key)
        if not spec.lo <= v <= spec.hi:
            raise LoadError("env-range", f"the host reports {key} = {v}, outside its declared "
                                         f"range [{spec.lo}, {spec.hi}]")
        values.append(v)
    return tuple(values)


def _bind(image: Image, profile: MissionProfile, host: Host,
          ext: tuple[ExtBinding, ...]) -> Bound:
    impls = {}
    for name in image.natives:
        if name not in profile.natives:
            raise LoadError("unknown-native", f"`{image.name}` imports native `{name}`, which "
                                              f"mission `{profile.name}` does not define")
        fn = host.native(name)
        if fn is None:
            raise LoadError("host-lacks-native", f"this spacecraft provides no native "
                                                 f"`{name}`")
        impls[name] = fn
    return Bound(image, bind_natives(image, profile, impls), _env_values(image, profile, host),
                 ext, opcode_cycles(profile), profile.frame_slot_cycles)


def _verify(image: Image, profile: MissionProfile,
            vmlets: Sequence[LoadedVmlet] = ()) -> ImageFacts:
    try:
        return verify_image(image, Target.of(profile), vmlets=[v.image for v in vmlets],
                            hidden={v.image.name: v.hidden for v in vmlets})
    except VerifyError as exc:
        raise LoadError(exc.code, f"`{image.name}` v{image.version}: {exc}") \
            from None


def load_vmlet(image: Image, profile: MissionProfile, host: Host,
               vmlets: Sequence[LoadedVmlet] = ()) -> LoadedVmlet:
    """Verify and bind a VMlet on the layers below it (picked by name from ``vmlets``, at
    the versions it pins), then run its ``on load``; raise ``LoadError``."""
    if image.kind is not ImageKind.VMLET:
        raise LoadError("not-a-vmlet", f"`{image.name}` is a configuration, not a VMlet")
    _check_mission(image, profile)
    lower = _pinned(image, vmlets)
    stack = _stack(lower)
    facts = _verify(image, profile, tuple(stack.values()))
    bound = _bind(image, profile, host, ())
    if facts.ext:  # its own instructions and those of the layers below it, used by its code
        # its own instructions' fixed costs are the verifier's (they may use each other);
        # a lower layer's come from its binding, complete since it was loaded first
        ext = tuple(ExtBinding(bound if e.vmlet == image.name else stack[e.vmlet].bound,
                               e.function, f"{e.vmlet}.{_instr_name(stack, image, e)}",
                               facts.unit_fixed[e.function] if e.vmlet == image.name
                               else ext_fixed_cost(stack[e.vmlet].bound, e.function, profile))
                    for e in facts.ext)
        object.__setattr__(bound, "ext", ext)  # Bound is frozen; the binding refers to it
    hidden: set[str] = set()
    cycles = 0
    if image.on_load is not None:
        memory = Memory([], (), [], ())
        budget = Limits.of(profile).on_load_cycles
        execution = run(bound, memory, image.on_load, (), budget, on_hide=hidden.add)
        try:
            next(execution)
        except StopIteration as stop:
            cycles = budget - stop.value[0]
        except Trap as trap:
            raise LoadError("on-load-trap", f"`{image.name}`'s on load trapped: "
                                            f"{trap.code.name.lower()} at +{trap.offset}") \
                from None
        else:
            raise LoadError("on-load-budget", f"`{image.name}`'s on load needs more than "
                                              f"{budget} cycles")
    offered = frozenset().union(*(v.visible for v in lower))
    visible = (offered | frozenset(image.exposes)) - frozenset(image.hides) - hidden
    return LoadedVmlet(image, bound, visible, frozenset(hidden), cycles, tuple(lower))


def _instr_name(stack: dict[str, LoadedVmlet], image: Image, e: ExtTarget) -> str:
    owner = image if e.vmlet == image.name else stack[e.vmlet].image
    return owner.functions[e.function].name


def _stack(used: Sequence[LoadedVmlet]) -> dict[str, LoadedVmlet]:
    """The VMlets ``used`` and every layer below them, by name."""
    out: dict[str, LoadedVmlet] = {}
    for v in used:
        out.update(v.stack())
    return out


def _pinned(image: Image, vmlets: Sequence[LoadedVmlet]) -> list[LoadedVmlet]:
    """The VMlets ``image`` uses, picked by name from ``vmlets``: each must be loaded at the
    version and content hash it was compiled against."""
    by_name = {v.image.name: v for v in vmlets}
    used: list[LoadedVmlet] = []
    for ref in image.uses:
        v = by_name.get(ref.name)
        if v is None:
            raise LoadError("missing-vmlet", f"`{image.name}` runs on VMlet `{ref.name}` "
                                             f"v{ref.version}, which is not loaded")
        if v.image.version != ref.version or v.image.content_hash[:len(ref.hash)] != ref.hash:
            raise LoadError("vmlet-mismatch", f"`{image.name}` was compiled against "
                                              f"`{ref.name}` v{ref.version} "
                                              f"({ref.hash.hex()}), the loaded one is "
                                              f"v{v.image.version} "
                                              f"({v.image.content_hash[:len(ref.hash)].hex()})")
        used.append(v)
    return used


def _check_mission(image: Image, profile: MissionProfile) -> None:
    if image.mission != profile.name:
        raise LoadError("wrong-mission", f"`{image.name}` was compiled for mission "
                                         f"`{image.mission}`, this is `{profile.name}`")


def load_config(image: Image, vmlets: Sequence[LoadedVmlet], profile: MissionProfile,
                host: Host, *, metered: bool = True) -> Program:
    """Verify, bind and translate a configuration on the VMlets it uses; raise
    ``LoadError``. ``vmlets`` are candidates: the ones the image names are picked by name."""
    if image.kind is not ImageKind.CONFIG:
        raise LoadError("not-a-config", f"`{image.name}` is a VMlet, not a configuration")
    _check_mission(image, profile)
    used = _pinned(image, vmlets)
    by_name = _stack(used)  # the VMlets used and the layers below them
    facts = _verify(image, profile, tuple(by_name.values()))
    used = list(by_name.values())  # what the store keeps with it: the whole stack
    hidden = sorted(set(image.natives) - facts.visible)
    if hidden:  # imported but never called: still refused, the import itself is the intent
        raise LoadError("hidden-native", f"`{image.name}` imports native `{hidden[0]}`, "
                                         f"which no VMlet it uses exposes (or one hides it)")
    ext = tuple(ExtBinding(by_name[e.vmlet].bound, e.function,
                           f"{e.vmlet}.{by_name[e.vmlet].image.functions[e.function].name}",
                           ext_fixed_cost(by_name[e.vmlet].bound, e.function, profile))
                for e in facts.ext)
    bound = _bind(image, profile, host, ext)
    memory = Memory.of(bound)
    # Units with dead code (accepted by the verifier, never executed) run on the reference
    # engine: the translator relies on consistent stack depths everywhere.
    dead = frozenset(i for i, u in enumerate(facts.units) if -1 in u.depth)
    code = translate(bound, memory, metered=metered, reference_units=dead)
    return Program(image, bound, memory, code, facts, tuple(used))
