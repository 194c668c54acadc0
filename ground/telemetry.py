"""What the ground learns from the downlink: patch fates, from the telemetry alone.

The spacecraft downlinks at every pass the receiver's report and its patch event log
(``onboard.link.downlink``). ``FateLog`` keeps every event the ground has seen, once (the
same event comes down in every packet until it drops out of the onboard log), and tells a
patch's fates in order, each at the time it happened on board, by the ground's time
correlation (``epoch``: the ground time of onboard millisecond 0). ``DumpLog`` does the same
for the dump packets, and puts each answer to a dump request back together
(``onboard/link/dump_format.py``): the values read back, or the board's reason for refusing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from onboard.link.downlink import Downlink, PatchEvent
from onboard.link.dump_format import DumpPacket
from onboard.patching.patcher import read_fate_code
from onboard.vm.dump_stream import DumpError, decode_values
from onboard.vm.readback import Value


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


@dataclass(frozen=True)
class DumpAnswer:
    """The board's answer to one dump request: the values, or why it refused."""

    request: int
    time: datetime                    # when the last elements were read on board
    values: tuple[Value, ...] = ()
    refused: str | None = None        # "REASON: message"

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request, "time": self.time.isoformat(),
                "values": [v.to_json() for v in self.values], "refused": self.refused}


class DumpLog:
    """Every dump packet the ground has received, each once, by its onboard number."""

    def __init__(self, epoch: datetime) -> None:
        self.epoch = epoch
        self._packets: dict[int, DumpPacket] = {}

    def learn(self, downlink: Downlink) -> None:
        """Take the dump packets of a downlink packet (those already known are skipped)."""
        for p in downlink.dumps:
            self._packets.setdefault(p.number, p)

    def answer(self, request: int) -> DumpAnswer | None:
        """The answer to ``request`` once the ground holds all of it (None until then);
        a stream that does not decode is reported as refused ``bad-stream``."""
        by_index: dict[int, DumpPacket] = {}
        for n in sorted(self._packets):
            p = self._packets[n]
            if p.request == request:
                by_index.setdefault(p.index, p)
        refusal = next((p for p in by_index.values() if p.refused), None)
        if refusal is not None:
            return DumpAnswer(request, onboard_time(self.epoch, refusal.time_ms),
                              refused=refusal.data.decode("utf-8", "replace"))
        last = next((p for p in by_index.values() if p.last), None)
        if last is None or any(i not in by_index for i in range(last.index)):
            return None
        stream = b"".join(by_index[i].data for i in range(last.index + 1))
        when = onboard_time(self.epoch, last.time_ms)
        try:
            return DumpAnswer(request, when, decode_values(stream))
        except DumpError as exc:
            return DumpAnswer(request, when, refused=f"bad-stream: {exc}")
