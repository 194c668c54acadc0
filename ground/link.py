"""The uplink budget: which passes carry telecommands, and how many bytes each may carry.

The mission gives an information budget per day (CoRoT: 140 kbit), a maximum number of
uplink passes per day (CoRoT: 4), the telecommand bit rate and the shortest pass worth
using. Each UTC day, the uplink passes are the best passes (highest maximum elevation first)
that last at least ``min_uplink_pass_s`` and do not overlap a pass already chosen (the
satellite has one telecommand receiver). The day's budget is shared equally among them, and
no pass may carry more than its duration times the bit rate.

Within a pass the ground transmits its frames back to back, centred on the culmination: the
budget of a pass takes seconds at 4 kbit/s, and the middle of the pass is where the link is
best (the channel model loses frames in bursts low on the horizon).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ground.errors import GroundError
from ground.passes import Pass
from onboard.mission import MissionProfile


class LinkError(GroundError):
    """A profile whose ``[link]`` section is missing or malformed."""


@dataclass(frozen=True)
class LinkBudget:
    """The mission's uplink limits."""

    bits_per_day: int
    max_passes_per_day: int
    rate_bps: int
    min_pass_s: float

    @property
    def bytes_per_day(self) -> int:
        return self.bits_per_day // 8

    @staticmethod
    def from_profile(profile: MissionProfile) -> LinkBudget:
        """The ``[link]`` section of a mission profile."""
        link = profile.raw.get("link")
        if not isinstance(link, dict):
            raise LinkError(f"mission {profile.name} has no [link] section",
                            "add uplink_bits_per_day, max_uplink_passes_per_day, "
                            "uplink_rate_bps")
        try:
            budget = LinkBudget(int(link["uplink_bits_per_day"]),
                                int(link.get("max_uplink_passes_per_day", 4)),
                                int(link["uplink_rate_bps"]),
                                float(link.get("min_uplink_pass_s", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkError(f"mission {profile.name}: malformed [link]: {exc!r}",
                            "compare with missions/corot/mission.toml") from None
        if budget.bits_per_day <= 0 or budget.rate_bps <= 0 or budget.max_passes_per_day <= 0:
            raise LinkError(f"mission {profile.name}: [link] values must be positive")
        return budget


def patch_buffer_bytes(profile: MissionProfile) -> int:
    """Onboard storage for the shares of patches being received."""
    return profile.patch_buffer_bytes


@dataclass(frozen=True)
class UplinkWindow:
    """A pass chosen to carry telecommands, with the bytes it may carry."""

    index: int
    pass_: Pass
    budget_bytes: int
    rate_bps: int

    @property
    def start(self) -> datetime:
        return self.pass_.rise

    @property
    def end(self) -> datetime:
        return self.pass_.set

    def transmit_start(self, nbytes: int) -> datetime:
        """When the first of ``nbytes`` sent back to back, centred on the culmination, goes."""
        span = timedelta(seconds=nbytes * 8 / self.rate_bps)
        t = self.pass_.culmination - span / 2
        return min(max(t, self.pass_.rise), self.pass_.set - span)

    def send_times(self, sizes: Sequence[int]) -> list[datetime]:
        """The transmission time of each frame of the given sizes, in order."""
        t = self.transmit_start(sum(sizes))
        out = []
        for n in sizes:
            out.append(t)
            t += timedelta(seconds=n * 8 / self.rate_bps)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, **self.pass_.to_json(), "budget_bytes": self.budget_bytes}


def uplink_windows(passes: Sequence[Pass], budget: LinkBudget) -> list[UplinkWindow]:
    """The passes that carry uplink, day by day, each with its share of the day's budget."""
    by_day: dict[Any, list[Pass]] = defaultdict(list)
    for p in passes:
        if p.duration_s >= budget.min_pass_s:
            by_day[p.rise.date()].append(p)
    chosen: list[Pass] = []
    for day in sorted(by_day):
        picked: list[Pass] = []
        for p in sorted(by_day[day], key=lambda p: (-p.max_elevation_deg, p.rise, p.station)):
            if len(picked) == budget.max_passes_per_day:
                break
            if all(p.set <= q.rise or q.set <= p.rise for q in picked):
                picked.append(p)
        chosen += sorted(picked, key=lambda p: p.rise)
    out = []
    counts: dict[Any, int] = defaultdict(int)
    for p in chosen:
        counts[p.rise.date()] += 1
    for i, p in enumerate(chosen):
        share = budget.bytes_per_day // counts[p.rise.date()]
        out.append(UplinkWindow(i, p, min(share, int(p.duration_s * budget.rate_bps / 8)),
                                budget.rate_bps))
    return out


def delivery_vs_bound(bytes_sent: int, patch_bytes: int, loss: float) -> float:
    """Link budget a patch consumed (every byte sent: headers, redundancy, retransmissions)
    over the bound ``patch_bytes / (1 - loss)``, both in days of capacity (which cancel)."""
    return bytes_sent * (1.0 - loss) / patch_bytes
