"""Profile patches through the real paths: over the TC link into the spacecraft model, their
fates in the receiver's report, the event log and the TM packets (and the XTCE that
describes them), the figures in force in housekeeping, and a reset that keeps what was
committed and drops what was on probation (the one boot path re-reads conditions.vpp)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import TEST_KEY

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from ccl.verify.verdict import run_verifier
from ground import framing
from ground.erasure import encode
from ground.tm_stream import TmReader
from ground.xtce import vvm_xtce
from onboard.link.link_security import SecurityAssociation
from onboard.link.receiver import Outcome, decode_report
from onboard.mission import MissionProfile
from onboard.patching.conditions import CONDITIONS_FILE
from onboard.patching.patch_format import ProfilePatch, Reason, build_profile_patch
from onboard.patching.patcher import FateStatus, read_fate_code
from onboard.sim.spacecraft import Spacecraft
from tests.support import BUSY

LINK_KEY = bytes(range(32, 64))


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Compiled, int]:
    path = tmp_path_factory.mktemp("busy") / "busy.ccl"
    path.write_text(BUSY)
    c = Compiler().compile(path)
    verdict = run_verifier(c)
    assert verdict.status == "proven" and verdict.cycles_per_frame is not None
    return c, verdict.cycles_per_frame


class Link:
    """The ground's side of the TC link to one spacecraft: a transfer per patch."""

    def __init__(self, sc: Spacecraft, profile: MissionProfile) -> None:
        self.sc, self.profile = sc, profile
        self.counters = framing.Counters()
        self.transfer = 0

    def send(self, patch: bytes) -> int:
        """Every primary share of ``patch``; returns its transfer id."""
        self.transfer += 1
        enc = encode(patch, 512)
        frames, self.counters = framing.frames(
            enc, self.transfer, range(enc.k), self.profile.spacecraft_id, self.counters,
            SecurityAssociation(self.profile.receiver.spi, LINK_KEY))
        outcomes = [self.sc.receive(f.raw).outcome for f in frames]
        assert outcomes[-1] is Outcome.COMPLETED, outcomes
        # one frame: a profile patch is checked in its reserve (and waits for the next
        # boundary); a configuration patch is on its way
        self.sc.run_until(self.sc.now_ms + self.profile.frame_ms)
        return self.transfer

    def fate(self, transfer: int) -> tuple[FateStatus, Reason | None]:
        entry = decode_report(self.sc.report()).transfer(transfer)
        assert entry is not None
        return read_fate_code(entry.fate)


def flying(directory: Path, busy: tuple[Compiled, int]) -> tuple[Spacecraft, Link]:
    """A spacecraft running ``busy``, uplinked with its proven claim and committed."""
    c, need = busy
    sc = Spacecraft.create(c.mission, directory, TEST_KEY, LINK_KEY, probation_frames=10)
    link = Link(sc, c.mission)
    t = link.send(pack(c.image, [], c.mission, TEST_KEY, seq=1, cycles_per_frame=need).data)
    sc.run_until(sc.now_ms + 3_000)
    assert link.fate(t) == (FateStatus.COMMITTED, None)
    return sc, link


def figures(profile: MissionProfile, seq: int, **values: int) -> bytes:
    return build_profile_patch(ProfilePatch(profile.mission_id, profile.spacecraft_id, seq,
                                            values), TEST_KEY)


def test_a_profile_patch_over_the_link_is_refused_or_applied_and_told_in_telemetry(
        tmp_path: Path, busy: tuple[Compiled, int]) -> None:
    c, need = busy
    sc, link = flying(tmp_path / "sc", busy)
    share = c.mission.share_cycles_per_frame
    refused = link.send(figures(c.mission, 1, patch_reserve_cycles_per_frame=share - need + 1))
    assert link.fate(refused) == (FateStatus.REJECTED, Reason.OVER_BUDGET)
    assert sc.vvm.patch_reserve == c.mission.patch_reserve_cycles_per_frame
    applied = link.send(figures(c.mission, 2, patch_reserve_cycles_per_frame=share - need,
                                probation_frames=100))
    assert link.fate(applied) == (FateStatus.STAGED, None)
    assert sc.housekeeping()["conditions_phase"] == 1  # waits for the frame boundary
    sc.run_until(sc.now_ms + 100)
    assert link.fate(applied) == (FateStatus.ACTIVE, None)
    hk = sc.housekeeping()
    assert (hk["patch_reserve_cycles"], hk["conditions_seq"], hk["conditions_phase"]) == (
        share - need, 2, 2)
    assert sc.vvm.scheduler.budget_per_frame == need
    sc.run_until(sc.now_ms + 10_100)
    assert link.fate(applied) == (FateStatus.COMMITTED, None)
    assert sc.housekeeping()["conditions_phase"] == 0
    # the TM packets a mission control system reads, described by the XTCE
    packets = TmReader([c.image]).read(b"".join(sc.tm_packets()))
    fates = [p.values for p in packets if p.name == "FateReport"]
    told = {(f["ticket"], read_fate_code(f["code"])) for f in fates}
    assert (refused, (FateStatus.REJECTED, Reason.OVER_BUDGET)) in told
    assert {(applied, (s, None)) for s in (FateStatus.STAGED, FateStatus.ACTIVE,
                                           FateStatus.COMMITTED)} <= told
    assert any(f["message"].startswith("profile patch") for f in fates)
    [hk_packet] = [p.values for p in packets if p.name == "Housekeeping"]
    assert hk_packet["patch_reserve_cycles"] == share - need
    assert hk_packet["conditions_seq"] == 2
    xtce = vvm_xtce("corot", [c.image]).decode()
    for name in ("patch_reserve_cycles", "conditions_seq", "conditions_phase"):
        assert f'<xtce:Parameter name="Housekeeping_{name}"' in xtce


def test_committed_figures_survive_a_reset_and_figures_on_probation_do_not(
        tmp_path: Path, busy: tuple[Compiled, int]) -> None:
    c, need = busy
    sc, link = flying(tmp_path / "sc", busy)
    link.send(figures(c.mission, 1, patch_reserve_cycles_per_frame=12_000,
                      probation_frames=100))
    sc.run_until(sc.now_ms + 10_300)
    assert (tmp_path / "sc" / CONDITIONS_FILE).is_file()
    sc.reboot()
    assert sc.vvm.patch_reserve == 12_000 and sc.housekeeping()["conditions_seq"] == 1
    assert sc.vvm.scheduler.budget_per_frame == c.mission.share_cycles_per_frame - 12_000
    on_probation = link.send(figures(c.mission, 2, patch_reserve_cycles_per_frame=13_000))
    sc.run_until(sc.now_ms + 500)
    assert link.fate(on_probation) == (FateStatus.ACTIVE, None)
    assert sc.vvm.patch_reserve == 13_000
    sc.reboot()  # the power goes during probation: the figures committed come back
    assert sc.vvm.patch_reserve == 12_000
    assert sc.housekeeping()["conditions_seq"] == 2  # used: a replay is refused
    told = [e for e in sc.events.events if e.ticket == 2]  # the ticket is lost: its seq
    assert told[-1].message.startswith("profile patch: a reset during probation")
    assert read_fate_code(told[-1].code) == (FateStatus.ROLLED_BACK, None)
    replay = link.send(figures(c.mission, 2, patch_reserve_cycles_per_frame=13_000))
    assert link.fate(replay) == (FateStatus.REJECTED, Reason.REPLAY)
    # the demand is the board's own record, read back from the journal after the reset
    assert sc.reconfiguration.proven_demand() == (need, "the current configuration `busy` v1")
    too_much = link.send(figures(c.mission, 4, patch_reserve_cycles_per_frame=20_000))
    assert link.fate(too_much) == (FateStatus.REJECTED, Reason.OVER_BUDGET)
    sc.run_until(sc.now_ms + 1_000)
    assert not sc.vvm.telemetry.faults
