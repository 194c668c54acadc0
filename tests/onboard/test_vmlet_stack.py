"""A stack of VMlets on board: loaded whole at the versions it was compiled against or not
at all, one level of interpretation (the same cycles as the instructions in one VMlet),
and the verifier's worst case equal to the cycles the VVM meters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support import TEST_KEY, start_vvm
from vmlet_layers import FLAT, LOW, flat, stack, write

from ccl.driver import Compiler
from ccl.pack import PackError, pack
from ccl.verify import verify_program
from missions.corot.natives import make_host
from onboard.patching.patcher import Patcher
from onboard.patching.reconfiguration import Reconfiguration
from onboard.patching.store import Store
from onboard.vm.image import ExtRef
from onboard.vm.loader import LoadError
from onboard.vm.vvm import VVM


def test_the_stack_runs_like_the_same_instructions_in_one_vmlet(tmp_path: Path) -> None:
    layered = Compiler().compile(stack(tmp_path / "layered"))
    single = Compiler().compile(flat(tmp_path / "flat"))
    runs = []
    for compiled in (layered, single):
        vm = start_vvm(compiled, seed=3)
        out = vm.call("t")
        assert out.fault is None
        runs.append((vm.global_value("out"), vm.global_value("raw"), out.cycles,
                     vm.program.code.fallbacks if vm.program else None))
    assert runs[0] == runs[1]  # results, cycles (exactly), and no unit left untranslated
    assert runs[0][0] > 0 and runs[0][3] == {}


@pytest.mark.parametrize("make", [stack, flat])
def test_the_proven_worst_case_is_the_metered_cycles(tmp_path: Path, make: object) -> None:
    compiled = Compiler().compile(make(tmp_path))  # type: ignore[operator]
    report = verify_program(compiled, timeout_ms=2000)
    assert report.status == "proven"
    worst = report.worst_case("t")
    out = start_vvm(compiled, seed=5).call("t")
    assert out.fault is None
    assert out.cycles == worst.bound  # straight-line layers: the bound is exact


def test_the_board_refuses_a_stack_whose_lower_layer_is_missing(tmp_path: Path) -> None:
    compiled = Compiler().compile(stack(tmp_path))
    low, mid, top = (v.image for v in compiled.vmlets)
    vm = VVM(compiled.mission, make_host(compiled.mission, 1))
    vm.load_vmlet(low)
    with pytest.raises(LoadError) as info:
        vm.load_vmlet(top)  # without `mid`
    assert info.value.code == "missing-vmlet" and "`mid`" in info.value.message
    vm.load_vmlet(mid)
    vm.load_vmlet(top)
    vm.load(compiled.image)
    assert vm.call("t").fault is None


def test_the_board_refuses_a_stack_on_another_version_of_a_lower_layer(
        tmp_path: Path) -> None:
    compiled = Compiler().compile(stack(tmp_path))
    low, mid, _ = (v.image for v in compiled.vmlets)
    other = tmp_path / "other"
    other.mkdir()
    low2 = Compiler().compile(write(other, "low", LOW.format(version=2))).image
    vm = VVM(compiled.mission, make_host(compiled.mission, 1))
    vm.load_vmlet(low2)
    with pytest.raises(LoadError) as info:
        vm.load_vmlet(mid)  # compiled against low v1
    assert info.value.code == "vmlet-mismatch" and "`low` v1" in info.value.message
    assert "mid" not in vm.vmlets  # nothing loaded


def test_a_configuration_on_a_stack_travels_in_one_patch_with_every_layer(
        tmp_path: Path) -> None:
    compiled = Compiler().compile(stack(tmp_path / "src"))
    images = [v.image for v in compiled.vmlets]
    packed = pack(compiled.image, images, compiled.mission, TEST_KEY, seq=1)
    # the store keeps the whole stack, lower layers first (the order it loads in)
    assert [v.name for v in packed.configuration.vmlets] == ["low", "mid", "top"]
    with pytest.raises(PackError, match="`mid` v1 is not given"):
        pack(compiled.image, [images[0], images[2]], compiled.mission, TEST_KEY, seq=1)
    patcher = Patcher(compiled.mission, Store.init(tmp_path / "store"), TEST_KEY,
                      probation_frames=5)
    vm = VVM(compiled.mission, make_host(compiled.mission, seed=3))
    Reconfiguration(vm, patcher)
    vm.receive_patch(packed.data, 1)
    vm.run_for(60_000)
    assert vm.reconfiguration is not None
    assert [e.fate.status.value for e in vm.reconfiguration.events] == [
        "received", "staged", "active", "committed"]
    assert vm.program is not None and vm.program.image.content_hash == \
        compiled.image.content_hash
    assert vm.telemetry.tasks["t"].runs >= 1
    assert patcher.store.check() == []  # the store holds the stack its configuration pins


def test_ccl_verify_of_a_layer_replays_its_worst_case_exactly_on_its_stack(
        tmp_path: Path) -> None:
    stack(tmp_path)
    compiled = Compiler().compile(tmp_path / "top.ccl")
    assert [v.program.name for v in compiled.vmlets] == ["low", "mid"]
    report = verify_program(compiled, timeout_ms=2000)
    assert report.status == "proven"  # the board loads it on its layers
    worst = report.worst_case("score")
    # exact: the VVM, run from the witness on the stack, meters exactly the bound
    assert worst.exact and worst.bound == worst.cycles


def test_the_board_refuses_a_layer_naming_an_instruction_it_does_not_stand_on(
        tmp_path: Path) -> None:
    # A crafted (or mis-built) `mid` whose extension opcode names an instruction of a VMlet
    # that is loaded but is not below it: bound through the layers, never beside them.
    compiled = Compiler().compile(stack(tmp_path))
    low, mid, _ = (v.image for v in compiled.vmlets)
    other = Compiler().compile(write(tmp_path / "other", "flat", FLAT)).image
    crafted = dataclasses.replace(mid, ext=(ExtRef("flat", "clamp"),))
    vm = VVM(compiled.mission, make_host(compiled.mission, 1))
    vm.load_vmlet(low)
    vm.load_vmlet(other)
    with pytest.raises(LoadError) as info:
        vm.load_vmlet(crafted)
    assert info.value.code == "bad-ext"
    assert "`flat.clamp`, not an instruction of this VMlet or a VMlet it uses" in \
        info.value.message
