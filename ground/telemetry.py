"""What the ground learns from the downlink: patch fates, from the telemetry alone.

The spacecraft downlinks at every pass the receiver's report and its patch event log
(``onboard.link.downlink``). ``FateLog`` keeps every event the ground has seen, once (the
same event comes down in every packet until it drops out of the onboard log), and tells a
patch's fates in order, each at the time it happened on board, by the ground's time
correlation (``epoch``: the ground time of onboard millisecond 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from onboard.link.downlink import Downlink, PatchEvent
from onboard.patching.patcher import read_fate_code


def onboard_time(epoch: datetime, ms: int) -> datetime:
    """The ground time of onboard time ``ms``."""
    return epoch + timedelta(milliseconds=ms)


@dataclass(frozen=True)
class FateRecord:
    """A fate of a patch on board, when it happened, as telemetry tells it."""

    time: datetime
    status: str      # received, rejected, staged, active, committed, rolled-back
    detail: str      # for a rejection: "REASON: message"
    code: int = 0    # the one-byte fate code downlinked

    @property
    def final(self) -> bool:
        """Whether nothing more will happen to the patch on board."""
        return self.status in ("committed", "rolled-back", "rejected")


def fate_record(epoch: datetime, event: PatchEvent) -> FateRecord:
    """A downlinked event read by the ground."""
    try:
        status, reason = read_fate_code(event.code)
    except ValueError as exc:
        return FateRecord(onboard_time(epoch, event.time_ms), "unknown",
                          f"{exc}: {event.message}", event.code)
    detail = f"{reason.value}: {event.message}" if reason is not None else event.message
    return FateRecord(onboard_time(epoch, event.time_ms), status.value, detail, event.code)


class FateLog:
    """Every patch event the ground has received, each once, by its onboard number."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = epoch
        self._events: dict[int, PatchEvent] = {}

    def learn(self, downlink: Downlink) -> None:
        """Take the events of a downlink packet (those already known are skipped)."""
        for e in downlink.events:
            self._events.setdefault(e.number, e)

    def fates(self, ticket: int | None) -> tuple[FateRecord, ...]:
        """The fates of the patch handed over under ``ticket``, in the order they happened."""
        return tuple(fate_record(self.epoch, self._events[n]) for n in sorted(self._events)
                     if self._events[n].ticket == ticket)

    def missed(self) -> int:
        """Events that dropped out of the onboard log before a downlink brought them."""
        numbers = sorted(self._events)
        return numbers[-1] - len(numbers) if numbers else 0
