"""A simulated spacecraft as the ground meets it: a radio and a clock.

The ground sends TC frames up at its own times and receives a downlink packet at a pass;
nothing else crosses. ``SimulatedSatellite`` wraps an ``onboard.sim.spacecraft.Spacecraft``
(receiver, VVM, patcher and store: the one onboard stack) so that its simulated clock
follows ground time: onboard millisecond 0 is ``epoch``, and the spacecraft runs up to every
moment the ground talks to it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from onboard.sim.spacecraft import Spacecraft


class SimulatedSatellite:
    """A ``Spacecraft`` whose clock follows the ground's (implements ``ground.uplink.Onboard``)."""

    def __init__(self, spacecraft: Spacecraft, epoch: datetime,
                 tm_sink: Callable[[bytes], None] | None = None) -> None:
        self.spacecraft = spacecraft
        self.epoch = epoch
        self.tm_sink = tm_sink  # hears each TM Space Packet of every downlink (Yamcs)

    def ms(self, t: datetime) -> int:
        """Onboard time at ground time ``t``, to the millisecond at or after it (a frame is
        never received before it is sent)."""
        return -(-(t - self.epoch) // timedelta(milliseconds=1))

    def now(self) -> datetime:
        """Ground time of the spacecraft's clock."""
        return self.epoch + timedelta(milliseconds=self.spacecraft.now_ms)

    def advance(self, t: datetime) -> None:
        """Run the spacecraft up to ground time ``t``."""
        self.spacecraft.run_until(self.ms(t))

    def receive(self, frame: bytes) -> None:
        """A TC frame arrives now; the ground hears nothing back until the next downlink."""
        self.spacecraft.receive(frame)

    def downlink(self) -> bytes:
        """The telemetry downlinked now (``onboard.link.downlink``); the same telemetry as
        Space Packets goes to ``tm_sink``, if any (``onboard.sim.tm_packets``)."""
        if self.tm_sink is not None:
            for packet in self.spacecraft.tm_packets():
                self.tm_sink(packet)
        return self.spacecraft.downlink()
