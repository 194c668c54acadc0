"""The patch format: header, frames, bit-packing, codecs, tag, and precise errors."""

from __future__ import annotations

import zlib

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import TEST_KEY

from onboard.bounded_decoding import VarSInt
from onboard.patching.patch_format import (
    BODIES,
    CRC_BYTES,
    HASH_BYTES,
    HEADER_FIELDS,
    TAG_BYTES,
    Claims,
    Codec,
    Flag,
    FormatError,
    Header,
    Reason,
    SectionType,
    VarUInt,
    assemble,
    build_body,
    build_frame,
    build_header,
    check_order,
    compress,
    compute_tag,
    crc16,
    development_key,
    expand,
    expand_chunk,
    make_chunk,
    pack_uniform,
    parse_body,
    parse_frames,
    parse_header,
    retag,
    tag_ok,
    width,
)

FAST = settings(max_examples=150, deadline=None)
U64 = st.integers(min_value=0, max_value=2**64 - 1)


def header(**kw: object) -> Header:
    base = dict(flags=Flag.FULL, mission_id=1, spacecraft_id=29678, seq=7, version=4,
                base_hash=bytes(HASH_BYTES), target_hash=bytes(range(HASH_BYTES)),
                claims=Claims(5000, 25, 151, 120020))
    base.update(kw)
    return Header(**base)  # type: ignore[arg-type]


def test_crc_is_ccitt_false() -> None:
    # The catalogued check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == 0x29B1


@FAST
@given(flags=st.sampled_from([Flag(0), Flag.FULL, Flag.UNVERIFIED, Flag.FULL | Flag.UNVERIFIED]),
       mission=U64, sc=U64, seq=U64, version=U64, base=st.binary(min_size=8, max_size=8),
       target=st.binary(min_size=8, max_size=8), claims=st.tuples(U64, U64, U64, U64))
def test_header_round_trip(flags: Flag, mission: int, sc: int, seq: int, version: int,
                           base: bytes, target: bytes,
                           claims: tuple[int, int, int, int]) -> None:
    h = Header(flags, mission, sc, seq, version, base, target, Claims(*claims))
    data = build_header(h)
    parsed = parse_header(data)
    assert parsed.header == h and parsed.crc_ok and parsed.size == len(data)
    assert list(parsed.offsets) == list(HEADER_FIELDS)
    assert parsed.offsets["magic"] == 0 and parsed.offsets["crc"] == len(data) - CRC_BYTES


def test_header_size_for_a_typical_patch() -> None:
    # 2 magic, 1 format, 1 flags, 1 mission, 3 spacecraft, 1 seq, 1 version, 8 + 8 hashes,
    # claims 5000 (2), 25 (1), 151 (2), 120020 (3), 2 CRC.
    assert len(build_header(header())) == 36


def test_every_truncation_of_a_header_says_truncated_with_the_offset() -> None:
    data = build_header(header())
    for n in range(len(data)):
        with pytest.raises(FormatError) as info:
            parse_header(data[:n])
        assert info.value.reason is Reason.TRUNCATED
        assert info.value.offset is not None and info.value.offset <= n


@pytest.mark.parametrize("index, value, reason, field", [
    (0, ord("X"), Reason.BAD_MAGIC, "magic"),
    (2, 3, Reason.BAD_VERSION, "format"),
    (3, 0x84, Reason.BAD_HEADER, "flags"),
])
def test_header_field_errors(index: int, value: int, reason: Reason, field: str) -> None:
    data = bytearray(build_header(header()))
    data[index] = value
    with pytest.raises(FormatError) as info:
        parse_header(bytes(data))
    assert (info.value.reason, info.value.field, info.value.offset) == (reason, field, index)


def test_header_crc_is_reported() -> None:
    data = bytearray(build_header(header()))
    data[9] ^= 1  # the target version
    assert not parse_header(bytes(data)).crc_ok


def test_overlong_varint_is_a_header_error_at_its_field() -> None:
    data = build_header(header())
    at = parse_header(data).offsets["seq"]
    bad = data[:at] + b"\x80" * 11 + data[at + 1:]
    with pytest.raises(FormatError) as info:
        parse_header(bad)
    assert (info.value.reason, info.value.field, info.value.offset) == \
        (Reason.BAD_HEADER, "seq", at)


@FAST
@given(st.one_of(U64, st.integers(min_value=-(2**62), max_value=2**62)))
def test_varints_round_trip(n: int) -> None:
    if n >= 0:
        assert VarUInt.parse(VarUInt.build(n)) == n
    if abs(n) < 2**62:
        assert VarSInt.parse(VarSInt.build(n)) == n


def test_varints_are_bounded() -> None:
    with pytest.raises(cs.ConstructError):
        VarUInt.parse(b"\xff" * 10 + b"\x01")
    with pytest.raises(cs.ConstructError):
        VarUInt.parse(b"\xff" * 9 + b"\x7f")  # 2**64 - 1 < this < 2**70
    with pytest.raises(cs.ConstructError):
        VarUInt.build(-1)


def test_width_is_exactly_what_the_range_needs() -> None:
    assert width(0, 2047) == 11
    assert width(0, 2048) == 12
    assert width(5, 5) == 0
    assert width(-4, 3) == 3
    assert width(-(2**31), 2**31 - 1) == 32


@st.composite
def ranged_values(draw: st.DrawFn) -> tuple[list[int], list[tuple[int, int]]]:
    ranges = draw(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1),
                                     st.integers(0, 2**20)), max_size=20))
    ranges = [(lo, min(lo + span, 2**31 - 1)) for lo, span in ranges]
    values = [draw(st.integers(lo, hi)) for lo, hi in ranges]
    return values, ranges


@FAST
@given(ranged_values())
def test_params_bit_packing_round_trips_at_the_exact_size(
        case: tuple[list[int], list[tuple[int, int]]]) -> None:
    values, ranges = case
    body = {"indices": list(range(len(values))), "packed": values}
    data = build_body(SectionType.PARAMS, body, global_ranges=ranges)
    bits = sum(width(lo, hi) for lo, hi in ranges)
    index_bytes = len(VarUInt.build(len(values))) + sum(len(VarUInt.build(i))
                                                       for i in range(len(values)))
    assert len(data) == index_bytes + (bits + 7) // 8
    frame = parse_frames(build_frame(SectionType.PARAMS, data), 0, 10**6)[0]
    parsed = parse_body(SectionType.PARAMS, data, frame, global_ranges=ranges)
    assert list(parsed.packed) == values


@FAST
@given(st.integers(0, 2**16), st.integers(0, 30), st.data())
def test_table_chunks_round_trip(lo: int, bits: int, data: st.DataObject) -> None:
    hi = lo + (1 << bits) - 1
    values = data.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=50))
    chunks = [make_chunk(values, False), make_chunk([values[0]] * 3, True)]
    entry = {"index": 0, "name": "t", "writable": False, "lo": lo, "hi": hi,
             "length": len(values) + 3, "chunks": chunks}
    raw = build_body(SectionType.ARRAYS, [entry])
    frame = parse_frames(build_frame(SectionType.ARRAYS, raw), 0, 10**6)[0]
    (parsed,) = parse_body(SectionType.ARRAYS, raw, frame)
    assert [v for c in parsed.chunks for v in expand_chunk(c)] == values + [values[0]] * 3
    assert len(pack_uniform(values, lo, hi)) == (len(values) * bits + 7) // 8


def test_nonzero_padding_and_out_of_range_values_are_refused() -> None:
    ranges = [(0, 2)]  # 2 bits, values 0..2
    good = build_body(SectionType.PARAMS, {"indices": [0], "packed": [2]}, global_ranges=ranges)
    frame = parse_frames(build_frame(SectionType.PARAMS, good), 0, 100)[0]
    for last, what in ((good[-1] | 0x01, "padding"), (0xC0, "outside")):
        bad = good[:-1] + bytes([last])
        with pytest.raises(FormatError) as info:
            parse_body(SectionType.PARAMS, bad, frame, global_ranges=ranges)
        assert info.value.reason is Reason.BAD_SECTION and what in info.value.message


def test_params_index_outside_the_target_is_refused() -> None:
    raw = build_body(SectionType.PARAMS, {"indices": [3], "packed": [1]},
                     global_ranges=[(0, 1)] * 4)
    frame = parse_frames(build_frame(SectionType.PARAMS, raw), 0, 100)[0]
    with pytest.raises(FormatError) as info:
        parse_body(SectionType.PARAMS, raw, frame, global_ranges=[(0, 1)])
    assert info.value.reason is Reason.BAD_SECTION and info.value.offset == frame.payload_offset + 2


def test_a_huge_run_is_refused_before_allocation() -> None:
    raw = VarUInt.build(1) + VarUInt.build(2**40 << 1 | 1) + b"\x00"
    entry = b"\x01\x00\x01t\x00\x00\x00" + VarUInt.build(2**40)  # index, name, flags, lo, hi
    frame = parse_frames(build_frame(SectionType.ARRAYS, entry + raw), 0, 100)[0]
    with pytest.raises(FormatError) as info:
        parse_body(SectionType.ARRAYS, entry + raw, frame)
    # the declared length is drawn from the budget (here the format's) before any chunk
    assert info.value.reason is Reason.CLAIM_MISMATCH and "exceed" in info.value.message
    assert info.value.field == "arrays.length"


def test_trailing_bytes_in_a_payload_are_refused() -> None:
    raw = build_body(SectionType.ENTRIES, {"on_apply": 3}) + b"\x00"
    frame = parse_frames(build_frame(SectionType.ENTRIES, raw), 0, 100)[0]
    with pytest.raises(FormatError) as info:
        parse_body(SectionType.ENTRIES, raw, frame)
    assert info.value.reason is Reason.BAD_SECTION and info.value.offset == 3


def test_every_section_type_has_a_body() -> None:
    assert set(BODIES) == set(SectionType)


def test_frames_split_and_check_crcs() -> None:
    a = build_frame(SectionType.IDENTITY, build_body(SectionType.IDENTITY, {"name": "x"}))
    b = build_frame(SectionType.ENTRIES, build_body(SectionType.ENTRIES, {"on_apply": 0}))
    frames = parse_frames(a + b, 0, len(a + b))
    assert [f.offset for f in frames] == [0, len(a)]
    assert [t for t, _ in check_order(frames)] == [SectionType.IDENTITY, SectionType.ENTRIES]
    damaged = bytearray(a + b)
    damaged[len(a) + 2] ^= 0x10
    with pytest.raises(FormatError) as info:
        parse_frames(bytes(damaged), 0, len(damaged))
    assert info.value.reason is Reason.SECTION_CRC
    with pytest.raises(FormatError) as info:
        parse_frames(a + b, 0, len(a + b) - 1)
    assert info.value.reason is Reason.TRUNCATED


@pytest.mark.parametrize("kinds, message", [
    ([SectionType.ENTRIES, SectionType.IDENTITY], "type order"),
    ([SectionType.CODE, SectionType.CODE], "type order"),
    ([0x1F], "unknown section type"),
    ([0x80 | SectionType.CODE], "unknown codec"),  # codecs 0-3 exist: bit 7 is none
])
def test_section_order_and_kinds(kinds: list[int], message: str) -> None:
    raw = b""
    for k in kinds:
        body = build_frame(SectionType.ENTRIES, b"\x00")
        body = bytes([k]) + body[1:-2]
        raw += body + crc16(body).to_bytes(2, "big")
    with pytest.raises(FormatError) as info:
        check_order(parse_frames(raw, 0, len(raw)))
    assert info.value.reason is Reason.BAD_SECTION and message in info.value.message


def test_vmlet_sections_may_repeat() -> None:
    raw = build_frame(SectionType.VMLET, b"a") + build_frame(SectionType.VMLET, b"b")
    assert len(check_order(parse_frames(raw, 0, len(raw)))) == 2


@pytest.mark.parametrize("codec", [Codec.DEFLATE, Codec.LZMA])
def test_codecs_round_trip_and_are_bounded(codec: Codec) -> None:
    payload = b"cosmic_filter " * 50
    raw = build_frame(SectionType.CODE, compress(payload, codec), codec)
    frame = parse_frames(raw, 0, len(raw))[0]
    assert expand(frame, codec) == payload
    with pytest.raises(FormatError) as info:
        expand(frame, codec, limit=100)
    assert info.value.reason is Reason.BAD_SECTION and "beyond" in info.value.message
    cut = build_frame(SectionType.CODE, compress(payload, codec)[:-3], codec)
    with pytest.raises(FormatError) as info:
        expand(parse_frames(cut, 0, len(cut))[0], codec)
    assert info.value.reason is Reason.BAD_SECTION


def test_a_deflate_bomb_stops_at_the_limit() -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(bytes(50_000_000)) + c.flush()
    raw = build_frame(SectionType.CODE, bomb, Codec.DEFLATE)
    with pytest.raises(FormatError):
        expand(parse_frames(raw, 0, len(raw))[0], Codec.DEFLATE)


def test_tag_authenticates_every_byte() -> None:
    patch = assemble(header(), [build_frame(SectionType.ENTRIES, b"\x00")], TEST_KEY)
    assert tag_ok(TEST_KEY, patch)
    assert patch[-TAG_BYTES:] == compute_tag(TEST_KEY, patch[:-TAG_BYTES])
    assert not tag_ok(bytes(32), patch)
    for i in range(len(patch)):
        flipped = bytearray(patch)
        flipped[i] ^= 0x01
        assert not tag_ok(TEST_KEY, bytes(flipped))


def test_retag_repairs_crcs_and_tag_of_a_mutated_patch() -> None:
    patch = bytearray(assemble(header(), [build_frame(SectionType.ENTRIES, b"\x00")], TEST_KEY))
    size = parse_header(bytes(patch)).size
    patch[9] = 5  # version
    patch[size + 2] = 4  # on_apply
    fixed = retag(bytes(patch), TEST_KEY)
    assert tag_ok(TEST_KEY, fixed) and parse_header(fixed).crc_ok
    frame = parse_frames(fixed, size, len(fixed) - TAG_BYTES)[0]
    assert parse_body(SectionType.ENTRIES, frame.payload, frame).on_apply == 4


def test_development_key_is_per_mission_and_documented() -> None:
    assert development_key("corot") == development_key("corot")
    assert development_key("corot") != development_key("other")
    assert len(development_key("corot")) == 32
