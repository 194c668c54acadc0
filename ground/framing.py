"""Ground framing: patch shares into CCSDS Space Packets (``spacepackets``) inside TC
transfer frames (``onboard/tc_frames.py``, the layout the satellite parses).

One share per packet, one packet per frame, so that one lost frame loses exactly one share.
The Space Packet sequence count (14 bits, per APID) and the frame sequence number (8 bits,
per virtual channel) run on across transfers; ``Counters`` carries them from one call to the
next, so framing stays a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spacepackets.ccsds.spacepacket import PacketType, SequenceFlags, SpacePacket, SpacePacketHeader

from ground.erasure import Encoded
from onboard.tc_frames import (
    FRAME_OVERHEAD_BYTES,
    PATCH_APID,
    PATCH_VCID,
    Segment,
    build_frame,
    build_segment_data,
)


@dataclass(frozen=True)
class Counters:
    """Sequence counters of the patch virtual channel and APID."""

    frame: int = 0
    packet: int = 0


@dataclass(frozen=True)
class Frame:
    """One TC transfer frame carrying share ``share`` of transfer ``transfer``."""

    transfer: int
    share: int
    raw: bytes


def frame_bytes(share_bytes: int) -> int:
    """Size on the link of a frame carrying a share of ``share_bytes``."""
    return share_bytes + FRAME_OVERHEAD_BYTES


def space_packet(data: bytes, sequence_count: int) -> bytes:
    """An unsegmented TC Space Packet on the patch APID, built by ``spacepackets``."""
    header = SpacePacketHeader(PacketType.TC, PATCH_APID, sequence_count % (1 << 14),
                               len(data) - 1, sec_header_flag=False,
                               seq_flags=SequenceFlags.UNSEGMENTED)
    return bytes(SpacePacket(header, None, data).pack())


def frames(encoded: Encoded, transfer: int, share_ids: Iterable[int], spacecraft_id: int,
           counters: Counters) -> tuple[list[Frame], Counters]:
    """Frames for the given shares of one transfer, and the counters after them."""
    ids = list(share_ids)
    shares = encoded.shares(ids)
    out = []
    c = counters
    for i in ids:
        seg = Segment(transfer, i, encoded.k, len(encoded.patch), encoded.crc, shares[i])
        packet = space_packet(build_segment_data(seg), c.packet)
        out.append(Frame(transfer, i, build_frame(packet, spacecraft_id, PATCH_VCID, c.frame)))
        c = Counters((c.frame + 1) % 256, (c.packet + 1) % (1 << 14))
    return out, c
