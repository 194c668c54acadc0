"""The simulated CoRoT instrument (missions/corot/natives.py): determinism, ranges, exposure
timing, the cosmic-ray model against the exo_e1 filter, and the recording natives."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
from pathlib import Path

import pytest

from missions.corot.natives import CorotHost, make_host, reference_cosmic_filter
from onboard.mission import MissionError, MissionProfile, load_profile

ROOT = Path(__file__).resolve().parents[2]
NATIVES_PY = ROOT / "missions" / "corot" / "natives.py"
EXPOSURE = 32_000


@pytest.fixture(scope="module")
def profile() -> MissionProfile:
    return load_profile(ROOT / "missions" / "corot" / "mission.toml")


def with_sim(profile: MissionProfile, **sim: object) -> MissionProfile:
    raw = dict(profile.raw)
    raw["sim"] = {**raw.get("sim", {}), **sim}
    return dataclasses.replace(profile, raw=raw)


def snapshot(host: CorotHost, exposures: range) -> list[list[int]]:
    out = []
    for e in exposures:
        host.advance(e * host.exposure_ms)
        out.append([host.flux(s) for s in range(host.n_stars)])
    return out


# ---------------------------------------------------------------------- the profile


def test_sim_section_and_star_count(profile: MissionProfile) -> None:
    host = CorotHost(profile, 1)
    assert host.exposure_ms == EXPOSURE
    assert host.n_stars == 6000 == profile.natives["flux"].args[0].hi + 1
    assert host.hit_probability == 0.002


def test_sim_overrides_and_bad_keys(profile: MissionProfile) -> None:
    host = CorotHost(with_sim(profile, exposure_ms=1000), 1)
    a = host.flux(0)
    host.advance(999)
    assert host.flux(0) == a and host.exposure == 0
    host.advance(1000)
    assert host.exposure == 1
    with pytest.raises(MissionError, match="unknown keys"):
        CorotHost(with_sim(profile, exposure_s=32), 1)
    with pytest.raises(MissionError):
        CorotHost(with_sim(profile, hit_probability=1.0), 1)


# ---------------------------------------------------------------------- determinism


def test_same_seed_same_sequences(profile: MissionProfile) -> None:
    a, b = CorotHost(profile, 42), CorotHost(profile, 42)
    assert snapshot(a, range(6)) == snapshot(b, range(6))
    assert [a.noise(s) for s in range(6000)] == [b.noise(s) for s in range(6000)]
    assert a.injected_hits() == b.injected_hits()
    assert a.window_sum(17, 10, 15) == b.window_sum(17, 10, 15)


def test_different_seed_different_sequences(profile: MissionProfile) -> None:
    a, b = CorotHost(profile, 1), CorotHost(profile, 2)
    assert snapshot(a, range(3)) != snapshot(b, range(3))
    assert [a.noise(s) for s in range(6000)] != [b.noise(s) for s in range(6000)]
    assert a.injected_hits() != b.injected_hits()


def test_exposure_is_a_function_of_seed_and_index(profile: MissionProfile) -> None:
    """Jumping over exposures gives the same numbers (and hits) as stepping through them."""
    stepped, jumped = CorotHost(profile, 7), CorotHost(profile, 7)
    last = snapshot(stepped, range(10))[-1]
    jumped.advance(9 * EXPOSURE + 5)
    assert [jumped.flux(s) for s in range(6000)] == last
    assert [h for h in stepped.injected_hits() if h[0] == 9] == [
        h for h in jumped.injected_hits() if h[0] == 9]
    assert {h[0] for h in jumped.injected_hits()} == {0, 9}


# ---------------------------------------------------------------------- ranges and timing


def test_values_within_declared_ranges(profile: MissionProfile) -> None:
    host = CorotHost(profile, 3)
    flux_lo, flux_hi = profile.natives["flux"].result or (0, 0)
    noise_lo, noise_hi = profile.natives["noise"].result or (0, 0)
    ws = profile.natives["window_sum"]
    ws_lo, ws_hi = ws.result or (0, 0)
    rnd = random.Random(0)
    for e in range(4):
        host.advance(e * EXPOSURE)
        for s in range(6000):
            assert flux_lo <= host.flux(s) <= flux_hi
            assert max(1, noise_lo) <= host.noise(s) <= noise_hi
        for _ in range(3000):
            s, w, h = rnd.randrange(6000), rnd.randint(1, 64), rnd.randint(1, 64)
            assert ws_lo <= host.window_sum(s, w, h) <= ws_hi
    assert all(ws_lo <= host.window_sum(s, 64, 64) <= ws_hi for s in range(6000))
    bases = [host.base_flux(s) for s in range(6000)]
    assert 20_000 <= min(bases) < 40_000 and 1_000_000 < max(bases) <= 2_000_000


def test_window_sum_scales_with_area(profile: MissionProfile) -> None:
    host = CorotHost(profile, 3)
    assert host.window_sum(5, 10, 15) == host.flux(5)      # the nominal 150-pixel window
    assert host.window_sum(5, 20, 15) == host.flux(5) * 2
    assert host.window_sum(5, 1, 1) <= 65_535               # one pixel of a 16-bit ADC


def test_flux_changes_only_at_exposure_boundaries(profile: MissionProfile) -> None:
    host = CorotHost(profile, 5)
    first = [host.flux(s) for s in range(6000)]
    for t in (0, 1, 100, 16_000, 31_999):
        host.advance(t)
        assert host.exposure == 0
        assert [host.flux(s) for s in range(6000)] == first
    host.advance(32_000)
    assert host.exposure == 1
    second = [host.flux(s) for s in range(6000)]
    assert sum(a != b for a, b in zip(first, second, strict=True)) > 5_900
    host.advance(63_999)
    assert [host.flux(s) for s in range(6000)] == second
    with pytest.raises(ValueError, match="back"):
        host.advance(63_998)


# ---------------------------------------------------------------------- cosmic rays


def test_reference_filter_detects_exactly_the_injected_hits(profile: MissionProfile) -> None:
    host = CorotHost(profile, 2024)
    n_exp = 20
    flagged = reference_cosmic_filter(host, 6000, 50, n_exp)
    hits = set(host.injected_hits())
    assert len(hits) == len(host.injected_hits())            # no duplicates
    assert 120 < len(hits) < 400                             # ~ 20 * 6000 * 0.002 = 240
    # Warm-up: the first run compares with med3(f, 0, 0) = 0 and flags every star.
    assert {s for e, s in flagged if e == 0} == set(range(6000))
    # After the two warm-up exposures: exactly the hits, nothing else.
    assert {x for x in flagged if x[0] >= 2} == {x for x in hits if x[0] >= 2}
    # In this model the second run (median min(f, last1)) is already exact too.
    assert {x for x in flagged if x[0] == 1} == {x for x in hits if x[0] == 1}


def test_hits_on_a_star_are_three_exposures_apart(profile: MissionProfile) -> None:
    host = CorotHost(with_sim(profile, hit_probability=0.05), 9)
    host.advance(60 * EXPOSURE)      # jumps: only exposure 60 is made current
    for e in range(61, 100):
        host.advance(e * EXPOSURE)
    last: dict[int, int] = {}
    for e, s in host.injected_hits():
        assert e - last.get(s, -10) >= 3
        last[s] = e
    assert len(host.injected_hits()) > 40 * 6000 * 0.04


def test_hit_amplitude(profile: MissionProfile) -> None:
    host = CorotHost(profile, 11)
    for e in range(30):
        host.advance(e * EXPOSURE)
        for he, s in host.injected_hits():
            if he == e:
                excess = host.flux(s) - host.base_flux(s)
                assert 10 * host.noise(s) <= excess <= 202 * host.noise(s)


def test_filter_with_dense_hits_stays_exact(profile: MissionProfile) -> None:
    host = CorotHost(with_sim(profile, hit_probability=0.05), 4)
    flagged = reference_cosmic_filter(host, 1000, 50, range(100, 110))
    hits = {x for x in host.injected_hits() if x[1] < 1000}
    assert {x for x in flagged if x[0] >= 101} == {x for x in hits if x[0] >= 101}


# ---------------------------------------------------------------------- natives and env


def test_native_lookup_and_env(profile: MissionProfile) -> None:
    host = CorotHost(profile, 1)
    for name in profile.natives:
        assert callable(host.native(name))
    assert host.native("nope") is None
    assert host.native("advance") is None
    flux = host.native("flux")
    assert flux is not None and flux(3) == host.flux(3)
    assert host.env("ccd") == profile.env["ccd"].value == 1
    assert host.env("channel") == 0


def test_flag_and_heater_set_are_recorded(profile: MissionProfile) -> None:
    host = CorotHost(profile, 1)
    flag, heater = host.native("flag"), host.native("heater_set")
    assert flag is not None and heater is not None
    assert flag(12, 1) is None
    host.advance(3 * EXPOSURE + 10)
    flag(5999, 255)
    assert heater(2, 293_150) is None
    heater(2, 295_000)
    heater(7, 250_000)
    assert host.flags() == [(0, 12, 1), (3, 5999, 255)]
    assert host.heater_settings() == {2: 295_000, 7: 250_000}
    assert host.heater_log() == [(96_010, 2, 293_150), (96_010, 2, 295_000),
                                 (96_010, 7, 250_000)]


def test_make_host_imported_by_path(profile: MissionProfile) -> None:
    spec = importlib.util.spec_from_file_location("corot_natives_by_path", NATIVES_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host, same = module.make_host(profile, 42), make_host(profile, 42)
    assert type(host).__name__ == "CorotHost"
    assert [host.flux(s) for s in range(6000)] == [same.flux(s) for s in range(6000)]
