"""The MODEL codec (``onboard.patching.context_mixing``): exact round trips, smaller than
LZMA on patch-sized payloads, and every hostile payload refused or decoded within its
bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onboard.bounded_decoding import VarUInt
from onboard.patching.context_mixing import ModelError, decode, decoded_length, encode
from onboard.patching.patch_format import (
    MAX_EXPANDED_BYTES,
    Codec,
    FormatError,
    Reason,
    SectionType,
    build_frame,
    compress,
    expand,
    model_decoded_bytes,
    parse_frames,
)

FAST = settings(max_examples=120, deadline=None)


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_round_trip(data: bytes) -> None:
    coded = encode(data)
    assert decode(coded, len(data)) == data
    assert decoded_length(coded)[:2] == (len(data), False)
    assert not coded or coded[-1] != 0 or coded == b"\x00"


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(1000), b"\xff" * 1000,
                                  bytes(range(256)) * 3])
def test_edge_inputs_round_trip(data: bytes) -> None:
    assert decode(encode(data), len(data)) == data


def test_it_beats_lzma_on_a_patch_sized_payload() -> None:
    # Names, varints and small records, as in a patch's bundled sections.
    rng = random.Random(7)
    names = [b"cosmic_filter", b"exposure_s", b"n_stars", b"last1", b"star_x", b"flux"]
    data = b"".join(bytes([len(n)]) + n + bytes([rng.randrange(4), 0xF0, 0x2E, 1])
                    for n in (rng.choice(names) for _ in range(40)))
    lzma = compress(data, Codec.LZMA, lc=0, lp=0, pb=0)
    assert len(encode(data)) < 0.9 * len(lzma)


def test_a_primed_payload_needs_its_primer_and_is_smaller_with_it() -> None:
    primer = b"\x05flux\x05noise\x04med3\x10\x00\x41\x03" * 6
    data = b"\x04flux\x05noise\x10\x00\x41\x03med3" * 3
    primed = encode(data, primer)
    assert decoded_length(primed)[:2] == (len(data), True)
    assert len(primed) < len(encode(data))
    assert decode(primed, len(data), primer) == data
    with pytest.raises(ModelError, match="none is known"):
        decode(primed, len(data))
    # Another primer decodes to other bytes of the length it says, or is refused: never more.
    try:
        assert len(decode(primed, len(data), primer[::-1])) == len(data)
    except ModelError:
        pass
    # An unprimed payload ignores a primer.
    assert decode(encode(data), len(data), primer) == data


def test_the_length_is_checked_before_decoding() -> None:
    coded = encode(b"x" * 5000)
    with pytest.raises(ModelError, match="more than the 4999 allowed"):
        decode(coded, 4999)
    # A hostile length far beyond any budget is refused at once, whatever follows.
    with pytest.raises(ModelError, match="allowed"):
        decode(b"\xff\xff\xff\xff\x0f\x01", MAX_EXPANDED_BYTES)


@pytest.mark.parametrize("payload, message", [
    (b"", "malformed length"),
    (b"\x80", "malformed length"),
    (b"\xff\xff\xff\xff\xff\x01", "malformed length"),
    (b"\x85\x00", "malformed length"),
    (b"\x04\x12\x00", "zero byte"),
])
def test_malformed_payloads_are_refused(payload: bytes, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        decode(payload, 1000)


def test_bytes_the_decoder_does_not_read_are_refused() -> None:
    coded = encode(b"cosmic_filter" * 4)
    with pytest.raises(ModelError, match="trailing"):
        decode(coded + b"\x01" * 8, 1000)


@FAST
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=0, max_value=300))
def test_any_payload_is_refused_or_decodes_to_what_it_says(tail: bytes, n: int) -> None:
    payload = bytes(VarUInt.build(n << 1)) + tail
    try:
        out = decode(payload, 300)
    except ModelError:
        return
    assert len(out) == n


def test_a_model_frame_expands_under_the_limit_and_the_budget() -> None:
    payload = b"cosmic_filter " * 50
    raw = build_frame(SectionType.BUNDLE, compress(payload, Codec.MODEL), Codec.MODEL)
    frame = parse_frames(raw, 0, len(raw))[0]
    assert expand(frame, Codec.MODEL) == payload
    assert model_decoded_bytes([frame]) == len(payload)
    with pytest.raises(FormatError) as info:
        expand(frame, Codec.MODEL, limit=100)
    assert info.value.reason is Reason.BAD_SECTION
    assert info.value.offset == frame.payload_offset and "100 allowed" in info.value.message
