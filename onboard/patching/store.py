"""Persistent configuration slots: where the satellite keeps its configurations across resets.

A *configuration* is a configuration image and the VMlet images it uses. The store keeps
three slot files and a journal in one state directory::

    journal.0, journal.1   two copies of the journal record, written alternately (epoch % 2)
    slot.0, slot.1, slot.2 configurations; the journal says which is current, previous and
                           staged, and the length and SHA-256 of each

Operations and the phases they move between (``state()`` reports the phase)::

    IDLE --stage(cfg, seq)--> STAGED --activate()--> PROBATION --commit()--> IDLE
    IDLE --install(cfg)--> IDLE (a direct load: current without a patch)
                  STAGED --rollback()--> IDLE (the staged configuration is dropped)
               PROBATION --rollback()--> IDLE (the previous configuration is current again)

Crash safety: every persistent write goes through a ``Disk`` (``onboard.patching.disk``; tests give
a ``FaultyDisk`` to cut the power at any write, leaving a torn file). ``stage`` first writes
the configuration into the *spare* slot, which no journal record references, then writes
the journal; every other operation writes only the journal. A journal record carries an
epoch and a CRC-32 and goes to the copy the newest valid record is *not* in, so a torn
journal write leaves the previous record intact; ``open`` takes the valid copy with the
highest epoch. The journal write is therefore the one commit point of each operation: a
power loss at any write leaves the store in the state before the operation or after it,
never a mix, and ``check()`` finds nothing wrong. ``open`` writes nothing.

The probation count is not persisted: after a reset during probation the patcher rolls back
(a reset while trying a configuration is a reason to distrust it), as MCUboot reverts an
unconfirmed image.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import construct as cs

from onboard.bounded_decoding import VarUInt
from onboard.errors import OnboardError
from onboard.patching.disk import Disk, FaultyDisk, PowerLoss
from onboard.vm.image import Image, ImageError, ImageKind, decode_image, pinned_stack

#: ``Disk``, ``FaultyDisk`` and ``PowerLoss`` live in ``onboard.patching.disk``; they are named here
#: too because the store is where most callers meet them.
__all__ = ["Configuration", "Disk", "FaultyDisk", "Phase", "PowerLoss", "SlotRecord",
           "Store", "StoreError", "StoreState"]

SLOTS = 3
NONE = 0xFF  # "no slot" in a journal record
JOURNAL_FILES = ("journal.0", "journal.1")
SLOT_FILES = tuple(f"slot.{i}" for i in range(SLOTS))


class StoreError(OnboardError):
    """A state directory that is not a usable store, or an operation in the wrong phase."""

    def __init__(self, message: str) -> None:
        super().__init__("store", message)


class Phase(StrEnum):
    IDLE = "idle"  # current (if any) is committed; nothing staged
    STAGED = "staged"  # a verified configuration waits in the spare slot for activation
    PROBATION = "probation"  # the new configuration runs; the previous one is kept


@dataclass(frozen=True)
class Configuration:
    """A configuration image and the VMlet images it uses (in its ``uses`` order)."""

    config: Image
    vmlets: tuple[Image, ...] = ()

    @property
    def hash(self) -> bytes:
        """The configuration's identity: its image's content hash (which pins its VMlets)."""
        return self.config.content_hash

    def encode(self) -> bytes:
        return bytes(_SLOT.build({"config": self.config.encode(),
                                  "vmlets": [v.encode() for v in self.vmlets]}))

    @staticmethod
    def decode(data: bytes) -> Configuration:
        """Parse a slot file; raises ``StoreError``."""
        try:
            raw = _SLOT.parse(data)
            config = decode_image(raw.config)
            vmlets = tuple(decode_image(v) for v in raw.vmlets)
        except (cs.ConstructError, ImageError) as exc:
            raise StoreError(f"malformed slot: {exc}") from None
        if config.kind is not ImageKind.CONFIG or any(v.kind is not ImageKind.VMLET
                                                      for v in vmlets):
            raise StoreError("malformed slot: image kinds")
        return Configuration(config, vmlets)


_SLOT = cs.Struct(
    "magic" / cs.Const(b"VVMS"),
    "format" / cs.Const(1, cs.Int8ub),
    "config" / cs.Prefixed(VarUInt, cs.GreedyBytes),
    "vmlets" / cs.PrefixedArray(VarUInt, cs.Prefixed(VarUInt, cs.GreedyBytes)),
)


@dataclass(frozen=True)
class SlotRecord:
    """What the journal knows about one slot file's contents."""

    length: int = 0
    digest: bytes = bytes(32)  # SHA-256 of the file
    config: bytes = bytes(32)  # content hash of the configuration image in it
    #: The proven worst-case cycles per frame of its tasks, as claimed by the authenticated
    #: patch that brought it (the verifier's figure, covered by the patch's tag); None for a
    #: configuration installed without a patch, whose demand the board does not know.
    demand: int | None = None


@dataclass(frozen=True)
class Journal:
    """One journal record: the whole persistent state but the slot contents."""

    epoch: int
    phase: Phase
    last_seq: int  # highest sequence number ever staged (anti-replay)
    seq: int  # sequence number of the staged or probationary configuration's patch
    current: int | None
    previous: int | None
    staged: int | None
    slots: tuple[SlotRecord, ...]


_JOURNAL = cs.Struct(
    "magic" / cs.Const(b"VVMJ"),
    "format" / cs.Const(2, cs.Int8ub),  # 2: each slot's proven demand
    "epoch" / cs.Int64ub,
    "phase" / cs.PascalString(cs.Int8ub, "ascii"),
    "last_seq" / cs.Int64ub,
    "seq" / cs.Int64ub,
    "current" / cs.Int8ub,
    "previous" / cs.Int8ub,
    "staged" / cs.Int8ub,
    "slots" / cs.Array(SLOTS, cs.Struct(
        "length" / cs.Int32ub, "digest" / cs.Bytes(32), "config" / cs.Bytes(32),
        "demand" / cs.Int32ub)),  # UNKNOWN_DEMAND: not known
)
#: A slot's demand in a journal record when the board does not know it.
UNKNOWN_DEMAND = 0xFFFFFFFF


def _encode_journal(j: Journal) -> bytes:
    body = _JOURNAL.build({
        "epoch": j.epoch, "phase": j.phase.value, "last_seq": j.last_seq, "seq": j.seq,
        "current": NONE if j.current is None else j.current,
        "previous": NONE if j.previous is None else j.previous,
        "staged": NONE if j.staged is None else j.staged,
        "slots": [{**vars(s), "demand": UNKNOWN_DEMAND if s.demand is None else s.demand}
                  for s in j.slots],
    })
    return body + zlib.crc32(body).to_bytes(4, "big")


def _decode_journal(data: bytes) -> Journal | None:
    """A journal record, or None if the copy is torn, corrupt or absent."""
    if len(data) < 4 or zlib.crc32(data[:-4]) != int.from_bytes(data[-4:], "big"):
        return None
    try:
        raw = _JOURNAL.parse(data[:-4])
        phase = Phase(raw.phase)
    except (cs.ConstructError, ValueError):
        return None

    def slot(v: int) -> int | None:
        return None if v == NONE else v

    return Journal(raw.epoch, phase, raw.last_seq, raw.seq, slot(raw.current),
                   slot(raw.previous), slot(raw.staged),
                   tuple(SlotRecord(s.length, bytes(s.digest), bytes(s.config),
                                    None if s.demand == UNKNOWN_DEMAND else int(s.demand))
                         for s in raw.slots))


@dataclass(frozen=True)
class StoreState:
    """What the store holds, by configuration hash (telemetry, tests)."""

    phase: Phase
    epoch: int
    last_seq: int
    seq: int
    current: bytes | None
    previous: bytes | None
    staged: bytes | None

    def roles(self) -> tuple[Phase, bytes | None, bytes | None, bytes | None, int]:
        """What must survive a power loss: phase, the three roles and the last sequence."""
        return (self.phase, self.current, self.previous, self.staged, self.last_seq)


class Store:
    """The slots and journal of one state directory. Use ``Store.init`` or ``Store.open``."""

    def __init__(self, directory: Path, journal: Journal, disk: Disk) -> None:
        self.directory = directory
        self._journal = journal
        self._disk = disk
        self._cache: dict[int, tuple[bytes, Configuration]] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def init(cls, directory: Path, disk: Disk | None = None) -> Store:
        """Make ``directory`` an empty store (no configuration yet)."""
        disk = disk or Disk()
        if _newest_journal(directory) is not None:
            raise StoreError(f"{directory} already holds a store")
        disk.mkdir(directory)
        journal = Journal(1, Phase.IDLE, 0, 0, None, None, None, (SlotRecord(),) * SLOTS)
        store = cls(directory, journal, disk)
        store._disk.write(directory / JOURNAL_FILES[1], _encode_journal(journal))
        return store

    @classmethod
    def open(cls, directory: Path, disk: Disk | None = None) -> Store:
        """Open the store in ``directory`` as the last completed operation left it; raises
        ``StoreError`` if there is none or its slots do not match the journal. Writes
        nothing."""
        journal = _newest_journal(directory)
        if journal is None:
            raise StoreError(f"{directory} holds no valid journal (not a store, or never "
                             f"initialised)")
        store = cls(directory, journal, disk or Disk())
        problems = store.check()
        if problems:
            raise StoreError(f"{directory}: " + "; ".join(problems))
        return store

    # ------------------------------------------------------------------ reading

    def state(self) -> StoreState:
        j = self._journal

        def h(slot: int | None) -> bytes | None:
            return None if slot is None else j.slots[slot].config

        return StoreState(j.phase, j.epoch, j.last_seq, j.seq, h(j.current), h(j.previous),
                          h(j.staged))

    @property
    def phase(self) -> Phase:
        return self._journal.phase

    @property
    def last_seq(self) -> int:
        return self._journal.last_seq

    def current(self) -> Configuration | None:
        """The configuration running (or on probation), if any."""
        return self._load(self._journal.current)

    def previous(self) -> Configuration | None:
        """The configuration before the current one, kept for rollback."""
        return self._load(self._journal.previous)

    def staged(self) -> Configuration | None:
        """The verified configuration waiting in the spare slot for activation."""
        return self._load(self._journal.staged)

    def demands(self) -> dict[str, int | None]:
        """The proven cycles per frame of each configuration that may run, by role: the
        ``current`` one, the ``staged`` one (a switch) and, on probation, the ``previous``
        one (a rollback or a reset returns to it); each must fit the tasks' part. None: not
        known."""
        j = self._journal
        previous = j.previous if j.phase is Phase.PROBATION else None
        return {role: j.slots[slot].demand for role, slot in
                (("current", j.current), ("previous", previous), ("staged", j.staged))
                if slot is not None}

    def _load(self, slot: int | None) -> Configuration | None:
        if slot is None:
            return None
        record = self._journal.slots[slot]
        cached = self._cache.get(slot)
        if cached is not None and cached[0] == record.digest:
            return cached[1]
        data = self._read_slot(slot)
        config = Configuration.decode(data)
        self._cache[slot] = (record.digest, config)
        return config

    def _read_slot(self, slot: int) -> bytes:
        record = self._journal.slots[slot]
        try:
            data = (self.directory / SLOT_FILES[slot]).read_bytes()
        except OSError as exc:
            raise StoreError(f"slot {slot}: cannot read: {exc.strerror}") from None
        if len(data) != record.length or hashlib.sha256(data).digest() != record.digest:
            raise StoreError(f"slot {slot}: contents differ from the journal's record")
        return data

    # ------------------------------------------------------------------ operations

    def stage(self, config: Configuration, seq: int, demand: int | None = None) -> None:
        """Write ``config`` into the spare slot and record it as staged with patch sequence
        number ``seq`` (which becomes the last accepted one) and ``demand``, the proven
        cycles per frame its authenticated patch claims. Phase IDLE -> STAGED."""
        j = self._require(Phase.IDLE)
        if seq <= j.last_seq:
            raise StoreError(f"sequence {seq} is not above the last accepted {j.last_seq}")
        if demand is not None and not 0 <= demand < UNKNOWN_DEMAND:
            raise StoreError(f"demand {demand} cycles per frame cannot be recorded")
        spare, slots = self._write_spare(j, config, demand)
        self._commit(replace(j, phase=Phase.STAGED, last_seq=seq, seq=seq, staged=spare,
                             slots=slots))

    def _write_spare(self, j: Journal, config: Configuration,
                     demand: int | None = None) -> tuple[int, tuple[SlotRecord, ...]]:
        """Write ``config`` into the slot no journal record references; the slot and the
        journal's slot records as they will be."""
        spare = min(set(range(SLOTS)) - {j.current, j.previous})
        data = config.encode()
        self._disk.write(self.directory / SLOT_FILES[spare], data)
        self._cache.pop(spare, None)
        record = SlotRecord(len(data), hashlib.sha256(data).digest(), config.hash, demand)
        return spare, tuple(record if i == spare else s for i, s in enumerate(j.slots))

    def install(self, config: Configuration) -> None:
        """Make ``config`` current without a patch (a load on the bench, before launch):
        written into the spare slot, then one journal record; the last sequence number is
        unchanged. Phase IDLE -> IDLE."""
        j = self._require(Phase.IDLE)
        spare, slots = self._write_spare(j, config)
        self._commit(replace(j, current=spare, previous=j.current, slots=slots))

    def activate(self) -> Configuration:
        """Make the staged configuration current, keeping the current one as previous, and
        return it. Phase STAGED -> PROBATION. Call it at a frame boundary."""
        j = self._require(Phase.STAGED)
        self._commit(replace(j, phase=Phase.PROBATION, current=j.staged, previous=j.current,
                             staged=None))
        config = self.current()
        assert config is not None
        return config

    def commit(self) -> None:
        """Keep the configuration on probation. Phase PROBATION -> IDLE."""
        j = self._require(Phase.PROBATION)
        self._commit(replace(j, phase=Phase.IDLE))

    def rollback(self) -> Configuration | None:
        """Drop the staged configuration (STAGED), or return to the previous one
        (PROBATION); phase -> IDLE. Returns the configuration now current."""
        j = self._journal
        if j.phase is Phase.STAGED:
            self._commit(replace(j, phase=Phase.IDLE, staged=None))
        elif j.phase is Phase.PROBATION:
            self._commit(replace(j, phase=Phase.IDLE, current=j.previous, previous=None))
        else:
            raise StoreError("nothing to roll back: no configuration is staged or on "
                             "probation")
        return self.current()

    def _require(self, phase: Phase) -> Journal:
        if self._journal.phase is not phase:
            raise StoreError(f"the store is {self._journal.phase.value}, this operation needs "
                             f"{phase.value}")
        return self._journal

    def _commit(self, journal: Journal) -> None:
        """Write the next journal record (the commit point of every operation)."""
        journal = replace(journal, epoch=self._journal.epoch + 1)
        self._disk.write(self.directory / JOURNAL_FILES[journal.epoch % 2],
                         _encode_journal(journal))
        self._journal = journal

    # ------------------------------------------------------------------ consistency

    def check(self) -> list[str]:
        """Problems with the persistent state (empty when consistent): journal invariants,
        and every slot the journal references present, intact and decodable."""
        j = self._journal
        problems = []
        roles = {"current": j.current, "previous": j.previous, "staged": j.staged}
        used = [s for s in roles.values() if s is not None]
        if len(set(used)) != len(used):
            problems.append(f"two roles share a slot: {roles}")
        if any(not 0 <= s < SLOTS for s in used):
            problems.append(f"a role names no slot: {roles}")
            return problems
        if (j.staged is not None) != (j.phase is Phase.STAGED):
            problems.append(f"phase {j.phase.value} with staged slot {j.staged}")
        if j.phase is Phase.IDLE and j.current is None and j.previous is not None:
            problems.append("a previous configuration without a current one")
        if j.seq > j.last_seq:
            problems.append(f"sequence {j.seq} above the last accepted {j.last_seq}")
        for role, slot in roles.items():
            if slot is None:
                continue
            try:
                config = Configuration.decode(self._read_slot(slot))
            except StoreError as exc:
                problems.append(f"{role}: {exc}")
                continue
            if config.hash != j.slots[slot].config:
                problems.append(f"{role}: slot {slot} holds another configuration")
            stack, missing = pinned_stack(config.config.uses, config.vmlets)
            if missing is not None or stack != config.vmlets:
                problems.append(f"{role}: slot {slot} does not hold the VMlets its "
                                f"configuration uses")
        return problems


def _newest_journal(directory: Path) -> Journal | None:
    best = None
    for name in JOURNAL_FILES:
        try:
            data = (directory / name).read_bytes()
        except OSError:
            continue
        record = _decode_journal(data)
        if record is not None and (best is None or record.epoch > best.epoch):
            best = record
    return best
