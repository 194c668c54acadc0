"""A channel's part of the share as a soft figure: a profile patch changes the applications'
parts on a board (and its patch reserve) within the flight build's limits, the 10 % share
still hard (``cycles_left``, the one admission rule), refused if an application's proven
demand would not fit its new part; applied at a frame boundary, on probation, rolled back
by a fault of any application, committed and kept across a reset."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest
from support import TEST_KEY

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from ccl.verify.verdict import run_verifier
from missions.corot.natives import make_host
from onboard.mission import MissionProfile
from onboard.patching.board_conditions import BoardConditions
from onboard.patching.conditions import CONDITIONS_FILE, ProfileConditions
from onboard.patching.patch_format import ProfilePatch, Reason, build_profile_patch
from onboard.patching.patcher import FateStatus, Patcher
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Store
from onboard.vm.board import Board

SOURCE = """\
mission corot;
config {name} version 1;
param n : int[0..{top}] = 10;
param d : int[0..10] = 1;
var acc : int[0..100000];
task t every 100 ms {{ for i in 0 .. n {{ acc = (acc + i / d) % 100000; }} }}
"""


def compiled(directory: Path, name: str, top: int) -> tuple[Compiled, int]:
    path = directory / f"{name}.ccl"
    path.write_text(SOURCE.format(name=name, top=top))
    c = Compiler().compile(path)
    verdict = run_verifier(c, reuse=True)  # d may be 0 (tests make it trap): cost still proven
    assert verdict.cycles_per_frame is not None
    return c, verdict.cycles_per_frame


@pytest.fixture()
def programs(tmp_path: Path) -> dict[str, tuple[Compiled, int]]:
    return {"photo": compiled(tmp_path, "photo", 750), "aux": compiled(tmp_path, "aux", 50)}


def built(directory: Path, programs: dict[str, tuple[Compiled, int]]) -> BoardConditions:
    """photo with 5 % (100,000 cycles) running a configuration proven to need about
    90,000; aux with 3 %; each took its configuration as a proven patch, committed."""
    mission = programs["photo"][0].mission
    board = Board(mission)
    for (name, (c, need)), share in zip(programs.items(), (5, 3), strict=True):
        vm = board.add(name, share, make_host(mission, share), takes_patches=True)
        Reconfiguration(vm, Patcher(mission, Store.init(directory / name), TEST_KEY,
                                    probation_frames=5, limits=partial(board.limits, name)))
        board.receive_patch(name, pack(c.image, [], mission, TEST_KEY, seq=1,
                                       cycles_per_frame=need).data, 1)
    board.run_for(2_000)
    (directory / "board").mkdir(exist_ok=True)
    return BoardConditions(board, ProfileConditions(mission, TEST_KEY, directory / "board"))


def part(profile: MissionProfile, seq: int, number: int, percent: int, **more: int) -> bytes:
    return build_profile_patch(ProfilePatch(profile.mission_id, profile.spacecraft_id, seq,
                                            {f"part_percent.{number}": percent, **more}),
                               TEST_KEY)


def digest(directory: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(directory.rglob("*"))
                                   if p.is_file())).hexdigest()


def test_a_part_too_small_for_what_its_application_is_proven_to_need_is_refused(
        tmp_path: Path, programs: dict[str, tuple[Compiled, int]]) -> None:
    bc = built(tmp_path, programs)
    mission, need = programs["photo"][0].mission, programs["photo"][1]
    assert 80_000 < need <= 100_000
    before = digest(tmp_path)
    fate = bc.receive(part(mission, 1, 0, 4))
    assert (fate.status, fate.reason, fate.figure) == ("rejected", "over-budget",
                                                       "part_percent.0")
    assert f"`photo` v1 of application `photo` is proven to need {need}" in fate.message
    bc.run_for(1_000)
    assert digest(tmp_path) == before
    assert bc.board.applications["photo"].share_percent == 5


def test_parts_beyond_the_share_are_refused_by_the_one_admission_rule(
        tmp_path: Path, programs: dict[str, tuple[Compiled, int]]) -> None:
    bc = built(tmp_path, programs)
    mission = programs["photo"][0].mission
    fate = bc.receive(part(mission, 1, 1, 5))  # 5 + 5 % and the reserve > 10 %
    assert fate.reason == "over-budget" and "cycles over the 10 % share" in fate.message
    fate = bc.receive(part(mission, 2, 0, 7))  # 7 + 3 % leave no room for the reserve
    assert fate.reason == "over-budget" and "10000 cycles over" in fate.message
    assert bc.receive(part(mission, 3, 2, 1)).reason == "out-of-limits"  # no application 2
    assert bc.receive(part(mission, 4, 0, 10)).reason == "out-of-limits"  # above 9 %


def test_a_new_part_is_in_force_at_a_frame_boundary_on_probation_then_committed(
        tmp_path: Path, programs: dict[str, tuple[Compiled, int]]) -> None:
    bc = built(tmp_path, programs)
    mission = programs["photo"][0].mission
    assert bc.receive(part(mission, 1, 1, 4, probation_frames=100)).status == "accepted"
    aux = bc.board.applications["aux"]
    assert aux.share_percent == 3  # nothing before the boundary
    bc.run_for(100)
    assert aux.share_percent == 4 and aux.vm.scheduler.budget_per_frame == 80_000
    assert bc.board.free_cycles() == 190_000 - 100_000 - 80_000
    assert [f.status for f in bc.conditions.log] == ["accepted", "active"]
    bc.run_for(10_000)
    assert [f.status for f in bc.conditions.log][-1] == "committed"
    assert (tmp_path / "board" / CONDITIONS_FILE).is_file()
    # a reset: the board built again from its declared parts, the committed one read back
    again = built(tmp_path / "after", programs)
    kept = BoardConditions(again.board, ProfileConditions(mission, TEST_KEY, tmp_path / "board"))
    assert kept.board.applications["aux"].share_percent == 4
    assert kept.conditions.last_seq == 1


def test_a_fault_of_any_application_on_probation_puts_the_parts_back(
        tmp_path: Path, programs: dict[str, tuple[Compiled, int]]) -> None:
    bc = built(tmp_path, programs)
    mission = programs["photo"][0].mission
    bc.receive(part(mission, 1, 1, 4, probation_frames=100))
    bc.run_for(500)
    assert bc.board.applications["aux"].share_percent == 4
    bc.board.app("photo").set_global("d", 0)  # photo divides by zero from now on
    bc.run_for(500)
    assert [f.status for f in bc.conditions.log] == ["accepted", "active", "rolled-back"]
    aux = bc.board.applications["aux"]
    assert aux.share_percent == 3 and aux.vm.scheduler.budget_per_frame == 60_000
    kept = ProfileConditions(mission, TEST_KEY, tmp_path / "board")
    assert kept.parts == {} and kept.last_seq == 1  # the parts before; its number used
    rc = bc.board.app("aux").reconfiguration
    assert isinstance(rc, Reconfiguration) and rc.events[-1].fate.status is \
        FateStatus.COMMITTED  # aux's own patches untouched


def test_a_patch_over_its_applications_part_fits_once_a_profile_patch_raised_the_part(
        tmp_path: Path, programs: dict[str, tuple[Compiled, int]]) -> None:
    bc = built(tmp_path, programs)
    mission = programs["photo"][0].mission
    source = tmp_path / "aux_v2.ccl"
    source.write_text(SOURCE.format(name="aux", top=580).replace("version 1", "version 2"))
    bigger = Compiler().compile(source)
    need = run_verifier(bigger, reuse=True).cycles_per_frame
    assert need is not None and 60_000 < need <= 80_000  # over aux's 3 %, within 4 %
    data = pack(bigger.image, [], mission, TEST_KEY, seq=2, cycles_per_frame=need).data
    aux = bc.board.applications["aux"]
    store = digest(tmp_path / "aux")
    bc.board.receive_patch("aux", data, 2)
    bc.run_for(1_000)
    rc = aux.vm.reconfiguration
    assert rc is not None
    refused = rc.events[-1].fate
    assert (refused.status, refused.reason, refused.field) == (FateStatus.REJECTED,
                                                               Reason.OVER_BUDGET, "cycles")
    assert f"claims {need} cycles per frame" in refused.message and "60000" in refused.message
    assert digest(tmp_path / "aux") == store
    # the part raised to 4 % (80,000 cycles) by a profile patch, committed: the same fits
    raised = bc.receive(part(mission, 1, 1, 4, probation_frames=100))
    assert raised.status == "accepted", raised.message
    bc.run_for(12_000)
    assert [f.status for f in bc.conditions.log][-1] == "committed"
    assert bc.board.limits("aux").cycles_per_frame == 80_000
    bc.board.receive_patch("aux", data, 3)
    bc.run_for(2_000)
    assert [e.fate.status for e in rc.events][-1] is FateStatus.COMMITTED
    assert aux.vm.program is not None and aux.vm.program.image.name == "aux"
    assert aux.vm.telemetry.fault_count == 0
