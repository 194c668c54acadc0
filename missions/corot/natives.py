"""The simulated CoRoT instrument: the ``Host`` the VVM runs CoRoT configurations against.

The VVM imports this file by path and calls :func:`make_host` (keep that name). The host is
deterministic for a given seed and depends on simulated time only (``advance(now_ms)``, never
the host's clock): the same seed and the same exposure index always give the same numbers,
whatever the history of calls (``advance`` may jump over exposures).

The model
---------
* ``N`` star windows, ``N`` = the size of the ``star`` argument range of ``flux`` in the
  profile (6000 for CoRoT). Each star has a base flux, log-uniform in
  ``[flux_min, flux_max]``, and a noise sigma ``max(1, round(noise_scale * sqrt(base)))``
  (clamped into the result range of ``noise``), both fixed for the run (``noise(s)`` returns
  this sigma).
* Exposures last ``exposure_ms``; the current exposure is ``now_ms // exposure_ms``. Each
  exposure, star ``s`` reads ``base + n`` with ``n`` an integer uniform in ``[-2 sigma,
  +2 sigma]`` (bounded: two hit-free samples never differ by more than ``4 sigma``), plus a
  cosmic-ray hit with probability ``hit_probability`` of amplitude uniform in
  ``[hit_min_sigma, hit_max_sigma]`` sigmas, clamped into the result range of ``flux``.
* Refractory rule: a hit on star ``s`` at exposure ``e`` is suppressed when ``s`` was a
  hit *candidate* at ``e - 1`` or ``e - 2`` (candidates are drawn independently per exposure,
  so exposure ``e`` is a pure function of the seed and ``e``). Hits on one star are therefore
  at least three exposures apart, which a 3-point median needs to see each of them; the
  effective hit rate is ``p * (1 - p) ** 2``, indistinguishable from ``p`` at 0.002.
* All per-star arrays are computed in ``advance`` when the exposure index changes (and once at
  construction, for exposure 0); ``flux`` and ``noise`` are one list index (about 60 ns a
  call in CPython 3.11, ``advance`` about 1.2 ms at an exposure change, 0.1 us otherwise).
  Natives do not check their arguments: the VVM checks them against the profile's ranges.
* Every injected hit of every exposure the host made current is recorded as
  ``(exposure, star)``; ``flag`` records ``(exposure, star, code)``; ``heater_set`` records the
  set point of its zone and ``(now_ms, zone, mk)``. These records keep the most recent
  ``RECENT_RECORDS`` (at least; a simulated day of exo_e1 is about 33,000 hits and 37,000
  flags) in compact integer arrays, and count every record exactly (``hit_count``,
  ``flag_count``): a month-long run stays in bounded memory.

The exo_e1 cosmic-ray filter against this model
-----------------------------------------------
The filter flags ``s`` when ``|f - med3(f, last1[s], last2[s])| * 10 > cr_k10 * noise(s)``
(``cr_k10 = 50``: more than 5 sigma), ``last1``/``last2`` being its two previous samples.

* Warm-up: the first two runs after a configuration starts see zeros in ``last1``/``last2``
  (state is zero-initialised). On the first run the median is 0, so every star is flagged.
  On the second the median is ``min(f, last1)``; in this model that is still exact (see
  below), but it is not the steady-state filter, so treat the first two exposures after a
  configuration starts as warm-up.
* Afterwards detection is exact: a hit-free sample is within ``4 sigma`` of the median of its
  window (the median of three values lies between hit-free neighbours, or is one, since a
  window holds at most one hit), and a hit sample exceeds it by at least ``12 - 4 = 8`` sigma.
  So exactly the injected hits are flagged, for any ``cr_k10`` in ``40..79`` with the default
  ``hit_min_sigma = 12`` (exactness needs ``4 <= k < hit_min_sigma - 4``).

:func:`reference_cosmic_filter` runs the same filter in Python, for tests and telemetry checks.

The ``[sim]`` section of ``mission.toml`` (all optional, defaults below) is read from
``profile.raw``; the onboard VVM and the ground tools ignore it.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable
from typing import Any

from onboard.mission import MissionError, MissionProfile
from onboard.vm.host import NativeFn

#: Defaults of the ``[sim]`` keys.
SIM_DEFAULTS: dict[str, float] = {
    "exposure_ms": 32_000,
    "flux_min": 20_000,
    "flux_max": 2_000_000,
    "noise_scale": 1.0,
    "hit_probability": 0.002,
    "hit_min_sigma": 12.0,
    "hit_max_sigma": 200.0,
    "nominal_window_px": 150,
}

#: Hit-free noise is bounded to +- this many sigmas (part of the exactness argument above).
NOISE_BOUND_SIGMA = 2

#: Records of each kind (hits, flags, heater settings) kept: at least this many of the most
#: recent, at most twice as many (trimmed in one move, amortised).
RECENT_RECORDS = 1 << 16


class RecentRecords:
    """The most recent records of fixed width (tuples of integers), kept column-wise in
    int64 arrays (8 bytes a value, not a tuple of objects), and how many there ever were."""

    def __init__(self, width: int, keep: int | None = None) -> None:
        self._columns = tuple(array("q") for _ in range(width))
        self._keep = RECENT_RECORDS if keep is None else keep
        self.count = 0  # every record ever added, the trimmed ones too

    def add(self, *row: int) -> None:
        """Record ``row`` (as wide as the records)."""
        for column, value in zip(self._columns, row, strict=True):
            column.append(value)
        self.count += 1
        if len(self._columns[0]) > 2 * self._keep:
            for column in self._columns:
                del column[:-self._keep]

    def rows(self) -> list[tuple[int, ...]]:
        """The records kept, oldest first."""
        return list(zip(*self._columns, strict=True))


class CorotHost:
    """The CoRoT instrument for one simulation run (implements ``onboard.vm.host.Host``)."""

    def __init__(self, profile: MissionProfile, seed: int) -> None:
        self.profile = profile
        self.seed = int(seed)
        sim: dict[str, Any] = {**SIM_DEFAULTS, **dict(profile.raw.get("sim", {}))}
        unknown = set(sim) - set(SIM_DEFAULTS)
        if unknown:
            raise MissionError(f"[sim] has unknown keys: {', '.join(sorted(unknown))}",
                               f"known keys: {', '.join(SIM_DEFAULTS)}")
        self.exposure_ms = int(sim["exposure_ms"])
        flux_min, flux_max = float(sim["flux_min"]), float(sim["flux_max"])
        noise_scale = float(sim["noise_scale"])
        self.hit_probability = float(sim["hit_probability"])
        self.hit_min_sigma = float(sim["hit_min_sigma"])
        self.hit_max_sigma = float(sim["hit_max_sigma"])
        self._area = int(sim["nominal_window_px"])
        if self.exposure_ms < 1 or self._area < 1:
            raise MissionError("[sim] exposure_ms and nominal_window_px must be >= 1")
        if not 0 < flux_min <= flux_max or noise_scale < 0:
            raise MissionError("[sim] needs 0 < flux_min <= flux_max and noise_scale >= 0")
        if not 0.0 <= self.hit_probability < 1.0:
            raise MissionError("[sim] hit_probability must be in [0, 1)")
        if not 0 <= self.hit_min_sigma <= self.hit_max_sigma:
            raise MissionError("[sim] needs 0 <= hit_min_sigma <= hit_max_sigma")

        try:
            flux_spec, noise_spec = profile.natives["flux"], profile.natives["noise"]
            ws_spec = profile.natives["window_sum"]
        except KeyError as exc:
            raise MissionError(f"mission {profile.name} lacks native {exc}") from None
        assert flux_spec.result and noise_spec.result and ws_spec.result
        star = flux_spec.args[0]
        if star.lo != 0:
            raise MissionError("flux: star indices must start at 0")
        self.n_stars = star.hi + 1
        self._flux_lo, self._flux_hi = flux_spec.result
        noise_lo, noise_hi = noise_spec.result
        # Largest value of one pixel: the result range of window_sum over the largest window.
        self._pixel_max = ws_spec.result[1] // (ws_spec.args[1].hi * ws_spec.args[2].hi)
        self._env = {name: key.value for name, key in profile.env.items()}

        # Per-star constants, from the seed only.
        rnd = random.Random(f"corot-stars:{self.seed}")
        log_lo, log_hi = math.log(flux_min), math.log(flux_max)
        self._base = [int(math.exp(rnd.uniform(log_lo, log_hi))) for _ in range(self.n_stars)]
        self._sigma = [min(noise_hi, max(1, noise_lo, round(noise_scale * math.sqrt(b))))
                       for b in self._base]
        bound = NOISE_BOUND_SIGMA
        self._noise_lo = [b - bound * s for b, s in zip(self._base, self._sigma, strict=True)]
        self._noise_span = [2 * bound * s + 1 for s in self._sigma]
        # Whether any flux of any exposure can leave the declared range (not with defaults).
        top = max((b + (bound + math.ceil(self.hit_max_sigma)) * s
                   for b, s in zip(self._base, self._sigma, strict=True)), default=0)
        self._clamp = top > self._flux_hi or min(self._noise_lo, default=0) < self._flux_lo

        # Per-exposure state; the lists are updated in place, never replaced.
        self._flux = [0] * self.n_stars
        self._candidates: dict[int, tuple[list[int], list[float]]] = {}
        self._hits = RecentRecords(2)  # (exposure, star)
        self._flags = RecentRecords(3)  # (exposure, star, code)
        self._heaters: dict[int, int] = {}
        self._heater_log = RecentRecords(3)  # (now_ms, zone, mk)
        self._natives: dict[str, NativeFn] = {
            "flux": self.flux,
            "noise": self.noise,
            "flag": self.flag,
            "window_sum": self.window_sum,
            "heater_set": self.heater_set,
        }
        self.now_ms = 0
        self.exposure = 0
        self._expose(0)

    # ------------------------------------------------------------------ Host protocol

    def native(self, name: str) -> NativeFn | None:
        return self._natives.get(name)

    def env(self, key: str) -> int:
        return self._env[key]

    def advance(self, now_ms: int) -> None:
        if now_ms < self.now_ms:
            raise ValueError(f"simulated time went back from {self.now_ms} ms to {now_ms} ms")
        self.now_ms = now_ms
        exposure = now_ms // self.exposure_ms
        if exposure != self.exposure:
            self.exposure = exposure
            self._expose(exposure)

    # ------------------------------------------------------------------ natives (hot path)

    def flux(self, star: int) -> int:
        return self._flux[star]

    def noise(self, star: int) -> int:
        return self._sigma[star]

    def flag(self, star: int, code: int) -> None:
        self._flags.add(self.exposure, star, code)

    def window_sum(self, star: int, w: int, h: int) -> int:
        v = self._flux[star] * w * h // self._area
        cap = self._pixel_max * w * h
        return v if v < cap else cap

    def heater_set(self, zone: int, mk: int) -> None:
        self._heaters[zone] = mk
        self._heater_log.add(self.now_ms, zone, mk)

    # ------------------------------------------------------------------ inspection

    def injected_hits(self) -> list[tuple[int, int]]:
        """``(exposure, star)`` of the recent cosmic-ray hits of the exposures made current
        (all of them in a run of less than about two simulated days), oldest first."""
        return self._hits.rows()  # type: ignore[return-value]

    @property
    def hit_count(self) -> int:
        """Cosmic-ray hits injected since the start, the ones no longer kept too."""
        return self._hits.count

    def flags(self) -> list[tuple[int, int, int]]:
        """``(exposure, star, code)`` of the recent ``flag`` calls, in call order."""
        return self._flags.rows()  # type: ignore[return-value]

    @property
    def flag_count(self) -> int:
        """``flag`` calls since the start, the ones no longer kept too."""
        return self._flags.count

    def heater_settings(self) -> dict[int, int]:
        """Current set point of every zone that has been set: ``{zone: millikelvin}``."""
        return dict(self._heaters)

    def heater_log(self) -> list[tuple[int, int, int]]:
        """``(now_ms, zone, mk)`` of the recent ``heater_set`` calls, in call order."""
        return self._heater_log.rows()  # type: ignore[return-value]

    def base_flux(self, star: int) -> int:
        """The star's hit-free mean flux (for tests and telemetry)."""
        return self._base[star]

    # ------------------------------------------------------------------ exposures

    def _hit_candidates(self, exposure: int) -> tuple[list[int], list[float]]:
        """Stars that may be hit at ``exposure`` and their amplitudes in sigmas: a pure
        function of the seed and the exposure (geometric gaps: Bernoulli(p) per star)."""
        cached = self._candidates.get(exposure)
        if cached is not None:
            return cached
        stars: list[int] = []
        amps: list[float] = []
        p = self.hit_probability
        if exposure >= 0 and p > 0.0:
            rnd = random.Random(f"corot-hits:{self.seed}:{exposure}")
            log_q = math.log1p(-p)
            lo, hi = self.hit_min_sigma, self.hit_max_sigma
            s = -1
            while True:
                s += 1 + int(math.log(1.0 - rnd.random()) / log_q)
                if s >= self.n_stars:
                    break
                stars.append(s)
                amps.append(rnd.uniform(lo, hi))
        self._candidates[exposure] = (stars, amps)
        return stars, amps

    def _expose(self, exposure: int) -> None:
        """Compute every star's flux for ``exposure`` (in place) and record its hits."""
        rnd = random.Random(f"corot-noise:{self.seed}:{exposure}")
        r = rnd.random
        self._flux[:] = [lo + int(r() * span)
                         for lo, span in zip(self._noise_lo, self._noise_span, strict=True)]
        stars, amps = self._hit_candidates(exposure)
        recent = set(self._hit_candidates(exposure - 1)[0])
        recent.update(self._hit_candidates(exposure - 2)[0])
        for key in [k for k in self._candidates if k < exposure - 2]:
            del self._candidates[key]
        flux, sigma, hits = self._flux, self._sigma, self._hits
        for s, amp in zip(stars, amps, strict=True):
            if s not in recent:
                flux[s] += int(sigma[s] * amp)
                hits.add(exposure, s)
        if self._clamp:
            lo, hi = self._flux_lo, self._flux_hi
            flux[:] = [lo if f < lo else hi if f > hi else f for f in flux]


def make_host(profile: MissionProfile, seed: int) -> CorotHost:
    """The factory the VVM calls after importing this file by path."""
    return CorotHost(profile, seed)


def reference_cosmic_filter(host: CorotHost, n_stars: int, cr_k10: int,
                            exposures: int | Iterable[int]) -> set[tuple[int, int]]:
    """What exo_e1's ``cosmic_filter`` flags, in pure Python: ``(exposure, star)`` pairs.

    The configuration starts with the first of ``exposures`` (an int ``n`` means exposures
    ``0 .. n-1``), with ``last1``/``last2`` zero, and runs once per listed exposure (list them
    consecutively to model the 32 s task). Advances ``host`` (so its injected hits are
    recorded); the host must not be past the first exposure.
    """
    if isinstance(exposures, int):
        exposures = range(exposures)
    last1 = [0] * n_stars
    last2 = [0] * n_stars
    flux, noise = host.flux, host.noise
    flagged: set[tuple[int, int]] = set()
    for e in exposures:
        host.advance(max(host.now_ms, e * host.exposure_ms))
        if host.exposure != e:
            raise ValueError(f"host is at exposure {host.exposure}, past exposure {e}")
        for s in range(n_stars):
            f, a, b = flux(s), last1[s], last2[s]
            m = max(min(f, a), min(max(f, a), b))  # med3 as the photometry VMlet defines it
            if abs(f - m) * 10 > cr_k10 * noise(s):
                flagged.add((e, s))
            last2[s] = a
            last1[s] = f
    return flagged
