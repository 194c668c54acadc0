"""``ccl sim`` of a board of several applications: the CoRoT scenario with one application
per instrument channel (missions/corot/scenarios/applications/two_channels.toml), one
trapping at every run until the ground fixes it on its own APID, the other undisturbed;
and the scenario file's checks of applications."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ground.ledger import Ledger
from ground.scenario import ScenarioError, ScenarioReport, load_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]
TWO = ROOT / "missions" / "corot" / "scenarios" / "applications" / "two_channels.toml"
DAY_S = 24 * 3600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScenarioReport, Path]:
    d = tmp_path_factory.mktemp("two_channels")
    with Ledger(d / "ledger.sqlite") as ledger:
        return run_scenario(load_scenario(TWO), ledger, d), d / "ledger.sqlite"


def test_two_channels_one_trapping_the_other_undisturbed(
        run: tuple[ScenarioReport, Path]) -> None:
    r, _ = run
    assert r.ok, [(o.name, o.final, o.expected) for o in r.outcomes]
    a, b = r.outcomes
    assert (a.name, a.final, b.name, b.final) == ("channel_a v2", "committed",
                                                  "channel_b v2", "committed")
    apps = r.onboard["applications"]
    ch_a, ch_b = apps["channel_a"], apps["channel_b"]
    # channel_b trapped at every run (once a second) until its fix was switched to
    fixed_s = (b.activated - r.start).total_seconds() if b.activated else 0
    assert ch_b["fault_count"] == pytest.approx(fixed_s, abs=2) and fixed_s > 3600
    assert {f["code"] for f in ch_b["faults"]} == {"div_zero"}
    assert ch_b["config"]["version"] == 2 and ch_b["tasks"][0]["traps"] == ch_b["fault_count"]
    # channel_a: never a fault, every 32 s run made, its own patch committed meanwhile
    assert ch_a["fault_count"] == 0 and ch_a["config"]["version"] == 2
    assert abs(ch_a["tasks"][0]["runs"] - r.onboard["time_ms"] // 32_000) <= 1
    # each within its part; all of them within the share, patch handling included
    assert ch_a["worst_frame_cycles"] <= ch_a["part_cycles"] == 80_000
    assert ch_b["worst_frame_cycles"] <= ch_b["part_cycles"] == 60_000
    assert 0 < r.onboard["worst_total_frame_cycles"] <= r.onboard["share_cycles_per_frame"]
    # the ground's view of each application is what runs there; a wrong one is noticed
    assert r.ground_applications == {"channel_b": ch_b["config"]["hash"]}
    assert r.consistent
    assert not replace(r, ground_applications={"channel_b": "00" * 32}).consistent


def test_the_ledger_records_each_transfers_application(
        run: tuple[ScenarioReport, Path]) -> None:
    r, path = run
    with Ledger(path, read_only=True) as ledger:
        transfers = ledger.status(r.run)["transfers"]
    assert [(t["patch"].split(" #")[0], t["application"]) for t in transfers] == \
        [("channel_a v2", 0), ("channel_b v2", 1)]


def _scenario(tmp_path: Path, onboard: str, patch: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nmission = "corot"\n' + onboard
                    + '\n[[step]]\n[[step.patch]]\nconfig = "x.ccl"\n' + patch)
    return path


@pytest.mark.parametrize(("onboard", "patch", "message"), [
    ('[[onboard.application]]\nname = "a"\nshare = 4\n', 'app = "b"\n',
     "no application `b` on board"),
    ('[[onboard.application]]\nname = "a"\nshare = 4\n', "", "which application?"),
    ("", 'app = "a"\n', "names no applications"),
    ('[[onboard.application]]\nname = "a"\nshare = 4\n[[onboard.application]]\nname = "a"\n'
     'share = 3\n', 'app = "a"\n', "cannot name an application"),
    ('[onboard]\nconfig = "y.ccl"\n[[onboard.application]]\nname = "a"\nshare = 4\n',
     'app = "a"\n', "both `config` and applications"),
])
def test_a_scenario_names_its_applications_and_each_patch_one_of_them(
        tmp_path: Path, onboard: str, patch: str, message: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        load_scenario(_scenario(tmp_path, onboard, patch))
    assert message in str(refused.value)


def test_parts_over_the_share_are_refused_with_the_scenario_named(tmp_path: Path) -> None:
    path = _scenario(tmp_path, '[[onboard.application]]\nname = "a"\nshare = 6\n'
                               '[[onboard.application]]\nname = "b"\nshare = 4\n',
                     'app = "a"\n')
    with Ledger(":memory:") as ledger, pytest.raises(ScenarioError) as refused:
        run_scenario(load_scenario(path), ledger, tmp_path / "work")
    assert "over" in str(refused.value) or "share" in str(refused.value)
    assert str(path) in str(refused.value)
