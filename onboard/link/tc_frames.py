"""Telecommand framing: the bytes of one uplinked patch segment, defined once for both sides.

A patch goes up as *segments* (erasure-coded shares, see ``onboard/link/erasure.py``). Each
segment travels in one CCSDS Space Packet, and each packet in one CCSDS TC Transfer Frame
(CCSDS 232.0-B), sent in bypass mode (Type-B): there is no acknowledgement during a pass, so
the frame sequence number is informative only and the receiver accepts frames in any order.
Every frame is authenticated in the manner of CCSDS SDLS (355.0-B, authentication only): a
security header after the primary header and a security trailer before the FECF::

    TC frame  = primary header (5) | security header (6) | Space Packet | MAC (16) | FECF (2)
    security  = SPI u16 | sequence number u32              (header)
    MAC       = HMAC-SHA256(link key, primary header | security header | Space Packet)[:16]
    packet    = primary header (6 bytes) | segment header (11 bytes) | share bytes
    segment   = transfer id u16 | share id u8 | k u8 | patch length u24 | patch CRC-32 u32

The FECF (CRC-16-CCITT) covers everything before it, MAC included. The SPI names the
security association (``onboard/link/link_security.py``: the key, the anti-replay window); the
sequence number increases by one with every frame the ground sends on the association.

The ground builds the Space Packet with the ``spacepackets`` library and the frame with this
module; the onboard receiver parses all layers here. ``tests/onboard/test_tc_frames.py``
proves that both sides agree byte for byte.

The application a patch addresses (several applications on one board,
``onboard/vm/board.py``) is carried by the packet's APID: the default application's
patches on ``PATCH_APID`` (0x150, every transfer made before applications existed), the
application numbered n (1 .. 15, in the order the board added them) on ``0x160 + n``
(``patch_apid``). The segment header, the frame and the MAC are unchanged; the APID is
authenticated with the rest of the packet.

The frame's spacecraft identifier has 10 bits: it is the mission's ``spacecraft_id`` modulo
1024 (``tc_spacecraft_id``). Errors are ``FrameError`` with the field and the byte offset;
a frame that is well formed but not authenticated raises ``AuthenticationError``.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, replace

import construct as cs

from onboard.bounded_decoding import crc16
from onboard.errors import OnboardError
from onboard.link.link_security import (
    MAC_BYTES,
    MAX_SEQUENCE,
    SECURITY_HEADER_BYTES,
    SECURITY_TRAILER_BYTES,
    SecurityAssociation,
    compute_mac,
    mac_ok,
)
from onboard.link.packet_definition import PacketDefinition, uint
from onboard.mission import MAX_APPLICATION

#: Largest TC transfer frame (the 10-bit frame length field counts octets minus one).
MAX_FRAME_BYTES = 1024
FRAME_HEADER_BYTES = 5
FECF_BYTES = 2
PACKET_HEADER_BYTES = 6
SEGMENT_HEADER_BYTES = 11
#: Bytes of one frame that are not share bytes.
FRAME_OVERHEAD_BYTES = (FRAME_HEADER_BYTES + SECURITY_HEADER_BYTES + PACKET_HEADER_BYTES
                        + SEGMENT_HEADER_BYTES + SECURITY_TRAILER_BYTES + FECF_BYTES)
#: Of which the frame security (SDLS header and trailer): 22 bytes.
SECURITY_OVERHEAD_BYTES = SECURITY_HEADER_BYTES + SECURITY_TRAILER_BYTES
#: Largest share that fits one frame.
MAX_SHARE_BYTES = MAX_FRAME_BYTES - FRAME_OVERHEAD_BYTES

#: Virtual channel and application process that carry patch segments.
PATCH_VCID = 1
PATCH_APID = 0x150
#: Application process of dump requests (``onboard/link/dump_format.py``), on the same
#: virtual channel and security association as the patches.
REQUEST_APID = 0x151
#: Patches for application n >= 1 of a board travel on APID APPLICATION_APID_BASE + n.
APPLICATION_APID_BASE = 0x160
#: Space Packet sequence flags: the packet is not part of a packet-level segmentation.
UNSEGMENTED = 0b11
MAX_PATCH_BYTES = (1 << 24) - 1

FRAME_HEADER = cs.BitStruct(
    "version" / cs.Const(0, cs.BitsInteger(2)),
    "bypass" / cs.Flag,
    "control" / cs.Flag,
    "spare" / cs.Const(0, cs.BitsInteger(2)),
    "spacecraft_id" / cs.BitsInteger(10),
    "vcid" / cs.BitsInteger(6),
    "length_minus_one" / cs.BitsInteger(10),
    "sequence" / cs.BitsInteger(8),
)

PACKET_HEADER = cs.BitStruct(
    "version" / cs.Const(0, cs.BitsInteger(3)),
    "telecommand" / cs.Flag,
    "secondary_header" / cs.Flag,
    "apid" / cs.BitsInteger(11),
    "sequence_flags" / cs.BitsInteger(2),
    "sequence_count" / cs.BitsInteger(14),
    "data_length_minus_one" / cs.BitsInteger(16),
)

SECURITY_HEADER = cs.Struct(
    "spi" / cs.Int16ub,
    "sequence" / cs.Int32ub,
)

#: The segment header (the share bytes follow it to the end of the packet).
PATCH_SEGMENT = PacketDefinition("PatchSegment", PATCH_APID, "one share of a patch transfer", (
    uint("transfer", 16, "transfer id"),
    uint("share", 8, "share id (0 .. k-1: the patch's own bytes; k and up: parity)"),
    uint("k", 8, "shares needed to rebuild the patch", lo=1, hi=255),
    uint("patch_length", 24, "length of the whole patch", "bytes"),
    uint("patch_crc", 32, "CRC-32 of the whole patch"),
), tail="share_bytes")
SEGMENT_HEADER = PATCH_SEGMENT.struct


class FrameError(OnboardError):
    """Bytes that are not a well-formed patch segment frame; names the field and offset."""

    def __init__(self, message: str, field: str, offset: int) -> None:
        super().__init__("bad-frame", message, field=field, offset=offset)

    def __str__(self) -> str:
        return f"{self.field} at byte {self.offset}: {self.message}"


class AuthenticationError(FrameError):
    """A well-formed frame that is not authenticated by the security association (unknown
    SPI, or a MAC that does not match: forged, or sent under another key)."""


def tc_spacecraft_id(spacecraft_id: int) -> int:
    """The 10-bit spacecraft identifier of the TC frame header for a mission's id."""
    return spacecraft_id % 1024


def patch_apid(application: int) -> int:
    """The APID that carries patches for the board's application number ``application``
    (0: the default application, on the patch APID of old)."""
    if not 0 <= application <= MAX_APPLICATION:
        raise ValueError(f"application number {application} is outside 0 .. "
                         f"{MAX_APPLICATION}")
    return PATCH_APID if application == 0 else APPLICATION_APID_BASE + application


def patch_segment(application: int) -> PacketDefinition:
    """The patch segment telecommand of the board's application number ``application``:
    ``PATCH_SEGMENT`` on that application's APID (``patch_apid``), for a mission control
    system's command database (``ground/xtce.py``); the bytes are the same."""
    if application == 0:
        return PATCH_SEGMENT
    return replace(PATCH_SEGMENT, name=f"PatchSegment_app{application}",
                   apid=patch_apid(application),
                   doc=f"one share of a patch transfer for application {application}")


def application_of(apid: int) -> int | None:
    """The application number whose patches travel on ``apid``; None for another APID."""
    if apid == PATCH_APID:
        return 0
    n = apid - APPLICATION_APID_BASE
    return n if 1 <= n <= MAX_APPLICATION else None


def patch_crc(data: bytes) -> int:
    """The end-to-end check of a reassembled patch carried in every segment header."""
    return binascii.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class Segment:
    """One share of one patch transfer, as carried in a segment header plus its bytes."""

    transfer: int
    share: int
    k: int
    patch_length: int
    patch_crc: int
    data: bytes
    application: int = 0  # the board application it addresses (0: the default one)


@dataclass(frozen=True)
class TcFrame:
    """A parsed, authenticated TC transfer frame: header fields, the security header's
    sequence number, and the frame data field (the Space Packet)."""

    spacecraft_id: int
    vcid: int
    sequence: int
    bypass: bool
    spi: int
    security_sequence: int
    data: bytes


@dataclass(frozen=True)
class SpacePacket:
    """A parsed Space Packet: header fields and the packet data field."""

    apid: int
    telecommand: bool
    sequence_count: int
    data: bytes


# --------------------------------------------------------------------------- build


def build_frame(data: bytes, spacecraft_id: int, link: SecurityAssociation,
                security_sequence: int, vcid: int = PATCH_VCID, sequence: int = 0) -> bytes:
    """A Type-B (bypass) TC transfer frame around ``data``, authenticated under ``link``
    with sequence number ``security_sequence`` (1 .. MAX_SEQUENCE), with its FECF."""
    total = FRAME_HEADER_BYTES + SECURITY_OVERHEAD_BYTES + len(data) + FECF_BYTES
    if total > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {total} bytes exceeds {MAX_FRAME_BYTES}")
    if not 1 <= security_sequence <= MAX_SEQUENCE:
        raise ValueError(f"security sequence number {security_sequence} is outside 1 .. "
                         f"{MAX_SEQUENCE}: re-key the link (a new SPI)")
    head = FRAME_HEADER.build(dict(bypass=True, control=False,
                                   spacecraft_id=tc_spacecraft_id(spacecraft_id), vcid=vcid,
                                   length_minus_one=total - 1, sequence=sequence % 256))
    authenticated = head + SECURITY_HEADER.build(dict(spi=link.spi,
                                                      sequence=security_sequence)) + data
    body = authenticated + compute_mac(link.key, authenticated)
    return body + crc16(body).to_bytes(2, "big")


def build_segment_data(seg: Segment) -> bytes:
    """The packet data field of a segment: segment header then share bytes."""
    return SEGMENT_HEADER.build(dict(transfer=seg.transfer, share=seg.share, k=seg.k,
                                     patch_length=seg.patch_length,
                                     patch_crc=seg.patch_crc)) + seg.data


def build_packet(data: bytes, sequence_count: int, apid: int = PATCH_APID) -> bytes:
    """An unsegmented TC Space Packet without secondary header (the onboard reference
    encoding; the ground builds the same bytes with ``spacepackets``)."""
    if not data:
        raise ValueError("a Space Packet carries at least one data octet")
    return PACKET_HEADER.build(dict(telecommand=True, secondary_header=False, apid=apid,
                                    sequence_flags=UNSEGMENTED,
                                    sequence_count=sequence_count % (1 << 14),
                                    data_length_minus_one=len(data) - 1)) + data


# --------------------------------------------------------------------------- parse


def parse_frame(raw: bytes, spacecraft_id: int, link: SecurityAssociation) -> TcFrame:
    """Check one TC transfer frame of the patch channel and authenticate it under ``link``;
    raises ``FrameError`` (``AuthenticationError`` for a frame that is well formed but not
    authenticated). Anti-replay is the receiver's: it holds the window."""
    least = FRAME_HEADER_BYTES + SECURITY_OVERHEAD_BYTES + FECF_BYTES
    if len(raw) < least:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than its headers, MAC and "
                         "FECF", "frame", 0)
    body, fecf = raw[:-FECF_BYTES], int.from_bytes(raw[-FECF_BYTES:], "big")
    if crc16(body) != fecf:
        raise FrameError("frame error control does not match (corrupted frame)", "FECF",
                         len(raw) - FECF_BYTES)
    try:
        h = FRAME_HEADER.parse(raw[:FRAME_HEADER_BYTES])
    except cs.ConstructError:
        raise FrameError("transfer frame version or spare bits are not 0", "frame header",
                         0) from None
    if h.length_minus_one + 1 != len(raw):
        raise FrameError(f"frame length field says {h.length_minus_one + 1} bytes, "
                         f"the frame has {len(raw)}", "frame length", 2)
    if h.spacecraft_id != tc_spacecraft_id(spacecraft_id):
        raise FrameError(f"spacecraft id {h.spacecraft_id} is not ours "
                         f"({tc_spacecraft_id(spacecraft_id)})", "spacecraft id", 0)
    if h.vcid != PATCH_VCID:
        raise FrameError(f"virtual channel {h.vcid} does not carry patches "
                         f"(expected {PATCH_VCID})", "virtual channel id", 2)
    sec = SECURITY_HEADER.parse(raw[FRAME_HEADER_BYTES:FRAME_HEADER_BYTES
                                    + SECURITY_HEADER_BYTES])
    if sec.spi != link.spi:
        raise AuthenticationError(f"SPI {sec.spi} names no security association of this "
                                  f"channel (expected {link.spi})", "security header SPI",
                                  FRAME_HEADER_BYTES)
    mac_at = len(body) - MAC_BYTES
    if not mac_ok(link.key, bytes(body[:mac_at]), bytes(body[mac_at:])):
        raise AuthenticationError("the MAC does not authenticate the frame (forged, or sent "
                                  "under another link key)", "security trailer MAC", mac_at)
    return TcFrame(h.spacecraft_id, h.vcid, h.sequence, h.bypass, sec.spi, sec.sequence,
                   bytes(raw[FRAME_HEADER_BYTES + SECURITY_HEADER_BYTES:mac_at]))


def parse_packet(raw: bytes, base: int = 0) -> SpacePacket:
    """Split one Space Packet that fills ``raw`` exactly; ``base`` offsets error positions."""
    if len(raw) < PACKET_HEADER_BYTES + 1:
        raise FrameError(f"{len(raw)} bytes cannot hold a Space Packet", "space packet", base)
    try:
        h = PACKET_HEADER.parse(raw[:PACKET_HEADER_BYTES])
    except cs.ConstructError:
        raise FrameError("packet version is not 0", "packet header", base) from None
    if h.data_length_minus_one + 1 != len(raw) - PACKET_HEADER_BYTES:
        raise FrameError(f"packet data length field says {h.data_length_minus_one + 1} bytes, "
                         f"the frame carries {len(raw) - PACKET_HEADER_BYTES}",
                         "packet data length", base + 4)
    return SpacePacket(h.apid, h.telecommand, h.sequence_count,
                       bytes(raw[PACKET_HEADER_BYTES:]))


def parse_segment(raw: bytes, base: int = 0, application: int = 0) -> Segment:
    """Split a packet data field into segment header and share bytes."""
    if len(raw) <= SEGMENT_HEADER_BYTES:
        raise FrameError(f"{len(raw)} bytes cannot hold a segment header and data",
                         "segment header", base)
    h = SEGMENT_HEADER.parse(raw[:SEGMENT_HEADER_BYTES])
    if h.k == 0:
        raise FrameError("k must be at least 1", "segment k", base + 3)
    if h.patch_length == 0 or h.patch_length > h.k * (len(raw) - SEGMENT_HEADER_BYTES):
        raise FrameError(f"patch length {h.patch_length} does not fit k = {h.k} shares of "
                         f"{len(raw) - SEGMENT_HEADER_BYTES} bytes", "segment patch length",
                         base + 4)
    return Segment(h.transfer, h.share, h.k, h.patch_length, h.patch_crc,
                   bytes(raw[SEGMENT_HEADER_BYTES:]), application)


def frame_packet(frame: TcFrame) -> SpacePacket:
    """The Space Packet an authenticated frame carries; raises ``FrameError``."""
    return parse_packet(frame.data, FRAME_HEADER_BYTES + SECURITY_HEADER_BYTES)


def frame_segment(frame: TcFrame) -> Segment:
    """The patch segment an authenticated frame carries; raises ``FrameError``."""
    base = FRAME_HEADER_BYTES + SECURITY_HEADER_BYTES
    packet = parse_packet(frame.data, base)
    application = application_of(packet.apid)
    if application is None or not packet.telecommand:
        raise FrameError(f"APID {packet.apid:#x} is not the patch APID {PATCH_APID:#x} "
                         f"nor an application's ({APPLICATION_APID_BASE + 1:#x} .. "
                         f"{APPLICATION_APID_BASE + MAX_APPLICATION:#x})", "packet APID", base)
    return parse_segment(packet.data, base + PACKET_HEADER_BYTES, application)


def read_segment(raw: bytes, spacecraft_id: int, link: SecurityAssociation) -> Segment:
    """Frame -> packet -> segment, with every check but anti-replay (which needs the
    receiver's window); raises ``FrameError``."""
    return frame_segment(parse_frame(raw, spacecraft_id, link))
