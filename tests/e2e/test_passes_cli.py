"""`ccl passes` as an operator runs it: it starts now, says how old its TLE is at the time
asked for, refuses to propagate one absurdly far, and takes a newer TLE (a file, or the
newest stored with the mission)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import COROT_TLE, redated_tle, run_in_process

ROOT = Path(__file__).resolve().parents[2]
COROT = ROOT / "missions" / "corot"


def ccl(*args: object, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``ccl ARGS`` in ``cwd``, run in this process as its own process would run it."""
    return run_in_process("ccl", [str(a) for a in args], cwd=cwd)


def assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode != 70


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture()
def fresh_tle(tmp_path: Path) -> Path:
    """A TLE of the CoRoT orbit dated an hour ago (as if just downloaded)."""
    path = tmp_path / "fresh.tle"
    path.write_text("0 COROT\n" + redated_tle(datetime.now(UTC) - timedelta(hours=1)))
    return path


def test_passes_start_now_with_a_fresh_tle_and_say_nothing(fresh_tle: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    proc = ccl("passes", "--tle", fresh_tle, "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # a fresh TLE: no warning
    data = json.loads(proc.stdout)
    start = _parse(data["start"])
    assert before <= start <= datetime.now(UTC)
    assert data["tle"]["source"] == str(fresh_tle)
    assert 0 < data["tle"]["age_days"] < 0.1
    assert data["passes"] and all(start <= _parse(p["rise"]) for p in data["passes"])


def test_the_default_tle_of_2014_is_not_propagated_to_today() -> None:
    proc = ccl("passes")
    assert proc.returncode == 1
    assert "would be propagated to" in proc.stderr and "after its epoch" in proc.stderr
    assert "hint:" in proc.stderr and "--tle FILE" in proc.stderr
    assert_clean(proc)
    js = ccl("passes", "--json")
    assert js.returncode == 1
    error = json.loads(js.stdout)["error"]
    assert "beyond 365 days" in error["message"]
    assert error["where"].endswith("mission.toml [orbit] tle") and error["exit_code"] == 1


@pytest.mark.parametrize(("start", "side"), [("2030-01-01", "after"),
                                             ("1957-10-04T19:28Z", "before")])
def test_far_from_the_epoch_is_refused(start: str, side: str) -> None:
    proc = ccl("passes", "--start", start)
    assert proc.returncode == 1
    assert f"days {side} its epoch" in proc.stderr
    assert proc.stdout == ""
    assert_clean(proc)


def test_a_stale_tle_is_answered_with_a_warning_with_its_age() -> None:
    proc = ccl("passes", "--start", "2014-06-20", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "ccl: warning: the TLE of epoch 2014-06-11T04:38:58Z" in proc.stderr
    assert "8.8 days old at the start" in proc.stderr
    data = json.loads(proc.stdout)  # stdout stays JSON
    assert data["tle"]["age_days"] == pytest.approx(8.81, abs=0.01)
    quiet = ccl("passes", "--start", "2014-06-20", "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_start_at_the_epoch_day_is_quiet_and_the_table_says_which_tle() -> None:
    proc = ccl("passes", "--start", "2014-06-11", "--days", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Kiruna" in proc.stdout and "TLE of 2014-06-11 04:38:58 UTC" in proc.stdout


def test_the_newest_tle_stored_with_the_mission_is_used(tmp_path: Path) -> None:
    missions = tmp_path / "missions"
    folder = missions / "corot"
    (folder / "tle").mkdir(parents=True)
    shutil.copy(COROT / "mission.toml", folder / "mission.toml")
    recent = datetime.now(UTC) - timedelta(days=1)
    (folder / "tle" / "2025.tle").write_text(redated_tle(datetime(2025, 1, 1, tzinfo=UTC)))
    (folder / "tle" / "recent.tle").write_text(redated_tle(recent))
    proc = ccl("--missions", missions, "passes", "--json")
    assert proc.returncode == 0, proc.stderr
    tle = json.loads(proc.stdout)["tle"]
    assert tle["source"] == str(folder / "tle" / "recent.tle")
    assert 0.9 < tle["age_days"] < 1.1
    assert proc.stderr == ""
    # --tle wins over the stored ones
    given = tmp_path / "given.tle"
    given.write_text(redated_tle(recent - timedelta(days=2)))
    proc = ccl("--missions", missions, "passes", "--tle", given, "--json")
    assert json.loads(proc.stdout)["tle"]["source"] == str(given)
    assert "3.0 days old at the start and 4.0 days old at the end" in proc.stderr


def test_a_bad_tle_file_is_refused_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tle"
    bad.write_text(f"{COROT_TLE[0]}\n{COROT_TLE[1][:-1]}0\n")
    proc = ccl("passes", "--tle", bad)
    assert proc.returncode == 1
    assert f"error: {bad}:2:69: checksum '0' of line 2" in proc.stderr
    assert "hint:" in proc.stderr
    assert_clean(proc)
    js = ccl("passes", "--tle", bad, "--json")
    assert json.loads(js.stdout)["error"]["where"] == f"{bad}:2:69"


@pytest.mark.parametrize("content", [b"", b"\x00\x01\xfe" * 100, b"1 hello\n2 world\n",
                                     b"x" * 100_000])
def test_empty_binary_and_junk_tle_files_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.tle"
    path.write_bytes(content)
    proc = ccl("passes", "--tle", path)
    assert proc.returncode == 1, proc.stderr
    assert str(path) in proc.stderr and "hint:" in proc.stderr
    assert_clean(proc)


def test_a_missing_tle_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = ccl("passes", "--tle", tmp_path / "none.tle")
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    directory = ccl("passes", "--tle", tmp_path)
    assert directory.returncode == 2 and "is a directory" in directory.stderr


@pytest.mark.parametrize("days", ["nan", "inf", "-inf", "1e9", "100000", "0", "-1", "366",
                                  "three"])
def test_unreasonable_days_are_usage_errors(days: str) -> None:
    proc = ccl("passes", "--start", "2014-06-11", "--days", days)
    assert proc.returncode == 2
    assert "--days" in proc.stderr and "hint:" in proc.stderr
    assert_clean(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--start", "yesterday"], "is not an ISO date-time"),
    (["--start", "9999-12-31"], "past the year 9999"),
    (["--start", "9999-12-31", "--schedule", "fixed"], "past the year 9999"),
    (["--start", "0001-01-01"], "days before its epoch"),
    (["--start", "0001-01-01T00:00+02:00"], "in UTC is out of the calendar"),
    (["--start", "9999-12-31T23:59-02:00"], "in UTC is out of the calendar"),
])
def test_bad_starts_give_one_message(args: list[str], message: str) -> None:
    proc = ccl("passes", *args)
    assert proc.returncode in (1, 2)
    assert message in proc.stderr
    assert_clean(proc)


def test_a_year_of_passes_is_answered() -> None:
    proc = ccl("passes", "--start", "2014-06-11", "--days", "365", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["passes"]) > 300 * 13
