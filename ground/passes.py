"""Ground-station passes: when the satellite is above a station's minimum elevation.

Two sources, both from the mission profile:

- ``orbit``: the profile's TLE (``[orbit] tle``) propagated with SGP4 by skyfield, over the
  profile's ``[[station]]`` list, offline: the timescale is skyfield's builtin one (no
  download) and nothing else is loaded.
- ``fixed``: a daily schedule in the profile, for missions without an orbit or for tests::

      [[link.schedule]]
      station = "Kiruna"
      start = "06:10"          # UTC, every day
      duration_s = 540
      max_elevation_deg = 40   # optional, default 45

``auto`` uses the orbit when the profile has a TLE, the schedule otherwise.

Every pass carries its elevation sampled every ``ELEVATION_STEP_S`` seconds from rise to set
(the channel model uses it: frames sent low on the horizon are lost in bursts). Times are
timezone-aware UTC datetimes. The default start is midnight UTC of the TLE's epoch day, so
that a run never depends on the host clock (``ccl passes`` alone starts at the host's now,
at the command line's edge). A TLE other than the profile's (``ground.tle``: a file, or the
newest stored with the mission) may be given.

The orbit is searched in blocks of ``BLOCK_DAYS`` (a window of up to that many days is one
block, searched exactly as a whole), so that a long computation can report its progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ground.errors import GroundError
from onboard.mission import MissionProfile

ELEVATION_STEP_S = 20.0
DEFAULT_SCHEDULED_ELEVATION = 45.0
BLOCK_DAYS = 10.0  # the orbit is searched this many days at a time (see the docstring)
BLOCK_OVERLAP = timedelta(days=1)  # a block's search goes on this long for its last set

Progress = Callable[[float], None]  # called with the days of the search just done

Source = Literal["auto", "orbit", "fixed"]


class PassError(GroundError):
    """A profile whose orbit, stations or schedule cannot give passes."""


@dataclass(frozen=True)
class Station:
    """A ground station and the elevation above which it can talk to the satellite."""

    name: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    min_elevation_deg: float


@dataclass(frozen=True)
class Pass:
    """One pass of the satellite over one station."""

    station: str
    rise: datetime
    culmination: datetime
    set: datetime
    max_elevation_deg: float
    elevation: tuple[float, ...]  # degrees, every ELEVATION_STEP_S seconds from rise

    @property
    def duration_s(self) -> float:
        return (self.set - self.rise).total_seconds()

    def elevation_at(self, when: datetime) -> float:
        """Elevation (degrees) at ``when``: linear between the samples and the culmination."""
        if not self.elevation:
            return self.max_elevation_deg
        x = (when - self.rise).total_seconds()
        peak = (self.culmination - self.rise).total_seconds()
        last = len(self.elevation) - 1
        i = min(max(int(x // ELEVATION_STEP_S), 0), last)
        j = min(i + 1, last)
        x0, x1 = i * ELEVATION_STEP_S, j * ELEVATION_STEP_S
        y0, y1 = self.elevation[i], self.elevation[j]
        if x0 <= peak <= x1:  # the culmination lies between these samples: bend there
            if x <= peak:
                x1, y1 = peak, self.max_elevation_deg
            else:
                x0, y0 = peak, self.max_elevation_deg
        if x1 <= x0:
            return y0
        f = min(max((x - x0) / (x1 - x0), 0.0), 1.0)
        return y0 + (y1 - y0) * f

    def to_json(self) -> dict[str, Any]:
        return {"station": self.station, "rise": iso_utc(self.rise),
                "culmination": iso_utc(self.culmination), "set": iso_utc(self.set),
                "duration_s": round(self.duration_s, 1),
                "max_elevation_deg": round(self.max_elevation_deg, 2)}


def iso_utc(t: datetime) -> str:
    """``t`` in ISO 8601, UTC, to the second: ``2014-06-11T04:38:59Z``."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------- profile


def stations(profile: MissionProfile) -> tuple[Station, ...]:
    """The profile's ground stations."""
    try:
        return tuple(Station(s["name"], float(s["latitude_deg"]), float(s["longitude_deg"]),
                             float(s.get("altitude_m", 0.0)),
                             float(s.get("min_elevation_deg", 0.0)))
                     for s in profile.raw.get("station", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise PassError(f"{profile.path}: malformed [[station]]: {exc!r}",
                        "each station needs name, latitude_deg, longitude_deg") from None


def tle(profile: MissionProfile) -> tuple[str, str] | None:
    """The profile's two-line element set, if it has one."""
    lines = profile.raw.get("orbit", {}).get("tle")
    if lines is None:
        return None
    if not (isinstance(lines, list) and len(lines) == 2 and all(isinstance(x, str)
                                                                 for x in lines)):
        raise PassError(f"{profile.path}: [orbit] tle must be a list of two strings")
    return lines[0], lines[1]


def default_start(profile: MissionProfile) -> datetime:
    """Midnight UTC of the TLE epoch's day (or 2000-01-01 without a TLE)."""
    lines = tle(profile)
    if lines is None:
        return datetime(2000, 1, 1, tzinfo=UTC)
    try:
        yy, doy = int(lines[0][18:20]), float(lines[0][20:32])
    except ValueError:
        raise PassError(f"{profile.path}: the TLE's first line has no readable epoch") from None
    year = 1900 + yy if yy >= 57 else 2000 + yy
    return datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=int(doy) - 1)


# --------------------------------------------------------------------------- orbit


def _blocks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into blocks of ``BLOCK_DAYS`` (one block if it is no longer)."""
    step = timedelta(days=BLOCK_DAYS)
    out, b0 = [], start
    while end - b0 > step:
        out.append((b0, b0 + step))
        b0 += step
    out.append((b0, end))
    return out


Window = tuple[datetime, datetime, list[datetime]]  # rise, set, culminations


def _rise_set(sat: Any, topos: Any, ts: Any, block: tuple[datetime, datetime],
              end: datetime, min_elevation_deg: float) -> list[Window]:
    """The passes that rise in ``block`` and set by ``end``: searched over the block and the
    overlap after it (clipped to ``end``), where a pass rising late in the block sets."""
    b0, b1 = block
    t0, t1 = ts.from_datetime(b0), ts.from_datetime(min(b1 + BLOCK_OVERLAP, end))
    times, events = sat.find_events(topos, t0, t1, altitude_degrees=min_elevation_deg)
    windows: list[Window] = []
    rise: datetime | None = None
    culm: list[datetime] = []
    for t, e in zip(times.utc_datetime(), events, strict=True):
        if e == 0:
            rise, culm = t, []
        elif e == 1 and rise is not None:
            culm.append(t)
        elif e == 2 and rise is not None:
            if rise < b1:
                windows.append((rise, t, culm))
            rise = None
    return windows


def orbit_passes(lines: tuple[str, str], where: Sequence[Station], start: datetime,
                 end: datetime, progress: Progress | None = None) -> list[Pass]:
    """Complete passes between ``start`` and ``end`` from an SGP4 propagation, offline;
    ``progress`` is told of each block searched, for each station."""
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)
    try:
        sat = EarthSatellite(lines[0], lines[1], "sat", ts)
    except ValueError as exc:
        raise PassError(f"the TLE cannot be read: {exc}", "check [orbit] tle") from None
    blocks = _blocks(start, end)
    out: list[Pass] = []
    for st in where:
        topos = wgs84.latlon(st.latitude_deg, st.longitude_deg, elevation_m=st.altitude_m)
        windows: list[Window] = []
        for block in blocks:
            windows += _rise_set(sat, topos, ts, block, end, st.min_elevation_deg)
            if progress is not None:
                progress((block[1] - block[0]).total_seconds() / 86400.0)
        if not windows:
            continue
        spans = [max(1, math.ceil((s - r).total_seconds() / ELEVATION_STEP_S)) + 1
                 for r, s, _ in windows]
        instants = [r + timedelta(seconds=i * ELEVATION_STEP_S)
                    for (r, _, _), n in zip(windows, spans, strict=True) for i in range(n)]
        instants += [c for _, _, culms in windows for c in culms]
        alt = _elevations(sat.model, st, instants)
        k, c = 0, sum(spans)
        for (r, s, culms), n in zip(windows, spans, strict=True):
            samples = tuple(round(a, 3) for a in alt[k:k + n])
            k += n
            peaks = list(zip(alt[c:c + len(culms)], culms, strict=True))
            c += len(culms)
            top_el, top_t = max(peaks) if peaks else (max(samples), r)
            out.append(Pass(st.name, r, top_t, s, float(top_el), samples))
    return sorted(out, key=lambda p: (p.rise, p.station))


_UNIX_EPOCH_JD = 2440587.5
_WGS84_A_KM = 6378.137
_WGS84_F = 1 / 298.257223563


def _elevations(model: Any, st: Station, instants: Sequence[datetime]) -> list[float]:
    """Elevation (degrees) of the satellite over ``st`` at each instant, vectorised.

    SGP4 gives TEME positions; one rotation by the Greenwich mean sidereal angle (GMST 1982,
    with UT1 taken as UTC) gives Earth-fixed positions. This skips skyfield's full IAU 2000A
    nutation, which would cost most of the time here; the difference in elevation is far
    below what the channel model can notice (hundredths of a degree).
    """
    import numpy as np
    from skyfield.sgp4lib import theta_GMST1982

    days = np.array([t.timestamp() for t in instants]) / 86400.0
    whole = np.floor(days) + _UNIX_EPOCH_JD
    frac = days - np.floor(days)
    _err, r, _v = model.sgp4_array(whole, frac)
    theta, _ = theta_GMST1982(whole, frac)
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    x = cos_t * r[:, 0] + sin_t * r[:, 1]
    y = -sin_t * r[:, 0] + cos_t * r[:, 1]
    z = r[:, 2]
    lat, lon = math.radians(st.latitude_deg), math.radians(st.longitude_deg)
    e2 = _WGS84_F * (2 - _WGS84_F)
    n = _WGS84_A_KM / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    h = st.altitude_m / 1000.0
    sx = (n + h) * math.cos(lat) * math.cos(lon)
    sy = (n + h) * math.cos(lat) * math.sin(lon)
    sz = (n * (1 - e2) + h) * math.sin(lat)
    dx, dy, dz = x - sx, y - sy, z - sz
    up = (math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat))
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    sin_el = (dx * up[0] + dy * up[1] + dz * up[2]) / dist
    return [float(v) for v in np.degrees(np.arcsin(np.clip(sin_el, -1.0, 1.0)))]


# --------------------------------------------------------------------------- schedule


def _schedule(profile: MissionProfile) -> list[Mapping[str, Any]]:
    entries = profile.raw.get("link", {}).get("schedule", [])
    if not isinstance(entries, list):
        raise PassError(f"{profile.path}: [link] schedule must be an array of tables")
    return entries


def fixed_passes(schedule: Sequence[Mapping[str, Any]], start: datetime,
                 end: datetime, min_elevation_deg: float = 10.0) -> list[Pass]:
    """Passes of a daily schedule (UTC times of day) between ``start`` and ``end``."""
    day0 = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for n, entry in enumerate(schedule):
        try:
            hh, mm = (int(x) for x in str(entry["start"]).split(":"))
            duration = float(entry["duration_s"])
            top = float(entry.get("max_elevation_deg", DEFAULT_SCHEDULED_ELEVATION))
            name = str(entry["station"])
            if not (0 <= hh < 24 and 0 <= mm < 60 and duration > 0):
                raise ValueError("start must be HH:MM and duration_s positive")
        except (KeyError, TypeError, ValueError) as exc:
            raise PassError(f"[[link.schedule]] entry {n + 1}: {exc}",
                            'write e.g. { station = "Kiruna", start = "06:10", '
                            "duration_s = 540 }") from None
        steps = max(1, math.ceil(duration / ELEVATION_STEP_S))
        # A symmetric arc from the horizon mask up to the scheduled maximum and back.
        samples = tuple(round(min_elevation_deg + (top - min_elevation_deg)
                              * math.sin(math.pi * min(i * ELEVATION_STEP_S, duration)
                                         / duration), 3) for i in range(steps + 1))
        day = day0
        while day < end:
            rise = day + timedelta(hours=hh, minutes=mm)
            setting = rise + timedelta(seconds=duration)
            if rise >= start and setting <= end:
                out.append(Pass(name, rise, rise + timedelta(seconds=duration / 2), setting,
                                top, samples))
            day += timedelta(days=1)
    return sorted(out, key=lambda p: (p.rise, p.station))


# --------------------------------------------------------------------------- entry point


def resolve_source(profile: MissionProfile, source: Source,
                   elements: tuple[str, str] | None = None) -> Literal["orbit", "fixed"]:
    """Where the passes come from: ``auto`` is the orbit when there is a TLE (``elements``
    or the profile's), the fixed schedule otherwise."""
    if source != "auto":
        return source
    return "orbit" if elements is not None or tle(profile) is not None else "fixed"


def compute_passes(profile: MissionProfile, start: datetime | None = None, days: float = 1.0,
                   source: Source = "auto", elements: tuple[str, str] | None = None,
                   progress: Progress | None = None) -> list[Pass]:
    """Every pass over the profile's stations in ``days`` from ``start``, from the TLE
    ``elements`` if given (else the profile's); ``progress`` as in ``orbit_passes``."""
    if days <= 0:
        raise PassError(f"--days must be positive, not {days}")
    begin = default_start(profile) if start is None else start.astimezone(UTC)
    end = begin + timedelta(days=days)
    lines = elements if elements is not None else tle(profile)
    schedule = _schedule(profile)
    source = resolve_source(profile, source, elements)
    if source == "orbit":
        if lines is None:
            raise PassError(f"mission {profile.name} has no [orbit] tle",
                            "use the fixed schedule (--schedule fixed)")
        where = stations(profile)
        if not where:
            raise PassError(f"mission {profile.name} has no [[station]]",
                            "add ground stations to the mission profile")
        return orbit_passes(lines, where, begin, end, progress)
    if not schedule:
        raise PassError(f"mission {profile.name} has no [[link.schedule]]",
                        "add a fixed pass schedule, or use the orbit (--schedule orbit)")
    mask = min((s.min_elevation_deg for s in stations(profile)), default=10.0)
    return fixed_passes(schedule, begin, end, mask)
