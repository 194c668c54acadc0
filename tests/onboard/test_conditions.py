"""Adaptable conditions: profile patches change the soft figures of the mission profile within
the flight build's hard limits, checked on board, at a frame boundary, on probation, kept in
the state directory across resets."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from support import TEST_KEY, proven

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from missions.corot.natives import make_host
from onboard.mission import MissionProfile, find_mission
from onboard.patching.boot import start
from onboard.patching.conditions import (
    ConditionRefused,
    HardLimits,
    ProfileConditions,
    check_values,
    current_values,
)
from onboard.patching.disk import FaultyDisk, PowerLoss
from onboard.patching.patch_format import (
    PROFILE_FIGURES,
    FormatError,
    ProfilePatch,
    Reason,
    build_profile_patch,
    parse_header,
    parse_profile_patch,
    retag_profile_patch,
)
from onboard.patching.patcher import FateStatus, Patcher
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Configuration, Store
from onboard.vm.vvm import VVM

DIVIDER = """\
mission corot;
config divider version {version};
param d : int[0..10] = 1;
var r : int[0..100];
task t every 1 s {{ r = 10 / d; }}
"""


@pytest.fixture(scope="module")
def corot() -> MissionProfile:
    return find_mission("corot")


def profile_patch(profile: MissionProfile, seq: int, key: bytes = TEST_KEY,
                  **values: int) -> bytes:
    """A profile patch built without the ground's limit check (as a forged or buggy ground
    would): the board must check on its own."""
    return build_profile_patch(ProfilePatch(profile.mission_id, profile.spacecraft_id, seq,
                                            values), key)


def compile_divider(directory: Path, version: int = 1) -> Compiled:
    path = directory / f"divider{version}.ccl"
    path.write_text(DIVIDER.format(version=version))
    return Compiler().compile(path)


def board(directory: Path, c: Compiled) -> tuple[VVM, Reconfiguration]:
    """A VVM running ``c`` (committed), taking configuration and profile patches."""
    store = Store.init(directory)
    vm = VVM(c.mission, make_host(c.mission, seed=3))
    rc = Reconfiguration(vm, Patcher(c.mission, store, TEST_KEY, probation_frames=5))
    rc.attach_conditions(ProfileConditions(c.mission, TEST_KEY, directory))
    vm.receive_patch(pack(c.image, [v.image for v in c.vmlets], c.mission, TEST_KEY,
                          seq=1, cycles_per_frame=proven(c)).data, 1)
    vm.run_for(3_000)
    assert rc.events[-1].fate.status is FateStatus.COMMITTED
    return vm, rc


def statuses(rc: Reconfiguration) -> list[str]:
    assert rc.conditions is not None
    return [f.status for f in rc.conditions.log]


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def test_the_flight_build_gives_each_soft_figure_a_range_and_no_hard_one(
        corot: MissionProfile) -> None:
    limits = HardLimits.of(corot)
    assert limits.ranges == {"patch_reserve_cycles_per_frame": (5_000, 20_000),
                             "probation_frames": (100, 6_000), "max_pending": (1, 8),
                             "part_percent": (1, 9)}
    assert {name.split(".")[0] for name in PROFILE_FIGURES.values()} == set(limits.ranges)
    check_values(corot, {"probation_frames": 100, "max_pending": 8})  # the bounds are in


@pytest.mark.parametrize(("figure", "value", "words"), [
    ("probation_frames", 99, "outside its hard limit 100..6000"),
    ("max_pending", 9, "outside its hard limit 1..8"),
    ("patch_reserve_cycles_per_frame", 4_999, "outside its hard limit 5000..20000"),
    ("share_percent", 12, "hard figure"),
    ("code_bytes", 1, "hard figure"),
])
def test_a_value_outside_the_limits_or_a_hard_figure_is_refused_naming_it(
        corot: MissionProfile, figure: str, value: int, words: str) -> None:
    with pytest.raises(ConditionRefused) as info:
        check_values(corot, {figure: value})
    assert info.value.figure == figure and words in info.value.message


def test_a_reserve_that_leaves_the_running_configuration_too_little_is_refused(
        corot: MissionProfile) -> None:
    share = corot.share_cycles_per_frame
    check_values(corot, {"patch_reserve_cycles_per_frame": 20_000},
                 demand_cycles_per_frame=share - 20_000)
    with pytest.raises(ConditionRefused) as info:
        check_values(corot, {"patch_reserve_cycles_per_frame": 20_000},
                     demand_cycles_per_frame=share - 19_999)
    assert info.value.reason is Reason.OVER_BUDGET
    assert "no longer be proven" in info.value.message


def test_a_profile_patch_round_trips_and_a_configuration_patcher_refuses_it(
        corot: MissionProfile) -> None:
    data = profile_patch(corot, 7, probation_frames=300, max_pending=2)
    parsed = parse_profile_patch(data, TEST_KEY)
    assert parsed == ProfilePatch(corot.mission_id, corot.spacecraft_id, 7,
                                  {"probation_frames": 300, "max_pending": 2})
    with pytest.raises(FormatError) as info:
        parse_header(data)
    assert info.value.reason is Reason.BAD_HEADER and info.value.field == "flags"


def test_a_profile_patch_is_refused_on_a_hard_figure_code_and_a_bad_crc(
        corot: MissionProfile) -> None:
    data = bytearray(profile_patch(corot, 1, max_pending=2))
    data[-16 - 2 - 2] = 99  # the figure code: no such soft figure
    with pytest.raises(FormatError) as info:
        parse_profile_patch(retag_profile_patch(bytes(data), TEST_KEY), TEST_KEY)
    assert info.value.reason is Reason.BAD_SECTION and "unknown figure code 99" in str(info.value)


def test_a_new_patch_reserve_takes_effect_at_a_frame_boundary_within_the_share(
        tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    budget = vm.scheduler.budget_per_frame
    assert vm.scheduler.reserve_per_frame == 10_000
    fate = rc.receive_profile(profile_patch(c.mission, 1, probation_frames=100,
                                            patch_reserve_cycles_per_frame=15_000))
    assert fate.status == "accepted"
    assert vm.scheduler.reserve_per_frame == 10_000  # nothing changes before the boundary
    vm.run_for(200)
    assert statuses(rc) == ["accepted", "active"]
    assert vm.scheduler.reserve_per_frame == 15_000
    assert vm.scheduler.budget_per_frame == budget - 5_000  # the share is unchanged
    assert vm.status()["patch_reserve_per_frame"] == 15_000
    assert vm.status()["conditions"]["figures"][
        "patch_reserve_cycles_per_frame"] == 15_000
    vm.run_for(9_800)
    assert statuses(rc) == ["accepted", "active"]
    vm.run_for(300)  # 100 frames of 100 ms after the switch
    assert statuses(rc) == ["accepted", "active", "committed"]
    assert max(vm.telemetry.cycles) <= c.mission.share_cycles_per_frame


def test_new_probation_and_queue_lengths_govern_the_next_configuration_patches(
        tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    rc.receive_profile(profile_patch(c.mission, 1, probation_frames=100, max_pending=1))
    vm.run_for(10_300)
    assert statuses(rc) == ["accepted", "active", "committed"]
    v2, v3 = compile_divider(tmp_path, 2), compile_divider(tmp_path, 3)
    f2 = vm.receive_patch(pack(v2.image, [], v2.mission, TEST_KEY, seq=2, base=c.image).data, 2)
    f3 = vm.receive_patch(pack(v3.image, [], v3.mission, TEST_KEY, seq=3, base=v2.image).data, 3)
    assert f2.status is FateStatus.RECEIVED
    assert f3.status is FateStatus.REJECTED and f3.reason is Reason.BUSY  # a queue of 1
    vm.run_for(12_000)
    fates = {e.fate.status: e for e in rc.events if e.ticket == 2}
    active, committed = fates[FateStatus.ACTIVE], fates[FateStatus.COMMITTED]
    assert active.fate.message == "probation for 100 frames"  # not the patcher's 5
    assert committed.time_ms - active.time_ms == 100 * c.mission.frame_ms


def test_a_forced_value_outside_the_limits_is_refused_on_board_state_byte_identical(
        tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    before = snapshot(tmp_path / "store")
    for data in [profile_patch(c.mission, 1, probation_frames=50),
                 profile_patch(c.mission, 2, max_pending=0),
                 profile_patch(c.mission, 3, key=bytes(32), probation_frames=300)]:
        fate = rc.receive_profile(data)
        assert fate.status == "rejected"
        vm.run_for(500)
    assert [f.reason for f in rc.conditions.log] == [  # type: ignore[union-attr]
        "out-of-limits", "out-of-limits", "bad-tag"]
    assert rc.conditions.log[0].figure == "probation_frames"  # type: ignore[union-attr]
    assert "100..6000" in rc.conditions.log[0].message  # type: ignore[union-attr]
    assert snapshot(tmp_path / "store") == before
    assert current_values(rc.conditions.profile) == current_values(c.mission)  # type: ignore[union-attr]
    assert vm.scheduler.reserve_per_frame == 10_000


def test_a_fault_on_probation_rolls_the_figures_back(tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    budget = vm.scheduler.budget_per_frame
    rc.receive_profile(profile_patch(c.mission, 1, patch_reserve_cycles_per_frame=20_000,
                                     probation_frames=100))
    vm.run_for(1_000)
    assert vm.scheduler.reserve_per_frame == 20_000
    vm.set_global("d", 0)  # the task divides by zero from now on: a trap
    vm.run_for(2_000)
    assert statuses(rc) == ["accepted", "active", "rolled-back"]
    assert vm.scheduler.reserve_per_frame == 10_000
    assert vm.scheduler.budget_per_frame == budget
    # recorded: the figures before, and its sequence number used (a replay is refused)
    after = ProfileConditions(c.mission, TEST_KEY, tmp_path / "store")
    assert current_values(after.profile) == current_values(c.mission)
    assert after.receive(profile_patch(c.mission, 1, probation_frames=100)).reason == "replay"


def test_committed_figures_survive_a_reset_and_probation_does_not(tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    rc.receive_profile(profile_patch(c.mission, 1, probation_frames=100, max_pending=2))
    vm.run_for(11_000)
    assert statuses(rc)[-1] == "committed"
    rc.receive_profile(profile_patch(c.mission, 2, max_pending=8))
    vm.run_for(1_000)  # on probation when the power goes
    assert statuses(rc)[-1] == "active"
    after = ProfileConditions(c.mission, TEST_KEY, tmp_path / "store")
    assert current_values(after.profile) == {**current_values(c.mission),
                                             "probation_frames": 100, "max_pending": 2}
    # patch 2 was tried: a replay of it, or of patch 1, is refused after the reset
    assert after.last_seq == 2
    assert after.receive(profile_patch(c.mission, 2, max_pending=8)).reason == "replay"
    after.reload()  # the boot path reports what the reset cut short, once, and records it
    assert [(f.status, f.seq) for f in after.log] == [("rejected", 2), ("rolled-back", 2)]
    again = ProfileConditions(c.mission, TEST_KEY, tmp_path / "store")
    again.reload()
    assert again.log == [] and again.last_seq == 2


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_a_power_cut_at_every_write_of_a_switch_and_a_commit_leaves_old_or_new_figures(
        tmp_path: Path, corot: MissionProfile, cut: int) -> None:
    """The switch writes the trial record (write, rename), the commit the record (write,
    rename): a cut at any of them leaves the old figures or the new ones, and once the
    trial is written the patch's number is used."""
    directory = tmp_path / "state"
    directory.mkdir()
    conditions = ProfileConditions(corot, TEST_KEY, directory, disk=FaultyDisk(cut))
    conditions.receive(profile_patch(corot, 1, probation_frames=200))
    with pytest.raises(PowerLoss):
        conditions.switch(0)
        conditions.end_frame(200 * corot.frame_ms, fault=False)
    after = ProfileConditions(corot, TEST_KEY, directory)
    after.reload()  # the boot path
    # the record's rename (write 3) is the commit point: any cut before it, the old figures
    assert current_values(after.profile) == current_values(corot)
    assert after.last_seq == (1 if cut >= 2 else 0)  # the trial renamed (write 1): tried
    assert [f.status for f in after.log] == (["rolled-back"] if cut >= 2 else [])
    (tmp_path / "whole").mkdir()
    done = ProfileConditions(corot, TEST_KEY, tmp_path / "whole", disk=FaultyDisk(None))
    done.receive(profile_patch(corot, 1, probation_frames=200))
    done.switch(0)
    done.end_frame(200 * corot.frame_ms, fault=False)
    whole = ProfileConditions(corot, TEST_KEY, tmp_path / "whole")
    assert whole.profile.reconfig.probation_frames == 200 and whole.last_seq == 1


def test_every_truncation_and_every_re_signed_byte_flip_is_refused_or_checked_cleanly(
        tmp_path: Path, corot: MissionProfile) -> None:
    """Hostile profile patches: no exception but a refusal, and no figure outside the limits
    ever in force."""
    data = profile_patch(corot, 5, probation_frames=300, patch_reserve_cycles_per_frame=12_000)
    for n in range(len(data)):
        board = ProfileConditions(corot, TEST_KEY)
        assert board.receive(data[:n]).status == "rejected"
    limits = HardLimits.of(corot).ranges
    for i in range(len(data) - 16):
        for bit in range(8):
            mutated = bytearray(data)
            mutated[i] ^= 1 << bit
            board = ProfileConditions(corot, TEST_KEY)
            fate = board.receive(retag_profile_patch(bytes(mutated), TEST_KEY))
            if fate.accepted:
                board.switch(0)
            for name, value in current_values(board.profile).items():
                assert limits[name][0] <= value <= limits[name][1]


def test_a_malformed_limits_table_is_refused_when_the_board_starts(
        corot: MissionProfile) -> None:
    for table, words in [({"share_percent": [5, 10]}, "a hard figure has no range"),
                         ({"probation_frames": [600, 100]}, "lo <= hi"),
                         ({"warp": [1, 2]}, "unknown figure 'warp'")]:
        broken = replace(corot, raw={**corot.raw, "limits": table})
        with pytest.raises(ValueError, match=words):
            ProfileConditions(broken, TEST_KEY)


# ----------------------------------------------------------------- soundness: the board's record

BUSY = """\
mission corot;
config busy version {version};
param n : int[0..{top}] = 100;
var acc : int[0..100000];
task t every 100 ms {{ for i in 0 .. n {{ acc = (acc + i) % 100000; }} }}
"""


def compile_busy(directory: Path, top: int = 2550, version: int = 1) -> Compiled:
    """A configuration proven to need about 186,000 of the 190,000 cycles per frame the
    tasks have beside CoRoT's 10,000-cycle patch reserve."""
    path = directory / f"busy{version}.ccl"
    path.write_text(BUSY.format(version=version, top=top))
    return Compiler().compile(path)


def test_the_proven_demand_travels_in_the_patch_and_is_kept_in_the_journal(
        tmp_path: Path) -> None:
    c = compile_busy(tmp_path)
    need = proven(c)
    assert 180_000 < need <= 190_000
    vm, rc = board(tmp_path / "store", c)
    assert rc.patcher.store.demands() == {"current": need}
    # what the board knows after a reset: the journal, read through the one boot path
    fresh = VVM(c.mission, make_host(c.mission, seed=3))
    again = Reconfiguration(fresh, Patcher(c.mission, Store.open(tmp_path / "store"),
                                           TEST_KEY))
    again.attach_conditions(ProfileConditions(c.mission, TEST_KEY, tmp_path / "store"))
    start(again, None)
    assert again.proven_demand() == (need, "the current configuration `busy` v1")


def test_a_larger_reserve_is_refused_when_a_configuration_on_board_is_proven_to_need_more(
        tmp_path: Path) -> None:
    c = compile_busy(tmp_path)
    need = proven(c)
    vm, rc = board(tmp_path / "store", c)
    before, budget = snapshot(tmp_path / "store"), vm.scheduler.budget_per_frame
    too_much = c.mission.share_cycles_per_frame - need + 1  # leaves the tasks need - 1
    fate = rc.receive(profile_patch(c.mission, 1, patch_reserve_cycles_per_frame=too_much),
                      7)
    assert fate.status is FateStatus.RECEIVED  # queued: checked in the reserve of a frame
    vm.run_for(100)
    fate = rc.events[-1].fate
    assert rc.events[-1].ticket == 7
    assert fate.status is FateStatus.REJECTED and fate.reason is Reason.OVER_BUDGET
    assert f"is proven to need {need}" in fate.message and "`busy` v1" in fate.message
    vm.run_for(1_000)
    assert snapshot(tmp_path / "store") == before  # byte-identical: nothing written
    assert vm.scheduler.reserve_per_frame == 10_000
    assert vm.scheduler.budget_per_frame == budget
    told = [p for p in vm.status()["patches"] if p["ticket"] == 7]  # in telemetry
    assert [(p["status"], p["reason"], p["field"]) for p in told] == [
        ("received", None, None), ("rejected", "over-budget", "patch_reserve_cycles_per_frame")]
    # exactly what it needs is within: applied at the next boundary
    rc.receive(profile_patch(c.mission, 2, patch_reserve_cycles_per_frame=too_much - 1,
                             probation_frames=100), 8)
    vm.run_for(100)
    assert rc.events[-1].fate.status is FateStatus.STAGED  # accepted: waits for a boundary
    assert vm.scheduler.reserve_per_frame == 10_000
    vm.run_for(100)
    assert vm.scheduler.reserve_per_frame == too_much - 1
    assert vm.scheduler.budget_per_frame == need  # the tasks' part is just what they need
    vm.run_for(10_200)
    assert [e.fate.status for e in rc.events if e.ticket == 8] == [
        FateStatus.RECEIVED, FateStatus.STAGED, FateStatus.ACTIVE, FateStatus.COMMITTED]
    assert not any(vm.telemetry.faults)


def test_a_configuration_installed_without_a_patch_has_no_known_demand(
        tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    store = Store.init(tmp_path / "store")
    vm = VVM(c.mission, make_host(c.mission, seed=3))
    rc = Reconfiguration(vm, Patcher(c.mission, store, TEST_KEY))
    rc.attach_conditions(ProfileConditions(c.mission, TEST_KEY, tmp_path / "store"))
    program = vm.prepare(c.image, [])
    store.install(Configuration(c.image, ()))
    vm.activate(program)
    assert store.demands() == {"current": None}
    fate = rc.receive_profile(profile_patch(c.mission, 1, patch_reserve_cycles_per_frame=10_001))
    assert fate.reason == "over-budget" and "its demand is unknown" in fate.message
    assert rc.receive_profile(profile_patch(c.mission, 2, patch_reserve_cycles_per_frame=9_000)
                              ).status == "accepted"  # a smaller reserve gives the tasks more


def test_the_configuration_a_rollback_returns_to_must_fit_too(tmp_path: Path) -> None:
    """On probation, the previous configuration is kept for a rollback: its demand counts."""
    big, small = compile_busy(tmp_path, 2550, 1), compile_busy(tmp_path, 100, 2)
    vm, rc = board(tmp_path / "store", big)
    vm.receive_patch(pack(small.image, [], small.mission, TEST_KEY, seq=2, base=big.image,
                          cycles_per_frame=proven(small)).data, 2)
    vm.run_for(300)
    assert rc.patcher.store.phase.value == "probation"
    fate = rc.receive_profile(profile_patch(big.mission, 1,
                                            patch_reserve_cycles_per_frame=20_000))
    assert fate.status == "rejected" and "the previous configuration `busy` v1" in fate.message
    vm.run_for(1_000)  # committed: v1 can no longer come back
    assert rc.patcher.store.demands() == {"current": proven(small)}
    assert rc.receive_profile(profile_patch(big.mission, 2,
                                            patch_reserve_cycles_per_frame=20_000)).accepted


def test_a_single_vvm_has_no_application_part_to_change(tmp_path: Path) -> None:
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    patch = build_profile_patch(ProfilePatch(c.mission.mission_id, c.mission.spacecraft_id, 1,
                                             {"part_percent.0": 5}), TEST_KEY)
    fate = rc.receive_profile(patch)
    assert (fate.reason, fate.figure) == ("out-of-limits", "part_percent.0")
    assert "no application part" in fate.message


def test_a_profile_patch_is_checked_in_the_patch_reserve_and_paid_from_it(
        tmp_path: Path) -> None:
    """Like a configuration patch, a profile patch waits in the queue and is checked in the
    reserve of a frame: its check (per byte) and its two records (trial, figures) are paid
    before it is accepted, never from the tasks' part."""
    c = compile_divider(tmp_path)
    vm, rc = board(tmp_path / "store", c)
    vm.run_for(950)  # the task runs at every whole second: the next frame has no task
    data = profile_patch(c.mission, 1, probation_frames=300)
    rc.receive(data, 5)
    vm.run_for(100)
    costs = c.mission.reconfig
    assert vm.telemetry.cycles[-1] == costs.check_per_byte * len(data) + 2 * costs.journal
    assert rc.events[-1].fate.status is FateStatus.STAGED
