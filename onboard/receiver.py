"""The onboard patch receiver: segments in, each complete patch out exactly once.

Frames arrive during passes, in any order, some lost, some duplicated, and nothing is
acknowledged during a pass. The receiver keeps the shares of each transfer across passes,
and as soon as it holds k distinct shares it rebuilds the patch (``onboard/erasure.py``),
checks its CRC-32, and hands it to the patcher through one callback, ``Handoff``: called once
per transfer, never again for the same transfer (later frames of it are counted as late and
dropped). What the callback returns is the patch's *fate* code (0 = accepted for staging;
the patcher defines the others and may update it later with ``set_fate``).

``report()`` encodes the telemetry the ground reads at the next pass: the configuration hash
(given by the caller), counters, and for every transfer in progress the bitmap of share ids
held; for recently finished transfers their state and fate. The report is cumulative, so a
lost report costs nothing but time: the next one says everything again.

Everything is bounded: at most ``max_transfers`` transfers in progress, at most
``buffer_bytes`` of shares held (a transfer reserves k x share size at its first segment, or
is reported ``no-storage`` and retried at its next segment), at most ``history`` finished
transfers remembered. Transfer ids are assigned by the ground in increasing order; a frame
of a transfer older than every remembered one is stale and dropped.

Onboard behaviour never depends on host time. Stdlib and construct only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

import construct as cs

from onboard import erasure
from onboard.tc_frames import FrameError, Segment, patch_crc, read_segment

#: The single hand-off to the patcher: (transfer id, patch bytes) -> fate code.
Handoff = Callable[[int, bytes], int]

FATE_ACCEPTED = 0
REPORT_MAGIC = b"RXTM"


class TransferState(IntEnum):
    """What the receiver knows of one transfer (reported in telemetry)."""

    RECEIVING = 1
    COMPLETE = 2       # rebuilt, CRC good, handed to the patcher (see the fate)
    NO_STORAGE = 3     # no room to hold its shares yet; retried at its next segment
    CORRUPT = 4        # rebuilt but the CRC-32 failed: the ground must send it again


class Outcome(Enum):
    """What ``accept`` did with one frame."""

    STORED = "stored"            # a new share
    COMPLETED = "completed"      # the share that completed the patch (handed off)
    DUPLICATE = "duplicate"      # a share already held
    LATE = "late"                # a share of a finished transfer
    STALE = "stale"              # a transfer older than every one remembered
    NO_STORAGE = "no-storage"    # no room for a new transfer
    BUSY = "busy"                # too many transfers in progress
    INCONSISTENT = "inconsistent"  # k, length, CRC or share size differ from the transfer's
    MALFORMED = "malformed"      # not a well-formed patch segment frame (see the error)


@dataclass(frozen=True)
class Reception:
    """The result of accepting one frame."""

    outcome: Outcome
    transfer: int | None = None
    share: int | None = None
    error: FrameError | None = None


@dataclass
class _Transfer:
    k: int
    length: int
    crc: int
    size: int
    shares: dict[int, bytes] = field(default_factory=dict)
    state: TransferState = TransferState.RECEIVING

    def reserved(self) -> int:
        return self.k * self.size if self.state is TransferState.RECEIVING else 0


@dataclass(frozen=True)
class _Finished:
    state: TransferState
    fate: int


# --------------------------------------------------------------------------- telemetry

REPORT = cs.Struct(
    "magic" / cs.Const(REPORT_MAGIC),
    "time_ms" / cs.Int64ub,
    "config_hash" / cs.Bytes(32),
    "frames_ok" / cs.Int32ub,
    "frames_rejected" / cs.Int32ub,
    "duplicates" / cs.Int32ub,
    "transfers" / cs.PrefixedArray(cs.Int16ub, cs.Struct(
        "transfer" / cs.Int16ub,
        "state" / cs.Int8ub,
        "fate" / cs.Int8ub,
        "k" / cs.Int8ub,
        "received" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes),
    )),
)


@dataclass(frozen=True)
class TransferReport:
    """One transfer as telemetry tells it."""

    transfer: int
    state: TransferState
    fate: int
    k: int
    received: frozenset[int]


@dataclass(frozen=True)
class Report:
    """A decoded receiver telemetry report."""

    time_ms: int
    config_hash: bytes
    frames_ok: int
    frames_rejected: int
    duplicates: int
    transfers: tuple[TransferReport, ...]

    def transfer(self, transfer: int) -> TransferReport | None:
        """The entry of ``transfer``, if the report has one."""
        return next((t for t in self.transfers if t.transfer == transfer), None)


def bitmap(ids: Iterable[int]) -> bytes:
    """Share ids as a bitmap: bit i (LSB first in byte i // 8) set when share i is held."""
    ids = list(ids)
    out = bytearray((max(ids) // 8 + 1) if ids else 0)
    for i in ids:
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def bitmap_ids(raw: bytes) -> frozenset[int]:
    """The share ids set in a bitmap (inverse of ``bitmap``)."""
    return frozenset(8 * n + b for n, byte in enumerate(raw) for b in range(8) if byte >> b & 1)


class ReportError(Exception):
    """Telemetry bytes that are not a receiver report."""


def decode_report(raw: bytes) -> Report:
    """Parse a report made by ``Receiver.report``; raises ``ReportError``."""
    try:
        r = REPORT.parse(raw)
    except cs.ConstructError as exc:
        raise ReportError(f"not a receiver report: {exc}") from None
    try:
        transfers = tuple(TransferReport(t.transfer, TransferState(t.state), t.fate, t.k,
                                         bitmap_ids(t.received)) for t in r.transfers)
    except ValueError as exc:
        raise ReportError(f"receiver report: {exc}") from None
    return Report(r.time_ms, bytes(r.config_hash), r.frames_ok, r.frames_rejected,
                  r.duplicates, transfers)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """Reassembles patches from segment frames across passes; see the module docstring."""

    def __init__(self, spacecraft_id: int, handoff: Handoff, buffer_bytes: int,
                 max_transfers: int = 8, history: int = 64) -> None:
        self.spacecraft_id = spacecraft_id
        self.handoff = handoff
        self.buffer_bytes = buffer_bytes
        self.max_transfers = max_transfers
        self.history = history
        self._open: dict[int, _Transfer] = {}
        self._done: OrderedDict[int, _Finished] = OrderedDict()
        self._floor = -1  # transfers at or below this id are forgotten, hence stale
        self.frames_ok = 0
        self.frames_rejected = 0
        self.duplicates = 0

    # ----------------------------------------------------------------- frames

    def accept(self, raw: bytes) -> Reception:
        """Take one received TC frame. Never raises on bad input: bad frames are counted."""
        try:
            seg = read_segment(raw, self.spacecraft_id)
        except FrameError as exc:
            self.frames_rejected += 1
            return Reception(Outcome.MALFORMED, error=exc)
        result = self._segment(seg)
        if result.outcome in (Outcome.STORED, Outcome.COMPLETED):
            self.frames_ok += 1
        elif result.outcome in (Outcome.DUPLICATE, Outcome.LATE):
            self.duplicates += 1
        else:
            self.frames_rejected += 1
        return result

    def _segment(self, seg: Segment) -> Reception:
        tid = seg.transfer
        if tid in self._done:
            return Reception(Outcome.LATE, tid, seg.share)
        if tid <= self._floor and tid not in self._open:
            return Reception(Outcome.STALE, tid, seg.share)
        t = self._open.get(tid)
        if t is None:
            if len(self._open) >= self.max_transfers:
                return Reception(Outcome.BUSY, tid, seg.share)
            t = self._open[tid] = _Transfer(seg.k, seg.patch_length, seg.patch_crc,
                                            len(seg.data), state=TransferState.NO_STORAGE)
        if (seg.k, seg.patch_length, seg.patch_crc, len(seg.data)) != (t.k, t.length, t.crc,
                                                                         t.size):
            return Reception(Outcome.INCONSISTENT, tid, seg.share)
        if t.state is TransferState.NO_STORAGE:
            if self.held_bytes() + t.k * t.size > self.buffer_bytes:
                return Reception(Outcome.NO_STORAGE, tid, seg.share)
            t.state = TransferState.RECEIVING
        if seg.share in t.shares:
            return Reception(Outcome.DUPLICATE, tid, seg.share)
        t.shares[seg.share] = seg.data
        if len(t.shares) < t.k:
            return Reception(Outcome.STORED, tid, seg.share)
        return self._complete(tid, t, seg.share)

    def _complete(self, tid: int, t: _Transfer, share: int) -> Reception:
        patch = b"".join(erasure.decode(t.k, t.shares))[: t.length]
        del self._open[tid]
        if patch_crc(patch) != t.crc:
            self._finish(tid, _Finished(TransferState.CORRUPT, FATE_ACCEPTED))
            return Reception(Outcome.INCONSISTENT, tid, share)
        # Record first, then hand off: a patch is handed to the patcher at most once.
        self._finish(tid, _Finished(TransferState.COMPLETE, FATE_ACCEPTED))
        self._done[tid] = _Finished(TransferState.COMPLETE, self.handoff(tid, patch) & 0xFF)
        return Reception(Outcome.COMPLETED, tid, share)

    def _finish(self, tid: int, record: _Finished) -> None:
        self._done[tid] = record
        while len(self._done) > self.history:
            old, _ = self._done.popitem(last=False)
            self._floor = max(self._floor, old)

    def set_fate(self, transfer: int, fate: int) -> None:
        """Update the fate the patcher reports for a finished transfer (e.g. committed)."""
        if transfer in self._done:
            self._done[transfer] = _Finished(self._done[transfer].state, fate & 0xFF)

    # ----------------------------------------------------------------- state

    def held_bytes(self) -> int:
        """Bytes of onboard storage reserved by transfers in progress."""
        return sum(t.reserved() for t in self._open.values())

    def received(self, transfer: int) -> frozenset[int]:
        """Share ids held for a transfer in progress (empty otherwise)."""
        t = self._open.get(transfer)
        return frozenset(t.shares) if t else frozenset()

    def state(self, transfer: int) -> TransferState | None:
        """The state of a transfer, None if it is unknown or forgotten."""
        if transfer in self._open:
            return self._open[transfer].state
        done = self._done.get(transfer)
        return done.state if done else None

    def report(self, time_ms: int, config_hash: bytes = bytes(32)) -> bytes:
        """Encode the cumulative telemetry report (see ``decode_report``)."""
        entries = [dict(transfer=tid, state=int(t.state), fate=0, k=t.k,
                        received=bitmap(t.shares)) for tid, t in sorted(self._open.items())]
        entries += [dict(transfer=tid, state=int(d.state), fate=d.fate, k=0, received=b"")
                    for tid, d in self._done.items()]
        return REPORT.build(dict(time_ms=time_ms, config_hash=config_hash.ljust(32, b"\0")[:32],
                                 frames_ok=self.frames_ok % (1 << 32),
                                 frames_rejected=self.frames_rejected % (1 << 32),
                                 duplicates=self.duplicates % (1 << 32), transfers=entries))
