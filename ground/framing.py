"""Ground framing: patch shares into CCSDS Space Packets (``spacepackets``) inside
authenticated TC transfer frames (``onboard/link/tc_frames.py``, the layout the satellite parses).

One share per packet, one packet per frame, so that one lost frame loses exactly one share.
Every frame carries the SDLS-style security header and MAC of the link's security
association (``onboard/link/link_security.py``): 22 bytes a frame, counted in ``frame_bytes`` and
so in the planner's budget. The Space Packet sequence count (14 bits, per APID), the frame
sequence number (8 bits, per virtual channel) and the security sequence number (32 bits,
per security association, never reused: the satellite drops a number it has seen) run on
across transfers and campaigns; ``Counters`` carries them from one call to the next, so
framing stays a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacket, SpacePacketHeader

from ground.erasure import Encoded
from onboard.link.link_security import SecurityAssociation
from onboard.link.tc_frames import (
    FRAME_OVERHEAD_BYTES,
    PATCH_APID,
    PATCH_VCID,
    REQUEST_APID,
    Segment,
    build_frame,
    build_segment_data,
    patch_apid,
)


@dataclass(frozen=True)
class Counters:
    """Sequence counters of the patch virtual channel, APID and security association
    (``security``: the last security sequence number used, 0 for none)."""

    frame: int = 0
    packet: int = 0
    security: int = 0


@dataclass(frozen=True)
class Frame:
    """One TC transfer frame carrying share ``share`` of transfer ``transfer``."""

    transfer: int
    share: int
    raw: bytes


def frame_bytes(share_bytes: int) -> int:
    """Size on the link of a frame carrying a share of ``share_bytes``."""
    return share_bytes + FRAME_OVERHEAD_BYTES


def space_packet(data: bytes, sequence_count: int, apid: int = PATCH_APID) -> bytes:
    """An unsegmented TC Space Packet on ``apid`` (the patch APID), built by
    ``spacepackets``."""
    header = SpacePacketHeader(PacketType.TC, apid, sequence_count % (1 << 14),
                               len(data) - 1, sec_header_flag=False,
                               seq_flags=SequenceFlags.UNSEGMENTED)
    return bytes(SpacePacket(header, None, data).pack())


def frames(encoded: Encoded, transfer: int, share_ids: Iterable[int], spacecraft_id: int,
           counters: Counters, link: SecurityAssociation,
           application: int = 0) -> tuple[list[Frame], Counters]:
    """Frames for the given shares of one transfer, authenticated under ``link``, and the
    counters after them; ``application``: the number of the board application the patch
    addresses (0, the default one, on the patch APID of old; ``patch_apid``). Raises
    ``ValueError`` when the security sequence numbers run out (re-key: a new SPI)."""
    ids = list(share_ids)
    shares = encoded.shares(ids)
    out = []
    c = counters
    for i in ids:
        seg = Segment(transfer, i, encoded.k, len(encoded.patch), encoded.crc, shares[i])
        packet = space_packet(build_segment_data(seg), c.packet, patch_apid(application))
        out.append(Frame(transfer, i, build_frame(packet, spacecraft_id, link, c.security + 1,
                                                  PATCH_VCID, c.frame)))
        c = Counters((c.frame + 1) % 256, (c.packet + 1) % (1 << 14), c.security + 1)
    return out, c


def request_frame(request: bytes, spacecraft_id: int, counters: Counters,
                  link: SecurityAssociation) -> tuple[bytes, Counters]:
    """The frame of a dump request (``onboard.link.dump_format.encode_request``) on the
    request APID, authenticated under ``link``, and the counters after it. Raises
    ``ValueError`` when the security sequence numbers run out."""
    c = counters
    packet = space_packet(request, c.packet, REQUEST_APID)
    raw = build_frame(packet, spacecraft_id, link, c.security + 1, PATCH_VCID, c.frame)
    return raw, Counters((c.frame + 1) % 256, (c.packet + 1) % (1 << 14), c.security + 1)
