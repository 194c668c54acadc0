"""The host: what the spacecraft offers the VVM, as the VVM sees it.

A mission provides an implementation (for CoRoT, ``missions/corot/natives.py`` simulates the
instrument). The VVM binds natives by name at load time, charges each call the cost its
mission profile declares (never the host's own time), checks arguments and results against
the declared ranges, and tells the host the simulated time before it runs anything, so that
a host's behaviour depends on simulated time only.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from onboard.mission import MissionProfile

#: A native as the VVM calls it: integer arguments, an integer result or None.
NativeFn = Callable[..., "int | None"]


class Host(Protocol):
    """The services of one spacecraft, for one simulation run."""

    def native(self, name: str) -> NativeFn | None:
        """The implementation of native ``name``, or None if this host lacks it."""
        ...

    def env(self, key: str) -> int:
        """The value of environment key ``key`` (e.g. ``ccd``)."""
        ...

    def advance(self, now_ms: int) -> None:
        """Simulated time is now ``now_ms`` (monotonic, from the start of the run)."""
        ...


class _NoNatives:
    """The host of a mission that simulates no spacecraft services."""

    def native(self, name: str) -> NativeFn | None:
        return None

    def env(self, key: str) -> int:
        return 0

    def advance(self, now_ms: int) -> None:
        return None


def mission_host(profile: MissionProfile, seed: int) -> Host:
    """The mission's simulated host: ``make_host(profile, seed)`` of its ``natives.py``."""
    path = profile.directory / "natives.py"
    if not path.exists():
        return _NoNatives()
    spec = importlib.util.spec_from_file_location(f"vvm_natives_{profile.name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    host: Host = module.make_host(profile, seed)
    return host
