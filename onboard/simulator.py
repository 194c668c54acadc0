"""The onboard simulator's persistent state: one VVM kept in a directory between commands.

``vvm init`` creates the directory for a mission and a seed; ``vvm load`` adds VMlet and
configuration images; ``vvm run`` advances the simulated clock; ``vvm status`` reads the
telemetry. The directory holds::

    state.json       mission, seed, clock, loaded images (by hash), task releases, telemetry
    images/HASH.vvmi every image loaded (content-addressed)
    data.bin         the active configuration's data memory (globals, then arrays)
    frames.bin       per busy frame: frame index and cycles (two int64 arrays)

A run always stops with no job in flight (it finishes the jobs released before the
requested end), so the saved state is complete and a resumed run continues exactly where a
single long run would have been. Every file is replaced atomically (write, then rename).

The host is the mission's simulated spacecraft: ``missions/NAME/natives.py`` loaded by
file path (the onboard side imports nothing of the ground's packages).
"""

from __future__ import annotations

import importlib.util
import json
import os
from array import array
from pathlib import Path
from typing import Any

from onboard.faults import Fault, TrapCode
from onboard.host import Host, NativeFn
from onboard.image import Image, ImageError, ImageKind, decode_image
from onboard.mission import MissionProfile, find_mission
from onboard.telemetry import TaskStats
from onboard.vvm import VVM

STATE_FILE = "state.json"
STATE_FORMAT = 1


class StateError(Exception):
    """A state directory that cannot be used: what is wrong and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _NoNatives:
    """The host of a mission that simulates no spacecraft services."""

    def native(self, name: str) -> NativeFn | None:
        return None

    def env(self, key: str) -> int:
        return 0

    def advance(self, now_ms: int) -> None:
        return None


def mission_host(profile: MissionProfile, seed: int) -> Host:
    """The mission's simulated host: ``make_host(profile, seed)`` of its ``natives.py``."""
    path = profile.directory / "natives.py"
    if not path.exists():
        return _NoNatives()
    spec = importlib.util.spec_from_file_location(f"vvm_natives_{profile.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host: Host = module.make_host(profile, seed)
    return host


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Simulator:
    """A VVM bound to a state directory."""

    def __init__(self, directory: Path, vvm: VVM, seed: int, images: dict[str, str]) -> None:
        self.directory = directory
        self.vvm = vvm
        self.seed = seed
        self.images = images  # content hash (hex) -> kind, of every image stored

    # ------------------------------------------------------------------ life cycle

    @staticmethod
    def init(directory: Path, mission: str, seed: int,
             mission_dirs: tuple[Path, ...] = ()) -> Simulator:
        """Create a new state directory (it must not hold a state already)."""
        if (directory / STATE_FILE).exists():
            raise StateError(f"{directory} already holds a VVM state",
                             "choose another directory, or delete this one")
        profile = find_mission(mission, mission_dirs)
        (directory / "images").mkdir(parents=True, exist_ok=True)
        sim = Simulator(directory, VVM(profile, mission_host(profile, seed)), seed, {})
        sim.save()
        return sim

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
        vvm = VVM(profile, mission_host(profile, state["seed"]))
        sim = Simulator(directory, vvm, state["seed"], dict(state["images"]))
        sim._restore(state)
        return sim

    def _image(self, hash_hex: str) -> Image:
        path = self.directory / "images" / f"{hash_hex}.vvmi"
        try:
            return decode_image(path.read_bytes())
        except (OSError, ImageError) as exc:
            raise StateError(f"stored image {path} is unusable: {exc}",
                             "the state directory is damaged; init anew") from None

    def _restore(self, state: dict[str, Any]) -> None:
        vvm = self.vvm
        for h in state["vmlets"]:
            vvm.load_vmlet(self._image(h))
        sched = vvm.scheduler
        sched.now_ms = state["now_ms"]
        tel = vvm.telemetry
        if state["config"]:
            program = vvm.prepare(self._image(state["config"]))
            vvm.activate(program, run_on_apply=False)
            sched.next_release = list(state["next_release"])
            raw = array("q")
            raw.frombytes((self.directory / "data.bin").read_bytes())
            n = len(program.memory.globals)
            program.memory.globals[:] = raw[:n].tolist()
            at = n
            for arr in program.memory.arrays:
                arr[:] = raw[at:at + len(arr)].tolist()
                at += len(arr)
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
        assert not vvm.scheduler.busy, "saved only between jobs"
        program = vvm.program
        data = array("q")
        if program is not None:
            data.extend(program.memory.globals)
            for arr in program.memory.arrays:
                data.extend(arr)
        _write_atomic(self.directory / "data.bin", data.tobytes())
        tel = vvm.telemetry
        _write_atomic(self.directory / "frames.bin", (tel.frames + tel.cycles).tobytes())
        state = {
            "format": STATE_FORMAT,
            "mission": vvm.profile.name,
            "seed": self.seed,
            "now_ms": vvm.now_ms,
            "images": self.images,
            "vmlets": [v.image.content_hash.hex() for v in vvm.vmlets.values()],
            "config": program.image.content_hash.hex() if program is not None else None,
            "next_release": vvm.scheduler.next_release,
            "tasks": [t.as_dict() for t in tel.tasks.values()],
            "fault_count": tel.fault_count,
            "faults": [{"time_ms": f.time_ms, "task": f.task, "code": f.code.name.lower(),
                        "unit": f.unit, "offset": f.offset} for f in tel.faults],
        }
        _write_atomic(self.directory / STATE_FILE, json.dumps(state, indent=1).encode())

    # ------------------------------------------------------------------ commands

    def load(self, image: Image) -> str:
        """Load a VMlet or a configuration image (a configuration becomes active and its
        ``on apply`` runs in the next frame); raise ``LoadError`` and change nothing on
        failure. Returns what was done, in words."""
        vvm = self.vvm
        if image.kind is ImageKind.VMLET:
            vvm.load_vmlet(image)
            what = f"VMlet {image.name} v{image.version} loaded"
        else:
            vvm.load(image)
            vvm.run_for(0, finish_jobs=True)  # on apply runs now, within the share
            what = f"configuration {image.name} v{image.version} active"
        h = image.content_hash.hex()
        _write_atomic(self.directory / "images" / f"{h}.vvmi", image.encode())
        self.images[h] = image.kind.name.lower()
        self.save()
        return what

    def run(self, ms: int) -> None:
        """Advance the clock by ``ms`` (then finish the jobs in flight) and save."""
        self.vvm.run_for(ms, finish_jobs=True)
        self.save()


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
