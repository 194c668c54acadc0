"""The onboard software as one object under CoRoT's flight profile (``corot:flight``): it
refuses the development patch key, the development link key, and unverified patches that
reach it over the authenticated link, each with a clear reason; the demo profile takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from ground import framing
from ground.erasure import encode
from onboard.link.downlink import decode_downlink
from onboard.link.link_security import LinkKeyRefused, SecurityAssociation, development_link_key
from onboard.link.receiver import Outcome, decode_report
from onboard.mission import MissionProfile, find_mission
from onboard.patching.patch_format import Reason, development_key
from onboard.patching.patcher import FateStatus, KeyRefused, read_fate_code
from onboard.sim.spacecraft import Spacecraft

ROOT = Path(__file__).resolve().parents[2]
EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"
PATCH_KEY, LINK_KEY = bytes(range(32)), bytes(range(32, 64))


@pytest.fixture(scope="module")
def exo() -> Compiled:
    return Compiler().compile(EXO)


@pytest.fixture(scope="module")
def flight() -> MissionProfile:
    profile = find_mission("corot:flight")
    assert profile.flight and profile.name == "corot" and profile.variant == "flight"
    return profile


def uplink(sc: Spacecraft, profile: MissionProfile, link_key: bytes, patch: bytes,
           transfer: int, counters: framing.Counters) -> framing.Counters:
    """Send every primary share of ``patch`` to ``sc``, then let it handle the patch."""
    enc = encode(patch, 512)
    frames, after = framing.frames(enc, transfer, range(enc.k), profile.spacecraft_id, counters,
                                   SecurityAssociation(profile.receiver.spi, link_key))
    outcomes = [sc.receive(f.raw).outcome for f in frames]
    assert outcomes[-1] is Outcome.COMPLETED, outcomes
    sc.run_until(sc.now_ms + 30_000)
    return after


def fate(sc: Spacecraft, transfer: int) -> tuple[FateStatus, Reason | None]:
    entry = decode_report(sc.report()).transfer(transfer)
    assert entry is not None
    return read_fate_code(entry.fate)


def test_the_flight_profile_refuses_the_development_patch_key(
        tmp_path: Path, flight: MissionProfile) -> None:
    with pytest.raises(KeyRefused, match="flight profile: it refuses the development key"):
        Spacecraft.create(flight, tmp_path / "store", development_key("corot"), LINK_KEY)


def test_the_flight_profile_refuses_the_development_link_key(
        tmp_path: Path, flight: MissionProfile) -> None:
    with pytest.raises(LinkKeyRefused, match="refuses the development link key"):
        Spacecraft.create(flight, tmp_path / "store", PATCH_KEY, development_link_key("corot"))
    assert not (tmp_path / "store").exists()   # refused before anything is written


def test_the_flight_profile_refuses_unverified_patches_over_the_link(
        tmp_path: Path, flight: MissionProfile, exo: Compiled) -> None:
    sc = Spacecraft.create(flight, tmp_path / "store", PATCH_KEY, LINK_KEY)
    vmlets = [v.image for v in exo.vmlets]
    unverified = pack(exo.image, vmlets, flight, PATCH_KEY, seq=1, unverified=True).data
    c = uplink(sc, flight, LINK_KEY, unverified, 1, framing.Counters())
    assert fate(sc, 1) == (FateStatus.REJECTED, Reason.UNVERIFIED)
    assert sc.config_hash() == bytes(32)       # nothing changed on board
    proven = pack(exo.image, vmlets, flight, PATCH_KEY, seq=2).data
    uplink(sc, flight, LINK_KEY, proven, 2, c)
    status, _ = fate(sc, 2)
    assert status in (FateStatus.ACTIVE, FateStatus.COMMITTED)
    assert sc.config_hash() == exo.image.content_hash


def test_the_demo_profile_takes_the_development_keys_and_unverified_patches(
        tmp_path: Path, exo: Compiled) -> None:
    demo = find_mission("corot")
    assert not demo.flight
    key, link_key = development_key("corot"), development_link_key("corot")
    sc = Spacecraft.create(demo, tmp_path / "store", key, link_key)
    data = pack(exo.image, [v.image for v in exo.vmlets], demo, key, seq=1,
                unverified=True).data
    uplink(sc, demo, link_key, data, 1, framing.Counters())
    assert fate(sc, 1)[0] in (FateStatus.ACTIVE, FateStatus.COMMITTED)


def test_the_downlink_carries_every_fate_and_keeps_them_across_a_reset(
        tmp_path: Path, exo: Compiled) -> None:
    demo = find_mission("corot")
    key, link_key = development_key("corot"), development_link_key("corot")
    sc = Spacecraft.create(demo, tmp_path / "store", key, link_key)
    data = pack(exo.image, [v.image for v in exo.vmlets], demo, key, seq=1).data
    uplink(sc, demo, link_key, data, 1, framing.Counters())
    sc.run_until(sc.now_ms + 120_000)   # past the probation
    packet = decode_downlink(sc.downlink())
    assert decode_report(packet.report).transfer(1) is not None
    statuses = [read_fate_code(e.code)[0] for e in packet.events if e.ticket == 1]
    assert statuses == [FateStatus.RECEIVED, FateStatus.STAGED, FateStatus.ACTIVE,
                        FateStatus.COMMITTED]
    times = [e.time_ms for e in packet.events]
    assert times == sorted(times) and times[-1] - times[2] == 60_000  # 600 frames of 100 ms
    sc.reboot()   # the receiver forgets its transfers; the event log is kept
    after = decode_downlink(sc.downlink())
    assert decode_report(after.report).transfer(1) is None
    assert after.events[:4] == packet.events
