"""Adaptable conditions: the mission profile's soft figures, changed on board within hard limits.

The flight build fixes, in the profile's ``[limits]`` table, the range each *soft* figure may
take (``probation_frames = [100, 6000]``); a profile patch (``patch_format.ProfilePatch``)
carries new values. Everything else of the profile is *hard*: the reconfiguration share
(``share_percent``, 10 % on CoRoT), the memory sizes, the clock and frame, the cycle table.
No patch can change those, and a figure the flight build gives no range is not patchable.

The ground checks the limits before packing (``ccl profile-pack``); the board checks them
again (``ProfileConditions.receive``), never trusting the ground, after authenticating the
patch with the mission's patch key. A refused patch leaves the conditions as they were.

Stdlib only (and ``onboard.patching.patch_format``): the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from onboard.errors import OnboardError
from onboard.mission import MissionProfile, ReconfigCosts
from onboard.patching.disk import Disk
from onboard.patching.patch_format import (
    PART_FIGURE,
    PROFILE_CODES,
    FormatError,
    ProfilePatch,
    Reason,
    build_profile_patch,
    parse_profile_patch,
)
from onboard.vm.machine import Limits

#: Figures no profile patch may change: fixed by the flight build.
HARD_FIGURES = ("share_percent", "clock_hz", "frame_ms", "code_bytes", "data_bytes",
                "max_stack", "max_call_depth", "cycles")
#: The soft figures, as the profile names them (``[limits]`` keys are the same names).
SOFT_FIGURES = (*(n for n in PROFILE_CODES if not n.startswith(PART_FIGURE + ".")),
                PART_FIGURE)
_IN_RECONFIG = ("probation_frames", "max_pending")


def _figures(saved: object) -> dict[str, int]:
    """Soft figures as a record holds them; raises ``ValueError`` if they are not."""
    if not isinstance(saved, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in saved.items()):
        raise ValueError("figures are not a table of integers")
    return dict(saved)


class ConditionRefused(OnboardError):
    """A soft figure's new value refused: the figure, the value and the limit it breaks."""

    def __init__(self, reason: Reason, message: str, figure: str | None = None) -> None:
        super().__init__(reason.value, message, field=figure)
        self.reason = reason
        self.figure = figure


@dataclass(frozen=True)
class HardLimits:
    """The range of each soft figure, from the flight build's ``[limits]`` table."""

    ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @staticmethod
    def of(profile: MissionProfile) -> HardLimits:
        """The limits of ``profile``. Raises ``ValueError`` for a malformed ``[limits]``
        table (an unknown or hard figure, a range that is not ``[lo, hi]`` with lo <= hi)."""
        table = profile.raw.get("limits", {})
        ranges: dict[str, tuple[int, int]] = {}
        for name, spec in table.items():
            if name in HARD_FIGURES:
                raise ValueError(f"[limits] {name}: a hard figure has no range, it is fixed")
            if name not in SOFT_FIGURES:
                raise ValueError(f"[limits] has an unknown figure {name!r} "
                                 f"(soft figures: {', '.join(SOFT_FIGURES)})")
            if (not isinstance(spec, list) or len(spec) != 2
                    or not all(isinstance(v, int) for v in spec) or spec[0] > spec[1]):
                raise ValueError(f"[limits] {name} must be [lo, hi] with lo <= hi")
            ranges[name] = (int(spec[0]), int(spec[1]))
        return HardLimits(ranges)


def current_values(profile: MissionProfile) -> dict[str, int]:
    """The soft figures of ``profile`` as they are now."""
    values = {"patch_reserve_cycles_per_frame": profile.patch_reserve_cycles_per_frame}
    values.update({name: getattr(profile.reconfig, name) for name in _IN_RECONFIG})
    return values


def check_values(profile: MissionProfile, values: Mapping[str, int], *,
                 demand_cycles_per_frame: int = 0,
                 demand_of: str = "the running configuration",
                 in_force: MissionProfile | None = None) -> None:
    """Refuse ``values`` unless every figure is soft, given a range by the flight build
    ``profile``, and inside it, and the configurations on board (``demand_cycles_per_frame``,
    the most any of them is proven to need, ``demand_of`` saying which) still fit the share
    beside the patch reserve the figures in force (``in_force``, default the flight build's)
    have once ``values`` replace them. Raises ``ConditionRefused``."""
    limits = HardLimits.of(profile)
    for name, value in values.items():
        if name in HARD_FIGURES:
            raise ConditionRefused(Reason.OUT_OF_LIMITS, f"{name} is a hard figure of the "
                                   "flight build: no profile patch changes it", name)
        limit = PART_FIGURE if name.startswith(PART_FIGURE + ".") else name
        if limit not in limits.ranges:
            raise ConditionRefused(Reason.OUT_OF_LIMITS, f"{limit} has no range in the flight "
                                   "build's [limits]: it is not patchable", name)
        lo, hi = limits.ranges[limit]
        if not lo <= value <= hi:
            raise ConditionRefused(Reason.OUT_OF_LIMITS, f"{name} = {value} is outside its "
                                   f"hard limit {lo}..{hi}", name)
    after = with_values(profile if in_force is None else in_force, values)
    reserve = after.patch_reserve_cycles_per_frame
    left = Limits.of(after).frame_budget  # the tasks' part
    if demand_cycles_per_frame > left:
        raise ConditionRefused(
            Reason.OVER_BUDGET, f"patch_reserve_cycles_per_frame = {reserve} leaves "
            f"{left} cycles of the share ({profile.share_cycles_per_frame}) and "
            f"{demand_of} is proven to need {demand_cycles_per_frame}: it would no longer be "
            f"proven within its budget", "patch_reserve_cycles_per_frame")


def parts_of(values: Mapping[str, int]) -> dict[int, int]:
    """The applications' parts (number -> percent) among figures ``values``."""
    prefix = PART_FIGURE + "."
    return {int(k[len(prefix):]): v for k, v in values.items() if k.startswith(prefix)}


def part_values(parts: Mapping[int, int]) -> dict[str, int]:
    """Applications' parts as figures (``part_percent.N``)."""
    return {f"{PART_FIGURE}.{n}": v for n, v in parts.items()}


#: Checks a board makes of new figures beyond the limits (``ProfileConditions.receive``):
#: called with the profile and the applications' patched parts the patch would put in
#: force; raises ``ConditionRefused``.
Admission = Callable[[MissionProfile, Mapping[int, int]], None]


def with_values(profile: MissionProfile, values: Mapping[str, int]) -> MissionProfile:
    """``profile`` with the soft figures ``values`` (already checked) in place."""
    reconfig: ReconfigCosts = replace(
        profile.reconfig, **{k: v for k, v in values.items() if k in _IN_RECONFIG})
    reserve = values.get("patch_reserve_cycles_per_frame",
                         profile.patch_reserve_cycles_per_frame)
    return replace(profile, reconfig=reconfig, patch_reserve_cycles_per_frame=reserve)


#: The file of a state directory that keeps the soft figures in force (the last committed
#: profile patch's result, as a profile patch carrying every soft figure, tagged with the
#: patch key). Written atomically (``Disk.replace``): a power cut leaves the old or the new.
CONDITIONS_FILE = "conditions.vpp"
#: The profile patch put on probation last, written (atomically) at its switch, before its
#: figures are in force: if its sequence number is above the record's at boot, a reset cut
#: its probation short (reported, and the number kept as used: a replay is refused).
TRIAL_FILE = "conditions.try"


@dataclass(frozen=True)
class ProfileFate:
    """What became of one profile patch, for telemetry: ``status`` is ``accepted`` (checked,
    waiting for the frame boundary), ``active`` (in force, on probation), ``committed``,
    ``rolled-back`` or ``rejected`` (with the reason, the message and the figure)."""

    status: str
    seq: int | None
    reason: str | None = None
    message: str = ""
    figure: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status != "rejected"

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "seq": self.seq, "reason": self.reason,
                "message": self.message, "figure": self.figure}


class ProfileConditions:
    """The board's soft figures: the flight build's profile, changed by profile patches.

    Like a configuration, a profile patch is checked when received (``receive``: nothing
    changes yet), put in force at a frame boundary (``switch``), on probation for the new
    ``probation_frames`` frames, rolled back by a fault (``end_frame``), and only then
    committed to the state directory, so it survives a reset; a reset during probation
    returns to the last committed figures.
    """

    def __init__(self, flight_build: MissionProfile, key: bytes,
                 directory: Path | None = None, disk: Disk | None = None) -> None:
        self.flight_build = flight_build
        # A malformed [limits] table is the flight build's error: refused here, at boot,
        # never when a patch arrives.
        HardLimits.of(flight_build)
        self.key = key
        self.directory = directory
        self.disk = disk or Disk()
        self.profile = flight_build
        self.last_seq = 0
        self.log: list[ProfileFate] = []
        self.waiting: ProfilePatch | None = None
        self.previous: MissionProfile | None = None  # what a rollback returns to
        #: the applications' parts (number -> percent) a profile patch put in force (those
        #: not here are as the board was built), and what a rollback returns to
        self.parts: dict[int, int] = {}
        self.previous_parts: dict[int, int] = {}
        self.probation_end_ms: int | None = None
        self.cut_short: int | None = None  # a profile patch whose probation a reset cut
        self._load()

    # ------------------------------------------------------------------ persistence

    @property
    def phase(self) -> int:
        """0: the figures in force are committed; 1: a profile patch waits for the next
        frame boundary; 2: one is in force on probation (housekeeping's numbering)."""
        return 1 if self.waiting is not None else 2 if self.probation_end_ms is not None else 0

    def reload(self) -> None:
        """After a reset: what was waiting or on probation is lost (a reset while trying
        figures is a reason to distrust them), and the figures last committed in the state
        directory are in force again (``onboard.patching.boot``)."""
        self.profile, self.last_seq = self.flight_build, 0
        self.waiting = self.previous = self.probation_end_ms = self.cut_short = None
        self.parts, self.previous_parts = {}, {}
        self._load()
        if self.cut_short is not None:
            self._log(ProfileFate("rolled-back", self.cut_short, message="a reset during "
                                  "probation: the figures last committed are in force"))
            self._save()  # its sequence number recorded as used
            self.cut_short = None

    def volatile(self) -> dict[str, object]:
        """What ``resume`` needs to go on where this left off (a simulator between two
        commands keeps it beside its snapshot; a reset loses it): JSON-ready."""
        waiting = None
        if self.waiting is not None:
            waiting = build_profile_patch(self.waiting, self.key).hex()
        return {"in_force": {**current_values(self.profile), **part_values(self.parts)},
                "previous_parts": part_values(self.previous_parts),
                "last_seq": self.last_seq,
                "waiting": waiting, "probation_end_ms": self.probation_end_ms,
                "previous": None if self.previous is None else current_values(self.previous),
                "log": [f.to_json() for f in self.log]}

    def resume(self, saved: Mapping[str, object]) -> None:
        """Go on from ``volatile()``'s record. The figures are checked again against the
        flight build's limits and the waiting patch is authenticated again: a damaged record
        leaves the committed figures in force (``ValueError`` says why)."""
        try:
            in_force = _figures(saved["in_force"])
            previous = None if saved["previous"] is None else _figures(saved["previous"])
            check_values(self.flight_build, in_force)
            if previous is not None:
                check_values(self.flight_build, previous)
            waiting = None
            if saved["waiting"] is not None:
                waiting = parse_profile_patch(bytes.fromhex(str(saved["waiting"])), self.key)
            end = saved["probation_end_ms"]
            last_seq = saved["last_seq"]
            log = [ProfileFate(str(f["status"]), f["seq"], f["reason"], str(f["message"]),
                               f["figure"]) for f in saved["log"]]  # type: ignore[attr-defined]
            previous_parts = _figures(saved.get("previous_parts", {}))
            check_values(self.flight_build, previous_parts)
        except (KeyError, TypeError, ValueError, FormatError, ConditionRefused) as exc:
            raise ValueError(f"the saved conditions are damaged: {exc}") from None
        if not isinstance(last_seq, int) or not (end is None or isinstance(end, int)):
            raise ValueError("the saved conditions are damaged: seq or probation end")
        self.profile = with_values(self.flight_build, in_force)
        self.previous = None if previous is None else with_values(self.flight_build, previous)
        self.parts, self.previous_parts = parts_of(in_force), parts_of(previous_parts)
        self.waiting, self.probation_end_ms, self.last_seq = waiting, end, last_seq
        self.log = log

    def _load(self) -> None:
        """The figures last committed in ``directory`` (the flight build's if none). The
        record is checked like a patch received: a damaged one is ignored, never trusted."""
        if self.directory is None:
            return
        if not (self.directory / CONDITIONS_FILE).is_file():
            self._load_trial()
            return
        try:
            record = parse_profile_patch((self.directory / CONDITIONS_FILE).read_bytes(),
                                         self.key)
            check_values(self.flight_build, record.values)
        except (FormatError, ConditionRefused) as exc:
            self._log(ProfileFate("rejected", None, "bad-record", f"stored conditions "
                                  f"ignored: {exc}"))
            return
        self.profile = with_values(self.flight_build, record.values)
        self.parts = parts_of(record.values)
        self.last_seq = record.seq
        self._load_trial()

    def _load_trial(self) -> None:
        """A profile patch put on probation after the last record (``TRIAL_FILE`` has a higher
        sequence number) was cut short by a reset: its sequence number is used (a replay is
        refused), and the boot path (``reload``) reports it rolled back and records that."""
        assert self.directory is not None
        try:
            trial = parse_profile_patch((self.directory / TRIAL_FILE).read_bytes(), self.key)
        except (OSError, FormatError):
            return  # none (or torn: its switch never completed, nothing was in force)
        if trial.seq > self.last_seq:  # else committed, or rolled back and recorded
            self.last_seq = self.cut_short = trial.seq

    def _save(self) -> None:
        if self.directory is None:
            return
        p = self.flight_build
        record = ProfilePatch(p.mission_id, p.spacecraft_id, self.last_seq,
                              {**current_values(self.profile), **part_values(self.parts)})
        self.disk.replace(self.directory / CONDITIONS_FILE,
                          build_profile_patch(record, self.key))

    # ------------------------------------------------------------------ patches

    def receive(self, data: bytes, *, demand_cycles_per_frame: int = 0,
                demand_of: str = "the running configuration",
                admit: Admission | None = None) -> ProfileFate:
        """Check ``data`` as a profile patch; if every check passes it waits for the next
        frame boundary (``switch``). ``demand_cycles_per_frame``: the most cycles per frame a
        configuration on board is proven to need (the board's own record, ``demand_of``
        naming it), which the tasks' part under the new figures must still hold; ``admit``:
        a board's own checks of the figures (its applications' parts). A refused patch
        changes nothing."""
        seq: int | None = None
        try:
            patch = parse_profile_patch(data, self.key)
            seq = patch.seq
            self._check(patch, demand_cycles_per_frame, demand_of)
            if admit is not None:
                admit(with_values(self.profile, patch.values),
                      {**self.parts, **parts_of(patch.values)})
        except FormatError as exc:
            return self._log(ProfileFate("rejected", seq, exc.reason.value, exc.message,
                                         exc.field))
        except ConditionRefused as exc:
            return self._log(ProfileFate("rejected", seq, exc.reason.value, exc.message,
                                         exc.figure))
        self.waiting = patch
        return self._log(ProfileFate("accepted", patch.seq, message=", ".join(
            f"{k} = {v}" for k, v in sorted(patch.values.items()))))

    def _check(self, patch: ProfilePatch, demand: int, demand_of: str) -> None:
        p = self.flight_build
        if patch.mission_id != p.mission_id:
            raise ConditionRefused(Reason.WRONG_MISSION, f"mission id {patch.mission_id}, "
                                   f"this is mission {p.mission_id} ({p.name})", "mission")
        if patch.spacecraft_id != p.spacecraft_id:
            raise ConditionRefused(Reason.WRONG_SPACECRAFT, f"spacecraft {patch.spacecraft_id}"
                                   f", this is {p.spacecraft_id}", "spacecraft")
        if patch.seq <= self.last_seq:
            raise ConditionRefused(Reason.REPLAY, f"sequence number {patch.seq} is not above "
                                   f"the last accepted {self.last_seq}", "seq")
        if self.waiting is not None or self.probation_end_ms is not None:
            raise ConditionRefused(Reason.BUSY, "a profile patch is already waiting or on "
                                   "probation")
        # Limits are the flight build's, not those of a profile already patched.
        check_values(p, patch.values, demand_cycles_per_frame=demand, demand_of=demand_of,
                     in_force=self.profile)

    def switch(self, now_ms: int) -> MissionProfile | None:
        """At a frame boundary: put the waiting patch in force, on probation. Returns the new
        profile (None if nothing waits)."""
        patch, self.waiting = self.waiting, None
        if patch is None:
            return None
        if self.directory is not None:  # first: a reset from here on rolls it back
            self.disk.replace(self.directory / TRIAL_FILE, build_profile_patch(patch, self.key))
        self.previous, self.profile = self.profile, with_values(self.profile, patch.values)
        self.previous_parts, self.parts = self.parts, {**self.parts, **parts_of(patch.values)}
        self.last_seq = patch.seq
        frames = self.profile.reconfig.probation_frames
        self.probation_end_ms = now_ms + frames * self.profile.frame_ms
        self._log(ProfileFate("active", patch.seq, message=f"probation for {frames} frames"))
        return self.profile

    def end_frame(self, end_ms: int, *, fault: bool) -> MissionProfile | None:
        """After the frame ending at ``end_ms``: a fault during probation rolls the figures
        back (returns the profile to put back in force); the end of probation commits them
        to the state directory. Returns None when the figures in force do not change."""
        if self.probation_end_ms is None or self.previous is None:
            return None
        if fault:
            self.profile, self.previous, self.probation_end_ms = self.previous, None, None
            self.parts = self.previous_parts
            self._save()  # the figures before, and this patch's sequence number as used
            self._log(ProfileFate("rolled-back", self.last_seq,
                                  message="a trap or overrun during probation"))
            return self.profile
        if end_ms >= self.probation_end_ms:
            self._save()
            self.previous, self.probation_end_ms = None, None
            self._log(ProfileFate("committed", self.last_seq))
        return None

    def _log(self, fate: ProfileFate) -> ProfileFate:
        self.log.append(fate)
        return fate
