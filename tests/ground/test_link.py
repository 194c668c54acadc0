"""Uplink windows: at most four a day, the best passes, the day's 140 kbit shared out."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest

from ground.link import LinkBudget, UplinkWindow, delivery_vs_bound, uplink_windows
from ground.passes import Pass
from onboard.mission import MissionProfile


def test_corot_budget(corot: MissionProfile) -> None:
    b = LinkBudget.from_profile(corot)
    assert (b.bits_per_day, b.max_passes_per_day, b.rate_bps, b.bytes_per_day) == (
        140_000, 4, 4_000, 17_500)


def test_windows_respect_the_daily_budget_and_pass_limits(
        corot: MissionProfile, corot_passes: list[Pass],
        corot_windows: list[UplinkWindow]) -> None:
    budget = LinkBudget.from_profile(corot)
    per_day: dict[object, list[UplinkWindow]] = defaultdict(list)
    for w in corot_windows:
        per_day[w.start.date()].append(w)
    assert len(per_day) == 10
    for day, ws in per_day.items():
        assert 1 <= len(ws) <= budget.max_passes_per_day
        assert sum(w.budget_bytes for w in ws) <= budget.bytes_per_day
        for a in ws:
            assert a.pass_.duration_s >= budget.min_pass_s
            assert a.budget_bytes <= a.pass_.duration_s * budget.rate_bps / 8
            assert all(a is b or a.end <= b.start or b.end <= a.start for b in ws)
        # the chosen passes are the day's best that do not overlap them
        chosen = {(w.pass_.station, w.pass_.rise) for w in ws}
        lowest = min(w.pass_.max_elevation_deg for w in ws)
        for p in corot_passes:
            if p.rise.date() == day and (p.station, p.rise) not in chosen \
                    and p.max_elevation_deg > lowest and p.duration_s >= budget.min_pass_s:
                assert any(not (p.set <= w.start or w.end <= p.rise) for w in ws)
    assert [w.index for w in corot_windows] == list(range(len(corot_windows)))


def test_short_passes_limit_the_window_budget(corot_passes: list[Pass]) -> None:
    slow = LinkBudget(bits_per_day=10_000_000, max_passes_per_day=2, rate_bps=100,
                      min_pass_s=0)
    for w in uplink_windows(corot_passes[:20], slow):
        assert w.budget_bytes == int(w.pass_.duration_s * 100 / 8)


def test_frames_go_out_around_the_culmination(corot_windows: list[UplinkWindow]) -> None:
    w = corot_windows[0]
    times = w.send_times([536] * 8)
    span = timedelta(seconds=8 * 536 * 8 / 4000)
    assert times[0] == w.pass_.culmination - span / 2
    assert times[1] - times[0] == timedelta(seconds=536 * 8 / 4000)
    assert w.start <= times[0] and times[-1] <= w.end


def test_delivery_vs_bound() -> None:
    assert delivery_vs_bound(16_384, 16_384, 0.0) == 1.0
    assert delivery_vs_bound(20_480, 16_384, 0.2) == pytest.approx(1.0)
    assert delivery_vs_bound(18_000, 16_384, 0.0) == pytest.approx(1.0986, abs=1e-4)
