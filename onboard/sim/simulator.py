"""The onboard simulator's persistent state: one VVM kept in a directory between commands.

``vvm init`` creates the directory for a mission and a seed; ``vvm load`` adds VMlet and
configuration images directly (as on the bench); ``vvm apply`` hands the VVM a patch, as
the receiver would; ``vvm run`` advances the simulated clock; ``vvm status`` reads the
telemetry. The directory holds::

    store/           the configuration store (``onboard.patching.store``): slots and journal, the
                     satellite's persistent memory and the one truth about which
                     configuration is current; a rejected patch leaves it byte-identical
    state.json       the VVM's snapshot (``onboard.patching.boot.Snapshot``): mission, seed, clock,
                     the store epoch it was taken against, task releases, probation,
                     VMlets loaded directly, telemetry and patch fates, and the SHA-256 of
                     each file below as it belongs to this snapshot
    data.bin         the data memory of the configuration running (globals, then arrays)
    previous.bin     on probation: the data of the configuration a rollback returns to
    frames.bin       per recent busy frame: frame index and cycles (two int64 arrays; the
                     run's totals are in state.json, see ``onboard.vm.telemetry``)
    images/HASH.vvmi every image loaded directly (content-addressed)
    waiting/SHA.vvmp every patch received and waiting in the queue (content-addressed by
                     SHA-256; ``state.json`` lists them, with their tickets, in queue order)
    patch.key        the key patches must be authenticated with (hex, as ``ccl keygen``)

A run always stops with no job in flight and no patch work half done (it finishes what was
started before the requested end, see ``onboard.vm.scheduler``), so the saved state is
complete and a resumed run continues where a single long run would have been.

Write order, and why any prefix of it recovers to the old state or the new one. Every write
goes through one ``onboard.patching.disk.Disk``, each synced before the next:

1. during a command, the store writes its slots and journal as the VVM applies patches;
   each journal record is the commit point of one store operation;
2. an image loaded directly is written to ``images/`` (atomically) before anything refers
   to it, and so is a patch waiting in the queue to ``waiting/`` (by ``save``);
3. ``save`` writes each of ``data.bin``, ``previous.bin`` and ``frames.bin`` whose content
   changed as ``NAME.new`` (in place; a torn one is told by its hash), then replaces
   ``state.json`` atomically -- the commit point of the snapshot -- and only then renames
   each ``NAME.new`` over ``NAME``, and removes the files of ``waiting/`` that the new
   ``state.json`` no longer lists (their patches were taken from the queue).

A patch waits in the queue while another is handled (staged, or on probation): the queue
is saved with the snapshot, so ``vvm apply`` of two patches in a row loses neither; the
next ``vvm run`` takes the second when the first is done, and each gets its fate.

Opening reads ``state.json`` and takes each file from ``NAME`` or, if the last save was cut
after its commit point, from ``NAME.new`` (renamed into place then), whichever has the hash
``state.json`` names; then ``onboard.patching.boot.start`` resumes the snapshot if it was taken
against the journal record the store holds now, or else reboots: the store wins, a
configuration on probation is rolled back, a staged one is switched to, and the state the
snapshot holds is used only where it belongs to the configuration that now runs. After a
reboot the recovered state is saved at once. So a power cut anywhere -- in the store, in the
snapshot's files, or in the writes of a reboot itself -- ends, at the next command, in the
old configuration or the new one, running, with new patches accepted.

The host is the mission's simulated spacecraft: ``missions/NAME/natives.py`` loaded by
file path (the onboard side imports nothing of the ground's packages).
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onboard.errors import OnboardError
from onboard.mission import MissionProfile, find_mission
from onboard.patching import boot
from onboard.patching.conditions import ProfileConditions
from onboard.patching.disk import Disk
from onboard.patching.patch_format import Reason, development_key, key_from_text
from onboard.patching.patcher import Fate, FateStatus, KeyRefused, Patcher
from onboard.patching.reconfiguration import PatchEvent, Reconfiguration
from onboard.patching.store import Configuration, Phase, Store, StoreError
from onboard.vm.board import PartLimits
from onboard.vm.faults import Fault, TrapCode
from onboard.vm.host import mission_host
from onboard.vm.image import Image, ImageError, ImageKind, decode_image
from onboard.vm.loader import LoadError
from onboard.vm.telemetry import TaskStats
from onboard.vm.vvm import VVM

STATE_FILE = "state.json"
STATE_FORMAT = 4  # 4: the queue of waiting patches is saved ("waiting")
READABLE_FORMATS = (3, 4)  # a format 3 state had no saved queue: an empty one
KEY_FILE = "patch.key"
DATA_FILE = "data.bin"
PREVIOUS_FILE = "previous.bin"
FRAMES_FILE = "frames.bin"
PENDING = ".new"  # suffix of a file written by a save whose state.json is not yet in place
WAITING_DIR = "waiting"
RUN_SLICE_MS = 600_000  # a long run checks for a stop request this often (simulated time)


#: An application's part (its tasks' cycles per frame, and what its patches may claim)
#: and its cycles per frame for patch handling (one of several on a board,
#: ``onboard.sim.board_state``); None: the whole share, as one VVM.
Budget = tuple[PartLimits, int]


class StateError(OnboardError):
    """A state directory that cannot be used: what is wrong and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__("state", message, hint=hint)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Simulator:
    """A VVM, its patcher and its store, bound to a state directory."""

    def __init__(self, directory: Path, vvm: VVM, seed: int, images: dict[str, str],
                 disk: Disk) -> None:
        self.directory = directory
        self.vvm = vvm
        self.seed = seed
        self.images = images  # content hash (hex) -> kind, of every image loaded directly
        self.tickets = 0  # patches handed to the VVM so far
        self.disk = disk
        self.rebooted = False  # opening found a reset to recover from
        self._files: dict[str, str] = {}  # file -> hash, as saved and in place

    @property
    def reconfiguration(self) -> Reconfiguration:
        rc = self.vvm.reconfiguration
        assert isinstance(rc, Reconfiguration)
        return rc

    # ------------------------------------------------------------------ life cycle

    @staticmethod
    def init(directory: Path, mission: str, seed: int,
             mission_dirs: tuple[Path, ...] = (), key: bytes | None = None,
             disk: Disk | None = None, *, budget: Budget | None = None) -> Simulator:
        """Create a new state directory (it must not hold a state already; what an init cut
        short by a power loss left is taken over). ``key``: the patch key (default: the
        mission's development key, which a flight profile refuses)."""
        disk = disk or Disk()
        if (directory / STATE_FILE).exists():
            raise StateError(f"{directory} already holds a VVM state",
                             "choose another directory, or delete this one")
        profile = find_mission(mission, mission_dirs)
        key = development_key(profile.name) if key is None else key
        store = Simulator._unfinished_store(directory / "store", disk)
        disk.mkdir(directory / "images")
        if store is None:
            try:
                store = Store.init(directory / "store", disk)
            except StoreError as exc:  # a store that does not open: not ours to overwrite
                raise StateError(f"{exc}; it does not open",
                                 "choose another directory, or delete this one") from None
        # 0600, never through a symbolic link
        disk.replace(directory / KEY_FILE, f"# patch key of this VVM\n{key.hex()}\n".encode(),
                     secret=True)
        sim = Simulator(directory, Simulator._vvm(profile, seed, store, key, budget), seed, {},
                        disk)
        sim.save()
        return sim

    @staticmethod
    def _unfinished_store(directory: Path, disk: Disk) -> Store | None:
        """The empty store an ``init`` cut short left in ``directory``, to be taken over;
        None if there is no usable one. Raises ``StateError`` if it holds configurations."""
        try:
            store = Store.open(directory, disk)
        except StoreError:
            return None
        state = store.state()
        if state.phase is not Phase.IDLE or state.current is not None or state.last_seq:
            raise StateError(f"{directory.parent} holds a configuration store but no VVM "
                             f"state", "choose another directory, or delete this one")
        return store

    @staticmethod
    def _vvm(profile: MissionProfile, seed: int, store: Store, key: bytes,
             budget: Budget | None = None) -> VVM:
        part, reserve = budget if budget is not None else (None, None)
        try:
            # an application's patcher refuses a configuration its part cannot hold
            patcher = Patcher(profile, store, key,
                              limits=None if part is None else (lambda: part))
        except KeyRefused as exc:
            raise StateError(str(exc), "give the mission's key with --key FILE") from None
        vvm = VVM(profile, mission_host(profile, seed),
                  task_budget=None if part is None else part.cycles_per_frame,
                  patch_reserve=reserve)
        rc = Reconfiguration(vvm, patcher)
        if budget is None:
            # Profile patches: the soft figures committed are kept beside the journal. An
            # application of a board (a budget given) takes none: the board's figures are
            # the board's (onboard.patching.board_conditions), not one application's.
            rc.attach_conditions(ProfileConditions(profile, key, store.directory))
        return vvm

    @staticmethod
    def open(directory: Path, mission_dirs: tuple[Path, ...] = (),
             disk: Disk | None = None, *, budget: Budget | None = None) -> Simulator:
        """Open an existing state directory: resume its VVM, or reboot it if its last run
        was cut short (see the module docstring; the recovered state is saved at once)."""
        disk = disk or Disk()
        path = directory / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise StateError(f"{directory} holds no VVM state",
                             f"create one with `vvm init {directory} --mission NAME`") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"{path} is unreadable: {exc}", "restore it or init anew") \
                from None
        if not isinstance(state, dict) or state.get("format") not in READABLE_FORMATS:
            found = state.get("format") if isinstance(state, dict) else None
            raise StateError(f"{path} has format {found}, expected {STATE_FORMAT}",
                             "init a new state directory")
        try:
            return Simulator._resume(directory, state, mission_dirs, disk, budget)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # a state.json of the right format whose fields are not what a save writes
            raise StateError(f"{path} is damaged: {type(exc).__name__}: {exc}",
                             "restore it or init anew") from None

    @staticmethod
    def _resume(directory: Path, state: dict[str, Any], mission_dirs: tuple[Path, ...],
                disk: Disk, budget: Budget | None) -> Simulator:
        profile = find_mission(state["mission"], mission_dirs)
        try:
            key = key_from_text((directory / KEY_FILE).read_text())
            store = Store.open(directory / "store", disk)
        except (OSError, ValueError, StoreError) as exc:
            raise StateError(f"{directory}: the key or the store is unusable: {exc}",
                             "the state directory is damaged; init anew") from None
        sim = Simulator(directory, Simulator._vvm(profile, state["seed"], store, key, budget),
                        state["seed"], dict(state["images"]), disk)
        sim._restore(state)
        return sim

    def _image(self, hash_hex: str) -> Image:
        path = self.directory / "images" / f"{hash_hex}.vvmi"
        try:
            return decode_image(path.read_bytes())
        except (OSError, ImageError) as exc:
            raise StateError(f"stored image {path} is unusable: {exc}",
                             "the state directory is damaged; init anew") from None

    def _file(self, name: str, digest: str | None) -> bytes | None:
        """The contents of ``name`` as the snapshot has it (hash ``digest``), from ``name``
        or from the ``name.new`` of a save cut short after its commit point (renamed into
        place now); None if neither holds it (lost, or no such file in this snapshot)."""
        if digest is None:
            return None
        for candidate in (name, name + PENDING):
            try:
                data = (self.directory / candidate).read_bytes()
            except OSError:
                continue
            if _sha(data) == digest:
                if candidate != name:  # finish the save the power cut interrupted
                    self.disk.rename(self.directory / candidate, self.directory / name)
                self._files[name] = digest
                return data
        return None

    def _restore(self, state: dict[str, Any]) -> None:
        vvm = self.vvm
        rc = self.reconfiguration
        for h in state["vmlets"]:
            try:
                vvm.load_vmlet(self._image(h))
            except LoadError as exc:
                raise StateError(f"stored VMlet {h[:16]} no longer loads: {exc.message}",
                                 "the state directory is damaged; init anew") from None
        files = state["files"]
        tel = vvm.telemetry
        frames = array("q")
        raw = self._file(FRAMES_FILE, files.get(FRAMES_FILE))
        if raw is not None and len(raw) % (2 * frames.itemsize) == 0:
            frames.frombytes(raw)  # else lost: the frame record starts again
        half = len(frames) // 2
        tel.restore_frames(frames[:half], frames[half:], state.get("frame_totals"))
        tel.tasks = {t["name"]: TaskStats(**t) for t in state["tasks"]}
        tel.fault_count = state["fault_count"]
        tel.faults = [Fault(f["time_ms"], f["task"], TrapCode[f["code"].upper()], f["unit"],
                            f["offset"]) for f in state["faults"]]
        rc.events = [PatchEvent(e["time_ms"], e["ticket"], _fate(e)) for e in state["patches"]]
        self.tickets = state["tickets"]
        rc.pending.extend(self._waiting(state.get("waiting", [])))
        running = None
        if state["running"] is not None:
            running = boot.SavedData(bytes.fromhex(state["running"]),
                                     self._file(DATA_FILE, files.get(DATA_FILE)))
        probation = None
        p = state["probation"]
        if p is not None:
            previous = None
            if p["previous"] is not None:
                previous = boot.SavedData(bytes.fromhex(p["previous"]),
                                          self._file(PREVIOUS_FILE, files.get(PREVIOUS_FILE)))
            probation = boot.SavedProbation(p["ticket"], p["end_ms"], p["counted_to_ms"],
                                            p["clean_frames"], previous)
        snapshot = boot.Snapshot(state["store_epoch"], state["now_ms"], running,
                                 tuple(state["next_release"]), probation)
        # A patch the snapshot never saw was handed over by the command the power cut
        # short, under the next ticket.
        self.rebooted = boot.start(rc, snapshot, unseen_ticket=self.tickets + 1)
        saved = state.get("conditions")
        if not self.rebooted and isinstance(saved, dict):
            try:  # a clean stop: a profile patch waiting or on probation goes on
                rc.resume_conditions(saved)
            except ValueError:
                self.rebooted = True  # damaged: the committed figures, as after a reset
        self.tickets = max([self.tickets, *(e.ticket for e in rc.events)])
        if self.rebooted:
            vvm.run_for(0, finish_jobs=True)  # the on apply of a switch at boot runs now
            self.save()

    def _waiting(self, listed: list[list[Any]]) -> list[tuple[int, bytes]]:
        """The patches waiting in the queue as saved: (ticket, bytes) in queue order. A
        patch whose file is lost or damaged gets its fate now (rejected, the bytes lost),
        so that no patch handed over is ever forgotten without one."""
        queue = []
        for ticket, digest in listed:
            try:
                data = (self.directory / WAITING_DIR / f"{digest}.vvmp").read_bytes()
            except OSError:
                data = None
            if data is None or _sha(data) != digest:
                self.reconfiguration.report(ticket, Fate(
                    FateStatus.REJECTED, None, None, Reason.TRUNCATED,
                    f"lost while waiting: {WAITING_DIR}/{digest[:16]}.vvmp is missing or "
                    f"damaged in the state directory"))
                continue
            queue.append((int(ticket), data))
        return queue

    def _save_waiting(self) -> list[list[Any]]:
        """Write each patch waiting in the queue to ``waiting/`` (atomically, before the
        state that lists it); returns the list ``state.json`` keeps."""
        listed: list[list[Any]] = []
        folder = self.directory / WAITING_DIR
        for ticket, data in self.reconfiguration.pending:
            digest = _sha(data)
            path = folder / f"{digest}.vvmp"
            if not path.is_file() or _sha(path.read_bytes()) != digest:
                self.disk.mkdir(folder)
                self.disk.replace(path, data)
            listed.append([ticket, digest])
        return listed

    def _drop_waiting(self, listed: list[list[Any]]) -> None:
        """Remove the files of patches no longer waiting (after the commit point: a power
        cut before this only leaves a file that the next save removes)."""
        folder = self.directory / WAITING_DIR
        if not folder.is_dir():
            return
        keep = {f"{digest}.vvmp" for _, digest in listed}
        for path in folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def save(self) -> None:
        """Write the state in the documented order: changed files as ``NAME.new`` and the
        waiting patches, then ``state.json`` (the commit point), then the renames into place
        and the removal of the patches no longer waiting."""
        vvm = self.vvm
        rc = self.reconfiguration
        assert not vvm.scheduler.busy and not rc.busy, "saved only between jobs and steps"
        waiting = self._save_waiting()
        snapshot = boot.take(rc)
        tel = vvm.telemetry
        running = snapshot.running
        contents = {DATA_FILE: (running.data or b"") if running is not None else b"",
                    FRAMES_FILE: (tel.frames + tel.cycles).tobytes()}
        probation = None
        p = snapshot.probation
        if p is not None:
            probation = {"ticket": p.ticket, "end_ms": p.end_ms,
                         "counted_to_ms": p.counted_to_ms, "clean_frames": p.clean_frames,
                         "previous": p.previous.config.hex() if p.previous else None}
            if p.previous is not None:
                contents[PREVIOUS_FILE] = p.previous.data or b""
        files = {name: _sha(data) for name, data in contents.items()}
        written = [name for name in contents if self._files.get(name) != files[name]]
        for name in written:
            self.disk.write(self.directory / (name + PENDING), contents[name])
        state = {
            "format": STATE_FORMAT,
            "mission": vvm.profile.name,
            "seed": self.seed,
            "store_epoch": snapshot.store_epoch,
            "now_ms": snapshot.now_ms,
            "running": snapshot.running.config.hex() if snapshot.running else None,
            "next_release": list(snapshot.next_release),
            "probation": probation,
            "files": files,
            "images": self.images,
            "vmlets": [h for h, kind in self.images.items() if kind == "vmlet"],
            "tickets": self.tickets,
            "patches": [e.to_json() for e in rc.events],
            "waiting": waiting,
            "conditions": None if rc.conditions is None else {
                **rc.conditions.volatile(), "ticket": rc.profile_ticket},
            "tasks": [t.as_dict() for t in tel.tasks.values()],
            "frame_totals": tel.totals(),
            "fault_count": tel.fault_count,
            "faults": [{"time_ms": f.time_ms, "task": f.task, "code": f.code.name.lower(),
                        "unit": f.unit, "offset": f.offset} for f in tel.faults],
        }
        self.disk.replace(self.directory / STATE_FILE, json.dumps(state, indent=1).encode())
        for name in written:
            self.disk.rename(self.directory / (name + PENDING), self.directory / name)
        self._files = files
        self._drop_waiting(waiting)

    # ------------------------------------------------------------------ commands

    def load(self, image: Image) -> str:
        """Load a VMlet or a configuration image directly (a configuration becomes current
        in the store and active, and its ``on apply`` runs in the next frame); raise
        ``LoadError`` and change nothing on failure. Returns what was done, in words."""
        vvm = self.vvm
        store = self.reconfiguration.patcher.store
        h = image.content_hash.hex()
        if image.kind is ImageKind.VMLET:
            vvm.load_vmlet(image)
            self.disk.replace(self.directory / "images" / f"{h}.vvmi", image.encode())
            what = f"VMlet {image.name} v{image.version} loaded"
        else:
            if store.phase is not Phase.IDLE:
                raise StateError(f"a patch is {store.phase.value}",
                                 "let it commit or roll back first (`vvm run`)")
            program = vvm.prepare(image)
            self.disk.replace(self.directory / "images" / f"{h}.vvmi", image.encode())
            store.install(Configuration(image, tuple(v.image for v in program.vmlets)))
            vvm.activate(program)
            vvm.run_for(0, finish_jobs=True)  # on apply runs now, within the share
            what = f"configuration {image.name} v{image.version} active"
        self.images[h] = image.kind.name.lower()
        self.save()
        return what

    def apply(self, data: bytes) -> list[PatchEvent]:
        """Hand the VVM a complete patch, as the receiver does, and run the clock until it is
        rejected or active (its ``on apply`` done; a profile patch's figures in force at
        the next frame boundary); probation goes on with ``run``. Returns
        the patch's fates so far."""
        self.tickets += 1
        ticket = self.tickets
        rc = self.reconfiguration
        rc.receive(data, ticket)
        self.vvm.run_for(0, finish_jobs=True)
        while rc.conditions is not None and rc.conditions.waiting is not None:
            # a profile patch: its figures in force at the next frame boundary
            self.vvm.run_for(self.vvm.profile.frame_ms, finish_jobs=True)
        self.save()
        return [e for e in self.reconfiguration.events if e.ticket == ticket]

    def run(self, ms: int, *, stop: Callable[[], bool] = lambda: False,
            advanced: Callable[[int], None] = lambda ms: None) -> bool:
        """Advance the clock by ``ms`` (then finish the jobs in flight) and save. The run
        goes in slices of ``RUN_SLICE_MS`` simulated time, telling ``advanced`` the time run
        so far after each; if ``stop()`` is true before a slice (Ctrl-C) it ends there,
        finishing the jobs in flight, and what was simulated is saved all the same. Returns
        whether it ran the whole ``ms``."""
        scheduler = self.vvm.scheduler
        start = scheduler.now_ms
        end = start + ms
        complete = True
        # Slices without finishing compose exactly into one run to ``end``: only the last
        # (or the one a stop request cuts short) finishes the jobs in flight.
        while scheduler.now_ms < end:
            if stop():
                complete = False
                break
            scheduler.run_until(min(scheduler.now_ms + RUN_SLICE_MS, end))
            advanced(scheduler.now_ms - start)
        self.vvm.run_for(0, finish_jobs=True)
        self.save()
        return complete


def _fate(e: dict[str, Any]) -> Fate:
    return Fate(FateStatus(e["status"]), e["seq"],
                bytes.fromhex(e["target"]) if e["target"] else None,
                Reason(e["reason"]) if e["reason"] else None, e["message"], e["field"],
                e["offset"])


def parse_duration(text: str) -> int:
    """Milliseconds in ``90s``, ``6h``, ``2d``, ``100ms``, ``1.5h``: a finite number, not
    negative, and a unit; ValueError saying what is wrong otherwise."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    t = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix):
            number = t[: -len(suffix)]
            try:
                value = float(number)
            except ValueError:
                break
            if not math.isfinite(value):
                raise ValueError(f"not a duration: {text!r} is not a finite number")
            if value < 0:
                raise ValueError(f"not a duration: {text!r} is negative")
            return round(value * units[suffix])
    raise ValueError(f"not a duration: {text!r}")
