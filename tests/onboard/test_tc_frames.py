"""TC frames, Space Packets and segment headers: the ground (spacepackets + our frame) and the
onboard parser (construct) agree byte for byte, every malformed frame is refused with the
field and offset, and every frame is authenticated (SDLS-style security header and MAC)."""

from __future__ import annotations

import hashlib
import hmac

import fastcrc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground import framing
from ground.erasure import encode
from onboard.bounded_decoding import crc16
from onboard.link.link_security import SecurityAssociation
from onboard.link.tc_frames import (
    FRAME_OVERHEAD_BYTES,
    MAX_FRAME_BYTES,
    MAX_SHARE_BYTES,
    PATCH_APID,
    SECURITY_OVERHEAD_BYTES,
    AuthenticationError,
    FrameError,
    Segment,
    build_frame,
    build_packet,
    build_segment_data,
    parse_frame,
    parse_packet,
    read_segment,
    tc_spacecraft_id,
)

SCID = 29678
LINK = SecurityAssociation(1, bytes(range(32)))
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_crc16_is_ccsds_crc16() -> None:
    assert crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value
    assert crc16(b"\x20\x00\x01") == fastcrc.crc16.ibm_3740(b"\x20\x00\x01")


@FAST
@given(st.binary(min_size=1, max_size=1000), st.integers(0, (1 << 14) - 1))
def test_spacepackets_and_onboard_packet_encodings_agree(data: bytes, count: int) -> None:
    ours = build_packet(data, count)
    assert framing.space_packet(data, count) == ours
    parsed = parse_packet(ours)
    assert (parsed.apid, parsed.sequence_count, parsed.data, parsed.telecommand) == (
        PATCH_APID, count, data, True)


def test_frame_layout_with_security_header_and_trailer() -> None:
    frame = build_frame(b"\xAA\xBB", SCID, LINK, 0x01020304, vcid=1, sequence=7)
    scid = tc_spacecraft_id(SCID)
    assert scid == 1006
    assert len(frame) == 5 + 6 + 2 + 16 + 2
    # version 00, bypass 1, control 0, spare 00, then the 10-bit spacecraft id
    assert frame[0] == 0x20 | (scid >> 8)
    assert frame[1] == scid & 0xFF
    # 6-bit VCID then the 10-bit frame length (total octets - 1)
    assert int.from_bytes(frame[2:4], "big") == (1 << 10) | (len(frame) - 1)
    assert frame[4] == 7
    # security header: SPI u16, sequence number u32
    assert frame[5:7] == b"\x00\x01" and frame[7:11] == b"\x01\x02\x03\x04"
    assert frame[11:13] == b"\xAA\xBB"
    # security trailer: HMAC-SHA256 over header, security header and data, first 16 bytes
    assert frame[13:29] == hmac.new(LINK.key, frame[:13], hashlib.sha256).digest()[:16]
    assert int.from_bytes(frame[-2:], "big") == fastcrc.crc16.ibm_3740(frame[:-2])
    parsed = parse_frame(frame, SCID, LINK)
    assert (parsed.spi, parsed.security_sequence, parsed.data) == (1, 0x01020304, b"\xAA\xBB")


@FAST
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 200), st.integers(0, 65535),
       st.integers(0, 300), st.integers(0, 40000), st.integers(0, 1 << 31))
def test_ground_frames_parse_onboard_to_the_same_segment(patch: bytes, share: int,
                                                         transfer: int, frame_seq: int,
                                                         packet_seq: int, sec: int) -> None:
    enc = encode(patch, share)
    ids = [0, enc.k, 255]
    frames, after = framing.frames(enc, transfer, ids, SCID,
                                   framing.Counters(frame_seq % 256, packet_seq % (1 << 14),
                                                    sec), LINK)
    assert after == framing.Counters((frame_seq + 3) % 256, (packet_seq + 3) % (1 << 14),
                                     sec + 3)
    shares = enc.shares(ids)
    for n, (f, i) in enumerate(zip(frames, ids, strict=True)):
        seg = read_segment(f.raw, SCID, LINK)
        assert seg == Segment(transfer, i, enc.k, len(patch), enc.crc, shares[i])
        assert len(f.raw) == framing.frame_bytes(enc.share_bytes)
        assert len(f.raw) <= MAX_FRAME_BYTES
        # the onboard reference encoder builds exactly the ground's bytes
        frame = parse_frame(f.raw, SCID, LINK)
        assert frame.security_sequence == sec + 1 + n  # one number per frame, never reused
        packet = parse_packet(frame.data)
        assert build_frame(build_packet(build_segment_data(seg), packet.sequence_count), SCID,
                           LINK, frame.security_sequence, 1, frame.sequence) == f.raw


def _frame(data: bytes = b"x" * 40) -> bytes:
    enc = encode(data, 16)
    return framing.frames(enc, 3, [0], SCID, framing.Counters(), LINK)[0][0].raw


@FAST
@given(st.data())
def test_every_single_bit_flip_is_refused(data: st.DataObject) -> None:
    raw = bytearray(_frame())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError) as info:
        read_segment(bytes(raw), SCID, LINK)
    assert info.value.field == "FECF"


def _refit(raw: bytes) -> bytes:
    """Recompute the MAC and the FECF after an edit (as a ground bug would), so the check
    under test is the one that fires."""
    authenticated = raw[:-18]
    mac = hmac.new(LINK.key, authenticated, hashlib.sha256).digest()[:16]
    return authenticated + mac + crc16(authenticated + mac).to_bytes(2, "big")


@pytest.mark.parametrize(("edit", "field", "offset"), [
    (lambda b: b[:3], "frame", 0),
    (lambda b: _refit(b[:-3] + b[-2:]), "frame length", 2),
    (lambda b: _refit(bytes([b[0] | 0x80]) + b[1:]), "frame header", 0),
    (lambda b: _refit(bytes([b[0], b[1] ^ 1]) + b[2:]), "spacecraft id", 0),
    (lambda b: _refit(b[:2] + bytes([b[2] ^ 0x08]) + b[3:]), "virtual channel id", 2),
    (lambda b: _refit(b[:12] + bytes([b[12] ^ 0x01]) + b[13:]), "packet APID", 11),
    (lambda b: _refit(b[:15] + bytes([b[15] ^ 0x01]) + b[16:]), "packet data length", 15),
    (lambda b: _refit(b[:20] + b"\x00" + b[21:]), "segment k", 20),
    (lambda b: _refit(b[:21] + b"\xff\xff\xff" + b[24:]), "segment patch length", 21),
])
def test_malformed_frames_name_the_field_and_offset(edit, field: str, offset: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FrameError) as info:
        read_segment(edit(_frame()), SCID, LINK)
    assert (info.value.field, info.value.offset) == (field, offset)
    assert field in str(info.value) and f"byte {offset}" in str(info.value)


def test_share_sizes_fill_but_never_exceed_a_frame() -> None:
    # 5 frame header + 6 security header + 6 packet header + 11 segment header + 16 MAC + 2
    assert FRAME_OVERHEAD_BYTES == 46 and SECURITY_OVERHEAD_BYTES == 22
    assert framing.frame_bytes(MAX_SHARE_BYTES) == MAX_FRAME_BYTES
    with pytest.raises(ValueError):
        build_frame(bytes(MAX_FRAME_BYTES), SCID, LINK, 1)
    with pytest.raises(ValueError, match="re-key"):
        build_frame(b"x", SCID, LINK, 1 << 32)


def test_frames_under_another_key_or_spi_are_unauthenticated() -> None:
    raw = _frame()
    other_key = SecurityAssociation(1, bytes(32))
    with pytest.raises(AuthenticationError) as info:
        read_segment(raw, SCID, other_key)
    assert (info.value.field, info.value.offset) == ("security trailer MAC", len(raw) - 18)
    with pytest.raises(AuthenticationError) as info:
        read_segment(raw, SCID, SecurityAssociation(2, LINK.key))
    assert (info.value.field, info.value.offset) == ("security header SPI", 5)
    # a forger who recomputes the FECF after changing a share byte still fails the MAC
    forged = bytearray(raw)
    forged[30] ^= 0xFF
    body = bytes(forged[:-2])
    with pytest.raises(AuthenticationError):
        read_segment(body + crc16(body).to_bytes(2, "big"), SCID, LINK)
