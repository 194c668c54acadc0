"""The set of applications on board, proven together: their parts of the share, and the
patch reserve, fit in the mission's share of every frame (``onboard.vm.board`` refuses the
same set when it is loaded).

Each configuration is proven within its own part (``ccl.verify.program``); this module
proves the parts within the whole. ``ccl verify a.ccl b.ccl`` takes the files that declare
an application as the set that will be on board together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ccl.diagnostics import Diagnostic, Span
from onboard.mission import MissionProfile
from onboard.vm.board import cycles_left, part_cycles


@dataclass(frozen=True)
class Member:
    """One application of the set, as a file declares it."""

    name: str
    share_percent: int
    span: Span  # of its `application` clause
    mission: str


@dataclass(frozen=True)
class SetVerdict:
    """Whether the set fits, its figures, and the failure (with where) if it does not."""

    ok: bool
    parts_cycles: int
    reserve_cycles: int
    share_cycles: int
    message: str
    hint: str = ""
    where: Member | None = None

    def diagnostic(self) -> Diagnostic | None:
        """The failure as a diagnostic at the clause of the application it names."""
        if self.ok:
            return None
        return Diagnostic("V-SHARE-SUM", self.message, self.where.span if self.where else None,
                          self.hint)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "parts_cycles_per_frame": self.parts_cycles,
                               "reserve_cycles_per_frame": self.reserve_cycles,
                               "share_cycles_per_frame": self.share_cycles,
                               "message": self.message}
        if not self.ok:
            out["hint"] = self.hint
        return out


def check_set(members: list[Member], profile: MissionProfile) -> SetVerdict:
    """Prove that ``members`` can be on board together: one mission, distinct names, and
    their parts plus the patch reserve within the mission's share of every frame."""
    share, reserve = profile.share_cycles_per_frame, profile.patch_reserve_cycles_per_frame
    parts = 0
    seen: dict[str, Member] = {}
    for m in members:
        if m.mission != profile.name:
            return SetVerdict(False, parts, reserve, share,
                              f"application {m.name} is for mission {m.mission}, the set "
                              f"is for {profile.name}",
                              "verify the applications of one spacecraft together", m)
        first = seen.get(m.name)
        if first is not None:
            return SetVerdict(False, parts, reserve, share,
                              f"application {m.name} is declared by two files (the first "
                              f"is at {first.span})",
                              "each application on board has one configuration at a time", m)
        seen[m.name] = m
        parts += part_cycles(profile, m.share_percent)
    listed = " + ".join(f"{m.name} {m.share_percent} %" for m in members)
    figures = (f"{listed} = {parts:,} cycles per frame, with the patch reserve of "
               f"{reserve:,}: {parts + reserve:,} of the {profile.share_percent} % share "
               f"({share:,} cycles per frame)")
    if cycles_left(profile, [m.share_percent for m in members]) >= 0:  # the board's rule
        return SetVerdict(True, parts, reserve, share, f"the applications fit: {figures}")
    return SetVerdict(False, parts, reserve, share,
                      f"the applications' parts exceed the share: {figures}",
                      "lower a part (`application NAME share N %;`), or leave an "
                      "application out of this set", members[-1])
