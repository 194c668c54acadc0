"""The compiler's commands (check, compile, disasm, verify, pack, inspect, keygen) on bad
input, as an operator meets them: exit codes, one message with what, where and a hint, JSON
on stdout with ``--json``, never a traceback or exit 70. The commands run in this process as
their own process would run them (``support.run_in_process``: argv, working folder,
environment, exit code); what a terminal shows runs in a real process on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import drawn_on_a_terminal, run_in_process

from onboard.patching.patch_format import parse_header

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"
EXO = CONFIGS / "exo_e1.ccl"
SEQ_MAX = (1 << 64) - 1
SOURCE_COMMANDS = ("check", "compile", "verify", "pack", "disasm")
BOX = set("│┃─━┏┓┗┛┡┩╇┼")  # rich's table borders


def ccl(*args: object, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ccl ARGS`` with stdout and stderr captured, run in this process as a process of
    its own would run it (``support.run_in_process``); what needs a terminal runs in one."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CCL_PATCH_KEY", "CCL_DEBUG")}
    return run_in_process("ccl", [str(a) for a in args], cwd=cwd or ROOT,
                          env=environ | (env or {}))


def answered(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Assert ``proc`` ended with ``code``, without a traceback or an internal error, and
    return what it said (stdout and stderr)."""
    said = proc.stdout + proc.stderr
    assert proc.returncode == code, said
    assert "Traceback" not in said and "internal error" not in said
    return said


def json_failure(proc: subprocess.CompletedProcess[str], code: int) -> dict[str, object]:
    """The ``{"ok": false, "error": {...}}`` a ``--json`` command printed on stdout."""
    answered(proc, code)
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    error = data["error"]
    assert error["exit_code"] == code and error["message"] and error["hint"]
    return data


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A folder with an empty, a comment-only and a non-UTF-8 CCL file."""
    (tmp_path / "empty.ccl").write_text("")
    (tmp_path / "comments.ccl").write_text("// nothing here yet\n/* not even a mission */\n")
    (tmp_path / "latin1.ccl").write_bytes(b"mission corot;\n// caf\xe9\n")
    return tmp_path


@pytest.mark.parametrize("command", SOURCE_COMMANDS)
def test_an_empty_or_comment_only_source_is_rejected_at_line_1(sources: Path,
                                                              command: str) -> None:
    said = answered(ccl(command, "empty.ccl", cwd=sources), 1)
    assert "empty.ccl:1:1: error[E-NO-MISSION]" in said and "hint:" in said
    data = json_failure(ccl(command, "comments.ccl", "--json", cwd=sources), 1)
    error = data["error"]
    assert isinstance(error, dict) and error["where"] == "comments.ccl:1:1"
    assert "E-NO-MISSION" in str(error["message"])
    assert not list(sources.glob("*.vvm?"))  # nothing written


@pytest.mark.parametrize("command", SOURCE_COMMANDS)
def test_a_source_that_is_not_utf8_is_rejected_where_it_stops_being_text(
        sources: Path, command: str) -> None:
    said = answered(ccl(command, "latin1.ccl", cwd=sources), 1)
    assert "latin1.ccl:2:7: error[E-READ]" in said and "not UTF-8" in said


@pytest.mark.parametrize("command", (*SOURCE_COMMANDS, "inspect"))
def test_a_missing_or_directory_input_is_a_usage_error(tmp_path: Path, command: str) -> None:
    said = answered(ccl(command, "nowhere.ccl", cwd=tmp_path), 2)
    assert "no such file: nowhere.ccl" in said
    json_failure(ccl(command, "nowhere.ccl", "--json", cwd=tmp_path), 2)
    (tmp_path / "folder.ccl").mkdir()
    said = answered(ccl(command, "folder.ccl", cwd=tmp_path), 2)
    assert "is a directory" in said


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
@pytest.mark.parametrize("command", (*SOURCE_COMMANDS, "inspect"))
def test_an_unreadable_input_is_a_usage_error(tmp_path: Path, command: str) -> None:
    locked = tmp_path / "locked.ccl"
    shutil.copy(EXO, locked)
    locked.chmod(0)
    said = answered(ccl(command, locked, cwd=tmp_path), 2)
    assert "permission denied" in said and "chmod" in said


@pytest.mark.parametrize("content, say", [
    (b"", "empty"),
    (b"\xff\xfe" + bytes(range(256)), "neither an image"),  # 0xff is never UTF-8
    (b"VVMI\x01\x02", "at offset"),
])
def test_disasm_of_a_file_that_is_no_image_says_what_it_is_not(
        tmp_path: Path, content: bytes, say: str) -> None:
    target = tmp_path / "thing.bin"
    target.write_bytes(content)
    said = answered(ccl("disasm", target), 1)
    assert say in said and "hint:" in said
    data = json_failure(ccl("disasm", target, "--json"), 1)
    assert "thing.bin" in str(data["error"])


def test_disasm_of_a_truncated_image_names_the_offset(tmp_path: Path) -> None:
    image = tmp_path / "exo.vvmi"
    answered(ccl("compile", EXO, "-o", image), 0)
    cut = tmp_path / "cut.vvmi"
    cut.write_bytes(image.read_bytes()[:40])
    said = answered(ccl("disasm", cut), 1)
    assert f"{cut} at offset" in said and "not an image" in said and "hint:" in said


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "soon"])
def test_verify_refuses_a_timeout_that_is_not_a_positive_finite_number(value: str) -> None:
    said = answered(ccl("verify", EXO, f"--timeout={value}"), 2)
    assert "--timeout" in said and "hint:" in said


@pytest.mark.parametrize("value", ["0", "-3", str(SEQ_MAX + 1), str(10 ** 30), "x"])
def test_pack_refuses_a_sequence_number_outside_64_bits(tmp_path: Path, value: str) -> None:
    said = answered(ccl("pack", EXO, f"--seq={value}", cwd=tmp_path), 2)
    assert "--seq" in said
    assert not list(tmp_path.iterdir())


def test_pack_takes_the_largest_64_bit_sequence_number(tmp_path: Path) -> None:
    proc = ccl("pack", EXO, "--seq", SEQ_MAX, "--json", cwd=tmp_path)
    answered(proc, 0)
    assert json.loads(proc.stdout)["seq"] == SEQ_MAX
    assert parse_header((tmp_path / "exo_e1.vvmp").read_bytes()).header.seq == SEQ_MAX


@pytest.mark.parametrize("command", ["compile", "pack"])
def test_output_into_a_missing_directory_or_onto_a_directory_is_a_usage_error(
        tmp_path: Path, command: str) -> None:
    said = answered(ccl(command, EXO, "-o", tmp_path / "no" / "such" / "x.out"), 2)
    assert "no directory" in said and "hint: create" in said
    (tmp_path / "afile").write_text("")
    said = answered(ccl(command, EXO, "-o", tmp_path / "afile" / "x.out"), 2)
    assert "afile is not a directory" in said
    (tmp_path / "adir").mkdir()
    data = json_failure(ccl(command, EXO, "-o", tmp_path / "adir", "--json"), 2)
    assert "is a directory" in str(data["error"])


@pytest.mark.parametrize("command, suffix", [("compile", ".vvmi"), ("pack", ".vvmp")])
def test_the_default_output_goes_to_the_current_directory_and_is_named(
        tmp_path: Path, command: str, suffix: str) -> None:
    before = sorted(p.name for p in CONFIGS.iterdir())
    proc = ccl(command, EXO, cwd=tmp_path)
    answered(proc, 0)
    assert (tmp_path / f"exo_e1{suffix}").is_file()
    assert f"wrote exo_e1{suffix}" in proc.stdout
    assert sorted(p.name for p in CONFIGS.iterdir()) == before  # nothing next to the source


def test_a_big_source_is_checked(tmp_path: Path) -> None:
    lines = ["mission corot;", "config big version 1;"]
    lines += [f"param p{i} : int[0..100] = {i % 100};" for i in range(2_000)]
    lines += [f"// line {i} of a long commentary" for i in range(98_000)]
    (tmp_path / "big.ccl").write_text("\n".join(lines) + "\n")
    proc = ccl("check", "big.ccl", cwd=tmp_path)
    answered(proc, 0)
    assert "ok big.ccl: config big version 1 (2000 globals" in proc.stdout


def test_a_key_file_unreadable_is_usage_malformed_is_rejected(tmp_path: Path) -> None:
    said = answered(ccl("pack", EXO, "--key", tmp_path / "none.key", cwd=tmp_path), 2)
    assert "cannot read key file" in said
    (tmp_path / "dir.key").mkdir()
    answered(ccl("pack", EXO, "--key", tmp_path / "dir.key", cwd=tmp_path), 2)
    (tmp_path / "bad.key").write_text("# a key\nnot hex at all\n")
    said = answered(ccl("pack", EXO, "--key", tmp_path / "bad.key", cwd=tmp_path), 1)
    assert "bad.key" in said and "hint: write one with `ccl keygen" in said
    (tmp_path / "binary.key").write_bytes(b"\xff\xfe\x00\x01")
    json_failure(ccl("pack", EXO, "--key", tmp_path / "binary.key", "--json",
                     cwd=tmp_path), 1)
    assert not list(tmp_path.glob("*.vvmp"))


def test_keygen_json(tmp_path: Path) -> None:
    key = tmp_path / "corot.key"
    proc = ccl("keygen", "-o", key, "--mission", "corot", "--json")
    answered(proc, 0)
    data = json.loads(proc.stdout)
    assert data["ok"] is True and data["output"] == str(key) and data["kind"] == "patch"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    json_failure(ccl("keygen", "-o", key, "--json"), 2)  # exists: --force
    json_failure(ccl("keygen", "-o", tmp_path / "no" / "k.key", "--json"), 2)


@pytest.fixture(scope="module")
def patch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full patch of exo_e1, signed with the mission's (development) key."""
    folder = tmp_path_factory.mktemp("patch")
    answered(ccl("pack", EXO, "-o", folder / "exo.vvmp"), 0)
    return folder / "exo.vvmp"


def test_inspect_checks_the_tag_with_the_key_pack_signs_with(patch: Path) -> None:
    proc = ccl("inspect", patch)
    answered(proc, 0)
    assert "verified with the development key of `corot`" in proc.stdout
    report = json.loads(ccl("inspect", patch, "--json").stdout)
    assert report["ok"] is True and report["tag"]["status"] == "verified"


def test_inspect_with_a_wrong_key_says_so_in_one_error_line(patch: Path,
                                                            tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    answered(ccl("keygen", "-o", wrong), 0)
    proc = ccl("inspect", patch, "--key", wrong)
    answered(proc, 1)
    assert "TAG" in proc.stdout and "FAILED" in proc.stdout
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and f"{patch} at offset" in error[0]
    assert "the tag does not verify with" in error[0] and "hint:" in proc.stderr
    data = json_failure(ccl("inspect", patch, "--key", wrong, "--json"), 1)
    assert data["tag"]["status"] == "failed"  # type: ignore[index]
    env_key = wrong.read_text().splitlines()[1]
    answered(ccl("inspect", patch, env={"CCL_PATCH_KEY": env_key}), 1)


@pytest.mark.parametrize("content", [b"", random.Random(7).randbytes(64), b"VP\x01"],
                         ids=["empty", "random", "magic-only"])
def test_inspect_json_failures_are_json(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.vvmp"
    bad.write_bytes(content)
    data = json_failure(ccl("inspect", bad, "--json"), 1)
    assert "bad.vvmp at offset" in str(data["error"])


def test_a_refuted_rule_does_not_read_as_if_it_held() -> None:
    proc = ccl("verify", CONFIGS / "bad_rule.ccl")
    said = answered(proc, 1)
    assert "refuted: rule `exposure_s * coadd <= 512` can be broken" in said
    assert "holds for every parameter set" not in said


def test_each_size_of_a_patch_says_which_it_is(patch: Path, tmp_path: Path) -> None:
    size = patch.stat().st_size
    assert f"patch file: {size} bytes" in ccl("inspect", patch).stdout
    proc = ccl("pack", EXO, cwd=tmp_path)
    assert f"patch file {size} bytes (image " in answered(proc, 0)
    assert "estimated patch size" in answered(ccl("verify", EXO), 0)


def test_verify_piped_is_plain_text() -> None:
    proc = ccl("verify", EXO)
    said = answered(proc, 0)
    assert "\x1b[" not in said and not BOX & set(said)
    assert "PROVEN" in proc.stdout and "  budgets:" in proc.stdout
    assert proc.stderr == ""  # no progress drawn when not on a terminal


def test_verify_shows_progress_on_a_terminal() -> None:
    code, drawn, out = drawn_on_a_terminal([sys.executable, "-m", "cli.ccl", "verify", EXO],
                                           ROOT)
    assert code == 0
    assert b"verifying" in drawn and b"steps" in drawn
    assert b"PROVEN" in out  # the result itself on stdout


def test_a_patch_where_an_image_is_expected_is_named(patch: Path, tmp_path: Path) -> None:
    said = answered(ccl("disasm", patch), 1)
    assert "a patch, not an image" in said and "`ccl inspect` shows patches" in said
    said = answered(ccl("pack", EXO, "--base", patch, cwd=tmp_path), 1)
    assert "the base is a patch, not an image" in said
    said = answered(ccl("inspect", patch, "--base", patch), 1)
    assert "the base is a patch, not an image" in said


@pytest.mark.parametrize("command", ["compile", "pack"])
def test_an_empty_output_path_is_a_usage_error(tmp_path: Path, command: str) -> None:
    said = answered(ccl(command, EXO, "-o", "", cwd=tmp_path), 2)
    assert "the output path is empty" in said
    assert not list(tmp_path.iterdir())


def test_pack_reuses_the_proof_of_verify_for_the_very_same_configuration(
        tmp_path: Path) -> None:
    kept = tmp_path / "proofs"
    env = {"CCL_PROOF_CACHE": str(kept)}
    source = tmp_path / "exo_e1.ccl"
    source.write_text(EXO.read_text())
    shutil.copytree(CONFIGS.parent / "vmlets", tmp_path / "vmlets")
    answered(ccl("verify", source, env=env), 0)
    assert len(list(kept.glob("*.json"))) == 1
    proc = ccl("pack", source, "--json", cwd=tmp_path, env=env)
    answered(proc, 0)
    assert json.loads(proc.stdout)["proof"] == "reused" and "reused" in proc.stderr
    first = (tmp_path / "exo_e1.vvmp").read_bytes()
    proc = ccl("pack", source, "--json", "--reprove", cwd=tmp_path, env=env)
    assert json.loads(proc.stdout)["proof"] == "new"
    assert (tmp_path / "exo_e1.vvmp").read_bytes() == first  # the same claim, the same patch
    source.write_text(source.read_text() + "\n// a comment is a change too\n")
    proc = ccl("pack", source, "--json", cwd=tmp_path, env=env)
    assert json.loads(proc.stdout)["proof"] == "new"
    proc = ccl("pack", EXO, "--json", cwd=tmp_path, env={"CCL_PROOF_CACHE": "off"})
    assert json.loads(proc.stdout)["proof"] == "new"


def test_paths_with_brackets_are_printed_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "v[bold]"
    folder.mkdir()
    shutil.copy(EXO, folder / "exo[i].ccl")
    shutil.copytree(CONFIGS.parent / "vmlets", folder / "vmlets")
    proc = ccl("check", "v[bold]/exo[i].ccl", cwd=tmp_path)
    assert "ok v[bold]/exo[i].ccl: config exo_e1" in answered(proc, 0)
    proc = ccl("compile", "v[bold]/exo[i].ccl", "-o", "out[red].vvmi", cwd=tmp_path)
    assert "wrote out[red].vvmi" in answered(proc, 0)


@pytest.mark.parametrize("value, say", [
    ("1" * 100_000, "a number of 100,000 digits does not fit in 64 bits"),
    ("0x" + "F" * 100_000, "0xFFFFFFFFFF... (100,002 characters) does not fit in 32 bits"),
])
def test_a_huge_number_is_refused_in_a_short_message(tmp_path: Path, value: str,
                                                    say: str) -> None:
    source = tmp_path / "huge.ccl"
    source.write_text(f"mission corot;\nconfig x version 1;\nparam a : int[0..10] = {value};\n")
    proc = ccl("check", source)
    said = answered(proc, 1)
    assert f"huge.ccl:3:24: error[E-LITERAL]: {say}" in said
    assert max(len(line) for line in said.splitlines()) < 300


def test_a_control_character_is_named(tmp_path: Path) -> None:
    source = tmp_path / "nul.ccl"
    source.write_text("mission corot;\x00\nconfig x version 1;\n")
    said = answered(ccl("check", source), 1)
    assert "nul.ccl:1:15: error[E-SYNTAX]: syntax error: unexpected character U+0000" in said
