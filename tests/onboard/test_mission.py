"""Mission profiles: variants selected by name (``corot:flight``) and the TC receiver's
settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from onboard.mission import MissionError, ReceiverSettings, find_mission, load_profile

ROOT = Path(__file__).resolve().parents[2]


def test_the_flight_variant_is_corot_flown() -> None:
    demo, flight = find_mission("corot"), find_mission("corot:flight")
    assert (demo.flight, flight.flight) == (False, True)
    assert (flight.name, flight.variant, demo.variant) == ("corot", "flight", "")
    # the same spacecraft otherwise
    assert flight.raw["mission"] == {**demo.raw["mission"], "flight": True}
    assert {k: v for k, v in flight.raw.items() if k != "mission"} == \
        {k: v for k, v in demo.raw.items() if k != "mission"}
    assert flight.receiver == demo.receiver == ReceiverSettings(
        spi=1, replay_window=64, max_transfers=8, history=64, transfer_timeout_s=259_200)


def test_an_unknown_variant_says_which_exist() -> None:
    with pytest.raises(MissionError) as info:
        find_mission("corot:orbit")
    assert "no variant `orbit`" in info.value.message and "flight" in info.value.hint


@pytest.mark.parametrize(("section", "message"), [
    ("[receiver]\nwindow = 3\n", "unknown key 'window'"),
    ("[receiver]\nreplay_window = 0\n", "must be >= 1"),
    ("[variant.x]\nmission = 3\n", "must change a section's keys"),
])
def test_malformed_receiver_or_variant_tables_are_refused(tmp_path: Path, section: str,
                                                          message: str) -> None:
    text = (ROOT / "missions" / "corot" / "mission.toml").read_text()
    text = text.replace("[receiver]", "[old_receiver]") if "[receiver]" in section else text
    path = tmp_path / "mission.toml"
    path.write_text(text + "\n" + section)
    with pytest.raises(MissionError, match=message):
        load_profile(path, "x" if "variant" in section else "")
