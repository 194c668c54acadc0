"""Patches applied by a running VVM: paced by the patch reserve, switched at a frame boundary,
on probation, committed or rolled back, and never more than the share in any frame."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from missions.corot.natives import make_host
from onboard.image import Image
from onboard.patch_format import Reason
from onboard.patcher import FateStatus, Patcher
from onboard.store import FaultyDisk, Phase, PowerLoss, Store
from onboard.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"
KEY = bytes(range(1, 33))

SMALL = """\
mission corot;
config small version {version};
uses photometry;
param gain : int[0..2047] = {gain};
param n : int[0..40] = 10;
var hits : int[0..1000000];
var seen[40] : int[0..16777215];
var level : int[0..{level_hi}];
task scan every 1 s {{
    for s in 0 .. n {{
        seen[s] = flux(s);
        if seen[s] > gain {{ hits = min(hits + 1, 1000000); }}
    }}
}}
on apply {{ {on_apply} }}
"""


def compile_small(directory: Path, version: int, gain: int = 100, level_hi: int = 10,
                  on_apply: str = "level = 1;") -> Compiled:
    path = directory / f"small_v{version}_{gain}_{level_hi}_{len(on_apply)}.ccl"
    path.write_text(SMALL.format(version=version, gain=gain, level_hi=level_hi,
                                 on_apply=on_apply))
    return Compiler().compile(path)


def vmlets(c: Compiled) -> list[Image]:
    return [v.image for v in c.vmlets]


def new_vvm(directory: Path, c: Compiled, probation_frames: int = 50) -> VVM:
    patcher = Patcher(c.mission, Store.init(directory), KEY, probation_frames=probation_frames)
    return VVM(c.mission, make_host(c.mission, seed=3), patcher)


def statuses(vm: VVM) -> list[str]:
    assert vm.reconfiguration is not None
    return [e.fate.status.value for e in vm.reconfiguration.events]


def snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def assert_within_share(vm: VVM) -> None:
    share = vm.profile.share_cycles_per_frame
    assert max(vm.telemetry.cycles, default=0) <= share


@pytest.fixture(scope="module")
def exo() -> Compiled:
    return Compiler().compile(EXO)


def test_a_full_patch_goes_from_receipt_to_commit_inside_the_reserve(tmp_path: Path,
                                                                     exo: Compiled) -> None:
    vm = new_vvm(tmp_path / "store", exo)
    data = pack(exo.image, vmlets(exo), exo.mission, KEY, seq=1).data
    assert vm.receive_patch(data, ticket=7).status is FateStatus.RECEIVED
    vm.run_for(60_000)
    rc = vm.reconfiguration
    assert rc is not None
    assert statuses(vm) == ["received", "staged", "active", "committed"]
    assert {e.ticket for e in rc.events} == {7}
    assert vm.program is not None and vm.program.image.content_hash == exo.image.content_hash
    assert rc.patcher.store.phase is Phase.IDLE
    # The check alone costs check_per_byte per byte: it is spread over frames of the reserve.
    costs, reserve = exo.mission.reconfig, exo.mission.patch_reserve_cycles_per_frame
    staged = next(e for e in rc.events if e.fate.status is FateStatus.STAGED)
    assert staged.time_ms >= (costs.check_per_byte * len(data) // reserve) * 100
    active = next(e for e in rc.events if e.fate.status is FateStatus.ACTIVE)
    committed = next(e for e in rc.events if e.fate.status is FateStatus.COMMITTED)
    assert committed.time_ms - active.time_ms == 50 * exo.mission.frame_ms
    assert vm.telemetry.tasks["cosmic_filter"].runs >= 1  # it really runs
    assert_within_share(vm)


def test_a_one_parameter_delta_keeps_the_state_and_runs_on_apply(tmp_path: Path) -> None:
    v1 = compile_small(tmp_path, 1, gain=100)
    v2 = compile_small(tmp_path, 2, gain=900)
    vm = new_vvm(tmp_path / "store", v1, probation_frames=10)
    vm.receive_patch(pack(v1.image, vmlets(v1), v1.mission, KEY, seq=1).data, 1)
    vm.run_for(5_000)
    assert vm.global_value("hits") > 0 and vm.global_value("level") == 1
    vm.set_global("level", 7)
    hits, seen = vm.global_value("hits"), vm.array_values("seen")
    delta = pack(v2.image, vmlets(v2), v2.mission, KEY, seq=2, base=v1.image)
    assert not delta.full and len(delta.data) <= 64
    vm.receive_patch(delta.data, 2)
    vm.run_for(1_000)  # checked, staged and switched within a few frames
    assert vm.program is not None and vm.program.image.content_hash == v2.image.content_hash
    assert vm.global_value("gain") == 900
    assert vm.global_value("hits") >= hits  # carried over
    assert vm.array_values("seen")[:10] != [0] * 10 or seen[:10] == [0] * 10
    assert vm.global_value("level") == 1  # on apply ran
    vm.run_for(5_000)
    assert statuses(vm)[-4:] == ["received", "staged", "active", "committed"]
    assert_within_share(vm)


def test_a_state_variable_whose_type_changed_starts_afresh(tmp_path: Path) -> None:
    v1 = compile_small(tmp_path, 1, level_hi=10, on_apply="hits = hits;")
    v2 = compile_small(tmp_path, 2, level_hi=20, on_apply="hits = hits;")
    vm = new_vvm(tmp_path / "store", v1, probation_frames=1)
    vm.receive_patch(pack(v1.image, vmlets(v1), v1.mission, KEY, seq=1).data, 1)
    vm.run_for(3_000)
    vm.set_global("level", 9)
    vm.receive_patch(pack(v2.image, vmlets(v2), v2.mission, KEY, seq=2, base=v1.image).data, 2)
    vm.run_for(3_000)
    assert vm.global_value("level") == 0  # int[0..10] -> int[0..20]: not the same variable
    assert vm.global_value("hits") > 0  # unchanged type: kept


def test_a_trap_on_probation_rolls_back_to_the_previous_program_and_state(
        tmp_path: Path) -> None:
    v1 = compile_small(tmp_path, 1)
    # on apply divides by `level`, which the carried state makes 0: a trap on probation
    bad = compile_small(tmp_path, 2, on_apply="level = 10 / level;")
    vm = new_vvm(tmp_path / "store", v1, probation_frames=20)
    vm.receive_patch(pack(v1.image, vmlets(v1), v1.mission, KEY, seq=1).data, 1)
    vm.run_for(3_000)
    old = vm.program
    vm.set_global("level", 0)
    hits = vm.global_value("hits")
    vm.receive_patch(pack(bad.image, vmlets(bad), bad.mission, KEY, seq=2,
                          base=v1.image).data, 2)
    vm.run_for(3_000)
    assert statuses(vm)[-4:] == ["received", "staged", "active", "rolled-back"]
    assert vm.program is old
    assert vm.telemetry.config_hash == v1.image.content_hash
    rc = vm.reconfiguration
    assert rc is not None
    assert rc.patcher.store.phase is Phase.IDLE
    assert rc.patcher.store.current() is not None
    assert rc.patcher.store.current().hash == v1.image.content_hash  # type: ignore[union-attr]
    assert vm.global_value("hits") >= hits  # the old program runs on
    assert any(f.code.name == "DIV_ZERO" for f in vm.telemetry.faults)
    assert_within_share(vm)


def test_a_rejected_patch_leaves_the_store_byte_identical_and_says_why(
        tmp_path: Path, exo: Compiled) -> None:
    vm = new_vvm(tmp_path / "store", exo, probation_frames=1)
    vm.receive_patch(pack(exo.image, vmlets(exo), exo.mission, KEY, seq=1).data, 1)
    vm.run_for(5_000)
    assert statuses(vm)[-1] == "committed"
    before = snapshot(tmp_path / "store")
    forged = bytearray(pack(exo.image, vmlets(exo), exo.mission, KEY, seq=2,
                            base=exo.image, full=False).data)
    forged[-1] ^= 1
    vm.receive_patch(bytes(forged), 2)
    vm.run_for(1_000)
    rc = vm.reconfiguration
    assert rc is not None
    last = rc.events[-1].fate
    assert last.status is FateStatus.REJECTED and last.reason is Reason.BAD_TAG
    assert last.field == "tag" and last.offset == len(forged) - 16
    assert snapshot(tmp_path / "store") == before
    assert vm.program is not None and vm.program.image.content_hash == exo.image.content_hash


def test_patches_wait_their_turn_and_a_full_queue_refuses(tmp_path: Path) -> None:
    v1 = compile_small(tmp_path, 1)
    vm = new_vvm(tmp_path / "store", v1, probation_frames=5)
    assert v1.mission.reconfig.max_pending == 4
    versions = [compile_small(tmp_path, v, gain=100 + v) for v in range(2, 6)]
    fates = [vm.receive_patch(pack(v1.image, vmlets(v1), v1.mission, KEY, seq=1).data, 1)]
    base = v1.image
    for seq, c in enumerate(versions, start=2):
        fates.append(vm.receive_patch(pack(c.image, vmlets(c), c.mission, KEY, seq=seq,
                                           base=base).data, seq))
        base = c.image
    # four wait: the fifth is refused, and its state says so at once
    assert [f.status.value for f in fates] == ["received"] * 4 + ["rejected"]
    assert fates[-1].reason is Reason.BUSY
    vm.run_for(10_000)
    assert vm.program is not None
    assert vm.program.image.content_hash == versions[2].image.content_hash
    committed = [e.ticket for e in vm.reconfiguration.events  # type: ignore[union-attr]
                 if e.fate.status is FateStatus.COMMITTED]
    assert committed == [1, 2, 3, 4]
    assert_within_share(vm)


def test_reconfiguration_never_takes_more_than_the_reserve_in_a_frame(
        tmp_path: Path, exo: Compiled) -> None:
    vm = new_vvm(tmp_path / "store", exo, probation_frames=5)
    vm.receive_patch(pack(exo.image, vmlets(exo), exo.mission, KEY, seq=1).data, 1)
    reserve = exo.mission.patch_reserve_cycles_per_frame
    rc = vm.reconfiguration
    assert rc is not None
    used: list[int] = []
    step = rc.step

    def metered(t: int, budget: int) -> int:
        assert budget == reserve
        n = step(t, budget)
        used.append(n)
        return n

    rc.step = metered  # type: ignore[method-assign]
    vm.run_for(10_000)
    assert used and max(used) <= reserve
    assert sum(used) >= exo.mission.reconfig.check_per_byte * 400  # the check was charged


def test_a_power_loss_at_any_write_ends_in_the_old_or_the_new_configuration(
        tmp_path: Path) -> None:
    """MCUboot-style: cut the power at every persistent write of a delta's application
    (stage: slot and journal; switch: journal; commit: journal), restart a fresh VVM from
    the store, and check that it runs the old configuration or, if the new one was staged
    before the cut, switches to it; never a mix. A switch not yet committed is not trusted
    after a reset. The ground's resend then completes the change; past the last write, the
    new one is kept."""
    v1 = compile_small(tmp_path, 1, gain=100)
    v2 = compile_small(tmp_path, 2, gain=900)
    full = pack(v1.image, vmlets(v1), v1.mission, KEY, seq=1).data
    old, new = v1.image.content_hash, v2.image.content_hash
    outcomes = set()
    for fail_at in range(5):
        directory = tmp_path / f"cut{fail_at}"
        vm = new_vvm(directory, v1, probation_frames=5)
        vm.receive_patch(full, 1)
        vm.run_for(3_000)
        assert vm.program is not None and vm.program.image.content_hash == old
        rc = vm.reconfiguration
        assert rc is not None
        rc.patcher.store = Store.open(directory, FaultyDisk(fail_at))  # the cut to come
        vm.receive_patch(pack(v2.image, vmlets(v2), v2.mission, KEY, seq=2,
                              base=v1.image).data, 2)
        if fail_at == 4:  # no fifth write: nothing is cut
            vm.run_for(10_000)
            assert rc.patcher.store.current().hash == new  # type: ignore[union-attr]
            continue
        with pytest.raises(PowerLoss):
            vm.run_for(10_000)
        # reboot: a new VVM over what the store holds
        store = Store.open(directory)
        assert store.check() == []
        patcher = Patcher(v1.mission, store, KEY, probation_frames=5)
        patcher.boot()  # on probation at the cut: not trusted, back to the old one
        staged = store.phase is Phase.STAGED  # staged at the cut: switched to as planned
        current = store.current()
        assert current is not None and current.hash == old
        rebooted = VVM(v1.mission, make_host(v1.mission, seed=3), patcher)
        rebooted.activate(rebooted.prepare(current.config, current.vmlets))
        rebooted.run_for(2_000)
        assert rebooted.telemetry.config_hash == (new if staged else old)
        assert rebooted.telemetry.tasks["scan"].runs >= 1
        outcomes.add((fail_at, staged))
        if not staged:  # the ground sees the old hash in telemetry and sends it again
            seq = store.last_seq + 1
            rebooted.receive_patch(pack(v2.image, vmlets(v2), v2.mission, KEY, seq=seq,
                                        base=v1.image).data, 3)
        rebooted.run_for(5_000)
        assert rebooted.telemetry.config_hash == new
        assert store.current().hash == new  # type: ignore[union-attr]
        assert store.check() == []
    # the slot and the staging record cut: nothing staged; the switch's record cut: still
    # staged; the commit's record cut: rolled back at the reset
    assert outcomes == {(0, False), (1, False), (2, True), (3, False)}
