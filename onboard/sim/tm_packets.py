"""Telemetry as CCSDS Space Packets: what a mission control system (Yamcs) receives.

The downlink of a pass (``onboard.link.downlink``) is one cumulative packet that only our
ground reads. For a mission control system the same telemetry also goes down as CCSDS TM
Space Packets (no secondary header), one packet per item, each on its own APID:

========  ==============  ===========================================================
APID      packet          data field
========  ==============  ===========================================================
0x151     ``Readback``    one value read back (a parameter, state, table or state array)
0x152     ``FateReport``  one patch event (``downlink.FATE_REPORT``)
0x153     ``Housekeeping`` the VVM's own figures (``HOUSEKEEPING``)
0x154     ``LinkReport``  the receiver's counters (``receiver.LINK_REPORT``)
0x155     ``DumpPacket``  a piece of a dump stream (``dump_format.DUMP_DEFINITION``)
0x156     ``Application`` one application of a board of several (``APPLICATION``): its
                          configuration, part, cycles, traps and its patches' fates
========  ==============  ===========================================================

Every packet's layout is a ``PacketDefinition`` (``onboard.link.packet_definition``): the
encoder here and the XTCE generator (``ground/xtce.py``) read the same one. A read-back
packet's layout depends on the configuration (its names, ranges and table lengths), so its
definitions are made per configuration by ``readback_definitions``: the value's
declaration index selects the layout.

``TmPacketizer`` numbers the packets (a 14-bit sequence count per APID) and sends each
event, dump packet and read-back once, housekeeping and the link report at every pass.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from onboard.link.downlink import FATE_REPORT, PatchEvent
from onboard.link.dump_format import DUMP_DEFINITION, DumpPacket
from onboard.link.packet_definition import (
    Field,
    PacketDefinition,
    octets,
    signed_bits,
    text,
    uint,
)
from onboard.link.receiver import LINK_REPORT
from onboard.link.tc_frames import PACKET_HEADER, UNSEGMENTED
from onboard.mission import MAX_APPLICATION
from onboard.vm.dump_stream import DumpError, decode_values
from onboard.vm.image import Image
from onboard.vm.readback import Value

READBACK_APID = 0x151
HOUSEKEEPING_APID = 0x153
APPLICATION_APID = 0x156
#: Largest packet data field of a Space Packet (its length field counts octets minus one).
MAX_DATA_BYTES = 1 << 16

#: Fields every read-back packet begins with (``readback_definition``).
READBACK_HEAD_FIELDS = 4

#: Store phases as housekeeping numbers them.
PHASES = ("idle", "staged", "probation")

HOUSEKEEPING = PacketDefinition("Housekeeping", HOUSEKEEPING_APID,
                                "the VVM's execution figures and the reconfiguration state", (
    uint("time_ms", 64, "onboard time", "ms"),
    octets("config_hash", 32, "content hash of the configuration running (zeros: none)"),
    uint("config_version", 32, "version of the configuration running"),
    text("config_name", 8, "name of the configuration running"),
    uint("share_cycles", 32, "the VVM's cycles per frame (the reconfiguration share)",
         "cycles"),
    uint("frames", 32, "frames elapsed"),
    uint("busy_frames", 32, "frames in which the VVM ran code"),
    uint("cycles_used", 64, "cycles the VVM used in all", "cycles"),
    uint("worst_frame_cycles", 32, "the most cycles any frame used", "cycles"),
    uint("worst_share_ppm", 32, "the worst frame as parts per million of the share", "ppm"),
    uint("task_runs", 32, "completed task runs"),
    uint("overruns", 32, "task runs that overran their frame"),
    uint("traps", 32, "task runs that trapped"),
    uint("faults", 32, "faults recorded"),
    uint("store_phase", 8, "0 idle, 1 a configuration staged, 2 one on probation",
         lo=0, hi=len(PHASES) - 1),
    uint("store_slots", 8, "configuration slots in use (current, previous, staged)",
         lo=0, hi=3),
    uint("patches_waiting", 8, "complete patches queued for checking"),
    uint("probation_frames", 32, "clean frames of probation counted"),
    uint("probation_needed", 32, "clean frames a configuration needs to be kept"),
))

APPLICATION = PacketDefinition("Application", APPLICATION_APID,
                               "one application of a board of several, at every pass", (
    uint("time_ms", 64, "onboard time", "ms"),
    uint("application", 8, "the application's number on the link (its patches' APID: "
                           "0x150 for 0, 0x160 + n after)", lo=0, hi=MAX_APPLICATION),
    text("name", 8, "the application's name"),
    uint("share_percent", 8, "its declared part of the share", "%", lo=1, hi=100),
    uint("part_cycles", 32, "its tasks' cycles per frame (its part)", "cycles"),
    uint("reserve_cycles", 32, "its slice of the patch reserve per frame", "cycles"),
    octets("config_hash", 32, "content hash of its configuration (zeros: none)"),
    uint("config_version", 32, "version of its configuration"),
    text("config_name", 8, "name of its configuration"),
    uint("busy_frames", 32, "frames in which it ran code"),
    uint("cycles_used", 64, "cycles it used in all", "cycles"),
    uint("worst_frame_cycles", 32, "the most cycles it used in one frame", "cycles"),
    uint("task_runs", 32, "its completed task runs"),
    uint("overruns", 32, "its task runs that overran their frame"),
    uint("traps", 32, "its task runs that trapped"),
    uint("faults", 32, "its faults recorded"),
    uint("store_phase", 8, "0 idle, 1 a configuration staged, 2 one on probation",
         lo=0, hi=len(PHASES) - 1),
    uint("probation_frames", 32, "clean frames of probation counted"),
    uint("patches_committed", 16, "its patches committed"),
    uint("patches_rolled_back", 16, "its patches rolled back"),
    uint("patches_rejected", 16, "its patches rejected"),
))

#: Every TM packet definition but the read-back (made per configuration).
TELEMETRY = (HOUSEKEEPING, LINK_REPORT, FATE_REPORT, DUMP_DEFINITION, APPLICATION)

_READBACK_HEAD = (
    uint("time_ms", 64, "onboard time the value was read", "ms"),
    uint("request", 16, "the dump request answered"),
    uint("config", 32, "the configuration: the first four bytes of its content hash"),
    uint("value", 16, "the value's index among the configuration's declarations"),
)


@dataclass(frozen=True)
class Declaration:
    """A value a configuration declares, as read-back shows it: ``count`` elements."""

    name: str
    kind: str       # param, state, table, array (``onboard.vm.readback``)
    lo: int
    hi: int
    count: int


def declarations(image: Image) -> tuple[Declaration, ...]:
    """The values ``image`` declares, in read-back order (``onboard.vm.readback``)."""
    return tuple([Declaration(g.name, "state" if g.writable else "param", g.lo, g.hi, 1)
                  for g in image.globals]
                 + [Declaration(a.name, "array" if a.writable else "table", a.lo, a.hi,
                                a.length) for a in image.arrays])


def readback_definition(index: int, d: Declaration) -> PacketDefinition:
    """The read-back packet of the ``index``-th declared value ``d``."""
    bits = signed_bits(d.lo, d.hi)
    doc = f"{d.kind} {d.name} ({d.lo} .. {d.hi})"
    element = Field(d.name, "int", bits, doc=doc, lo=d.lo, hi=d.hi) if d.count == 1 and \
        d.kind in ("param", "state") else \
        Field(d.name, "values", bits, d.count, doc=doc, lo=d.lo, hi=d.hi)
    return PacketDefinition(f"Readback_{d.name}", READBACK_APID, f"read-back of {doc}",
                            (*_READBACK_HEAD, element))


def readback_definitions(declarations: Sequence[Declaration]) -> tuple[PacketDefinition, ...]:
    """The read-back packet of every declared value, by declaration index."""
    return tuple(readback_definition(i, d) for i, d in enumerate(declarations))


def space_packet(apid: int, sequence_count: int, data: bytes) -> bytes:
    """An unsegmented TM Space Packet without secondary header around ``data``."""
    if not 1 <= len(data) <= MAX_DATA_BYTES:
        raise ValueError(f"a packet data field of {len(data)} bytes")
    return bytes(PACKET_HEADER.build(dict(
        telecommand=False, secondary_header=False, apid=apid, sequence_flags=UNSEGMENTED,
        sequence_count=sequence_count % (1 << 14), data_length_minus_one=len(data) - 1))) + data


def split_packets(stream: bytes) -> list[tuple[int, bytes]]:
    """A stream of Space Packets as (APID, data field) pairs; ``ValueError`` if cut short."""
    out, at = [], 0
    while at < len(stream):
        if len(stream) - at < 6:
            raise ValueError(f"{len(stream) - at} bytes left at {at}: not a packet header")
        head = PACKET_HEADER.parse(stream[at:at + 6])
        end = at + 6 + head.data_length_minus_one + 1
        if end > len(stream):
            raise ValueError(f"packet at byte {at} is cut short")
        out.append((head.apid, stream[at + 6:end]))
        at = end
    return out


@dataclass
class TmPacketizer:
    """Numbers the TM packets of successive passes and sends each event, dump packet and
    read-back once (see the module docstring)."""

    counts: dict[int, int] = field(default_factory=dict)
    event_sent: int = 0        # number of the last event sent
    dump_sent: int = 0         # number of the last dump packet sent
    answered: set[int] = field(default_factory=set)  # requests whose read-back went down

    def packet(self, definition: PacketDefinition, values: Mapping[str, Any],
               apid: int | None = None) -> bytes:
        """The next Space Packet of ``definition`` carrying ``values``."""
        apid = definition.apid if apid is None else apid
        count = self.counts.get(apid, 0)
        self.counts[apid] = count + 1
        return space_packet(apid, count, definition.build(values))

    def pass_packets(self, housekeeping: Mapping[str, Any], link_report: Mapping[str, Any],
                     events: Iterable[PatchEvent], dumps: Sequence[DumpPacket],
                     declarations: Sequence[Declaration], config: int,
                     applications: Sequence[Mapping[str, Any]] = ()) -> list[bytes]:
        """The packets of one pass: housekeeping, the link report, one ``Application``
        packet per application of a board of several, the events and dump packets not sent
        yet, and the read-back of each answer complete for the first time (its values looked
        up in ``declarations``, those of the configuration running, whose hash begins with
        ``config``)."""
        out = [self.packet(HOUSEKEEPING, housekeeping), self.packet(LINK_REPORT, link_report)]
        out += [self.packet(APPLICATION, a) for a in applications]
        for e in events:
            if e.number > self.event_sent:
                out.append(self.packet(FATE_REPORT, vars(e)))
                self.event_sent = e.number
        for p in dumps:
            if p.number > self.dump_sent:
                out.append(self.packet(DUMP_DEFINITION, vars(p)))
                self.dump_sent = p.number
        out += self._readbacks(dumps, declarations, config)
        return out

    def _readbacks(self, dumps: Sequence[DumpPacket], declarations: Sequence[Declaration],
                   config: int) -> list[bytes]:
        index = {d.name: i for i, d in enumerate(declarations)}
        out = []
        for request in sorted({p.request for p in dumps} - self.answered):
            parts = {p.index: p for p in dumps if p.request == request}
            last = next((p for p in parts.values() if p.last), None)
            if any(p.refused for p in parts.values()):
                self.answered.add(request)
                continue
            if last is None or any(i not in parts for i in range(last.index)):
                continue
            self.answered.add(request)
            try:
                values = decode_values(b"".join(parts[i].data for i in range(last.index + 1)))
            except DumpError:
                continue
            for v in values:
                out += self._readback(request, last.time_ms, v, index, declarations, config)
        return out

    def _readback(self, request: int, time_ms: int, v: Value, index: Mapping[str, int],
                  declarations: Sequence[Declaration], config: int) -> list[bytes]:
        i = index.get(v.name)
        if i is None or declarations[i].count != len(v.values):
            return []  # the configuration changed since the value was read
        definition = readback_definition(i, declarations[i])
        element = v.values[0] if definition.fields[-1].kind == "int" else list(v.values)
        return [self.packet(definition, {"time_ms": time_ms, "request": request, "config": config,
                                         "value": i,
                                         v.name: element})]
