"""The uplink channel model: which frames arrive, seeded.

Two loss processes act on every frame: independent loss with probability ``loss``, and
bursts while the satellite is low on the horizon (below ``burst_below_deg``): there a burst
starts before a frame with probability ``burst_rate`` and then loses a geometric number of
frames of mean ``burst_frames`` (multipath and fading near the horizon come in runs, not
one frame at a time). For the tests of the receiver's robustness, a delivered frame may also
be duplicated (``duplicate``) or held back and delivered later in the pass (``reorder``).

All randomness comes from the ``random.Random`` passed in, in a fixed order of draws, so a
run is a function of its seed. This is a hot path: one pass, a few draws per frame.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Channel:
    """Loss, burst, duplication and reordering parameters of the uplink."""

    loss: float = 0.0
    burst_below_deg: float = 20.0
    burst_rate: float = 0.05
    burst_frames: float = 6.0
    duplicate: float = 0.0
    reorder: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "burst_rate", "duplicate", "reorder"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), not {v}")
        if self.burst_frames < 1.0:
            raise ValueError("burst_frames must be at least 1")

    def expected_loss(self, elevation_deg: float) -> float:
        """Long-run fraction of frames lost at this elevation (what the planner assumes)."""
        if elevation_deg >= self.burst_below_deg or self.burst_rate == 0.0:
            return self.loss
        # Renewal argument: a burst of mean length L begins after a mean of 1 / rate frames.
        in_burst = self.burst_rate * self.burst_frames / (1 + self.burst_rate * self.burst_frames)
        return 1 - (1 - self.loss) * (1 - in_burst)


@dataclass(frozen=True)
class Delivery:
    """What one pass's transmission became: the frames in arrival order and the losses."""

    arrived: tuple[int, ...]   # indices into the frames sent, in arrival order
    lost: tuple[int, ...]      # indices lost
    burst_lost: int            # of which in a low-elevation burst


def transmit(channel: Channel, elevations: Sequence[float], rng: random.Random) -> Delivery:
    """Pass ``len(elevations)`` frames (each sent at the given elevation) through the channel."""
    arrived: list[int] = []
    lost: list[int] = []
    held: list[int] = []
    burst_left = 0
    burst_lost = 0
    stop = 1.0 / channel.burst_frames
    for i, el in enumerate(elevations):
        if el < channel.burst_below_deg:
            if burst_left == 0 and rng.random() < channel.burst_rate:
                burst_left = 1
                while rng.random() >= stop:
                    burst_left += 1
        else:
            burst_left = 0
        if burst_left:
            burst_left -= 1
            burst_lost += 1
            lost.append(i)
            continue
        if rng.random() < channel.loss:
            lost.append(i)
            continue
        if channel.reorder and rng.random() < channel.reorder:
            held.append(i)
        else:
            arrived.append(i)
        if channel.duplicate and rng.random() < channel.duplicate:
            arrived.append(i)
    # Held frames come out later in the pass, each at a random later place.
    for i in held:
        arrived.insert(rng.randint(0, len(arrived)), i)
    return Delivery(tuple(arrived), tuple(lost), burst_lost)
