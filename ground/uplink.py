"""Non-interactive uplink over passes, with deferred acknowledgement, simulated end to end.

At every uplink window, in order:

1. The satellite's telemetry is downlinked (unless the pass is cancelled or the report is
   lost): for each transfer, the bitmap of shares held, or that it is complete and the
   patcher's fate, the configuration hash on board, and the patch event log. The ground
   updates its view.
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
   patch to the patcher once; the ground hears of it at the next downlink.

The loop stops when telemetry has confirmed every patch complete (or the patch was refused),
or when the windows run out. Cancelled passes and lost reports only cost time: the reports
are cumulative. A transfer telemetry reports corrupt or evicted is sent again under a new
transfer id. Everything random on the ground comes from one ``random.Random(seed)``.

The satellite is the one onboard stack (``ground.satellite``: receiver, VVM, patcher and
store, ``onboard.sim.spacecraft``), driven up to every event. The ground learns what became
of each patch only from the downlink (``onboard.link.downlink``): the receiver's report
(shares held, transfers complete, the latest fate code) and the patch event log (every fate,
received to committed, rolled back or rejected with its reason, with its onboard time). A
patch is *complete* once telemetry shows it complete on board and its fate not failed; a
patch the patcher refuses (bytes that are not a valid patch for this spacecraft, a wrong
base...) is *rejected*, with the reason telemetry gives. When on board it was completed is
the time of its first event (the receiver hands it over with the frame that completes it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
)
from ground.telemetry import FateLog, FateRecord
from onboard.link.downlink import DownlinkError, decode_downlink
from onboard.link.erasure import MAX_SHARES
from onboard.link.link_security import SecurityAssociation
from onboard.link.receiver import (
    Report,
    ReportError,
    TransferState,
    decode_report,
)
from onboard.mission import MissionProfile
from onboard.patching.patcher import fate_code_text, fate_failed


class Onboard(Protocol):
    """A simulated satellite as the ground meets it (``ground.satellite.SimulatedSatellite``):
    frames up, a downlink packet at a pass, nothing else; its clock follows the ground's."""

    @property
    def epoch(self) -> datetime:
        """The ground time of onboard millisecond 0 (the ground's time correlation)."""
    def advance(self, t: datetime) -> None:
        """Run the satellite up to ground time ``t``."""
    def receive(self, frame: bytes) -> None:
        """A TC frame arrives now."""
    def downlink(self) -> bytes:
        """The telemetry it downlinks now (``onboard.link.downlink``)."""


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


@dataclass(frozen=True)
class Campaign:
    """The settings of one simulated uplink campaign.

    ``spacecraft_id``, ``storage_bytes`` (the receiver's share storage) and ``memory`` (code
    and data bytes) are what the ground plans with (``Campaign.for_mission`` takes them from
    the mission profile); frames are authenticated under ``link``, the ground's end of the
    TC link. Transfers are numbered from ``first_transfer`` and security sequence numbers
    go on after ``counters`` (a later campaign to the same satellite goes on from where the
    last stopped: ``SimulationResult.counters``).
    """

    spacecraft_id: int
    storage_bytes: int
    link: SecurityAssociation
    channel: Channel = Channel()
    seed: int = 1
    share_bytes: int = DEFAULT_SHARE_BYTES
    confidence: float = DEFAULT_CONFIDENCE
    faults: Faults = Faults()
    memory: tuple[int, int] | None = None
    first_transfer: int = 1
    counters: framing.Counters = framing.Counters()

    @staticmethod
    def for_mission(profile: MissionProfile, link: SecurityAssociation,
                    **settings: Any) -> Campaign:
        """A campaign to ``profile``'s spacecraft: its id, receive storage and memory."""
        return Campaign(profile.spacecraft_id, profile.patch_buffer_bytes, link,
                        memory=(profile.code_bytes, profile.data_bytes), **settings)


@dataclass(frozen=True)
class PatchResult:
    """What became of one patch."""

    name: str
    size: int
    status: str                        # complete, rejected, refused, waiting, incomplete
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
    fate: int | None = None                # the latest fate code telemetry gave
    fates: tuple[FateRecord, ...] = ()     # every fate on board, as telemetry told them

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
                "fates": [{"time": iso(f.time), "status": f.status, "detail": f.detail}
                          for f in self.fates],
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


class _CampaignState:
    """The state of one simulated campaign: the ground's view, what it learnt from
    telemetry, its counters, and the channel's random stream."""

    def __init__(self, patches: Sequence[UplinkPatch], settings: Campaign, onboard: Onboard,
                 recorder: Recorder | None) -> None:
        self.patches = list(patches)
        self.settings = settings
        self.onboard = onboard
        self.recorder = recorder
        self.rng = random.Random(settings.seed)
        self.view = OnboardView()
        self.fates = FateLog(onboard.epoch)
        self.sending: dict[str, _Sending] = {}
        self.by_transfer: dict[int, str] = {}
        self.refused: dict[str, str] = {}
        self.counters = settings.counters
        self.held_after: dict[int, tuple[tuple[str, int, int], ...]] = {}

    def downlink(self, w: UplinkWindow, raw: bytes) -> bool:
        """Take a downlink packet; False if it cannot be read."""
        try:
            packet = decode_downlink(raw)
            report = decode_report(packet.report)
        except (DownlinkError, ReportError):
            return False
        self.fates.learn(packet)
        self.view = apply_report(self.view, report, self.by_transfer)
        for name, snd in self.sending.items():
            tv = self.view.transfers.get(name)
            if tv is not None and tv.complete and snd.confirmed_at is None:
                snd.confirmed_at = w.start
                fates = self.fates.fates(snd.transfer)
                snd.completed_at = fates[0].time if fates else None
        self.held_after[w.index] = tuple(
            (name, tv.k if tv.complete else len(tv.received), tv.k)
            for name, tv in self.view.transfers.items() if name in self.sending)
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
        s = self.settings
        if snd is None or name not in self.view.transfers:  # new, or closed as corrupt
            p = next(x for x in self.patches if x.name == name)
            enc = erasure.encode(p.data, s.share_bytes)
            tid = len(self.by_transfer) + s.first_transfer
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
                                               s.spacecraft_id, self.counters, s.link,
                                               application=snd.patch.application)
        self._set(name, replace(tv, sent=tv.sent | set(ids), unconfirmed=tv.unconfirmed | set(ids)))
        return frames

    def _set(self, name: str, tv: TransferView) -> None:
        self.view = OnboardView(self.view.config_hash, {**self.view.transfers, name: tv})

    def transmit(self, w: UplinkWindow, out: list[tuple[str, framing.Frame]]) -> WindowLog:
        """Send the frames of one window through the channel to the satellite."""
        times = w.send_times([len(f.raw) for _, f in out])
        delivery = transmit(self.settings.channel, [w.pass_.elevation_at(t) for t in times],
                            self.rng)
        for i in delivery.arrived:
            self.onboard.advance(times[i])
            self.onboard.receive(out[i][1].raw)
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
        return WindowLog(w, False, True, len(out), sum(len(f.raw) for _, f in out),
                         len(delivery.lost), delivery.burst_lost, len(delivery.arrived),
                         per_patch=tuple((n, c[0], c[1]) for n, c in per_patch.items()))

    def logs(self, logs: list[WindowLog]) -> tuple[WindowLog, ...]:
        """The windows with what telemetry later told of them: the patches completed on
        board during each, and the shares held after it (from the next report read)."""
        completed: dict[int, list[str]] = {}
        for name, snd in self.sending.items():
            during = [pos for pos, log in enumerate(logs) if snd.completed_at is not None
                      and log.window.start <= snd.completed_at]
            if during:
                completed.setdefault(during[-1], []).append(name)
        out = []
        for pos, log in enumerate(logs):
            nxt = next((self.held_after[x.window.index] for x in logs[pos + 1:]
                        if x.window.index in self.held_after), ())
            out.append(replace(log, completed=tuple(completed.get(pos, ())), held=nxt))
        return tuple(out)

    def result(self, p: UplinkPatch, last_plan: Plan | None) -> PatchResult:
        """What became of patch ``p``, as far as telemetry told."""
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
            status = "rejected"
            reason = "on board: " + fate_code_text(v.fate).removeprefix("rejected: ")
        elif v.complete:
            status, reason = "complete", ""
        else:
            status, reason = "incomplete", refusal or "the windows ran out"
        return PatchResult(p.name, len(p.data), status, reason, snd.transfer, v.k,
                           v.share_bytes, snd.frames_sent, snd.bytes_sent, snd.frames_lost,
                           snd.first_sent, snd.completed_at, snd.confirmed_at, v.fate,
                           self.fates.fates(snd.transfer))


def simulate(patches: Sequence[UplinkPatch], windows: Sequence[UplinkWindow], onboard: Onboard,
             settings: Campaign, *, recorder: Recorder | None = None,
             on_window: Callable[[WindowLog], None] | None = None) -> SimulationResult:
    """Send ``patches`` over ``windows`` to the simulated satellite ``onboard`` under the
    campaign ``settings``, reading its downlink at every pass (see the module docstring).

    ``recorder`` (a ledger) records passes, segments sent and reports; ``on_window`` is
    called after every window (progress display).
    """
    names = [p.name for p in patches]
    if len(set(names)) != len(names):
        raise ValueError("patch names must be distinct")
    c = _CampaignState(patches, settings, onboard, recorder)
    faults = settings.faults
    logs: list[WindowLog] = []
    last_plan: Plan | None = None

    for pos, w in enumerate(windows):
        cancelled = w.index in faults.cancelled or (
            faults.cancel_probability > 0 and c.rng.random() < faults.cancel_probability)
        if recorder:
            recorder.window(w, cancelled)
        if cancelled:
            logs.append(WindowLog(w, cancelled=True))
        else:
            # 1. telemetry made on board at the start of the pass, downlinked now
            onboard.advance(w.start)
            raw = onboard.downlink()
            lost = w.index in faults.lost_reports or (
                faults.report_loss_probability > 0
                and c.rng.random() < faults.report_loss_probability)
            report_ok = not lost and c.downlink(w, raw)
            active = c.active()
            if not active:
                logs.append(WindowLog(w, report_received=report_ok))
                if on_window:
                    on_window(logs[-1])
                break
            # 2. re-plan with the latest view; execute this window only
            last_plan = plan(active, windows[pos:], c.view, settings.channel,
                             settings.storage_bytes, settings.share_bytes, settings.confidence,
                             settings.memory)
            c.refused.update((pp.name, pp.reason) for pp in last_plan.patches
                             if pp.status is Status.REFUSED)
            out = [(a.patch, f) for a in last_plan.for_window(w.index)
                   for f in c.frames_for(a.patch, a.frames)]
            # 3. transmit around the culmination; the channel decides what arrives
            logs.append(replace(c.transmit(w, out), report_received=report_ok))
        if on_window:
            on_window(logs[-1])
    return SimulationResult(tuple(c.result(p, last_plan) for p in patches), c.logs(logs),
                            settings.seed, c.counters)
