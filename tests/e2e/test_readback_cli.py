"""Reading values back from the board over the link, through `ccl sim` as an operator runs
it: a scenario uploads exo_e1 v5, then v6, asking for a dump after each; the dumps show a
state variable that survived the new version and the changed parameter's new value, and
`--dump` reads values back at the end. Hostile dump requests get the board's reason, bad
names a usage error before anything runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import run_in_process

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"

#: exo_e1 v5 and v6 as in the mission, plus a state variable their `on apply` counts up:
#: 1 after v5, 2 after v6 only if the state survived the switch (else v6 would start it
#: from its declared 0 again, and show 1).
APPLIED = "var applied : int[0..100] = 0;   // versions applied: state that survives\n"

SCENARIO = """
[scenario]
name = "read-back across a new version"
mission = "corot:flight"
seed = 1
start = "2014-06-11T00:00:00Z"
days = 3
loss = 0.05

[[step]]
title = "upload exo_e1 v5"
dump = ["applied", "cr_k10"]

[[step.patch]]
config = "exo_e1.ccl"
expect = "committed"

[[step]]
title = "raise the cosmic-ray threshold: v6"
dump = ["applied", "cr_k10", "last1"]

[[step.patch]]
config = "exo_e1_v6.ccl"
expect = "committed"
"""

DUMP_ONLY = """
[scenario]
name = "a dump of what is on board"
mission = "corot:flight"
seed = 3
start = "2014-06-11T00:00:00Z"
days = 1

[onboard]
config = "exo_e1.ccl"

[[step]]
title = "read the threshold"
dump = {names}
"""


def ccl(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ccl ARGS`` in ``cwd``, run in this process as its own process would run it."""
    return run_in_process("ccl", [str(a) for a in args], cwd=cwd)


def assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout


def _with_applied(source: str) -> str:
    out = source.replace("var rejected : int[0..1000000];",
                         "var rejected : int[0..1000000];\n" + APPLIED)
    out = out.replace("    rejected = 0;\n",
                      "    rejected = 0;\n    applied = clamp(applied + 1, 0, 100);\n")
    assert "applied = clamp" in out and APPLIED in out
    return out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for name in ("exo_e1.ccl", "exo_e1_v6.ccl"):
        (tmp_path / name).write_text(_with_applied((CONFIGS / name).read_text()))
    (tmp_path / "readback.toml").write_text(SCENARIO)
    return tmp_path


def _values(dump: dict[str, Any]) -> dict[str, Any]:
    assert dump["answered"], dump
    return {v["name"]: v for v in dump["answer"]["values"]}


def test_dumps_show_state_surviving_v6_and_the_new_parameter(work: Path) -> None:
    proc = ccl("sim", "readback.toml", "--ledger", work / "ledger.sqlite", "--json",
               "--dump", "applied,cr_k10", "--dump", "star_x", cwd=work)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    (report,) = json.loads(proc.stdout)
    assert [p["final"] for p in report["patches"]] == ["committed", "committed"]
    after_v5, after_v6, at_end = report["dumps"]
    assert (after_v5["step"], after_v6["step"], at_end["step"]) == (0, 1, None)
    v5, v6, end = _values(after_v5), _values(after_v6), _values(at_end)
    assert v5["cr_k10"] == {"name": "cr_k10", "kind": "param", "range": [20, 100], "value": 50}
    assert v5["applied"]["value"] == 1 and v5["applied"]["kind"] == "state"
    assert v6["cr_k10"]["value"] == 60                       # the changed parameter
    assert v6["applied"]["value"] == 2                       # the state survived v6
    assert v6["last1"]["kind"] == "array" and len(v6["last1"]["values"]) == 6000
    assert any(v6["last1"]["values"])                        # the instrument's fluxes
    assert end["cr_k10"]["value"] == 60 and end["applied"]["value"] == 2
    assert end["star_x"]["kind"] == "table" and len(end["star_x"]["values"]) == 6000
    # each answer came down after its step's patch was committed on board
    committed = [next(f["time"] for f in p["fates"] if f["status"] == "committed")
                 for p in report["patches"]]
    assert committed[0] < after_v5["answer"]["time"] < committed[1] < after_v6["answer"]["time"]
    assert report["ok"] is True


def test_a_dump_prints_by_name_and_an_unknown_name_is_refused_on_board(
        work: Path) -> None:
    (work / "dump.toml").write_text(DUMP_ONLY.format(names='["cr_k10", "star_x"]'))
    proc = ccl("sim", "dump.toml", "--ledger", work / "ledger.sqlite", cwd=work)
    assert_clean(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "read back after step 1 (on board 2014-06-11" in proc.stdout
    assert "    cr_k10 (param, 20..100) = 50\n" in proc.stdout
    assert "    star_x (table, 0..2032) = [" in proc.stdout and "(6000 values)" in proc.stdout
    proc = ccl("sim", "dump.toml", "--ledger", work / "ledger.sqlite", "--dump",
               "cr_k10,nope", cwd=work)
    assert_clean(proc)
    assert proc.returncode == 1
    assert "read-back at the end (cr_k10, nope): refused on board: unknown-name: nope not " \
           "declared by exo_e1 v5" in proc.stdout
    assert "result: NOT AS EXPECTED" in proc.stdout


def test_a_dump_with_nothing_on_board_is_refused_with_the_reason(work: Path) -> None:
    text = DUMP_ONLY.format(names='["cr_k10"]').replace('[onboard]\nconfig = "exo_e1.ccl"', "")
    (work / "empty.toml").write_text(text)
    proc = ccl("sim", "empty.toml", "--ledger", work / "ledger.sqlite", "--json", cwd=work)
    assert_clean(proc)
    assert proc.returncode == 1
    (report,) = json.loads(proc.stdout)
    (dump,) = report["dumps"]
    assert dump["answered"] is False
    assert dump["answer"]["refused"].startswith("no-configuration: ")


@pytest.mark.parametrize("names", [("a-b",), ("",), (",".join(["cr_k10"] * 17),),
                                   ("x" * 64,), ("é",)])
def test_bad_dump_names_are_a_usage_error_before_anything_runs(
        work: Path, names: tuple[str, ...]) -> None:
    args = [a for n in names for a in ("--dump", n)]
    proc = ccl("sim", "readback.toml", "--ledger", work / "ledger.sqlite", *args, cwd=work)
    assert_clean(proc)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--dump: cannot ask for a dump" in proc.stderr
    assert not (work / "ledger.sqlite").exists()          # refused before anything ran
    proc = ccl("sim", "readback.toml", "--ledger", work / "ledger.sqlite", "--json", *args,
               cwd=work)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["ok"] is False


@pytest.mark.parametrize(("dump", "message"), [
    ('["a b"]', "cannot ask for a dump"),
    ("[1]", "`dump` must list names"),
    ('"cr_k10"', "has the wrong type"),
    ("[" + ", ".join(['"cr_k10"'] * 17) + "]", "cannot ask for a dump"),
])
def test_a_scenario_with_a_bad_dump_step_is_refused(work: Path, dump: str,
                                                    message: str) -> None:
    (work / "bad.toml").write_text(DUMP_ONLY.format(names=dump))
    proc = ccl("sim", "bad.toml", "--ledger", work / "ledger.sqlite", cwd=work)
    assert_clean(proc)
    assert proc.returncode == 1
    assert message in proc.stderr and "[[step]] 1" in proc.stderr
