"""The uplink end to end, to the one onboard stack (receiver, VVM, patcher, store): exact
delivery, each patch handed over once, whatever the faults: loss, cancelled passes,
duplicated and reordered frames, lost telemetry reports, transfers evicted on board; frames
authenticated, the security overhead in the byte accounting; and every fate the ground
reports read from the downlink, the patcher's verdict included (opaque bytes are rejected)."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from ground import framing
from ground.channel import Channel
from ground.erasure import encode
from ground.link import UplinkWindow, delivery_vs_bound
from ground.planner import OnboardView, TransferView, UplinkPatch
from ground.satellite import SimulatedSatellite
from ground.uplink import (
    Campaign,
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
from onboard.mission import MissionProfile
from onboard.patching.patch_format import REASON_NUMBERS, Reason, development_key
from onboard.patching.patcher import REJECTED_BASE
from onboard.sim.spacecraft import Spacecraft

SCID = 29678
STORE = 131_072
H = {n: bytes([n]) * 32 for n in range(4)}
LINK = SecurityAssociation(1, development_link_key("corot"))
HOUR_MS = 3_600_000

#: What the referee saw the receiver hand over: (ticket, patch bytes). The ground never
#: reads it; it learns everything from the downlink.
Handed = list[tuple[int, bytes]]
Make = Callable[..., tuple[SimulatedSatellite, Handed]]


@pytest.fixture()
def satellite(tmp_path: Path, corot: MissionProfile, corot_windows: list[UplinkWindow]
              ) -> Make:
    """A fresh CoRoT spacecraft (development keys), nothing on board, and what its receiver
    hands to the patcher."""

    def make(profile: MissionProfile = corot) -> tuple[SimulatedSatellite, Handed]:
        sc = Spacecraft.create(profile, Path(tempfile.mkdtemp(dir=tmp_path)) / "store",
                               development_key("corot"), development_link_key("corot"))
        handed: Handed = []
        handoff = sc.receiver.handoff

        def recording(ticket: int, data: bytes) -> int:
            handed.append((ticket, data))
            return handoff(ticket, data)

        sc.receiver.handoff = recording
        return SimulatedSatellite(sc, corot_windows[0].start), handed

    return make


def patches(seed: int = 0) -> list[UplinkPatch]:
    rnd = random.Random(seed)
    return [UplinkPatch("big", rnd.randbytes(16_384)),
            UplinkPatch("small", rnd.randbytes(2_000), priority=3)]


def campaign(channel: Channel | None = None, seed: int = 1, faults: Faults | None = None
             ) -> Campaign:
    return Campaign(SCID, STORE, LINK, channel or Channel(), seed, faults=faults or Faults())


def run(make: Make, windows: list[UplinkWindow],
        channel: Channel, seed: int = 1, faults: Faults | None = None,
        ps: list[UplinkPatch] | None = None) -> tuple[SimulationResult, Handed,
                                                      list[UplinkPatch]]:
    ps = ps or patches(seed)
    sat, handed = make()
    result = simulate(ps, windows, sat, campaign(channel, seed, faults or Faults()))
    return result, handed, ps


def assert_exact_once(handed: Handed, ps: list[UplinkPatch], result: SimulationResult) -> None:
    delivered = [data for _, data in handed]
    assert sorted(delivered) == sorted(p.data for p in ps)  # every patch, exactly once
    assert len({t for t, _ in handed}) == len(handed)
    for p in result.patches:
        assert p.completed_at is not None and p.confirmed_at is not None
        assert p.first_sent is not None and p.first_sent <= p.completed_at < p.confirmed_at
        # opaque bytes are no patch: the real patcher rejects them, and telemetry says so
        assert p.status == "rejected" and p.reason.startswith("on board: ")
        assert [f.status for f in p.fates] == ["received", "rejected"]
        assert p.fates[0].time == p.completed_at


def test_lossless_uplink_sends_exactly_k_frames(satellite: Make,
                                                corot_windows: list[UplinkWindow]) -> None:
    result, handed, ps = run(satellite, corot_windows, Channel())
    assert_exact_once(handed, ps, result)
    big = result.patch("big")
    assert (big.k, big.frames_sent, big.frames_lost) == (32, 32, 0)
    # every frame: 512 share bytes, 24 of CCSDS headers and FECF, 22 of security
    assert FRAME_OVERHEAD_BYTES - SECURITY_OVERHEAD_BYTES == 24
    assert big.bytes_sent == 32 * (512 + 24 + 22)
    assert result.counters.security == sum(p.frames_sent for p in result.patches)
    assert result.patch("small").first_sent < big.first_sent  # type: ignore[operator]


@pytest.mark.parametrize("loss", [0.05, 0.2])
def test_lossy_uplink_is_exact_and_near_the_bound(
        satellite: Make, corot_windows: list[UplinkWindow], loss: float) -> None:
    result, handed, ps = run(satellite, corot_windows, Channel(loss=loss), seed=3)
    assert_exact_once(handed, ps, result)
    big = result.patch("big")
    assert big.frames_lost > 0
    assert delivery_vs_bound(big.bytes_sent, big.size, loss) < 1.35
    # the ground never sent more in a window than the window's budget
    for log in result.windows:
        assert log.bytes_sent <= log.window.budget_bytes


def test_cancelled_passes(satellite: Make, corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(cancelled=frozenset({0, 1, 3, 4}))
    result, handed, ps = run(satellite, corot_windows, Channel(loss=0.1), faults=faults)
    assert_exact_once(handed, ps, result)
    cancelled = [log.window.index for log in result.windows if log.cancelled]
    assert cancelled == [0, 1, 3, 4]
    assert all(log.frames_sent == 0 for log in result.windows if log.cancelled)
    assert result.patch("small").first_sent >= corot_windows[2].start  # type: ignore[operator]


def test_duplicated_and_reordered_frames(satellite: Make,
                                         corot_windows: list[UplinkWindow]) -> None:
    result, handed, ps = run(satellite, corot_windows,
                             Channel(loss=0.1, duplicate=0.3, reorder=0.5))
    assert_exact_once(handed, ps, result)


def test_lost_telemetry_reports(satellite: Make, corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(lost_reports=frozenset(range(1, 6)))
    result, handed, ps = run(satellite, corot_windows, Channel(loss=0.1), faults=faults)
    assert_exact_once(handed, ps, result)
    lost = [log.window.index for log in result.windows if not log.report_received]
    assert lost[:5] == [1, 2, 3, 4, 5]
    # nothing is confirmed before a report arrives
    for p in result.patches:
        assert p.confirmed_at is not None and p.confirmed_at >= corot_windows[6].start


def test_everything_at_once_with_random_faults(satellite: Make,
                                               corot_windows: list[UplinkWindow]) -> None:
    faults = Faults(cancel_probability=0.2, report_loss_probability=0.3)
    for seed in (1, 2, 3):
        result, handed, ps = run(satellite, corot_windows,
                                 Channel(loss=0.15, duplicate=0.1, reorder=0.2), seed, faults)
        assert_exact_once(handed, ps, result)


def test_deterministic_for_a_seed(satellite: Make, corot_windows: list[UplinkWindow]) -> None:
    ch = Channel(loss=0.1, duplicate=0.1, reorder=0.1)
    faults = Faults(cancel_probability=0.1, report_loss_probability=0.1)
    a = run(satellite, corot_windows, ch, 7, faults)[0]
    b = run(satellite, corot_windows, ch, 7, faults)[0]
    c = run(satellite, corot_windows, ch, 8, faults)[0]
    assert a.to_json() == b.to_json()
    assert a.to_json() != c.to_json()


def test_a_patch_waits_until_its_base_is_confirmed(
        satellite: Make, corot_windows: list[UplinkWindow], exo_patches: dict[str, bytes],
        make_patch: Callable[..., bytes]) -> None:
    v5 = UplinkPatch.from_bytes("v5", exo_patches["v5"])
    v6 = replace(UplinkPatch.from_bytes("v6", exo_patches["v6"]), priority=5)
    orphan = UplinkPatch.from_bytes("orphan", make_patch(H[3][:8], H[2][:8]))
    sat, handed = satellite()
    result = simulate([v6, v5, orphan], corot_windows, sat, campaign(Channel(loss=0.1)))
    r5, r6 = result.patch("v5"), result.patch("v6")
    assert r5.status == r6.status == "complete"
    # the whole life of each, as the downlinked event log tells it
    for r in (r5, r6):
        assert [f.status for f in r.fates] == ["received", "staged", "active", "committed"]
        assert r.fate == 2  # committed, as the receiver's report says
    assert r5.confirmed_at is not None and r6.first_sent is not None
    assert r6.first_sent > r5.confirmed_at  # sent only once telemetry showed v5 on board
    ro = result.patch("orphan")
    assert ro.status == "refused" and ro.frames_sent == 0 and "not on board" in ro.reason
    assert [data for _, data in handed] == [v5.data, v6.data]
    assert sat.spacecraft.config_hash()[:8] == v6.target_hash[:8]  # type: ignore[index]


def test_a_patch_whose_base_is_not_on_board_is_never_sent(
        satellite: Make, corot_windows: list[UplinkWindow],
        exo_patches: dict[str, bytes]) -> None:
    p = UplinkPatch.from_bytes("v6", exo_patches["v6"])
    sat, handed = satellite()
    r = simulate([p], corot_windows, sat, campaign()).patch("v6")
    assert r.status == "refused" and r.frames_sent == 0   # the first report shows nothing
    assert "not on board" in r.reason and handed == []


def test_a_wrong_base_is_rejected_on_board_and_reported(
        satellite: Make, corot_windows: list[UplinkWindow],
        exo_patches: dict[str, bytes]) -> None:
    # The ground does not know the patch's base, so it sends it; the patcher refuses it.
    p = replace(UplinkPatch.from_bytes("v6", exo_patches["v6"]), base_hash=None)
    sat, handed = satellite()
    r = simulate([p], corot_windows, sat, campaign()).patch("v6")
    assert [t for t, _ in handed] == [1]
    assert r.status == "rejected" and r.reason == "on board: wrong-base"
    assert r.fate == REJECTED_BASE + REASON_NUMBERS[Reason.WRONG_BASE]
    assert r.fates[-1].status == "rejected" and r.fates[-1].detail.startswith("wrong-base: ")


def test_the_ground_learns_nothing_but_what_the_downlink_carries(
        satellite: Make, corot_windows: list[UplinkWindow],
        exo_patches: dict[str, bytes]) -> None:
    # The report after the pass that delivers it is lost: the patch runs on board, but the
    # ground never hears of it, so it cannot call it complete.
    p = UplinkPatch.from_bytes("v5", exo_patches["v5"])
    sat, handed = satellite()
    faults = Faults(lost_reports=frozenset({1}))
    r = simulate([p], corot_windows[:2], sat, campaign(faults=faults)).patch("v5")
    assert [data for _, data in handed] == [p.data]
    assert sat.spacecraft.config_hash() != bytes(32)   # the referee sees it on board
    assert r.status == "incomplete" and r.fates == () and r.confirmed_at is None
    assert r.completed_at is None and r.fate is None


def test_choose_shares_prefers_fresh_then_missing() -> None:
    v = TransferView(1, 4, 10, received=frozenset({0, 1}), sent=frozenset({0, 1, 2, 3}))
    assert choose_shares(v, 3) == [4, 5, 6]
    v = TransferView(1, 250, 10, received=frozenset(range(200)),
                     unconfirmed=frozenset({250}), sent=frozenset(range(252)))
    assert choose_shares(v, 8) == [252, 253, 254, 255, 200, 201, 202, 203]


def test_a_transfer_closed_as_corrupt_starts_again(
        satellite: Make, corot_windows: list[UplinkWindow],
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
    result, handed, _ = run(satellite, corot_windows, Channel(loss=0.1), ps=ps)
    assert handed == [(2, ps[0].data)]
    r = result.patch("p")
    assert r.completed_at is not None and r.transfer == 2 and len(calls) == 2

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
        satellite: Make, corot: MissionProfile, corot_windows: list[UplinkWindow]) -> None:
    view = OnboardView(None, {"p": TransferView(1, 4, 10, sent=frozenset({0, 1}))})
    report = Report(0, H[0], 2, 0, 0, (TransferReport(1, TransferState.EVICTED, 0, 0,
                                                      frozenset()),), transfers_evicted=1)
    assert "p" not in apply_report(view, report, {1: "p"}).transfers
    # End to end: the passes after the first are cancelled for longer than the satellite's
    # timeout, so it gives the transfer up; the ground reads `evicted` and starts again.
    quick = replace(corot, receiver=replace(corot.receiver, transfer_timeout_s=30 * 3600))
    ps = [UplinkPatch("p", random.Random(11).randbytes(12_000))]
    faults = Faults(cancelled=frozenset(range(1, 7)))
    sat, handed = satellite(quick)
    r = simulate(ps, corot_windows, sat, campaign(faults=faults)).patch("p")
    assert r.completed_at is not None and r.transfer == 2
    assert [data for _, data in handed] == [ps[0].data]
    assert corot_windows[7].start - corot_windows[0].end > timedelta(hours=30)


def test_frames_under_another_link_key_deliver_nothing() -> None:
    handed: Handed = []

    def patcher(ticket: int, data: bytes) -> int:
        handed.append((ticket, data))
        return 0

    onboard = Receiver(SCID, patcher, STORE, SecurityAssociation(1, bytes(32)))
    frames, _ = framing.frames(encode(bytes(700), 512), 1, [0, 1, 2], SCID, framing.Counters(),
                               LINK)
    for f in frames:
        assert onboard.accept(f.raw, 0).outcome is Outcome.UNAUTHENTICATED
    report = decode_report(onboard.report(0))
    assert handed == [] and report.transfers == () and report.frames_unauthenticated == 3
