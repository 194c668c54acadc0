"""The soft figures in force on board, for the ground: proofs and patches against the patch
reserve (and queue and probation lengths) the board actually has, not the flight build's.

A board keeps the figures it has committed as a profile patch (``conditions.vpp`` in its
state directory, ``onboard.patching.conditions``); the ground keeps the profile patches it
sent and learns from telemetry which one the board committed (``ground.ledger.Ledger.
conditions``, which ``ccl pack`` reads by default). ``ccl verify`` and ``ccl pack``
take such a file (``--conditions FILE``): it is authenticated with the patch key and checked
against the flight build's hard limits exactly as the board does, and its figures replace
the profile's in the proof. The proof cache tells the two apart
(``ccl.verify.proof_cache.fingerprint`` covers the figures), so a proof made under one
reserve is never reused under another.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ccl.compiled import Compiled
from onboard.mission import MissionProfile
from onboard.patching.conditions import ConditionRefused, check_values, with_values
from onboard.patching.patch_format import FormatError, parse_profile_patch


class ConditionsError(Exception):
    """A conditions file the ground cannot use: what, and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def figures_in_force(profile: MissionProfile, path: Path, key: bytes) -> MissionProfile:
    """``profile`` (the flight build) with the soft figures of the profile patch in ``path``,
    authenticated with ``key`` and checked against the flight build's limits as on board.
    Raises ``ConditionsError``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConditionsError(f"{path}: cannot read the conditions: {exc.strerror}",
                              "give the profile patch the board committed") from None
    return figures_of(profile, data, key, str(path))


def figures_of(profile: MissionProfile, data: bytes, key: bytes, path: str) -> MissionProfile:
    """``figures_in_force`` of the profile patch ``data`` (``path`` says where it came from,
    for messages: a file, or the ledger). Raises ``ConditionsError``."""
    try:
        patch = parse_profile_patch(data, key)
    except FormatError as exc:
        raise ConditionsError(f"{path}: not a profile patch authenticated by the patch key "
                              f"({exc})", "give the profile patch the board committed (a "
                              "`ccl profile-pack` output, or a board's conditions.vpp) and "
                              "its key with --key FILE") from None
    if (patch.mission_id, patch.spacecraft_id) != (profile.mission_id, profile.spacecraft_id):
        raise ConditionsError(f"{path}: figures for mission {patch.mission_id}, spacecraft "
                              f"{patch.spacecraft_id}; this is mission {profile.mission_id} "
                              f"({profile.name}), spacecraft {profile.spacecraft_id}",
                              "give the conditions of this mission's board")
    try:
        check_values(profile, patch.values)
    except ConditionRefused as exc:
        raise ConditionsError(f"{path}: {exc.message}", "the board would refuse these "
                              "figures too: they are not the ones in force") from None
    return with_values(profile, patch.values)


def under_conditions(compiled: Compiled, profile: MissionProfile) -> Compiled:
    """``compiled`` (and its VMlets) to be proven and packed under ``profile``'s figures."""
    return replace(compiled, mission=profile,
                   vmlets=tuple(under_conditions(v, profile) for v in compiled.vmlets))
