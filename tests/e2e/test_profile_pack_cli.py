"""`ccl profile-pack`: new soft figures checked against the flight build's limits on the
ground, packed into a profile patch the board authenticates and takes."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_in_process

from onboard.mission import find_mission
from onboard.patching.conditions import ProfileConditions, current_values
from onboard.patching.patch_format import development_key
from tests.support import BUSY


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




def test_vvm_apply_takes_a_profile_patch_at_a_frame_boundary_or_refuses_it(
        tmp_path: Path) -> None:
    """A profile patch through `vvm apply`: one that would leave the configuration on board
    less than it is proven to need is refused (exit 1, the state byte-identical); one
    within is in force at the next frame boundary, on probation across commands, then
    committed, and `vvm status` shows the figures in force."""
    (tmp_path / "busy.ccl").write_text(BUSY)
    sat, busy = tmp_path / "sat", tmp_path / "busy.vvmp"
    for prog, args in [("ccl", ["pack", tmp_path / "busy.ccl", "-o", busy]),
                       ("vvm", ["init", sat, "--mission", "corot"]),
                       ("vvm", ["apply", sat, busy]), ("vvm", ["run", sat, "--for", "70s"])]:
        r = run_in_process(prog, args)
        assert r.returncode == 0, r.stderr
    big = write_figures(tmp_path, "patch_reserve_cycles_per_frame = 15000\n")
    assert run_in_process("ccl", ["profile-pack", big, "--seq", "1", "-o",
                                  tmp_path / "big.vpp"]).returncode == 0
    before = {p.name: p.read_bytes() for p in (sat / "store").iterdir()}
    r = run_in_process("vvm", ["apply", sat, tmp_path / "big.vpp"])
    assert r.returncode == 1
    assert "over-budget at patch_reserve_cycles_per_frame" in r.stderr
    assert "`busy` v1 is proven to need" in r.stderr and "hint: " in r.stderr
    assert {p.name: p.read_bytes() for p in (sat / "store").iterdir()} == before
    ok = write_figures(tmp_path, "patch_reserve_cycles_per_frame = 12000\n"
                                 "probation_frames = 100\n")
    assert run_in_process("ccl", ["profile-pack", ok, "--seq", "2", "-o",
                                  tmp_path / "ok.vpp"]).returncode == 0
    r = run_in_process("vvm", ["apply", sat, tmp_path / "ok.vpp", "--json"])
    assert r.returncode == 0, r.stderr
    assert [f["status"] for f in json.loads(r.stdout)["fates"]] == ["received", "staged",
                                                                   "active"]
    r = run_in_process("vvm", ["run", sat, "--for", "11s"])  # probation goes on, then commits
    assert r.returncode == 0 and "committed: profile patch" in r.stdout
    assert (sat / "store" / "conditions.vpp").is_file()
    status = json.loads(run_in_process("vvm", ["status", sat, "--json"]).stdout)
    app = status.get("applications", {}).get("default", status)
    assert app["conditions"]["figures"]["patch_reserve_cycles_per_frame"] == 12_000
    assert app["patch_reserve_per_frame"] == 12_000


def test_a_board_of_several_applications_in_vvm_refuses_a_profile_patch(
        tmp_path: Path) -> None:
    """`vvm` gives the board's figures to no single application: with named applications
    a profile patch is refused, and nothing changes."""
    # proven to need about 44,000 cycles per frame: within photo's 3 % (60,000)
    (tmp_path / "busy.ccl").write_text(BUSY.replace("int[0..2550]", "int[0..600]"))
    sat, busy = tmp_path / "sat", tmp_path / "busy.vvmp"
    for prog, args in [("ccl", ["pack", tmp_path / "busy.ccl", "-o", busy]),
                       ("vvm", ["init", sat, "--mission", "corot"]),
                       ("vvm", ["apply", sat, busy, "--app", "photo", "--share", "3"])]:
        r = run_in_process(prog, args)
        assert r.returncode == 0, r.stderr
    figures = write_figures(tmp_path, "probation_frames = 300\n")
    assert run_in_process("ccl", ["profile-pack", figures, "--seq", "1", "-o",
                                  tmp_path / "p.vpp"]).returncode == 0
    r = run_in_process("vvm", ["apply", sat, tmp_path / "p.vpp"])
    assert r.returncode == 1 and "takes no profile patches" in r.stderr
    assert not (sat / "store" / "conditions.vpp").exists()
