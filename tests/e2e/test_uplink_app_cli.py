"""`ccl uplink plan|simulate --app NAME`: patches addressed to one application of a board,
on its APID, the simulated spacecraft applying them in that application, and the ledger
recording it; a name that cannot be an application is a usage error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHANNEL_B = ROOT / "missions" / "corot" / "configs" / "channels" / "channel_b_v2.ccl"


def ccl(*args: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "cli.ccl", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def patch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("app") / "channel_b.vvmp"
    assert ccl("pack", CHANNEL_B, "-o", out).returncode == 0
    return out


def test_simulate_sends_the_patch_to_the_application_and_the_ledger_records_it(
        patch: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    run = ccl("uplink", "simulate", patch, "--mission", "corot", "--app", "channel_b",
              "--days", "2", "--ledger", ledger, "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["application"] == {"name": "channel_b", "number": 1, "apid": 0x161}
    (p,) = answer["patches"]
    assert p["status"] == "complete" and p["fates"][-1]["status"] == "committed"
    status = json.loads(ccl("status", "--ledger", ledger, "--json").stdout)
    assert [(t["application"], t["fate_name"]) for t in status["transfers"]] == \
        [(1, "committed")]


def test_plan_names_the_application_and_its_apid(patch: Path, tmp_path: Path) -> None:
    run = ccl("uplink", "plan", patch, "--mission", "corot", "--app", "channel_c",
              "--slot", "3", "--days", "1", "--ledger", tmp_path / "none.sqlite", "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["application"] == {"name": "channel_c", "number": 3, "apid": 0x163}
    assert answer["patches"][0]["status"] == "scheduled"
    text = ccl("uplink", "plan", patch, "--mission", "corot", "--app", "channel_c",
               "--slot", "3", "--days", "1", "--ledger", tmp_path / "none.sqlite")
    assert "for application channel_c (number 3, APID 0x163)" in text.stdout


@pytest.mark.parametrize("name", ["9x", "default"])
def test_a_name_that_cannot_be_an_application_is_a_usage_error(patch: Path,
                                                                name: str) -> None:
    run = ccl("uplink", "plan", patch, "--mission", "corot", "--app", name, "--days", "1")
    assert run.returncode == 2 and "cannot name an application" in run.stderr
