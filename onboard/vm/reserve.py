"""One patch reserve shared by several kinds of background work.

The scheduler runs one ``Background`` first in every frame, within the mission's patch
reserve (``onboard.vm.scheduler``). ``SharedReserve`` lets several share it in a fixed order
of priority: the first (patch handling) takes what it needs of the frame's reserve, the next
(the dump service) what is left, and so on; together they never take more than the reserve.
"""

from __future__ import annotations

from onboard.vm.scheduler import Background


class SharedReserve:
    """Background work items served in order from one reserve (implements ``Background``)."""

    def __init__(self, *parts: Background) -> None:
        self.parts = parts

    @property
    def busy(self) -> bool:
        """Whether any part has work for the coming frame."""
        return any(p.busy for p in self.parts)

    def next_event_ms(self) -> int | None:
        """The earliest time any part needs a frame run (None: never)."""
        events = [e for e in (p.next_event_ms() for p in self.parts) if e is not None]
        return min(events, default=None)

    def step(self, t: int, budget: int) -> int:
        """Frame boundary ``t``: each part in turn gets what the earlier ones left of
        ``budget``. Returns the cycles used in all."""
        used = 0
        for p in self.parts:
            used += p.step(t, budget - used)
        return used

    def end_frame(self, t: int, faults: int) -> None:
        for p in self.parts:
            p.end_frame(t, faults)
