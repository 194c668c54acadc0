"""The `vvm` command as operators run it: exit codes, messages (in this process, as a process
of its own would run it: ``support.run_in_process``; Ctrl-C and a closed pipe in real ones).

The patch queue saved between commands (two patches applied in a row both get a fate), the
read-back of values by name (`vvm dump`: state carried over a new version while a parameter
changed), `vvm run` stopped by Ctrl-C keeping what it simulated, and bad input of every kind
answered with one message and an exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import run_in_process

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"


def run(tool: str, *args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``ccl`` or ``vvm`` (``tool``) run in this process as its own process would run it
    (``support.run_in_process``); Ctrl-C and the closed pipe below use real processes."""
    return run_in_process(tool, [str(a) for a in args], cwd=cwd)


def clean(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """No traceback, no internal error, whatever the exit code."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text and "internal error" not in text, text
    assert proc.returncode != 70, text
    return proc


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return clean(proc)


def vvm(*args: object) -> subprocess.CompletedProcess[str]:
    return clean(run("vvm", *args))


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """exo_e1 v5 (image and full patch), the v5 -> v6 delta and the photometry VMlet's
    image, as the ground makes them."""
    tmp = tmp_path_factory.mktemp("exo")
    v5, v6 = CONFIGS / "exo_e1.ccl", CONFIGS / "exo_e1_v6.ccl"
    files = {"v5.vvmi": tmp / "v5.vvmi", "v5.vvmp": tmp / "v5.vvmp",
             "v6.vvmp": tmp / "v6.vvmp", "photometry.vvmi": tmp / "photometry.vvmi"}
    ok(run("ccl", "compile", v5, "-o", files["v5.vvmi"]))
    ok(run("ccl", "compile", CONFIGS.parent / "vmlets" / "photometry.ccl", "-o",
           files["photometry.vvmi"]))
    ok(run("ccl", "pack", v5, "-o", files["v5.vvmp"]))
    ok(run("ccl", "pack", v6, "--base", files["v5.vvmi"], "-o", files["v6.vvmp"]))
    return files


def status(state: Path) -> dict:
    return json.loads(ok(run("vvm", "status", state, "--json")).stdout)


# ---------------------------------------------------------------------- the queue


def test_a_patch_applied_while_another_is_on_probation_is_not_lost(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    second = ok(run("vvm", "apply", state, patches["v6.vvmp"]))
    assert "patch 2  received" in second.stdout
    assert "waits in the queue" in second.stderr
    assert status(state)["patches_waiting"] == 1
    assert len(list((state / "waiting").glob("*.vvmp"))) == 1  # saved, in its own file

    out = ok(run("vvm", "run", state, "--for", "5m")).stdout
    assert "patch 1 (seq 5)  committed" in out
    assert "patch 2 (seq 6)  staged" in out and "patch 2 (seq 6)  committed" in out
    board = status(state)
    assert board["patches_waiting"] == 0
    assert board["config"]["version"] == 6
    assert list((state / "waiting").glob("*")) == []  # taken from the queue, file removed


def test_a_waiting_patch_whose_file_is_lost_still_gets_a_fate(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    ok(run("vvm", "apply", state, patches["v6.vvmp"]))
    for saved in (state / "waiting").glob("*.vvmp"):
        saved.unlink()  # damaged directory: the patch's bytes are gone
    ok(run("vvm", "run", state, "--for", "2m"))
    board = status(state)
    fates = [(p["ticket"], p["status"]) for p in board["patches"]]
    assert fates[-1] == (1, "committed") and (2, "rejected") in fates
    lost = next(p for p in board["patches"] if p["ticket"] == 2 and p["status"] == "rejected")
    assert lost["message"].startswith("lost while waiting")
    assert board["config"]["version"] == 5 and board["patches_waiting"] == 0


def test_run_json_reports_the_fates_of_the_patches_it_handled(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot", "--json"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"], "--json"))
    report = json.loads(ok(run("vvm", "--json", "run", state, "--for", "90s")).stdout)
    assert report["ok"] and report["complete"]
    assert report["ran_ms"] >= 90_000
    assert [f["status"] for f in report["fates"]] == ["committed"]


# ---------------------------------------------------------------------- read-back


def test_dump_shows_state_carried_over_a_new_version_and_the_changed_parameter(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    ok(run("vvm", "run", state, "--for", "2m"))  # v5 committed, its task ran a few times

    def dump(*names: str) -> dict[str, dict]:
        out = json.loads(ok(run("vvm", "dump", state, *names, "--json")).stdout)
        return {v["name"]: v for v in out["values"]}

    before = dump("cr_k10", "last1", "rejected")
    assert before["cr_k10"] == {"name": "cr_k10", "kind": "param", "range": [20, 100],
                                "value": 50}
    assert before["last1"]["kind"] == "array" and any(before["last1"]["values"])
    assert before["rejected"]["value"] > 0

    ok(run("vvm", "apply", state, patches["v6.vvmp"]))  # the delta: cr_k10 50 -> 60
    after = dump("cr_k10", "last1", "rejected")
    assert after["cr_k10"]["value"] == 60
    assert after["last1"]["values"] == before["last1"]["values"]  # carried over the switch
    assert after["rejected"]["value"] == 0  # v6's `on apply` resets it, as declared

    ok(run("vvm", "run", state, "--for", "2m"))
    later = dump()
    assert later["cr_k10"]["value"] == 60
    assert later["rejected"]["value"] > 0  # the state goes on counting in v6
    assert status(state)["store"]["phase"] == "idle"  # v6 committed


def test_dump_text_abbreviates_long_arrays_unless_full(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    # v5 uses the photometry VMlet: loading the configuration alone is refused by name
    refused = vvm("load", state, patches["v5.vvmi"])
    assert refused.returncode == 1 and "refused (missing-vmlet)" in refused.stderr
    loaded = json.loads(ok(run("vvm", "load", state, patches["photometry.vvmi"],
                                patches["v5.vvmi"], "--json")).stdout)
    assert [(x["kind"], x["name"]) for x in loaded["loaded"]] == \
        [("vmlet", "photometry"), ("config", "exo_e1")]
    short = ok(run("vvm", "dump", state)).stdout
    assert "param cr_k10 = 50  [20..100]" in short
    assert "table star_x[6000] = {" in short and "more ..." in short
    full = ok(run("vvm", "dump", state, "star_x", "--full")).stdout
    assert "more ..." not in full and full.count(",") >= 5999


def test_dump_of_an_unknown_name_lists_the_known_ones(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    empty = vvm("dump", state)
    assert empty.returncode == 1 and "no configuration runs" in empty.stderr
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    proc = vvm("dump", state, "cr_k10", "nosuch")
    assert proc.returncode == 1
    assert "no such name in exo_e1 v5: nosuch" in proc.stderr
    assert "known names: exposure_s, coadd, cr_k10" in proc.stderr
    as_json = vvm("dump", state, "nosuch", "--json")
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["exit_code"] == 1 and "cr_k10" in error["hint"]


# ---------------------------------------------------------------------- vvm run


def test_ctrl_c_stops_a_long_run_and_keeps_what_was_simulated(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.vvm", "run", str(state), "--for",
                             "30d"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # said once Ctrl-C is handled: the run starts now
    assert "simulating 30 days takes about" in first and "Ctrl-C" in first
    try:
        proc.wait(timeout=2)  # simulate a little
    except subprocess.TimeoutExpired:
        pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "interrupted: stopped after" in err and "what was simulated is saved" in err
    now_s = float(out.split("now t = ")[1].split(" s")[0])
    assert 0 < now_s < 30 * 86400
    board = status(state)
    assert board["time_ms"] == round(now_s * 1000)  # saved exactly where it stopped
    assert board["store"]["phase"] == "idle"  # v5 committed in the part that ran


@pytest.mark.parametrize("duration", ["infh", "nan", "-5m", "", "5", "1e400d", "nanh"])
def test_a_bad_duration_is_a_usage_error(tmp_path: Path, duration: str) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    proc = vvm("run", state, "--for", duration)
    assert proc.returncode == 2
    assert "not a duration" in proc.stderr and "hint: durations look like" in proc.stderr
    assert status(state)["time_ms"] == 0  # nothing ran


def test_an_unreasonable_duration_is_refused_with_the_host_time_it_would_take(
        tmp_path: Path) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    proc = vvm("run", state, "--for", "1e9d")
    assert proc.returncode == 2
    assert "1e9d is 1e+09 days of simulated time" in proc.stderr
    assert "years of host time" in proc.stderr and "at most 400 days" in proc.stderr
    as_json = vvm("run", state, "--for", "401d", "--json")
    assert as_json.returncode == 2
    assert "about 3.3 h of host time" in json.loads(as_json.stdout)["error"]["message"]


# ---------------------------------------------------------------------- convention


def test_version_and_missions_as_a_group_option_or_per_command(tmp_path: Path) -> None:
    version = ok(run("vvm", "--version")).stdout
    assert version.startswith("vvm, version ")
    extra = tmp_path / "more-missions"
    extra.mkdir()
    ok(run("vvm", "--missions", extra, "init", tmp_path / "a", "--mission", "corot"))
    ok(run("vvm", "init", tmp_path / "b", "--mission", "corot", "--missions", extra))
    unknown = vvm("init", tmp_path / "c", "--mission", "nosuch", "--missions", extra)
    # A wrong name on the command line is a usage error, as in `ccl passes --mission`.
    assert unknown.returncode == 2 and "unknown mission `nosuch`" in unknown.stderr
    assert not (tmp_path / "c" / "state.json").exists()


@pytest.mark.parametrize("command", ["init", "load", "apply", "run", "status", "inspect",
                                     "dump"])
def test_every_command_answers_json_and_fails_as_json(tmp_path: Path, command: str) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    args = {"init": ["init", state, "--mission", "corot"],  # already holds a state: 1
            "load": ["load", state, tmp_path / "nope.vvmi"],
            "apply": ["apply", state, tmp_path / "nope.vvmp"],
            "run": ["run", tmp_path / "nope", "--for", "1s"],
            "status": ["status", tmp_path / "nope"],
            "inspect": ["inspect", tmp_path / "nope.vvmi"],
            "dump": ["dump", state]}[command]  # no configuration runs: 1
    proc = vvm(*args, "--json")
    assert proc.returncode in (1, 2)
    answer = json.loads(proc.stdout)
    assert answer["ok"] is False and answer["error"]["exit_code"] == proc.returncode
    assert proc.stderr == ""


def test_a_rejected_patch_and_a_usage_error_are_json_failures_too(tmp_path: Path) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    junk = tmp_path / "junk.vvmp"
    junk.write_bytes(b"\x00" * 64)
    proc = vvm("apply", state, junk, "--json")
    assert proc.returncode == 1
    answer = json.loads(proc.stdout)
    assert answer["ok"] is False and answer["error"]["exit_code"] == 1
    assert answer["error"]["message"].startswith("patch rejected (bad-magic at magic, byte 0)")
    assert [f["status"] for f in answer["fates"]] == ["received", "rejected"]
    usage = vvm("nonsense", "--json")  # no command ever parses this --json
    assert usage.returncode == 2 and usage.stderr == ""
    assert "No such command" in json.loads(usage.stdout)["error"]["message"]


def test_a_closed_pipe_exits_141_quietly(tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    vvm_line = f"{sys.executable} -m cli.vvm"

    def piped(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(f"{line}; exit ${{PIPESTATUS[0]}}", shell=True,
                              executable="/bin/bash", capture_output=True, text=True,
                              cwd=ROOT, env=env, check=False)

    # `true` has gone before vvm writes a byte; `dump --full` writes more than a pipe holds
    for line in (f"{vvm_line} status {state} | true",
                 f"{vvm_line} dump {state} --full | head -1",
                 f"{vvm_line} dump {state} --full --json | head -1"):
        shell = piped(line)
        assert shell.returncode == 141, (line, shell.stderr)
        assert shell.stderr == "" and len(shell.stdout.splitlines()) <= 1
    # what `head` reads before it goes may be all there is: then 0, and never an error
    shell = piped(f"{vvm_line} status {state} | head -1")
    assert shell.returncode in (0, 141) and shell.stderr == ""
    assert shell.stdout.startswith("mission corot")


# ---------------------------------------------------------------------- bad input


def test_init_on_a_file_and_commands_on_what_is_no_state(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = vvm("init", afile, "--mission", "corot")
    assert proc.returncode == 2 and "is a file, not a state directory" in proc.stderr
    assert vvm("status", tmp_path / "nope").returncode == 2
    (tmp_path / "empty").mkdir()
    empty = vvm("status", tmp_path / "empty")
    assert empty.returncode == 1 and "holds no VVM state" in empty.stderr
    for name, content in (("garbage", b"not json"), ("binary", bytes(range(256))),
                          ("wrong", b'{"format": 4}'), ("list", b"[1, 2]")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_bytes(content)
        proc = vvm("run", tmp_path / name, "--for", "1s")
        assert proc.returncode == 1, (name, proc.stderr)
        assert "state.json" in proc.stderr and "hint:" in proc.stderr


def test_bad_image_patch_and_key_files(tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "binary").write_bytes(random.Random(4096).randbytes(4096))
    (tmp_path / "cut.vvmi").write_bytes(patches["v5.vvmi"].read_bytes()[:30])
    (tmp_path / "cut.vvmp").write_bytes(patches["v5.vvmp"].read_bytes()[:30])
    (tmp_path / "dir").mkdir()
    for bad in ("empty", "binary", "cut.vvmi"):
        for command in (["inspect"], ["load", state]):
            proc = vvm(*command, tmp_path / bad)
            assert proc.returncode == 1 and "not an image" in proc.stderr, proc.stderr
    for bad in ("empty", "binary", "cut.vvmp"):
        proc = vvm("apply", state, tmp_path / bad)
        assert proc.returncode == 1 and "rejected [" in proc.stdout
        assert proc.stderr.startswith(f"vvm: error: {tmp_path / bad}: patch rejected (")
        assert "\n  hint: the state is unchanged" in proc.stderr
    for command in (["inspect"], ["load", state], ["apply", state]):
        proc = vvm(*command, tmp_path / "dir")
        assert proc.returncode == 2 and "cannot read" in proc.stderr
    if Path("/dev/zero").exists():  # endless: refused before it is read, as in ccl
        proc = vvm("apply", state, "/dev/zero")
        assert proc.returncode == 2 and "not a regular file" in proc.stderr
    assert status(state)["config"]["version"] == 0  # nothing of it was taken
    # a key file: missing or unreadable 2, malformed 1 (as in ccl)
    assert vvm("init", tmp_path / "k1", "--mission", "corot", "--key",
               tmp_path / "nokey").returncode == 2
    assert vvm("init", tmp_path / "k2", "--mission", "corot", "--key",
               tmp_path / "dir").returncode == 2
    for bad in ("empty", "binary"):
        proc = vvm("init", tmp_path / f"k-{bad}", "--mission", "corot", "--key",
                   tmp_path / bad)
        assert proc.returncode == 1 and "not a key file" in proc.stderr


def test_a_state_directory_that_cannot_be_written_is_reported(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    state = tmp_path / "s"
    ok(run("vvm", "init", state, "--mission", "corot"))
    ok(run("vvm", "apply", state, patches["v5.vvmp"]))
    if (state / "waiting").is_dir():
        (state / "waiting").rmdir()
    (state / "waiting").write_text("in the way")  # where a waiting patch is saved
    proc = vvm("apply", state, patches["v6.vvmp"])
    assert proc.returncode == 2
    assert "cannot use" in proc.stderr and "writable" in proc.stderr
    if os.geteuid() != 0:  # root writes anywhere
        (state / "waiting").unlink()
        state.chmod(0o555)
        try:
            proc = vvm("run", state, "--for", "1s")
            assert proc.returncode == 2 and "cannot use" in proc.stderr
        finally:
            state.chmod(0o755)
