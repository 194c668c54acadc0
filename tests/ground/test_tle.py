"""TLEs: read and checked (format, checksums, epoch), the mission's newest, and how far one
may be propagated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import COROT_TLE, redated_tle

from ground.tle import (
    MAX_PROPAGATION_DAYS,
    Tle,
    TleError,
    check_propagation,
    mission_tle,
    parse_tle,
    profile_tle,
    read_tle_file,
)
from onboard.mission import MissionProfile, load_profile

EPOCH = datetime(2014, 6, 11, 4, 38, 58, tzinfo=UTC)


def test_the_profile_tle_reads_with_its_epoch(corot: MissionProfile) -> None:
    tle = profile_tle(corot)
    assert tle is not None and tle.lines == COROT_TLE
    assert abs((tle.epoch - EPOCH).total_seconds()) < 1
    assert tle.source.endswith("mission.toml [orbit] tle")


def test_a_three_line_file_with_a_name(tmp_path: Path) -> None:
    path = tmp_path / "corot.tle"
    path.write_text("0 COROT\n" + "\n".join(COROT_TLE) + "\n\n")
    tle = read_tle_file(path)
    assert (tle.name, tle.lines, tle.source) == ("COROT", COROT_TLE, str(path))


def _bad(text: str) -> TleError:
    with pytest.raises(TleError) as info:
        parse_tle(text, "f.tle")
    return info.value


def test_a_wrong_checksum_names_its_line_and_column() -> None:
    line2 = COROT_TLE[1][:-1] + "7"
    e = _bad(f"{COROT_TLE[0]}\n{line2}\n")
    assert e.where == "f.tle:2:69" and "checksum '7' of line 2" in e.message
    assert "copy it again" in e.hint
    # a changed digit anywhere breaks the checksum too
    line1 = COROT_TLE[0][:40] + "9" + COROT_TLE[0][41:]
    assert _bad(f"{line1}\n{COROT_TLE[1]}").where == "f.tle:1:69"


@pytest.mark.parametrize(("text", "where", "message"), [
    ("", "f.tle", "0 lines where a TLE has 2"),
    (COROT_TLE[0], "f.tle", "1 lines where"),
    (f"{COROT_TLE[1]}\n{COROT_TLE[0]}", "f.tle:1:1", "must start with `1 `"),
    (f"{COROT_TLE[0][:60]}\n{COROT_TLE[1]}", "f.tle:1:61", "has 60 characters"),
    (f"{COROT_TLE[0]}\n{COROT_TLE[1]}0", "f.tle:2:70", "has 70 characters"),
    (f"{COROT_TLE[0]}\n2 29679{COROT_TLE[1][7:68]}"
     f"{(int(COROT_TLE[1][68]) + 1) % 10}", "f.tle:2:3", "two satellites"),
])
def test_malformed_tles_are_refused_with_where(text: str, where: str, message: str) -> None:
    e = _bad(text)
    assert e.where == where and message in e.message


def test_an_unreadable_file(tmp_path: Path) -> None:
    binary = tmp_path / "b.tle"
    binary.write_bytes(b"\x00\xff" * 40)
    with pytest.raises(TleError, match="not ASCII"):
        read_tle_file(binary)


def test_the_newest_stored_tle_wins_over_the_profile(tmp_path: Path,
                                                     corot: MissionProfile) -> None:
    folder = tmp_path / "corot"
    (folder / "tle").mkdir(parents=True)
    (folder / "mission.toml").write_text(corot.path.read_text(encoding="utf-8"))
    profile = load_profile(folder / "mission.toml")
    mission = mission_tle(profile)
    assert mission is not None and mission.lines == COROT_TLE  # nothing stored yet
    (folder / "tle" / "a.tle").write_text(redated_tle(datetime(2014, 7, 1, tzinfo=UTC)))
    (folder / "tle" / "b.tle").write_text(redated_tle(datetime(2014, 8, 1, tzinfo=UTC)))
    (folder / "tle" / "old.tle").write_text(redated_tle(datetime(2013, 1, 1, tzinfo=UTC)))
    newest = mission_tle(profile)
    assert newest is not None and newest.epoch == datetime(2014, 8, 1, tzinfo=UTC)
    assert newest.source == str(folder / "tle" / "b.tle")
    (folder / "tle" / "c.tle").write_text("1 nonsense\n")
    with pytest.raises(TleError, match="1 lines where"):
        mission_tle(profile)


def _tle(epoch: datetime) -> Tle:
    return parse_tle(redated_tle(epoch), "t.tle")


def test_propagation_fresh_stale_and_too_far() -> None:
    tle = _tle(EPOCH)
    assert check_propagation(tle, EPOCH, 2) is None
    assert check_propagation(tle, EPOCH - timedelta(days=1), 3) is None
    stale = check_propagation(tle, EPOCH + timedelta(days=10), 1)
    assert stale is not None and "10.0 days old at the start" in stale and "--tle" in stale
    before = check_propagation(tle, EPOCH - timedelta(days=20), 1)
    assert before is not None and "20.0 days before its epoch" in before
    # a year either way is still answered (with a warning), beyond it is refused
    assert check_propagation(tle, tle.epoch, MAX_PROPAGATION_DAYS) is not None
    for start, days in ((tle.epoch, MAX_PROPAGATION_DAYS + 0.01),
                        (datetime(2030, 1, 1, tzinfo=UTC), 1),
                        (datetime(1957, 10, 4, tzinfo=UTC), 1),
                        (datetime(9999, 12, 31, tzinfo=UTC), 1e6)):
        with pytest.raises(TleError, match="beyond 365 days") as info:
            check_propagation(tle, start, days)
        assert info.value.where == "t.tle" and "--tle FILE" in info.value.hint
