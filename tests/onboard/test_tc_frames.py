"""TC frames, Space Packets and segment headers: the ground (spacepackets + our frame) and the
onboard parser (construct) agree byte for byte, and every malformed frame is refused with
the field and offset."""

from __future__ import annotations

import fastcrc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground import framing
from ground.erasure import encode
from onboard.tc_frames import (
    FRAME_OVERHEAD_BYTES,
    MAX_FRAME_BYTES,
    MAX_SHARE_BYTES,
    PATCH_APID,
    FrameError,
    Segment,
    build_frame,
    build_packet,
    build_segment_data,
    crc16_ccitt,
    parse_frame,
    parse_packet,
    read_segment,
    tc_spacecraft_id,
)

SCID = 29678
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_crc16_is_ccsds_crc16_ccitt() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    assert crc16_ccitt(b"\x20\x00\x01") == fastcrc.crc16.ibm_3740(b"\x20\x00\x01")


@FAST
@given(st.binary(min_size=1, max_size=1000), st.integers(0, (1 << 14) - 1))
def test_spacepackets_and_onboard_packet_encodings_agree(data: bytes, count: int) -> None:
    ours = build_packet(data, count)
    assert framing.space_packet(data, count) == ours
    parsed = parse_packet(ours)
    assert (parsed.apid, parsed.sequence_count, parsed.data, parsed.telecommand) == (
        PATCH_APID, count, data, True)


def test_frame_primary_header_layout() -> None:
    frame = build_frame(b"\xAA\xBB", SCID, vcid=1, sequence=7)
    scid = tc_spacecraft_id(SCID)
    assert scid == 1006
    # version 00, bypass 1, control 0, spare 00, then the 10-bit spacecraft id
    assert frame[0] == 0x20 | (scid >> 8)
    assert frame[1] == scid & 0xFF
    # 6-bit VCID then the 10-bit frame length (total octets - 1 = 8)
    assert int.from_bytes(frame[2:4], "big") == (1 << 10) | (len(frame) - 1)
    assert frame[4] == 7
    assert frame[5:7] == b"\xAA\xBB"
    assert int.from_bytes(frame[-2:], "big") == fastcrc.crc16.ibm_3740(frame[:-2])


@FAST
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 200), st.integers(0, 65535),
       st.integers(0, 300), st.integers(0, 40000))
def test_ground_frames_parse_onboard_to_the_same_segment(patch: bytes, share: int,
                                                         transfer: int, frame_seq: int,
                                                         packet_seq: int) -> None:
    enc = encode(patch, share)
    ids = [0, enc.k, 255]
    frames, after = framing.frames(enc, transfer, ids, SCID,
                                   framing.Counters(frame_seq % 256, packet_seq % (1 << 14)))
    assert after == framing.Counters((frame_seq + 3) % 256, (packet_seq + 3) % (1 << 14))
    shares = enc.shares(ids)
    for f, i in zip(frames, ids, strict=True):
        seg = read_segment(f.raw, SCID)
        assert seg == Segment(transfer, i, enc.k, len(patch), enc.crc, shares[i])
        assert len(f.raw) == framing.frame_bytes(enc.share_bytes)
        assert len(f.raw) <= MAX_FRAME_BYTES
        # the onboard reference encoder builds exactly the ground's bytes
        frame = parse_frame(f.raw, SCID)
        packet = parse_packet(frame.data)
        assert build_frame(build_packet(build_segment_data(seg), packet.sequence_count), SCID,
                           1, frame.sequence) == f.raw


def _frame(data: bytes = b"x" * 40) -> bytes:
    enc = encode(data, 16)
    return framing.frames(enc, 3, [0], SCID, framing.Counters())[0][0].raw


@FAST
@given(st.data())
def test_every_single_bit_flip_is_refused(data: st.DataObject) -> None:
    raw = bytearray(_frame())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError) as info:
        read_segment(bytes(raw), SCID)
    assert info.value.field == "FECF"


def _refit(raw: bytes) -> bytes:
    """Recompute the FECF after an edit, so the check under test is the one that fires."""
    return raw[:-2] + crc16_ccitt(raw[:-2]).to_bytes(2, "big")


@pytest.mark.parametrize(("edit", "field", "offset"), [
    (lambda b: b[:3], "frame", 0),
    (lambda b: _refit(b[:-3] + b[-2:]), "frame length", 2),
    (lambda b: _refit(bytes([b[0] | 0x80]) + b[1:]), "frame header", 0),
    (lambda b: _refit(bytes([b[0], b[1] ^ 1]) + b[2:]), "spacecraft id", 0),
    (lambda b: _refit(b[:2] + bytes([b[2] ^ 0x08]) + b[3:]), "virtual channel id", 2),
    (lambda b: _refit(b[:6] + bytes([b[6] ^ 0x01]) + b[7:]), "packet APID", 5),
    (lambda b: _refit(b[:9] + bytes([b[9] ^ 0x01]) + b[10:]), "packet data length", 9),
    (lambda b: _refit(b[:14] + b"\x00" + b[15:]), "segment k", 14),
    (lambda b: _refit(b[:15] + b"\xff\xff\xff" + b[18:]), "segment patch length", 15),
])
def test_malformed_frames_name_the_field_and_offset(edit, field: str, offset: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameError) as info:
        read_segment(edit(_frame()), SCID)
    assert (info.value.field, info.value.offset) == (field, offset)
    assert field in str(info.value) and f"byte {offset}" in str(info.value)


def test_share_sizes_fill_but_never_exceed_a_frame() -> None:
    assert FRAME_OVERHEAD_BYTES == 24
    assert framing.frame_bytes(MAX_SHARE_BYTES) == MAX_FRAME_BYTES
    with pytest.raises(ValueError):
        build_frame(bytes(MAX_FRAME_BYTES), SCID)
