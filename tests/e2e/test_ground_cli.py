"""The ground's commands as an operator runs them (real processes, in a temporary folder):
what `ccl uplink plan|simulate` refuse to send, which ledger a simulation writes, what
`ccl status` shows, where `ccl pack` takes its sequence number from, and the options that
would make a command run for hours or write where nobody asked."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import run_in_process

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from onboard.mission import find_mission
from onboard.patching.patch_format import development_key

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"
# Variables the commands read: cleared so that the tests do not depend on the shell.
_ENVIRONMENT = ("CCL_PATCH_KEY", "CCL_LINK_KEY", "CCL_LEDGER", "CCL_MISSIONS", "CCL_DEBUG")


def ccl(cwd: Path, *args: object, **env: str) -> subprocess.CompletedProcess[str]:
    """``ccl ARGS`` in ``cwd``, with ``env`` added to a clean environment, run in this
    process as a process of its own would run it (``support.run_in_process``); Ctrl-C and
    the locked ledger below use real processes."""
    environ = {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT}
    proc = run_in_process("ccl", [str(a) for a in args], cwd=cwd, env=environ | env)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def patches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CoRoT patches under the development key: ``v5`` (full exo_e1, seq 5), ``v6`` (its
    one-parameter change as a delta from v5, seq 6), ``v7`` (a delta from v6, seq 7),
    ``wrong_key`` (v5 signed with another key), and bytes that are no patch."""
    folder = tmp_path_factory.mktemp("patches")
    corot = find_mission("corot")
    key = development_key("corot")
    compiler = Compiler()
    v5, v6, v7 = (compiler.compile(CONFIGS / name)
                  for name in ("exo_e1.ccl", "exo_e1_v6.ccl", "exo_e1_v7.ccl"))

    def packed(c: Compiled, seq: int, base: Compiled | None = None, k: bytes = key) -> bytes:
        return pack(c.image, [v.image for v in c.vmlets], corot, k, seq=seq,
                    base=base.image if base else None).data

    datas = {
        "v5": packed(v5, 5), "v6": packed(v6, 6, v5), "v7": packed(v7, 7, v6),
        "wrong_key": packed(v5, 5, k=bytes(range(32))),
        "random": random.Random(4096).randbytes(4096),
        "empty": b"",
    }
    datas["truncated"] = datas["v5"][:30]
    paths = {}
    for name, data in datas.items():
        paths[name] = folder / f"{name}.vvmp"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture()
def ledger(tmp_path: Path, patches: dict[str, Path]) -> Iterator[Path]:
    """A ledger whose last run's telemetry shows exo_e1 v5 committed (seq 5 taken)."""
    path = tmp_path / "ops.sqlite"
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], "--ledger", path)
    assert proc.returncode == 0, proc.stderr
    yield path


# --------------------------------------------------------------------------- preflight


@pytest.mark.parametrize(("name", "reason", "where"), [
    ("random", "(bad-magic)", "random.vvmp field `magic` at byte 0"),
    ("truncated", "(truncated)", "truncated.vvmp field `share` at byte 30"),
    ("empty", "the file is empty (truncated)", "empty.vvmp at byte 0"),
    ("wrong_key", "(bad-tag)", "wrong_key.vvmp field `tag` at byte {tag}"),
])
@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_what_is_not_a_signed_patch_is_never_uplinked(tmp_path: Path,
                                                      patches: dict[str, Path], command: str,
                                                      name: str, reason: str,
                                                      where: str) -> None:
    proc = ccl(tmp_path, "uplink", command, patches[name])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first, hint = proc.stderr.splitlines()[:2]
    where = where.format(tag=patches[name].stat().st_size - 16)  # the tag ends the patch
    assert first.startswith(f"error: {where}: not uplinked: ")
    assert first.endswith(reason)
    assert hint.startswith("  hint: ")
    assert "simulated" not in proc.stdout and "plan" not in proc.stdout  # no work done


def test_a_refusal_is_json_on_stdout_with_json(tmp_path: Path,
                                               patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "plan", patches["wrong_key"], "--json")
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error["exit_code"] == 1 and "bad-tag" in error["message"]
    tag = patches["wrong_key"].stat().st_size - 16
    assert error["where"].endswith(f"field `tag` at byte {tag}")


def test_the_patch_is_checked_with_the_key_given(tmp_path: Path,
                                                 patches: dict[str, Path]) -> None:
    key = tmp_path / "other.key"
    key.write_text(bytes(range(32)).hex() + "\n")
    proc = ccl(tmp_path, "uplink", "plan", patches["wrong_key"], "--key", key)
    assert proc.returncode == 0, proc.stderr
    assert "wrong_key.vvmp: scheduled" in proc.stdout
    proc = ccl(tmp_path, "uplink", "plan", patches["v5"], "--key", key)
    assert proc.returncode == 1 and "(bad-tag)" in proc.stderr


def test_sequence_number_and_base_are_checked_against_the_ledger(
        tmp_path: Path, patches: dict[str, Path], ledger: Path) -> None:
    stale = ccl(tmp_path, "uplink", "plan", patches["v5"], "--ledger", ledger)
    assert stale.returncode == 1
    assert "v5.vvmp field `seq` at byte 8: not uplinked: sequence number 5 is not above 5, " \
        "the last one taken on board" in stale.stderr and "(replay)" in stale.stderr
    wrong = ccl(tmp_path, "uplink", "plan", patches["v7"], "--ledger", ledger)
    assert wrong.returncode == 1
    assert "v7.vvmp field `base` at byte" in wrong.stderr
    assert "is on board as the telemetry of 2014-06-11" in wrong.stderr
    assert "(wrong-base)" in wrong.stderr
    good = ccl(tmp_path, "uplink", "plan", patches["v6"], "--ledger", ledger)
    assert good.returncode == 0, good.stderr
    assert "v6.vvmp: scheduled" in good.stdout
    assert "seq 6 and base checked against ledger run 1" in good.stderr
    # without a ledger the ground cannot tell, and says so
    blind = ccl(tmp_path, "uplink", "plan", patches["v7"])
    assert blind.returncode == 0, blind.stderr
    assert "sequence number and base unchecked: the ledger has no telemetry" in blind.stderr


# --------------------------------------------------------------------------- ledgers


def test_a_simulation_never_writes_the_operational_ledger(tmp_path: Path,
                                                          patches: dict[str, Path]) -> None:
    operational = tmp_path / "ops.sqlite"
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], CCL_LEDGER=str(operational))
    assert proc.returncode == 0, proc.stderr
    assert "recorded as run 1 of the ledger in memory (give --ledger FILE to keep it)" \
        in proc.stdout
    assert not operational.exists() and not (tmp_path / "ccl-ledger.sqlite").exists()


def test_status_shows_full_hashes_fate_names_and_age(tmp_path: Path, ledger: Path) -> None:
    v5_hash = json.loads(ccl(tmp_path, "compile", CONFIGS / "exo_e1.ccl", "-o",
                             tmp_path / "v5.vvmi", "--json").stdout)["hash"]
    proc = ccl(tmp_path, "status", "--ledger", ledger)
    assert proc.returncode == 0, proc.stderr
    on_board = next(line for line in proc.stdout.splitlines() if line.startswith("on board"))
    assert on_board.startswith(f"on board: {v5_hash}; telemetry of pass 1 read "
                               "2014-06-11T07:25:27+00:00, ")
    assert on_board.endswith(" days ago")
    assert "committed" in proc.stdout.split("on board", 2)[2]  # the fate column, by name
    data = json.loads(ccl(tmp_path, "status", "--ledger", ledger, "--json").stdout)
    assert data["onboard_config"]["hash"] == v5_hash
    assert data["onboard_config"]["hash_is_prefix"] is False
    assert data["onboard_config"]["age"]["seconds"] > 365 * 86400
    assert [t["fate_name"] for t in data["transfers"]] == ["committed"]


# --------------------------------------------------------------------------- pack --seq

TINY = """\
mission corot;
config tiny version 3;
var out : int[0..10] = 0;
task t every 1 s { out = 1; }
"""


def test_pack_takes_the_next_sequence_number_from_the_ledger(tmp_path: Path,
                                                             ledger: Path) -> None:
    source = tmp_path / "tiny.ccl"
    source.write_text(TINY)
    first = ccl(tmp_path, "pack", source, "-o", tmp_path / "a.vvmp", CCL_LEDGER=str(ledger))
    assert first.returncode == 0, first.stdout + first.stderr
    # v5 (seq 5) is in the ledger
    assert f"seq 6 (the next after 5 in the ledger {ledger})" in first.stdout
    assert json.loads(ccl(tmp_path, "inspect", tmp_path / "a.vvmp", "--json").stdout)[
        "header"][5] == {"field": "seq", "offset": 8, "value": 6}
    given = ccl(tmp_path, "pack", source, "-o", tmp_path / "b.vvmp", "--seq", "4",
                "--ledger", ledger)
    assert given.returncode == 0, given.stderr
    assert "seq 4 (given with --seq)" in given.stdout
    assert "warning: --seq 4 is not above 6" in given.stderr  # a.vvmp took 6
    alone = ccl(tmp_path, "pack", source, "-o", tmp_path / "c.vvmp")
    assert alone.returncode == 0, alone.stderr
    assert "seq 3 (the configuration's version: no ledger at ccl-ledger.sqlite)" \
        in alone.stdout
    for seq in ("0", str(1 << 64), "x"):
        proc = ccl(tmp_path, "pack", source, "--seq", seq)
        assert proc.returncode == 2 and "--seq" in proc.stderr


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("args", [
    ["--loss", "nan"], ["--loss", "inf"], ["--days", "inf"], ["--days", "nan"],
    ["--days", "1e9"], ["--confidence", "nan"],
])
def test_numbers_a_command_cannot_use_are_usage_errors(tmp_path: Path,
                                                       patches: dict[str, Path],
                                                       args: list[str]) -> None:
    proc = ccl(tmp_path, "uplink", "plan", patches["v5"], *args)
    assert proc.returncode == 2, proc.stderr
    assert args[0] in proc.stderr


@pytest.mark.parametrize("command", ["plan", "simulate"])
def test_a_loss_no_patch_survives_is_refused_at_once(tmp_path: Path, patches: dict[str, Path],
                                                     command: str) -> None:
    proc = ccl(tmp_path, "uplink", command, patches["v5"], "--loss", "0.999999")
    assert proc.returncode == 2
    said = re.search(r"at --loss 0\.999999, v5\.vvmp \((\d+) shares?\) needs about ([\d,]+) "
                     r"frames", proc.stderr)
    assert said, proc.stderr
    shares, frames = int(said.group(1)), int(said.group(2).replace(",", ""))
    assert frames == shares * 1_000_000  # each share survives one frame in a million
    assert "hint: give a lower --loss or more --days" in proc.stderr


def test_plot_says_the_file_it_wrote(tmp_path: Path, patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], "--plot", "out")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "timeline drawn to out.png"
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--plot", "--ledger"])
def test_outputs_into_a_missing_folder_are_refused(tmp_path: Path, patches: dict[str, Path],
                                                   option: str) -> None:
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], option, "nowhere/out.png")
    assert proc.returncode == 2
    assert f"error: {option} nowhere/out.png: no folder nowhere" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


def test_plot_refuses_a_suffix_no_image_format_has_before_any_work(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], "--plot", "out.xyz")
    assert proc.returncode == 2
    assert "--plot out.xyz: no image format has the suffix .xyz" in proc.stderr
    assert "simulated" not in proc.stdout


@pytest.mark.parametrize(("setting", "message"), [
    ("deadline=1e20d", "deadline '1e20d' is not within 365 days"),
    ("deadline=-3h", "deadline '-3h' is not within 365 days"),
    ("deadline=nanh", "deadline 'nanh' is neither a duration nor a date-time"),
    ("name=", "name= is empty"),
])
def test_patch_settings_a_plan_cannot_use_are_usage_errors(tmp_path: Path,
                                                           patches: dict[str, Path],
                                                           setting: str, message: str) -> None:
    proc = ccl(tmp_path, "uplink", "plan", f"{patches['v5']},{setting}")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_status_and_plan_read_the_ledger_and_never_write_it(
        tmp_path: Path, patches: dict[str, Path], ledger: Path) -> None:
    before = ledger.read_bytes()
    assert ccl(tmp_path, "status", "--ledger", ledger).returncode == 0
    plan = ccl(tmp_path, "uplink", "plan", "--ledger", ledger, patches["v6"])
    assert plan.returncode == 0 and "checked against ledger run 1" in plan.stderr
    assert ledger.read_bytes() == before
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"")
    proc = ccl(tmp_path, "status", "--ledger", other)
    assert proc.returncode == 2
    assert "other.sqlite is not a ccl ledger: it has no table" in proc.stderr
    assert other.read_bytes() == b""


# --------------------------------------------------------------------------- ccl sim


def test_sim_refuses_what_is_not_a_scenario(tmp_path: Path) -> None:
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    (tmp_path / "empty.toml").write_text("")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no scenario here")
    for arg, message in (("binary.toml", "binary.toml: not a scenario: byte 128 is not UTF-8"),
                         ("empty.toml", "empty.toml: not a scenario: the file is empty"),
                         ("notes", "notes holds no scenario (*.toml)")):
        proc = ccl(tmp_path, "sim", arg)
        assert proc.returncode == 1, proc.stderr
        assert message in proc.stderr


def test_sim_outputs_into_a_missing_folder_are_refused(tmp_path: Path) -> None:
    scenario = ROOT / "missions" / "corot" / "scenarios" / "01_first_upload.toml"
    proc = ccl(tmp_path, "sim", scenario, "--plot", "nowhere")
    assert proc.returncode == 2 and "--plot nowhere: no such folder" in proc.stderr
    proc = ccl(tmp_path, "sim", scenario, "--ledger", "nowhere/l.sqlite")
    assert proc.returncode == 2 and "--ledger nowhere/l.sqlite: no folder" in proc.stderr
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(("line", "message"), [
    ("days = inf", "days = inf: it must be positive and at most 365"),
    ("days = nan", "days = nan: it must be positive and at most 365"),
    ("days = 1e9", "days = 1e+09: it must be positive and at most 365"),
    ("loss = nan", "loss must lie in [0, 1), not nan"),
    ("seed = 99999999999999999999", "seed = 99999999999999999999: it must lie in"),
    ("probation_frames = -1", "probation_frames = -1: it must be at least 1"),
])
def test_sim_refuses_scenario_values_it_cannot_run(tmp_path: Path, line: str,
                                                   message: str) -> None:
    (tmp_path / "s.toml").write_text(f'[scenario]\nmission = "corot"\n{line}\n[[step]]\n'
                                     '[[step.patch]]\nconfig = "x.ccl"\n')
    proc = ccl(tmp_path, "sim", "s.toml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: s.toml [scenario]: {message}" in proc.stderr


def test_simulate_refuses_a_seed_the_ledger_cannot_record(tmp_path: Path,
                                                          patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "simulate", patches["v5"], "--seed", str(1 << 64))
    assert proc.returncode == 2 and "--seed" in proc.stderr


def test_a_start_past_the_last_date_is_a_usage_error(tmp_path: Path,
                                                     patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "plan", patches["v5"], "--start", "9999-12-31")
    assert proc.returncode == 2
    assert "--start 9999-12-31 with --days 7 runs past the last date" in proc.stderr


def test_plan_json_says_what_was_checked(tmp_path: Path, patches: dict[str, Path]) -> None:
    proc = ccl(tmp_path, "uplink", "plan", patches["v5"], "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["checked"] == [
        "v5.vvmp: a corot patch, tag valid, sequence number and base unchecked: the ledger "
        "has no telemetry"]


def test_ctrl_c_stops_a_simulation_cleanly_and_keeps_what_was_done(
        tmp_path: Path, patches: dict[str, Path]) -> None:
    ledger = tmp_path / "sim.sqlite"
    environ = {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT}
    proc = subprocess.Popen([sys.executable, "-m", "cli.ccl", "uplink", "simulate",
                             patches["v5"], "--loss", "0.999", "--days", "365", "--ledger",
                             ledger], cwd=tmp_path, env=environ | {"PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if _passes_recorded(ledger):
                break
        assert proc.poll() is None, "the simulation ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    status = ccl(tmp_path, "status", "--ledger", ledger, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["passes"]["used"] >= 1  # what was done is kept


def _passes_recorded(ledger: Path) -> bool:
    """Whether the simulation has recorded a pass in ``ledger`` yet."""
    try:
        db = sqlite3.connect(f"{ledger.as_uri()}?mode=ro", uri=True)
        try:
            return bool(db.execute("SELECT COUNT(*) FROM passes").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return False


def test_a_patch_larger_than_the_patcher_takes_is_never_uplinked(tmp_path: Path) -> None:
    big = tmp_path / "big.vvmp"
    big.write_bytes(b"VP" + bytes(100_000))
    proc = ccl(tmp_path, "uplink", "plan", big)
    assert proc.returncode == 1
    assert "error: big.vvmp at byte 65536: not uplinked: 100,002 bytes, the patcher on board " \
        "accepts at most 65,536 (oversize)" in proc.stderr
    assert "hint: split the change into smaller patches" in proc.stderr


@pytest.mark.parametrize("args", [
    ["uplink", "plan", "{fifo}"],
    ["uplink", "plan", "/dev/zero"],
    ["sim", "{fifo}"],
    ["status", "--ledger", "{fifo}"],
    ["uplink", "simulate", "{v5}", "--ledger", "/dev/null"],
    ["sim", "{scenario}", "--ledger", "{fifo}"],
    ["sim", "{scenario}", "--ledger", "{v5}"],
])
def test_devices_pipes_and_other_files_are_refused_not_read_forever(
        tmp_path: Path, patches: dict[str, Path], args: list[str]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    scenario = ROOT / "missions" / "corot" / "scenarios" / "04_refused_by_the_verifier.toml"
    proc = ccl(tmp_path, *[a.format(fifo=fifo, v5=patches["v5"], scenario=scenario)
                           for a in args])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "not a regular file" in proc.stderr or "cannot open the ledger" in proc.stderr


def test_a_closed_stdout_ends_status_quietly_as_sigpipe_would(tmp_path: Path,
                                                              ledger: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line (as `| head -0`)
    environ = {k: v for k, v in os.environ.items() if k not in _ENVIRONMENT}
    try:
        proc = subprocess.run([sys.executable, "-m", "cli.ccl", "status", "--ledger", ledger],
                              stdout=write, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env=environ | {"PYTHONPATH": str(ROOT)}, timeout=60)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""
