"""The onboard simulator's persistent state: one VVM kept in a directory between commands.

``vvm init`` creates the directory for a mission and a seed; ``vvm load`` adds VMlet and
configuration images directly (as on the bench); ``vvm apply`` hands the VVM a patch, as
the receiver would; ``vvm run`` advances the simulated clock; ``vvm status`` reads the
telemetry. The directory holds::

    state.json       mission, seed, clock, VMlets loaded directly, task releases, telemetry,
                     patch fates and probation
    images/HASH.vvmi every image loaded directly (content-addressed)
    store/           the configuration store (``onboard.store``): slots and journal, the
                     satellite's persistent memory; a rejected patch leaves it byte-identical
    patch.key        the key patches must be authenticated with (hex, as ``ccl keygen``)
    data.bin         the active configuration's data memory (globals, then arrays)
    previous.bin     on probation: the data of the configuration a rollback returns to
    frames.bin       per busy frame: frame index and cycles (two int64 arrays)

A run always stops with no job in flight and no patch work half done (it finishes what was
started before the requested end), so the saved state is complete and a resumed run
continues exactly where a single long run would have been. Every file is replaced
atomically (write, then rename).

The host is the mission's simulated spacecraft: ``missions/NAME/natives.py`` loaded by
file path (the onboard side imports nothing of the ground's packages).
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path
from typing import Any

from onboard.faults import Fault, TrapCode
from onboard.host import mission_host
from onboard.image import Image, ImageError, ImageKind, decode_image
from onboard.key_file import write_key_file
from onboard.loader import Program
from onboard.mission import MissionProfile, find_mission
from onboard.patch_format import Reason, development_key, key_from_text
from onboard.patcher import Fate, FateStatus, KeyRefused, Patcher
from onboard.reconfiguration import PatchEvent, Reconfiguration
from onboard.reference import Memory
from onboard.store import Configuration, Phase, Store, StoreError
from onboard.telemetry import TaskStats
from onboard.vvm import VVM

STATE_FILE = "state.json"
STATE_FORMAT = 2
KEY_FILE = "patch.key"


class StateError(Exception):
    """A state directory that cannot be used: what is wrong and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _memory_bytes(memory: Memory) -> bytes:
    data = array("q", memory.globals)
    for arr in memory.arrays:
        data.extend(arr)
    return data.tobytes()


def _restore_memory(memory: Memory, raw_bytes: bytes) -> None:
    raw = array("q")
    raw.frombytes(raw_bytes)
    n = len(memory.globals)
    memory.globals[:] = raw[:n].tolist()
    at = n
    for arr in memory.arrays:  # in place: the translated code holds these lists
        arr[:] = raw[at:at + len(arr)].tolist()
        at += len(arr)


class Simulator:
    """A VVM, its patcher and its store, bound to a state directory."""

    def __init__(self, directory: Path, vvm: VVM, seed: int, images: dict[str, str]) -> None:
        self.directory = directory
        self.vvm = vvm
        self.seed = seed
        self.images = images  # content hash (hex) -> kind, of every image loaded directly
        self.tickets = 0  # patches handed to the VVM so far

    @property
    def reconfiguration(self) -> Reconfiguration:
        assert self.vvm.reconfiguration is not None
        return self.vvm.reconfiguration

    # ------------------------------------------------------------------ life cycle

    @staticmethod
    def init(directory: Path, mission: str, seed: int,
             mission_dirs: tuple[Path, ...] = (), key: bytes | None = None) -> Simulator:
        """Create a new state directory (it must not hold a state already). ``key``: the
        patch key (default: the mission's development key, which a flight profile
        refuses)."""
        if (directory / STATE_FILE).exists():
            raise StateError(f"{directory} already holds a VVM state",
                             "choose another directory, or delete this one")
        profile = find_mission(mission, mission_dirs)
        key = development_key(profile.name) if key is None else key
        (directory / "images").mkdir(parents=True, exist_ok=True)
        store = Store.init(directory / "store")
        write_key_file(directory / KEY_FILE, f"# patch key of this VVM\n{key.hex()}\n",
                       force=True)  # 0600, never through a symbolic link
        sim = Simulator(directory, Simulator._vvm(profile, seed, store, key), seed, {})
        sim.save()
        return sim

    @staticmethod
    def _vvm(profile: MissionProfile, seed: int, store: Store, key: bytes) -> VVM:
        try:
            patcher = Patcher(profile, store, key)
        except KeyRefused as exc:
            raise StateError(str(exc), "give the mission's key with --key FILE") from None
        return VVM(profile, mission_host(profile, seed), patcher)

    @staticmethod
    def open(directory: Path, mission_dirs: tuple[Path, ...] = ()) -> Simulator:
        """Open an existing state directory."""
        path = directory / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise StateError(f"{directory} holds no VVM state",
                             f"create one with `vvm init {directory} --mission NAME`") from None
        except (OSError, ValueError) as exc:
            raise StateError(f"{path} is unreadable: {exc}", "restore it or init anew") \
                from None
        if state.get("format") != STATE_FORMAT:
            raise StateError(f"{path} has format {state.get('format')}, expected "
                             f"{STATE_FORMAT}", "init a new state directory")
        profile = find_mission(state["mission"], mission_dirs)
        try:
            key = key_from_text((directory / KEY_FILE).read_text())
            store = Store.open(directory / "store")
        except (OSError, ValueError, StoreError) as exc:
            raise StateError(f"{directory}: the key or the store is unusable: {exc}",
                             "the state directory is damaged; init anew") from None
        sim = Simulator(directory, Simulator._vvm(profile, state["seed"], store, key),
                        state["seed"], dict(state["images"]))
        sim._restore(state)
        return sim

    def _image(self, hash_hex: str) -> Image:
        path = self.directory / "images" / f"{hash_hex}.vvmi"
        try:
            return decode_image(path.read_bytes())
        except (OSError, ImageError) as exc:
            raise StateError(f"stored image {path} is unusable: {exc}",
                             "the state directory is damaged; init anew") from None

    def _program(self, config: Configuration) -> Program:
        return self.vvm.prepare(config.config, config.vmlets)

    def _restore(self, state: dict[str, Any]) -> None:
        vvm = self.vvm
        rc = self.reconfiguration
        for h in state["vmlets"]:
            vvm.load_vmlet(self._image(h))
        sched = vvm.scheduler
        sched.now_ms = state["now_ms"]
        tel = vvm.telemetry
        store = rc.patcher.store
        current = store.current()
        if current is not None:
            program = self._program(current)
            vvm.activate(program, run_on_apply=False, carry_state=False)
            sched.next_release = list(state["next_release"])
            _restore_memory(program.memory, (self.directory / "data.bin").read_bytes())
        probation = state["probation"]
        if probation is not None:
            previous = store.previous()
            if previous is not None:
                rc.previous = self._program(previous)
                _restore_memory(rc.previous.memory,
                                (self.directory / "previous.bin").read_bytes())
            rc.probation_ticket = probation["ticket"]
            rc.probation_end_ms = probation["end_ms"]
            rc.counted_to_ms = probation["counted_to_ms"]
            rc.patcher.count_clean_frames(probation["clean_frames"])
        rc.events = [PatchEvent(e["time_ms"], e["ticket"], _fate(e)) for e in state["patches"]]
        self.tickets = state["tickets"]
        frames = array("q")
        frames.frombytes((self.directory / "frames.bin").read_bytes())
        half = len(frames) // 2
        tel.frames = frames[:half]
        tel.cycles = frames[half:]
        tel.tasks = {t["name"]: TaskStats(**t) for t in state["tasks"]}
        tel.fault_count = state["fault_count"]
        tel.faults = [Fault(f["time_ms"], f["task"], TrapCode[f["code"].upper()], f["unit"],
                            f["offset"]) for f in state["faults"]]

    def save(self) -> None:
        """Write the state (each file atomically; ``state.json`` last)."""
        vvm = self.vvm
        rc = self.reconfiguration
        assert not vvm.scheduler.busy and not rc.busy, "saved only between jobs and steps"
        program = vvm.program
        _write_atomic(self.directory / "data.bin",
                      _memory_bytes(program.memory) if program is not None else b"")
        probation = None
        if rc.probation_end_ms is not None:
            probation = {"ticket": rc.probation_ticket, "end_ms": rc.probation_end_ms,
                         "counted_to_ms": rc.counted_to_ms,
                         "clean_frames": rc.patcher.clean_frames}
            if rc.previous is not None:
                _write_atomic(self.directory / "previous.bin", _memory_bytes(rc.previous.memory))
        tel = vvm.telemetry
        _write_atomic(self.directory / "frames.bin", (tel.frames + tel.cycles).tobytes())
        state = {
            "format": STATE_FORMAT,
            "mission": vvm.profile.name,
            "seed": self.seed,
            "now_ms": vvm.now_ms,
            "images": self.images,
            "vmlets": [h for h, kind in self.images.items() if kind == "vmlet"],
            "next_release": vvm.scheduler.next_release,
            "probation": probation,
            "tickets": self.tickets,
            "patches": [e.to_json() for e in rc.events],
            "tasks": [t.as_dict() for t in tel.tasks.values()],
            "fault_count": tel.fault_count,
            "faults": [{"time_ms": f.time_ms, "task": f.task, "code": f.code.name.lower(),
                        "unit": f.unit, "offset": f.offset} for f in tel.faults],
        }
        _write_atomic(self.directory / STATE_FILE, json.dumps(state, indent=1).encode())

    # ------------------------------------------------------------------ commands

    def load(self, image: Image) -> str:
        """Load a VMlet or a configuration image directly (a configuration becomes current
        in the store and active, and its ``on apply`` runs in the next frame); raise
        ``LoadError`` and change nothing on failure. Returns what was done, in words."""
        vvm = self.vvm
        store = self.reconfiguration.patcher.store
        if image.kind is ImageKind.VMLET:
            vvm.load_vmlet(image)
            what = f"VMlet {image.name} v{image.version} loaded"
        else:
            if store.phase is not Phase.IDLE:
                raise StateError(f"a patch is {store.phase.value}",
                                 "let it commit or roll back first (`vvm run`)")
            program = vvm.prepare(image)
            store.install(Configuration(image, tuple(v.image for v in program.vmlets)))
            vvm.activate(program)
            vvm.run_for(0, finish_jobs=True)  # on apply runs now, within the share
            what = f"configuration {image.name} v{image.version} active"
        h = image.content_hash.hex()
        _write_atomic(self.directory / "images" / f"{h}.vvmi", image.encode())
        self.images[h] = image.kind.name.lower()
        self.save()
        return what

    def apply(self, data: bytes) -> list[PatchEvent]:
        """Hand the VVM a complete patch, as the receiver does, and run the clock until it is
        rejected or active (its ``on apply`` done); probation goes on with ``run``. Returns
        the patch's fates so far."""
        self.tickets += 1
        ticket = self.tickets
        self.vvm.receive_patch(data, ticket)
        self.vvm.run_for(0, finish_jobs=True)
        self.save()
        return [e for e in self.reconfiguration.events if e.ticket == ticket]

    def run(self, ms: int) -> None:
        """Advance the clock by ``ms`` (then finish the jobs in flight) and save."""
        self.vvm.run_for(ms, finish_jobs=True)
        self.save()


def _fate(e: dict[str, Any]) -> Fate:
    return Fate(FateStatus(e["status"]), e["seq"],
                bytes.fromhex(e["target"]) if e["target"] else None,
                Reason(e["reason"]) if e["reason"] else None, e["message"], e["field"],
                e["offset"])


def parse_duration(text: str) -> int:
    """Milliseconds in ``90s``, ``6h``, ``2d``, ``100ms``, ``1.5h``; ValueError otherwise."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    t = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix):
            number = t[: -len(suffix)]
            try:
                value = float(number)
            except ValueError:
                break
            if value < 0:
                break
            return round(value * units[suffix])
    raise ValueError(f"not a duration: {text!r}")
