"""The wire format of an active packet: a fixed header, its data words and its program.

::

    magic "AP" | version 1 | kind | id u32 | source u8 | dest u8 | ttl u8 | 0 u8 |
    rb u32 | 8 data words u32 | code length u16 | code (an encoded VVM image)

All integers big-endian. ``kind`` 0: evaluate at ``dest`` only, routed there hop by hop
(PLAN's OnRemote); 1: evaluate at the neighbour ``dest`` (OnNeighbor). ``rb`` is the
resource bound in VVM cycles (at most 1,000,000); ``id`` names the packet in traces.
Addresses are 0..254, data words 0..10^9: a packet outside these is malformed, so a
node's natives never answer outside the ranges the profile declares.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

MAGIC = b"AP"
VERSION = 1
WORDS = 8
REMOTE, NEIGHBOUR = 0, 1
_HEADER = struct.Struct(f">2sBBIBBBBI{WORDS}IH")
HEADER_BYTES = _HEADER.size
MAX_WORD = 1_000_000_000
MAX_RB = 1_000_000  # cycles (the range of `getrb` in the profile)
MAX_ADDRESS = 254


class PacketError(ValueError):
    """Bytes that are not an active packet: ``field`` and ``offset`` say where."""

    def __init__(self, message: str, field: str, offset: int) -> None:
        super().__init__(f"{message} (field {field}, offset {offset})")
        self.field = field
        self.offset = offset


@dataclass(frozen=True)
class Packet:
    """One active packet."""

    kind: int
    id: int
    source: int
    dest: int
    ttl: int
    rb: int
    words: tuple[int, ...]
    code: bytes

    def encode(self) -> bytes:
        """The packet's bytes on the wire."""
        return _HEADER.pack(MAGIC, VERSION, self.kind, self.id, self.source, self.dest,
                            self.ttl, 0, self.rb, *self.words, len(self.code)) + self.code

    def but(self, **changes: object) -> Packet:
        """This packet with ``changes`` (dataclass fields)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return HEADER_BYTES + len(self.code)


def decode_packet(data: bytes) -> Packet:
    """Read a packet; raise ``PacketError`` for anything malformed."""
    if len(data) < HEADER_BYTES:
        raise PacketError(f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte header",
                          "header", len(data))
    magic, version, kind, pid, source, dest, ttl, _, rb, *rest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError("not an active packet", "magic", 0)
    if version != VERSION:
        raise PacketError(f"version {version} is not {VERSION}", "version", 2)
    if kind not in (REMOTE, NEIGHBOUR):
        raise PacketError(f"kind {kind} is neither 0 nor 1", "kind", 3)
    for name, value, offset in (("source", source, 8), ("dest", dest, 9)):
        if value > MAX_ADDRESS:
            raise PacketError(f"{name} {value} is not a node address (0..{MAX_ADDRESS})",
                              name, offset)
    if rb > MAX_RB:
        raise PacketError(f"resource bound {rb} is above {MAX_RB} cycles", "rb", 12)
    words, length = tuple(rest[:WORDS]), rest[WORDS]
    for k, w in enumerate(words):
        if w > MAX_WORD:
            raise PacketError(f"data word {k} is {w}, above {MAX_WORD}", f"words[{k}]",
                              16 + 4 * k)
    if len(data) != HEADER_BYTES + length:
        raise PacketError(f"code length {length} disagrees with the packet's "
                          f"{len(data) - HEADER_BYTES} bytes after the header", "code length",
                          HEADER_BYTES - 2)
    return Packet(kind, pid, source, dest, ttl, rb, words, bytes(data[HEADER_BYTES:]))
