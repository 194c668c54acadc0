"""The uplink end to end: exact delivery, each patch handed over once, whatever the faults:
loss, cancelled passes, duplicated and reordered frames, lost telemetry reports, transfers
evicted on board; frames authenticated, the security overhead in the byte accounting."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from ground import framing, uplink
from ground.channel import Channel
from ground.erasure import encode
from ground.link import UplinkWindow, delivery_vs_bound
from ground.planner import OnboardView, TransferView, UplinkPatch
from ground.uplink import (
    FATE_WRONG_BASE,
    Faults,
    SimulationResult,
    apply_report,
    choose_shares,
    simulate,
)
from onboard.link.link_security import SecurityAssociation, development_link_key
from onboard.link.receiver import (
    Outcome,
    Receiver,
    Report,
    TransferReport,
    TransferState,
    decode_report,
)
from onboard.link.tc_frames import FRAME_OVERHEAD_BYTES, SECURITY_OVERHEAD_BYTES

SCID = 29678
STORE = 131_072
H = {n: bytes([n]) * 32 for n in range(4)}
LINK = SecurityAssociation(1, development_link_key("corot"))
HOUR_MS = 3_600_000


class Patcher:
    """The single hand-off, recording what it gets."""

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes]] = []

    def __call__(self, transfer: int, data: bytes) -> int:
        self.got.append((transfer, data))
        return 0


def patches(seed: int = 0) -> list[UplinkPatch]:
    rnd = random.Random(seed)
    return [UplinkPatch("big", rnd.randbytes(16_384)),
            UplinkPatch("small", rnd.randbytes(2_000), priority=3)]


def run(windows: list[UplinkWindow], channel: Channel, seed: int = 1,
        faults: Faults | None = None, ps: list[UplinkPatch] | None = None
        ) -> tuple[SimulationResult, Patcher, list[UplinkPatch]]:
    ps = ps or patches(seed)
    faults = faults or Faults()
    patcher = Patcher()
    result = simulate(ps, windows, channel, seed, SCID, STORE, faults=faults, handoff=patcher,
                      config_hash=lambda: bytes(32), link=LINK)
    return result, patcher, ps


def assert_exact_once(patcher: Patcher, ps: list[UplinkPatch], result: SimulationResult) -> None:
    delivered = [data for _, data in patcher.got]
    assert sorted(delivered) == sorted(p.data for p in ps)  # every patch, exactly once
    assert len({t for t, _ in patcher.got}) == len(patcher.got)
    for p in result.patches:
        assert p.status == "complete"
        assert p.completed_at is not None and p.confirmed_at is not None
        assert p.first_sent is not None and p.first_sent <= p.completed_at < p.confirmed_at


def test_lossless_uplink_sends_exactly_k_frames(corot_windows: list[UplinkWindow]) -> None:
    result, patcher, ps = run(corot_windows, Channel())
    assert_exact_once(patcher, ps, result)
    big = result.patch("big")
    assert (big.k, big.frames_sent, big.frames_lost) == (32, 32, 0)
    # every frame: 512 share bytes, 24 of CCSDS headers and FECF, 22 of security
    assert FRAME_OVERHEAD_BYTES - SECURITY_OVERHEAD_BYTES == 24
    assert big.bytes_sent == 32 * (512 + 24 + 22)
    assert result.counters.security == sum(p.frames_sent for p in result.patches)
    assert result.patch("small").first_sent < big.first_sent  # type: ignore[operator]


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_lossy_uplink_is_exact_and_near_the_bound(corot_windows: list[UplinkWindow],
                                                  loss: float) -> None:
    result, patcher, ps = run(corot_windows, Channel(loss=loss), seed=3)
    assert_exact_once(patcher, ps, result)
    big = result.patch("big")
    assert big.frames_lost > 0
    assert delivery_vs_bound(big.bytes_sent, big.size, loss) < 1.35
    # the ground never sent more in a window than the window's budget
    for log in result.windows:
        assert log.bytes_sent <= log.window.budget_bytes


def test_cancelled_passes(corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(cancelled=frozenset({0, 1, 3, 4}))
    result, patcher, ps = run(corot_windows, Channel(loss=0.1), faults=faults)
    assert_exact_once(patcher, ps, result)
    cancelled = [log.window.index for log in result.windows if log.cancelled]
    assert cancelled == [0, 1, 3, 4]
    assert all(log.frames_sent == 0 for log in result.windows if log.cancelled)
    assert result.patch("small").first_sent >= corot_windows[2].start  # type: ignore[operator]


def test_duplicated_and_reordered_frames(corot_windows: list[UplinkWindow]) -> None:
    result, patcher, ps = run(corot_windows, Channel(loss=0.1, duplicate=0.3, reorder=0.5))
    assert_exact_once(patcher, ps, result)


def test_lost_telemetry_reports(corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(lost_reports=frozenset(range(1, 6)))
    result, patcher, ps = run(corot_windows, Channel(loss=0.1), faults=faults)
    assert_exact_once(patcher, ps, result)
    lost = [log.window.index for log in result.windows if not log.report_received]
    assert lost[:5] == [1, 2, 3, 4, 5]
    # nothing is confirmed before a report arrives
    for p in result.patches:
        assert p.confirmed_at is not None and p.confirmed_at >= corot_windows[6].start


def test_everything_at_once_with_random_faults(corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(cancel_probability=0.2, report_loss_probability=0.3)
    for seed in (1, 2, 3):
        result, patcher, ps = run(corot_windows, Channel(loss=0.15, duplicate=0.1,
                                                         reorder=0.2), seed, faults)
        assert_exact_once(patcher, ps, result)


def test_deterministic_for_a_seed(corot_windows: list[UplinkWindow]) -> None:
    ch = Channel(loss=0.1, duplicate=0.1, reorder=0.1)
    faults = Faults(cancel_probability=0.1, report_loss_probability=0.1)
    a = run(corot_windows, ch, 7, faults)[0]
    b = run(corot_windows, ch, 7, faults)[0]
    c = run(corot_windows, ch, 8, faults)[0]
    assert a.to_json() == b.to_json()
    assert a.to_json() != c.to_json()


def test_a_patch_waits_until_its_base_is_confirmed(corot_windows: list[UplinkWindow]) -> None:
    rnd = random.Random(4)
    v1 = UplinkPatch("v1", rnd.randbytes(4000), base_hash=H[0], target_hash=H[1])
    v2 = UplinkPatch("v2", rnd.randbytes(3000), priority=5, base_hash=H[1], target_hash=H[2])
    orphan = UplinkPatch("orphan", rnd.randbytes(500), base_hash=H[3])
    result = simulate([v2, v1, orphan], corot_windows, Channel(loss=0.1), 1, SCID, STORE,
                      initial_config=H[0], link=LINK)
    r1, r2 = result.patch("v1"), result.patch("v2")
    assert r1.status == r2.status == "complete" and r1.fate == r2.fate == 0
    assert r1.confirmed_at is not None and r2.first_sent is not None
    assert r2.first_sent > r1.confirmed_at  # sent only once telemetry showed v1 on board
    ro = result.patch("orphan")
    assert ro.status == "refused" and ro.frames_sent == 0 and "not on board" in ro.reason


def test_a_patch_whose_base_is_not_on_board_is_never_sent(
        corot_windows: list[UplinkWindow]) -> None:
    p = UplinkPatch("p", bytes(700), base_hash=H[1], target_hash=H[2])
    result = simulate([p], corot_windows, Channel(), 1, SCID, STORE, initial_config=H[0],
                      link=LINK)
    r = result.patch("p")
    assert r.status == "refused" and r.frames_sent == 0   # the first report shows H[0]
    assert "not on board" in r.reason
    q = UplinkPatch("q", bytes(700), base_hash=H[0], target_hash=H[2])
    assert simulate([q], corot_windows, Channel(), 1, SCID, STORE,
                    initial_config=H[0], link=LINK).patch("q").status == "complete"


def test_wrong_base_fate_is_reported(corot_windows: list[UplinkWindow]) -> None:
    seen: list[int] = []

    def refuse(transfer: int, data: bytes) -> int:
        seen.append(transfer)
        return FATE_WRONG_BASE

    result = simulate([UplinkPatch("p", bytes(700))], corot_windows, Channel(), 1, SCID, STORE,
                      handoff=refuse, config_hash=lambda: H[0], link=LINK)
    r = result.patch("p")
    assert seen == [1] and r.status == "rejected" and r.fate == FATE_WRONG_BASE


def test_choose_shares_prefers_fresh_then_missing() -> None:
    v = TransferView(1, 4, 10, received=frozenset({0, 1}), sent=frozenset({0, 1, 2, 3}))
    assert choose_shares(v, 3) == [4, 5, 6]
    v = TransferView(1, 250, 10, received=frozenset(range(200)),
                     unconfirmed=frozenset({250}), sent=frozenset(range(252)))
    assert choose_shares(v, 8) == [252, 253, 254, 255, 200, 201, 202, 203]


def test_a_transfer_closed_as_corrupt_starts_again(corot_windows: list[UplinkWindow],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import onboard.link.receiver

    # The first reassembly on board fails its CRC (as if memory were hit); the next is clean.
    calls: list[int] = []
    real = onboard.link.receiver.patch_crc

    def flaky(data: bytes) -> int:
        calls.append(1)
        return real(data) ^ (1 if len(calls) == 1 else 0)

    monkeypatch.setattr(onboard.link.receiver, "patch_crc", flaky)
    ps = [UplinkPatch("p", random.Random(9).randbytes(3000))]
    result, patcher, _ = run(corot_windows, Channel(loss=0.1), ps=ps)
    assert [t for t, _ in patcher.got] == [2] and patcher.got[0][1] == ps[0].data
    r = result.patch("p")
    assert r.status == "complete" and r.transfer == 2 and len(calls) == 2


    view = OnboardView(None, {"p": TransferView(1, 4, 10, sent=frozenset({0, 1, 2, 3}))})
    report = Report(0, H[0], 4, 0, 0, (TransferReport(1, TransferState.CORRUPT, 0, 0,
                                                      frozenset()),))
    after = apply_report(view, report, {1: "p"})
    assert "p" not in after.transfers and after.config_hash == H[0]
    received = Report(0, H[0], 2, 0, 0, (TransferReport(1, TransferState.RECEIVING, 0, 4,
                                                        frozenset({0, 2})),))
    after = apply_report(view, received, {1: "p"})
    assert after.transfers["p"].received == {0, 2} and after.transfers["p"].missing == 2


def test_an_evicted_transfer_is_sent_again_under_a_new_id(
        corot_windows: list[UplinkWindow], monkeypatch: pytest.MonkeyPatch) -> None:
    view = OnboardView(None, {"p": TransferView(1, 4, 10, sent=frozenset({0, 1}))})
    report = Report(0, H[0], 2, 0, 0, (TransferReport(1, TransferState.EVICTED, 0, 0,
                                                      frozenset()),), transfers_evicted=1)
    assert "p" not in apply_report(view, report, {1: "p"}).transfers
    # End to end: the passes after the first are cancelled for longer than the satellite's
    # timeout, so it gives the transfer up; the ground reads `evicted` and starts again.
    real = uplink.Receiver
    monkeypatch.setattr(uplink, "Receiver", lambda *a, **kw: real(*a, timeout_ms=30 * HOUR_MS,
                                                                  **kw))
    ps = [UplinkPatch("p", random.Random(11).randbytes(12_000))]
    faults = Faults(cancelled=frozenset(range(1, 7)))
    result, patcher, _ = run(corot_windows, Channel(), faults=faults, ps=ps)
    r = result.patch("p")
    assert r.status == "complete" and r.transfer == 2
    assert [data for _, data in patcher.got] == [ps[0].data]
    assert corot_windows[7].start - corot_windows[0].end > timedelta(hours=30)


def test_frames_under_another_link_key_deliver_nothing(corot_windows: list[UplinkWindow]) -> None:
    patcher = Patcher()
    onboard = Receiver(SCID, patcher, STORE, SecurityAssociation(1, bytes(32)))
    frames, _ = framing.frames(encode(bytes(700), 512), 1, [0, 1, 2], SCID, framing.Counters(),
                               LINK)
    for f in frames:
        assert onboard.accept(f.raw, 0).outcome is Outcome.UNAUTHENTICATED
    report = decode_report(onboard.report(0))
    assert patcher.got == [] and report.transfers == () and report.frames_unauthenticated == 3
