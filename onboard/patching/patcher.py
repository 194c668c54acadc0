"""The onboard patcher: validates an uplinked patch, rebuilds the configuration it describes,
stages it, and drives activation, probation, commit and rollback.

``Patcher.check`` runs every test in this order, and rejects at the first failure with a
stable ``Reason`` (see ``onboard.patching.patch_format``), the field and the byte offset:

 1. size limit (OVERSIZE)                  8. sequence above the last accepted (REPLAY)
 2. header decode (TRUNCATED, BAD_HEADER)  9. nothing staged or on probation (BUSY)
 3. magic, format version                 10. base hash = the current configuration's
 4. mission id                                 (WRONG_BASE)
 5. spacecraft id                         11. budget claims within this spacecraft's limits
 6. header and section CRCs                    (OVER_BUDGET)
 7. tag, constant-time (BAD_TAG); an      12. decode the sections (BAD_SECTION, BAD_IMAGE)
    unverified patch on a flight          13. rebuild the target from the base (BAD_DELTA,
    spacecraft (UNVERIFIED)                    MISSING_VMLET, CLAIM_MISMATCH)
                                          14. its content hash = the target hash
                                               (HASH_MISMATCH), code and data bytes = the
                                               claims (CLAIM_MISMATCH)
                                          15. the bytecode verifier (VERIFIER)

Steps 12 and 13 decode under a budget fixed from the claims that passed step 11
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
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from onboard.bounded_decoding import Budget, BudgetError
from onboard.errors import OnboardError
from onboard.mission import MissionProfile
from onboard.patching.patch_format import (
    HASH_BYTES,
    NO_HASH,
    REASON_NUMBERS,
    TAG_BYTES,
    Codec,
    Flag,
    FormatError,
    Frame,
    Header,
    ListKind,
    Reason,
    SectionType,
    check_order,
    chunk_length,
    decoding_budget,
    development_key,
    expand,
    expand_chunk,
    hash_prefix,
    memory_bytes,
    parse_body,
    parse_frames,
    parse_header,
    tag_ok,
)
from onboard.patching.store import Configuration, Phase, Store
from onboard.vm.image import (
    CONTENT_HASH_BYTES,
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageError,
    ImageKind,
    Rule,
    Task,
    VmletRef,
    decode_image,
)
from onboard.vm.loader import LoadError
from onboard.vm.machine import Limits, slot_bytes
from onboard.vm.verifier import Target, VerifyError, verify_image

#: Largest patch accepted unless the patcher is told otherwise (bytes).
DEFAULT_MAX_PATCH_BYTES = 64 * 1024

T = TypeVar("T")


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


def empty_config(mission: str) -> Image:
    """The base of a full patch: a configuration with nothing in it."""
    return Image(kind=ImageKind.CONFIG, name="", version=0, mission=mission)


@dataclass
class _Sections:
    """Parsed section payloads of one patch, by type, with the frame each came from."""

    bodies: dict[SectionType, tuple[Any, Frame]] = field(default_factory=dict)
    vmlets: list[Image] = field(default_factory=list)

    def get(self, section: SectionType) -> tuple[Any, Frame] | None:
        return self.bodies.get(section)

    def take(self, section: SectionType) -> tuple[Any, Frame] | None:
        """The section, no longer kept here."""
        return self.bodies.pop(section, None)


def _reject(reason: Reason, message: str, fld: str | None = None,
            offset: int | None = None) -> PatchRejected:
    return PatchRejected(reason, message, fld, offset)


def _merge(kind: ListKind, base: Sequence[T], removed: Sequence[int],
           indices: Sequence[int], new: Sequence[T], frame: Frame | None) -> list[T]:
    """The target list: ``base`` without the ``removed`` indices, with the ``new`` elements
    at their target ``indices`` (strictly increasing), the kept ones filling the rest in
    order."""
    where = frame.offset if frame is not None else None
    name = kind.name.lower()
    last = -1
    for i in removed:
        if not last < i < len(base):
            raise _reject(Reason.BAD_DELTA, f"removal of {name} entry {i}: indices must "
                          f"increase and name one of the base's {len(base)}",
                          "removals.indices", where)
        last = i
    total = len(base) - len(removed) + len(new)
    last = -1
    for i in indices:
        if not last < i < total:
            raise _reject(Reason.BAD_DELTA, f"new {name} entry at index {i}: indices must "
                          f"increase and stay below the target's {total} entries",
                          f"{name}.index", where)
        last = i
    gone = set(removed)
    kept = (e for i, e in enumerate(base) if i not in gone)
    out: list[T] = []
    for i, e in zip(indices, new, strict=True):
        while len(out) < i:
            out.append(next(kept))
        out.append(e)
    out.extend(kept)
    return out


def rebuild(header: Header, frames: Sequence[Frame], base: Configuration | None,
            profile: MissionProfile) -> Configuration:
    """The configuration a patch describes: its sections applied to the base (the empty
    configuration for a full patch), with the VMlets it uses, carried or held on board.
    Raises ``PatchRejected``.

    ``base`` is the configuration on board: a delta applies to its image, and the VMlets it
    holds may be used by the target without being carried. What decoding may allocate is
    bounded by the header's claims (``decoding_budget``) before any section is decoded.
    """
    image, carried = rebuild_image(header, frames, base, profile)
    available = [*carried, *(base.vmlets if base is not None else ())]
    vmlets = []
    for u in image.uses:
        found = next((v for v in available if v.name == u.name and v.version == u.version
                      and v.content_hash[:len(u.hash)] == u.hash), None)
        if found is None:
            raise _reject(Reason.MISSING_VMLET, f"the configuration uses `{u.name}` "
                          f"v{u.version} ({u.hash.hex()[:16]}), which is neither in the patch "
                          f"nor on board", "uses")
        vmlets.append(found)
    return Configuration(image, tuple(vmlets))


def rebuild_image(header: Header, frames: Sequence[Frame], base: Configuration | None,
                  profile: MissionProfile) -> tuple[Image, list[Image]]:
    """The target image of a patch and the VMlet images it carries (see ``rebuild``); only
    ``base``'s image is needed, not its VMlets."""
    held_refs = list(base.config.uses) if base is not None else []
    base_image = empty_config(profile.name) if header.full or base is None else base.config
    budget = decoding_budget(header.claims, sum(f.size for f in frames))
    sections = _parse_sections(frames, profile, budget, base_image)
    carried = sections.vmlets
    removals = _removals(sections)

    def merged(kind: ListKind, items: Sequence[T], got: tuple[Any, Frame] | None,
               make: Callable[[Any], T], attr: str | None = None) -> list[T]:
        entries: Sequence[Any] = ()
        frame = None
        if got is not None:
            body, frame = got
            entries = getattr(body, attr) if attr else body
        removed, rframe = removals.get(kind, ((), None))
        return _merge(kind, items, removed, [e.index for e in entries],
                      [make(e) for e in entries], frame or rframe)

    # VMlet references: an empty hash means the carried or held VMlet of that name/version
    # (the configuration on board pins the VMlets it holds by its own references).
    uses_at = _frame_at(sections, SectionType.USES)

    def ref(e: Any) -> VmletRef:
        if e.hash:
            if len(e.hash) != CONTENT_HASH_BYTES:
                raise _reject(Reason.BAD_SECTION, f"USES: the hash of `{e.name}` has "
                              f"{len(e.hash)} bytes; a VMlet's content hash has "
                              f"{CONTENT_HASH_BYTES} (or none: empty)", "uses.hash", uses_at)
            return VmletRef(e.name, e.version, bytes(e.hash))
        for v in carried:
            if v.name == e.name and v.version == e.version:
                return VmletRef(e.name, e.version, v.content_hash)
        for u in held_refs:
            if u.name == e.name and u.version == e.version:
                return u
        raise _reject(Reason.MISSING_VMLET, f"uses `{e.name}` v{e.version}, which is neither "
                      f"in the patch nor on board", "uses.hash", uses_at)

    # Each decoded body is dropped once merged (``take``), so that a long list is never
    # held twice over, as entries and as the image's objects.
    uses = merged(ListKind.USES, base_image.uses, sections.take(SectionType.USES), ref)
    glob = sections.take(SectionType.GLOBALS)
    new_globals: list[Global] = []
    indices: list[int] = []
    if glob is not None:
        body, _ = glob
        indices = [e.index for e in body.entries]
        new_globals = [Global(e.name, bool(e.writable), e.lo, e.hi, v)
                       for e, v in zip(body.entries, body.packed, strict=True)]
    removed, rframe = removals.get(ListKind.GLOBALS, ((), None))
    globals_ = _merge(ListKind.GLOBALS, base_image.globals, removed, indices, new_globals,
                      glob[1] if glob else rframe)
    del glob, new_globals, indices
    globals_ = _apply_params(sections, globals_, budget)

    arrays = _arrays(sections, base_image, removals, len(globals_), header, budget)
    imports = sections.take(SectionType.IMPORTS)
    natives = merged(ListKind.NATIVES, base_image.natives, imports, lambda e: str(e.name),
                     "natives")
    env = merged(ListKind.ENV, base_image.env, imports, lambda e: str(e.name), "env")
    ext = merged(ListKind.EXT, base_image.ext, imports, lambda e: ExtRef(e.vmlet, e.instr),
                 "ext")
    del imports
    functions = merged(ListKind.FUNCTIONS, base_image.functions,
                       sections.take(SectionType.CODE),
                       lambda e: CodeUnit(e.name, e.n_params, e.n_locals, bool(e.returns),
                                          e.max_stack, bytes(e.code)))
    tasks = merged(ListKind.TASKS, base_image.tasks, sections.take(SectionType.TASKS),
                   lambda e: Task(e.name, e.period_ms, e.function))
    rules = merged(ListKind.RULES, base_image.rules, sections.take(SectionType.RULES),
                   lambda e: Rule(e.text, e.function))
    identity = sections.get(SectionType.IDENTITY)
    entries = sections.get(SectionType.ENTRIES)
    on_apply = base_image.on_apply
    if entries is not None:
        on_apply = entries[0].on_apply - 1 if entries[0].on_apply else None
    image = Image(
        kind=ImageKind.CONFIG,
        name=identity[0].name if identity is not None else base_image.name,
        version=header.version,
        mission=profile.name,
        uses=tuple(uses), globals=tuple(globals_), arrays=tuple(arrays),
        natives=tuple(natives), env=tuple(env), ext=tuple(ext), functions=tuple(functions),
        tasks=tuple(tasks), rules=tuple(rules), on_apply=on_apply,
    )
    return image, carried


def _frame_at(sections: _Sections, section: SectionType) -> int | None:
    got = sections.get(section)
    return got[1].offset if got is not None else None


def _parse_sections(frames: Sequence[Frame], profile: MissionProfile, budget: Budget,
                    base: Image) -> _Sections:
    """Decompress and decode every section that needs no declarations of the target
    (PARAMS and ROWS are decoded once the target's globals and arrays are known), drawing
    on ``budget``; REMOVALS is bounded by the ``base``'s list lengths."""
    out = _Sections()
    base_lengths = {ListKind.USES: len(base.uses), ListKind.GLOBALS: len(base.globals),
                    ListKind.ARRAYS: len(base.arrays), ListKind.NATIVES: len(base.natives),
                    ListKind.ENV: len(base.env), ListKind.EXT: len(base.ext),
                    ListKind.FUNCTIONS: len(base.functions), ListKind.TASKS: len(base.tasks),
                    ListKind.RULES: len(base.rules)}
    for frame, (section, codec) in zip(frames, check_order(frames), strict=True):
        payload = expand(frame, codec, budget=budget)
        if section is SectionType.VMLET:
            out.vmlets.append(_vmlet(payload, frame, codec, profile, budget))
            continue
        if section in (SectionType.PARAMS, SectionType.ROWS):
            out.bodies[section] = (payload, frame)
            continue
        out.bodies[section] = (parse_body(section, payload, frame, budget=budget,
                                          base_lengths=base_lengths), frame)
    return out


def _vmlet(payload: bytes, frame: Frame, codec: Codec, profile: MissionProfile,
           budget: Budget) -> Image:
    try:
        image = decode_image(payload, max_elements=budget.left("values"))
    except ImageError as exc:
        inner = exc.offset or 0
        at = frame.payload_offset + (inner if codec is Codec.NONE else 0)
        raise _reject(Reason.BAD_IMAGE, f"carried VMlet: {exc.message}", "vmlet", at) \
            from None
    if image.kind is not ImageKind.VMLET:
        raise _reject(Reason.BAD_IMAGE, f"carried image `{image.name}` is not a VMlet",
                      "vmlet.kind", frame.payload_offset)
    if image.mission != profile.name:
        raise _reject(Reason.BAD_IMAGE, f"carried VMlet `{image.name}` is for mission "
                      f"`{image.mission}`", "vmlet.mission", frame.payload_offset)
    try:
        budget.take("values", sum(a.length for a in image.arrays), "the carried VMlet")
        budget.take("code", image.code_bytes(), f"carried VMlet `{image.name}`")
    except BudgetError as exc:
        claim = "data" if exc.resource == "values" else "code"
        raise _reject(Reason.CLAIM_MISMATCH, f"{exc} (the header's {claim} claim)",
                      "vmlet", frame.payload_offset) from None
    return image


def _removals(sections: _Sections) -> dict[ListKind, tuple[list[int], Frame]]:
    got = sections.get(SectionType.REMOVALS)
    if got is None:
        return {}
    body, frame = got
    out: dict[ListKind, tuple[list[int], Frame]] = {}
    for group in body:
        try:
            kind = ListKind(group.list)
        except ValueError:
            raise _reject(Reason.BAD_SECTION, f"REMOVALS: unknown list {group.list}",
                          "removals.list", frame.offset) from None
        if kind in out:
            raise _reject(Reason.BAD_SECTION, f"REMOVALS: list {kind.name} twice",
                          "removals.list", frame.offset)
        out[kind] = (list(group.indices), frame)
    return out


def _declared(sections: _Sections, section: SectionType, **params: Any,
              ) -> tuple[Any, Frame] | None:
    """Decode PARAMS or ROWS, now that the target's declarations are known (they bound the
    indices and the rows)."""
    got = sections.take(section)
    if got is None:
        return None
    payload, frame = got
    return parse_body(section, payload, frame, **params), frame


def _apply_params(sections: _Sections, globals_: list[Global], budget: Budget,
                  ) -> list[Global]:
    got = _declared(sections, SectionType.PARAMS, budget=budget,
                    global_ranges=[(g.lo, g.hi) for g in globals_])
    if got is None:
        return globals_
    out = list(globals_)
    for i, v in zip(got[0].indices, got[0].packed, strict=True):
        g = out[i]
        out[i] = Global(g.name, g.writable, g.lo, g.hi, v)
    return out


def _arrays(sections: _Sections, base: Image, removals: dict[ListKind, tuple[list[int], Frame]],
            n_globals: int, header: Header, budget: Budget) -> list[Array]:
    """The target's arrays: merged from the base's and the ARRAYS section, then ROWS."""
    got = sections.take(SectionType.ARRAYS)
    entries = got[0] if got is not None else []
    removed, rframe = removals.get(ListKind.ARRAYS, ([], None))
    frame = got[1] if got is not None else rframe
    # Bound memory before expanding repeat chunks: the data claim was checked against the
    # spacecraft's limits, so a patch cannot make us allocate more than that. (Decoding
    # ARRAYS already bounded the new arrays' lengths and their chunks.) Every global and
    # element takes at least one byte (the machine model's ``slot_bytes``).
    gone = set(removed)
    needs = n_globals + sum(slot_bytes(a.lo, a.hi) * a.length
                            for i, a in enumerate(base.arrays) if i not in gone) \
        + sum(slot_bytes(e.lo, e.hi) * e.length for e in entries)
    if needs > header.claims.data_bytes:
        raise _reject(Reason.CLAIM_MISMATCH, f"the data needs at least {needs} bytes, "
                      f"the header claims {header.claims.data_bytes}", "data",
                      frame.offset if frame is not None else None)
    new = []
    for e in entries:
        values: list[int] = []
        for c in e.chunks:
            values.extend(expand_chunk(c))
        new.append(Array(e.name, bool(e.writable), e.lo, e.hi, tuple(values)))
    merged = _merge(ListKind.ARRAYS, base.arrays, removed, [e.index for e in entries], new,
                    frame)
    del entries, got, new
    return _apply_rows(sections, merged, budget)


def _apply_rows(sections: _Sections, arrays: list[Array], budget: Budget) -> list[Array]:
    got = _declared(sections, SectionType.ROWS, budget=budget,
                    array_ranges=[(a.lo, a.hi) for a in arrays],
                    array_lengths=[a.length for a in arrays])
    if got is None:
        return arrays
    body, frame = got
    for e in body:
        a = arrays[e.index]
        values = list(a.values)
        pos = 0
        for run in e.runs:  # decoding kept every run inside the array
            start = pos + run.skip
            end = start + chunk_length(run)
            values[start:end] = expand_chunk(run)
            pos = end
        arrays[e.index] = Array(a.name, a.writable, a.lo, a.hi, tuple(values))
    return arrays


# --------------------------------------------------------------------------- verification


def verify_configuration(configuration: Configuration, profile: MissionProfile) -> None:
    """Run the load-time bytecode verifier over a configuration's VMlets and then the
    configuration on them, as the loader will (but before their ``on load`` runs, which may
    hide more natives at activation). Raises ``VerifyError``."""
    target = Target.of(profile)
    for v in configuration.vmlets:
        verify_image(v, target)
    verify_image(configuration.config, target, vmlets=configuration.vmlets)


# --------------------------------------------------------------------------- the patcher


class Patcher:
    """Validates and applies patches for one spacecraft, over its ``Store``."""

    def __init__(self, profile: MissionProfile, store: Store, key: bytes, *,
                 probation_frames: int | None = None,
                 max_patch_bytes: int = DEFAULT_MAX_PATCH_BYTES,
                 accept_unverified: bool | None = None) -> None:
        """``probation_frames`` defaults to the profile's, ``accept_unverified`` to ``not
        profile.flight``. Raises ``KeyRefused`` for the development key on a flight
        profile."""
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
        frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
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

    def _check_claims(self, header: Header, at: dict[str, int]) -> None:
        p, c = self.profile, header.claims
        limits = (
            ("cycles", c.cycles_per_frame,
             Limits.of(p).frame_budget,
             "cycles per frame (the share less the patch reserve)"),
            ("share", c.share_bp, p.share_percent * 100, "basis points of each frame"),
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
        """Write a checked patch's configuration into the spare slot."""
        h = accepted.header
        self.store.stage(accepted.configuration, h.seq)
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
