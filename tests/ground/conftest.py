"""Shared fixtures of the ground tests: the CoRoT profile, its passes and uplink windows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ground.link import LinkBudget, UplinkWindow, uplink_windows
from ground.passes import Pass, compute_passes
from onboard.link.link_security import SecurityAssociation, development_link_key
from onboard.mission import MissionProfile, find_mission


@pytest.fixture(scope="session")
def corot() -> MissionProfile:
    return find_mission("corot")


@pytest.fixture(scope="session")
def corot_passes(corot: MissionProfile) -> list[Pass]:
    """Ten days of CoRoT passes over Kiruna and Aussaguel from the TLE epoch day."""
    return compute_passes(corot, days=10)


@pytest.fixture(scope="session")
def corot_windows(corot: MissionProfile, corot_passes: list[Pass]) -> list[UplinkWindow]:
    return uplink_windows(corot_passes, LinkBudget.from_profile(corot))


@pytest.fixture(scope="session")
def corot_link(corot: MissionProfile) -> SecurityAssociation:
    """The security association of CoRoT's TC link under its development link key."""
    return SecurityAssociation(corot.receiver.spi, development_link_key("corot"))


@pytest.fixture(scope="session")
def make_patch() -> Callable[..., bytes]:
    """Bytes of a patch in the onboard patch format (header, no section, tag) plus filler."""
    from onboard.patching import patch_format as pf

    def make(base: bytes, target: bytes, full: bool = False, code: int = 100,
             data: int = 400) -> bytes:
        header = pf.Header(pf.Flag.FULL if full else pf.Flag(0), 1, 29678, 5, 4, base, target,
                           pf.Claims(1000, 100, code, data))
        return pf.assemble(header, [], pf.development_key("corot")) + bytes(2000)

    return make


@pytest.fixture(scope="session")
def exo_patches(corot: MissionProfile) -> dict[str, bytes]:
    """Real CoRoT patches under the development key: ``v5`` the full exo_e1 (nothing on board
    before it), ``v6`` the delta of its one-parameter change against v5; ``v5_hash`` the
    content hash of exo_e1 v5 (what telemetry shows once it runs)."""
    from ccl.driver import Compiler
    from ccl.pack import pack
    from onboard.patching.patch_format import development_key

    configs = Path(__file__).resolve().parents[2] / "missions" / "corot" / "configs"
    compiler = Compiler()
    v5, v6 = (compiler.compile(configs / name) for name in ("exo_e1.ccl", "exo_e1_v6.ccl"))
    key = development_key("corot")
    return {"v5": pack(v5.image, [v.image for v in v5.vmlets], corot, key, seq=5).data,
            "v6": pack(v6.image, [v.image for v in v6.vmlets], corot, key, seq=6,
                       base=v5.image).data,
            "v5_hash": v5.image.content_hash}


@pytest.fixture(scope="session")
def framed_patch() -> Callable[..., bytes]:
    """A patch of ``size`` bytes that passes the ground's checks before uplink (a header of
    mission corot, one VMLET section of filler, its CRCs and its tag under the development
    key) but that the board rejects when it decodes the carried VMlet."""
    from onboard.patching import patch_format as pf

    def make(size: int, seq: int = 5, base: bytes = bytes(8), target: bytes = bytes(range(8)),
             full: bool = True, key: bytes | None = None) -> bytes:
        header = pf.Header(pf.Flag.FULL if full else pf.Flag(0), 1, 29678, seq, 4, base,
                           target, pf.Claims(1000, 100, 100, 400))
        filler = 0
        for _ in range(4):  # the section's length varint grows with the filler: settle it
            data = pf.assemble(header, [pf.build_frame(pf.SectionType.VMLET, bytes(filler))],
                               key or pf.development_key("corot"))
            filler = max(0, filler + size - len(data))
        return data

    return make
