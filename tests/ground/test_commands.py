"""`ccl passes`, `ccl uplink plan|simulate` and `ccl status` as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.ccl import ccl as cli


@pytest.fixture()
def patch_files(tmp_path: Path, framed_patch: Callable[..., bytes]) -> tuple[Path, Path]:
    """Two patches the ground clears for uplink (and the board rejects: bad-image)."""
    big, small = tmp_path / "big.vvmp", tmp_path / "small.vvmp"
    big.write_bytes(framed_patch(16_384))
    small.write_bytes(framed_patch(1_500, seq=6))
    return big, small


def ccl(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_clean(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def test_passes_table_and_json() -> None:
    # the profile's TLE is of 2014: `ccl passes` starts now unless told (see test_passes_cli)
    r = ccl("passes", "--mission", "corot", "--days", "3", "--start", "2014-06-11")
    assert r.exit_code == 0, r.output
    assert "corot:" in r.output and "Kiruna" in r.output and "Aussaguel" in r.output
    r = ccl("passes", "--mission", "corot", "--days", "3", "--start", "2014-06-11", "--json")
    data = json.loads(r.output)
    assert data["bits_per_day"] == 140_000
    uplink = [p for p in data["passes"] if p["uplink"]]
    assert len(uplink) == 12
    assert sum(p["budget_bytes"] for p in uplink) == 3 * 17_500
    assert all(p["max_elevation_deg"] >= 10 for p in data["passes"])


def test_plan_table_and_refusal(patch_files: tuple[Path, Path],
                                framed_patch: Callable[..., bytes]) -> None:
    big, small = patch_files
    r = ccl("uplink", "plan", big, f"{small},priority=3", "--loss", "0.1")
    assert r.exit_code == 0, r.output
    lines = {line.split(":")[0]: line for line in r.output.splitlines()}
    assert lines["small.vvmp"].startswith("small.vvmp: scheduled [seq 6, full")
    assert "], k = 3 shares" in lines["small.vvmp"]
    assert "], k = 32 shares of 512 bytes" in lines["big.vvmp"]
    header_patch = big.parent / "delta.vvmp"
    header_patch.write_bytes(framed_patch(2_000))
    r = ccl("uplink", "plan", header_patch, "--onboard", "ab" * 32)
    assert r.exit_code == 0, r.output
    assert "delta.vvmp: scheduled [seq 5, full to version 4 (0001020304050607)" in r.output
    r = ccl("uplink", "plan", f"{big},deadline=3h", "--json")
    assert r.exit_code == 1
    data = json.loads(r.output)
    assert data["patches"][0]["status"] == "refused"
    assert "after its deadline" in data["patches"][0]["reason"]


def test_simulate_plot_ledger_and_status(tmp_path: Path,
                                         patch_files: tuple[Path, Path]) -> None:
    big, small = patch_files
    ledger, png = tmp_path / "ledger.sqlite", tmp_path / "timeline.png"
    r = ccl("uplink", "simulate", big, f"{small},priority=2", "--loss", "0.1", "--seed", "1",
            "--plot", png, "--ledger", ledger, "--report-loss", "0.2", "--cancel", "0.1")
    # well-framed and signed, they pass the ground's checks; the board's patcher rejects
    # the VMlet they carry: exit 1
    assert r.exit_code == 1, r.output
    big_line = next(line for line in r.output.splitlines() if line.startswith("big.vvmp"))
    assert big_line.startswith("big.vvmp (16384 bytes): rejected (on board: bad-image) [seq 5")
    assert "]; k = 32 shares of 512 bytes" in big_line
    assert "x the bound" in r.output and "timeline drawn" in r.output
    assert "on board, as telemetry tells: received 2014-06-" in r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rejected on board, so their sequence numbers are not taken: they may go again
    again = ccl("uplink", "simulate", big, f"{small},priority=2", "--loss", "0.1", "--seed",
                "1", "--ledger", ledger, "--report-loss", "0.2", "--cancel", "0.1", "--json")
    data = json.loads(again.output)
    assert data["run"] == 2 and data["seed"] == 1
    first = [line for line in r.output.splitlines() if line.startswith("big.vvmp")][0]
    assert f"{data['patches'][0]['frames_sent']} frames sent" in first  # same seed, same run
    assert data["patches"][0]["delivery_vs_bound"] < 1.4
    assert [f["status"] for f in data["patches"][0]["fates"]] == ["received", "rejected"]
    s = ccl("status", "--ledger", ledger)
    assert s.exit_code == 0, s.output
    assert "2 runs, 2 patches" in s.output and "run 2 (simulation" in s.output
    assert "complete" in s.output
    s = ccl("status", "--ledger", ledger, "--run", "1", "--json")
    info = json.loads(s.output)
    assert info["run"] == 1 and {t["state"] for t in info["transfers"]} == {"complete"}


def test_simulate_a_real_patch_to_commit(tmp_path: Path, exo_patches: dict[str, bytes]) -> None:
    patch = tmp_path / "exo_e1.vvmp"
    patch.write_bytes(exo_patches["v5"])
    r = ccl("uplink", "simulate", patch, "--loss", "0.1", "--ledger", tmp_path / "l.sqlite")
    assert r.exit_code == 0, r.output
    assert f"exo_e1.vvmp ({len(exo_patches['v5'])} bytes): complete" in r.output
    fates = next(line for line in r.output.splitlines() if "as telemetry tells" in line)
    assert [w for w in fates.split() if w in ("received", "staged", "active", "committed")] \
        == ["received", "staged", "active", "committed"]
    assert "(after 600 clean frames)" in fates  # the message the patcher downlinked
    s = ccl("status", "--ledger", tmp_path / "l.sqlite", "--json")
    assert json.loads(s.output)["onboard_config"]["hash"] == exo_patches["v5_hash"].hex()


@pytest.mark.parametrize(("args", "message"), [
    (["passes", "--mission", "nosuch"], "unknown mission `nosuch`"),
    (["passes", "--start", "yesterday"], "is not an ISO date-time"),
    (["uplink", "plan", "/nonexistent/p.vvmp"], "cannot read patch /nonexistent/p.vvmp"),
    (["uplink", "plan", "{big},colour=red"], "unknown setting 'colour'"),
    (["uplink", "plan", "{big},priority=high"], "priority 'high' is not an integer"),
    (["uplink", "plan", "{big},deadline=soon"], "neither a duration nor a date-time"),
    (["uplink", "plan", "{big},base=abcd"], "base has 2 bytes"),
    (["uplink", "plan", "{big}", "{big}"], "two patches are named big.vvmp"),
    (["uplink", "simulate", "{big}", "--loss", "1.5"], "--loss"),
    (["status", "--ledger", "{tmp}/none.sqlite"], "no ledger at"),
    (["uplink", "simulate", "{big}", "--days", "0.1"], "no uplink pass in the 0.1 days"),
    (["passes", "--schedule", "fixed"], "mission corot has no [[link.schedule]]"),
    (["uplink", "simulate", "{big}", "--link-key", "{tmp}/none.key"], "no link key file at"),
])
def test_bad_input_gives_one_clear_message(tmp_path: Path, patch_files: tuple[Path, Path],
                                           args: list[str], message: str) -> None:
    big, _ = patch_files
    r = ccl(*[a.format(big=big, tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert_clean(r)


def test_a_flight_mission_refuses_the_development_link_key(tmp_path: Path,
                                                          patch_files: tuple[Path, Path],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.delenv("CCL_LINK_KEY", raising=False)
    big, _ = patch_files
    r = ccl("uplink", "simulate", big, "--mission", "corot:flight", "--ledger",
            tmp_path / "l.sqlite")
    assert r.exit_code == 1 and "refuses the development link key" in r.output
    assert "--link-key" in r.output
    assert_clean(r)
    bad = tmp_path / "short.key"
    bad.write_text("abcd\n")
    r = ccl("uplink", "simulate", big, "--mission", "corot:flight", "--link-key", bad)
    assert r.exit_code == 1 and "at least 16 bytes" in r.output
    assert_clean(r)
