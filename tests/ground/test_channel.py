"""The channel model: seeded, independent loss at the given rate, bursts only when low."""

from __future__ import annotations

import random

import pytest

from ground.channel import Channel, transmit


def test_a_clean_channel_delivers_everything_in_order() -> None:
    d = transmit(Channel(), [45.0] * 50, random.Random(1))
    assert d.arrived == tuple(range(50)) and d.lost == () and d.burst_lost == 0


def test_same_seed_same_delivery_other_seed_other_delivery() -> None:
    ch = Channel(loss=0.2, duplicate=0.05, reorder=0.1)
    els = [15.0] * 100 + [60.0] * 100
    assert transmit(ch, els, random.Random(5)) == transmit(ch, els, random.Random(5))
    assert transmit(ch, els, random.Random(5)) != transmit(ch, els, random.Random(6))


def test_independent_loss_rate() -> None:
    d = transmit(Channel(loss=0.1), [60.0] * 20_000, random.Random(2))
    assert len(d.lost) / 20_000 == pytest.approx(0.1, abs=0.01)
    assert d.burst_lost == 0


def test_bursts_only_below_the_threshold_and_at_the_expected_rate() -> None:
    ch = Channel(loss=0.0, burst_below_deg=20.0, burst_rate=0.05, burst_frames=6.0)
    high = transmit(ch, [25.0] * 5000, random.Random(3))
    assert high.lost == ()
    low = transmit(ch, [12.0] * 20_000, random.Random(3))
    assert low.burst_lost == len(low.lost)
    assert len(low.lost) / 20_000 == pytest.approx(ch.expected_loss(12.0), abs=0.03)
    runs = sum(1 for i in low.lost if i - 1 not in set(low.lost))
    assert len(low.lost) / runs > 3  # losses come in runs
    assert ch.expected_loss(25.0) == 0.0 < ch.expected_loss(12.0)


def test_duplicates_and_reordering_keep_every_frame_that_arrives() -> None:
    d = transmit(Channel(duplicate=0.2, reorder=0.3), [50.0] * 200, random.Random(4))
    assert set(d.arrived) == set(range(200))
    assert len(d.arrived) > 200
    assert list(d.arrived) != sorted(d.arrived)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="loss"):
        Channel(loss=1.0)
    with pytest.raises(ValueError, match="burst_frames"):
        Channel(burst_frames=0.5)
