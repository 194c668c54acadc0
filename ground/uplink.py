"""Non-interactive uplink over passes, with deferred acknowledgement, simulated end to end.

At every uplink window, in order:

1. The satellite's telemetry report is downlinked (unless the pass is cancelled or the
   report is lost): for each transfer, the bitmap of shares held, or that it is complete and
   the patcher's fate, and the configuration hash on board. The ground updates its view.
2. The planner (``ground/planner.py``) re-plans with that view; the ground executes the plan
   of this window only.
3. For each patch given frames, the ground picks the share ids to send: shares never sent
   first (any k distinct shares rebuild the patch, so a fresh share replaces a lost one and
   can never duplicate one that arrived), then, once all 256 ids are used, shares telemetry
   says are missing (the deferred NAK). Frames go out back to back around the culmination;
   nothing is acknowledged during the pass.
4. The channel loses, duplicates and reorders frames; the onboard ``Receiver`` takes what
   arrives. Every frame is authenticated under the link's security association (``link``),
   with a security sequence number that runs on across campaigns (``counters``; a
   duplicated frame is dropped on board as a replay). The receiver hands each complete
   patch to the patcher through its single ``Handoff``.

The loop stops when telemetry has confirmed every patch complete (or the patch was refused),
or when the windows run out. Cancelled passes and lost reports only cost time: the reports
are cumulative. A transfer telemetry reports corrupt or evicted is sent again under a new
transfer id. Everything random comes from one ``random.Random(seed)``.

The onboard side past the receiver is two callables: ``handoff`` (the patcher's entry:
transfer id and patch bytes in, fate code out) and ``config_hash`` (the configuration on
board, for telemetry). When they are not given, ``SimulatedPatcher`` stands in: it accepts a
patch whose base (when known) is the configuration on board, and then holds the patch's
target configuration.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from ground import erasure, framing
from ground.channel import Channel, transmit
from ground.link import UplinkWindow
from ground.planner import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SHARE_BYTES,
    OnboardView,
    Plan,
    Status,
    TransferView,
    UplinkPatch,
    plan,
    same_config,
)
from onboard.link.erasure import MAX_SHARES
from onboard.link.link_security import SecurityAssociation
from onboard.link.receiver import (
    FATE_ACCEPTED,
    Handoff,
    Outcome,
    Receiver,
    Reception,
    Report,
    ReportError,
    TransferState,
    decode_report,
)
from onboard.patching.patch_format import REASON_NUMBERS, Reason
from onboard.patching.patcher import REJECTED_BASE, fate_code_text, fate_failed

#: The fate code of a patch refused for its base (what ``SimulatedPatcher`` answers).
FATE_WRONG_BASE = REJECTED_BASE + REASON_NUMBERS[Reason.WRONG_BASE]


class Onboard(Protocol):
    """A simulated satellite behind the receiver (``ground.scenario`` wraps an
    ``onboard.sim.spacecraft.Spacecraft``): its clock follows the ground's."""

    @property
    def receiver(self) -> Receiver: ...
    def advance(self, t: datetime) -> None:
        """Run the satellite up to ground time ``t``."""
    def receive(self, frame: bytes) -> Reception:
        """A TC frame arrives now."""
    def report(self) -> bytes:
        """The telemetry report it would downlink now."""


class Recorder(Protocol):
    """Where the simulation records what the ground did and learned (``ground.ledger``)."""

    def window(self, window: UplinkWindow, cancelled: bool) -> None: ...
    def transfer(self, patch: UplinkPatch, transfer: int, k: int, share_bytes: int) -> None: ...
    def sent(self, window: UplinkWindow, patch: str, transfer: int, share: int, nbytes: int,
             at: datetime) -> None: ...
    def report(self, window: UplinkWindow, raw: bytes, report: Report) -> None: ...


@dataclass(frozen=True)
class Faults:
    """Injected operational faults (besides the channel's frame losses)."""

    cancelled: frozenset[int] = frozenset()      # window indices whose pass does not happen
    lost_reports: frozenset[int] = frozenset()   # windows whose telemetry report is lost
    cancel_probability: float = 0.0
    report_loss_probability: float = 0.0


@dataclass
class SimulatedPatcher:
    """The stand-in onboard patcher: accepts a patch if its base is on board (when known)."""

    patches: Mapping[bytes, UplinkPatch]      # by SHA-256 of the bytes
    config_hash: bytes = bytes(32)
    clock: Callable[[], datetime] | None = None
    delivered: list[tuple[int, bytes, datetime | None]] = field(default_factory=list)

    def __call__(self, transfer: int, data: bytes) -> int:
        self.delivered.append((transfer, data, self.clock() if self.clock else None))
        p = self.patches.get(hashlib.sha256(data).digest())
        if p is not None and p.base_hash is not None and not same_config(p.base_hash,
                                                                          self.config_hash):
            return FATE_WRONG_BASE
        if p is not None and p.target_hash is not None:
            self.config_hash = p.target_hash
        return FATE_ACCEPTED


@dataclass(frozen=True)
class PatchResult:
    """What became of one patch."""

    name: str
    size: int
    status: str                        # complete, refused, waiting, incomplete
    reason: str = ""
    transfer: int | None = None
    k: int = 0
    share_bytes: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_lost: int = 0
    first_sent: datetime | None = None
    completed_at: datetime | None = None   # on board: the frame that completed it
    confirmed_at: datetime | None = None   # on the ground: the telemetry that said so
    fate: int | None = None

    @property
    def elapsed(self) -> timedelta | None:
        """From its first frame to completion on board."""
        if self.first_sent is None or self.completed_at is None:
            return None
        return self.completed_at - self.first_sent

    def to_json(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"name": self.name, "size": self.size, "status": self.status,
                "reason": self.reason, "transfer": self.transfer, "k": self.k,
                "share_bytes": self.share_bytes, "frames_sent": self.frames_sent,
                "bytes_sent": self.bytes_sent, "frames_lost": self.frames_lost,
                "first_sent": iso(self.first_sent), "completed_at": iso(self.completed_at),
                "confirmed_at": iso(self.confirmed_at), "fate": self.fate,
                "elapsed_h": round(self.elapsed.total_seconds() / 3600, 3)
                if self.elapsed else None}


@dataclass(frozen=True)
class WindowLog:
    """One uplink window as it happened."""

    window: UplinkWindow
    cancelled: bool = False
    report_received: bool = False
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_lost: int = 0
    burst_lost: int = 0
    frames_arrived: int = 0
    completed: tuple[str, ...] = ()
    per_patch: tuple[tuple[str, int, int], ...] = ()   # (patch, frames, bytes)
    held: tuple[tuple[str, int, int], ...] = ()        # (patch, shares on board, k) after


@dataclass(frozen=True)
class SimulationResult:
    """Patches and windows of a simulated campaign."""

    patches: tuple[PatchResult, ...]
    windows: tuple[WindowLog, ...]
    seed: int
    counters: framing.Counters = framing.Counters()  # after the last frame sent

    def patch(self, name: str) -> PatchResult:
        return next(p for p in self.patches if p.name == name)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed,
                "patches": [p.to_json() for p in self.patches],
                "windows": [{"index": w.window.index, "station": w.window.pass_.station,
                             "rise": w.window.pass_.rise.isoformat(),
                             "cancelled": w.cancelled, "report": w.report_received,
                             "frames": w.frames_sent, "bytes": w.bytes_sent,
                             "lost": w.frames_lost, "completed": list(w.completed)}
                            for w in self.windows]}


# --------------------------------------------------------------------------- ground side


@dataclass
class _Sending:
    """Ground-side counters of one patch's transfer (its protocol state is in the view)."""

    patch: UplinkPatch
    encoded: erasure.Encoded
    transfer: int
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_lost: int = 0
    first_sent: datetime | None = None
    completed_at: datetime | None = None
    confirmed_at: datetime | None = None


def choose_shares(view: TransferView, n: int) -> list[int]:
    """``n`` share ids to send: never-sent ids first, then ids telemetry reports missing
    (least recently confirmed missing first), never one known to be held or in flight."""
    fresh = [i for i in range(MAX_SHARES) if i not in view.sent][:n]
    if len(fresh) == n:
        return fresh
    again = [i for i in sorted(view.sent) if i not in view.received and i not in view.unconfirmed]
    return fresh + again[: n - len(fresh)]


def apply_report(view: OnboardView, report: Report, transfers: Mapping[int, str]) -> OnboardView:
    """The ground's view after a telemetry report (cumulative: it replaces what it covers)."""
    out = dict(view.transfers)
    for tid, name in transfers.items():
        tv = out.get(name)
        if tv is None or tv.transfer != tid:
            continue
        entry = report.transfer(tid)
        if entry is None:  # nothing of it arrived yet
            out[name] = replace(tv, received=frozenset(), unconfirmed=frozenset())
        elif entry.state is TransferState.COMPLETE:
            out[name] = replace(tv, received=frozenset(range(tv.k)), unconfirmed=frozenset(),
                                complete=True, fate=entry.fate)
        elif entry.state in (TransferState.CORRUPT, TransferState.EVICTED):
            # The receiver closed this transfer: the patch goes again under a new one.
            del out[name]
        else:  # receiving: resend what is missing
            out[name] = replace(tv, received=entry.received, unconfirmed=frozenset())
    return OnboardView(report.config_hash, out)


class _Campaign:
    """The state of one simulated campaign: the ground's view and counters, the channel's
    random stream, and the onboard receiver."""

    def __init__(self, patches: Sequence[UplinkPatch], channel: Channel, rng: random.Random,
                 spacecraft_id: int, receiver: Receiver, share_bytes: int,
                 recorder: Recorder | None, link: SecurityAssociation,
                 counters: framing.Counters, first_transfer: int = 1,
                 onboard: Onboard | None = None) -> None:
        self.patches = list(patches)
        self.channel = channel
        self.rng = rng
        self.spacecraft_id = spacecraft_id
        self.receiver = receiver
        self.share_bytes = share_bytes
        self.recorder = recorder
        self.view = OnboardView()
        self.sending: dict[str, _Sending] = {}
        self.by_transfer: dict[int, str] = {}
        self.refused: dict[str, str] = {}
        self.link = link
        self.counters = counters
        self.first_transfer = first_transfer
        self.onboard = onboard

    def downlink(self, w: UplinkWindow, raw: bytes) -> bool:
        """Take a telemetry report; False if it cannot be read."""
        try:
            report = decode_report(raw)
        except ReportError:
            return False
        self.view = apply_report(self.view, report, self.by_transfer)
        for name, snd in self.sending.items():
            tv = self.view.transfers.get(name)
            if tv is not None and tv.complete and snd.confirmed_at is None:
                snd.confirmed_at = w.start
        if self.recorder:
            self.recorder.report(w, raw, report)
        return True

    def active(self) -> list[UplinkPatch]:
        """Patches neither refused nor confirmed complete."""
        return [p for p in self.patches if p.name not in self.refused
                and not (p.name in self.view.transfers and self.view.transfers[p.name].complete)]

    def frames_for(self, name: str, n: int) -> list[framing.Frame]:
        """``n`` frames of patch ``name``, starting its transfer if needed."""
        snd = self.sending.get(name)
        if snd is None or name not in self.view.transfers:  # new, or closed as corrupt
            p = next(x for x in self.patches if x.name == name)
            enc = erasure.encode(p.data, self.share_bytes)
            tid = len(self.by_transfer) + self.first_transfer
            if snd is None:
                snd = self.sending[name] = _Sending(p, enc, tid)
            snd.transfer = tid
            self.by_transfer[tid] = name
            self._set(name, TransferView(tid, enc.k, enc.share_bytes))
            if self.recorder:
                self.recorder.transfer(p, tid, enc.k, enc.share_bytes)
        tv = self.view.transfers[name]
        ids = choose_shares(tv, n)
        frames, self.counters = framing.frames(snd.encoded, snd.transfer, ids,
                                               self.spacecraft_id, self.counters, self.link)
        self._set(name, replace(tv, sent=tv.sent | set(ids), unconfirmed=tv.unconfirmed | set(ids)))
        return frames

    def _set(self, name: str, tv: TransferView) -> None:
        self.view = OnboardView(self.view.config_hash, {**self.view.transfers, name: tv})

    def transmit(self, w: UplinkWindow, out: list[tuple[str, framing.Frame]],
                 clock: list[datetime]) -> WindowLog:
        """Send the frames of one window through the channel to the receiver."""
        times = w.send_times([len(f.raw) for _, f in out])
        delivery = transmit(self.channel, [w.pass_.elevation_at(t) for t in times], self.rng)
        completed = []
        for i in delivery.arrived:
            clock[0] = times[i]
            name, f = out[i]
            if self.onboard is not None:
                self.onboard.advance(times[i])
                reception = self.onboard.receive(f.raw)
            else:
                reception = self.receiver.accept(f.raw, _ms(times[i]))
            if reception.outcome is Outcome.COMPLETED:
                self.sending[name].completed_at = times[i]
                completed.append(name)
        per_patch: dict[str, list[int]] = {}
        for i, (name, f) in enumerate(out):
            snd = self.sending[name]
            snd.frames_sent += 1
            snd.bytes_sent += len(f.raw)
            snd.first_sent = snd.first_sent or times[i]
            acc = per_patch.setdefault(name, [0, 0])
            acc[0] += 1
            acc[1] += len(f.raw)
            if self.recorder:
                self.recorder.sent(w, name, f.transfer, f.share, len(f.raw), times[i])
        for i in delivery.lost:
            self.sending[out[i][0]].frames_lost += 1
        held = tuple((name, snd.encoded.k if snd.completed_at else
                      len(self.receiver.received(snd.transfer)), snd.encoded.k)
                     for name, snd in self.sending.items())
        return WindowLog(w, False, True, len(out), sum(len(f.raw) for _, f in out),
                         len(delivery.lost), delivery.burst_lost, len(delivery.arrived),
                         tuple(completed), tuple((n, c[0], c[1]) for n, c in per_patch.items()),
                         held)

    def result(self, p: UplinkPatch, last_plan: Plan | None) -> PatchResult:
        """What became of patch ``p``."""
        snd, refusal = self.sending.get(p.name), self.refused.get(p.name)
        if snd is None:
            reason = refusal or ""
            if refusal is None and last_plan is not None:
                pp = next((x for x in last_plan.patches if x.name == p.name), None)
                reason = (pp.reason if pp else "") or "not started"
            return PatchResult(p.name, len(p.data), "refused" if refusal else "waiting", reason)
        v = self.view.transfers.get(p.name) or TransferView(snd.transfer, snd.encoded.k,
                                                            snd.encoded.share_bytes)
        if v.complete and v.fate is not None and fate_failed(v.fate):
            status, reason = "rejected", f"failed on board ({fate_code_text(v.fate)})"
        elif snd.completed_at is not None:
            status, reason = "complete", ""
        else:
            status, reason = "incomplete", refusal or "the windows ran out"
        return PatchResult(p.name, len(p.data), status, reason, snd.transfer, v.k,
                           v.share_bytes, snd.frames_sent, snd.bytes_sent, snd.frames_lost,
                           snd.first_sent, snd.completed_at, snd.confirmed_at, v.fate)


def simulate(patches: Sequence[UplinkPatch], windows: Sequence[UplinkWindow], channel: Channel,
             seed: int, spacecraft_id: int, storage_bytes: int, *,
             link: SecurityAssociation, counters: framing.Counters | None = None,
             share_bytes: int = DEFAULT_SHARE_BYTES, confidence: float = DEFAULT_CONFIDENCE,
             faults: Faults = Faults(), initial_config: bytes = bytes(32),
             handoff: Handoff | None = None, config_hash: Callable[[], bytes] | None = None,
             memory: tuple[int, int] | None = None, recorder: Recorder | None = None,
             on_window: Callable[[WindowLog], None] | None = None,
             onboard: Onboard | None = None, first_transfer: int = 1) -> SimulationResult:
    """Send ``patches`` over ``windows`` through ``channel`` to a simulated receiver.

    ``handoff`` receives every complete patch exactly once and ``config_hash`` says what
    configuration is on board (default for both: a ``SimulatedPatcher``); or ``onboard`` is
    a whole simulated satellite, with its own receiver, run up to every event. Frames are
    authenticated under ``link`` (the simulated receiver, when there is no ``onboard``, uses
    the same association). Transfers are numbered from ``first_transfer`` and sequence
    counters start after ``counters`` (a later campaign to the same receiver goes on from
    where the last one stopped: ``SimulationResult.counters``). ``recorder`` (a ledger)
    records passes, segments sent and reports; ``on_window`` is called after every window
    (progress display).
    """
    names = [p.name for p in patches]
    if len(set(names)) != len(names):
        raise ValueError("patch names must be distinct")
    rng = random.Random(seed)
    clock: list[datetime] = [windows[0].start if windows else datetime.min]
    patcher = SimulatedPatcher({hashlib.sha256(p.data).digest(): p for p in patches},
                               initial_config, clock=lambda: clock[0])
    if handoff is None or config_hash is None:
        handoff = handoff or patcher
        config_hash = config_hash or (lambda: patcher.config_hash)
    receiver = onboard.receiver if onboard is not None else \
        Receiver(spacecraft_id, handoff, storage_bytes, link)
    c = _Campaign(patches, channel, rng, spacecraft_id, receiver, share_bytes, recorder, link,
                  counters or framing.Counters(), first_transfer, onboard)
    logs: list[WindowLog] = []
    last_plan: Plan | None = None

    for pos, w in enumerate(windows):
        clock[0] = w.start
        cancelled = w.index in faults.cancelled or (
            faults.cancel_probability > 0 and rng.random() < faults.cancel_probability)
        if recorder:
            recorder.window(w, cancelled)
        if cancelled:
            logs.append(WindowLog(w, cancelled=True))
        else:
            # 1. telemetry made on board at the start of the pass, downlinked now
            if onboard is not None:
                onboard.advance(w.start)
                raw = onboard.report()
            else:
                raw = receiver.report(_ms(w.start), config_hash())
            lost = w.index in faults.lost_reports or (
                faults.report_loss_probability > 0
                and rng.random() < faults.report_loss_probability)
            report_ok = not lost and c.downlink(w, raw)
            active = c.active()
            if not active:
                logs.append(WindowLog(w, report_received=report_ok))
                if on_window:
                    on_window(logs[-1])
                break
            # 2. re-plan with the latest view; execute this window only
            last_plan = plan(active, windows[pos:], c.view, channel, storage_bytes,
                             share_bytes, confidence, memory)
            c.refused.update((pp.name, pp.reason) for pp in last_plan.patches
                             if pp.status is Status.REFUSED)
            out = [(a.patch, f) for a in last_plan.for_window(w.index)
                   for f in c.frames_for(a.patch, a.frames)]
            # 3. transmit around the culmination; the channel decides what arrives
            logs.append(replace(c.transmit(w, out, clock), report_received=report_ok))
        if on_window:
            on_window(logs[-1])
    return SimulationResult(tuple(c.result(p, last_plan) for p in patches), tuple(logs), seed,
                            c.counters)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)
