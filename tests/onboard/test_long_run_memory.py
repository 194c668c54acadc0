"""Long runs in bounded memory: the telemetry's per-frame arrays and the simulated
instrument's records keep recent windows, and the run's figures stay exact."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from support import start_vvm

from ccl.driver import Compiled, Compiler
from missions.corot import natives
from missions.corot.natives import CorotHost, make_host
from onboard.sim.simulator import Simulator
from onboard.vm import telemetry
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
HOUR_MS = 3_600_000
SMALL = 200  # a window small enough that an hour overflows it several times
MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def exo_e1() -> Compiled:
    return Compiler().compile(ROOT / "missions/corot/configs/exo_e1.ccl")


def _run(compiled: Compiled, hours: int) -> tuple[VVM, CorotHost]:
    host = make_host(compiled.mission, 3)
    vm = start_vvm(compiled, host=host)
    vm.run_for(hours * HOUR_MS)
    return vm, host


@pytest.fixture(scope="module")
def reference(exo_e1: Compiled) -> tuple[VVM, CorotHost]:
    """Six hours with the default windows, which six hours do not fill: nothing trimmed."""
    return _run(exo_e1, 6)


def test_memory_stops_growing_once_the_windows_are_full(
        exo_e1: Compiled, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "RECENT_FRAMES", SMALL)
    monkeypatch.setattr(natives, "RECENT_RECORDS", SMALL)
    vm, host = _run(exo_e1, 1)  # every window full (and trimmed) by now
    assert host.hit_count > 2 * SMALL and vm.telemetry.busy_frames > 2 * SMALL
    tracemalloc.start()
    try:
        vm.run_for(20 * MINUTE_MS)  # what one exposure holds (the stars' fluxes) is counted
        settled, _ = tracemalloc.get_traced_memory()
        vm.run_for(80 * MINUTE_MS)
        later, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 80 minutes add about 1,800 hits, 1,750 flags and 1,500 busy frames: unbounded, some
    # 400 kB of tuples; bounded, only the windows' churn remains.
    assert later - settled < 50_000, f"{later - settled} more bytes held after 80 minutes"
    assert len(vm.telemetry.frames) <= 2 * SMALL
    assert len(host.injected_hits()) <= 2 * SMALL and len(host.flags()) <= 2 * SMALL


def test_the_run_figures_stay_exact_when_the_windows_are_trimmed(
        exo_e1: Compiled, reference: tuple[VVM, CorotHost],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "RECENT_FRAMES", SMALL)
    monkeypatch.setattr(natives, "RECENT_RECORDS", SMALL)
    vm, host = _run(exo_e1, 6)
    full_vm, full_host = reference
    assert vm.status() == full_vm.status()  # busy frames, cycles, worst frame, tasks
    assert (host.hit_count, host.flag_count) == (len(full_host.injected_hits()),
                                                 len(full_host.flags()))
    kept = host.injected_hits()
    assert SMALL <= len(kept) <= 2 * SMALL
    assert kept == full_host.injected_hits()[-len(kept):]  # the most recent ones
    assert list(vm.telemetry.frames) == list(full_vm.telemetry.frames)[-len(vm.telemetry.frames):]
    assert vm.telemetry.worst_frame_cycles() == max(full_vm.telemetry.cycles)


def test_a_saved_state_keeps_the_run_totals(
        exo_e1: Compiled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "RECENT_FRAMES", SMALL)
    sim = Simulator.init(tmp_path / "sat", "corot", 3)
    for vmlet in exo_e1.vmlets:
        sim.load(vmlet.image)
    sim.load(exo_e1.image)
    sim.run(2 * HOUR_MS)
    before = sim.vvm.status()
    again = Simulator.open(tmp_path / "sat")
    assert again.vvm.status() == before
    assert before["busy_frames"] > 2 * SMALL > len(again.vvm.telemetry.frames)
    state = json.loads((tmp_path / "sat" / "state.json").read_text())
    assert state["frame_totals"]["busy_frames"] == before["busy_frames"]
