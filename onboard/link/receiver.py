"""The onboard patch receiver: authenticated frames in, each complete patch out exactly once.

Frames arrive during passes, in any order, some lost, some duplicated, and nothing is
acknowledged during a pass. Each frame is first checked and authenticated (CCSDS SDLS
style, ``onboard/link/tc_frames.py`` and ``onboard/link/link_security.py``): a frame whose MAC does
not verify under the link key, or whose sequence number was already accepted or has fallen
out of the anti-replay window, is counted and dropped *before* anything else: it can
neither open a transfer, nor take storage, nor evict one, nor move the window.

The receiver keeps the shares of each transfer across passes, and as soon as it holds k
distinct shares it rebuilds the patch (``onboard/link/erasure.py``), checks its CRC-32, and hands
it to the patcher through one callback, ``Handoff``: called once per transfer (later frames
of the same patch are counted as late and dropped). It gets a *ticket*: the transfer id, or
for a transfer id the ground used again for another patch, the id plus 65,536 times the
number of earlier uses remembered; ``set_fate`` takes the ticket, so the fate of an earlier
use never lands on the later one. What the callback returns is the patch's *fate* code
(0 = accepted for staging; the patcher defines the others and may update it later).

Eviction, on the simulated clock only. A transfer in progress is *evicted* (its shares
dropped, its storage freed, and telemetry reports it ``evicted`` so the ground sends the
patch again under a new transfer id) when

1. it has gained no share for ``timeout_ms`` of onboard time (checked at every
   authenticated frame and every report);
2. an authenticated frame opens a new transfer and there is no free slot
   (``max_transfers``) or not enough free storage (``buffer_bytes``): transfers in progress
   are evicted least recently progressed first (the one whose last new share came in the
   frame with the lowest sequence number) until the new one fits. A patch larger than the
   whole storage is refused ``no-storage`` and leaves no state;
3. an authenticated frame of its transfer id declares another patch (k, length, CRC-32 or
   share size differ) and is newer (a higher sequence number) than every frame of it seen:
   the ground has reused the id, and the new patch starts afresh under it. An older such
   frame (delayed in the channel) is dropped as ``stale``. A finished transfer's id is
   reused the same way: its record is replaced, so telemetry never reports a patch complete
   that was not, and the new patch is delivered.

Several applications (``onboard/vm/board.py``): a segment names the board application its
patch addresses by its APID (``tc_frames.patch_apid``; the default application, number 0,
on the patch APID of old). A transfer for the default application goes to ``handoff``; one
for application n to the handoff ``routes(n)`` gives. A segment for an application the
board does not have is refused ``no-application`` before it opens a transfer or takes
storage. The application is part of what a segment says of its patch, so a transfer id
the ground reuses for another application is a new patch (rule 3). A transfer's ticket
and its fate are the addressed application's.

``report()`` encodes the telemetry the ground reads at the next pass (a transfer's entry
names its application in the high four bits of its state byte: 0, so unchanged, for the
default application): the configuration hash
(given by the caller), counters (frames stored, rejected, duplicated, unauthenticated,
replayed; transfers evicted), and for every transfer in progress the bitmap of share ids
held; for recently finished transfers their state and fate. The report is cumulative, so a
lost report costs nothing but time: the next one says everything again.

Everything is bounded: ``max_transfers`` transfers in progress, ``buffer_bytes`` of shares
held (a transfer reserves k x share size at its first segment), ``history`` finished
transfers remembered, a ``replay_window``-bit window.

Onboard behaviour never depends on host time. Stdlib and construct only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum

import construct as cs

from onboard.errors import OnboardError
from onboard.link import erasure
from onboard.link.link_security import (
    DEFAULT_REPLAY_WINDOW,
    ReplayWindow,
    SecurityAssociation,
    check_link_key,
)
from onboard.link.packet_definition import PacketDefinition, octets, uint
from onboard.link.tc_frames import (
    REQUEST_APID,
    AuthenticationError,
    FrameError,
    Segment,
    frame_packet,
    frame_segment,
    parse_frame,
    patch_crc,
)
from onboard.mission import MissionProfile

#: The single hand-off to the patcher: (ticket, patch bytes) -> fate code.
Handoff = Callable[[int, bytes], int]
#: The hand-off of board application n (1 ..), or None if the board has no such application.
Routes = Callable[[int], "Handoff | None"]
#: Where authenticated dump requests go: (packet data, onboard time ms).
Requests = Callable[[bytes, int], None]

FATE_ACCEPTED = 0
REPORT_MAGIC = b"RXT2"
#: A ticket is the transfer id plus this times the number of earlier uses of the id.
TICKET_USE = 1 << 16
DEFAULT_TIMEOUT_MS = 259_200_000  # 3 days


class TransferState(IntEnum):
    """What the receiver knows of one transfer (reported in telemetry)."""

    RECEIVING = 1
    COMPLETE = 2       # rebuilt, CRC good, handed to the patcher (see the fate)
    CORRUPT = 4        # rebuilt but the CRC-32 failed: the ground must send it again
    EVICTED = 5        # given up (idle, room for a newer one): the ground must send it again


class Outcome(Enum):
    """What ``accept`` did with one frame."""

    STORED = "stored"            # a new share
    COMPLETED = "completed"      # the share that completed the patch (handed off)
    DUPLICATE = "duplicate"      # a share already held
    LATE = "late"                # a share of a finished (or evicted) transfer of that patch
    STALE = "stale"              # a segment of an earlier use of a reused transfer id
    NO_STORAGE = "no-storage"    # the patch is larger than the whole receive storage
    INCONSISTENT = "inconsistent"  # the rebuilt patch fails its CRC-32 (closed as corrupt)
    MALFORMED = "malformed"      # not a well-formed patch segment frame (see the error)
    UNAUTHENTICATED = "unauthenticated"  # unknown SPI or a MAC that does not verify
    REPLAYED = "replayed"        # a sequence number already accepted, or below the window
    REQUEST = "request"          # an authenticated dump request, handed to the dump service
    NO_APPLICATION = "no-application"  # a segment for an application not on the board


@dataclass(frozen=True)
class Reception:
    """The result of accepting one frame."""

    outcome: Outcome
    transfer: int | None = None
    share: int | None = None
    error: FrameError | None = None
    application: int = 0  # the board application the segment's patch addresses


#: What a segment says of its patch: k, patch length, patch CRC-32, share size, application.
Identity = tuple[int, int, int, int, int]


def _identity(seg: Segment) -> Identity:
    return seg.k, seg.patch_length, seg.patch_crc, len(seg.data), seg.application


@dataclass
class _Transfer:
    identity: Identity
    uses: int             # earlier uses of this transfer id remembered
    newest: int           # highest security sequence number of any frame of it
    progressed: int       # sequence number of the frame that brought its last new share
    progressed_ms: int    # onboard time of that frame
    shares: dict[int, bytes] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.identity[0]

    def reserved(self) -> int:
        return self.identity[0] * self.identity[3]


@dataclass(frozen=True)
class _Finished:
    state: TransferState
    fate: int
    identity: Identity
    newest: int
    uses: int


# --------------------------------------------------------------------------- telemetry

#: Application process of the link report (the report's counters) when it travels as a
#: Space Packet of its own (``onboard.sim.tm_packets``).
LINK_REPORT_APID = 0x154

#: The fixed head of the receiver's report: what it has on board and its counters.
LINK_REPORT = PacketDefinition("LinkReport", LINK_REPORT_APID,
                               "the patch receiver's counters and the configuration on board", (
    uint("time_ms", 64, "onboard time of the report", "ms"),
    octets("config_hash", 32, "content hash of the configuration running (zeros: none)"),
    uint("frames_ok", 32, "authenticated frames that brought a share"),
    uint("frames_rejected", 32, "frames refused as malformed, stale, late or too large"),
    uint("duplicates", 32, "frames bringing a share already held"),
    uint("frames_unauthenticated", 32, "frames whose MAC or SPI did not verify"),
    uint("frames_replayed", 32, "frames whose sequence number was already accepted"),
    uint("transfers_evicted", 32, "transfers given up (idle or for room)"),
))

REPORT = cs.Struct(
    "magic" / cs.Const(REPORT_MAGIC),
    *LINK_REPORT.struct.subcons,
    "transfers" / cs.PrefixedArray(cs.Int16ub, cs.Struct(
        "transfer" / cs.Int16ub,
        # low 4 bits: the TransferState; high 4 bits: the board application the patch
        # addresses (0, the default: every report of a single-application board unchanged)
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
    application: int = 0  # the board application (its number) the patch addresses


@dataclass(frozen=True)
class Report:
    """A decoded receiver telemetry report."""

    time_ms: int
    config_hash: bytes
    frames_ok: int
    frames_rejected: int
    duplicates: int
    transfers: tuple[TransferReport, ...]
    frames_unauthenticated: int = 0
    frames_replayed: int = 0
    transfers_evicted: int = 0

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


class ReportError(OnboardError):
    """Telemetry bytes that are not a receiver report."""

    def __init__(self, message: str) -> None:
        super().__init__("bad-report", message)


def decode_report(raw: bytes) -> Report:
    """Parse a report made by ``Receiver.report``; raises ``ReportError``."""
    try:
        r = REPORT.parse(raw)
    except cs.ConstructError as exc:
        raise ReportError(f"not a receiver report: {exc}") from None
    try:
        transfers = tuple(TransferReport(t.transfer, TransferState(t.state & 0x0F), t.fate,
                                         t.k, bitmap_ids(t.received), t.state >> 4)
                          for t in r.transfers)
    except ValueError as exc:
        raise ReportError(f"receiver report: {exc}") from None
    return Report(r.time_ms, bytes(r.config_hash), r.frames_ok, r.frames_rejected,
                  r.duplicates, transfers, r.frames_unauthenticated, r.frames_replayed,
                  r.transfers_evicted)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """Reassembles patches from authenticated segment frames across passes; see the module
    docstring for the security checks and the eviction rule."""

    def __init__(self, spacecraft_id: int, handoff: Handoff, buffer_bytes: int,
                 link: SecurityAssociation, *, max_transfers: int = 8, history: int = 64,
                 replay_window: int = DEFAULT_REPLAY_WINDOW,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 requests: Requests | None = None, routes: Routes | None = None) -> None:
        self.spacecraft_id = spacecraft_id
        self.handoff = handoff
        self.routes = routes  # other board applications' hand-offs; None: the default only
        self.requests = requests  # dump requests (REQUEST_APID); None: refused as malformed
        self.buffer_bytes = buffer_bytes
        self.link = link
        self.max_transfers = max_transfers
        self.history = history
        self.timeout_ms = timeout_ms
        self.window = ReplayWindow(replay_window)
        self._open: dict[int, _Transfer] = {}
        self._done: OrderedDict[int, _Finished] = OrderedDict()
        self.frames_ok = 0
        self.frames_rejected = 0
        self.duplicates = 0
        self.frames_unauthenticated = 0
        self.frames_replayed = 0
        self.transfers_evicted = 0

    @staticmethod
    def for_mission(profile: MissionProfile, handoff: Handoff, link_key: bytes,
                    requests: Requests | None = None,
                    routes: Routes | None = None) -> Receiver:
        """The receiver of ``profile``'s spacecraft (its ``[receiver]`` settings and patch
        buffer) with the mission's link key, handing dump requests to ``requests``. Raises
        ``LinkKeyRefused`` for the development link key on a flight profile or a key too
        short."""
        check_link_key(profile, link_key)
        r = profile.receiver
        return Receiver(profile.spacecraft_id, handoff, profile.patch_buffer_bytes,
                        SecurityAssociation(r.spi, link_key), max_transfers=r.max_transfers,
                        history=r.history, replay_window=r.replay_window,
                        timeout_ms=r.transfer_timeout_s * 1000, requests=requests,
                        routes=routes)

    # ----------------------------------------------------------------- frames

    def accept(self, raw: bytes, now_ms: int) -> Reception:
        """Take one TC frame received at onboard time ``now_ms``. Never raises on bad input:
        bad frames are counted; unauthenticated and replayed ones touch nothing else."""
        try:
            frame = parse_frame(raw, self.spacecraft_id, self.link)
        except AuthenticationError as exc:
            self.frames_unauthenticated += 1
            return Reception(Outcome.UNAUTHENTICATED, error=exc)
        except FrameError as exc:
            self.frames_rejected += 1
            return Reception(Outcome.MALFORMED, error=exc)
        seq = frame.security_sequence
        if not self.window.fresh(seq):
            self.frames_replayed += 1
            return Reception(Outcome.REPLAYED)
        self.window.record(seq)
        try:
            packet = frame_packet(frame)
            if packet.apid == REQUEST_APID and packet.telecommand and self.requests:
                # A dump request: authenticated and fresh, it is the dump service's (which
                # refuses it in telemetry if it is not a good request); no transfer state.
                self.frames_ok += 1
                self.requests(packet.data, now_ms)
                return Reception(Outcome.REQUEST)
            seg = frame_segment(frame)
        except FrameError as exc:
            self.frames_rejected += 1
            return Reception(Outcome.MALFORMED, error=exc)
        self.expire(now_ms)
        if self._handoff_of(seg.application) is None:
            self.frames_rejected += 1
            return Reception(Outcome.NO_APPLICATION, seg.transfer, seg.share,
                             application=seg.application)
        result = replace(self._segment(seg, seq, now_ms), application=seg.application)
        if result.outcome in (Outcome.STORED, Outcome.COMPLETED):
            self.frames_ok += 1
        elif result.outcome in (Outcome.DUPLICATE, Outcome.LATE):
            self.duplicates += 1
        else:
            self.frames_rejected += 1
        return result

    def _handoff_of(self, application: int) -> Handoff | None:
        if application == 0:
            return self.handoff
        return None if self.routes is None else self.routes(application)

    def _segment(self, seg: Segment, seq: int, now_ms: int) -> Reception:
        tid, ident = seg.transfer, _identity(seg)
        t = self._open.get(tid)
        done = self._done.get(tid)
        uses = 0
        if t is not None and t.identity != ident:
            if seq < t.newest:
                return Reception(Outcome.STALE, tid, seg.share)
            self._evict(tid)  # rule 3: the ground reused the id for another patch
            done = self._done.get(tid)
            t = None
        if t is None and done is not None:
            if done.identity == ident:
                self._done[tid] = _Finished(done.state, done.fate, done.identity,
                                            max(done.newest, seq), done.uses)
                return Reception(Outcome.LATE, tid, seg.share)
            if seq < done.newest:
                return Reception(Outcome.STALE, tid, seg.share)
            uses = done.uses + 1  # rule 3 for a finished transfer: a new patch, same id
        if t is None:
            t = self._open_transfer(tid, ident, seq, now_ms, uses)
            if t is None:
                return Reception(Outcome.NO_STORAGE, tid, seg.share)
        t.newest = max(t.newest, seq)
        if seg.share in t.shares:
            return Reception(Outcome.DUPLICATE, tid, seg.share)
        t.shares[seg.share] = seg.data
        t.progressed, t.progressed_ms = seq, now_ms
        if len(t.shares) < t.k:
            return Reception(Outcome.STORED, tid, seg.share)
        return self._complete(tid, t, seg.share)

    def _open_transfer(self, tid: int, ident: Identity, seq: int, now_ms: int,
                       uses: int) -> _Transfer | None:
        """A new transfer, room made by rule 2; None if it can never fit."""
        t = _Transfer(ident, uses, seq, seq, now_ms)
        if t.reserved() > self.buffer_bytes:
            return None
        while self._open and (len(self._open) >= self.max_transfers
                              or self.held_bytes() + t.reserved() > self.buffer_bytes):
            self._evict(min(self._open, key=lambda i: (self._open[i].progressed, i)))
        self._done.pop(tid, None)
        self._open[tid] = t
        return t

    def _complete(self, tid: int, t: _Transfer, share: int) -> Reception:
        k, length, crc, _, application = t.identity
        patch = b"".join(erasure.decode(k, t.shares))[:length]
        del self._open[tid]
        if patch_crc(patch) != crc:
            self._finish(tid, t, TransferState.CORRUPT)
            return Reception(Outcome.INCONSISTENT, tid, share)
        # Record first, then hand off: a patch is handed to the patcher at most once.
        self._finish(tid, t, TransferState.COMPLETE)
        handoff = self._handoff_of(application)
        assert handoff is not None  # checked at every segment; a board never drops one
        fate = handoff(tid + TICKET_USE * t.uses, patch) & 0xFF
        self._done[tid] = _Finished(TransferState.COMPLETE, fate, t.identity, t.newest, t.uses)
        return Reception(Outcome.COMPLETED, tid, share)

    def _evict(self, tid: int) -> None:
        self.transfers_evicted += 1
        self._finish(tid, self._open.pop(tid), TransferState.EVICTED)

    def _finish(self, tid: int, t: _Transfer, state: TransferState) -> None:
        self._done.pop(tid, None)
        self._done[tid] = _Finished(state, FATE_ACCEPTED, t.identity, t.newest, t.uses)
        while len(self._done) > self.history:
            self._done.popitem(last=False)

    def expire(self, now_ms: int) -> None:
        """Evict the transfers that gained no share for ``timeout_ms`` (rule 1)."""
        for tid in sorted(self._open):
            if now_ms - self._open[tid].progressed_ms >= self.timeout_ms:
                self._evict(tid)

    def set_fate(self, ticket: int, fate: int) -> None:
        """Update the fate the patcher reports for a finished transfer (e.g. committed);
        ``ticket`` is what the hand-off got."""
        tid = ticket % TICKET_USE
        done = self._done.get(tid)
        if done is not None and done.state is TransferState.COMPLETE \
                and done.uses == ticket // TICKET_USE:
            self._done[tid] = _Finished(done.state, fate & 0xFF, done.identity, done.newest,
                                        done.uses)

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
            return TransferState.RECEIVING
        done = self._done.get(transfer)
        return done.state if done else None

    def report(self, time_ms: int, config_hash: bytes = bytes(32)) -> bytes:
        """Encode the cumulative telemetry report (see ``decode_report``), after evicting
        what has timed out by ``time_ms``, so it never shows a transfer given up."""
        self.expire(time_ms)
        entries = [dict(transfer=tid, state=int(TransferState.RECEIVING) | t.identity[4] << 4,
                        fate=0, k=t.k, received=bitmap(t.shares))
                   for tid, t in sorted(self._open.items())]
        entries += [dict(transfer=tid, state=int(d.state) | d.identity[4] << 4, fate=d.fate,
                         k=0, received=b"") for tid, d in self._done.items()]
        counters = {name: getattr(self, name) % (1 << 32) for name in (
            "frames_ok", "frames_rejected", "duplicates", "frames_unauthenticated",
            "frames_replayed", "transfers_evicted")}
        return REPORT.build(dict(time_ms=time_ms, config_hash=config_hash.ljust(32, b"\0")[:32],
                                 transfers=entries, **counters))
