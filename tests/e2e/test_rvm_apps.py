"""``vvm load --app`` and ``vvm repl --app``: the RVM on a non-default application of a
board. The scripted session (missions/corot/sessions/twice.rvm, then ``:apps``) runs on
application ``channel_b`` (3 % of the share) beside a default application that runs a
configuration loaded with ``vvm load``; its golden transcript is
``golden/rvm/app_session.txt`` (``pytest --update-goldens`` rewrites it). What the
transcript cannot show: the session's configuration is proven within channel_b's part,
its patches went through channel_b's own patcher and store, and the default application's
files are byte-identical after it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "rvm" / "app_session.txt"
SESSION = (ROOT / "missions" / "corot" / "sessions" / "twice.rvm").read_text() + ":apps\n"
CHANNEL_A = ROOT / "missions" / "corot" / "configs" / "channels" / "channel_a.ccl"


def run(cwd: Path, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(ROOT), "CCL_PROOF_CACHE": str(cwd / "proofs")}
    env.pop("CCL_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", *argv], input=stdin, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*"))
            if p.is_file() and "apps" not in p.parts and p.name != "apps.json"}


@pytest.fixture
def board(tmp_path: Path) -> Path:
    """A board whose default application runs channel_a, loaded on the bench."""
    cwd = tmp_path
    for argv in (("cli.ccl", "compile", str(CHANNEL_A), "-o", "a.vvmi"),
                 ("cli.ccl", "compile", str(ROOT / "missions/corot/vmlets/photometry.ccl"),
                  "-o", "photometry.vvmi"),
                 ("cli.vvm", "init", "sat", "--mission", "corot")):
        proc = run(cwd, *argv)
        assert proc.returncode == 0, proc.stderr
    proc = run(cwd, "cli.vvm", "load", "sat", "photometry.vvmi", "a.vvmi", "--json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["application"] == "default" and len(answer["loaded"]) == 2
    return cwd


def test_load_into_a_new_application_needs_its_part(board: Path) -> None:
    proc = run(board, "cli.vvm", "load", "sat", "photometry.vvmi", "--app", "channel_c")
    assert proc.returncode == 2 and "--share PERCENT" in proc.stderr
    proc = run(board, "cli.vvm", "load", "sat", "photometry.vvmi", "--app", "channel_c",
               "--share", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["application"] == "channel_c"
    status = json.loads(run(board, "cli.vvm", "status", "sat", "--app", "channel_c",
                            "--json").stdout)
    assert [v["name"] for v in status["vmlets"]] == ["photometry"]
    assert status["task_budget_per_frame"] == 40_000  # 2 % of the 2,000,000-cycle frame


def test_the_session_on_an_application_matches_its_golden_transcript(
        board: Path, update_goldens: bool) -> None:
    default_before = files(board / "sat")
    proc = run(board, "cli.vvm", "repl", "sat", "--uses", "photometry", "--app", "channel_b",
               "--share", "3", "--echo", stdin=SESSION)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "application channel_b added with 3 % of the share" in proc.stderr
    if update_goldens:
        GOLDEN.write_text(proc.stdout)
    assert proc.stdout == GOLDEN.read_text()
    # proven within its part, with its own clause; its own patcher and store
    assert "application channel_b share 3 %;" in proc.stdout
    assert re.search(r"^channel_b: 3 % \(60000 cycles per frame\).*\n  rvm v4 ", proc.stdout,
                     re.M)
    assert re.search(r"^default: the rest of the share .*\n  channel_a v1 ", proc.stdout, re.M)
    store = json.loads(run(board, "cli.vvm", "status", "sat", "--app", "channel_b",
                           "--json").stdout)["store"]
    assert store["last_seq"] == 6 and store["phase"] == "idle"
    # the default application's files are as they were: the session never touched them
    assert files(board / "sat") == default_before
