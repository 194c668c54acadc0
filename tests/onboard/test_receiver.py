"""The onboard receiver: exact reassembly across passes whatever the order, duplicates and
losses; each patch handed over once; bounded storage; telemetry that tells it all."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground import framing
from ground.erasure import encode
from onboard.receiver import (
    Outcome,
    Receiver,
    TransferState,
    bitmap,
    bitmap_ids,
    decode_report,
)
from onboard.tc_frames import Segment, build_frame, build_segment_data

SCID = 29678
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Patcher:
    """Records every hand-off."""

    def __init__(self, fate: int = 0) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.fate = fate

    def __call__(self, transfer: int, data: bytes) -> int:
        self.got.append((transfer, data))
        return self.fate


def frames_for(patch: bytes, transfer: int, ids: list[int], share: int = 64) -> list[bytes]:
    enc = encode(patch, share)
    return [f.raw for f in framing.frames(enc, transfer, ids, SCID, framing.Counters())[0]]


@FAST
@given(st.binary(min_size=1, max_size=2000), st.integers(8, 200), st.randoms(
    use_true_random=False))
def test_any_k_shares_in_any_order_with_duplicates_deliver_the_patch_once(
        patch: bytes, share: int, rnd: random.Random) -> None:
    enc = encode(patch, share)
    ids = rnd.sample(range(256), enc.k)
    raws = frames_for(patch, 9, ids, share)
    stream = raws + rnd.sample(raws, min(len(raws), 5))  # duplicates, before and after
    rnd.shuffle(stream)
    p = Patcher()
    rx = Receiver(SCID, p, buffer_bytes=1 << 20)
    outcomes = [rx.accept(r).outcome for r in stream]
    assert p.got == [(9, patch)]
    assert outcomes.count(Outcome.COMPLETED) == 1
    assert set(outcomes) <= {Outcome.STORED, Outcome.COMPLETED, Outcome.DUPLICATE, Outcome.LATE}
    assert rx.state(9) is TransferState.COMPLETE
    assert rx.held_bytes() == 0


def test_reassembly_spans_passes_and_reports_the_bitmap() -> None:
    patch = random.Random(1).randbytes(1000)  # k = 16 shares of 64 bytes
    p = Patcher()
    rx = Receiver(SCID, p, buffer_bytes=4096)
    for raw in frames_for(patch, 4, [0, 3, 5, 17]):   # pass 1
        rx.accept(raw)
    report = decode_report(rx.report(1000, b"\x11" * 32))
    entry = report.transfer(4)
    assert entry is not None and entry.state is TransferState.RECEIVING
    assert entry.received == {0, 3, 5, 17} and entry.k == 16
    assert report.config_hash == b"\x11" * 32 and report.time_ms == 1000
    assert rx.held_bytes() == 16 * 64
    for raw in frames_for(patch, 4, list(range(20, 32))):  # pass 2: 12 more shares
        rx.accept(raw)
    assert p.got == [(4, patch)]
    report = decode_report(rx.report(2000))
    entry = report.transfer(4)
    assert entry is not None and entry.state is TransferState.COMPLETE and entry.fate == 0
    assert report.frames_ok == 16


def test_frames_after_completion_are_late_and_never_deliver_again() -> None:
    patch = b"configuration" * 20
    p = Patcher(fate=0)
    rx = Receiver(SCID, p, buffer_bytes=4096)
    for raw in frames_for(patch, 1, list(range(10))):
        rx.accept(raw)
    late = [rx.accept(raw).outcome for raw in frames_for(patch, 1, list(range(10, 30)))]
    assert late == [Outcome.LATE] * 20
    assert len(p.got) == 1
    rx.set_fate(1, 7)
    entry = decode_report(rx.report(0)).transfer(1)
    assert entry is not None and entry.fate == 7


def test_storage_is_bounded_and_refused_transfers_retry() -> None:
    a, b = bytes(range(256)) * 2, bytes(reversed(range(256))) * 2   # 8 shares of 64 each
    p = Patcher()
    rx = Receiver(SCID, p, buffer_bytes=8 * 64)
    rx.accept(frames_for(a, 1, [0])[0])
    assert rx.accept(frames_for(b, 2, [0])[0]).outcome is Outcome.NO_STORAGE
    entry = decode_report(rx.report(0)).transfer(2)
    assert entry is not None and entry.state is TransferState.NO_STORAGE
    for raw in frames_for(a, 1, list(range(1, 8))):
        rx.accept(raw)
    for raw in frames_for(b, 2, list(range(8))):   # room again: b is received whole
        rx.accept(raw)
    assert p.got == [(1, a), (2, b)]


def test_too_many_transfers_at_once_are_refused() -> None:
    rx = Receiver(SCID, Patcher(), buffer_bytes=1 << 20, max_transfers=2)
    outcomes = [rx.accept(frames_for(b"x" * 300, t, [0])[0]).outcome for t in (1, 2, 3)]
    assert outcomes == [Outcome.STORED, Outcome.STORED, Outcome.BUSY]


def test_inconsistent_segments_and_corrupt_reassembly() -> None:
    patch = b"p" * 256
    rx = Receiver(SCID, Patcher(), buffer_bytes=4096)
    rx.accept(frames_for(patch, 5, [0])[0])
    other = frames_for(b"q" * 300, 5, [1])[0]   # same transfer id, other length and CRC
    assert rx.accept(other).outcome is Outcome.INCONSISTENT
    # A ground bug: every segment claims a CRC the data does not have.
    p = Patcher()
    rx = Receiver(SCID, p, buffer_bytes=4096)
    enc = encode(patch, 64)
    for i, data in enc.shares(range(4)).items():
        seg = Segment(6, i, enc.k, len(patch), enc.crc ^ 1, data)
        rx.accept(build_frame(framing.space_packet(build_segment_data(seg), i), SCID))
    assert p.got == [] and rx.state(6) is TransferState.CORRUPT


@FAST
@given(st.binary(max_size=300))
def test_garbage_is_counted_never_raised(raw: bytes) -> None:
    rx = Receiver(SCID, Patcher(), buffer_bytes=4096)
    result = rx.accept(raw)
    assert result.outcome is Outcome.MALFORMED and result.error is not None
    assert decode_report(rx.report(0)).frames_rejected == 1


def test_forgotten_transfers_are_stale() -> None:
    p = Patcher()
    rx = Receiver(SCID, p, buffer_bytes=4096, history=2)
    for t in (1, 2, 3):
        rx.accept(frames_for(b"abc", t, [0])[0])
    assert [t for t, _ in p.got] == [1, 2, 3]
    assert rx.accept(frames_for(b"abc", 1, [1])[0]).outcome is Outcome.STALE
    assert rx.accept(frames_for(b"abc", 3, [1])[0]).outcome is Outcome.LATE
    assert len(p.got) == 3


@FAST
@given(st.sets(st.integers(0, 255)))
def test_bitmap_round_trip(ids: set[int]) -> None:
    assert bitmap_ids(bitmap(ids)) == ids
