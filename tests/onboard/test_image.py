"""Images: canonical encoding round trip, content hash, and robust decoding (property-based)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onboard.vm.image import (
    IMAGE_MAGIC,
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageError,
    ImageKind,
    InstrDef,
    Rule,
    Task,
    VmletRef,
    decode_image,
)

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

I32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
U32 = st.integers(min_value=0, max_value=2**32 - 1)
SMALL = st.integers(min_value=0, max_value=1000)
NAMES = st.text(min_size=0, max_size=12)  # any Unicode: names are UTF-8 on the wire


def small_tuple(strategy: st.SearchStrategy, max_size: int = 3) -> st.SearchStrategy:
    return st.lists(strategy, max_size=max_size).map(tuple)


@st.composite
def ranged(draw: st.DrawFn) -> tuple[int, int]:
    a, b = draw(I32), draw(I32)
    return min(a, b), max(a, b)


@st.composite
def globals_(draw: st.DrawFn) -> Global:
    lo, hi = draw(ranged())
    return Global(draw(NAMES), draw(st.booleans()), lo, hi, draw(st.integers(lo, hi)))


@st.composite
def arrays(draw: st.DrawFn) -> Array:
    lo, hi = draw(ranged())
    # few distinct values so that runs (the array encoding) are exercised
    palette = draw(st.lists(st.integers(lo, hi), min_size=1, max_size=3))
    values = draw(st.lists(st.sampled_from(palette), min_size=1, max_size=40))
    return Array(draw(NAMES), draw(st.booleans()), lo, hi, tuple(values))


code_units = st.builds(CodeUnit, NAMES, SMALL, SMALL, st.booleans(), SMALL,
                       st.binary(max_size=40))


@st.composite
def images(draw: st.DrawFn) -> Image:
    functions = draw(small_tuple(code_units, 4))
    n = len(functions)
    index = st.integers(0, max(n - 1, 0))
    optional = st.none() | index if n else st.none()
    return Image(
        kind=draw(st.sampled_from(list(ImageKind))),
        name=draw(NAMES),
        version=draw(U32),
        mission=draw(NAMES),
        uses=draw(small_tuple(st.builds(VmletRef, NAMES, U32, st.binary(min_size=32,
                                                                         max_size=32)))),
        globals=draw(small_tuple(globals_())),
        arrays=draw(small_tuple(arrays())),
        natives=draw(small_tuple(NAMES)),
        env=draw(small_tuple(NAMES)),
        ext=draw(small_tuple(st.builds(ExtRef, NAMES, NAMES))),
        functions=functions,
        tasks=draw(small_tuple(st.builds(Task, NAMES, U32, index))),
        rules=draw(small_tuple(st.builds(Rule, NAMES, index))),
        on_apply=draw(optional),
        instrs=draw(small_tuple(st.builds(InstrDef, NAMES, index))),
        exposes=draw(small_tuple(NAMES)),
        hides=draw(small_tuple(NAMES)),
        on_load=draw(optional),
    )


def _sample() -> Image:
    return Image(
        kind=ImageKind.CONFIG, name="exo_e1", version=4, mission="corot",
        uses=(VmletRef("photometry", 1, bytes(range(32))),),
        globals=(Global("n_stars", False, 0, 6000, 5800), Global("rejected", True, 0, 10, 0)),
        arrays=(Array("last1", True, 0, 9, (0,) * 100 + (3, 3, 4)),),
        natives=("flux", "flag"), env=("ccd",), ext=(ExtRef("photometry", "med3"),),
        functions=(CodeUnit("t", 0, 2, False, 3, bytes([0x01, 0x02, 0x51])),),
        tasks=(Task("t", 32000, 0),), rules=(Rule("n_stars <= 6000", 0),), on_apply=0,
    )


# --------------------------------------------------------------------------- round trip


@FAST
@given(images())
def test_encode_decode_round_trip(image: Image) -> None:
    data = image.encode()
    assert data.startswith(IMAGE_MAGIC)
    back = decode_image(data)
    assert back == image
    assert back.encode() == data
    assert back.content_hash == image.content_hash


def test_sample_round_trip_and_identity() -> None:
    image = _sample()
    assert decode_image(image.encode()) == image
    assert image.content_hash == _sample().content_hash  # no timestamps, no paths
    assert len(image.short_hash) == 16 and image.content_hash.hex().startswith(image.short_hash)
    assert image.code_bytes() == 3
    assert image.function_index("t") == 0
    with pytest.raises(KeyError):
        image.function_index("nope")


def test_long_arrays_are_stored_as_runs() -> None:
    big = Image(kind=ImageKind.CONFIG, name="big", version=1, mission="corot",
                arrays=(Array("zeros", True, 0, 0, (0,) * 100_000),))
    assert len(big.encode()) < 100  # one run, not 100 000 values
    assert decode_image(big.encode()).arrays[0].length == 100_000


@pytest.mark.parametrize("field,value", [
    ("version", 5),
    ("name", "exo_e2"),
    ("globals", (Global("n_stars", False, 0, 6000, 5801), Global("rejected", True, 0, 10, 0))),
    ("arrays", (Array("last1", True, 0, 9, (0,) * 100 + (3, 4, 4)),)),
    ("functions", (CodeUnit("t", 0, 2, False, 3, bytes([0x01, 0x04, 0x51])),)),
    ("uses", (VmletRef("photometry", 1, bytes(32)),)),
    ("kind", ImageKind.VMLET),
    ("on_apply", None),
])
def test_every_change_changes_the_hash(field: str, value: Any) -> None:
    image = _sample()
    changed = dataclasses.replace(image, **{field: value})
    assert changed != image
    assert changed.content_hash != image.content_hash


# --------------------------------------------------------------------------- malformed input


def _decode_or_image_error(data: bytes) -> Image | None:
    """decode_image(data), or None if it raised ImageError; any other exception fails."""
    try:
        return decode_image(data)
    except ImageError as exc:
        assert exc.message
        return None


@FAST
@given(images(), st.data())
def test_every_truncation_is_an_image_error(image: Image, data: st.DataObject) -> None:
    encoded = image.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ImageError):
        decode_image(encoded[:cut])


def test_all_truncations_of_a_sample() -> None:
    encoded = _sample().encode()
    for cut in range(len(encoded)):
        with pytest.raises(ImageError):
            decode_image(encoded[:cut])


def test_trailing_bytes_are_an_image_error() -> None:
    with pytest.raises(ImageError):
        decode_image(_sample().encode() + b"\x00")


def test_bad_magic_format_and_kind() -> None:
    encoded = bytearray(_sample().encode())
    for pos, value in ((0, ord("X")), (4, 99), (5, 7)):
        broken = bytearray(encoded)
        broken[pos] = value
        with pytest.raises(ImageError):
            decode_image(bytes(broken))


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_image_error(data: bytes) -> None:
    _decode_or_image_error(data)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    # get past the magic and format so that the fields themselves are exercised
    _decode_or_image_error(IMAGE_MAGIC + b"\x01\x01" + tail)


@FAST
@given(images(), st.data())
def test_corrupted_images_raise_only_image_error(image: Image, data: st.DataObject) -> None:
    encoded = bytearray(image.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(0, 255))
    decoded = _decode_or_image_error(bytes(encoded))
    if decoded is not None:
        assert isinstance(decoded, Image)


def test_invalid_utf8_name_is_an_image_error() -> None:
    encoded = bytearray(_sample().encode())
    name_at = encoded.index(b"exo_e1")
    encoded[name_at] = 0xFF  # not UTF-8
    with pytest.raises(ImageError):
        decode_image(bytes(encoded))


def test_huge_array_run_is_an_image_error() -> None:
    image = Image(kind=ImageKind.CONFIG, name="a", version=1, mission="m",
                  arrays=(Array("x", True, 0, 0, (0,) * 5),))
    encoded = image.encode()
    # the run count 5 is the varint right after the run table's count (1)
    marker = bytes([1, 5, 0])  # runs: 1 run, count 5, value 0
    at = encoded.rindex(marker)
    huge = encoded[:at] + bytes([1, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0]) + encoded[at + 3:]
    with pytest.raises(ImageError, match="exceed"):
        decode_image(huge)


# --------------------------------------------------------------------------- bounded decoding


def _runs_at(encoded: bytes) -> int:
    """Where the sample-like one-array image's run table starts (after lo and hi)."""
    return encoded.rindex(bytes([1, 5, 0]))


def test_all_arrays_together_are_bounded_before_expansion() -> None:
    """Each array within the limit, all of them together beyond it: refused before any run
    is expanded (each would be cheap alone)."""
    arrays = tuple(Array(f"a{i}", True, 0, 0, (0,) * 300_000) for i in range(4))
    image = Image(kind=ImageKind.CONFIG, name="a", version=1, mission="m", arrays=arrays)
    with pytest.raises(ImageError, match="exceed"):
        decode_image(image.encode())
    assert len(decode_image(image.encode(), max_elements=1_200_000).arrays) == 4
    with pytest.raises(ImageError, match="exceed"):
        decode_image(image.encode(), max_elements=1_199_999)


@pytest.mark.parametrize("runs, what", [
    (bytes([2, 5, 0, 0, 0]), "no elements"),  # a run of 0 elements
    (bytes([2, 2, 0, 3, 0]), "same value"),  # two adjacent runs of value 0
    (bytes([1, 0x85, 0x00, 0]), "overlong"),  # the count 5 in two bytes
])
def test_non_canonical_runs_are_refused(runs: bytes, what: str) -> None:
    image = Image(kind=ImageKind.CONFIG, name="a", version=1, mission="m",
                  arrays=(Array("x", True, 0, 0, (0,) * 5),))
    encoded = image.encode()
    at = _runs_at(encoded)
    with pytest.raises(ImageError, match=what):
        decode_image(encoded[:at] + runs + encoded[at + 3:])


def test_a_flag_byte_other_than_0_or_1_is_refused() -> None:
    image = Image(kind=ImageKind.CONFIG, name="a", version=1, mission="m",
                  globals=(Global("g", True, 0, 1, 0),))
    encoded = bytearray(image.encode())
    at = encoded.index(b"\x01g") + 2  # the writable flag follows the name
    assert encoded[at] == 1
    encoded[at] = 2
    with pytest.raises(ImageError, match="neither 0 nor 1"):
        decode_image(bytes(encoded))


def test_a_list_count_beyond_the_bytes_left_is_refused_at_once() -> None:
    encoded = Image(kind=ImageKind.CONFIG, name="a", version=1, mission="m").encode()
    # the `uses` count comes right after the mission name
    at = encoded.index(b"\x01m") + 2
    huge = encoded[:at] + bytes([0xFF] * 8 + [0x7F]) + encoded[at + 1:]
    with pytest.raises(ImageError, match="need at least"):
        decode_image(huge)
