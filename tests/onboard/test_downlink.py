"""The downlink packet: the receiver's report and the numbered, bounded patch event log, as
the ground reads them back."""

from __future__ import annotations

import pytest

from onboard.link.downlink import (
    MAX_MESSAGE_BYTES,
    DownlinkError,
    EventLog,
    decode_downlink,
    encode_downlink,
)


def test_a_downlink_reads_back_as_it_was_sent() -> None:
    log = EventLog()
    log.log(1_000, 3, 0x3F, "637 bytes")
    log.log(1_100, 3, 0, "")
    packet = decode_downlink(encode_downlink(b"RXT2 report bytes", log))
    assert packet.report == b"RXT2 report bytes"
    assert [(e.number, e.time_ms, e.ticket, e.code, e.message) for e in packet.events] == [
        (1, 1_000, 3, 0x3F, "637 bytes"), (2, 1_100, 3, 0, "")]


def test_the_log_is_bounded_and_keeps_numbering() -> None:
    log = EventLog(capacity=4)
    for i in range(10):
        log.log(i, 1, 2, f"event {i}")
    assert log.count == 10
    assert [e.number for e in log.events] == [7, 8, 9, 10]   # the oldest dropped first
    assert [e.message for e in decode_downlink(encode_downlink(b"", log)).events][-1] == \
        "event 9"


def test_long_messages_are_cut_on_a_character_boundary() -> None:
    log = EventLog()
    log.log(0, 1, 0x41, "é" * 200)   # two bytes each in UTF-8
    (event,) = decode_downlink(encode_downlink(b"", log)).events
    assert event.message == "é" * (MAX_MESSAGE_BYTES // 2)
    assert len(event.message.encode()) <= MAX_MESSAGE_BYTES


@pytest.mark.parametrize("raw", [b"", b"RXT2", b"TMD1\x00\x00\x00\x09abc",
                                 b"TMD1\x00\x00\x00\x00\x00\x01" + bytes(17) + b"\x01\xff"])
def test_bytes_that_are_not_a_downlink_are_refused_cleanly(raw: bytes) -> None:
    with pytest.raises(DownlinkError, match="not a downlink packet"):
        decode_downlink(raw)
