"""The CoRoT scenarios end to end (``ccl sim``): every one meets its expectations, and the
facts each exists to show hold: what went up, what the satellite did, what the ground
knows, and that the VVM never left its share."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ground.ledger import Ledger
from ground.scenario import ScenarioError, ScenarioReport, load_scenario, run_scenario
from onboard.link.link_security import development_link_key
from onboard.link.tc_frames import FRAME_OVERHEAD_BYTES
from onboard.patching.patch_format import development_key, key_from_text

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "missions" / "corot" / "scenarios"
FILES = sorted(SCENARIOS.glob("*.toml"))

_REPORTS: dict[str, tuple[ScenarioReport, Path]] = {}


def report(stem: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioReport, Path]:
    """The scenario run once per test session, with its ledger file."""
    if stem not in _REPORTS:
        d = tmp_path_factory.mktemp(stem)
        with Ledger(d / "ledger.sqlite") as ledger:
            r = run_scenario(load_scenario(SCENARIOS / f"{stem}.toml"), ledger, d)
        _REPORTS[stem] = r, d / "ledger.sqlite"
    return _REPORTS[stem]


def statuses(r: ScenarioReport, index: int) -> list[str]:
    return [f.status for f in r.outcomes[index].fates]


def test_there_are_the_five_scenarios_of_the_mission() -> None:
    assert [f.stem for f in FILES] == ["01_first_upload", "02_one_parameter", "03_new_vmlet",
                                      "04_refused_by_the_verifier", "05_wrong_base"]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_scenario_meets_its_expectations(path: Path,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    r, _ = report(path.stem, tmp_path_factory)
    assert r.ok, [(o.name, o.final, o.expected) for o in r.outcomes]
    assert r.consistent  # the ledger's view is what is really on board
    # the share is never exceeded, patch handling included
    assert 0 < r.onboard["worst_frame_share_percent"] <= 100
    assert r.onboard["fault_count"] == 0


def test_first_upload_sends_a_full_patch_with_its_vmlet(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, _ = report("01_first_upload", tmp_path_factory)
    (o,) = r.outcomes
    assert o.kind == "full" and o.size < 1_000
    assert statuses(r, 0) == ["received", "staged", "active", "committed"]
    assert r.onboard["config"]["name"] == "exo_e1" and r.onboard["config"]["version"] == 5
    assert [v["name"] for v in r.onboard["vmlets"]] == ["photometry"]
    assert o.uplink is not None and o.uplink.completed_at is not None
    # activation follows completion on board within seconds: the check costs frames of the
    # patch reserve, not hours
    assert o.activated is not None
    assert 0 <= (o.activated - o.uplink.completed_at).total_seconds() < 10
    assert r.onboard["tasks"][0]["runs"] > 100  # the cosmic filter ran all along


def test_a_one_parameter_change_is_a_tiny_delta_applied_once(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, ledger_file = report("02_one_parameter", tmp_path_factory)
    (o,) = r.outcomes
    assert o.kind == "delta" and o.size <= 64
    assert statuses(r, 0).count("committed") == 1 and statuses(r, 0).count("received") == 1
    assert r.onboard["config"]["version"] == 6
    with Ledger(ledger_file) as ledger:
        info = ledger.status()
    assert info["passes"]["cancelled"] == 1  # the first pass did not happen
    assert info["reports"] >= 2
    (t,) = info["transfers"]
    assert t["state"] == "complete" and t["fate"] == 2  # committed, as telemetry says
    # the lost report cost time, not a second patch: one transfer, each share once
    assert t["distinct_shares_sent"] == t["frames_sent"]


def test_a_new_vmlet_travels_with_the_configuration_that_uses_it(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, _ = report("03_new_vmlet", tmp_path_factory)
    (o,) = r.outcomes
    assert o.final == "committed" and o.kind == "delta"
    names = {v["name"] for v in r.onboard["vmlets"]}
    assert names == {"photometry", "deglitch"}
    deglitch = next(v for v in r.onboard["vmlets"] if v["name"] == "deglitch")
    assert deglitch["visible"] == ["flag", "flux", "noise"]
    assert r.onboard["config"]["version"] == 7


def test_refused_configurations_are_never_uplinked(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, ledger_file = report("04_refused_by_the_verifier", tmp_path_factory)
    assert [o.verdict for o in r.outcomes] == ["refuted", "refuted"]
    assert "flux" in r.outcomes[0].detail and "exposure_s * coadd" in r.outcomes[1].detail
    assert r.frames_sent == 0 and r.bytes_sent == 0
    assert r.onboard["config"]["version"] == 5  # what was on board stays
    with Ledger(ledger_file) as ledger:
        assert ledger.status()["transfers"] == []


def test_a_wrong_base_is_rejected_on_board_and_recovered_by_the_ground(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, _ = report("05_wrong_base", tmp_path_factory)
    first, second, again = r.outcomes
    assert first.final == "committed" and first.name == "exo_e1 v6"
    assert second.final == "rejected: wrong-base"
    assert again.recovery_of == "exo_e1 v9" and again.final == "committed"
    assert second.seq is not None and again.seq is not None and again.seq > second.seq
    assert r.onboard["config"]["version"] == 9
    assert r.onboard["store"]["last_seq"] == again.seq


def test_a_scenario_is_deterministic_for_its_seed(tmp_path: Path,
                                                  tmp_path_factory: pytest.TempPathFactory
                                                  ) -> None:
    r, _ = report("01_first_upload", tmp_path_factory)
    with Ledger(tmp_path / "l.sqlite") as ledger:
        again = run_scenario(load_scenario(SCENARIOS / "01_first_upload.toml"), ledger,
                             tmp_path)

    def facts(x: ScenarioReport) -> object:
        data = x.to_json()
        data.pop("run")
        return json.dumps(data, sort_keys=True, default=str)

    assert facts(again) == facts(r)


def test_scenarios_fly_with_their_own_private_keys(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    r, ledger_file = report("02_one_parameter", tmp_path_factory)
    assert r.scenario.mission == "corot:flight"
    keys = ledger_file.parent / "keys"
    patch_key, link_key = (key_from_text((keys / f).read_text()) for f in ("patch.key",
                                                                         "link.key"))
    for f in ("patch.key", "link.key"):
        assert stat.S_IMODE((keys / f).stat().st_mode) == 0o600
    assert len({patch_key, link_key, development_key("corot"),
                development_link_key("corot")}) == 4
    # every frame carries the security header and MAC, and the report counts them
    (o,) = r.outcomes
    assert o.uplink is not None and o.uplink.frames_sent >= 1
    assert o.uplink.bytes_sent == o.uplink.frames_sent * (o.size + FRAME_OVERHEAD_BYTES)
    assert r.bytes_sent == o.uplink.bytes_sent


def test_a_flight_scenario_refuses_the_development_keys(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "02_one_parameter.toml")
    with Ledger(tmp_path / "l.sqlite") as ledger:
        with pytest.raises(ScenarioError, match="refuses the development key"):
            run_scenario(scenario, ledger, tmp_path / "a", key=development_key("corot"))
        with pytest.raises(ScenarioError, match="refuses the development link key"):
            run_scenario(scenario, ledger, tmp_path / "b",
                         link_key=development_link_key("corot"))
        assert ledger.runs() == []


def test_lost_duplicated_and_reordered_frames_still_deliver_exactly(tmp_path: Path) -> None:
    text = (SCENARIOS / "02_one_parameter.toml").read_text()
    text = text.replace("loss = 0.10", "loss = 0.30\nduplicate = 0.2\nreorder = 0.2")
    text = text.replace('config = "../configs/', f'config = "{SCENARIOS}/../configs/')
    path = tmp_path / "rough.toml"
    path.write_text(text)
    with Ledger(tmp_path / "l.sqlite") as ledger:
        r = run_scenario(load_scenario(path), ledger, tmp_path)
    assert r.ok
    (o,) = r.outcomes
    assert statuses(r, 0).count("received") == 1  # handed to the patcher once
    assert r.onboard["config"]["version"] == 6


def test_a_bad_scenario_file_says_what_and_where(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nmission = "corot"\nloss = "high"\n[[step]]\n'
                   '[[step.patch]]\nconfig = "x.ccl"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert "loss" in info.value.message and "bad.toml" in info.value.message
    bad.write_text('[scenario]\nmission = "corot"\n[[step]]\n[[step.patch]]\n'
                   'config = "x.ccl"\nexpect = "applied"\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    assert "applied" in info.value.message and "committed" in info.value.hint


def test_ccl_sim_exit_codes_and_messages(tmp_path: Path) -> None:
    def sim(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.ccl", "sim", *map(str, args),
                               "--ledger", tmp_path / "l.sqlite"], capture_output=True,
                              text=True, cwd=ROOT)

    proc = sim(SCENARIOS / "04_refused_by_the_verifier.toml")
    assert proc.returncode == 0, proc.stderr
    assert "never uplinked" in proc.stdout and "result: OK" in proc.stdout
    proc = sim(SCENARIOS / "01_first_upload.toml", "--plot", tmp_path / "plots")
    assert proc.returncode == 2 and "no such folder" in proc.stderr  # never created silently
    (tmp_path / "plots").mkdir()
    proc = sim(SCENARIOS / "01_first_upload.toml", "--plot", tmp_path / "plots")
    assert proc.returncode == 0, proc.stderr
    png = tmp_path / "plots" / "01_first_upload.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "timeline drawn" in proc.stdout
    wrong = tmp_path / "wrong.toml"
    wrong.write_text((SCENARIOS / "04_refused_by_the_verifier.toml").read_text()
                     .replace('expect = "refused"', 'expect = "committed"', 1)
                     .replace('"../configs/', f'"{SCENARIOS}/../configs/'))
    proc = sim(wrong, "--json")
    assert proc.returncode == 1
    (data,) = json.loads(proc.stdout)
    assert data["ok"] is False and data["patches"][0]["met"] is False
    proc = sim(tmp_path / "missing.toml")
    assert proc.returncode == 2 and "no scenario" in proc.stderr
    assert "Traceback" not in proc.stderr
