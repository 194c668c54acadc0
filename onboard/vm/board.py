"""Several applications at once: one board holds several configurations side by side, each
in its own VVM (its own Program, memory, VMlet stack, scheduler, telemetry and, when it
takes patches, its own patcher, store and probation), each in its declared part of the
share.

The mission profile's share (10 % of every frame for CoRoT) is divided once, when an
application is added: the parts of all applications plus the patch reserve must fit in the
share, or the application is refused (``LoadError("over-share")``). Each application's
scheduler is given its part as its budget per frame, so a part is enforced frame by frame
by the same scheduler that runs a single configuration: a job whose next instruction does
not fit in its application's part suspends to the next frame, and a job still unfinished
at its next release is that application's overrun fault. Nothing an application does can
use another's cycles, memory or probation: they share nothing but the clock.

The patch reserve is divided among the applications that take patches (each its slice,
``reserve // n``), so handling a patch for one takes no cycle from another's handling and
the total stays within the share.

Because applications share nothing, running each over the same interval one after the
other is the same as interleaving their frames; the board does that in ``run_for`` and
adds up, frame by frame, what all of them used (``worst_total_cycles``).

On the link, an application is known by its *number*: its position in the order the board
added it (0 for the first, the default application of a single-configuration board, up to
``onboard.mission.MAX_APPLICATION``). A patch segment names it by its APID
(``onboard.link.tc_frames.patch_apid``); ``Board.route`` gives the receiver the hand-off of
application n.

A configuration without an application clause is the one default application: a single
``VVM`` (``onboard.vm.vvm``) is exactly that board with one application and the whole
share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from onboard.mission import MAX_APPLICATION, MissionProfile, Native
from onboard.vm.host import Host, NativeFn
from onboard.vm.loader import LoadError
from onboard.vm.machine import Limits
from onboard.vm.vvm import VVM

#: The name of the application of a configuration that declares none.
DEFAULT_APPLICATION = "default"


def part_cycles(profile: MissionProfile, share_percent: int) -> int:
    """Cycles per frame of a part of ``share_percent`` % of the frame."""
    return profile.frame_cycles * share_percent // 100


def cycles_left(profile: MissionProfile, shares: Iterable[int]) -> int:
    """Cycles per frame of the share that applications with parts ``shares`` (percent)
    leave free, the patch reserve set aside: the board admits them only if this is not
    negative (``Board.add``), and ``ccl verify`` of a set proves it (one rule, here)."""
    return Limits.of(profile).frame_budget - sum(part_cycles(profile, s) for s in shares)


@dataclass(frozen=True)
class PartLimits:
    """The most a configuration of one application may claim (its patch header's cycles
    per frame and basis points of each frame): what its part gives its tasks. The patcher
    of the application refuses a patch claiming more (``OVER_BUDGET``), so a configuration
    proven to need more than its part never runs in it."""

    cycles_per_frame: int
    share_bp: int
    #: what the limits are, for a rejection's message
    what: str


def part_limits(profile: MissionProfile, share_percent: int | None,
                others: Iterable[int] = (), name: str = DEFAULT_APPLICATION) -> PartLimits:
    """The limits of application ``name``: with a part of ``share_percent`` %, that part
    (``part_cycles``, the cycles ``Board.add`` admits it with); with None, what the parts
    ``others`` (percent) leave of the share, the patch reserve set aside (``cycles_left``):
    the default application of a board, or a single VVM's whole tasks' budget when there
    are no others."""
    if share_percent is not None:
        return PartLimits(part_cycles(profile, share_percent), share_percent * 100,
                          f"application `{name}`'s part of {share_percent} %")
    others = list(others)
    if not others:
        return PartLimits(cycles_left(profile, ()), profile.share_percent * 100,
                          "the share less the patch reserve")
    return PartLimits(cycles_left(profile, others),
                      (profile.share_percent - sum(others)) * 100,
                      f"what the other applications' parts ({sum(others)} %) leave "
                      f"application `{name}`")


@dataclass
class Application:
    """One application on the board: its name, its declared part of the share (percent of
    every frame) and the VVM that runs it."""

    name: str
    share_percent: int
    vm: VVM

    @property
    def part_cycles(self) -> int:
        return part_cycles(self.vm.profile, self.share_percent)


class Board:
    """Several applications in one VVM, each within its part of the share; see the module
    docstring."""

    def __init__(self, profile: MissionProfile) -> None:
        self.profile = profile
        self.applications: dict[str, Application] = {}
        self.now_ms = 0
        #: the most cycles all applications together used in one frame (reserves included)
        self.worst_total_cycles = 0
        self._frame_totals: dict[int, int] = {}
        self._patching: list[VVM] = []  # applications that take patches

    # ------------------------------------------------------------------ applications

    def free_cycles(self) -> int:
        """Cycles per frame of the share no application has a part of (the patch reserve
        set aside)."""
        return cycles_left(self.profile, (a.share_percent for a in self.applications.values()))

    def add(self, name: str, share_percent: int, host: Host, *,
            takes_patches: bool = False, imports: Sequence[Native] = ()) -> VVM:
        """Add application ``name`` with ``share_percent`` % of every frame, on its own
        ``host`` (its instrument channel); return its VVM (load VMlets and a configuration
        into it, or attach a ``Reconfiguration`` to it if ``takes_patches``). ``imports``:
        the functions of other applications on this board it may call, each a native
        ``app.fn`` whose cost (the callee's proven worst case, from ``ccl``) is charged to
        it. Raises ``LoadError`` if the name is taken or the parts would not fit in the
        share."""
        if name in self.applications:
            raise LoadError("duplicate-application", f"application `{name}` is already on "
                                                     f"the board")
        if len(self.applications) > MAX_APPLICATION:
            raise LoadError("over-share", f"application `{name}`: a board holds at most "
                                          f"{MAX_APPLICATION + 1} applications")
        if share_percent <= 0:
            raise LoadError("over-share", f"application `{name}`: a part of the share must "
                                          f"be at least 1 %, not {share_percent} %")
        want = part_limits(self.profile, share_percent, name=name).cycles_per_frame
        free = self.free_cycles()
        if want > free:
            parts = ", ".join(f"{a.name} {a.share_percent} %"
                              for a in self.applications.values()) or "no other application"
            raise LoadError(
                "over-share",
                f"application `{name}` asks {share_percent} % ({want} cycles per frame); "
                f"with {parts} and the patch reserve "
                f"({self.profile.patch_reserve_cycles_per_frame} cycles) only {max(free, 0)} "
                f"cycles of the {self.profile.share_percent} % share are left")
        profile = self.profile
        if imports:
            profile = replace(profile, natives={**profile.natives,
                                                **{n.name: n for n in imports}})
            host = _Importing(host, self, {n.name: n for n in imports})
        vm = VVM(profile, host, task_budget=want)
        if self.now_ms:  # joins the board's clock
            vm.scheduler.now_ms = self.now_ms
        vm.scheduler.on_frame = self._frame_listener(vm)
        self.applications[name] = Application(name, share_percent, vm)
        if takes_patches:
            self._takes_patches(vm)
        return vm

    def _takes_patches(self, vm: VVM) -> None:
        self._patching.append(vm)
        self._slice_reserve()

    def _slice_reserve(self) -> None:
        slice_ = self.profile.patch_reserve_cycles_per_frame // len(self._patching)
        for other in self._patching:
            other.patch_reserve = slice_
            if other.reconfiguration is not None:
                other.scheduler.reserve_per_frame = slice_

    def set_parts(self, profile: MissionProfile, parts: Mapping[str, int]) -> None:
        """Put new figures in force at a frame boundary (a profile patch, checked by its
        caller against what the applications are proven to need): the patch reserve of
        ``profile``, sliced again among the applications that take patches, and the parts
        ``parts`` (percent, by application; the others keep theirs), each application's
        task budget per frame its part. Raises ``LoadError("over-share")``, changing
        nothing, if the parts and the reserve would not fit in the share (``cycles_left``,
        the one admission rule)."""
        for name in parts:
            self.app(name)
        shares = {a.name: parts.get(a.name, a.share_percent)
                  for a in self.applications.values()}
        left = cycles_left(profile, shares.values())
        if left < 0 or any(s <= 0 for s in shares.values()):
            raise LoadError("over-share", f"parts {shares} (percent) and the patch reserve "
                            f"({profile.patch_reserve_cycles_per_frame} cycles) do not fit in "
                            f"the {profile.share_percent} % share: {-left} cycles over")
        self.profile = profile
        for a in self.applications.values():
            a.share_percent = shares[a.name]
            a.vm.scheduler.budget_per_frame = a.part_cycles
        if self._patching:
            self._slice_reserve()

    def _frame_listener(self, vm: VVM) -> Callable[[int, int], None]:
        totals, telemetry = self._frame_totals, vm.telemetry
        index_of = self.profile.frame_ms

        def heard(t: int, faults: int) -> None:
            index = t // index_of
            if telemetry.frames and telemetry.frames[-1] == index:
                totals[index] = totals.get(index, 0) + telemetry.cycles[-1]
        return heard

    def app(self, name: str) -> VVM:
        """The VVM of application ``name``."""
        try:
            return self.applications[name].vm
        except KeyError:
            known = ", ".join(self.applications) or "none"
            raise LoadError("unknown-application", f"no application `{name}` on this board "
                                                   f"(on board: {known})") from None

    def limits(self, name: str) -> PartLimits:
        """What a patch for application ``name`` may claim: its part in force now (after
        any ``set_parts``); give it to that application's ``Patcher`` as ``limits``."""
        self.app(name)
        return part_limits(self.profile, self.applications[name].share_percent, name=name)

    def number(self, name: str) -> int:
        """Application ``name``'s number on the link (the order it was added, from 0)."""
        self.app(name)
        return list(self.applications).index(name)

    def route(self, number: int) -> Callable[[int, bytes], int] | None:
        """The receiver's hand-off to application ``number`` (``onboard.link.receiver.
        Routes``): its patch goes to that application's patcher; None if the board has no
        such application or it takes no patches."""
        names = list(self.applications)
        if not 0 <= number < len(names):
            return None
        vm = self.applications[names[number]].vm
        if vm.reconfiguration is None:
            return None
        rc = vm.reconfiguration

        def handoff(ticket: int, data: bytes) -> int:
            # a Fate (onboard.patching sits above onboard.vm, so known only by its code)
            fate: Any = rc.receive(data, ticket)
            return int(fate.code)
        return handoff

    def receive_patch(self, application: str, data: bytes, ticket: int = 0) -> object:
        """A complete patch for ``application``: checked and applied in its slice of the
        reserve by its own patcher, over its own store (a delta must name that
        application's configuration as its base). Returns the fate so far."""
        return self.app(application).receive_patch(data, ticket)

    # ------------------------------------------------------------------ running

    def run_for(self, ms: int) -> None:
        """Advance every application by ``ms`` simulated milliseconds."""
        end = self.now_ms + ms
        for a in self.applications.values():
            a.vm.run_for(end - a.vm.now_ms)
        self.now_ms = end
        if self._frame_totals:
            self.worst_total_cycles = max(self.worst_total_cycles,
                                          max(self._frame_totals.values()))
            self._frame_totals.clear()

    def worst_total_share(self) -> float:
        """The largest fraction of a frame all applications used together so far."""
        return self.worst_total_cycles / self.profile.frame_cycles

    def status(self) -> dict[str, Any]:
        """Telemetry per application, and the board's totals, as a JSON-ready dictionary."""
        return {
            "mission": self.profile.name,
            "share_cycles_per_frame": self.profile.share_cycles_per_frame,
            "patch_reserve_per_frame": self.profile.patch_reserve_cycles_per_frame,
            "worst_total_frame_cycles": self.worst_total_cycles,
            "applications": {
                a.name: {"share_percent": a.share_percent, "part_cycles": a.part_cycles,
                         **a.vm.status()}
                for a in self.applications.values()
            },
        }


class _Importing:
    """An application's host, with the functions it imports from other applications on
    the board: a call runs the callee's exported function on the callee's own memory, to
    its end, within the cycles the importer is charged for it (the callee's proven worst
    case). A callee that is absent, traps or needs more answers nothing, which the
    importer's engine turns into a native-result trap *of the importer* (the callee's
    own runs, telemetry and probation are not touched)."""

    def __init__(self, host: Host, board: Board, imports: Mapping[str, Native]) -> None:
        self.host = host
        self.board = board
        self.imports = imports

    def native(self, name: str) -> NativeFn | None:
        native = self.imports.get(name)
        if native is None:
            return self.host.native(name)
        app, fn = name.split(".", 1)
        board, names = self.board, [a.name for a in native.args]

        def call(*args: int) -> int | None:
            callee = board.applications.get(app)
            if callee is None or callee.vm.program is None:
                return None
            budget = native.cost.evaluate(dict(zip(names, args, strict=True)))
            try:
                out = callee.vm.call(fn, args, budget=budget)
            except (LoadError, KeyError):
                return None
            return out.result if out.fault is None else None
        return call

    def env(self, key: str) -> int:
        return self.host.env(key)

    def advance(self, now_ms: int) -> None:
        self.host.advance(now_ms)
