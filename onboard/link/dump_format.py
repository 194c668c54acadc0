"""Dump requests and dump packets: the bytes of a read-back over the link, defined once for
both sides (``docs/tc-link.md``, "Reading values back").

The ground asks for named values in a *dump request*, a telecommand carried like a patch
segment (an authenticated TC frame of the patch virtual channel) but on its own APID,
``REQUEST_APID``. Its packet data field::

    request = request id u16 | count u8 (1 .. MAX_NAMES) | count x (length u8 | name)

Names are ASCII identifiers of at most ``MAX_NAME_BYTES`` bytes. The board answers with a
*dump stream* of the values (``onboard/vm/dump_stream.py``) cut into *dump packets* of at
most ``CHUNK_BYTES`` bytes, downlinked in the TMD1 packet
(``onboard.link.downlink``)::

    packet = number u32 | request id u16 | index u16 | flags u8 | time_ms u64
             | length u16 | data

``number`` runs on board from 1 (the ground keeps each packet once and sees gaps),
``index`` from 0 within the request's answer, ``flags`` bit 0 marks the last packet of an
answer and bit 1 a refusal, whose data is ``REASON: message`` in UTF-8 (a single packet).
``time_ms`` is the onboard time the packet's elements were read.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import construct as cs

from onboard.link.packet_definition import PacketDefinition, blob, text, uint
from onboard.link.tc_frames import REQUEST_APID

#: Most names one request may ask for.
MAX_NAMES = 16
#: Longest name in a request, in bytes.
MAX_NAME_BYTES = 60  # so that the largest request fits one TC frame
#: Largest data field of one dump packet.
CHUNK_BYTES = 512
#: Flag bits of a dump packet.
LAST = 1
REFUSED = 2
#: Longest refusal text carried, in UTF-8 bytes (longer ones are cut).
MAX_REFUSAL_BYTES = 120

#: A dump request of one name, as a mission control system sends it (``encode_request`` of
#: one name gives these bytes; more names repeat the length and name).
DUMP_REQUEST = PacketDefinition("DumpRequest", REQUEST_APID, "read values back from the board", (
    uint("request", 16, "request id (the dump packets of the answer carry it)"),
    uint("count", 8, "names asked for: 1 here", lo=1, hi=1),
    text("name", 8, "the name of a parameter, state variable or table"),
))
_REQUEST_HEAD = cs.Struct(*DUMP_REQUEST.struct.subcons[:2])

#: Application process of the dump packets when they travel as Space Packets of their own
#: (``onboard.sim.tm_packets``).
DUMP_APID = 0x155

DUMP_DEFINITION = PacketDefinition("DumpPacket", DUMP_APID, "a piece of a dump stream", (
    uint("number", 32, "running number of the dump packet on board (from 1)"),
    uint("request", 16, "the dump request answered"),
    uint("index", 16, "position of the packet in the answer (from 0)"),
    uint("flags", 8, "bit 0: last packet of the answer; bit 1: a refusal"),
    uint("time_ms", 64, "onboard time the elements were read", "ms"),
    blob("data", 16, "the dump stream's bytes (a refusal: REASON: message)"),
))
DUMP_PACKET = DUMP_DEFINITION.struct


class Refusal(Enum):
    """Why the board refuses a dump request (the text before the colon of a refusal)."""

    MALFORMED = "malformed"            # the request's bytes do not parse
    TOO_MANY_NAMES = "too-many-names"  # more than MAX_NAMES names, or none
    UNKNOWN_NAME = "unknown-name"      # a name the running configuration does not declare
    TOO_LARGE = "too-large"            # the answer would not fit the dump buffer
    BUSY = "busy"                      # too many requests already wait
    NO_CONFIGURATION = "no-configuration"  # nothing runs on board
    INTERRUPTED = "interrupted"        # the configuration switched during the dump


class RequestError(Exception):
    """A dump request the board refuses before reading anything: why, and the request id
    when it could be read (0 otherwise)."""

    def __init__(self, reason: Refusal, message: str, request: int = 0) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
        self.request = request


@dataclass(frozen=True)
class DumpRequest:
    """A decoded dump request."""

    request: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class DumpPacket:
    """One dump packet as the downlink carries it."""

    number: int
    request: int
    index: int
    flags: int
    time_ms: int
    data: bytes

    @property
    def last(self) -> bool:
        return bool(self.flags & LAST)

    @property
    def refused(self) -> bool:
        return bool(self.flags & REFUSED)


# --------------------------------------------------------------------------- requests


def _check_name(name: str) -> bytes:
    raw = name.encode("ascii", "replace")
    if not name.isascii() or not name.isidentifier() or len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"{name!r} is not an identifier of at most {MAX_NAME_BYTES} ASCII "
                         "characters")
    return raw


def encode_request(request: int, names: Sequence[str]) -> bytes:
    """The packet data field of a dump request; raises ``ValueError`` for a request the
    board would refuse as malformed or too many names."""
    if not 0 <= request < 1 << 16:
        raise ValueError(f"request id {request} is outside 0 .. 65535")
    if not 1 <= len(names) <= MAX_NAMES:
        raise ValueError(f"a dump request names 1 to {MAX_NAMES} values, not {len(names)}")
    raws = [_check_name(n) for n in names]
    return _REQUEST_HEAD.build(dict(request=request, count=len(raws))) + b"".join(
        bytes([len(r)]) + r for r in raws)


def decode_request(raw: bytes) -> DumpRequest:
    """Parse a dump request; raises ``RequestError`` (never anything else)."""
    if len(raw) < _REQUEST_HEAD.sizeof():
        raise RequestError(Refusal.MALFORMED, f"{len(raw)} bytes cannot hold a request header",
                           int.from_bytes(raw[:2], "big") if len(raw) >= 2 else 0)
    head = _REQUEST_HEAD.parse(raw)
    request, count = head.request, head.count
    if not 1 <= count <= MAX_NAMES:
        raise RequestError(Refusal.TOO_MANY_NAMES,
                           f"{count} names asked, 1 to {MAX_NAMES} allowed", request)
    names, at = [], _REQUEST_HEAD.sizeof()
    for i in range(count):
        if at >= len(raw):
            raise RequestError(Refusal.MALFORMED, f"name {i + 1} is missing", request)
        length = raw[at]
        name = raw[at + 1:at + 1 + length]
        if len(name) != length:
            raise RequestError(Refusal.MALFORMED, f"name {i + 1} is cut short", request)
        text = name.decode("ascii", "replace")
        if length > MAX_NAME_BYTES or not text.isascii() or not text.isidentifier():
            raise RequestError(Refusal.MALFORMED, f"name {i + 1} is not an identifier "
                               f"of at most {MAX_NAME_BYTES} ASCII characters", request)
        names.append(text)
        at += 1 + length
    if at != len(raw):
        raise RequestError(Refusal.MALFORMED, f"{len(raw) - at} bytes after the last name",
                           request)
    return DumpRequest(request, tuple(names))


# --------------------------------------------------------------------------- packets


def refusal_text(reason: Refusal, message: str) -> bytes:
    """The data of a refusal packet: ``REASON: message``, cut to MAX_REFUSAL_BYTES."""
    raw = f"{reason.value}: {message}".encode()[:MAX_REFUSAL_BYTES]
    return raw.decode("utf-8", "ignore").encode()


def build_packet(p: DumpPacket) -> dict[str, object]:
    """``p`` as the construct ``DUMP_PACKET`` builds it."""
    return dict(number=p.number, request=p.request, index=p.index, flags=p.flags,
                time_ms=p.time_ms, data=p.data)


def packet_of(parsed: cs.Container) -> DumpPacket:
    """A parsed ``DUMP_PACKET`` as a ``DumpPacket``."""
    return DumpPacket(parsed.number, parsed.request, parsed.index, parsed.flags,
                      parsed.time_ms, bytes(parsed.data))
