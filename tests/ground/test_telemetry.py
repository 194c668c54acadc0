"""What the ground learns from the downlink: every fate once, in order, at its onboard time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ground.telemetry import FateLog, fate_record
from onboard.link.downlink import EventLog, PatchEvent, decode_downlink, encode_downlink
from onboard.patching.patch_format import REASON_NUMBERS, Reason
from onboard.patching.patcher import FATE_CODES, REJECTED_BASE, FateStatus

EPOCH = datetime(2014, 6, 11, tzinfo=UTC)


def test_each_event_is_kept_once_and_told_in_order() -> None:
    onboard, ground = EventLog(capacity=3), FateLog(EPOCH)
    onboard.log(500, 1, FATE_CODES[FateStatus.RECEIVED], "637 bytes")
    onboard.log(600, 1, FATE_CODES[FateStatus.STAGED], "")
    ground.learn(decode_downlink(encode_downlink(b"", onboard)))
    onboard.log(700, 2, FATE_CODES[FateStatus.RECEIVED], "61 bytes")
    onboard.log(60_700, 1, FATE_CODES[FateStatus.COMMITTED], "after 600 clean frames")
    ground.learn(decode_downlink(encode_downlink(b"", onboard)))   # event 1 dropped out
    fates = ground.fates(1)
    assert [f.status for f in fates] == ["received", "staged", "committed"]
    assert fates[0].time == EPOCH + timedelta(milliseconds=500) and fates[-1].final
    assert [f.status for f in ground.fates(2)] == ["received"] and ground.fates(3) == ()
    assert ground.missed() == 0


def test_events_that_dropped_out_unseen_are_counted() -> None:
    onboard, ground = EventLog(capacity=2), FateLog(EPOCH)
    for i in range(5):
        onboard.log(i, 1, FATE_CODES[FateStatus.STAGED], "")
    ground.learn(decode_downlink(encode_downlink(b"", onboard)))
    assert ground.missed() == 3 and len(ground.fates(1)) == 2


def test_a_rejection_reads_with_its_reason() -> None:
    code = REJECTED_BASE + REASON_NUMBERS[Reason.WRONG_BASE]
    f = fate_record(EPOCH, PatchEvent(1, 0, 1, code, "base 0011 is not on board"))
    assert (f.status, f.detail, f.final) == ("rejected", "wrong-base: base 0011 is not on "
                                             "board", True)
    unknown = fate_record(EPOCH, PatchEvent(2, 0, 1, 0x30, "?"))
    assert unknown.status == "unknown" and not unknown.final and "0x30" in unknown.detail
