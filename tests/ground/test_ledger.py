"""The ledger: what was sent, what telemetry acknowledged, what is on board."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ground.channel import Channel
from ground.ledger import DEFAULT_LEDGER, LEDGER_ENV, Ledger, LedgerError, ledger_path
from ground.link import UplinkWindow
from ground.planner import UplinkPatch
from ground.satellite import SimulatedSatellite
from ground.uplink import Campaign, Faults, simulate
from onboard.link.link_security import SecurityAssociation, development_link_key
from onboard.mission import MissionProfile
from onboard.patching.patch_format import development_key
from onboard.sim.spacecraft import Spacecraft


def test_ledger_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    assert ledger_path(None) == Path(DEFAULT_LEDGER) == Path("ccl-ledger.sqlite")
    monkeypatch.setenv(LEDGER_ENV, "/tmp/x.sqlite")
    assert ledger_path(None) == Path("/tmp/x.sqlite")
    assert ledger_path("given.sqlite") == Path("given.sqlite")


def test_a_simulated_run_is_recorded(tmp_path: Path, corot: MissionProfile,
                                     corot_windows: list[UplinkWindow],
                                     corot_link: SecurityAssociation,
                                     exo_patches: dict[str, bytes]) -> None:
    opaque = UplinkPatch("p", random.Random(1).randbytes(9000), priority=2)
    exo = UplinkPatch.from_bytes("exo", exo_patches["v5"])
    v5 = exo_patches["v5_hash"]
    sc = Spacecraft.create(corot, tmp_path / "store", development_key("corot"),
                           development_link_key("corot"))
    settings = Campaign.for_mission(corot, corot_link, channel=Channel(loss=0.1), seed=5,
                                    faults=Faults(lost_reports=frozenset({2})))
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.add_image(v5, "config", "exo_e1", 5, b"image bytes")
        rec = ledger.start_run("simulation", "corot", 5, {"loss": 0.1})
        result = simulate([opaque, exo], corot_windows,
                          SimulatedSatellite(sc, corot_windows[0].start), settings, recorder=rec)
    r, e = result.patch("p"), result.patch("exo")
    assert (r.status, e.status) == ("rejected", "complete")
    with Ledger(tmp_path / "l.sqlite") as ledger:
        info = ledger.status()
        assert (info["run"], info["seed"], info["params"]) == (1, 5, {"loss": 0.1})
        assert info["images"] == 1 and info["patches"] == 2 and info["config_versions"] == 1
        assert info["onboard_config"]["hash"] == v5.hex()   # as the last telemetry said
        assert (info["onboard_config"]["name"], info["onboard_config"]["version"]) == (
            "exo_e1", 5)
        t = next(t for t in info["transfers"] if t["patch"] == "p")
        assert (t["state"], t["fate"], t["k"]) == ("complete", r.fate, r.k)
        assert (t["frames_sent"], t["bytes_sent"]) == (r.frames_sent, r.bytes_sent)
        assert t["shares_held"] == r.k and 0 < t["shares_acked"] < r.k
        assert next(t for t in info["transfers"] if t["patch"] == "exo")["fate"] == e.fate == 2
        assert info["passes"]["used"] == len(result.windows)
        assert info["reports"] == sum(w.report_received for w in result.windows)
        db = ledger.db
        sent = db.execute("SELECT COUNT(*) FROM segments_sent").fetchone()[0]
        assert sent == r.frames_sent + e.frames_sent
        raw = db.execute("SELECT raw FROM reports ORDER BY pass_idx LIMIT 1").fetchone()[0]
        assert raw.startswith(b"TMD1")  # the downlink packet, as received
        assert ledger.runs()[0]["mission"] == "corot"
        with pytest.raises(LedgerError, match="no run 9"):
            ledger.status(9)
        # fates by name, the full hash and when the telemetry was read
        names = {t["patch"]: t["fate_name"] for t in info["transfers"]}
        assert names == {"p": "rejected: bad-magic", "exo": "committed"}
        assert info["onboard_config"]["hash_is_prefix"] is False
        assert info["onboard_config"]["reported_at"].startswith("2014-06-1")
        # what the checks before uplink and `ccl pack` read
        onboard = ledger.onboard()
        assert onboard is not None and onboard.known and onboard.run == 1
        assert (onboard.config_hash, onboard.last_seq) == (v5, 5)  # p was never staged
        assert onboard.reported_at == info["onboard_config"]["reported_at"]
        assert ledger.last_seq_used() == 5  # the opaque bytes have no sequence number
    before = (tmp_path / "l.sqlite").read_bytes()
    with Ledger(tmp_path / "l.sqlite", read_only=True) as ledger:
        assert ledger.status()["run"] == 1
    assert (tmp_path / "l.sqlite").read_bytes() == before


def test_an_empty_ledger_and_a_broken_file(tmp_path: Path) -> None:
    with Ledger(tmp_path / "empty.sqlite") as ledger:
        assert ledger.status()["run"] is None
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger(bad)
    with Ledger(tmp_path / "new.sqlite") as ledger:
        assert ledger.onboard() is None and ledger.last_seq_used() is None
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"")
    with pytest.raises(LedgerError, match="not a ccl ledger"):
        Ledger(other, read_only=True)
    with pytest.raises(LedgerError, match="not a regular file"):
        Ledger(tmp_path)
