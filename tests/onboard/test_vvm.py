"""The VVM as a whole: loading VMlets and configurations, the scheduler under the share,
faults, telemetry, determinism, and the CoRoT cosmic-ray filter over a simulated day."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import compile_text, start_vvm

from ccl.driver import Compiled, Compiler
from missions.corot.natives import CorotHost, make_host
from onboard.vm.faults import TrapCode
from onboard.vm.image import Image
from onboard.vm.loader import LoadError
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
EXO_E1 = ROOT / "missions/corot/configs/exo_e1.ccl"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def exo_e1() -> Compiled:
    return Compiler().compile(EXO_E1)


@pytest.fixture(scope="module")
def exo_e1_day(exo_e1: Compiled) -> tuple[VVM, CorotHost]:
    host = make_host(exo_e1.mission, 7)
    vm = start_vvm(exo_e1, host=host)
    vm.run_for(DAY_MS)
    return vm, host


def test_a_day_of_exo_e1_flags_exactly_the_injected_cosmic_rays(
        exo_e1_day: tuple[VVM, CorotHost]) -> None:
    vm, host = exo_e1_day
    n_stars = vm.global_value("n_stars")
    # The first two exposures fill last1/last2 (everything differs from zero); from the
    # third on, a star is flagged exactly when a cosmic ray hit it.
    flagged = {(e, s) for e, s, code in host.flags() if e >= 2 and code == 1}
    hits = {(e, s) for e, s in host.injected_hits() if e >= 2 and s < n_stars
            and e < vm.now_ms // 32_000}
    assert len(hits) > 1000
    assert flagged == hits
    assert vm.telemetry.tasks["cosmic_filter"].runs == DAY_MS // 32_000
    assert vm.telemetry.fault_count == 0


def test_no_frame_of_the_day_uses_more_than_the_share(
        exo_e1_day: tuple[VVM, CorotHost]) -> None:
    vm, _ = exo_e1_day
    tel = vm.telemetry
    frame_cycles = vm.profile.frame_cycles
    assert len(tel.frames) > 1000
    assert all(c <= vm.profile.share_cycles_per_frame for c in tel.cycles)
    assert max(c / frame_cycles for c in tel.cycles) <= 0.10
    # the filter is split over frames: each run needs several frames' worth of the share
    worst = tel.tasks["cosmic_filter"].worst_cycles
    assert worst > vm.scheduler.budget_per_frame
    assert list(tel.frames) == sorted(set(tel.frames))


def test_the_same_seed_gives_the_same_telemetry(exo_e1: Compiled) -> None:
    runs = []
    for seed in (5, 5, 6):
        vm = start_vvm(exo_e1, seed)
        vm.run_for(2 * 3_600_000)
        host = vm.host
        assert isinstance(host, CorotHost)
        runs.append((vm.status(), list(vm.telemetry.cycles), host.flags()))
    assert runs[0] == runs[1]
    assert runs[0][2] != runs[2][2]


def test_a_trap_stops_the_task_records_the_fault_and_leaks_no_partial_store(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """
        mission corot; config t version 1;
        param d : int[0..10] = 0;
        var x : int[0..100];
        var y : int[0..1000];
        task work every 1 s {
            y = y + 1;
            x = 100 / d;
        }
    """)
    vm = start_vvm(compiled)
    vm.run_for(3_000)
    tel = vm.telemetry
    assert tel.fault_count == 3
    fault = tel.faults[0]
    assert fault.code is TrapCode.DIV_ZERO and fault.task == "work" and fault.unit == "work"
    assert fault.offset > 0
    assert vm.global_value("y") == 3 and vm.global_value("x") == 0
    assert tel.tasks["work"].traps == 3 and tel.tasks["work"].runs == 0


def test_a_task_not_finished_by_its_next_release_overruns(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """
        mission corot; config t version 1;
        var acc : int;
        var fast_runs : int[0..1000000];
        task slow every 200 ms {
            for i in 0 .. 30000 { for j in 0 .. 10 { acc = (acc + i * j) % 1000; } }
        }
        task fast every 100 ms { fast_runs = fast_runs + 1; }
    """)
    vm = start_vvm(compiled)
    vm.run_for(2_000)
    tel = vm.telemetry
    assert tel.tasks["slow"].overruns >= 9 and tel.tasks["slow"].runs == 0
    assert any(f.code is TrapCode.OVERRUN and f.task == "slow" for f in tel.faults)
    # earliest deadline first: the 100 ms task always gets its turn
    assert tel.tasks["fast"].overruns == 0 and vm.global_value("fast_runs") == 20
    assert all(c <= vm.profile.share_cycles_per_frame for c in tel.cycles)


def test_idle_time_is_skipped_and_costs_no_frames(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """
        mission corot; config t version 1;
        var n : int[0..1000000];
        task tick every 60 s { n = n + 1; }
    """)
    vm = start_vvm(compiled)
    vm.run_for(DAY_MS)
    assert vm.global_value("n") == 1440
    assert len(vm.telemetry.frames) == 1440
    assert vm.now_ms == DAY_MS


def test_on_apply_runs_once_at_activation_before_any_task(tmp_path: Path) -> None:
    compiled = compile_text(tmp_path, """
        mission corot; config t version 1;
        var applied : int[0..100];
        var seen : int[0..100];
        task copy every 1 s { seen = applied; }
        on apply { applied = applied + 1; }
    """)
    vm = start_vvm(compiled)
    vm.run_for(5_000)
    assert vm.global_value("applied") == 1 and vm.global_value("seen") == 1


def test_call_runs_a_unit_and_reports_cycles_and_faults(exo_e1: Compiled) -> None:
    vm = start_vvm(exo_e1)
    out = vm.call("clamp", (500, 0, 100))
    assert out.result == 100 and out.fault is None and out.cycles > 0
    assert vm.rules_hold() == []


# ----------------------------------------------------------------------------- refusals


def _images(compiled: Compiled) -> tuple[Image, Image]:
    return compiled.image, compiled.vmlets[0].image


def test_a_configuration_needs_its_vmlets_loaded_first(exo_e1: Compiled) -> None:
    vm = VVM(exo_e1.mission, make_host(exo_e1.mission, 1))
    with pytest.raises(LoadError) as err:
        vm.load(exo_e1.image)
    assert err.value.code == "missing-vmlet"
    assert vm.program is None


def test_a_configuration_refuses_another_vmlet_version(exo_e1: Compiled) -> None:
    config, vmlet = _images(exo_e1)
    vm = VVM(exo_e1.mission, make_host(exo_e1.mission, 1))
    other = Image(**{**{f: getattr(vmlet, f) for f in vmlet.__dataclass_fields__
                        if not f.startswith("_")}, "version": 2})
    vm.load_vmlet(other)
    with pytest.raises(LoadError) as err:
        vm.load(config)
    assert err.value.code == "vmlet-mismatch"


def test_a_native_hidden_by_on_load_makes_the_configuration_unloadable(
        exo_e1: Compiled) -> None:
    class CcdTwo(CorotHost):
        def env(self, key: str) -> int:
            return 2 if key == "ccd" else super().env(key)

    host = CcdTwo(exo_e1.mission, 1)
    vm = VVM(exo_e1.mission, host)
    loaded = vm.load_vmlet(exo_e1.vmlets[0].image)
    assert "flag" not in loaded.visible and "flux" in loaded.visible
    with pytest.raises(LoadError) as err:
        vm.load(exo_e1.image)
    assert err.value.code == "hidden-native" and "flag" in err.value.message
