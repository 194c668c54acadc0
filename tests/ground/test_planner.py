"""The planner: redundancy from the expected loss, priorities, bases that must be on board
first, and refusals with their reason."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ground.channel import Channel
from ground.framing import frame_bytes
from ground.link import UplinkWindow
from ground.planner import (
    OnboardView,
    Status,
    TransferView,
    UplinkPatch,
    frames_needed,
    plan,
)
from onboard.link.tc_frames import FRAME_OVERHEAD_BYTES, SECURITY_OVERHEAD_BYTES

STORE = 131_072
MakePatch = Callable[..., bytes]
H = {n: bytes([n]) * 32 for n in range(6)}


def _p_at_least(m: int, n: int, s: float) -> float:
    return sum(math.comb(n, j) * s ** j * (1 - s) ** (n - j) for j in range(m, n + 1))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(0, 20), st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.4]),
       st.sampled_from([0.5, 0.9, 0.99]))
def test_frames_needed_is_the_fewest_that_reach_the_confidence(
        missing: int, in_flight: int, loss: float, q: float) -> None:
    n = frames_needed(missing, in_flight, loss, q)
    assert n >= 0
    assert _p_at_least(missing, in_flight + n, 1 - loss) >= q - 1e-9
    if n > 0:
        assert _p_at_least(missing, in_flight + n - 1, 1 - loss) < q


def test_no_loss_needs_exactly_what_is_missing() -> None:
    assert frames_needed(32, 0, 0.0, 0.9) == 32
    assert frames_needed(32, 30, 0.0, 0.9) == 2
    assert frames_needed(0, 0, 0.3, 0.9) == 0


def test_a_patch_fills_the_passes_and_completes(corot_windows: list[UplinkWindow]) -> None:
    p = UplinkPatch("a", bytes(16_384))
    result = plan([p], corot_windows, OnboardView(), Channel(loss=0.1), STORE)
    a = result.patch("a")
    assert a.status is Status.SCHEDULED and (a.k, a.share_bytes) == (32, 512)
    assert a.frames == sum(x.frames for x in result.allocations)
    assert _p_at_least(32, a.frames, 0.9) >= 0.9
    assert a.first_window == 0 and a.complete_window == result.allocations[-1].window
    # the byte accounting counts whole frames: headers, FECF and the link security
    assert frame_bytes(512) == 512 + FRAME_OVERHEAD_BYTES == 512 + 24 + SECURITY_OVERHEAD_BYTES
    for x in result.allocations:
        w = corot_windows[x.window]
        assert x.bytes == x.frames * frame_bytes(512) <= w.budget_bytes


def test_higher_priority_goes_first_and_budgets_are_shared(
        corot_windows: list[UplinkWindow]) -> None:
    low = UplinkPatch("low", bytes(8000), priority=0)
    high = UplinkPatch("high", bytes(8000), priority=5)
    result = plan([low, high], corot_windows, OnboardView(), Channel(), STORE)
    assert result.patch("high").first_window == 0
    assert result.patch("low").complete_window > result.patch("high").complete_window  # type: ignore[operator]
    used: dict[int, int] = {}
    for x in result.allocations:
        used[x.window] = used.get(x.window, 0) + x.bytes
    assert all(used[i] <= corot_windows[i].budget_bytes for i in used)
    assert [p.name for p in result.patches] == ["high", "low"]


def test_a_patch_waits_for_its_base_to_be_confirmed(corot_windows: list[UplinkWindow]) -> None:
    first = UplinkPatch("v1", bytes(6000), base_hash=H[0], target_hash=H[1])
    second = UplinkPatch("v2", bytes(3000), priority=9, base_hash=H[1], target_hash=H[2])
    result = plan([second, first], corot_windows, OnboardView(config_hash=H[0]), Channel(),
                  STORE)
    v1, v2 = result.patch("v1"), result.patch("v2")
    assert v1.status is v2.status is Status.SCHEDULED
    assert v2.first_window is not None and v1.complete_window is not None
    assert v2.first_window > v1.complete_window
    assert "v1" in v2.reason


def test_bases_that_cannot_be_on_board(corot_windows: list[UplinkWindow]) -> None:
    orphan = UplinkPatch("orphan", bytes(100), base_hash=H[3])
    result = plan([orphan], corot_windows, OnboardView(config_hash=H[0]), Channel(), STORE)
    assert result.patch("orphan").status is Status.REFUSED
    assert "not on board" in result.patch("orphan").reason
    unknown = plan([orphan], corot_windows, OnboardView(), Channel(), STORE)
    assert unknown.patch("orphan").status is Status.WAITING
    assert unknown.allocations == ()
    a = UplinkPatch("a", bytes(10), base_hash=H[4], target_hash=H[5])
    b = UplinkPatch("b", bytes(10), base_hash=H[5], target_hash=H[4])
    cyc = plan([a, b], corot_windows, OnboardView(config_hash=H[0]), Channel(), STORE)
    assert {p.status for p in cyc.patches} == {Status.REFUSED}


def test_refusals_for_storage_deadline_and_horizon(corot_windows: list[UplinkWindow]) -> None:
    big = UplinkPatch("big", bytes(40_000))
    r = plan([big], corot_windows, OnboardView(), Channel(), storage_bytes=32_768)
    assert r.patch("big").status is Status.REFUSED
    assert "40448 bytes of onboard receive storage" in r.patch("big").reason
    start = corot_windows[0].start
    soon = UplinkPatch("soon", bytes(16_384), deadline=start + timedelta(hours=6))
    r = plan([soon], corot_windows, OnboardView(), Channel(), STORE)
    assert r.patch("soon").status is Status.REFUSED and "deadline" in r.patch("soon").reason
    later = UplinkPatch("later", bytes(16_384), deadline=start + timedelta(days=3))
    assert plan([later], corot_windows, OnboardView(), Channel(),
                STORE).patch("later").status is Status.SCHEDULED
    r = plan([UplinkPatch("huge", bytes(100_000))], corot_windows[:4], OnboardView(),
             Channel(), STORE)
    assert r.patch("huge").status is Status.REFUSED and "plan more days" in r.patch("huge").reason
    r = plan([UplinkPatch("oversize", bytes(300_000))], corot_windows, OnboardView(),
             Channel(), 1 << 20)
    assert "exceeds the largest transfer" in r.patch("oversize").reason


def test_the_view_of_a_transfer_in_progress_is_used(corot_windows: list[UplinkWindow]) -> None:
    p = UplinkPatch("a", bytes(16_384))
    tv = TransferView(1, 32, 512, received=frozenset(range(30)), sent=frozenset(range(33)))
    r = plan([p], corot_windows, OnboardView(transfers={"a": tv}), Channel(), STORE)
    assert r.patch("a").frames == 2
    in_flight = TransferView(1, 32, 512, received=frozenset(range(30)),
                             unconfirmed=frozenset({40, 41}), sent=frozenset(range(42)))
    r = plan([p], corot_windows, OnboardView(transfers={"a": in_flight}), Channel(), STORE)
    assert r.patch("a").frames == 0 and r.patch("a").status is Status.SCHEDULED
    done = TransferView(1, 32, 512, complete=True, fate=0)
    r = plan([p], corot_windows, OnboardView(transfers={"a": done}), Channel(), STORE)
    assert r.patch("a").status is Status.COMPLETE and r.allocations == ()
    rolled_back = TransferView(1, 32, 512, complete=True, fate=3)
    r = plan([p], corot_windows, OnboardView(transfers={"a": rolled_back}), Channel(), STORE)
    assert r.patch("a").status is Status.REFUSED and "rolled-back" in r.patch("a").reason
    wrong_base = TransferView(1, 32, 512, complete=True, fate=0x40 + 14)
    r = plan([p], corot_windows, OnboardView(transfers={"a": wrong_base}), Channel(), STORE)
    assert r.patch("a").status is Status.REFUSED
    assert r.patch("a").reason == "failed on board (rejected: wrong-base)"
    active = TransferView(1, 32, 512, complete=True, fate=1)  # on probation: not a failure
    r = plan([p], corot_windows, OnboardView(transfers={"a": active}), Channel(), STORE)
    assert r.patch("a").status is Status.COMPLETE


def test_more_loss_more_frames(corot_windows: list[UplinkWindow]) -> None:
    p = [UplinkPatch("a", bytes(16_384))]
    frames = [plan(p, corot_windows, OnboardView(), Channel(loss=x), STORE).patch("a").frames
              for x in (0.0, 0.05, 0.1, 0.2)]
    assert frames[0] == 32 and frames == sorted(frames) and len(set(frames)) == 4
    assert plan(p, corot_windows, OnboardView(), Channel(loss=0.1), STORE) == plan(
        p, corot_windows, OnboardView(), Channel(loss=0.1), STORE)


def test_plan_json(corot_windows: list[UplinkWindow]) -> None:
    data = plan([UplinkPatch("a", bytes(5000))], corot_windows, OnboardView(), Channel(),
                STORE).to_json()
    assert data["patches"][0]["status"] == "scheduled"
    assert sum(a["frames"] for a in data["allocations"]) == 10
    with pytest.raises(StopIteration):
        plan([], corot_windows, OnboardView(), Channel(), STORE).patch("a")


def test_a_patch_header_gives_base_target_and_claims(corot_windows: list[UplinkWindow],
                                                      make_patch: MakePatch) -> None:
    _patch = make_patch
    base, target = bytes(range(8)), bytes(range(8, 16))
    delta = UplinkPatch.from_bytes("d", _patch(base, target))
    assert (delta.base_hash, delta.target_hash) == (base, target)
    assert delta.header is not None and "seq 5, delta from 0001020304050607" in delta.describe()
    full = UplinkPatch.from_bytes("f", _patch(bytes(8), target, full=True))
    assert full.base_hash is None and full.describe().startswith("seq 5, full to version 4")
    opaque = UplinkPatch.from_bytes("o", b"not a patch at all")
    assert opaque.header is None and opaque.describe() == "" and opaque.base_hash is None
    # an 8-byte prefix in a header matches the full 32-byte hash telemetry reports
    on_board = OnboardView(config_hash=base + bytes(range(100, 124)))
    r = plan([delta], corot_windows, on_board, Channel(), STORE, memory=(65_536, 524_288))
    assert r.patch("d").status is Status.SCHEDULED
    fat = UplinkPatch.from_bytes("fat", _patch(base, target, code=70_000))
    r = plan([fat], corot_windows, on_board, Channel(), STORE, memory=(65_536, 524_288))
    assert r.patch("fat").status is Status.REFUSED
    assert "claims 70000 code and 400 data bytes" in r.patch("fat").reason
