"""What the ground checks before it uplinks a patch.

A file handed to ``ccl uplink plan``/``simulate``, or a patch a scenario packs, goes up only
if it is a patch the spacecraft can take. The checks are the onboard patcher's own first
steps (``onboard.patching.patcher.read_envelope``), on the one definition of the format
(``onboard.patching.patch_format``), so the ground refuses what the board would reject
before a byte of link budget is spent on it:

1. not empty, no larger than the patcher accepts, and decodable: header (magic, format
   version, flags), mission and spacecraft ids of this mission, header CRC, the section
   frames with their CRCs, in order, and the tag present;
2. the tag authenticates the patch with the mission's key;
3. when the ledger knows what is on board (telemetry has been read): the sequence number is
   above the last one telemetry shows taken on board (else the board rejects it as a
   replay), and the base is the configuration on board (else it rejects it as built on
   another one; a full patch that applies on any base passes).

A refusal is a ``PreflightError``: the reason (the onboard ``Reason`` code), the field and
the byte offset, and a hint.
"""

from __future__ import annotations

from dataclasses import dataclass

from ground.errors import GroundError
from ground.ledger import OnboardRecord
from onboard.mission import MissionProfile
from onboard.patching.conditions import ConditionRefused, check_values
from onboard.patching.patch_format import (
    HASH_BYTES,
    NO_HASH,
    PROFILE_FLAG,
    TAG_BYTES,
    FormatError,
    Header,
    Reason,
    check_order,
    parse_profile_patch,
    tag_ok,
)
from onboard.patching.patcher import DEFAULT_MAX_PATCH_BYTES, read_envelope

_HINTS = {
    Reason.BAD_TAG: "sign it with the mission's key (`ccl pack --key FILE`), or give the key "
                    "it was signed with (--key FILE or $CCL_PATCH_KEY)",
    Reason.REPLAY: "pack it again: `ccl pack` takes the next sequence number from the ledger",
    Reason.WRONG_BASE: "pack it against the configuration on board (`ccl status` shows it)",
    Reason.WRONG_MISSION: "give the patch's mission with --mission",
    Reason.WRONG_SPACECRAFT: "give the patch's mission with --mission",
}
_NOT_A_PATCH = "is this a patch written by `ccl pack`, complete and undamaged?"


class PreflightError(GroundError):
    """A patch the ground refuses to uplink: why (``reason``), ``field`` and ``offset``."""

    def __init__(self, name: str, reason: Reason, message: str, field: str | None = None,
                 offset: int | None = None, hint: str = "") -> None:
        super().__init__(f"not uplinked: {message} ({reason.value})",
                         hint or _HINTS.get(reason, _NOT_A_PATCH))
        self.reason = reason
        self.field = field
        self.offset = offset
        parts = [name] + ([f"field `{field}`"] if field else []) + (
            [f"at byte {offset}"] if offset is not None else [])
        self.where = " ".join(parts)


@dataclass(frozen=True)
class Cleared:
    """A patch that passed the checks, and what they could check."""

    header: Header | None  # None: a profile patch (new soft figures)
    against_ledger: bool   # sequence number and base checked against what is on board

    @property
    def seq(self) -> int | None:
        return None if self.header is None else self.header.seq


def _check_profile_patch(name: str, data: bytes, profile: MissionProfile,
                         key: bytes) -> Cleared:
    """A profile patch (``ccl profile-pack``): authenticated, for this mission, every figure
    within the flight build's limits, as the board checks it first. Its own sequence (and
    what it leaves the configurations on board) only the board can check."""
    try:
        patch = parse_profile_patch(data, key)
    except FormatError as exc:
        raise PreflightError(name, exc.reason, exc.message, exc.field, exc.offset) from None
    if patch.mission_id != profile.mission_id:
        raise PreflightError(name, Reason.WRONG_MISSION, f"mission id {patch.mission_id}, "
                             f"{profile.name} is {profile.mission_id}", "mission")
    if patch.spacecraft_id != profile.spacecraft_id:
        raise PreflightError(name, Reason.WRONG_SPACECRAFT, f"spacecraft "
                             f"{patch.spacecraft_id}, {profile.name}'s is "
                             f"{profile.spacecraft_id}", "spacecraft")
    try:
        check_values(profile, patch.values)
    except ConditionRefused as exc:
        raise PreflightError(name, exc.reason, exc.message, exc.figure, None,
                             "`ccl profile-pack` checks the flight build's [limits]") from None
    return Cleared(None, False)


def check_patch(name: str, data: bytes, profile: MissionProfile, key: bytes,
                onboard: OnboardRecord | None = None) -> Cleared:
    """Check the patch ``data`` (called ``name`` in messages) before uplink to ``profile``'s
    spacecraft, whose patch key is ``key``; ``onboard``: what the ledger knows is on board.
    Raises ``PreflightError``."""
    if not data:
        raise PreflightError(name, Reason.TRUNCATED, "the file is empty", None, 0)
    if len(data) > 3 and data[3] == PROFILE_FLAG:
        return _check_profile_patch(name, data, profile, key)
    if len(data) > DEFAULT_MAX_PATCH_BYTES:
        raise PreflightError(name, Reason.OVERSIZE, f"{len(data):,} bytes, the patcher on "
                             f"board accepts at most {DEFAULT_MAX_PATCH_BYTES:,}", None,
                             DEFAULT_MAX_PATCH_BYTES, "split the change into smaller patches")
    try:
        parsed, frames = read_envelope(data, profile)
        header, at = parsed.header, parsed.offsets
        check_order(frames)
    except FormatError as exc:
        raise PreflightError(name, exc.reason, exc.message, exc.field, exc.offset) from None
    if not tag_ok(key, data):
        raise PreflightError(name, Reason.BAD_TAG, "the tag does not authenticate the patch "
                             f"with the key of mission {profile.name}", "tag",
                             len(data) - TAG_BYTES)
    if onboard is None or not onboard.known:
        return Cleared(header, False)
    if onboard.last_seq is not None and header.seq <= onboard.last_seq:
        raise PreflightError(name, Reason.REPLAY, f"sequence number {header.seq} is not above "
                             f"{onboard.last_seq}, the last one taken on board (ledger run "
                             f"{onboard.run})", "seq", at["seq"])
    assert onboard.config_hash is not None
    on_board = onboard.config_hash[:HASH_BYTES]  # all zeros when nothing is on board
    if not (header.full and header.base_hash == NO_HASH) and header.base_hash != on_board:
        what = "nothing" if on_board == NO_HASH else on_board.hex()
        raise PreflightError(name, Reason.WRONG_BASE, f"built on configuration "
                             f"{header.base_hash.hex()}, but {what} is on board as the "
                             f"telemetry of {onboard.reported_at or 'the last pass'} says "
                             f"(ledger run {onboard.run})", "base", at["base"])
    return Cleared(header, True)
