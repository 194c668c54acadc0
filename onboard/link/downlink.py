"""The telemetry the spacecraft downlinks at a pass: all the ground ever learns of it.

One downlink packet carries

* the receiver's report (``onboard.link.receiver``): the configuration hash on board,
  the link counters, every transfer in progress with the shares held, and the latest fate
  code of every recently finished transfer;
* the patch event log: every fate a patch went through on board (received, rejected with
  its reason, staged, active, committed, rolled back), each with the onboard time it
  happened, the ticket it came under (the transfer id on its first use), its one-byte fate
  code and a short message. The receiver's report keeps only the latest fate of a transfer;
  the log says when each step happened, which is what operations need (when did the new
  configuration start, when was it kept).

The log is bounded (``EventLog.capacity`` events, the oldest dropped first) and numbered:
each event gets the next number, so the ground, which sees the same event in every downlink
until it drops out, keeps each one once, and knows from a gap in the numbers that events
were lost. Like the receiver's report the packet is cumulative: a lost downlink costs
nothing but time.

After the log come the dump packets waiting in the outbox (``onboard.sim.dump_service``):
the answers to the ground's dump requests, numbered like the events and repeated in every
downlink until they drop out (``onboard.link.dump_format`` has their bytes).

Stdlib and construct only; fate codes are plain integers here (the patcher defines them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import construct as cs

from onboard.link.dump_format import DUMP_PACKET, DumpPacket, build_packet, packet_of
from onboard.link.packet_definition import PacketDefinition, text, uint

DOWNLINK_MAGIC = b"TMD1"
#: Events kept in the log (and so in every downlink) unless told otherwise.
DEFAULT_EVENT_CAPACITY = 64
#: Longest event message carried, in UTF-8 bytes (longer ones are cut).
MAX_MESSAGE_BYTES = 120

#: Application process of the fate reports when they travel as Space Packets of their own
#: (``onboard.sim.tm_packets``).
FATE_APID = 0x152

#: One patch event: an element of the downlink's log, and the data field of a fate report.
FATE_REPORT = PacketDefinition("FateReport", FATE_APID, "a fate of a patch on board", (
    uint("number", 32, "running number of the event on board (from 1)"),
    uint("time_ms", 64, "onboard time of the fate", "ms"),
    uint("ticket", 32, "the receiver's ticket of the patch (its transfer id on first use)"),
    uint("code", 8, "the patcher's one-byte fate code"),
    text("message", 8, "what happened, in words"),
))

_DOWNLINK = cs.Struct(
    "magic" / cs.Const(DOWNLINK_MAGIC),
    "report" / cs.Prefixed(cs.Int32ub, cs.GreedyBytes),
    "events" / cs.PrefixedArray(cs.Int16ub, FATE_REPORT.struct),
    "dumps" / cs.PrefixedArray(cs.Int16ub, DUMP_PACKET),
    cs.Terminated,
)


@dataclass(frozen=True)
class PatchEvent:
    """One fate of one patch on board, as the downlink carries it."""

    number: int     # running number of the event on board (from 1)
    time_ms: int    # onboard time it happened
    ticket: int     # the receiver's ticket of the patch (its transfer id on first use)
    code: int       # the patcher's one-byte fate code
    message: str


@dataclass(frozen=True)
class Downlink:
    """A decoded downlink packet: the receiver's report (raw; ``decode_report`` reads it),
    the patch events still in the log and the dump packets still in the outbox."""

    report: bytes
    events: tuple[PatchEvent, ...]
    dumps: tuple[DumpPacket, ...] = ()


class DownlinkError(Exception):
    """Bytes that are not a downlink packet."""


class EventLog:
    """The bounded, numbered log of patch fates on board (see the module docstring)."""

    def __init__(self, capacity: int = DEFAULT_EVENT_CAPACITY) -> None:
        self.capacity = capacity
        self.count = 0  # events ever logged: the number of the latest
        self._events: deque[PatchEvent] = deque(maxlen=capacity)

    def log(self, time_ms: int, ticket: int, code: int, message: str) -> None:
        """Record that patch ``ticket`` reached fate ``code`` at onboard time ``time_ms``."""
        self.count += 1
        text = message.encode("utf-8")[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore")
        self._events.append(PatchEvent(self.count, time_ms, ticket, code & 0xFF, text))

    @property
    def events(self) -> tuple[PatchEvent, ...]:
        return tuple(self._events)


def encode_downlink(report: bytes, log: EventLog, dumps: Sequence[DumpPacket] = ()) -> bytes:
    """The downlink packet of the receiver's ``report``, the events in ``log`` and the dump
    packets ``dumps``."""
    return _DOWNLINK.build(dict(report=report, events=[
        dict(number=e.number, time_ms=e.time_ms, ticket=e.ticket, code=e.code,
             message=e.message.encode("utf-8")) for e in log.events],
        dumps=[build_packet(p) for p in dumps]))


def decode_downlink(raw: bytes) -> Downlink:
    """Parse a packet made by ``encode_downlink``; raises ``DownlinkError``."""
    try:
        d = _DOWNLINK.parse(raw)
        events = tuple(PatchEvent(e.number, e.time_ms, e.ticket, e.code,
                                  bytes(e.message).decode("utf-8"))
                       for e in d.events)
        dumps = tuple(packet_of(p) for p in d.dumps)
    except (cs.ConstructError, UnicodeDecodeError) as exc:
        raise DownlinkError(f"not a downlink packet: {exc}") from None
    return Downlink(bytes(d.report), events, dumps)
