"""Packing: image(new) + image(base) -> patch bytes, in the format of
``onboard.patching.patch_format``.

A delta carries only what differs between the base configuration (the one the ground
believes is on board) and the new one: a new name, new or changed VMlet references, the
VMlets the base does not hold, removed entries, new entries of every list (globals, arrays,
imports, code units, tasks, rules), new values of kept parameters and changed rows of kept
tables as runs (ROWS) or, when smaller, as Rice-coded positions and values (SCATTERED,
format 2), and the ``on apply`` entry if it moved.
All the sections travel in one BUNDLE (format 2) when compressing them together makes the
patch smaller. Lists are aligned with
``difflib.SequenceMatcher`` on each entry's declaration, so a changed parameter value or a
changed table row costs its bits, not its declaration. A full patch is the delta from the
empty configuration. ``pack`` builds both when it has a base and keeps the smaller.

Every section is stored raw, or DEFLATE- or LZMA2-compressed when that is smaller; a BUNDLE
may also be coded with the context-mixing MODEL codec (``onboard.patching.context_mixing``). Before
returning, ``pack`` rebuilds the target with the onboard patcher's own code and checks its
hash: what the ground sends is what the satellite will rebuild.

Keys: a 256-bit key per mission, from ``--key FILE`` (hex) or ``$CCL_PATCH_KEY`` (hex);
without either, the mission's development key (``onboard.patching.patch_format.development_key``),
which a flight profile refuses.
"""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from onboard.mission import MissionProfile
from onboard.patching import context_mixing
from onboard.patching.delta import Choices, empty_config, encode_sections
from onboard.patching.patch_format import (
    FORMAT_VERSION,
    FORMAT_WITHOUT_SCATTERED,
    HASH_BYTES,
    MAX_RICE,
    NO_HASH,
    TAG_BYTES,
    Claims,
    Codec,
    Flag,
    Header,
    SectionType,
    assemble,
    build_frame,
    bundle_payload,
    compress,
    development_key,
    hash_prefix,
    key_from_text,
    make_chunk,
    memory_bytes,
    parse_frames,
    parse_header,
    vmlet_primer,
    width,
)
from onboard.patching.patcher import rebuild
from onboard.patching.store import Configuration
from onboard.vm.image import Image, ImageKind, pinned_stack
from onboard.vm.machine import Limits

KEY_ENV = "CCL_PATCH_KEY"
KEY_BYTES = 32

T = TypeVar("T")


class PackError(Exception):
    """A patch that cannot be made: what and a hint."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class KeyUnreadable(PackError):
    """A key file that cannot be read at all (missing, a directory, no permission), as
    opposed to one that is read but holds no key."""


class KeyNeeded(PackError):
    """No key was given where the development key will not do (a flight profile)."""


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Key:
    """A patch key and where it came from (for messages; never the key itself)."""

    secret: bytes
    source: str
    development: bool = False


def generate_key() -> bytes:
    """A fresh random 256-bit patch key."""
    return secrets.token_bytes(KEY_BYTES)


def format_key(key: bytes, mission: str | None = None, kind: str = "patch") -> str:
    """The key file's text: a comment line and the key in hex. ``kind``: patch or (TC)
    link key."""
    what = f" for mission {mission}" if mission else ""
    return f"# CCL {kind} key{what} (HMAC-SHA256); keep it secret\n{key.hex()}\n"


def parse_key(text: str, source: str) -> bytes:
    """A key from its hex text (comment lines starting with # are ignored)."""
    try:
        return key_from_text(text)
    except ValueError as exc:
        raise PackError(f"{source}: {exc}", "write one with `ccl keygen -o FILE`") from None


def read_key_file(path: Path) -> str:
    """The text of key file ``path``: ``KeyUnreadable`` if it cannot be read, ``PackError``
    if it is not text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PackError(f"{path}: not a key file (not text)",
                        "write one with `ccl keygen -o FILE`") from None
    except OSError as exc:
        raise KeyUnreadable(f"cannot read key file {path}: {exc.strerror or exc}",
                            "check the path") from None


def load_key(profile: MissionProfile, path: Path | None,
             environ: dict[str, str] | None = None) -> Key:
    """The key to sign with: ``path``, else $CCL_PATCH_KEY, else the development key (which a
    flight profile refuses)."""
    env = os.environ if environ is None else environ
    if path is not None:
        text = read_key_file(path)
        key = Key(parse_key(text, str(path)), str(path))
    elif env.get(KEY_ENV):
        key = Key(parse_key(env[KEY_ENV], f"${KEY_ENV}"), f"${KEY_ENV}")
    else:
        key = Key(development_key(profile.name), f"the development key of `{profile.name}`",
                  development=True)
    if profile.flight and key.secret == development_key(profile.name):
        raise KeyNeeded(f"mission `{profile.name}` is a flight profile: it refuses the "
                        f"development key",
                        f"give the mission's key with --key FILE or ${KEY_ENV}")
    return key


# --------------------------------------------------------------------------- lists


def diff_list(base: Sequence[T], target: Sequence[T],
              key: Callable[[T], Hashable] = lambda e: e,
              ) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Align two lists on ``key``: (removed base indices, new target indices, kept pairs
    (base index, target index)). Applying the removals and inserting the new entries at their
    indices gives back ``target``'s keys (``onboard.patching.delta`` does exactly that)."""
    matcher = difflib.SequenceMatcher(None, [key(e) for e in base], [key(e) for e in target],
                                      autojunk=False)
    removed: list[int] = []
    new: list[int] = []
    pairs: list[tuple[int, int]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.extend(zip(range(i1, i2), range(j1, j2), strict=True))
        else:
            removed.extend(range(i1, i2))
            new.extend(range(j1, j2))
    return removed, new, pairs


# --------------------------------------------------------------------------- tables


#: Bits a chunk or run header costs, roughly: the break-even for starting a new one.
_HEADER_BITS = 16


def chunks(values: Sequence[int], lo: int, hi: int) -> list[dict[str, Any]]:
    """Cover ``values`` with literal and repeat chunks: a run of equal values becomes a
    repeat chunk when that is cheaper than packing them literally."""
    w = width(lo, hi)
    out: list[dict[str, Any]] = []
    literal: list[int] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        run = j - i
        if run * w > _HEADER_BITS + w or (run > 1 and w == 0):
            if literal:
                out.append(make_chunk(literal, False))
                literal = []
            out.append(make_chunk(values[i:j], True))
        else:
            literal.extend(values[i:j])
        i = j
    if literal:
        out.append(make_chunk(literal, False))
    return out


def row_runs(base: Sequence[int], target: Sequence[int], lo: int, hi: int,
             ) -> list[dict[str, Any]]:
    """Changed rows of a table as runs (ROWS): changes closer than a run header's worth of
    bits are merged into one run; each run is chunked like a table."""
    w = max(width(lo, hi), 1)
    changed = [i for i, (a, b) in enumerate(zip(base, target, strict=True)) if a != b]
    regions: list[list[int]] = []
    for i in changed:
        if regions and (i - regions[-1][1]) * w <= _HEADER_BITS:
            regions[-1][1] = i + 1
        else:
            regions.append([i, i + 1])
    out: list[dict[str, Any]] = []
    end = 0
    for start, stop in regions:
        for k, chunk in enumerate(chunks(target[start:stop], lo, hi)):
            chunk["skip"] = start - end if k == 0 else 0
            out.append(chunk)
        end = stop
    return out


# --------------------------------------------------------------------------- sections


def rice_parameter(gaps: Sequence[int]) -> int:
    """The Rice parameter that codes ``gaps`` (between changed rows, SCATTERED) in the
    fewest bits: each gap takes ``(gap >> r) + 1 + r`` bits."""
    return min(range(MAX_RICE + 1), key=lambda r: sum((g >> r) + 1 + r for g in gaps))


#: The ground's choices in the delta codec: lists aligned with ``difflib``, table values
#: chunked so that runs of equal values cost one value, changed rows as runs or as
#: Rice-coded positions, whichever is smaller.
GROUND_CHOICES = Choices(align=diff_list, table=chunks, rows=row_runs, rice=rice_parameter)


def sections(target: Image, vmlets: Sequence[Image], base: Image, held: Sequence[Image],
             ) -> list[tuple[SectionType, bytes]]:
    """The section payloads (uncompressed) that turn ``base`` into ``target``, with the
    ground's choices (``onboard.patching.delta.encode_sections``). ``held`` are the VMlet
    images the satellite holds (the base configuration's); ``vmlets`` those the target uses,
    which are carried unless held."""
    return encode_sections(target, vmlets, base, held, GROUND_CHOICES)


#: LZMA models tried (literal context bits, literal position bits, position bits): xz's
#: default, and those that suit bytecode, names and bit-packed values better.
_LZMA_MODELS = ({"lc": 3, "lp": 0, "pb": 2}, {"lc": 0, "lp": 0, "pb": 0},
                {"lc": 1, "lp": 0, "pb": 0}, {"lc": 2, "lp": 0, "pb": 0})


#: Every codec ``pack`` may use.
ALL_CODECS = frozenset(Codec)
#: The codecs ``pack`` uses unless asked: not MODEL, whose decoding costs the board about 15
#: times the cycles per byte of the rest of the check (``[reconfiguration] model_per_byte``),
#: seconds of the patch reserve for a full patch (``ccl pack --model`` asks for it).
DEFAULT_CODECS = ALL_CODECS - {Codec.MODEL}


def frame(section: SectionType, payload: bytes, codecs: frozenset[Codec] = DEFAULT_CODECS,
          primer: bytes | None = None) -> bytes:
    """The smallest frame for ``payload``: stored raw, or compressed when that pays. The
    context-mixing MODEL codec (format 2) is tried on a BUNDLE, which carries all of a
    patch's sections: on a few hundred bytes it beats LZMA by a tenth or more; with a
    ``primer`` (``vmlet_primer``: the VMlets the base uses) it is also tried primed."""
    best = build_frame(section, payload)
    candidates = [(Codec.DEFLATE, compress(payload, Codec.DEFLATE))] + [
        (Codec.LZMA, compress(payload, Codec.LZMA, **model)) for model in _LZMA_MODELS]
    if section is SectionType.BUNDLE and Codec.MODEL in codecs:
        candidates.append((Codec.MODEL, compress(payload, Codec.MODEL)))
        if primer:  # coded after the VMlets the board holds, which it learns first
            candidates.append((Codec.MODEL, context_mixing.encode(payload, primer)))
    for codec, stored in candidates:
        if codec not in codecs:
            continue
        candidate = build_frame(section, stored, codec)
        if len(candidate) < len(best):
            best = candidate
    return best


# --------------------------------------------------------------------------- patches


@dataclass(frozen=True)
class Packed:
    """A patch and what it is."""

    data: bytes
    header: Header
    configuration: Configuration

    @property
    def full(self) -> bool:
        return self.header.full


def claims_for(config: Image, vmlets: Sequence[Image], profile: MissionProfile,
               cycles_per_frame: int | None) -> Claims:
    """Budget claims: exact code and data bytes; the verifier's cycles per frame, or (when
    unknown) the whole share less the patch reserve."""
    code, data = memory_bytes(config, vmlets)
    limit = Limits.of(profile).frame_budget
    cycles = limit if cycles_per_frame is None else cycles_per_frame
    share_bp = -(-cycles * 10_000 // profile.frame_cycles) if profile.frame_cycles else 0
    return Claims(cycles, share_bp, code, data)


def pack(target: Image, vmlets: Sequence[Image], profile: MissionProfile, key: bytes, *,
         seq: int, base: Image | None = None, full: bool | None = None,
         unverified: bool = False, cycles_per_frame: int | None = None,
         codecs: frozenset[Codec] = DEFAULT_CODECS) -> Packed:
    """A patch from ``base`` (None: the satellite's contents are unknown) to ``target``.

    ``vmlets`` are the VMlet images ``target`` uses. ``full`` forces a full (True) or delta
    (False) patch; by default the smaller is kept. Without a base the patch is full, carries
    every VMlet and applies on any base. ``codecs``: those the sections may be stored with
    (raw is always an option; ``ALL_CODECS`` adds MODEL). Raises ``PackError``.
    """
    if target.kind is not ImageKind.CONFIG:
        raise PackError(f"`{target.name}` is a VMlet: VMlets travel inside the patch of a "
                        f"configuration that uses them", "pack a configuration that uses it")
    if base is not None and base.kind is not ImageKind.CONFIG:
        raise PackError(f"the base `{base.name}` is a VMlet, not a configuration",
                        "give the image of the configuration on board")
    if base is not None and base.mission != target.mission:
        raise PackError(f"the base is for mission `{base.mission}`, the configuration for "
                        f"`{target.mission}`", "give the image of the configuration on board")
    if full is False and base is None:
        raise PackError("a delta needs a base", "give --base IMAGE")
    if seq < 1:
        raise PackError(f"sequence number {seq}: it must be at least 1",
                        "sequence numbers start at 1 and increase with every patch")
    # the VMlets it uses and the layers below them, lower first
    by_ref, missing = pinned_stack(target.uses, vmlets)
    if missing is not None:
        raise PackError(f"VMlet `{missing.name}` v{missing.version} is not given",
                        "compile the configuration with its VMlets")
    held = [v for v in by_ref if base is not None
            and any(v.content_hash[:len(u.hash)] == u.hash for u in base.uses)]
    claims = claims_for(target, by_ref, profile, cycles_per_frame)
    flags = Flag.UNVERIFIED if unverified else Flag(0)
    candidates = []
    empty = empty_config(target.mission)
    if base is None or full is not False:
        candidates.append((flags | Flag.FULL, empty))
    if base is not None and full is not True:
        candidates.append((flags, base))
    best: Packed | None = None
    # The VMlets the base uses, which the board holds: a patch that names the base may be
    # coded after them (MODEL), if the ground has them all.
    primer = vmlet_primer(base, held) if base is not None else None
    for f, origin in candidates:
        payloads = sections(target, by_ref, origin, held)
        frames = [frame(s, p, codecs) for s, p in payloads]
        # All sections in one BUNDLE when that is smaller: compressed together, they share
        # one dictionary and one CRC.
        bundle = frame(SectionType.BUNDLE, bundle_payload((s, p) for s, p in payloads), codecs,
                       primer)
        if len(bundle) < sum(map(len, frames)):
            frames = [bundle]
        # Format 1 when it can say it: a patch without SCATTERED or BUNDLE keeps its
        # format-1 bytes.
        version = FORMAT_WITHOUT_SCATTERED if frames != [bundle] and all(
            s is not SectionType.SCATTERED for s, _ in payloads) else FORMAT_VERSION
        header = Header(flags=f, mission_id=profile.mission_id,
                        spacecraft_id=profile.spacecraft_id, seq=seq, version=target.version,
                        base_hash=hash_prefix(base) if base is not None else NO_HASH,
                        target_hash=target.content_hash[:HASH_BYTES], claims=claims,
                        format=version)
        data = assemble(header, frames, key)
        if best is None or len(data) < len(best.data):
            best = Packed(data, header, Configuration(target, tuple(by_ref)))
    assert best is not None
    _self_check(best, base, held, profile)
    return best


def _self_check(packed: Packed, base: Image | None, held: Sequence[Image],
                profile: MissionProfile) -> None:
    """Rebuild the target with the onboard code, as the satellite will."""
    data = packed.data
    parsed = parse_header(data)
    frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    on_board = Configuration(base, tuple(held)) if base is not None else None
    rebuilt = rebuild(parsed.header, frames, on_board, profile)
    if rebuilt.hash != packed.configuration.hash:  # pragma: no cover - a packer bug
        raise AssertionError("the patch does not rebuild its target")
