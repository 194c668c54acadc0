"""`ccl profile-pack`: new soft figures checked against the flight build's limits on the
ground, packed into a profile patch the board authenticates and takes."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_in_process

from onboard.mission import find_mission
from onboard.patching.conditions import ProfileConditions, current_values
from onboard.patching.patch_format import development_key


def write_figures(directory: Path, body: str) -> Path:
    path = directory / "figures.toml"
    path.write_text('mission = "corot"\n[figures]\n' + body)
    return path


def test_profile_pack_writes_a_patch_the_board_takes(tmp_path: Path) -> None:
    src = write_figures(tmp_path, "probation_frames = 300\nmax_pending = 2\n")
    out = tmp_path / "p.vpp"
    r = run_in_process("ccl", ["profile-pack", src, "--seq", "4", "-o", out, "--json"])
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["figures"] == {"probation_frames": 300, "max_pending": 2}
    assert summary["bytes"] == out.stat().st_size
    corot = find_mission("corot")
    board = ProfileConditions(corot, development_key("corot"))
    assert board.receive(out.read_bytes()).status == "accepted"
    board.switch(0)
    assert current_values(board.profile)["probation_frames"] == 300


def test_a_figure_outside_its_limit_is_refused_with_its_line_and_the_limit(
        tmp_path: Path) -> None:
    src = write_figures(tmp_path, "max_pending = 2\nprobation_frames = 50\n")
    r = run_in_process("ccl", ["profile-pack", src, "--seq", "4", "-o", tmp_path / "p.vpp"])
    assert r.returncode == 1
    assert f"{src}:4:1: probation_frames = 50 is outside its hard limit 100..6000" in r.stderr
    assert "hint:" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p.vpp").exists()


def test_a_hard_figure_is_refused_as_json(tmp_path: Path) -> None:
    src = write_figures(tmp_path, "share_percent = 12\n")
    r = run_in_process("ccl", ["profile-pack", src, "--seq", "4", "-o", tmp_path / "p.vpp",
                               "--json"])
    assert r.returncode == 1
    error = json.loads(r.stdout)["error"]
    assert error["where"] == f"{src}:3:1"
    assert "share_percent is a hard figure" in error["message"]


def test_a_file_without_figures_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "empty.toml"
    src.write_text('mission = "corot"\n')
    r = run_in_process("ccl", ["profile-pack", src, "--seq", "1", "-o", tmp_path / "p.vpp"])
    assert r.returncode == 1 and "[figures]" in r.stderr
