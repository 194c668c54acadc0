"""Passes from the CoRoT TLE over Kiruna and Aussaguel (offline), and from a fixed schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import redated_tle

from ground import passes as passes_mod
from ground.passes import ELEVATION_STEP_S, Pass, PassError, compute_passes, default_start
from onboard.mission import MissionProfile, load_profile


def test_default_start_is_the_tle_epoch_day(corot: MissionProfile) -> None:
    assert default_start(corot) == datetime(2014, 6, 11, tzinfo=UTC)


def test_corot_passes_are_plausible(corot_passes: list[Pass]) -> None:
    days = 10
    by_station = {s: [p for p in corot_passes if p.station == s] for s in ("Kiruna", "Aussaguel")}
    # A 99.8-minute polar orbit: Kiruna (67.9 N) sees most orbits, Aussaguel (43.4 N) a few.
    assert 8 * days <= len(by_station["Kiruna"]) <= 13 * days
    assert 3 * days <= len(by_station["Aussaguel"]) <= 6 * days
    for p in corot_passes:
        assert p.rise < p.culmination < p.set
        assert 0 < p.duration_s < 16 * 60          # LEO at 600-900 km
        assert 10.0 <= p.max_elevation_deg <= 90.0
        inside = p.elevation[1:-1]
        assert min(inside) >= 9.5 and max(p.elevation) <= p.max_elevation_deg + 0.05
        assert p.elevation_at(p.culmination) == pytest.approx(p.max_elevation_deg)
        assert p.elevation_at(p.rise) == pytest.approx(p.elevation[0])
    for station in by_station.values():
        for a, b in zip(station, station[1:], strict=False):
            assert a.set < b.rise


def test_sampled_elevation_matches_skyfield_full_model(corot: MissionProfile,
                                                       corot_passes: list[Pass]) -> None:
    from skyfield.api import EarthSatellite, load, wgs84

    ts = load.timescale(builtin=True)
    lines = passes_mod.tle(corot)
    assert lines is not None
    sat = EarthSatellite(*lines, "corot", ts)
    stations = {s.name: s for s in passes_mod.stations(corot)}
    for p in corot_passes[:12]:
        s = stations[p.station]
        topos = wgs84.latlon(s.latitude_deg, s.longitude_deg, elevation_m=s.altitude_m)
        for i in (1, len(p.elevation) // 2):
            t = p.rise + timedelta(seconds=i * ELEVATION_STEP_S)
            exact = (sat - topos).at(ts.from_datetime(t)).altaz()[0].degrees
            assert abs(p.elevation[i] - exact) < 0.05


def test_passes_need_no_download(corot: MissionProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    import skyfield.iokit

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("skyfield tried to download a file")

    monkeypatch.setattr(skyfield.iokit, "download", refuse)
    monkeypatch.setattr(skyfield.iokit.Loader, "download", refuse)
    assert len(compute_passes(corot, days=0.5)) > 0


def _profile_with(folder: Path, corot: MissionProfile, extra: str,
                  drop_orbit: bool = False) -> MissionProfile:
    text = corot.path.read_text(encoding="utf-8")
    if drop_orbit:
        text = text[:text.index("[orbit]")] + text[text.index("[sim]"):]
    folder.mkdir()
    (folder / "mission.toml").write_text(text + "\n" + extra, encoding="utf-8")
    return load_profile(folder / "mission.toml")


SCHEDULE = """
[[link.schedule]]
station = "Kiruna"
start = "06:10"
duration_s = 540
max_elevation_deg = 40

[[link.schedule]]
station = "Aussaguel"
start = "18:30"
duration_s = 400
"""


def test_fixed_schedule_repeats_daily(tmp_path: Path, corot: MissionProfile) -> None:
    profile = _profile_with(tmp_path / "fixed", corot, SCHEDULE, drop_orbit=True)
    got = compute_passes(profile, datetime(2020, 3, 1, tzinfo=UTC), days=3)
    assert [(p.station, p.rise.isoformat()) for p in got] == [
        (s, f"2020-03-0{d}T{t}:00+00:00") for d in (1, 2, 3)
        for s, t in (("Kiruna", "06:10"), ("Aussaguel", "18:30"))]
    k = got[0]
    assert k.duration_s == 540 and k.max_elevation_deg == 40
    assert k.elevation[0] == pytest.approx(10.0) and k.elevation_at(k.culmination) == 40.0
    assert k.elevation_at(k.rise + timedelta(seconds=135)) == pytest.approx(31.2, abs=0.3)
    assert got[1].max_elevation_deg == passes_mod.DEFAULT_SCHEDULED_ELEVATION
    # With a TLE too, "fixed" chooses the schedule and "auto" the orbit.
    both = _profile_with(tmp_path / "both", corot, SCHEDULE)
    start = datetime(2014, 6, 11, tzinfo=UTC)
    assert len(compute_passes(both, start, 1, "fixed")) == 2
    assert len(compute_passes(both, start, 1, "auto")) > 2


def test_bad_sources_say_what_is_missing(tmp_path: Path, corot: MissionProfile) -> None:
    no_orbit = _profile_with(tmp_path / "no_orbit", corot, "", drop_orbit=True)
    with pytest.raises(PassError, match="no \\[orbit\\] tle"):
        compute_passes(no_orbit, source="orbit")
    with pytest.raises(PassError, match="no \\[\\[link.schedule\\]\\]"):
        compute_passes(no_orbit)
    bad = _profile_with(tmp_path / "bad", corot,
                        '[[link.schedule]]\nstation = "K"\nstart = "25:00"\nduration_s = 10\n')
    with pytest.raises(PassError, match="entry 1"):
        compute_passes(bad, source="fixed")
    with pytest.raises(PassError, match="positive"):
        compute_passes(corot, days=0)


def test_a_long_window_searched_in_blocks_finds_the_passes_of_one_search(
        corot: MissionProfile, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime(2014, 6, 11, tzinfo=UTC)
    whole = compute_passes(corot, start, 8)  # one block: the window as a whole
    done: list[float] = []
    monkeypatch.setattr(passes_mod, "BLOCK_DAYS", 1.5)
    blocks = compute_passes(corot, start, 8, progress=done.append)
    assert len(blocks) == len(whole) > 50
    for a, b in zip(whole, blocks, strict=True):
        assert a.station == b.station
        assert abs((a.rise - b.rise).total_seconds()) < 0.5  # skyfield refines to ~0.1 s
        assert abs((a.set - b.set).total_seconds()) < 0.5  # skyfield refines to ~0.1 s
        assert len(a.elevation) == len(b.elevation)
    # progress: each station's search, block by block, in days
    assert sum(done) == pytest.approx(8 * 2) and len(done) == 2 * 6


def test_passes_from_another_tle(corot: MissionProfile) -> None:
    start = datetime(2014, 6, 11, tzinfo=UTC)
    own = compute_passes(corot, start, 1)
    # the same orbit, dated four hours later: the satellite is elsewhere at each instant
    text = redated_tle(datetime(2014, 6, 11, 8, 38, 58, tzinfo=UTC)).splitlines()
    other = compute_passes(corot, start, 1, elements=(text[0], text[1]))
    assert other and [p.rise for p in other] != [p.rise for p in own]
