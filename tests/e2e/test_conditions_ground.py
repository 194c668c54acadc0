"""The ground proves and packs against the figures in force on board: `ccl verify` and
`ccl pack` with `--conditions FILE` (the profile patch the board committed), so a
configuration is proven within the patch reserve actually on board, not the flight
build's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import run_in_process

from onboard.mission import find_mission
from onboard.patching.conditions import CONDITIONS_FILE
from onboard.patching.patch_format import ProfilePatch, build_profile_patch, development_key
from tests.support import BUSY


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    corot = find_mission("corot")
    out = {"busy": tmp_path / "busy.ccl"}
    out["busy"].write_text(BUSY)
    for name, reserve in (("wide", 15_000), ("narrow", 12_000)):
        out[name] = tmp_path / f"{name}.vpp"
        out[name].write_bytes(build_profile_patch(ProfilePatch(
            corot.mission_id, corot.spacecraft_id, 1,
            {"patch_reserve_cycles_per_frame": reserve}), development_key("corot")))
    return out


def test_verify_proves_against_the_reserve_in_force(files: dict[str, Path]) -> None:
    r = run_in_process("ccl", ["verify", files["busy"]])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_in_process("ccl", ["verify", files["busy"], "--conditions", files["wide"],
                               "--json"])
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["files"][0]["status"] == "refuted"
    assert report["error"]["message"].startswith("error[V-CPU-SHARE]: refuted")
    assert "185,000 cycles per frame for the tasks" in report["error"]["message"]
    r = run_in_process("ccl", ["verify", files["busy"], "--conditions", files["narrow"]])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "120,000 patch reserve" in r.stdout  # 12,000 cycles in each of 10 frames a second


def test_pack_refuses_what_the_reserve_in_force_leaves_no_room_for(
        files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "busy.vvmp"
    # proven (and the proof kept) under the flight build's reserve first: not reused
    assert run_in_process("ccl", ["verify", files["busy"]]).returncode == 0
    r = run_in_process("ccl", ["pack", files["busy"], "--conditions", files["wide"], "-o", out])
    assert r.returncode == 1 and "not packed" in r.stderr and not out.exists()
    r = run_in_process("ccl", ["pack", files["busy"], "--conditions", files["narrow"], "-o",
                               out, "--json"])
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["patch_reserve_cycles_per_frame"] == 12_000
    assert summary["claims"]["cycles_per_frame"] == 186_186


def test_a_conditions_file_that_is_not_the_boards_is_refused_cleanly(
        files: dict[str, Path], tmp_path: Path) -> None:
    forged = tmp_path / CONDITIONS_FILE
    forged.write_bytes(files["narrow"].read_bytes()[:-1] + b"\0")  # the tag broken
    for args in (["verify", files["busy"]], ["pack", files["busy"], "-o", tmp_path / "x"]):
        r = run_in_process("ccl", [*args, "--conditions", forged])
        assert r.returncode == 1, r.stderr
        assert "not a profile patch authenticated by the patch key" in r.stderr
        assert "hint: " in r.stderr
        assert "Traceback" not in r.stderr


def test_a_profile_patch_goes_up_the_link_and_pack_reads_the_committed_one_from_the_ledger(
        files: dict[str, Path], tmp_path: Path) -> None:
    """`ccl uplink simulate` sends a profile patch (preflight: tag and limits), telemetry
    tells the ledger it was committed, and `ccl pack` then proves against its reserve."""
    ledger = tmp_path / "ledger.sqlite"
    r = run_in_process("ccl", ["uplink", "simulate", files["wide"], "--days", "1",
                               "--ledger", ledger])
    assert r.returncode == 0, r.stderr
    assert "committed" in r.stdout and "(profile patch)" in r.stdout
    out = tmp_path / "busy.vvmp"
    r = run_in_process("ccl", ["pack", files["busy"], "--ledger", ledger, "-o", out])
    assert r.returncode == 1 and not out.exists()
    assert "as telemetry told the ledger" in r.stderr and "reserve 15000" in r.stderr
    assert "185,000 cycles per frame for the tasks" in r.stderr
    # a profile patch out of the limits never goes up
    bad = tmp_path / "bad.vpp"
    corot = find_mission("corot")
    bad.write_bytes(build_profile_patch(ProfilePatch(corot.mission_id, corot.spacecraft_id, 2,
                                                     {"probation_frames": 50}),
                                        development_key("corot")))
    r = run_in_process("ccl", ["uplink", "simulate", bad, "--days", "1"])
    assert r.returncode == 1 and "outside its hard limit 100..6000" in r.stderr
