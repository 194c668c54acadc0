"""The scheduler's finishing rule: ``run_until(end, finish_jobs=True)`` (what every ``vvm``
command does before it saves) always ends, also when a task overruns every period, and a
run split in two goes on exactly as one long run when nothing overruns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import compile_text, start_vvm

from ccl.pack import pack
from onboard.patching.patch_format import development_key

ROOT = Path(__file__).resolve().parents[2]

#: ``spin`` needs about 2.5 frames of the budget and comes every frame: it never finishes.
OVERRUNNING = """\
mission corot;
config over version 1;
uses photometry;
param n : int[0..40] = 40;
var hits : int[0..1000000];
task spin every 100 ms {
    for a in 0 .. 40 { for b in 0 .. 40 { for c in 0 .. n { hits = (hits + c) % 1000; } } }
}
"""

#: Two tasks; ``slow`` spreads over several frames, ``quick`` does not.
TWO_TASKS = """\
mission corot;
config two version {version};
uses photometry;
param n : int[0..40] = {n};
var hits : int[0..1000000];
var sum : int[0..1000000];
task slow every {slow} ms {{
    for a in 0 .. 40 {{ for c in 0 .. n {{ hits = (hits + flux(c)) % 1000; }} }}
}}
task quick every 300 ms {{ sum = (sum + 1) % 1000; }}
"""


def test_finishing_ends_at_the_first_overrun_past_the_end(tmp_path: Path) -> None:
    vm = start_vvm(compile_text(tmp_path, OVERRUNNING, "over"))
    vm.run_for(1_000, finish_jobs=True)  # before: never returned
    assert vm.now_ms <= 1_100  # one period past the end, at most
    assert not vm.scheduler.busy  # a state that can be saved
    stats = vm.telemetry.tasks["spin"]
    assert stats.runs == 0 and stats.overruns >= 9
    # the release held back is made by the next run, which goes on overrunning
    before = stats.overruns
    vm.run_for(1_000, finish_jobs=True)
    assert stats.overruns >= before + 9 and not vm.scheduler.busy


def test_finishing_with_two_tasks_one_overrunning_ends(tmp_path: Path) -> None:
    c = compile_text(tmp_path, TWO_TASKS.format(version=1, n=40, slow=100), "two")
    vm = start_vvm(c)
    for _ in range(5):
        vm.run_for(700, finish_jobs=True)
        assert not vm.scheduler.busy
    assert vm.telemetry.tasks["slow"].overruns > 0
    assert vm.telemetry.tasks["quick"].runs > 0


@pytest.mark.parametrize("cut_ms", [100, 1_100, 2_350])
def test_a_split_run_is_one_long_run_when_nothing_overruns(tmp_path: Path,
                                                           cut_ms: int) -> None:
    c = compile_text(tmp_path, TWO_TASKS.format(version=1, n=40, slow=1000), "two")
    long = start_vvm(c)
    long.run_for(6_000)
    assert long.telemetry.tasks["slow"].worst_cycles > long.scheduler.budget_per_frame
    split = start_vvm(c)
    split.run_for(cut_ms, finish_jobs=True)  # a slow job in flight at 100 and 1,100 ms
    assert not split.scheduler.busy
    split.run_for(6_000 - split.now_ms)
    assert split.now_ms == long.now_ms
    assert list(split.telemetry.frames) == list(long.telemetry.frames)
    assert list(split.telemetry.cycles) == list(long.telemetry.cycles)
    assert split.global_value("hits") == long.global_value("hits")
    assert split.telemetry.fault_count == long.telemetry.fault_count == 0


def vvm(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.vvm", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_vvm_run_and_apply_end_on_a_configuration_that_overruns_every_period(
        tmp_path: Path) -> None:
    """Through the command, with a timeout: before, `vvm run` never returned."""
    c = compile_text(tmp_path, OVERRUNNING, "over")
    (tmp_path / "photometry.vvmi").write_bytes(c.vmlets[0].image.encode())
    (tmp_path / "over.vvmi").write_bytes(c.image.encode())
    state = tmp_path / "state"
    assert vvm("init", state, "--mission", "corot").returncode == 0
    loaded = vvm("load", state, tmp_path / "photometry.vvmi", tmp_path / "over.vvmi")
    assert loaded.returncode == 0, loaded.stderr
    ran = vvm("run", state, "--for", "2s")
    assert ran.returncode == 0, ran.stderr
    assert "faults" in ran.stdout and " 0 faults" not in ran.stdout
    # a patch that replaces it is switched to although `spin` is always in flight
    fix = compile_text(tmp_path, TWO_TASKS.format(version=2, n=10, slow=1000), "two")
    patch = tmp_path / "fix.vvmp"
    patch.write_bytes(pack(fix.image, [v.image for v in fix.vmlets], fix.mission,
                           development_key("corot"), seq=1, base=c.image).data)
    applied = vvm("apply", state, patch)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "active" in applied.stdout
    status = vvm("status", state)
    assert status.returncode == 0 and "two v2" in status.stdout
    assert vvm("run", state, "--for", "1m").returncode == 0


def test_a_fix_is_switched_to_although_a_task_overruns_every_period(tmp_path: Path) -> None:
    """Without finishing (the spacecraft model runs on), a switch used to wait for a
    boundary with no job in flight, which a task overrunning every period never leaves: the
    fix stayed staged and every later patch was refused ``busy``. The jobs due again at a
    boundary are dropped there as overruns anyway: the switch happens there."""
    from onboard.link.link_security import development_link_key
    from onboard.sim.spacecraft import Spacecraft

    key = development_key("corot")
    over = compile_text(tmp_path, OVERRUNNING, "over")
    fix = compile_text(tmp_path, TWO_TASKS.format(version=2, n=10, slow=1000), "two")
    sc = Spacecraft.create(over.mission, tmp_path / "store", key,
                           development_link_key(over.mission.name), probation_frames=10)
    sc.install(over.image, [v.image for v in over.vmlets])  # loaded before launch
    sc.run_until(5_000)
    overruns = sc.vvm.telemetry.tasks["spin"].overruns
    assert overruns >= 40 and sc.vvm.scheduler.busy
    sc.vvm.receive_patch(pack(fix.image, [v.image for v in fix.vmlets], fix.mission, key,
                              seq=1, base=over.image).data, 1)
    sc.run_until(10_000)
    assert sc.vvm.reconfiguration is not None
    assert [e.fate.status.value for e in sc.vvm.reconfiguration.events] == [
        "received", "staged", "active", "committed"]
    assert sc.vvm.telemetry.config_name == "two"
    # the job in flight at the switch was overrunning: counted, not lost
    assert sc.vvm.telemetry.tasks["spin"].overruns > overruns
