"""The onboard software as one object: the telecommand receiver, the VVM with its patcher
and configuration store, and the mission's simulated instrument, on one simulated clock.

This is what an end-to-end simulation drives from the ground side::

    sc = Spacecraft.create(profile, directory, key, seed=1)
    sc.install(config_image, vmlet_images)      # what was loaded before launch (optional)
    sc.run_until(t_ms)                          # the tasks run, patches are handled
    sc.receiver.accept(frame_bytes)             # a TC frame arrives during a pass
    raw = sc.report()                           # telemetry for the next pass
    sc.reboot()                                 # a reset: only the store survives

The receiver hands each complete patch to the VVM (``VVM.receive_patch``, ticket = the
transfer id); every later fate of the patch (staged, active, committed, rejected, rolled
back) is written back into the receiver, so the next telemetry report carries it.
Everything runs on the simulated clock: host time never enters.

A reset (``reboot``) loses everything but the configuration store -- the VVM's memory, the
receiver's transfers -- while the clock and the instrument go on; the onboard software
starts again through ``onboard.boot.start``, the path the ``vvm`` simulator takes too (with
no snapshot: a configuration on probation is rolled back, a staged one switched to, the
current one starts from its declared values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from onboard.boot import start
from onboard.host import Host, mission_host
from onboard.image import Image
from onboard.mission import MissionProfile
from onboard.patcher import Fate, Patcher
from onboard.receiver import Receiver
from onboard.store import Configuration, Store
from onboard.vvm import VVM


@dataclass
class Spacecraft:
    """A receiver feeding a VVM that applies patches; see the module docstring."""

    vvm: VVM
    receiver: Receiver
    store: Store
    key: bytes

    @staticmethod
    def create(profile: MissionProfile, directory: Path, key: bytes, *, seed: int = 1,
               probation_frames: int | None = None) -> Spacecraft:
        """A spacecraft whose configuration store is a new one in ``directory``."""
        return Spacecraft._assemble(profile, Store.init(directory), key,
                                    mission_host(profile, seed), probation_frames)

    def reboot(self) -> None:
        """A reset now: the onboard software starts again from the store (see the module
        docstring); the clock and the instrument go on."""
        patcher = self.vvm.reconfiguration.patcher if self.vvm.reconfiguration else None
        fresh = Spacecraft._assemble(self.vvm.profile, Store.open(self.store.directory),
                                     self.key, self.vvm.host,
                                     patcher.probation_frames if patcher else None)
        fresh.vvm.scheduler.now_ms = self.vvm.now_ms
        start(fresh.vvm, None)
        self.vvm, self.receiver, self.store = fresh.vvm, fresh.receiver, fresh.store

    @staticmethod
    def _assemble(profile: MissionProfile, store: Store, key: bytes, host: Host,
                  probation_frames: int | None) -> Spacecraft:
        patcher = Patcher(profile, store, key, probation_frames=probation_frames)
        vvm = VVM(profile, host, patcher)

        def handoff(transfer: int, data: bytes) -> int:
            return vvm.receive_patch(data, transfer).code

        receiver = Receiver(profile.spacecraft_id, handoff, profile.patch_buffer_bytes)

        def fate_changed(transfer: int, fate: Fate) -> None:
            receiver.set_fate(transfer, fate.code)

        assert vvm.reconfiguration is not None
        vvm.reconfiguration.listeners.append(fate_changed)
        return Spacecraft(vvm, receiver, store, key)

    @property
    def now_ms(self) -> int:
        return self.vvm.now_ms

    def install(self, config: Image, vmlets: Sequence[Image] = ()) -> None:
        """Load a configuration before launch (no patch): it is current in the store and
        runs, its ``on apply`` first."""
        program = self.vvm.prepare(config, vmlets)
        self.store.install(Configuration(config, tuple(v.image for v in program.vmlets)))
        self.vvm.activate(program)

    def run_until(self, t_ms: int) -> None:
        """Advance the simulated clock to ``t_ms`` (no later than the next frame after it)."""
        if t_ms > self.vvm.now_ms:
            self.vvm.run_for(t_ms - self.vvm.now_ms)

    def config_hash(self) -> bytes:
        """The content hash of the configuration running (32 zero bytes: none)."""
        program = self.vvm.program
        return program.image.content_hash if program is not None else bytes(32)

    def report(self) -> bytes:
        """The telemetry report for the next pass (receiver state and patch fates)."""
        return self.receiver.report(self.vvm.now_ms, self.config_hash())
