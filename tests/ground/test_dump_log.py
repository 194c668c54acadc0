"""The ground puts each answer to a dump request back together from the downlinks: only once
it holds every packet up to the last, each packet once however often it comes down, a
refusal with the board's reason, a stream that does not decode reported, never raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ground.telemetry import DumpLog
from onboard.link.downlink import Downlink
from onboard.link.dump_format import LAST, REFUSED, DumpPacket, Refusal, refusal_text
from onboard.vm.dump_stream import encode_values
from onboard.vm.readback import Value

EPOCH = datetime(2014, 6, 11, tzinfo=UTC)
VALUES = (Value("gain", "param", 0, 100, (7,)), Value("t", "table", -5, 9, tuple(range(-5, 9))))


def _packets(request: int, first_number: int, size: int) -> list[DumpPacket]:
    stream = encode_values(VALUES)
    chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
    return [DumpPacket(first_number + i, request, i, LAST if i == len(chunks) - 1 else 0,
                       1_000 + i * 100, c) for i, c in enumerate(chunks)]


def test_an_answer_is_whole_only_when_every_packet_came_down() -> None:
    packets = _packets(4, 10, 5)
    assert len(packets) >= 3
    log = DumpLog(EPOCH)
    log.learn(Downlink(b"", (), tuple(packets[:1] + packets[2:])))   # one lost in between
    assert log.answer(4) is None
    log.learn(Downlink(b"", (), tuple(packets)))                      # all, some again
    answer = log.answer(4)
    assert answer is not None and answer.refused is None and answer.values == VALUES
    assert answer.time == EPOCH + timedelta(milliseconds=packets[-1].time_ms)
    assert log.answer(5) is None                                      # never asked


def test_a_refusal_carries_the_boards_reason() -> None:
    log = DumpLog(EPOCH)
    log.learn(Downlink(b"", (), (DumpPacket(1, 2, 0, LAST | REFUSED, 0, refusal_text(
        Refusal.UNKNOWN_NAME, "nope not declared by exo_e1 v5")),)))
    answer = log.answer(2)
    assert answer is not None and answer.values == ()
    assert answer.refused == "unknown-name: nope not declared by exo_e1 v5"
    assert answer.to_json()["refused"] == answer.refused


def test_a_stream_that_does_not_decode_is_reported() -> None:
    log = DumpLog(EPOCH)
    log.learn(Downlink(b"", (), (DumpPacket(1, 3, 0, LAST, 0, b"\x05ab"),)))
    answer = log.answer(3)
    assert answer is not None and answer.refused is not None
    assert answer.refused.startswith("bad-stream: ")
