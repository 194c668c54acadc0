"""The `ccl` and `vvm` commands as users run them: real processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from onboard.vm.image import decode_image

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"
VMLETS = ROOT / "missions" / "corot" / "vmlets"


def ccl(*args: object, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd or ROOT)


def vvm(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.vvm", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "\x1b[" not in proc.stderr + proc.stdout  # plain text when piped


def test_check_accepts_the_contract_configurations() -> None:
    files = [CONFIGS / f"{n}.ccl" for n in ("exo_e1", "bad_rule", "bad_index", "bad_budget")]
    proc = ccl("check", *files, VMLETS / "photometry.ccl")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("ok ") == 5
    assert "config exo_e1 version 5" in proc.stdout
    assert_clean(proc)


def test_check_refuses_bad_syntax_with_location_caret_and_hint() -> None:
    proc = ccl("check", CONFIGS / "bad_syntax.ccl")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].endswith(
        "bad_syntax.ccl:3:24: error[E-OUT-OF-RANGE]: the initial value 11 is outside int[0..10]")
    assert lines[1].strip() == "3 | param x : int[0..10] = 11;"
    caret = lines[2]
    assert caret.index("^") == lines[1].index("11")
    assert lines[3].strip().startswith("hint:")
    assert_clean(proc)


def test_check_json_reports_each_file() -> None:
    proc = ccl("check", "--json", CONFIGS / "exo_e1.ccl", CONFIGS / "bad_syntax.ccl")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    good, bad = data["files"]
    assert good["ok"] and good["name"] == "exo_e1" and good["version"] == 5
    diag = bad["diagnostics"][0]
    assert (diag["code"], diag["line"], diag["column"]) == ("E-OUT-OF-RANGE", 3, 24)
    assert diag["hint"]


def test_compile_writes_an_image_whose_hash_is_reported(tmp_path: Path) -> None:
    target = tmp_path / "exo.vvmi"
    proc = ccl("compile", CONFIGS / "exo_e1.ccl", "-o", target, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    image = decode_image(target.read_bytes())
    assert summary["hash"] == image.content_hash.hex()
    assert summary["image_bytes"] == target.stat().st_size
    assert [t["name"] for t in summary["tasks"]] == ["cosmic_filter"]
    assert summary["uses"][0]["name"] == "photometry"


def test_compile_of_a_rejected_program_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bad.vvmi"
    proc = ccl("compile", CONFIGS / "bad_syntax.ccl", "-o", target)
    assert proc.returncode == 1
    assert not target.exists()
    assert "E-OUT-OF-RANGE" in proc.stderr


def test_disasm_of_the_cosmic_filter_is_readable(tmp_path: Path) -> None:
    proc = ccl("disasm", CONFIGS / "exo_e1.ccl")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "task cosmic_filter every 32000 ms" in text
    assert "L1:" in text and "FORLOOP  s, L1" in text
    assert "CALLN    flux" in text and "CALLN    noise" in text and "CALLN    flag" in text
    assert "photometry.med3" in text
    assert "LOAD_A   last1" in text and "CALL     clamp" in text
    # The same image from a file lists the same code (without source names for locals).
    image_file = tmp_path / "exo.vvmi"
    assert ccl("compile", CONFIGS / "exo_e1.ccl", "-o", image_file).returncode == 0
    from_image = ccl("disasm", image_file)
    assert from_image.returncode == 0
    assert "photometry.med3" in from_image.stdout and "CALLN    flux" in from_image.stdout
    as_json = json.loads(ccl("disasm", "--json", image_file).stdout)
    assert any("FORPREP" in line for f in as_json["functions"] for line in f["listing"])


def test_disasm_of_a_truncated_image_says_where(tmp_path: Path) -> None:
    good = tmp_path / "exo.vvmi"
    assert ccl("compile", CONFIGS / "exo_e1.ccl", "-o", good).returncode == 0
    bad = tmp_path / "cut.vvmi"
    bad.write_bytes(good.read_bytes()[:60])
    proc = ccl("disasm", bad)
    assert proc.returncode == 1
    assert "at offset 60" in proc.stderr and "truncated" in proc.stderr
    assert_clean(proc)
    insp = vvm("inspect", bad)
    assert insp.returncode == 1 and "at offset 60" in insp.stderr


def test_usage_errors_exit_2() -> None:
    assert ccl("frobnicate").returncode == 2
    assert ccl("check").returncode == 2
    assert ccl("compile").returncode == 2
    assert vvm().returncode == 2


@pytest.mark.parametrize("command", ["check", "compile", "verify", "pack", "disasm"])
def test_a_missing_input_file_is_one_clear_usage_error(command: str) -> None:
    proc = ccl(command, "no/such/file.ccl")
    assert proc.returncode == 2  # a usage error, as in vvm
    assert "no such file: no/such/file.ccl" in proc.stderr
    assert "hint: check the path" in proc.stderr
    assert_clean(proc)


def test_missing_mission_is_reported_at_its_name(tmp_path: Path) -> None:
    src = tmp_path / "x.ccl"
    src.write_text("config x version 1;\nmission nosuch;\n")
    proc = ccl("check", src)
    assert proc.returncode == 1
    assert f"{src}:2:9: error[E-MISSION]: unknown mission `nosuch`" in proc.stderr
    assert "corot" in proc.stderr  # the hint lists the known missions
    assert_clean(proc)


def test_missions_are_found_in_extra_folders(tmp_path: Path) -> None:
    extra = tmp_path / "profiles"
    shutil.copytree(ROOT / "missions" / "corot", extra / "corot_b")
    (extra / "corot_b" / "mission.toml").write_text(
        (ROOT / "missions" / "corot" / "mission.toml").read_text().replace(
            'name = "corot"', 'name = "corot_b"'))
    (extra / "corot_b" / "vmlets" / "photometry.ccl").write_text(
        (VMLETS / "photometry.ccl").read_text().replace("mission corot;", "mission corot_b;"))
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    src = elsewhere / "cfg.ccl"
    src.write_text("mission corot_b;\nconfig c version 1;\nuses photometry;\n"
                   "task t every 1 s { flag(0, 1); }\n")
    assert ccl("check", src).returncode == 1  # not on the default path
    by_flag = ccl("--missions", extra, "check", src)
    assert by_flag.returncode == 0, by_flag.stderr
    env = dict(os.environ, CCL_MISSIONS=str(extra))
    by_env = ccl("check", src, env=env)
    assert by_env.returncode == 0, by_env.stderr


@pytest.mark.parametrize("name", ["exo_e1", "bad_rule", "bad_index", "bad_budget"])
def test_vvm_inspect_reads_what_ccl_compiles(tmp_path: Path, name: str) -> None:
    target = tmp_path / f"{name}.vvmi"
    assert ccl("compile", CONFIGS / f"{name}.ccl", "-o", target).returncode == 0
    proc = vvm("inspect", "--json", target)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == name
