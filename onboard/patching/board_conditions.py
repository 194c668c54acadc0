"""Profile patches on a board of several applications: the patch reserve and each
application's part of the share (``part_percent.N``, application N's ``share N %``) changed
for all of them at once, checked and applied like a patch.

The board's figures are one ``ProfileConditions`` (limits, authentication, anti-replay,
probation, commit to ``conditions.vpp``, rollback); what a board adds is its admission
(``admit``): the parts and the reserve must fit in the share by ``onboard.vm.board.
cycles_left`` (the one admission rule; the share itself is a hard figure), and every
application must keep what its configurations are proven to need (each application's
``Reconfiguration.proven_demand``: the claims of the authenticated patches that brought
them, kept in its store's journal). A configuration whose demand the board does not know
(loaded without a patch) is taken to need its whole part, so its part never shrinks.

New figures are put in force between two frames (``run_for`` stops at the frame boundary)
and are on probation for ``probation_frames`` frames: a trap or an overrun of any
application in that time puts the previous figures back, else they are committed.

Stdlib only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from onboard.mission import MissionProfile
from onboard.patching.conditions import ConditionRefused, ProfileConditions, ProfileFate
from onboard.patching.patch_format import PART_FIGURE, Reason
from onboard.patching.reconfiguration import Reconfiguration
from onboard.vm.board import Board, cycles_left, part_cycles


class BoardConditions:
    """The soft figures of ``board``, changed by profile patches; see the module
    docstring."""

    def __init__(self, board: Board, conditions: ProfileConditions) -> None:
        self.board = board
        self.conditions = conditions
        #: each application's part as the board was built, what a part not patched keeps
        self.built = {a.name: a.share_percent for a in board.applications.values()}
        self._put_in_force()  # the figures committed before a reset

    def _names(self) -> list[str]:
        return list(self.board.applications)

    def demand(self, name: str) -> tuple[int, str]:
        """The most cycles per frame application ``name`` is proven to need, and which of
        its configurations (its whole part when it takes no patches: not known)."""
        a = self.board.applications[name]
        rc = a.vm.reconfiguration
        if isinstance(rc, Reconfiguration):
            need, who = rc.proven_demand(a.part_cycles)
            return need, f"{who} of application `{name}`"
        return a.part_cycles, (f"application `{name}` (loaded without a patch: its demand is "
                               f"unknown, taken as its whole part)")

    def admit(self, profile: MissionProfile, parts: Mapping[int, int]) -> None:
        """Refuse figures the board cannot hold (``ConditionRefused``): a part for an
        application not on board, parts and reserve beyond the share, or a part smaller
        than what its application is proven to need."""
        names = self._names()
        for number in parts:
            if number >= len(names):
                raise ConditionRefused(Reason.OUT_OF_LIMITS, f"no application number "
                                       f"{number} on this board ({len(names)} on board)",
                                       f"{PART_FIGURE}.{number}")
        shares = {n: parts.get(i, self.built[n]) for i, n in enumerate(names)}
        left = cycles_left(profile, shares.values())
        if left < 0:
            listed = ", ".join(f"{n} {s} %" for n, s in shares.items())
            raise ConditionRefused(
                Reason.OVER_BUDGET, f"parts {listed} and the patch reserve "
                f"({profile.patch_reserve_cycles_per_frame} cycles per frame) are {-left} "
                f"cycles over the {profile.share_percent} % share",
                next((f"{PART_FIGURE}.{i}" for i in parts), "patch_reserve_cycles_per_frame"))
        for i, name in enumerate(names):
            need, who = self.demand(name)
            have = part_cycles(profile, shares[name])
            if need > have:
                raise ConditionRefused(
                    Reason.OVER_BUDGET, f"a part of {shares[name]} % gives application "
                    f"`{name}` {have} cycles per frame and {who} is proven to need {need}",
                    f"{PART_FIGURE}.{i}")

    def receive(self, data: bytes) -> ProfileFate:
        """A complete profile patch for the board: checked now (limits, then ``admit``), in
        force from the next frame boundary of ``run_for``. A refused one changes nothing."""
        return self.conditions.receive(data, admit=self.admit)

    def _put_in_force(self) -> None:
        names = self._names()
        parts = {names[i]: p for i, p in self.conditions.parts.items() if i < len(names)}
        self.board.set_parts(self.conditions.profile,
                             {n: parts.get(n, self.built[n]) for n in names})

    def run_for(self, ms: int) -> None:
        """Advance the board by ``ms``: frame by frame while a profile patch waits or is on
        probation (its switch at a frame boundary, a fault of any application rolling it
        back), in one go otherwise."""
        board, c = self.board, self.conditions
        frame = board.profile.frame_ms
        end = board.now_ms + ms
        while board.now_ms < end:
            if c.switch(board.now_ms) is not None:
                self._put_in_force()
            if c.probation_end_ms is None:
                board.run_for(end - board.now_ms)
                break
            before = self._faults()
            board.run_for(min(frame, end - board.now_ms))
            if c.end_frame(board.now_ms, fault=self._faults() > before) is not None:
                self._put_in_force()  # rolled back

    def _faults(self) -> int:
        return sum(a.vm.telemetry.fault_count for a in self.board.applications.values())
