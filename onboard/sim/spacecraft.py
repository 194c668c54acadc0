"""The onboard software as one object: the telecommand receiver, the VVM with its patcher
and configuration store, and the mission's simulated instrument, on one simulated clock.

This is what an end-to-end simulation drives from the ground side::

    sc = Spacecraft.create(profile, directory, key, link_key, seed=1)
    sc.install(config_image, vmlet_images)      # what was loaded before launch (optional)
    sc.run_until(t_ms)                          # the tasks run, patches are handled
    sc.receive(frame_bytes)                     # a TC frame arrives during a pass
    raw = sc.downlink()                         # telemetry for the next pass
    sc.reboot()                                 # a reset: only the store survives

The receiver authenticates every frame with the mission's link key (``key`` is the patch
key, ``link_key`` the link key; a flight profile refuses the development ones) and hands
each complete patch to the VVM's reconfiguration (``Reconfiguration.receive``, ticket =
the receiver's ticket: the transfer id on its first use); every later fate of the patch
(staged, active, committed, rejected, rolled back) is written back into the receiver, so
the next telemetry report carries it, and logged with its onboard time in the patch event
log. A dump request (``onboard.link.dump_format``) goes from the receiver to the dump
service, which answers it in what patch handling leaves of the patch reserve
(``onboard.sim.dump_service``). ``downlink`` is what the ground receives at a pass
(``onboard.link.downlink``): the receiver's report, that log and the dump packets -- all it
ever learns of the spacecraft.
Everything runs on the simulated clock: host time never enters.

A reset (``reboot``) loses everything but the configuration store -- the VVM's memory, the
receiver's transfers -- while the clock and the instrument go on; the onboard software
starts again through ``onboard.patching.boot.start``, the path the ``vvm`` simulator takes too (with
no snapshot: a configuration on probation is rolled back, a staged one switched to, the
current one starts from its declared values).

Several applications (``create(..., applications=[("channel_a", 4), ...])``): the VVM is
then a ``Board`` (``onboard.vm.board``) of one application per entry, in that order (their
numbers on the link: the first is number 0, on the patch APID of old, the next ones on
``tc_frames.patch_apid(n)``), each with its part of the share, its own instrument channel
(the mission's host, seed + number), patcher, store (``directory/NAME``) and probation. The
receiver routes each transfer to the application its APID names; every application's fates
go into the one event log (the ground knows each transfer's application). The first
application is the spacecraft's ``vvm`` (it answers dump requests and its hash is the
report's); telemetry carries one ``Application`` packet per application
(``tm_packets.APPLICATION``: its configuration, cycles, traps and the fates of its patches).
A reset restarts every application from its own store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from onboard.link.downlink import EventLog, encode_downlink
from onboard.link.link_security import check_link_key
from onboard.link.receiver import LINK_REPORT, REPORT_MAGIC, Receiver, Reception
from onboard.mission import MissionProfile
from onboard.patching.boot import start
from onboard.patching.conditions import ProfileConditions
from onboard.patching.patcher import Fate, Patcher
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Configuration, Store
from onboard.sim.dump_service import DumpOutbox, DumpService
from onboard.sim.tm_packets import (
    PHASES,
    Declaration,
    TmPacketizer,
    conditions_housekeeping,
    declarations,
)
from onboard.vm.board import Board, part_cycles
from onboard.vm.host import Host, mission_host
from onboard.vm.image import Image
from onboard.vm.reserve import SharedReserve
from onboard.vm.vvm import VVM


@dataclass(frozen=True)
class OnboardApplication:
    """One application of a spacecraft built with several: its VVM (in its part of the
    share), its patch handling and its store."""

    name: str
    share_percent: int
    vvm: VVM
    reconfiguration: Reconfiguration
    store: Store


@dataclass
class Spacecraft:
    """A receiver feeding a VVM that applies patches; see the module docstring."""

    vvm: VVM
    reconfiguration: Reconfiguration
    receiver: Receiver
    store: Store
    key: bytes
    link_key: bytes
    events: EventLog  # downlinked; kept across resets (as in mass memory)
    dumps: DumpService  # answers dump requests in what the patch reserve leaves
    tm: TmPacketizer = field(default_factory=TmPacketizer)  # telemetry as Space Packets
    board: Board | None = None  # several applications; None: one VVM with the whole share
    applications: dict[str, OnboardApplication] = field(default_factory=dict)

    @staticmethod
    def create(profile: MissionProfile, directory: Path, key: bytes, link_key: bytes, *,
               seed: int = 1, probation_frames: int | None = None,
               applications: Sequence[tuple[str, int]] = ()) -> Spacecraft:
        """A spacecraft whose configuration store is a new one in ``directory`` (with
        ``applications``, (name, percent of the share) in link order: one store per
        application, ``directory/NAME``). Raises ``KeyRefused`` (patch key) or
        ``LinkKeyRefused`` (link key) for a key the profile refuses, the link key checked
        before any store is created; ``LoadError`` for applications the board refuses (a
        name twice, parts over the share)."""
        check_link_key(profile, link_key)
        if not applications:
            return Spacecraft._assemble(profile, Store.init(directory), key, link_key,
                                        mission_host(profile, seed), probation_frames,
                                        EventLog(), DumpOutbox())
        board = Board(profile)
        for n, (name, share) in enumerate(applications):  # refused before any store exists
            board.add(name, share, mission_host(profile, seed + n), takes_patches=True)
        return Spacecraft._assemble_board(profile, board, directory, Store.init, key,
                                          link_key, probation_frames, EventLog(), DumpOutbox())

    def reboot(self) -> None:
        """A reset now: the onboard software starts again from the store (see the module
        docstring); the clock and the instrument go on."""
        patcher = self.reconfiguration.patcher
        if self.board is not None:
            old = self.board
            board = Board(self.vvm.profile)
            for a in old.applications.values():
                board.add(a.name, a.share_percent, a.vm.host, takes_patches=True)
                board.app(a.name).scheduler.now_ms = a.vm.now_ms
            board.now_ms = old.now_ms
            fresh = Spacecraft._assemble_board(self.vvm.profile, board,
                                               self.store.directory.parent, Store.open,
                                               self.key, self.link_key,
                                               patcher.probation_frames, self.events,
                                               self.dumps.outbox)
            for app in fresh.applications.values():
                start(app.reconfiguration, None)
            self.board, self.applications = fresh.board, fresh.applications
        else:
            fresh = Spacecraft._assemble(self.vvm.profile, Store.open(self.store.directory),
                                         self.key, self.link_key, self.vvm.host,
                                         patcher.probation_frames, self.events,
                                         self.dumps.outbox)
            fresh.vvm.scheduler.now_ms = self.vvm.now_ms
            start(fresh.reconfiguration, None)
        self.vvm, self.receiver, self.store = fresh.vvm, fresh.receiver, fresh.store
        self.reconfiguration, self.dumps = fresh.reconfiguration, fresh.dumps

    @staticmethod
    def _assemble(profile: MissionProfile, store: Store, key: bytes, link_key: bytes,
                  host: Host, probation_frames: int | None, events: EventLog,
                  outbox: DumpOutbox) -> Spacecraft:
        patcher = Patcher(profile, store, key, probation_frames=probation_frames)
        vvm = VVM(profile, host)
        reconfiguration = Reconfiguration(vvm, patcher)
        # Profile patches too (their flag tells them apart): the soft figures committed are
        # kept beside the journal, in the one persistent memory.
        reconfiguration.attach_conditions(ProfileConditions(profile, key, store.directory))
        dumps = DumpService(vvm, outbox)
        # Dumps get what patch handling leaves of the patch reserve, never more.
        vvm.scheduler.background = SharedReserve(reconfiguration, dumps)

        def handoff(ticket: int, data: bytes) -> int:
            return reconfiguration.receive(data, ticket).code

        receiver = Receiver.for_mission(profile, handoff, link_key, dumps.request)
        reconfiguration.listeners.append(_fate_listener(receiver, events, vvm))
        return Spacecraft(vvm, reconfiguration, receiver, store, key, link_key, events, dumps)

    @staticmethod
    def _assemble_board(profile: MissionProfile, board: Board, directory: Path,
                        store_at: Callable[[Path], Store], key: bytes, link_key: bytes,
                        probation_frames: int | None, events: EventLog,
                        outbox: DumpOutbox) -> Spacecraft:
        """The spacecraft of ``board``'s applications, each patched over the store
        ``store_at(directory / NAME)`` gives (a new one, or the one a reset left)."""
        apps: dict[str, OnboardApplication] = {}
        for a in board.applications.values():
            store = store_at(directory / a.name)
            # its patcher refuses a configuration its part in force cannot hold
            rc = Reconfiguration(a.vm, Patcher(profile, store, key,
                                               probation_frames=probation_frames,
                                               limits=partial(board.limits, a.name)))
            apps[a.name] = OnboardApplication(a.name, a.share_percent, a.vm, rc, store)
        first = next(iter(apps.values()))
        dumps = DumpService(first.vvm, outbox)
        # The first application's dumps get what its patch handling leaves of its slice.
        first.vvm.scheduler.background = SharedReserve(first.reconfiguration, dumps)

        def handoff(ticket: int, data: bytes) -> int:
            return first.reconfiguration.receive(data, ticket).code

        receiver = Receiver.for_mission(profile, handoff, link_key, dumps.request,
                                        routes=board.route)
        for app in apps.values():
            app.reconfiguration.listeners.append(_fate_listener(receiver, events, app.vvm))
        return Spacecraft(first.vvm, first.reconfiguration, receiver, first.store, key,
                          link_key, events, dumps, board=board, applications=apps)

    @property
    def now_ms(self) -> int:
        return self.vvm.now_ms

    def application(self, name: str) -> OnboardApplication:
        """Application ``name`` of a spacecraft built with several; ``KeyError`` (naming
        those on board) otherwise."""
        try:
            return self.applications[name]
        except KeyError:
            raise KeyError(f"no application `{name}` on board (on board: "
                           f"{', '.join(self.applications) or 'the default one only'})") \
                from None

    def receive(self, frame: bytes) -> Reception:
        """A TC frame arrives now (on the simulated clock)."""
        return self.receiver.accept(frame, self.vvm.now_ms)

    def install(self, config: Image, vmlets: Sequence[Image] = (),
                application: str | None = None) -> None:
        """Load a configuration before launch (no patch): it is current in the store and
        runs, its ``on apply`` first; in ``application``'s VVM and store if given."""
        vvm, store = self.vvm, self.store
        if application is not None:
            a = self.application(application)
            vvm, store = a.vvm, a.store
        program = vvm.prepare(config, vmlets)
        store.install(Configuration(config, tuple(v.image for v in program.vmlets)))
        vvm.activate(program)

    def run_until(self, t_ms: int) -> None:
        """Advance the simulated clock to ``t_ms`` (no later than the next frame after it)."""
        if self.board is not None:
            if t_ms > self.board.now_ms:
                self.board.run_for(t_ms - self.board.now_ms)
        elif t_ms > self.vvm.now_ms:
            self.vvm.run_for(t_ms - self.vvm.now_ms)

    def config_hash(self) -> bytes:
        """The content hash of the configuration running (32 zero bytes: none)."""
        program = self.vvm.program
        return program.image.content_hash if program is not None else bytes(32)

    def report(self) -> bytes:
        """The receiver's telemetry report now (receiver state and latest patch fates)."""
        return self.receiver.report(self.vvm.now_ms, self.config_hash())

    def downlink(self) -> bytes:
        """The telemetry downlinked at a pass now: the receiver's report and the patch event
        log (``onboard.link.downlink``)."""
        return encode_downlink(self.report(), self.events, self.dumps.outbox.packets)

    def tm_packets(self) -> list[bytes]:
        """The telemetry of a pass now as CCSDS Space Packets (``onboard.sim.tm_packets``):
        what a mission control system receives beside ``downlink``."""
        report = self.report()
        head = LINK_REPORT.parse(report[len(REPORT_MAGIC):][:LINK_REPORT.struct.sizeof()])
        return self.tm.pass_packets(self.housekeeping(), head, self.events.events,
                                    self.dumps.outbox.packets, self.declarations(),
                                    int.from_bytes(self.config_hash()[:4], "big"),
                                    [self.application_housekeeping(name)
                                     for name in self.applications])

    def declarations(self) -> tuple[Declaration, ...]:
        """The values the running configuration declares, in read-back order."""
        program = self.vvm.program
        return declarations(program.image) if program is not None else ()

    def housekeeping(self) -> dict[str, object]:
        """The values of the housekeeping packet now (``tm_packets.HOUSEKEEPING``)."""
        t = self.vvm.telemetry
        store = self.store.state()
        patcher = self.reconfiguration.patcher
        tasks = t.tasks.values()
        worst = t.worst_frame_cycles()
        return {
            "time_ms": self.now_ms, "config_hash": self.config_hash(),
            "config_version": t.config_version, "config_name": t.config_name,
            "share_cycles": t.share_cycles, "frames": self.now_ms // t.frame_ms,
            "busy_frames": t.busy_frames, "cycles_used": t.cycles_used,
            "worst_frame_cycles": worst,
            "worst_share_ppm": worst * 1_000_000 // t.share_cycles if t.share_cycles else 0,
            "task_runs": sum(x.runs for x in tasks),
            "overruns": sum(x.overruns for x in tasks), "traps": sum(x.traps for x in tasks),
            "faults": t.fault_count, "store_phase": PHASES.index(store.phase.value),
            "store_slots": sum(h is not None for h in (store.current, store.previous,
                                                       store.staged)),
            "patches_waiting": len(self.reconfiguration.pending),
            "probation_frames": patcher.clean_frames,
            "probation_needed": patcher.probation_frames,
            **conditions_housekeeping(self.reconfiguration),
        }

    def application_housekeeping(self, name: str) -> dict[str, object]:
        """The values of application ``name``'s packet now (``tm_packets.APPLICATION``)."""
        a = self.application(name)
        t, program = a.vvm.telemetry, a.vvm.program
        store, patcher = a.store.state(), a.reconfiguration.patcher
        statuses = [e.fate.status.value for e in a.reconfiguration.events]
        return {
            "time_ms": self.now_ms, "application": list(self.applications).index(name),
            "name": name, "share_percent": a.share_percent,
            "part_cycles": part_cycles(a.vvm.profile, a.share_percent),
            "reserve_cycles": a.vvm.scheduler.reserve_per_frame,
            "config_hash": program.image.content_hash if program is not None else bytes(32),
            "config_version": t.config_version, "config_name": t.config_name,
            "busy_frames": t.busy_frames, "cycles_used": t.cycles_used,
            "worst_frame_cycles": t.worst_frame_cycles(),
            "task_runs": sum(x.runs for x in t.tasks.values()),
            "overruns": sum(x.overruns for x in t.tasks.values()),
            "traps": sum(x.traps for x in t.tasks.values()), "faults": t.fault_count,
            "store_phase": PHASES.index(store.phase.value),
            "probation_frames": patcher.clean_frames,
            "patches_committed": statuses.count("committed"),
            "patches_rolled_back": statuses.count("rolled-back"),
            "patches_rejected": statuses.count("rejected"),
        }

    def status(self) -> dict[str, object]:
        """The onboard software's own status (the simulator's referee view, never
        downlinked as such): the first (or only) VVM's, and each application's."""
        out = self.vvm.status()
        if self.board is not None:
            out["applications"] = self.board.status()["applications"]
            out["worst_total_frame_cycles"] = self.board.worst_total_cycles
        return out


def _fate_listener(receiver: Receiver, events: EventLog, vvm: VVM) -> Callable[[int, Fate], None]:
    """Writes every fate of a patch back into the receiver (for its next report) and logs
    it with ``vvm``'s onboard time."""

    def fate_changed(ticket: int, fate: Fate) -> None:
        receiver.set_fate(ticket, fate.code)
        events.log(vvm.now_ms, ticket, fate.code, fate.message)
    return fate_changed
