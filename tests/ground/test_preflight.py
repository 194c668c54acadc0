"""What the ground checks before uplink: each refusal with its reason, field and offset."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ground.ledger import OnboardRecord
from ground.preflight import PreflightError, check_patch
from onboard.mission import MissionProfile
from onboard.patching.patch_format import Reason, development_key

KEY = development_key("corot")
V5 = bytes(range(32))  # a configuration on board (its full hash)


def refusal(data: bytes, corot: MissionProfile, onboard: OnboardRecord | None = None,
            key: bytes = KEY) -> PreflightError:
    with pytest.raises(PreflightError) as info:
        check_patch("p.vvmp", data, corot, key, onboard)
    return info.value


def on_board(config: bytes, last_seq: int | None = 5) -> OnboardRecord:
    return OnboardRecord(3, config, "2014-06-11T07:25:27+00:00", 4, last_seq)


def test_what_is_not_a_patch_is_refused_with_reason_field_and_offset(
        corot: MissionProfile, framed_patch: Callable[..., bytes]) -> None:
    good = framed_patch(1_000)
    cases = [
        (b"", Reason.TRUNCATED, None, 0),
        (b"XX" + good[2:], Reason.BAD_MAGIC, "magic", 0),
        (good[:30], Reason.TRUNCATED, "data", 30),
        (good[:-1], Reason.TRUNCATED, "section.length", None),
        (good[:10] + bytes([good[10] ^ 1]) + good[11:], Reason.HEADER_CRC, "crc", None),
        (good + bytes(70_000), Reason.OVERSIZE, None, 65_536),
    ]
    for data, reason, field, offset in cases:
        error = refusal(data, corot)
        assert (error.reason, error.field) == (reason, field), error.message
        if offset is not None:
            assert error.offset == offset
        assert error.message.startswith("not uplinked: ")
        assert error.where.startswith("p.vvmp") and error.hint


def test_the_tag_must_verify_with_the_mission_key(corot: MissionProfile,
                                                  framed_patch: Callable[..., bytes]) -> None:
    other = framed_patch(1_000, key=bytes(32))
    error = refusal(other, corot)
    assert (error.reason, error.field, error.offset) == (Reason.BAD_TAG, "tag", 984)
    assert check_patch("p", other, corot, bytes(32)).header.seq == 5


def test_sequence_number_and_base_against_what_the_ledger_knows(
        corot: MissionProfile, framed_patch: Callable[..., bytes]) -> None:
    delta = framed_patch(1_000, seq=6, base=V5[:8], full=False)
    cleared = check_patch("p", delta, corot, KEY, on_board(V5))
    assert cleared.against_ledger and cleared.header.seq == 6
    stale = refusal(framed_patch(1_000, seq=5, base=V5[:8], full=False), corot, on_board(V5))
    assert (stale.reason, stale.field, stale.offset) == (Reason.REPLAY, "seq", 8)
    assert "sequence number 5 is not above 5" in stale.message
    wrong = refusal(delta, corot, on_board(bytes(reversed(V5))))
    assert (wrong.reason, wrong.field) == (Reason.WRONG_BASE, "base")
    assert "telemetry of 2014-06-11T07:25:27+00:00" in wrong.message
    empty = refusal(delta, corot, on_board(bytes(32), None))
    assert empty.reason is Reason.WRONG_BASE and "but nothing is on board" in empty.message
    # a full patch for any base goes on whatever is on board
    assert check_patch("p", framed_patch(1_000, seq=6), corot, KEY, on_board(V5)).against_ledger


def test_without_telemetry_sequence_and_base_are_not_checked(
        corot: MissionProfile, framed_patch: Callable[..., bytes]) -> None:
    delta = framed_patch(1_000, seq=1, base=V5[:8], full=False)
    unknown = OnboardRecord(1, None, None, None, None)
    for onboard in (None, unknown):
        assert check_patch("p", delta, corot, KEY, onboard).against_ledger is False
