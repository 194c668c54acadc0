"""The delta codec: what a patch's sections mean for an image, in both directions.

``onboard.patching.patch_format`` defines the bytes of each section; this module maps an
image onto them and back:

* ``encode_sections`` (the ground, ``ccl.pack``): the section payloads that turn a base
  image into a target image. What it leaves open (which entries of a list to keep, how to
  chunk table values) are the ground's ``Choices``.
* ``apply_sections`` (the board, ``onboard.patching.patcher``; and ``ccl inspect``): the
  target image a patch's sections make of a base image, and the VMlets it carries.

Both read the same table of the image's lists (``LISTS``): which image field a list is,
the section its new entries travel in, their record fields (``onboard.vm.image``'s own
field lists, shared with the image format), and what an entry that a delta keeps must keep.

A full patch is the delta from ``empty_config``, so both kinds are written and read by the
same code. Reading never trusts its input: every failure is a ``FormatError`` with a reason,
the field and the byte offset, and what decoding may allocate is bounded by the header's
claims (``decoding_budget``) before any section is decoded.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from onboard.bounded_decoding import Budget, BudgetError
from onboard.mission import MissionProfile
from onboard.patching.patch_format import (
    FORMAT_VERSION,
    Codec,
    FormatError,
    Frame,
    Header,
    ListKind,
    Reason,
    SectionType,
    build_body,
    check_order,
    chunk_length,
    decoding_budget,
    expand,
    expand_chunk,
    parse_body,
    unbundle,
)
from onboard.vm.image import (
    CODE_UNIT_SHAPE,
    CONTENT_HASH_BYTES,
    DECLARATION,
    EXT_FIELDS,
    RULE_FIELDS,
    TASK_FIELDS,
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
from onboard.vm.machine import slot_bytes

T = TypeVar("T")


def empty_config(mission: str) -> Image:
    """The configuration with nothing in it: the base of a full patch, and what a
    satellite without a configuration holds."""
    return Image(kind=ImageKind.CONFIG, name="", version=0, mission=mission)


# --------------------------------------------------------------------------- the lists


def _declaration(entry: Global | Array) -> tuple[str, bool, int, int]:
    return (entry.name, entry.writable, entry.lo, entry.hi)


def _same(entry: Any) -> Hashable:
    return entry  # type: ignore[no-any-return]


def _names(fields: Sequence[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


@dataclass(frozen=True)
class EntryList:
    """One list of an image as a delta edits it (REMOVALS names it by ``kind``)."""

    kind: ListKind
    attr: str  # the ``Image`` field that holds it
    section: SectionType  # the section its new entries travel in
    #: What a kept entry keeps: a kept global or array receives only new values (PARAMS,
    #: ROWS), so its declaration must be the same; any other entry is kept only if equal.
    key: Callable[[Any], Hashable] = _same
    group: str | None = None  # the IMPORTS sub-list, for the three import tables
    #: The record's fields after the index, read from (and made into) the image's entries;
    #: empty for the lists with their own encoding (uses, globals, arrays).
    fields: tuple[str, ...] = ()
    make: Callable[..., Any] | None = None  # an image entry from the record's fields

    def record(self, index: int, entry: Any) -> dict[str, Any]:
        """The section record of a new ``entry`` at target ``index``."""
        if isinstance(entry, str):  # natives and environment keys: the name alone
            return {"index": index, "name": entry}
        return {"index": index, **{name: getattr(entry, name) for name in self.fields}}

    def entry(self, record: Any) -> Any:
        """The image entry a decoded section record describes."""
        assert self.make is not None
        return self.make(*(getattr(record, name) for name in self.fields))


def _name(name: str) -> str:
    return name


#: Every list a delta edits, in ``ListKind`` order (the order REMOVALS lists them in, and
#: the order the lists are merged in when a patch is read).
LISTS = (
    EntryList(ListKind.USES, "uses", SectionType.USES),
    EntryList(ListKind.GLOBALS, "globals", SectionType.GLOBALS, _declaration),
    EntryList(ListKind.ARRAYS, "arrays", SectionType.ARRAYS,
              lambda a: (*_declaration(a), a.length)),
    EntryList(ListKind.NATIVES, "natives", SectionType.IMPORTS, group="natives",
              fields=("name",), make=_name),
    EntryList(ListKind.ENV, "env", SectionType.IMPORTS, group="env", fields=("name",),
              make=_name),
    EntryList(ListKind.EXT, "ext", SectionType.IMPORTS, group="ext",
              fields=_names(EXT_FIELDS), make=ExtRef),
    EntryList(ListKind.FUNCTIONS, "functions", SectionType.CODE,
              fields=(*_names(CODE_UNIT_SHAPE), "code"), make=CodeUnit),
    EntryList(ListKind.TASKS, "tasks", SectionType.TASKS, fields=_names(TASK_FIELDS),
              make=Task),
    EntryList(ListKind.RULES, "rules", SectionType.RULES, fields=_names(RULE_FIELDS),
              make=Rule),
)
#: The lists whose entries travel whole, one record each (imports, code, tasks, rules).
PLAIN_LISTS = tuple(lst for lst in LISTS if lst.make is not None)
_DECLARATION_NAMES = _names(DECLARATION)
_BY_KIND = {lst.kind: lst for lst in LISTS}


# --------------------------------------------------------------------------- writing


#: An alignment of two lists of keys: (removed base indices, new target indices, kept
#: pairs (base index, target index)). Removing and then inserting the new entries at
#: their indices must give the target (``apply_sections`` does exactly that).
Alignment = tuple[list[int], list[int], list[tuple[int, int]]]


@dataclass(frozen=True)
class Choices:
    """What the codec leaves to the ground: any choice gives a patch that rebuilds the
    target, some smaller than others."""

    #: Which entries a delta keeps, drops and adds, given the base's and the target's keys.
    align: Callable[[Sequence[Hashable], Sequence[Hashable]], Alignment]
    #: The chunks (``patch_format.make_chunk``) of a new array's values in ``int[lo..hi]``.
    table: Callable[[Sequence[int], int, int], list[dict[str, Any]]]
    #: The runs (chunks with skips) of a kept array's changed values: (base, target, lo, hi).
    rows: Callable[[Sequence[int], Sequence[int], int, int], list[dict[str, Any]]]
    #: The Rice parameter for the gaps between a kept array's changed rows (SCATTERED);
    #: None: changed rows always travel as runs (ROWS). An array's changed rows travel in
    #: whichever of the two takes fewer bytes.
    rice: Callable[[Sequence[int]], int] | None = None


def encode_sections(target: Image, vmlets: Sequence[Image], base: Image,
                    held: Sequence[Image], choices: Choices,
                    ) -> list[tuple[SectionType, bytes]]:
    """The section payloads (uncompressed, in type order) that turn ``base`` into
    ``target``. ``held`` are the VMlet images the satellite holds (the base
    configuration's); ``vmlets`` those the target uses, which are carried unless held."""
    aligned = {lst.kind: choices.align([lst.key(e) for e in getattr(base, lst.attr)],
                                       [lst.key(e) for e in getattr(target, lst.attr)])
               for lst in LISTS}
    new = {kind: a[1] for kind, a in aligned.items()}
    out: list[tuple[SectionType, bytes]] = []

    def add(section: SectionType, value: Any, **params: Any) -> None:
        out.append((section, build_body(section, value, **params)))

    if target.name != base.name:
        add(SectionType.IDENTITY, {"name": target.name})
    held_hashes = {v.content_hash for v in held}
    carried = [v for v in vmlets if v.content_hash not in held_hashes]
    if new[ListKind.USES]:
        add(SectionType.USES, [_uses_record(j, target.uses[j], [*carried, *held])
                               for j in new[ListKind.USES]])
    out.extend((SectionType.VMLET, v.encode()) for v in carried)
    removals = [{"list": int(kind), "indices": a[0]} for kind, a in aligned.items() if a[0]]
    if removals:
        add(SectionType.REMOVALS, removals)
    out.extend(_value_sections(target, base, aligned, choices))
    imports = {lst.group: [lst.record(j, getattr(target, lst.attr)[j]) for j in new[lst.kind]]
               for lst in PLAIN_LISTS if lst.group is not None}
    if any(imports.values()):
        add(SectionType.IMPORTS, imports)
    for lst in PLAIN_LISTS:
        if lst.group is None and new[lst.kind]:
            add(lst.section, [lst.record(j, getattr(target, lst.attr)[j])
                              for j in new[lst.kind]])
    if target.on_apply != base.on_apply:
        add(SectionType.ENTRIES, {"on_apply": 0 if target.on_apply is None
                                  else target.on_apply + 1})
    return out


def _uses_record(index: int, ref: VmletRef, available: Sequence[Image]) -> dict[str, Any]:
    """A USES record: the hash is left implied (empty) when the VMlet of that name and
    version carried or held is the one referenced."""
    source = next((v for v in available if v.name == ref.name and v.version == ref.version),
                  None)
    implied = source is not None and source.content_hash == ref.hash
    return {"index": index, "name": ref.name, "version": ref.version,
            "hash": b"" if implied else ref.hash}


def _value_sections(target: Image, base: Image, aligned: dict[ListKind, Alignment],
                    choices: Choices) -> list[tuple[SectionType, bytes]]:
    """GLOBALS, PARAMS, ARRAYS and ROWS: new globals and arrays with their values, new
    values of kept ones."""
    out: list[tuple[SectionType, bytes]] = []
    _, new_g, kept_g = aligned[ListKind.GLOBALS]
    _, new_a, kept_a = aligned[ListKind.ARRAYS]
    if new_g:
        out.append((SectionType.GLOBALS, build_body(SectionType.GLOBALS, {
            "entries": [{"index": j, **_fields(target.globals[j])} for j in new_g],
            "packed": [target.globals[j].value for j in new_g]})))
    changed = [j for i, j in kept_g if base.globals[i].value != target.globals[j].value]
    if changed:
        out.append((SectionType.PARAMS, build_body(
            SectionType.PARAMS, {"indices": changed,
                                 "packed": [target.globals[j].value for j in changed]},
            global_ranges=[(g.lo, g.hi) for g in target.globals])))
    if new_a:
        out.append((SectionType.ARRAYS, build_body(SectionType.ARRAYS, [
            {"index": j, **_fields(a), "length": a.length,
             "chunks": choices.table(a.values, a.lo, a.hi)}
            for j, a in ((j, target.arrays[j]) for j in new_a)])))
    ranges = {"array_ranges": [(a.lo, a.hi) for a in target.arrays]}
    rows: list[dict[str, Any]] = []
    scattered: list[dict[str, Any]] = []
    for i, j in kept_a:
        old, now = base.arrays[i].values, target.arrays[j].values
        if old == now:
            continue
        a = target.arrays[j]
        runs = {"index": j, "runs": choices.rows(old, now, a.lo, a.hi)}
        if choices.rice is None:
            rows.append(runs)
            continue
        changed = [k for k, (u, v) in enumerate(zip(old, now, strict=True)) if u != v]
        gaps = [b - c - 1 for c, b in zip([-1, *changed[:-1]], changed, strict=True)]
        sparse = {"index": j, "rows": changed, "rice": choices.rice(gaps),
                  "values": [now[k] for k in changed]}
        # What each adds to its section (a SCATTERED entry may reuse the previous one's
        # rows, so its cost depends on what is already there).
        as_runs = len(build_body(SectionType.ROWS, [runs], **ranges)) - 1
        before = len(build_body(SectionType.SCATTERED, scattered, **ranges))
        as_sparse = len(build_body(SectionType.SCATTERED, [*scattered, sparse], **ranges)) \
            - before
        if as_sparse < as_runs:
            scattered.append(sparse)
        else:
            rows.append(runs)
    if rows:
        out.append((SectionType.ROWS, build_body(SectionType.ROWS, rows, **ranges)))
    if scattered:
        out.append((SectionType.SCATTERED,
                    build_body(SectionType.SCATTERED, scattered, **ranges)))
    return out


def _fields(entry: Global | Array) -> dict[str, Any]:
    """The declaration fields of a global or array (its values travel apart)."""
    return {name: getattr(entry, name) for name in _DECLARATION_NAMES}


# --------------------------------------------------------------------------- reading


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

    def offset(self, section: SectionType) -> int | None:
        """Where the section's frame starts, if the patch has one."""
        got = self.bodies.get(section)
        return got[1].offset if got is not None else None


#: Removed base indices per list, with the REMOVALS frame (for offsets).
_Removals = dict[ListKind, tuple[list[int], Frame]]


def apply_sections(header: Header, frames: Sequence[Frame], on_board: Image | None,
                   profile: MissionProfile, primer: bytes | None = None,
                   ) -> tuple[Image, list[Image]]:
    """The target image a patch's sections make, and the VMlet images it carries. A delta
    applies to ``on_board`` (the configuration on board), a full patch to the empty
    configuration; either may leave the hash of a VMlet the configuration on board uses
    implied. ``primer``: what primed MODEL payloads learnt first (``vmlet_primer`` of the
    base's VMlets; None: none is known, and a primed payload is refused). Raises
    ``FormatError``.

    What decoding may allocate is bounded by the header's claims (``decoding_budget``)
    before any section is decoded; each decoded body is dropped once merged, so that a long
    list is never held twice over, as records and as the image's entries."""
    base = empty_config(profile.name) if header.full or on_board is None else on_board
    budget = decoding_budget(header.claims, sum(f.size for f in frames))
    if header.format < FORMAT_VERSION:
        for f in frames:
            if f.type_code == SectionType.BUNDLE or f.codec_code == Codec.MODEL:
                what = "BUNDLE section" if f.type_code == SectionType.BUNDLE \
                    else "MODEL-coded section"
                raise FormatError(Reason.BAD_SECTION, f"a {what} in a format-"
                                  f"{header.format} patch (format {FORMAT_VERSION} added it)",
                                  "section.kind", f.offset)
    sections = _parse_sections(frames, profile, budget, base, primer)
    scattered = sections.offset(SectionType.SCATTERED)
    if scattered is not None and header.format < FORMAT_VERSION:
        raise FormatError(Reason.BAD_SECTION, f"a SCATTERED section in a format-"
                          f"{header.format} patch (format {FORMAT_VERSION} added it)",
                          "section.kind", scattered)
    removals = _removals(sections)
    ref = _uses_reader(sections, on_board)  # before USES is taken: its errors name its offset
    uses = _merged(_BY_KIND[ListKind.USES], base.uses, sections.take(SectionType.USES),
                   removals, ref)
    globals_ = _apply_params(sections, _globals(sections, base, removals), budget)
    arrays = _apply_scattered(sections, _apply_rows(
        sections, _arrays(sections, base, removals, len(globals_), header, budget), budget),
        budget)
    lists: dict[str, Any] = {}  # the plain lists, by ``Image`` field
    imports = sections.take(SectionType.IMPORTS)
    for lst in PLAIN_LISTS:
        got = imports if lst.group is not None else sections.take(lst.section)
        lists[lst.attr] = tuple(_merged(lst, getattr(base, lst.attr), got, removals,
                                        lst.entry))
    del imports
    identity = sections.get(SectionType.IDENTITY)
    entries = sections.get(SectionType.ENTRIES)
    on_apply = base.on_apply
    if entries is not None:
        on_apply = entries[0].on_apply - 1 if entries[0].on_apply else None
    image = Image(
        kind=ImageKind.CONFIG,
        name=identity[0].name if identity is not None else base.name,
        version=header.version, mission=profile.name,
        uses=tuple(uses), globals=tuple(globals_), arrays=tuple(arrays), on_apply=on_apply,
    )
    return replace(image, **lists), sections.vmlets


def _uses_reader(sections: _Sections, on_board: Image | None) -> Callable[[Any], VmletRef]:
    """The VMlet reference a USES record names: an empty hash means the carried VMlet of
    that name and version, else the one the configuration on board pins."""
    at = sections.offset(SectionType.USES)
    held = on_board.uses if on_board is not None else ()

    def ref(e: Any) -> VmletRef:
        if e.hash:
            if len(e.hash) != CONTENT_HASH_BYTES:
                raise FormatError(Reason.BAD_SECTION, f"USES: the hash of `{e.name}` has "
                                  f"{len(e.hash)} bytes; a VMlet's content hash has "
                                  f"{CONTENT_HASH_BYTES} (or none: empty)", "uses.hash", at)
            return VmletRef(e.name, e.version, bytes(e.hash))
        for v in sections.vmlets:
            if v.name == e.name and v.version == e.version:
                return VmletRef(e.name, e.version, v.content_hash)
        for u in held:
            if u.name == e.name and u.version == e.version:
                return u
        raise FormatError(Reason.MISSING_VMLET, f"uses `{e.name}` v{e.version}, which is "
                          f"neither in the patch nor on board", "uses.hash", at)

    return ref


def _merged(lst: EntryList, items: Sequence[T], got: tuple[Any, Frame] | None,
            removals: _Removals, make: Callable[[Any], T]) -> list[T]:
    """A list of the target: ``items`` (the base's) edited by the patch's removals and the
    new records of ``got`` (the list's section, if the patch has it)."""
    records: Sequence[Any] = ()
    frame = None
    if got is not None:
        body, frame = got
        records = getattr(body, lst.group) if lst.group else body
    removed, rframe = removals.get(lst.kind, ((), None))
    return merge(lst.kind, items, removed, [e.index for e in records],
                 [make(e) for e in records], frame or rframe)


def merge(kind: ListKind, base: Sequence[T], removed: Sequence[int],
          indices: Sequence[int], new: Sequence[T], frame: Frame | None) -> list[T]:
    """The target list: ``base`` without the ``removed`` indices, with the ``new`` elements
    at their target ``indices`` (strictly increasing), the kept ones filling the rest in
    order. BAD_DELTA if the indices do not fit."""
    where = frame.offset if frame is not None else None
    name = kind.name.lower()
    last = -1
    for i in removed:
        if not last < i < len(base):
            raise FormatError(Reason.BAD_DELTA, f"removal of {name} entry {i}: indices must "
                              f"increase and name one of the base's {len(base)}",
                              "removals.indices", where)
        last = i
    total = len(base) - len(removed) + len(new)
    last = -1
    for i in indices:
        if not last < i < total:
            raise FormatError(Reason.BAD_DELTA, f"new {name} entry at index {i}: indices "
                              f"must increase and stay below the target's {total} entries",
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


def read_sections(frames: Sequence[Frame], budget: Budget | None = None,
                  base_lengths: Mapping[ListKind, int] | None = None,
                  primer: bytes | None = None,
                  ) -> Iterator[tuple[Frame, SectionType, Codec, bytes, Any]]:
    """Each section in order (those of a BUNDLE, unbundled): its frame, type, codec,
    decompressed payload and decoded body.
    The body is None for VMLET (an image) and for PARAMS, ROWS and SCATTERED, decoded once
    the target's declarations are known. Decompression and decoding draw on ``budget``
    (without one, the format's own limits); REMOVALS is bounded by ``base_lengths``, the
    base's list lengths (without them, by the format's limit). Raises ``FormatError``."""
    params: dict[str, Any] = {} if budget is None else {"budget": budget}
    if base_lengths is not None:
        params["base_lengths"] = base_lengths
    frames = unbundle(frames, budget, primer)
    for frame, (section, codec) in zip(frames, check_order(frames), strict=True):
        payload = expand(frame, codec, budget=budget, primer=primer)
        body = None
        if section not in (SectionType.VMLET, SectionType.PARAMS, SectionType.ROWS,
                           SectionType.SCATTERED):
            body = parse_body(section, payload, frame, **params)
        yield frame, section, codec, payload, body


def _parse_sections(frames: Sequence[Frame], profile: MissionProfile, budget: Budget,
                    base: Image, primer: bytes | None) -> _Sections:
    """Decompress and decode every section that needs no declarations of the target,
    drawing on ``budget``, and check the carried VMlets; PARAMS, ROWS and SCATTERED are
    kept as payloads."""
    out = _Sections()
    base_lengths = {lst.kind: len(getattr(base, lst.attr)) for lst in LISTS}
    for frame, section, codec, payload, body in read_sections(frames, budget, base_lengths,
                                                              primer):
        if section is SectionType.VMLET:
            out.vmlets.append(_vmlet(payload, frame, codec, profile, budget))
        else:
            out.bodies[section] = (payload if body is None else body, frame)
    return out


def _vmlet(payload: bytes, frame: Frame, codec: Codec, profile: MissionProfile,
           budget: Budget) -> Image:
    """A carried VMlet: a well-formed VMlet image of this mission, within the claims."""
    try:
        image = decode_image(payload, max_elements=budget.left("values"))
    except ImageError as exc:
        inner = exc.offset or 0
        at = frame.payload_offset + (inner if codec is Codec.NONE else 0)
        raise FormatError(Reason.BAD_IMAGE, f"carried VMlet: {exc.message}", "vmlet", at) \
            from None
    if image.kind is not ImageKind.VMLET:
        raise FormatError(Reason.BAD_IMAGE, f"carried image `{image.name}` is not a VMlet",
                          "vmlet.kind", frame.payload_offset)
    if image.mission != profile.name:
        raise FormatError(Reason.BAD_IMAGE, f"carried VMlet `{image.name}` is for mission "
                          f"`{image.mission}`", "vmlet.mission", frame.payload_offset)
    try:
        budget.take("values", sum(a.length for a in image.arrays), "the carried VMlet")
        budget.take("code", image.code_bytes(), f"carried VMlet `{image.name}`")
    except BudgetError as exc:
        claim = "data" if exc.resource == "values" else "code"
        raise FormatError(Reason.CLAIM_MISMATCH, f"{exc} (the header's {claim} claim)",
                          "vmlet", frame.payload_offset) from None
    return image


def _removals(sections: _Sections) -> _Removals:
    got = sections.get(SectionType.REMOVALS)
    if got is None:
        return {}
    body, frame = got
    out: _Removals = {}
    for group in body:
        try:
            kind = ListKind(group.list)
        except ValueError:
            raise FormatError(Reason.BAD_SECTION, f"REMOVALS: unknown list {group.list}",
                              "removals.list", frame.offset) from None
        if kind in out:
            raise FormatError(Reason.BAD_SECTION, f"REMOVALS: list {kind.name} twice",
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


def _globals(sections: _Sections, base: Image, removals: _Removals) -> list[Global]:
    """The target's globals: the base's, edited by REMOVALS and GLOBALS (declarations
    with their bit-packed values)."""
    glob = sections.take(SectionType.GLOBALS)
    new: list[Global] = []
    indices: list[int] = []
    if glob is not None:
        body, _ = glob
        indices = [e.index for e in body.entries]
        new = [Global(e.name, e.writable, e.lo, e.hi, v)
               for e, v in zip(body.entries, body.packed, strict=True)]
    removed, rframe = removals.get(ListKind.GLOBALS, ((), None))
    return merge(ListKind.GLOBALS, base.globals, removed, indices, new,
                 glob[1] if glob else rframe)


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


def _arrays(sections: _Sections, base: Image, removals: _Removals, n_globals: int,
            header: Header, budget: Budget) -> list[Array]:
    """The target's arrays, merged from the base's and the ARRAYS section (ROWS comes
    after)."""
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
        raise FormatError(Reason.CLAIM_MISMATCH, f"the data needs at least {needs} bytes, "
                          f"the header claims {header.claims.data_bytes}", "data",
                          frame.offset if frame is not None else None)
    new = []
    for e in entries:
        values: list[int] = []
        for c in e.chunks:
            values.extend(expand_chunk(c))
        new.append(Array(e.name, e.writable, e.lo, e.hi, tuple(values)))
    del got
    return merge(ListKind.ARRAYS, base.arrays, removed, [e.index for e in entries], new,
                 frame)


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


def _apply_scattered(sections: _Sections, arrays: list[Array], budget: Budget,
                     ) -> list[Array]:
    """The arrays with the new values of SCATTERED (applied after ROWS)."""
    got = _declared(sections, SectionType.SCATTERED, budget=budget,
                    array_ranges=[(a.lo, a.hi) for a in arrays],
                    array_lengths=[a.length for a in arrays])
    if got is None:
        return arrays
    for e in got[0]:
        a = arrays[e.index]
        values = list(a.values)
        for row, value in zip(e.rows, e.values, strict=True):  # decoding kept rows inside
            values[row] = value
        arrays[e.index] = Array(a.name, a.writable, a.lo, a.hi, tuple(values))
    return arrays
