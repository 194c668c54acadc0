"""Several applications in one simulator state directory: the board of ``vvm``.

A state directory made by ``vvm init`` holds one VVM: the default application
(``onboard.vm.board.DEFAULT_APPLICATION``), exactly as before applications existed. An
application is added by the first ``vvm apply --app NAME --share N`` (the ``share N %`` of
its ``application`` clause: the image does not carry the clause), and then lives in a
state directory of its own inside the board's::

    STATE/                the default application (store/, state.json, ... as always)
    STATE/apps.json       the other applications, in the order they were added (their
                          numbers on the link, 1 ..) and their parts of the share
    STATE/apps/NAME/      application NAME: a simulator state directory of its own (its
                          store, snapshot, data, queue); same mission, seed + number, key

Each application is a ``Simulator`` over its own directory, so each keeps its own store
and snapshot and is opened -- resumed, or rebooted after a power cut -- through the one
boot path (``onboard.patching.boot.start``) on its own: a cut in one application's files
touches no other's. An application is added in two steps, each safe against a cut: its
directory is initialised, then ``apps.json`` is replaced atomically (the commit point); a
directory ``apps.json`` does not list is the leftover of an addition cut short, and is
removed when the name is added again.

The parts, as on a ``Board``: every named application has its declared part of the share
(``part_cycles``) as its task budget per frame; their sum must fit in the frame budget (the
share less the patch reserve), or the addition is refused with the parts in use; the default
application runs in what they leave, and an addition that would leave it less than its
configurations are proven to need (their patches' claims) is refused. A patch for an
application is checked against its part (``BoardState.limits``, given to its patcher).
The patch reserve is divided evenly among all the applications (each takes patches), so
the total stays within the share. Applications share nothing but the clock: ``run``
advances each by the same time, one after the other.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from onboard.mission import MAX_APPLICATION, MissionProfile, find_mission
from onboard.patching.disk import Disk
from onboard.patching.patch_format import key_from_text
from onboard.sim import simulator
from onboard.sim.simulator import KEY_FILE, STATE_FILE, Budget, Simulator, StateError
from onboard.vm.board import DEFAULT_APPLICATION, PartLimits, part_limits

APPS_FILE = "apps.json"
APPS_DIR = "apps"


@dataclass(frozen=True)
class Part:
    """A named application of the board and its declared part of the share."""

    name: str
    share_percent: int


def _valid_name(name: str) -> bool:
    return name.isidentifier() and name != DEFAULT_APPLICATION


class BoardState:
    """The applications of one state directory, each its own ``Simulator``; see the module
    docstring."""

    def __init__(self, directory: Path, profile: MissionProfile, parts: list[Part],
                 mission_dirs: tuple[Path, ...], disk: Disk) -> None:
        self.directory = directory
        self.profile = profile
        self.parts = parts
        self.mission_dirs = mission_dirs
        self.disk = disk
        self._open: dict[str, Simulator] = {}

    # ------------------------------------------------------------------ opening

    @staticmethod
    def open(directory: Path, mission_dirs: tuple[Path, ...] = (),
             disk: Disk | None = None) -> BoardState:
        """The board of ``directory`` (an ordinary single-application state directory is a
        board with the default application only). Applications are opened when first
        asked for (``app``)."""
        # the simulator's Disk, looked up there: one place to put a faulty one in (tests)
        disk = disk or simulator.Disk()
        try:
            state = json.loads((directory / STATE_FILE).read_text())
            mission = state["mission"]
        except FileNotFoundError:
            raise StateError(f"{directory} holds no VVM state",
                             f"create one with `vvm init {directory} --mission NAME`") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise StateError(f"{directory / STATE_FILE} is unreadable: {exc}",
                             "restore it or init anew") from None
        parts: list[Part] = []
        path = directory / APPS_FILE
        if path.exists():
            try:
                listed = json.loads(path.read_text())["applications"]
                parts = [Part(str(a["name"]), int(a["share_percent"])) for a in listed]
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise StateError(f"{path} is damaged: {exc}", "restore it or init anew") \
                    from None
        return BoardState(directory, find_mission(mission, mission_dirs), parts,
                          mission_dirs, disk)

    def names(self) -> list[str]:
        """Every application, the default first, in their link numbers' order."""
        return [DEFAULT_APPLICATION, *(p.name for p in self.parts)]

    def part_of(self, name: str) -> tuple[int, int]:
        """Application ``name``'s share percent (0 for the default: the rest) and its task
        budget in cycles per frame."""
        named = {p.name: p for p in self.parts}
        return (named[name].share_percent if name in named else 0,
                self.limits(name).cycles_per_frame)

    def limits(self, name: str) -> PartLimits:
        """Application ``name``'s part (``onboard.vm.board.part_limits``, the board's
        admission rule): its tasks' budget and what its patches may claim."""
        named = {p.name: p for p in self.parts}
        if name in named:
            return part_limits(self.profile, named[name].share_percent, name=name)
        return part_limits(self.profile, None, [p.share_percent for p in self.parts], name)

    def _budget(self, name: str) -> Budget | None:
        if not self.parts:
            return None  # one application: the whole share, as a single VVM
        reserve = self.profile.patch_reserve_cycles_per_frame // (len(self.parts) + 1)
        return self.limits(name), reserve

    def _dir(self, name: str) -> Path:
        return self.directory if name == DEFAULT_APPLICATION else \
            self.directory / APPS_DIR / name

    def app(self, name: str) -> Simulator:
        """The simulator of application ``name`` (opened, or rebooted, on first use)."""
        if name not in self.names():
            raise StateError(f"no application `{name}` on this board (on board: "
                             f"{', '.join(self.names())})",
                             "an application is added by its first `vvm apply --app NAME "
                             "--share PERCENT`")
        if name not in self._open:
            self._open[name] = Simulator.open(self._dir(name), self.mission_dirs, self.disk,
                                              budget=self._budget(name))
        return self._open[name]

    def all(self) -> list[tuple[str, Simulator]]:
        """Every application's simulator, in order."""
        return [(n, self.app(n)) for n in self.names()]

    # ------------------------------------------------------------------ adding

    def add(self, name: str, share_percent: int) -> Simulator:
        """Add application ``name`` with ``share_percent`` % of every frame; raises
        ``StateError`` if the name is taken or not a name, or the parts would not fit in
        the share (the reason says what is in use)."""
        if not _valid_name(name):
            raise StateError(f"`{name}` cannot name an application",
                             "a name is a CCL identifier other than `default`")
        if name in self.names():
            raise StateError(f"application `{name}` is already on the board")
        if len(self.parts) >= MAX_APPLICATION:
            raise StateError(f"a board holds at most {MAX_APPLICATION + 1} applications")
        if share_percent <= 0:
            raise StateError(f"a part of the share must be at least 1 %, not "
                             f"{share_percent} %")
        want = part_limits(self.profile, share_percent, name=name).cycles_per_frame
        free = self.part_of(DEFAULT_APPLICATION)[1]
        if want > free:
            in_use = ", ".join(f"{p.name} {p.share_percent} %" for p in self.parts) \
                or "no other application"
            raise StateError(
                f"application `{name}` asks {share_percent} % ({want} cycles per frame); "
                f"with {in_use} and the patch reserve "
                f"({self.profile.patch_reserve_cycles_per_frame} cycles) only {max(free, 0)} "
                f"cycles of the {self.profile.share_percent} % share are left",
                "ask a smaller part (`--share`)")
        default = self.app(DEFAULT_APPLICATION)
        # The default application runs in what the named parts leave: a new part must not
        # leave it less than what its configurations are proven to need (the claims of
        # the patches that brought them; one loaded without a patch has no known demand).
        rest = part_limits(self.profile, None,
                           [*(p.share_percent for p in self.parts), share_percent])
        store = default.reconfiguration.patcher.store
        for role, need in store.demands().items():
            if need is not None and need > rest.cycles_per_frame:
                raise StateError(
                    f"application `{name}` asks {share_percent} %: the default "
                    f"application would keep {rest.cycles_per_frame} cycles per frame and "
                    f"its {role} configuration is proven to need {need}",
                    "ask a smaller part (`--share`)")
        try:
            key = key_from_text((self.directory / KEY_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.directory}: the key is unusable: {exc}",
                             "the state directory is damaged; init anew") from None
        where = self._dir(name)
        if where.exists():  # an addition cut short before apps.json listed it
            shutil.rmtree(where)
        self.disk.mkdir(where.parent)
        parts = [*self.parts, Part(name, share_percent)]
        budget = (part_limits(self.profile, share_percent, name=name),
                  self.profile.patch_reserve_cycles_per_frame // (len(parts) + 1))
        sim = Simulator.init(where, self.profile.name, default.seed + len(parts),
                             self.mission_dirs, key, self.disk, budget=budget)
        if default.vvm.now_ms:  # it joins the board's clock
            sim.vvm.scheduler.now_ms = default.vvm.now_ms
            sim.save()
        self.disk.replace(self.directory / APPS_FILE, json.dumps(
            {"applications": [{"name": p.name, "share_percent": p.share_percent}
                              for p in parts]}, indent=1).encode())
        self.parts = parts
        self._open.clear()  # every budget changed: reopen with the new parts
        return self.app(name)

    # ------------------------------------------------------------------ running

    def run(self, ms: int, *, stop: Callable[[], bool] = lambda: False,
            advanced: Callable[[int], None] = lambda ms: None) -> bool:
        """Advance every application to ``ms`` after the latest clock among them (an apply
        runs only its own application's clock on), each saved after its run; False if a
        stop request cut it short (the applications not yet run are not advanced)."""
        apps = self.all()
        end = max(sim.vvm.now_ms for _, sim in apps) + ms
        for _, sim in apps:
            if stop() or not sim.run(end - sim.vvm.now_ms, stop=stop, advanced=advanced):
                return False
        return True
