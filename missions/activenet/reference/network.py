"""Reference routers (``router.py``) joined by links of a given latency, run by events in
simulated milliseconds: enough to run a scenario's sends through them and compare what
they deliver with the VVM routers (tests/ground/test_reference_router.py). Links have a
latency only (no bandwidth, no loss) and a node takes no time: the simulator of VVM routers
(``ground/network``) models both, so only the deliveries, not their times, compare."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from missions.activenet.reference.router import Packet, Router


class ReferenceNetwork:
    """Routers by address, the latency of each link (ms, either direction)."""

    def __init__(self, neighbours: Mapping[int, Sequence[int]],
                 routes: Mapping[int, Mapping[int, int]],
                 latency_ms: Mapping[frozenset[int], float]) -> None:
        self.routers = {n: Router(n, tuple(neighbours[n]), dict(routes[n])) for n in neighbours}
        self.latency_ms = dict(latency_ms)
        self._events: list[tuple[float, int, int, Packet, bytes, bool]] = []
        self._seq = 0

    def inject(self, at_ms: float, node: int, packet: Packet, code: bytes = b"") -> None:
        """``packet`` is handed to ``node`` by a local sender at ``at_ms`` (a capsule with
        its ``code``)."""
        self._push(at_ms, node, packet, code, True)

    def run(self) -> dict[int, list[int]]:
        """Handle every event; what each node delivered, in order."""
        while self._events:
            now, _, node, packet, code, injected = heapq.heappop(self._events)
            router = self.routers[node]
            sent = router.inject(packet, code, round(now)) if injected \
                else router.receive(packet, round(now))
            for hop, out in sent:
                delay = 0.0 if hop == node else self.latency_ms[frozenset((node, hop))]
                self._push(now + delay, hop, out, b"", False)
        return {n: list(r.delivered) for n, r in self.routers.items()}

    def _push(self, at_ms: float, node: int, packet: Packet, code: bytes,
              injected: bool) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at_ms, self._seq, node, packet, code, injected))
