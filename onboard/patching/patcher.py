"""The onboard patcher: validates an uplinked patch, rebuilds the configuration it describes,
stages it, and drives activation, probation, commit and rollback.

``Patcher.check`` runs every test in this order, and rejects at the first failure with a
stable ``Reason`` (see ``onboard.patching.patch_format``), the field and the byte offset:

 1. size limit (OVERSIZE)                  8. sequence above the last accepted (REPLAY)
 2. header decode (TRUNCATED, BAD_HEADER)  9. nothing staged or on probation (BUSY)
 3. magic, format version                 10. base hash = the current configuration's
 4. mission id                                 (WRONG_BASE)
 5. spacecraft id                         11. claims within the application's part
 6. header and section CRCs                    and the memory (OVER_BUDGET)
 7. tag, constant-time (BAD_TAG); an      12. decode the sections (BAD_SECTION, BAD_IMAGE)
    unverified patch on a flight          13. rebuild the target from the base (BAD_DELTA,
    spacecraft (UNVERIFIED)                    MISSING_VMLET, CLAIM_MISMATCH)
                                          14. its content hash = the target hash
                                               (HASH_MISMATCH), code and data bytes = the
                                               claims (CLAIM_MISMATCH)
                                          15. the bytecode verifier (VERIFIER)

Steps 12 and 13 are the delta codec's (``onboard.patching.delta.apply_sections``); they decode
under a budget fixed from the claims that passed step 11
(``onboard.patching.patch_format.decoding_budget``): every count, length and expansion is bounded
before anything is allocated on it, so checking a patch allocates at most a documented
multiple of its size plus the spacecraft's memory (docs/patch-format.md, *Bounded
decoding*). Anything unexpected inside ``check`` (a bug, not the patch's fault) is an
INTERNAL rejection, never an exception escaping to the onboard software.

``check`` reads the store but writes nothing, so a rejected patch leaves the state directory
byte for byte as it was. ``receive`` checks and then stages into the spare slot.

``onboard.patching.reconfiguration`` drives the rest on board, paced by the patch reserve; the API
it uses (``receive`` and ``end_frame`` do the same steps at once, for direct use)::

    accepted = patcher.check(patch_bytes)   # raises PatchRejected; patcher.reject() logs it
    fate = patcher.stage(accepted)          # -> STAGED: written into the spare slot
    config = patcher.activate()             # at a frame boundary: the VVM loads it, runs
                                            #   `on apply`; probation starts
    fate = patcher.switch(start)            # the same, with the loading: recorded on
                                            #   probation first, rolled back if start raises
    if patcher.count_clean_frames(n):       # frames of probation without a trap or overrun
        patcher.commit()                    #   enough of them: keep it
    patcher.abort("load failed: ...")       # roll back now (a fault, or a failed load)
    patcher.boot()                          # after a reset: a configuration that was on
                                            #   probation is rolled back (``onboard.patching.boot``
                                            #   then switches to a staged one)
    patcher.fates                           # every fate so far, for telemetry

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from onboard.errors import OnboardError
from onboard.mission import MissionProfile
from onboard.patching.delta import apply_sections
from onboard.patching.patch_format import (
    HASH_BYTES,
    NO_HASH,
    REASON_NUMBERS,
    TAG_BYTES,
    Flag,
    FormatError,
    Frame,
    Header,
    ParsedHeader,
    Reason,
    development_key,
    hash_prefix,
    memory_bytes,
    parse_frames,
    parse_header,
    tag_ok,
    vmlet_primer,
)
from onboard.patching.store import Configuration, Phase, Store
from onboard.vm.board import PartLimits, part_limits
from onboard.vm.image import pinned_stack
from onboard.vm.loader import LoadError
from onboard.vm.verifier import Target, VerifyError, verify_image

#: Largest patch accepted unless the patcher is told otherwise (bytes).
DEFAULT_MAX_PATCH_BYTES = 64 * 1024



class PatchRejected(FormatError):
    """A patch the patcher refuses; ``reason``, ``field``, ``offset`` and ``message`` say why."""


class KeyRefused(OnboardError):
    """The patcher was given a key its mission profile does not allow (the development key on
    a flight profile)."""

    def __init__(self, message: str) -> None:
        super().__init__("key-refused", message, hint="give the mission's own key")


class FateStatus(StrEnum):
    RECEIVED = "received"
    REJECTED = "rejected"
    STAGED = "staged"
    ACTIVE = "active"  # switched to at a frame boundary; probation starts
    COMMITTED = "committed"
    ROLLED_BACK = "rolled-back"


#: One-byte fate codes for telemetry (``onboard.link.receiver`` reports them): a rejection is
#: ``REJECTED_BASE + REASON_NUMBERS[reason]``.
FATE_CODES = {FateStatus.STAGED: 0, FateStatus.ACTIVE: 1, FateStatus.COMMITTED: 2,
              FateStatus.ROLLED_BACK: 3, FateStatus.RECEIVED: 0x3F}
REJECTED_BASE = 0x40


_STATUS_OF_CODE = {code: status for status, code in FATE_CODES.items()
                   if status is not FateStatus.RECEIVED or code == 0x3F}
_REASON_OF_NUMBER = {n: r for r, n in REASON_NUMBERS.items()}


def read_fate_code(code: int) -> tuple[FateStatus, Reason | None]:
    """What a one-byte fate code in telemetry says: the status and, for a rejection, the
    reason. Raises ``ValueError`` for a code no patcher writes."""
    if code >= REJECTED_BASE:
        reason = _REASON_OF_NUMBER.get(code - REJECTED_BASE)
        if reason is None:
            raise ValueError(f"fate code {code:#04x}: no such rejection reason")
        return FateStatus.REJECTED, reason
    if code not in _STATUS_OF_CODE:
        raise ValueError(f"fate code {code:#04x} is not one a patcher writes")
    return _STATUS_OF_CODE[code], None


def fate_failed(code: int) -> bool:
    """Whether a fate code says the patch will not (or no longer) run: rejected or rolled
    back. Unknown codes count as failed."""
    try:
        status, _ = read_fate_code(code)
    except ValueError:
        return True
    return status in (FateStatus.REJECTED, FateStatus.ROLLED_BACK)


def fate_code_text(code: int) -> str:
    """A fate code in words (``staged``, ``rejected: wrong-base``...)."""
    try:
        status, reason = read_fate_code(code)
    except ValueError as exc:
        return str(exc)
    return status.value + (f": {reason.value}" if reason else "")


@dataclass(frozen=True)
class Fate:
    """One step in the life of a patch, as telemetry reports it."""

    status: FateStatus
    seq: int | None = None
    target: bytes | None = None  # hash prefix of the target configuration
    reason: Reason | None = None
    message: str = ""
    field: str | None = None
    offset: int | None = None

    @property
    def code(self) -> int:
        """The one-byte fate code telemetry carries (0: accepted for staging)."""
        if self.status is FateStatus.REJECTED and self.reason is not None:
            return REJECTED_BASE + REASON_NUMBERS[self.reason]
        return FATE_CODES[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "code": self.code, "seq": self.seq,
                "target": self.target.hex() if self.target is not None else None,
                "reason": self.reason.value if self.reason else None,
                "message": self.message, "field": self.field, "offset": self.offset}


@dataclass(frozen=True)
class Accepted:
    """A patch that passed every check, and the configuration it rebuilds."""

    header: Header
    configuration: Configuration


# --------------------------------------------------------------------------- rebuilding


def _reject(reason: Reason, message: str, fld: str | None = None,
            offset: int | None = None) -> PatchRejected:
    return PatchRejected(reason, message, fld, offset)


def read_envelope(data: bytes, profile: MissionProfile) -> tuple[ParsedHeader, list[Frame]]:
    """The header and section frames of the patch ``data`` for ``profile``'s spacecraft,
    checked as ``Patcher.check`` does before the tag (steps 2 to 6: decoding, magic and
    format version, mission and spacecraft ids, header and section CRCs). The ground runs
    the same steps before uplink (``ground.preflight``). Raises ``FormatError``."""
    parsed = parse_header(data)
    header, at = parsed.header, parsed.offsets
    if parsed.size + TAG_BYTES > len(data):
        raise _reject(Reason.TRUNCATED, "the patch ends before its tag", "tag", len(data))
    if header.mission_id != profile.mission_id:
        raise _reject(Reason.WRONG_MISSION, f"mission id {header.mission_id}, this is "
                      f"mission {profile.mission_id} ({profile.name})", "mission",
                      at["mission"])
    if header.spacecraft_id != profile.spacecraft_id:
        raise _reject(Reason.WRONG_SPACECRAFT, f"spacecraft id {header.spacecraft_id}, "
                      f"this is spacecraft {profile.spacecraft_id}", "spacecraft",
                      at["spacecraft"])
    if not parsed.crc_ok:
        raise _reject(Reason.HEADER_CRC, "the header's CRC does not match", "crc", at["crc"])
    return parsed, parse_frames(data, parsed.size, len(data) - TAG_BYTES)


def rebuild(header: Header, frames: Sequence[Frame], base: Configuration | None,
            profile: MissionProfile) -> Configuration:
    """The configuration a patch describes: its sections applied to the base (the empty
    configuration for a full patch; ``onboard.patching.delta``), with the VMlets it uses,
    carried or held on board. Raises ``FormatError``.

    ``base`` is the configuration on board: a delta applies to its image, and the VMlets it
    holds may be used by the target without being carried. What decoding may allocate is
    bounded by the header's claims (``decoding_budget``) before any section is decoded.
    """
    # A patch that names its base (the configuration on board, checked before this) may
    # have been coded after that base's VMlets.
    primer = vmlet_primer(base.config, base.vmlets) \
        if base is not None and header.base_hash != NO_HASH else None
    image, carried = apply_sections(header, frames, base.config if base is not None else None,
                                    profile, primer)
    available = [*carried, *(base.vmlets if base is not None else ())]
    # the VMlets it uses and the layers below them, lower first (the order they load in)
    vmlets, u = pinned_stack(image.uses, available)
    if u is not None:
        raise _reject(Reason.MISSING_VMLET, f"the configuration runs on `{u.name}` "
                      f"v{u.version} ({u.hash.hex()[:16]}), which is neither in the patch "
                      f"nor on board", "uses")
    return Configuration(image, vmlets)


# --------------------------------------------------------------------------- verification


def verify_configuration(configuration: Configuration, profile: MissionProfile) -> None:
    """Run the load-time bytecode verifier over a configuration's VMlets and then the
    configuration on them, as the loader will (but before their ``on load`` runs, which may
    hide more natives at activation). Raises ``VerifyError``."""
    target = Target.of(profile)
    for v in configuration.vmlets:
        verify_image(v, target, vmlets=configuration.vmlets)  # a layer on the ones below
    verify_image(configuration.config, target, vmlets=configuration.vmlets)


# --------------------------------------------------------------------------- the patcher


class Patcher:
    """Validates and applies patches for one spacecraft, over its ``Store``."""

    def __init__(self, profile: MissionProfile, store: Store, key: bytes, *,
                 probation_frames: int | None = None,
                 max_patch_bytes: int = DEFAULT_MAX_PATCH_BYTES,
                 accept_unverified: bool | None = None,
                 limits: Callable[[], PartLimits] | None = None) -> None:
        """``probation_frames`` defaults to the profile's, ``accept_unverified`` to ``not
        profile.flight``. ``limits``: the part in force of the application this patcher
        serves (``onboard.vm.board.Board.limits``), asked at every check; default, a
        single VVM's: the share less the patch reserve of the profile in force. Raises
        ``KeyRefused`` for the development key on a flight profile."""
        if profile.flight and key == development_key(profile.name):
            raise KeyRefused(f"mission `{profile.name}` is a flight profile: it refuses the "
                             f"development key")
        if len(key) < 16:
            raise KeyRefused(f"a patch key needs at least 16 bytes, this one has {len(key)}")
        self.profile = profile
        self.store = store
        self._key = key
        self.probation_frames = profile.reconfig.probation_frames if probation_frames is None \
            else probation_frames
        self.max_patch_bytes = max_patch_bytes
        self.accept_unverified = (not profile.flight) if accept_unverified is None \
            else accept_unverified
        self.fates: list[Fate] = []
        self._clean_frames = 0
        self._limits = limits

    # ------------------------------------------------------------------ checking

    def check(self, data: bytes) -> Accepted:
        """Every check, in the documented order; returns the rebuilt configuration or raises
        ``PatchRejected``, and nothing else. Reads the store, writes nothing.

        An unexpected exception inside (a bug of the patcher, not of the patch) is reported
        as an INTERNAL rejection rather than crashing the onboard software; the exception is
        kept as the rejection's ``__cause__``, and the fuzz tests require that none occur."""
        try:
            return self._check(data)
        except PatchRejected:
            raise
        except FormatError as exc:
            raise PatchRejected(exc.reason, exc.message, exc.field, exc.offset) from None
        except Exception as exc:  # noqa: BLE001 - the board must outlive a patcher bug
            raise PatchRejected(Reason.INTERNAL, f"internal error while checking: "
                                f"{type(exc).__name__}: {exc}"[:200]) from exc

    def _check(self, data: bytes) -> Accepted:
        profile, store = self.profile, self.store
        if len(data) > self.max_patch_bytes:
            raise _reject(Reason.OVERSIZE, f"{len(data)} bytes exceed the "
                          f"{self.max_patch_bytes} this patcher accepts", None,
                          self.max_patch_bytes)
        parsed, frames = read_envelope(data, profile)
        header, at = parsed.header, parsed.offsets
        if not tag_ok(self._key, data):
            raise _reject(Reason.BAD_TAG, "the tag does not authenticate the patch with this "
                          "mission's key", "tag", len(data) - TAG_BYTES)
        if header.unverified and not self.accept_unverified:
            raise _reject(Reason.UNVERIFIED, "the patch is marked unverified and this "
                          "spacecraft accepts only verified configurations", "flags",
                          at["flags"])
        if header.seq <= store.last_seq:
            raise _reject(Reason.REPLAY, f"sequence number {header.seq} is not above the last "
                          f"accepted {store.last_seq}", "seq", at["seq"])
        if store.phase is not Phase.IDLE:
            raise _reject(Reason.BUSY, f"a configuration is {store.phase.value}; wait for its "
                          f"commit or rollback", None, None)
        current = store.current()
        on_board = hash_prefix(current.config if current else None)
        if not (header.full and header.base_hash == NO_HASH) and header.base_hash != on_board:
            raise _reject(Reason.WRONG_BASE, f"built on configuration "
                          f"{header.base_hash.hex()}, the current one is {on_board.hex()}",
                          "base", at["base"])
        self._check_claims(header, at)
        configuration = rebuild(header, frames, current, profile)
        got = configuration.hash[:HASH_BYTES]
        if got != header.target_hash:
            raise _reject(Reason.HASH_MISMATCH, f"the rebuilt configuration's hash is "
                          f"{got.hex()}, the patch's target is {header.target_hash.hex()}",
                          "target", at["target"])
        code, data_bytes = memory_bytes(configuration.config, configuration.vmlets)
        for name, claimed, actual in (("code", header.claims.code_bytes, code),
                                      ("data", header.claims.data_bytes, data_bytes)):
            if claimed != actual:
                raise _reject(Reason.CLAIM_MISMATCH, f"the configuration takes {actual} "
                              f"{name} bytes, the header claims {claimed}", name, at[name])
        try:
            verify_configuration(configuration, profile)
        except VerifyError as exc:
            raise _reject(Reason.VERIFIER, f"{exc.code}: {exc}", "code") from None
        return Accepted(header, configuration)

    def limits(self) -> PartLimits:
        """What a patch may claim of cycles and share now: the part in force of the
        application this patcher serves (the board's admission rule, ``onboard.vm.board.
        part_limits``)."""
        return self._limits() if self._limits is not None else part_limits(self.profile, None)

    def _check_claims(self, header: Header, at: dict[str, int]) -> None:
        p, c = self.profile, header.claims
        part = self.limits()
        limits = (
            ("cycles", c.cycles_per_frame, part.cycles_per_frame,
             f"cycles per frame ({part.what})"),
            ("share", c.share_bp, part.share_bp, f"basis points of each frame ({part.what})"),
            ("code", c.code_bytes, p.code_bytes, "bytes of code memory"),
            ("data", c.data_bytes, p.data_bytes, "bytes of data memory"),
        )
        for name, claimed, limit, unit in limits:
            if claimed > limit:
                raise _reject(Reason.OVER_BUDGET, f"claims {claimed} {unit}, the limit is "
                              f"{limit}", name, at[name])

    # ------------------------------------------------------------------ applying

    def receive(self, data: bytes) -> Fate:
        """Check a patch and, if it passes, stage it at once. Returns (and logs) its fate.
        (On board, ``onboard.patching.reconfiguration`` runs the same steps paced by the
        reserve.)"""
        self._log(Fate(FateStatus.RECEIVED, message=f"{len(data)} bytes"))
        try:
            accepted = self.check(data)
        except PatchRejected as exc:
            return self.reject(data, exc)
        return self.stage(accepted)

    def reject(self, data: bytes, exc: PatchRejected) -> Fate:
        """Log the rejection of ``data`` (which ``check`` refused with ``exc``)."""
        seq = None
        try:
            seq = parse_header(data).header.seq
        except FormatError:
            pass
        return self._log(Fate(FateStatus.REJECTED, seq, None, exc.reason, exc.message,
                              exc.field, exc.offset))

    def stage(self, accepted: Accepted) -> Fate:
        """Write a checked patch's configuration into the spare slot, with the cycles per
        frame its authenticated header claims (the verifier's proven worst case, checked
        within the tasks' part by ``check``): the board's own record of what it needs."""
        h = accepted.header
        self.store.stage(accepted.configuration, h.seq, h.claims.cycles_per_frame)
        return self._log(Fate(FateStatus.STAGED, h.seq, h.target_hash,
                              message=f"{accepted.configuration.config.name} "
                                      f"v{accepted.configuration.config.version}"
                                      + (" (unverified)" if h.flags & Flag.UNVERIFIED else "")))

    def activate(self) -> Configuration:
        """Switch to the staged configuration (call at a frame boundary); probation starts.
        The VVM then loads it and runs its ``on apply``."""
        config = self.store.activate()
        self._started(config)
        return config

    def switch(self, start: Callable[[Configuration], None]) -> Fate:
        """Switch to the staged configuration (at a frame boundary, or at boot): the journal
        records it on probation first, so a reset from here on rolls it back (a switch that
        crashes the VVM is never retried); then ``start`` loads and starts it. If ``start``
        raises any exception, the switch is rolled back at once, the reason in the fate, and
        the VVM must still run what it ran before. Returns the fate: active or rolled back."""
        config = self.store.activate()
        try:
            start(config)
        except Exception as exc:  # whatever went wrong, the previous configuration runs on
            why = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
            return self.abort(f"the switch failed: {why}")
        return self._started(config)

    def _started(self, config: Configuration) -> Fate:
        """Probation of ``config`` starts: count from zero, log it active."""
        self._clean_frames = 0
        return self._log(Fate(FateStatus.ACTIVE, self.store.state().seq,
                              config.hash[:HASH_BYTES],
                              message=f"probation for {self.probation_frames} frames"))

    @property
    def clean_frames(self) -> int:
        """Frames of probation counted so far."""
        return self._clean_frames

    def count_clean_frames(self, frames: int) -> bool:
        """Count ``frames`` frames of probation without a fault; True once there are
        ``probation_frames`` of them (time to ``commit``)."""
        self._clean_frames += frames
        return self._clean_frames >= self.probation_frames

    def commit(self) -> Fate:
        """Keep the configuration on probation."""
        self.store.commit()
        state = self.store.state()
        return self._log(Fate(FateStatus.COMMITTED, state.seq, _prefix(state.current),
                              message=f"after {self._clean_frames} clean frames"))

    def end_frame(self, *, fault: bool = False, frames: int = 1) -> Fate | None:
        """Count ``frames`` frames of probation (a no-op otherwise): a fault (trap or
        overrun) rolls back, ``probation_frames`` clean frames commit. Returns the fate if it
        changed."""
        if self.store.phase is not Phase.PROBATION:
            return None
        if fault:
            return self.abort("a trap or overrun during probation")
        return self.commit() if self.count_clean_frames(frames) else None

    def abort(self, why: str) -> Fate:
        """Roll back the staged or probationary configuration now."""
        state = self.store.state()
        dropped = state.staged if state.phase is Phase.STAGED else state.current
        self.store.rollback()
        return self._log(Fate(FateStatus.ROLLED_BACK, state.seq, _prefix(dropped),
                              message=why))

    def boot(self, probation: bytes | None = None) -> Fate | None:
        """After a reset: a configuration that was on probation is rolled back (it was not
        confirmed, or its switch crashed). A staged one is left for the caller to ``switch``
        to once the current configuration runs (``onboard.patching.boot``). ``probation``: the hash
        of the configuration the VVM last knew on probation (from its saved state), if any;
        if the store has ended that probation since, its fate is told again (the reset lost
        it). Returns the fate, if any."""
        state = self.store.state()
        if state.phase is Phase.PROBATION:
            return self.abort("reset during probation")
        if probation is None:
            return None
        seq = state.seq if state.phase is Phase.IDLE else None
        if state.current == probation:
            return self._log(Fate(FateStatus.COMMITTED, seq, _prefix(probation),
                                  message="committed before the reset"))
        return self._log(Fate(FateStatus.ROLLED_BACK, seq, _prefix(probation),
                              message="rolled back before the reset"))

    def _log(self, fate: Fate) -> Fate:
        self.fates.append(fate)
        return fate


def _prefix(h: bytes | None) -> bytes | None:
    return None if h is None else h[:HASH_BYTES]
