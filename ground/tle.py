"""Two-line element sets: read, checked, dated, and the newest one a mission has.

A TLE is what the passes are propagated from (``ground.passes``). It comes from the mission
profile (``[orbit] tle``), from files stored with the mission (``missions/NAME/tle/*.tle``,
e.g. as downloaded from the orbit provider, the newest epoch winning), or from a file an
operator names (``ccl passes --tle FILE``). A file holds two lines, or three with the
satellite's name first (``0 NAME`` or ``NAME``), in the fixed columns of the NORAD format::

    1 29678U 06063A   14162.19373516  .00000425  00000-0  96034-4 0  4369
    2 29678 090.0189 011.6656 0203110 239.5882 262.3331 14.42990413381076

Each line is 69 characters, the last a modulo-10 checksum (the sum of the digits, a minus
sign counting 1); both lines carry the same catalogue number. A file that breaks any of this
is refused with its ``file:line:column`` and a hint: an SGP4 propagation of a mistyped TLE
gives passes that look right and are not.

How far a TLE may be propagated (``check_propagation``). SGP4 from a LEO element set drifts
along the track by a few kilometres a day at first, and faster after (drag is modelled by
one mean term; the satellite may manoeuvre): a few days after the epoch the predicted
passes start to be off by seconds, after weeks by minutes. Beyond ``STALE_DAYS`` of the
epoch the operator is warned (with the TLE's age); beyond ``MAX_PROPAGATION_DAYS`` (a year,
either way) the prediction is refused: by then the along-track error can exceed a whole
orbit, a LEO satellite may have decayed, and the passes would be fiction -- the 2014 CoRoT
TLE propagated to 2030 or to 1957. A year still lets a planning study ask what a TLE says
for the season ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ground.errors import GroundError
from ground.passes import iso_utc
from onboard.mission import MissionProfile

LINE_LENGTH = 69
STALE_DAYS = 3.0
MAX_PROPAGATION_DAYS = 365.0
STORED_FOLDER = "tle"  # missions/NAME/tle/*.tle
FORMAT_HINT = ("a TLE file holds two 69-character lines starting `1 ` and `2 ` (a name line "
               "before them is allowed), as the orbit provider publishes them")


class TleError(GroundError):
    """A TLE that cannot be used: what is wrong, where (``file:line:column``), a hint."""

    def __init__(self, message: str, hint: str = FORMAT_HINT, where: str = "") -> None:
        super().__init__(message, hint)
        self.where = where


@dataclass(frozen=True)
class Tle:
    """One checked two-line element set and where it came from."""

    line1: str
    line2: str
    epoch: datetime  # UTC
    source: str  # a file's path, or ``NAME/mission.toml``
    name: str = ""

    @property
    def lines(self) -> tuple[str, str]:
        return self.line1, self.line2

    def age_days(self, when: datetime) -> float:
        """Days from the epoch to ``when`` (negative before the epoch)."""
        return (when - self.epoch).total_seconds() / 86400.0


def checksum(line: str) -> int:
    """The NORAD checksum of a TLE line's first 68 characters."""
    return sum(int(c) if c.isdigit() else c == "-" for c in line[:68]) % 10


def epoch_of(line1: str) -> datetime:
    """The epoch of a TLE's first line (columns 19-32: two-digit year, day of the year with
    its fraction); ValueError if they do not read as one."""
    yy, doy = int(line1[18:20]), float(line1[20:32])
    if not 1.0 <= doy < 367.0:
        raise ValueError(f"day of the year {doy} is not in 1..366")
    year = 1900 + yy if yy >= 57 else 2000 + yy  # the NORAD convention: 57..99 is 19xx
    return datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=doy - 1)


def parse_tle(text: str, source: str, first_line: int = 1) -> Tle:
    """The TLE in ``text`` (two lines, or three with a name), checked; ``TleError`` with
    ``source:line:column`` otherwise. ``first_line`` numbers the first line of ``text``."""
    numbered = [(first_line + i, line.rstrip()) for i, line in enumerate(text.splitlines())]
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if len(numbered) == 3:
        (_, name), *numbered = numbered
        name = name[2:].strip() if name.startswith("0 ") else name.strip()
    else:
        name = ""
    if len(numbered) != 2:
        raise TleError(f"{len(numbered)} lines where a TLE has 2 (or 3 with a name)",
                       where=source)
    for expected, (n, line) in zip("12", numbered, strict=True):
        where = f"{source}:{n}"
        if not line.startswith(f"{expected} "):
            raise TleError(f"line {expected} of the TLE must start with `{expected} `, not "
                           f"{line[:2]!r}", where=f"{where}:1")
        if len(line) != LINE_LENGTH:
            raise TleError(f"line {expected} has {len(line)} characters, a TLE line has "
                           f"{LINE_LENGTH}", where=f"{where}:{min(len(line), LINE_LENGTH) + 1}")
        if not line[-1].isdigit() or int(line[-1]) != checksum(line):
            raise TleError(f"checksum {line[-1]!r} of line {expected} does not match its "
                           f"contents (they sum to {checksum(line)})",
                           "the line was changed or mistyped: copy it again from the "
                           "orbit provider", f"{where}:{LINE_LENGTH}")
    (n1, line1), (n2, line2) = numbered
    if line1[2:7] != line2[2:7]:
        raise TleError(f"the lines are of two satellites ({line1[2:7].strip()} and "
                       f"{line2[2:7].strip()})", "give both lines of one element set",
                       f"{source}:{n2}:3")
    try:
        epoch = epoch_of(line1)
    except ValueError as exc:
        raise TleError(f"the epoch {line1[18:32]!r} does not read: {exc}",
                       where=f"{source}:{n1}:19") from None
    try:  # the remaining fields, as SGP4 reads them
        from sgp4.api import Satrec

        Satrec.twoline2rv(line1, line2)
    except ValueError as exc:
        raise TleError(f"the element set does not read: {exc}", where=source) from None
    return Tle(line1, line2, epoch, source, name)


def read_tle_file(path: Path) -> Tle:
    """The TLE in file ``path``, checked (``TleError`` if it cannot be read or used)."""
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise TleError(f"byte {exc.start} is not ASCII text", where=str(path)) from None
    except OSError as exc:
        raise TleError(f"cannot read {path}: {exc.strerror}", "check the path",
                       str(path)) from None
    return parse_tle(text, str(path))


def profile_tle(profile: MissionProfile) -> Tle | None:
    """The TLE of the mission profile (``[orbit] tle``), checked; None if it has none."""
    lines = profile.raw.get("orbit", {}).get("tle")
    if lines is None:
        return None
    source = f"{profile.path}"
    if not (isinstance(lines, list) and len(lines) == 2 and all(isinstance(x, str)
                                                                 for x in lines)):
        raise TleError("[orbit] tle must be a list of two strings", where=source)
    return parse_tle("\n".join(lines), source + " [orbit] tle")


def stored_tles(profile: MissionProfile) -> list[Tle]:
    """The TLE files stored with the mission (``missions/NAME/tle/*.tle``), checked."""
    folder = profile.directory / STORED_FOLDER
    return [read_tle_file(p) for p in sorted(folder.glob("*.tle"))] if folder.is_dir() else []


def mission_tle(profile: MissionProfile) -> Tle | None:
    """The newest TLE the mission has: of its stored files and its profile, the one with the
    latest epoch (the profile's on a tie); None if it has none."""
    candidates = [t for t in (profile_tle(profile), *stored_tles(profile)) if t is not None]
    return max(candidates, key=lambda t: t.epoch, default=None)


def check_propagation(tle: Tle, start: datetime, days: float) -> str | None:
    """Whether ``tle`` may predict the ``days`` from ``start`` (see the module docstring):
    None if it is fresh, a warning (its age) if it is stale; ``TleError`` if it is too far."""
    far = MAX_PROPAGATION_DAYS
    at_start = tle.age_days(start)
    if abs(at_start) > far:  # checked alone first: start + days may not even be a date
        ages = [at_start]
    else:
        ages = [at_start, at_start + days]
    worst = max(ages, key=abs)
    epoch = iso_utc(tle.epoch)
    if abs(worst) > far:
        side = "after" if worst > 0 else "before"
        raise TleError(f"the TLE of epoch {epoch} (from {tle.source}) would be propagated "
                       f"to {abs(worst):,.0f} days {side} its epoch; beyond "
                       f"{far:.0f} days SGP4 predicts no real pass",
                       "give a TLE of the time you ask for (--tle FILE, or store it in the "
                       "mission's tle/ folder), or a --start near its epoch", tle.source)
    if abs(worst) <= STALE_DAYS:
        return None
    return (f"warning: the TLE of epoch {epoch} (from {tle.source}) is {_age(at_start)} at "
            f"the start and {_age(at_start + days)} at the end; predicted passes drift by "
            f"seconds to minutes beyond {STALE_DAYS:g} days -- give a newer one with "
            f"--tle FILE")


def _age(days: float) -> str:
    return f"{days:,.1f} days old" if days >= 0 else f"{-days:,.1f} days before its epoch"
