"""The onboard receiver: exact reassembly across passes whatever the order, duplicates and
losses; each patch handed over once; only authenticated, fresh frames reach any state;
stale and inconsistent transfers evicted on the documented rule; bounded storage;
telemetry that tells it all."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground import framing
from ground.erasure import encode
from onboard.link.link_security import SecurityAssociation
from onboard.link.receiver import (
    TICKET_USE,
    Outcome,
    Receiver,
    TransferState,
    bitmap,
    bitmap_ids,
    decode_report,
)
from onboard.link.tc_frames import Segment, build_frame, build_segment_data

SCID = 29678
LINK = SecurityAssociation(1, bytes(range(32)))
FORGER = SecurityAssociation(1, bytes(32))   # knows the format, not the key
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DAY_MS = 86_400_000


class Patcher:
    """Records every hand-off."""

    def __init__(self, fate: int = 0) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.fate = fate

    def __call__(self, ticket: int, data: bytes) -> int:
        self.got.append((ticket, data))
        return self.fate


class Ground:
    """The ground's framing; its sequence numbers run on across calls, as on the link."""

    def __init__(self, link: SecurityAssociation = LINK) -> None:
        self.link = link
        self.counters = framing.Counters()

    def frames(self, patch: bytes, transfer: int, ids: list[int], share: int = 64) -> list[bytes]:
        enc = encode(patch, share)
        out, self.counters = framing.frames(enc, transfer, ids, SCID, self.counters, self.link)
        return [f.raw for f in out]

    def frame(self, patch: bytes, transfer: int, share_id: int = 0, share: int = 64) -> bytes:
        return self.frames(patch, transfer, [share_id], share)[0]


def receiver(p: Patcher, buffer_bytes: int = 4096, **kw: int) -> Receiver:
    return Receiver(SCID, p, buffer_bytes, LINK, **kw)


def feed(rx: Receiver, frames: list[bytes], now_ms: int = 0) -> list[Outcome]:
    return [rx.accept(raw, now_ms).outcome for raw in frames]


@FAST
@given(st.binary(min_size=1, max_size=2000), st.integers(8, 200), st.randoms(
    use_true_random=False))
def test_any_k_shares_in_any_order_with_duplicates_deliver_the_patch_once(
        patch: bytes, share: int, rnd: random.Random) -> None:
    enc = encode(patch, share)
    ids = rnd.sample(range(256), enc.k)
    g = Ground()
    raws = g.frames(patch, 9, ids, share)
    stream = raws + rnd.sample(raws, min(len(raws), 5))  # the channel duplicates frames
    rnd.shuffle(stream)
    p = Patcher()
    rx = receiver(p, 1 << 20, replay_window=512)  # a window as deep as the shuffle
    outcomes = feed(rx, stream)
    assert p.got == [(9, patch)]
    assert outcomes.count(Outcome.COMPLETED) == 1
    assert set(outcomes) <= {Outcome.STORED, Outcome.COMPLETED, Outcome.REPLAYED}
    assert outcomes.count(Outcome.REPLAYED) == len(stream) - len(raws)
    # the ground sending held shares again, in fresh frames: late, never delivered twice
    assert set(feed(rx, g.frames(patch, 9, ids[:3], share))) == {Outcome.LATE}
    assert rx.state(9) is TransferState.COMPLETE and len(p.got) == 1
    assert rx.held_bytes() == 0


def test_reassembly_spans_passes_and_reports_the_bitmap() -> None:
    patch = random.Random(1).randbytes(1000)  # k = 16 shares of 64 bytes
    p, g = Patcher(), Ground()
    rx = receiver(p)
    feed(rx, g.frames(patch, 4, [0, 3, 5, 17]))   # pass 1
    report = decode_report(rx.report(1000, b"\x11" * 32))
    entry = report.transfer(4)
    assert entry is not None and entry.state is TransferState.RECEIVING
    assert entry.received == {0, 3, 5, 17} and entry.k == 16
    assert report.config_hash == b"\x11" * 32 and report.time_ms == 1000
    assert rx.held_bytes() == 16 * 64
    feed(rx, g.frames(patch, 4, list(range(20, 32))), DAY_MS // 2)  # pass 2: 12 more
    assert p.got == [(4, patch)]
    report = decode_report(rx.report(DAY_MS))
    entry = report.transfer(4)
    assert entry is not None and entry.state is TransferState.COMPLETE and entry.fate == 0
    assert report.frames_ok == 16


def test_frames_after_completion_are_late_and_never_deliver_again() -> None:
    patch = b"configuration" * 20
    p, g = Patcher(fate=0), Ground()
    rx = receiver(p)
    feed(rx, g.frames(patch, 1, list(range(10))))
    assert feed(rx, g.frames(patch, 1, list(range(10, 30)))) == [Outcome.LATE] * 20
    assert len(p.got) == 1
    rx.set_fate(1, 7)
    entry = decode_report(rx.report(0)).transfer(1)
    assert entry is not None and entry.fate == 7


# --------------------------------------------------------------------------- security


def test_unauthenticated_frames_cannot_occupy_the_receiver() -> None:
    """The jam of the issue: eight frames with a good CRC and new transfer ids made every
    later transfer `busy`. Without the link key they now touch nothing but a counter."""
    p = Patcher()
    rx = receiver(p, 1 << 20)
    forger = Ground(FORGER)
    jam = [forger.frame(bytes([t]) * 300, t) for t in range(100, 108)]
    assert feed(rx, jam) == [Outcome.UNAUTHENTICATED] * 8
    assert rx.held_bytes() == 0
    report = decode_report(rx.report(0))
    assert report.transfers == () and report.frames_unauthenticated == 8
    assert (report.frames_ok, report.frames_rejected, report.frames_replayed) == (0, 0, 0)
    # a frame signed under another SPI is no better
    other_spi = Ground(SecurityAssociation(2, LINK.key)).frame(b"x" * 300, 108)
    assert rx.accept(other_spi, 0).outcome is Outcome.UNAUTHENTICATED
    # and the ground's next transfer goes through at once
    patch = random.Random(2).randbytes(700)
    assert feed(rx, Ground().frames(patch, 1, list(range(11))))[-1] is Outcome.COMPLETED
    assert p.got == [(1, patch)]


def test_unauthenticated_frames_neither_evict_nor_move_the_window() -> None:
    p, g = Patcher(), Ground()
    rx = receiver(p, 1 << 20, max_transfers=2)
    feed(rx, [g.frame(b"a" * 300, 1), g.frame(b"b" * 300, 2)])
    # forged frames with huge sequence numbers and new ids: nothing moves
    forger = Ground(FORGER)
    forger.counters = framing.Counters(security=(1 << 32) - 100)
    assert set(feed(rx, [forger.frame(b"z" * 300, t) for t in range(3, 40)])) == {
        Outcome.UNAUTHENTICATED}
    assert rx.state(1) is rx.state(2) is TransferState.RECEIVING
    assert rx.window.highest == 2
    assert rx.accept(g.frame(b"a" * 300, 1, 1), 0).outcome is Outcome.STORED


def test_replayed_frames_are_dropped_and_counted() -> None:
    patch = random.Random(3).randbytes(600)   # k = 10
    p, g = Patcher(), Ground()
    rx = receiver(p, replay_window=16)
    recorded = g.frames(patch, 1, list(range(4)))
    feed(rx, recorded)
    assert feed(rx, recorded) == [Outcome.REPLAYED] * 4   # an eavesdropper replays them
    assert rx.received(1) == {0, 1, 2, 3}
    feed(rx, g.frames(patch, 1, list(range(4, 10))))
    assert p.got == [(1, patch)]
    # replayed after the window has moved past them, they are too old: still nothing
    feed(rx, g.frames(b"filler" * 60, 2, list(range(20))))  # the window moves on
    assert feed(rx, recorded) == [Outcome.REPLAYED] * 4
    report = decode_report(rx.report(0))
    assert report.frames_replayed == 8 and len(p.got) == 2


def test_reordered_frames_within_the_window_are_accepted() -> None:
    patch = random.Random(4).randbytes(1200)   # k = 19
    p, g = Patcher(), Ground()
    rx = receiver(p, replay_window=64)
    frames = g.frames(patch, 1, list(range(19)))
    order = frames[10:] + frames[:10]          # held back, delivered later in the pass
    assert Outcome.REPLAYED not in feed(rx, order)
    assert p.got == [(1, patch)]


# --------------------------------------------------------------------------- eviction


def test_abandoned_transfers_cannot_block_a_later_authenticated_one() -> None:
    """Eight authenticated transfers the ground abandoned (say, after losing its state):
    the next one evicts the least recently progressed and is delivered."""
    p, g = Patcher(), Ground()
    rx = receiver(p, 1 << 20)
    for t in range(100, 108):
        feed(rx, [g.frame(bytes([t]) * 300, t)])
    patch = random.Random(5).randbytes(700)
    outcomes = feed(rx, g.frames(patch, 1, list(range(11))))
    assert outcomes[-1] is Outcome.COMPLETED and p.got == [(1, patch)]
    report = decode_report(rx.report(0))
    evicted = report.transfer(100)
    assert evicted is not None and evicted.state is TransferState.EVICTED
    assert report.transfers_evicted == 1
    assert [t.transfer for t in report.transfers if t.state is TransferState.RECEIVING] == \
        list(range(101, 108))


def test_a_transfer_idle_past_the_timeout_is_evicted_and_reported() -> None:
    p, g = Patcher(), Ground()
    rx = receiver(p, timeout_ms=3 * DAY_MS)
    patch = random.Random(6).randbytes(1000)
    feed(rx, g.frames(patch, 1, [0, 1]), now_ms=0)
    feed(rx, g.frames(b"other" * 100, 2, [0]), now_ms=2 * DAY_MS)
    report = decode_report(rx.report(3 * DAY_MS))      # 1 idle for 3 days, 2 for 1 day
    entry1, entry2 = report.transfer(1), report.transfer(2)
    assert entry1 is not None and entry1.state is TransferState.EVICTED
    assert entry2 is not None and entry2.state is TransferState.RECEIVING
    assert rx.held_bytes() == 8 * 64 and report.transfers_evicted == 1
    # what still arrives of it is late; the ground sends the patch again under a new id
    assert rx.accept(g.frame(patch, 1, 2), 3 * DAY_MS).outcome is Outcome.LATE
    feed(rx, g.frames(patch, 3, list(range(16))), 3 * DAY_MS)
    assert p.got == [(3, patch)]


def test_progress_resets_the_idle_clock() -> None:
    p, g = Patcher(), Ground()
    rx = receiver(p, timeout_ms=3 * DAY_MS)
    patch = random.Random(7).randbytes(1000)
    for day in range(5):   # one new share a day: never idle for 3 days
        feed(rx, g.frames(patch, 1, [day]), day * DAY_MS)
    entry = decode_report(rx.report(6 * DAY_MS)).transfer(1)
    assert entry is not None and entry.state is TransferState.RECEIVING


def test_room_for_a_new_transfer_evicts_the_least_recently_progressed() -> None:
    a, b = bytes(range(256)) * 2, bytes(reversed(range(256))) * 2   # 8 shares of 64 each
    p, g = Patcher(), Ground()
    rx = receiver(p, buffer_bytes=8 * 64)
    rx.accept(g.frame(a, 1), 0)
    assert rx.accept(g.frame(b, 2), 0).outcome is Outcome.STORED
    assert rx.state(1) is TransferState.EVICTED and rx.held_bytes() == 8 * 64
    feed(rx, g.frames(b, 2, list(range(1, 8))))
    feed(rx, g.frames(a, 3, list(range(8))))        # a again, under a new id: room now
    assert p.got == [(2, b), (3, a)]
    # a patch larger than the whole storage is refused and leaves no state
    big = g.frame(bytes(2000), 4)
    assert rx.accept(big, 0).outcome is Outcome.NO_STORAGE
    assert rx.state(4) is None


def test_too_many_transfers_evict_the_least_recently_progressed() -> None:
    p, g = Patcher(), Ground()
    rx = receiver(p, 1 << 20, max_transfers=2)
    feed(rx, [g.frame(b"x" * 300, 1), g.frame(b"y" * 300, 2)])
    feed(rx, [g.frame(b"x" * 300, 1, 1)])           # 1 progressed after 2
    assert rx.accept(g.frame(b"z" * 300, 3), 0).outcome is Outcome.STORED
    assert (rx.state(1), rx.state(2), rx.state(3)) == (
        TransferState.RECEIVING, TransferState.EVICTED, TransferState.RECEIVING)


def test_a_reused_transfer_id_delivers_the_new_patch_and_reports_it() -> None:
    """The issue's second finding: a reused transfer id dropped the new patch as `late`
    while telemetry reported the old one complete."""
    old, new = b"old patch " * 30, b"new patch, longer " * 30
    p, g = Patcher(), Ground()
    rx = receiver(p)
    feed(rx, g.frames(old, 5, list(range(5))))
    assert p.got == [(5, old)]
    rx.set_fate(5, 2)   # committed
    first = g.frames(new, 5, [0])
    assert rx.accept(first[0], 0).outcome is Outcome.STORED   # not late: a new patch
    entry = decode_report(rx.report(0)).transfer(5)
    assert entry is not None and entry.state is TransferState.RECEIVING  # not "complete"
    outcomes = feed(rx, g.frames(new, 5, list(range(1, 9))))
    assert outcomes[-1] is Outcome.COMPLETED
    assert p.got == [(5, old), (5 + TICKET_USE, new)]
    rx.set_fate(5, 9)   # a late fate of the old patch does not land on the new one
    entry = decode_report(rx.report(0)).transfer(5)
    assert entry is not None and entry.state is TransferState.COMPLETE and entry.fate == 0
    rx.set_fate(5 + TICKET_USE, 2)
    entry = decode_report(rx.report(0)).transfer(5)
    assert entry is not None and entry.fate == 2


def test_a_reused_id_replaces_a_transfer_in_progress_and_older_frames_are_stale() -> None:
    a, b = random.Random(8).randbytes(640), random.Random(9).randbytes(900)
    p, g = Patcher(), Ground()
    rx = receiver(p)
    delayed = g.frames(a, 7, [0, 1, 2])
    feed(rx, delayed[:2])
    feed(rx, g.frames(b, 7, [0]))                   # the ground reused 7 for b
    assert rx.received(7) == {0}
    assert rx.accept(delayed[2], 0).outcome is Outcome.STALE   # a's, delayed in the channel
    feed(rx, g.frames(b, 7, list(range(1, 15))))
    assert p.got == [(7 + TICKET_USE, b)]
    assert decode_report(rx.report(0)).transfers_evicted == 1


def test_a_corrupt_reassembly_is_closed_and_never_handed_over() -> None:
    patch = b"p" * 256
    p = Patcher()
    rx = receiver(p)
    enc = encode(patch, 64)
    for i, data in enc.shares(range(4)).items():   # a ground bug: a CRC the data lacks
        seg = Segment(6, i, enc.k, len(patch), enc.crc ^ 1, data)
        rx.accept(build_frame(framing.space_packet(build_segment_data(seg), i), SCID, LINK,
                              i + 1), 0)
    assert p.got == [] and rx.state(6) is TransferState.CORRUPT
    assert decode_report(rx.report(0)).frames_rejected == 1


@FAST
@given(st.binary(max_size=300))
def test_garbage_is_counted_never_raised(raw: bytes) -> None:
    rx = receiver(Patcher())
    result = rx.accept(raw, 0)
    assert result.outcome is Outcome.MALFORMED and result.error is not None
    assert decode_report(rx.report(0)).frames_rejected == 1
    assert rx.window.highest == 0


def test_history_is_bounded() -> None:
    p, g = Patcher(), Ground()
    rx = receiver(p, history=2)
    for t in (1, 2, 3):
        rx.accept(g.frame(b"abc", t), 0)
    assert [t for t, _ in p.got] == [1, 2, 3]
    assert [t.transfer for t in decode_report(rx.report(0)).transfers] == [2, 3]
    assert rx.accept(g.frame(b"abc", 3, 1), 0).outcome is Outcome.LATE


@FAST
@given(st.sets(st.integers(0, 255)))
def test_bitmap_round_trip(ids: set[int]) -> None:
    assert bitmap_ids(bitmap(ids)) == ids
