"""The bytes of a read-back: dump requests, the dump stream of values and the dump packets
in the downlink read back exactly as they were written, and hostile bytes are refused with
the decoders' own errors, never anything else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ground import framing
from onboard.link.downlink import DownlinkError, EventLog, decode_downlink, encode_downlink
from onboard.link.dump_format import (
    LAST,
    MAX_NAME_BYTES,
    MAX_NAMES,
    REFUSED,
    DumpPacket,
    Refusal,
    RequestError,
    decode_request,
    encode_request,
    refusal_text,
)
from onboard.link.link_security import SecurityAssociation
from onboard.vm.dump_stream import (
    KINDS,
    DumpError,
    decode_values,
    element,
    encode_values,
    value_head,
    worst_case_bytes,
)
from onboard.vm.readback import Value

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
names = st.builds(lambda head, tail: head + tail, st.sampled_from(_LETTERS),
                  st.text(_LETTERS + "0123456789", max_size=MAX_NAME_BYTES - 1))


@st.composite
def values(draw: st.DrawFn) -> Value:
    lo = draw(st.integers(-(1 << 40), 1 << 40))
    hi = draw(st.integers(lo, lo + (1 << 41)))
    kind = draw(st.sampled_from(KINDS))
    n = 1 if kind in ("param", "state") else draw(st.integers(0, 20))
    elements = tuple(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)))
    return Value(draw(names), kind, lo, hi, elements)


@given(st.lists(values(), max_size=6))
def test_the_dump_stream_reads_back_as_written(vs: list[Value]) -> None:
    stream = encode_values(vs)
    assert decode_values(stream) == tuple(vs)
    assert len(stream) <= worst_case_bytes(vs)   # what the board reserves is enough


@given(st.lists(values(), min_size=1, max_size=4), st.integers(1, 700))
def test_the_stream_cut_anywhere_and_joined_reads_the_same(vs: list[Value], cut: int) -> None:
    # What the board does: the head, then element after element, packed into chunks.
    stream = b"".join(value_head(v, len(v.values)) + b"".join(element(x, v.lo)
                                                              for x in v.values) for v in vs)
    chunks = [stream[i:i + cut] for i in range(0, len(stream), cut)]
    assert decode_values(b"".join(chunks)) == tuple(vs)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_stream_or_a_dump_error(raw: bytes) -> None:
    try:
        decode_values(raw)
    except DumpError:
        pass


def test_a_cut_stream_is_a_dump_error() -> None:
    stream = encode_values([Value("t", "table", 0, 9, (1, 2, 3))])
    for n in range(1, len(stream)):
        with pytest.raises(DumpError):
            decode_values(stream[:n])


@given(st.integers(0, 0xFFFF), st.lists(names, min_size=1, max_size=MAX_NAMES))
def test_a_request_reads_back_as_written(request: int, asked: list[str]) -> None:
    decoded = decode_request(encode_request(request, asked))
    assert (decoded.request, decoded.names) == (request, tuple(asked))


@given(st.binary(max_size=300))
def test_any_bytes_are_a_request_or_a_request_error(raw: bytes) -> None:
    try:
        decode_request(raw)
    except RequestError as exc:
        assert isinstance(exc.reason, Refusal) and str(exc).startswith(exc.reason.value)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", Refusal.MALFORMED),
    (b"\x00\x07", Refusal.MALFORMED),
    (b"\x00\x07\x00", Refusal.TOO_MANY_NAMES),
    (b"\x00\x07" + bytes([MAX_NAMES + 1]) + b"\x01a" * (MAX_NAMES + 1), Refusal.TOO_MANY_NAMES),
    (b"\x00\x07\x01\x05ab", Refusal.MALFORMED),                 # a name cut short
    (b"\x00\x07\x01\x02a-", Refusal.MALFORMED),                 # not an identifier
    (b"\x00\x07\x01\x02\xc3\xa9", Refusal.MALFORMED),           # not ASCII
    (b"\x00\x07\x01\x01ax", Refusal.MALFORMED),                 # bytes after the last name
    (b"\x00\x07\x01" + bytes([MAX_NAME_BYTES + 1]) + b"a" * (MAX_NAME_BYTES + 1),
     Refusal.MALFORMED),
])
def test_hostile_requests_are_refused_with_a_reason(raw: bytes, reason: Refusal) -> None:
    with pytest.raises(RequestError) as caught:
        decode_request(raw)
    assert caught.value.reason is reason
    if len(raw) >= 2:
        assert caught.value.request == 7   # the refusal names the request when it can


@pytest.mark.parametrize("asked", [[], ["a"] * (MAX_NAMES + 1), ["a-b"], ["é"],
                                   ["a" * (MAX_NAME_BYTES + 1)]])
def test_the_ground_never_builds_a_request_the_board_would_refuse(asked: list[str]) -> None:
    with pytest.raises(ValueError):
        encode_request(1, asked)


def test_dump_packets_travel_in_the_downlink() -> None:
    packets = [DumpPacket(1, 9, 0, 0, 5_000, b"x" * 512),
               DumpPacket(2, 9, 1, LAST, 5_100, b"yz"),
               DumpPacket(3, 10, 0, LAST | REFUSED, 5_200,
                          refusal_text(Refusal.UNKNOWN_NAME, "nope"))]
    d = decode_downlink(encode_downlink(b"RXT2", EventLog(), packets))
    assert d.dumps == tuple(packets)
    assert d.dumps[1].last and not d.dumps[1].refused and d.dumps[2].refused
    assert d.dumps[2].data == b"unknown-name: nope"


def test_a_downlink_with_bytes_after_its_dump_packets_is_refused() -> None:
    raw = encode_downlink(b"RXT2", EventLog(), [DumpPacket(1, 9, 0, LAST, 0, b"")])
    with pytest.raises(DownlinkError):
        decode_downlink(raw + b"\x00")
    with pytest.raises(DownlinkError):
        decode_downlink(raw[:-3])


def test_a_refusal_text_is_cut_on_a_character_boundary() -> None:
    text = refusal_text(Refusal.UNKNOWN_NAME, "é" * 200)
    assert len(text) <= 120 and text.decode("utf-8").startswith("unknown-name: é")


def test_the_largest_request_fits_one_tc_frame() -> None:
    largest = encode_request(0xFFFF, ["a" * MAX_NAME_BYTES] * MAX_NAMES)
    raw, _ = framing.request_frame(largest, 29678, framing.Counters(),
                                   SecurityAssociation(1, bytes(32)))
    assert len(raw) <= 1024
