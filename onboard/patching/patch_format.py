"""The patch format: the bytes the ground uplinks to change the onboard configuration.

Defined once, here, with construct; what the sections mean for an image is
``onboard.patching.delta`` (both directions), whose record fields are the image format's own.
Both sides use them: ``ccl.pack`` builds patches, ``onboard.patching.patcher`` parses and
applies them, ``ccl inspect`` dumps them. Every byte is described in ``docs/patch-format.md``;
in short::

    patch   = header | section* | tag
    header  = magic "VP" | format u8 | flags u8 | mission varint | spacecraft varint
              | seq varint | target version varint | base hash (8) | target hash (8)
              | claims: cycles/frame, share (basis points), code bytes, data bytes (varints)
              | CRC-16 u16
    section = kind u8 (codec << 5 | type) | length varint | payload | CRC-16 u16
    tag     = HMAC-SHA256(key, header | sections), first 16 bytes

A patch is a *delta* from a base configuration to a target configuration; a *full* patch is a
delta from the empty configuration, so both kinds are applied by the same code. Integers are
LEB128 varints (signed ones zigzag-encoded) of at most 10 bytes; parameter and table values
are bit-packed at exactly the width their declared range needs (``int[0..2047]`` takes 11
bits), most significant bit first, padded with zero bits to a byte boundary; a section's
payload may be compressed (raw DEFLATE or raw LZMA2) when that makes it smaller. The CRC is
CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR),
the CCSDS TC frame CRC; it tells transmission damage from forgery, which the tag catches.

Parsing never trusts its input, signed or not: every failure is a ``FormatError`` with a
stable reason code, the field and the byte offset in the patch. Decoding is bounded before it
allocates (``onboard.bounded_decoding``): varints by 10 bytes, every list's count by the bytes
left and by what the target can hold, and table values, code bytes and decompressed bytes by a
``Budget`` fixed from the header's claims before any section is decoded
(``decoding_budget``).

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import lzma
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum
from typing import Any, NamedTuple

import construct as cs

from onboard.bounded_decoding import (
    Budget,
    BudgetError,
    Counted,
    LimitError,
    OrderError,
    Record,
    VarUInt,
    crc16,
    field_of,
    param,
    remaining,
)
from onboard.errors import OnboardError
from onboard.mission import MAX_APPLICATION
from onboard.patching import context_mixing
from onboard.vm.image import (
    CODE_UNIT_SHAPE,
    DECLARATION,
    EXT_FIELDS,
    MAX_IMAGE_ELEMENTS,
    RULE_FIELDS,
    TASK_FIELDS,
    VMLET_REF_NAME,
    Image,
    Name,
)
from onboard.vm.machine import globals_bytes

MAGIC = b"VP"
#: Format 2 adds the SCATTERED and BUNDLE sections; a patch without either is written as
#: format 1, so that every patch format 1 could express keeps its bytes. Both are read.
FORMAT_VERSION = 2
FORMAT_WITHOUT_SCATTERED = 1
READABLE_FORMATS = (1, 2)
HASH_BYTES = 8  # prefix of an image's SHA-256 content hash carried in the header
TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits
NO_HASH = bytes(HASH_BYTES)  # base hash of a full patch that applies on any base
CRC_BYTES = 2
#: A decompressed section payload never exceeds this, whatever the patch says.
MAX_EXPANDED_BYTES = 1 << 20
#: The decompressed payloads of all of a patch's sections together take at most this many
#: times the sections' bytes, plus its code claim and its data claim (``decoding_budget``).
EXPANSION_RATIO = 8
#: Dictionary of the raw LZMA2 codec: small, so that decoding on board needs little memory.
LZMA_DICT_BYTES = 1 << 16


class Reason(StrEnum):
    """Why a patch is rejected: stable codes for telemetry, tests and the ground ledger.

    Listed in the order the onboard patcher checks them.
    """

    OVERSIZE = "oversize"  # longer than the patcher accepts
    TRUNCATED = "truncated"  # ends inside the header, a section or the tag
    BAD_HEADER = "bad-header"  # a malformed header field (overlong varint, unknown flag)
    BAD_MAGIC = "bad-magic"
    BAD_VERSION = "bad-version"  # format version this patcher does not know
    WRONG_MISSION = "wrong-mission"
    WRONG_SPACECRAFT = "wrong-spacecraft"
    HEADER_CRC = "header-crc"
    SECTION_CRC = "section-crc"
    BAD_TAG = "bad-tag"  # not authenticated by this mission's key
    UNVERIFIED = "unverified"  # marked unverified, and this spacecraft refuses those
    REPLAY = "replay"  # sequence number not above the last accepted one
    BUSY = "busy"  # a patch is already staged or on probation
    WRONG_BASE = "wrong-base"  # built on another configuration than the current one
    OVER_BUDGET = "over-budget"  # claims beyond this spacecraft's limits
    BAD_SECTION = "bad-section"  # unknown type, bad order or codec, malformed payload
    BAD_DELTA = "bad-delta"  # does not fit the base (indices, lengths)
    MISSING_VMLET = "missing-vmlet"  # uses a VMlet neither on board nor in the patch
    BAD_IMAGE = "bad-image"  # a carried VMlet image is malformed or not a VMlet
    CLAIM_MISMATCH = "claim-mismatch"  # code or data bytes differ from the claims
    HASH_MISMATCH = "hash-mismatch"  # the rebuilt image is not the target
    VERIFIER = "verifier"  # the bytecode verifier refuses the code
    INTERNAL = "internal-error"  # a bug of the patcher: reported, never raised on board
    OUT_OF_LIMITS = "out-of-limits"  # a profile patch outside the flight build's hard limits


#: One-byte number of each reason, for telemetry: declaration order from 1 (new reasons are
#: only ever appended).
REASON_NUMBERS: dict[Reason, int] = {r: i for i, r in enumerate(Reason, start=1)}


class FormatError(OnboardError):
    """Bytes that are not an acceptable patch: reason code, field, byte offset, message."""

    def __init__(self, reason: Reason, message: str, field: str | None = None,
                 offset: int | None = None) -> None:
        super().__init__(reason.value, message, field=field, offset=offset)
        self.reason = reason

    def __str__(self) -> str:
        where = []
        if self.field:
            where.append(f"field `{self.field}`")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{self.reason.value}: {self.message}" + (f" ({', '.join(where)})"
                                                          if where else "")


class Flag(IntFlag):
    """Header flags."""

    FULL = 1  # a delta from the empty configuration (else from the base)
    UNVERIFIED = 2  # packed with --unverified: the ground could not prove it

    @staticmethod
    def known() -> int:
        return int(Flag.FULL | Flag.UNVERIFIED)


class SectionType(IntEnum):
    """Section types, in the order they must appear (VMLET may repeat)."""

    IDENTITY = 1  # the configuration's name
    USES = 2  # new or changed VMlet references
    VMLET = 3  # a whole VMlet image (canonical encoding)
    REMOVALS = 4  # base entries dropped, per list
    GLOBALS = 5  # new scalar globals: declarations and values
    PARAMS = 6  # new values of kept globals
    ARRAYS = 7  # new arrays: declarations and contents
    ROWS = 8  # changed rows of kept arrays, as runs
    IMPORTS = 9  # new entries of the native, environment and extension tables
    CODE = 10  # new code units
    TASKS = 11  # new tasks
    RULES = 12  # new flight rules
    ENTRIES = 13  # the `on apply` entry point
    SCATTERED = 14  # changed rows of kept arrays, as Rice-coded positions and values (format 2)
    BUNDLE = 15  # all the other sections, framed without CRCs, compressed together (format 2)


class Codec(IntEnum):
    """How a section's payload is stored."""

    NONE = 0
    DEFLATE = 1  # raw DEFLATE (zlib, wbits -15)
    LZMA = 2  # raw LZMA2, 64 KiB dictionary
    MODEL = 3  # context mixing and arithmetic coding (``context_mixing``; format 2)


class ListKind(IntEnum):
    """The lists of an image that a delta edits (REMOVALS names them by these codes)."""

    USES = 0
    GLOBALS = 1
    ARRAYS = 2
    NATIVES = 3
    ENV = 4
    EXT = 5
    FUNCTIONS = 6
    TASKS = 7
    RULES = 8


# --------------------------------------------------------------------------- primitives


def width(lo: int, hi: int) -> int:
    """Bits a value of ``int[lo..hi]`` takes packed: enough for ``hi - lo``."""
    return (hi - lo).bit_length()


def pack_values(values: Sequence[int], ranges: Sequence[tuple[int, int]]) -> bytes:
    """Bit-pack ``values[i] - lo_i`` in ``width(lo_i, hi_i)`` bits each, MSB first, zero-padded
    to a byte. Raises ``ValueError`` for a value outside its range."""
    parts = []
    for v, (lo, hi) in zip(values, ranges, strict=True):
        if not lo <= v <= hi:
            raise ValueError(f"value {v} outside int[{lo}..{hi}]")
        w = width(lo, hi)
        if w:
            parts.append(format(v - lo, f"0{w}b"))
    return _bits_to_bytes("".join(parts))


def pack_uniform(values: Sequence[int], lo: int, hi: int) -> bytes:
    """``pack_values`` for values that share one range (table contents)."""
    w = width(lo, hi)
    if not w:
        if any(v != lo for v in values):
            raise ValueError(f"value outside int[{lo}..{hi}]")
        return b""
    for v in values:
        if not lo <= v <= hi:
            raise ValueError(f"value {v} outside int[{lo}..{hi}]")
    fmt = f"0{w}b"
    return _bits_to_bytes("".join(format(v - lo, fmt) for v in values))


def _bits_to_bytes(bits: str) -> bytes:
    if not bits:
        return b""
    pad = -len(bits) % 8
    return int(bits + "0" * pad, 2).to_bytes((len(bits) + pad) // 8, "big")


def packed_size(total_bits: int) -> int:
    return (total_bits + 7) // 8


def _bits(data: bytes, total: int, path: str) -> str:
    """The bit string of ``data``, checking that the padding after ``total`` bits is zero."""
    if not data:
        return ""
    bits = format(int.from_bytes(data, "big"), f"0{len(data) * 8}b")
    if "1" in bits[total:]:
        raise cs.ValidationError("padding bits after the packed values are not zero",
                                 path=path)
    return bits


def _check_range(lo: int, hi: int, path: str) -> None:
    if hi < lo:
        raise cs.ValidationError(f"empty range int[{lo}..{hi}]", path=path)


def _unpack_uniform(data: bytes, count: int, lo: int, hi: int, path: str) -> list[int]:
    w = width(lo, hi)
    bits = _bits(data, count * w, path)
    if not w:
        return [lo] * count
    span = hi - lo
    out = [int(bits[i:i + w], 2) for i in range(0, count * w, w)]
    for v in out:
        if v > span:
            raise cs.ValidationError(f"packed value {v + lo} outside int[{lo}..{hi}]",
                                     path=path)
    return [v + lo for v in out] if lo else out


def _evaluate(value: Any, context: Any) -> Any:
    return value(context) if callable(value) else value


class RangedSeq(cs.Construct):  # type: ignore[misc]
    """One value per range of ``ranges`` (a context function giving ``[(lo, hi), ...]``),
    bit-packed together (``pack_values``)."""

    def __init__(self, ranges: Callable[[Any], Sequence[tuple[int, int]]]) -> None:
        super().__init__()
        self.ranges = ranges

    def _parse(self, stream: Any, context: Any, path: str) -> list[int]:
        ranges = self.ranges(context)
        for lo, hi in ranges:
            _check_range(lo, hi, path)
        widths = [width(lo, hi) for lo, hi in ranges]
        total = sum(widths)
        bits = _bits(cs.stream_read(stream, packed_size(total), path), total, path)
        out, pos = [], 0
        for (lo, hi), w in zip(ranges, widths, strict=True):
            v = int(bits[pos:pos + w], 2) + lo if w else lo
            if v > hi:
                raise cs.ValidationError(f"packed value {v} outside int[{lo}..{hi}]", path=path)
            out.append(v)
            pos += w
        return out

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        try:
            data = pack_values(obj, self.ranges(context))
        except ValueError as exc:
            raise cs.RangeError(str(exc), path=path) from None
        cs.stream_write(stream, data, len(data), path)
        return obj


def _write_uniform(stream: Any, values: Sequence[int], lo: int, hi: int, path: str) -> None:
    """Write ``pack_uniform(values, lo, hi)``; a value out of range is a ``RangeError``."""
    try:
        data = pack_uniform(values, lo, hi)
    except ValueError as exc:
        raise cs.RangeError(str(exc), path=path) from None
    cs.stream_write(stream, data, len(data), path)


class SectionRefused(cs.ValidationError):  # type: ignore[misc]
    """Raised while decoding a section body for a reason other than a malformed payload
    (``parse_body`` reports it with this reason)."""

    def __init__(self, reason: Reason, message: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.reason = reason


def _budget(context: Any) -> Budget:
    """The decoding's budget (parse parameter ``budget``); a decoding without one gets the
    format's own limits, once, for all its sections and entries."""
    budget = param(context, "budget")
    if budget is None:
        budget = format_budget()
        context._params["budget"] = budget
    return budget  # type: ignore[no-any-return]


class _Drawn(cs.Subconstruct):  # type: ignore[misc]
    """An unsigned count or length that is drawn from the decoding's budget (``resource``)
    as soon as it is decoded, before anything is allocated on it."""

    def __init__(self, subcon: Any, resource: str, what: str) -> None:
        super().__init__(subcon)
        self.resource, self.what = resource, what

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        value = int(self.subcon._parsereport(stream, context, path))
        try:
            _budget(context).take(self.resource, value, self.what)
        except BudgetError as exc:
            raise BudgetError(exc.resource, str(exc), path=path) from None
        return value


class Chunk(NamedTuple):
    """A decoded chunk of table values (see ``Chunks``)."""

    skip: int  # unchanged rows before it (ROWS), else 0
    header: int  # n << 1 | repeat
    packed: list[int]  # the one repeated value, or the n literal values


class Chunks(cs.Construct):  # type: ignore[misc]
    """A count-prefixed list of chunks of table values in ``int[lo..hi]`` (``lo``, ``hi`` and
    ``length`` may be context functions). Each chunk is ``[skip varint] | header varint |
    values``: ``header = n << 1 | repeat``; a repeat chunk holds one value standing for ``n``
    equal values, a literal chunk ``n`` values, bit-packed. With ``skips`` (ROWS), each chunk
    first says how many unchanged rows lie between the previous chunk's end and its start.

    Bounded before anything is unpacked: every chunk stands for at least one value, and the
    chunks may not reach past ``length`` (the array's declared length for ARRAYS, which has
    been drawn from the decoding's budget; the target array's length for ROWS). Without
    ``skips`` they must cover exactly ``length`` values. A repeat chunk is never expanded
    here."""

    def __init__(self, lo: Any, hi: Any, length: Any, skips: bool = False) -> None:
        super().__init__()
        self.lo, self.hi, self.length, self.skips = lo, hi, length, skips

    def _parse(self, stream: Any, context: Any, path: str) -> list[Chunk]:
        lo, hi = _evaluate(self.lo, context), _evaluate(self.hi, context)
        length = _evaluate(self.length, context)
        _check_range(lo, hi, path)
        w = width(lo, hi)
        count = VarUInt._parsereport(stream, context, path)
        least = 2 if self.skips else 1
        if count * least > remaining(stream):
            raise cs.ValidationError(f"{count} chunks need at least {count * least} bytes, "
                                     f"{remaining(stream)} remain", path=path)
        if count > length:
            raise SectionRefused(Reason.BAD_DELTA, f"{count} chunks for {length} values",
                                 path=path)
        out = []
        end = 0  # of the previous chunk, in values (rows)
        for _ in range(count):
            skip = VarUInt._parsereport(stream, context, path) if self.skips else 0
            header = VarUInt._parsereport(stream, context, path)
            n = header >> 1
            if not n:
                raise cs.ValidationError("a chunk of no values", path=path)
            start = end + skip
            if start + n > length:
                raise SectionRefused(Reason.BAD_DELTA, f"values {start}..{start + n - 1} "
                                     f"reach past the array's {length}", path=path)
            k = 1 if header & 1 else n
            data = cs.stream_read(stream, packed_size(k * w), path)
            out.append(Chunk(skip, header, _unpack_uniform(data, k, lo, hi, path)))
            end = start + n
        if not self.skips and end != length:
            raise SectionRefused(Reason.BAD_DELTA, f"chunks hold {end} values, the array's "
                                 f"length is {length}", path=path)
        return out

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        lo, hi = _evaluate(self.lo, context), _evaluate(self.hi, context)
        VarUInt._build(len(obj), stream, context, path)
        for chunk in obj:
            if self.skips:
                VarUInt._build(chunk["skip"], stream, context, path)
            VarUInt._build(chunk["header"], stream, context, path)
            _write_uniform(stream, chunk["packed"], lo, hi, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError(path=path)


class Scattered(NamedTuple):
    """A decoded SCATTERED entry: the changed rows of one array and their new values."""

    index: int  # type: ignore[assignment]  # of the target array (shadows tuple.index)
    rows: list[int]  # increasing; those of the previous entry when it said so
    rice: int  # the Rice parameter the rows were coded with (the previous entry's if reused)
    values: list[int]


#: The largest Rice parameter: gaps below 2**16 take one unary bit at most.
MAX_RICE = 16


def rice_encode(gaps: Sequence[int], r: int) -> bytes:
    """Gaps (non-negative) Rice-coded with parameter ``r``: ``gap >> r`` one bits, a zero
    bit, then the ``r`` low bits of the gap, MSB first, padded with zero bits to a byte."""
    parts = []
    for g in gaps:
        parts.append("1" * (g >> r) + "0" + (format(g & ((1 << r) - 1), f"0{r}b") if r else ""))
    return _bits_to_bytes("".join(parts))


def _rice_rows(data: bytes, count: int, r: int, length: int, path: str) -> list[int]:
    """The ``count`` increasing rows below ``length`` Rice-coded gaps give (row = previous
    row + 1 + gap, from -1). Bounded: every row is checked against ``length`` as soon as
    its unary part passes it, and the bits are those of ``data`` alone."""
    bits = format(int.from_bytes(data, "big"), f"0{len(data) * 8}b") if data else ""
    pos, row, out = 0, -1, []
    for _ in range(count):
        q = 0
        while True:
            if pos >= len(bits):
                raise cs.ValidationError("the row positions end too early", path=path)
            bit = bits[pos]
            pos += 1
            if bit == "0":
                break
            q += 1
            if row + 1 + (q << r) >= length:
                raise SectionRefused(Reason.BAD_DELTA, f"a changed row past the array's "
                                     f"{length}", path=path)
        if pos + r > len(bits):
            raise cs.ValidationError("the row positions end too early", path=path)
        gap = (q << r) | (int(bits[pos:pos + r], 2) if r else 0)
        pos += r
        row += 1 + gap
        if row >= length:
            raise SectionRefused(Reason.BAD_DELTA, f"changed row {row} past the array's "
                                 f"{length}", path=path)
        out.append(row)
    if "1" in bits[pos:] or len(bits) - pos >= 8:
        raise cs.ValidationError("the row positions have trailing bits", path=path)
    return out


class ScatteredRows(cs.Construct):  # type: ignore[misc]
    """The SCATTERED payload: ``count varint | entry*``, entries in increasing index order;
    ``entry = index varint | k varint | [r u8 | positions length varint | positions]
    | values``. ``k`` rows change; ``k = 0`` means the rows of the previous entry (not
    allowed first). The positions are the gaps between changed rows, Rice-coded with
    parameter ``r`` (``rice_encode``); the values are the ``k`` new values bit-packed at the
    array's width (``pack_uniform``). Parse parameters as ROWS: ``array_ranges``,
    ``array_lengths`` (the target's). Bounded before allocating: the count by the bytes
    left and the arrays declared, ``k`` by the array's length and by the bits the positions
    hold."""

    def _parse(self, stream: Any, context: Any, path: str) -> list[Scattered]:
        ranges = param(context, "array_ranges", ())
        lengths = param(context, "array_lengths")
        count = VarUInt._parsereport(stream, context, path)
        if count * 2 > remaining(stream):
            raise cs.ValidationError(f"{count} entries need at least {count * 2} bytes, "
                                     f"{remaining(stream)} remain", path=path)
        if count > len(ranges):
            raise LimitError(f"{count} entries for {len(ranges)} arrays", path=path)
        out: list[Scattered] = []
        for _ in range(count):
            index = VarUInt._parsereport(stream, context, path)
            if out and index <= out[-1].index:
                raise OrderError(f"index {index} after {out[-1].index}: indices must "
                                 f"increase", path=path)
            if index >= len(ranges):
                raise cs.ValidationError(f"index {index} names none of the {len(ranges)} "
                                         f"arrays", path=path)
            lo, hi = ranges[index]
            _check_range(lo, hi, path)
            length = MAX_IMAGE_ELEMENTS if lengths is None else int(lengths[index])
            k = VarUInt._parsereport(stream, context, path)
            if k == 0:
                if not out:
                    raise cs.ValidationError("the first entry cannot reuse the previous "
                                             "entry's rows", path=path)
                rows, r = out[-1].rows, out[-1].rice
                if rows and rows[-1] >= length:
                    raise SectionRefused(Reason.BAD_DELTA, f"changed row {rows[-1]} past "
                                         f"the array's {length}", path=path)
            else:
                if k > length:
                    raise SectionRefused(Reason.BAD_DELTA, f"{k} changed rows for "
                                         f"{length}", path=path)
                r = cs.Int8ub._parsereport(stream, context, path)
                if r > MAX_RICE:
                    raise cs.ValidationError(f"Rice parameter {r} above {MAX_RICE}",
                                             path=path)
                size = VarUInt._parsereport(stream, context, path)
                if k * (r + 1) > size * 8:
                    raise cs.ValidationError(f"{k} positions need at least {k * (r + 1)} "
                                             f"bits, {size * 8} given", path=path)
                rows = _rice_rows(cs.stream_read(stream, size, path), k, r, length, path)
            data = cs.stream_read(stream, packed_size(len(rows) * width(lo, hi)), path)
            out.append(Scattered(index, rows, r,
                                 _unpack_uniform(data, len(rows), lo, hi, path)))
        return out

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        ranges = param(context, "array_ranges", ())
        VarUInt._build(len(obj), stream, context, path)
        previous: Sequence[int] | None = None
        for e in obj:
            lo, hi = ranges[e["index"]]
            VarUInt._build(e["index"], stream, context, path)
            rows = list(e["rows"])
            if not rows or any(b <= a for a, b in zip([-1, *rows], rows, strict=False)) \
                    or len(e["values"]) != len(rows) or not 0 <= e["rice"] <= MAX_RICE:
                raise cs.RangeError("a SCATTERED entry needs increasing rows from 0, one "
                                    "value each, a Rice parameter 0..16", path=path)
            if previous is not None and rows == list(previous):
                VarUInt._build(0, stream, context, path)
            else:
                VarUInt._build(len(rows), stream, context, path)
                cs.Int8ub._build(e["rice"], stream, context, path)
                gaps = [b - a - 1 for a, b in zip([-1, *rows[:-1]], rows, strict=True)]
                data = rice_encode(gaps, e["rice"])
                VarUInt._build(len(data), stream, context, path)
                cs.stream_write(stream, data, len(data), path)
            previous = rows
            _write_uniform(stream, e["values"], lo, hi, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError(path=path)


def chunk_length(chunk: Any) -> int:
    """How many table values a parsed chunk stands for."""
    return int(chunk.header >> 1)


def expand_chunk(chunk: Any) -> list[int]:
    """The table values a parsed chunk stands for."""
    n = chunk.header >> 1
    return list(chunk.packed) * n if chunk.header & 1 else list(chunk.packed)


def make_chunk(values: Sequence[int], repeat: bool, skip: int = 0) -> dict[str, Any]:
    """A chunk (for building) of ``values``; with ``repeat`` they must all be equal."""
    if repeat:
        return {"skip": skip, "header": len(values) << 1 | 1, "packed": [values[0]]}
    return {"skip": skip, "header": len(values) << 1, "packed": list(values)}


def _declared(ctx: Any, table: str, i: int) -> tuple[int, int]:
    """The range of entry ``i`` of parse parameter ``table`` (the target's declarations,
    supplied by the patcher)."""
    ranges = param(ctx, table, ())
    if not 0 <= i < len(ranges):
        raise cs.ValidationError(f"index {i} names none of the {len(ranges)} entries")
    return ranges[i]  # type: ignore[no-any-return]


def _declared_count(table: str) -> Callable[[Any], int]:
    """How many entries parse parameter ``table`` has (a limit for ``Counted``)."""
    return lambda ctx: len(param(ctx, table, ()))


def _row_length(ctx: Any) -> int:
    """The length of the target array a ROWS entry changes (parse parameter
    ``array_lengths``; without it, the format's limit)."""
    lengths = param(ctx, "array_lengths")
    return MAX_IMAGE_ELEMENTS if lengths is None else int(lengths[ctx.index])


def _base_length(ctx: Any) -> int:
    """How many entries the base has in the list a REMOVALS group names (parse parameter
    ``base_lengths``, by list code; without it, the format's limit)."""
    try:
        kind = ListKind(ctx.list)
    except ValueError:
        raise cs.ValidationError(f"unknown list {ctx.list}") from None
    lengths = param(ctx, "base_lengths")
    return MAX_IMAGE_ELEMENTS if lengths is None else int(lengths[kind])


# --------------------------------------------------------------------------- header


#: The fields every patch starts with, a configuration patch or a profile patch: what it is,
#: whom it is for, its place in the sequence.
PATCH_ADDRESS = (
    "magic" / cs.Bytes(2),
    "format" / cs.Int8ub,
    "flags" / cs.Int8ub,
    "mission" / VarUInt,
    "spacecraft" / VarUInt,
    "seq" / VarUInt,
)
HEADER = cs.Struct(
    *PATCH_ADDRESS,
    "version" / VarUInt,  # the target configuration's version
    "base" / cs.Bytes(HASH_BYTES),
    "target" / cs.Bytes(HASH_BYTES),
    "cycles" / VarUInt,  # claimed cycles per frame (tasks' demand, averaged over periods)
    "share" / VarUInt,  # claimed share of each frame, in basis points (1000 = 10 %)
    "code" / VarUInt,  # claimed code bytes: the configuration's and its VMlets'
    "data" / VarUInt,  # claimed bytes of globals and arrays (onboard.vm.machine.slot_bytes)
    "crc" / cs.Int16ub,  # CRC-16 of all the header bytes before it
)
HEADER_FIELDS = tuple(sc.name for sc in HEADER.subcons)


@dataclass(frozen=True)
class Claims:
    """The budget a patch claims; the patcher checks them against its own limits."""

    cycles_per_frame: int
    share_bp: int
    code_bytes: int
    data_bytes: int


@dataclass(frozen=True)
class Header:
    """A patch header (the CRC is computed, not stored here)."""

    flags: Flag
    mission_id: int
    spacecraft_id: int
    seq: int
    version: int
    base_hash: bytes
    target_hash: bytes
    claims: Claims
    #: Format version: FORMAT_VERSION if the patch has a SCATTERED section, else 1.
    format: int = FORMAT_WITHOUT_SCATTERED

    @property
    def full(self) -> bool:
        return bool(self.flags & Flag.FULL)

    @property
    def unverified(self) -> bool:
        return bool(self.flags & Flag.UNVERIFIED)


def build_header(h: Header) -> bytes:
    raw = {
        "magic": MAGIC, "format": h.format, "flags": int(h.flags),
        "mission": h.mission_id, "spacecraft": h.spacecraft_id, "seq": h.seq,
        "version": h.version, "base": h.base_hash, "target": h.target_hash,
        "cycles": h.claims.cycles_per_frame, "share": h.claims.share_bp,
        "code": h.claims.code_bytes, "data": h.claims.data_bytes, "crc": 0,
    }
    body = HEADER.build(raw)[:-CRC_BYTES]
    return body + crc16(body).to_bytes(CRC_BYTES, "big")


@dataclass(frozen=True)
class ParsedHeader:
    """A decoded header, where each field starts, and the header's own CRC verdict."""

    header: Header
    offsets: dict[str, int]
    size: int
    crc_ok: bool


def parse_header(data: bytes) -> ParsedHeader:
    """Decode the header at the start of ``data``; check magic, format version and flags.

    Raises ``FormatError`` (TRUNCATED, BAD_HEADER, BAD_MAGIC or BAD_VERSION). The CRC is
    reported (``crc_ok``), not enforced: the patcher checks it after mission and spacecraft.
    """
    stream = io.BytesIO(data)
    values: dict[str, Any] = {}
    offsets: dict[str, int] = {}
    for sc in HEADER.subcons:
        offsets[sc.name] = stream.tell()
        try:
            values[sc.name] = sc.parse_stream(stream)
        except cs.StreamError:
            raise FormatError(Reason.TRUNCATED, "the patch ends inside its header", sc.name,
                              stream.tell()) from None
        except cs.ConstructError as exc:
            raise FormatError(Reason.BAD_HEADER, _detail(exc), sc.name,
                              offsets[sc.name]) from None
        if sc.name == "magic" and values["magic"] != MAGIC:
            raise FormatError(Reason.BAD_MAGIC, f"magic {values['magic']!r} is not {MAGIC!r}",
                              "magic", 0)
        if sc.name == "format" and values["format"] not in READABLE_FORMATS:
            raise FormatError(Reason.BAD_VERSION, f"format version {values['format']}, this "
                              f"patcher reads versions "
                              f"{', '.join(map(str, READABLE_FORMATS))}", "format", 2)
        if sc.name == "flags" and values["flags"] & ~Flag.known():
            raise FormatError(Reason.BAD_HEADER, f"unknown flag bits "
                              f"{values['flags'] & ~Flag.known():#04x}", "flags", 3)
    size = stream.tell()
    header = Header(
        flags=Flag(values["flags"]), mission_id=values["mission"],
        spacecraft_id=values["spacecraft"], seq=values["seq"], version=values["version"],
        base_hash=bytes(values["base"]), target_hash=bytes(values["target"]),
        claims=Claims(values["cycles"], values["share"], values["code"], values["data"]),
        format=values["format"],
    )
    crc_ok = crc16(data[:size - CRC_BYTES]) == values["crc"]
    return ParsedHeader(header, offsets, size, crc_ok)


# --------------------------------------------------------------------------- sections


FRAME = cs.Struct(
    "kind" / cs.Int8ub,  # codec << 5 | section type; bit 7 must be 0
    "payload" / cs.Prefixed(VarUInt, cs.GreedyBytes),
    "crc" / cs.Int16ub,  # CRC-16 of the kind, length and payload bytes
)


@dataclass(frozen=True)
class Frame:
    """One section as stored: where it starts, its type and codec bits, its stored payload."""

    offset: int  # of the kind byte, in the patch
    payload_offset: int
    kind: int
    payload: bytes
    size: int  # bytes of the whole frame, CRC included (in a bundle: kind, length, payload)
    #: Read out of a BUNDLE section: ``offset`` and ``payload_offset`` are the bundle's.
    bundled: bool = False

    @property
    def type_code(self) -> int:
        return self.kind & 0x1F

    @property
    def codec_code(self) -> int:
        return self.kind >> 5


def build_frame(section: SectionType, payload: bytes, codec: Codec = Codec.NONE) -> bytes:
    """A section frame for ``payload`` (already compressed with ``codec`` if any)."""
    raw = FRAME.build({"kind": int(codec) << 5 | int(section), "payload": payload, "crc": 0})
    body = raw[:-CRC_BYTES]
    return body + crc16(body).to_bytes(CRC_BYTES, "big")


def parse_frames(data: bytes, start: int, end: int) -> list[Frame]:
    """Split ``data[start:end]`` into section frames and check each one's CRC.

    Raises ``FormatError``: TRUNCATED for a frame running past ``end``, BAD_SECTION for a
    malformed length, SECTION_CRC for a CRC mismatch.
    """
    end = min(end, len(data))
    frames = []
    stream = io.BytesIO(data[:end])
    stream.seek(start)
    while stream.tell() < end:
        at = stream.tell()
        try:
            kind = cs.Int8ub.parse_stream(stream)
            length = VarUInt.parse_stream(stream)
        except cs.StreamError:
            raise FormatError(Reason.TRUNCATED, "the patch ends inside a section frame",
                              "section.length", stream.tell()) from None
        except cs.ConstructError as exc:
            raise FormatError(Reason.BAD_SECTION, _detail(exc), "section.length",
                              at + 1) from None
        payload_at = stream.tell()
        if payload_at + length + CRC_BYTES > end:
            raise FormatError(Reason.TRUNCATED, f"section of {length} payload bytes at "
                              f"offset {at} runs past the end of the patch", "section.length",
                              at + 1)
        payload = stream.read(length)
        crc = int.from_bytes(stream.read(CRC_BYTES), "big")
        if crc16(data[at:payload_at + length]) != crc:
            raise FormatError(Reason.SECTION_CRC, f"CRC mismatch in the section at offset {at}",
                              "section.crc", payload_at + length)
        frames.append(Frame(at, payload_at, kind, payload, stream.tell() - at))
    return frames


def bundle_payload(sections: Iterable[tuple[int, bytes]]) -> bytes:
    """A BUNDLE section's payload (before compression): each section as ``kind u8 | length
    varint | payload``, without a CRC (the bundle's frame has one, the tag covers all)."""
    return b"".join(bytes([kind]) + VarUInt.build(len(payload)) + payload
                    for kind, payload in sections)


def unbundle(frames: Sequence[Frame], budget: Budget | None = None,
             primer: bytes | None = None) -> list[Frame]:
    """``frames``, or the sections a BUNDLE among them holds: decompressed (drawing on
    ``budget``) and split, each a raw section of its own. A BUNDLE must be the patch's only
    section and must not hold a compressed section or another BUNDLE; BAD_SECTION else, or
    if its sections' lengths do not add up to its payload."""
    if not any(f.type_code == SectionType.BUNDLE for f in frames):
        return list(frames)
    outer = frames[0]
    if len(frames) != 1:
        raise FormatError(Reason.BAD_SECTION, "a BUNDLE is the patch's only section",
                          "section.kind", next(f.offset for f in frames
                                               if f.type_code == SectionType.BUNDLE))
    _, codec = section_of(outer)
    payload = expand(outer, codec, budget=budget, primer=primer)
    stream = io.BytesIO(payload)
    out: list[Frame] = []
    while stream.tell() < len(payload):
        at = stream.tell()
        kind = payload[at]
        stream.seek(at + 1)
        try:
            length = VarUInt.parse_stream(stream)
        except cs.ConstructError as exc:
            raise FormatError(Reason.BAD_SECTION, f"bundled section at byte {at}: "
                              f"{_detail(exc)}", "bundle.length", outer.payload_offset) \
                from None
        start = stream.tell()
        if start + length > len(payload):
            raise FormatError(Reason.BAD_SECTION, f"bundled section at byte {at} of "
                              f"{length} bytes runs past the bundle's {len(payload)}",
                              "bundle.length", outer.payload_offset)
        if kind >> 5 or kind & 0x1F == SectionType.BUNDLE:
            raise FormatError(Reason.BAD_SECTION, f"bundled section kind {kind:#04x}: a "
                              f"bundled section is stored raw and is not a BUNDLE",
                              "bundle.kind", outer.payload_offset)
        out.append(Frame(outer.offset, outer.payload_offset, kind,
                         payload[start:start + length], start + length - at, bundled=True))
        stream.seek(start + length)
    if not out:
        raise FormatError(Reason.BAD_SECTION, "an empty BUNDLE", "bundle",
                          outer.payload_offset)
    return out


def section_of(frame: Frame) -> tuple[SectionType, Codec]:
    """The type and codec of a frame; BAD_SECTION if either is unknown."""
    try:
        section = SectionType(frame.type_code)
    except ValueError:
        raise FormatError(Reason.BAD_SECTION, f"unknown section type {frame.type_code}",
                          "section.kind", frame.offset) from None
    try:
        codec = Codec(frame.codec_code)
    except ValueError:
        raise FormatError(Reason.BAD_SECTION, f"unknown codec {frame.codec_code} (kind byte "
                          f"{frame.kind:#04x})", "section.kind", frame.offset) from None
    return section, codec


def check_order(frames: Sequence[Frame]) -> list[tuple[SectionType, Codec]]:
    """Types and codecs of all frames, which must come in ascending type order, each once
    (VMLET may repeat)."""
    out: list[tuple[SectionType, Codec]] = []
    for frame in frames:
        section, codec = section_of(frame)
        if out and (section < out[-1][0] or (section == out[-1][0]
                                              and section is not SectionType.VMLET)):
            raise FormatError(Reason.BAD_SECTION, f"section {section.name} after "
                              f"{out[-1][0].name}: sections come once each, in type order",
                              "section.kind", frame.offset)
        out.append((section, codec))
    return out


_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "dict_size": LZMA_DICT_BYTES}]


def compress(payload: bytes, codec: Codec, **lzma_options: int) -> bytes:
    """``payload`` stored with ``codec`` (the ground's side). ``lzma_options``: the LZMA
    model's ``lc``, ``lp``, ``pb``, which the LZMA2 stream carries (the decoder needs only
    the dictionary size)."""
    if codec is Codec.DEFLATE:
        c = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
        return c.compress(payload) + c.flush()
    if codec is Codec.LZMA:
        filters = [{"id": lzma.FILTER_LZMA2, "dict_size": LZMA_DICT_BYTES,
                    "preset": 9 | lzma.PRESET_EXTREME, **lzma_options}]
        return lzma.compress(payload, format=lzma.FORMAT_RAW, filters=filters)
    if codec is Codec.MODEL:
        return context_mixing.encode(payload)
    return payload


def expand(frame: Frame, codec: Codec, limit: int = MAX_EXPANDED_BYTES,
           budget: Budget | None = None, primer: bytes | None = None) -> bytes:
    """A frame's payload, decompressed; BAD_SECTION if it does not decompress to at most
    ``limit`` bytes exactly, or to more than ``budget`` has left of ``expanded`` (which it
    then draws: the decompressed bytes of all sections together are bounded)."""
    if codec is Codec.NONE:
        return frame.payload
    if budget is not None:
        limit = min(limit, budget.left("expanded"))
    if codec is Codec.MODEL:
        return _expand_model(frame, limit, budget, primer)
    try:
        if codec is Codec.DEFLATE:
            d = zlib.decompressobj(-15)
            out = d.decompress(frame.payload, limit + 1)
            complete = d.eof and not d.unused_data
        else:
            ld = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
            out = ld.decompress(frame.payload, limit + 1)
            complete = ld.eof and not ld.unused_data
    except (zlib.error, lzma.LZMAError) as exc:
        raise FormatError(Reason.BAD_SECTION, f"{codec.name.lower()} payload does not "
                          f"decompress: {exc}", "section.payload", frame.payload_offset) \
            from None
    if len(out) > limit:
        why = " (what is left of the patch's decompression budget)" \
            if budget is not None and limit == budget.left("expanded") else ""
        raise FormatError(Reason.BAD_SECTION, f"payload expands beyond {limit} bytes{why}",
                          "section.payload", frame.payload_offset)
    if not complete:
        raise FormatError(Reason.BAD_SECTION, f"{codec.name.lower()} payload is truncated or "
                          f"has trailing bytes", "section.payload", frame.payload_offset)
    if budget is not None:
        budget.take("expanded", len(out), "the decompressed payload")
    return out


def _expand_model(frame: Frame, limit: int, budget: Budget | None,
                  primer: bytes | None) -> bytes:
    """A MODEL payload decoded (after ``primer``, if it says it was primed): its length is
    checked against ``limit`` (and the budget) before any byte is decoded."""
    try:
        out = context_mixing.decode(frame.payload, limit, primer)
    except context_mixing.ModelError as exc:
        why = " (what is left of the patch's decompression budget)" \
            if budget is not None and limit == budget.left("expanded") \
            and "allowed" in str(exc) else ""
        raise FormatError(Reason.BAD_SECTION, f"model payload does not decode: {exc}{why}",
                          "section.payload", frame.payload_offset) from None
    if budget is not None:
        budget.take("expanded", len(out), "the decoded payload")
    return out


def model_decoded_bytes(frames: Sequence[Frame], primer_bytes: int = 0) -> int:
    """The bytes the MODEL payloads among ``frames`` say they decode to, each at most
    ``MAX_EXPANDED_BYTES``, plus ``primer_bytes`` for each primed one (what decoding them
    can cost, read from their length fields alone); a malformed length counts as nothing,
    since decoding stops there."""
    total = 0
    for f in frames:
        if f.codec_code == Codec.MODEL:
            try:
                n, primed, _ = context_mixing.decoded_length(f.payload)
            except context_mixing.ModelError:
                continue
            total += min(n, MAX_EXPANDED_BYTES) + (primer_bytes if primed else 0)
    return total


def vmlet_primer(config: Image, vmlets: Sequence[Image]) -> bytes | None:
    """What the MODEL codec learns before a primed payload of a patch whose base is
    ``config``: the canonical encodings of the VMlets ``config.uses`` names (by name,
    version and hash; lower layers they pin are not included), found among ``vmlets``, in
    ``uses`` order. None if one of them is not there (then nothing is primed with it)."""
    out = []
    for u in config.uses:
        found = next((v for v in vmlets if v.name == u.name and v.version == u.version
                      and v.content_hash[:len(u.hash)] == u.hash), None)
        if found is None:
            return None
        out.append(found.encode())
    return b"".join(out)


def _entries(min_bytes: int, *fields: Any, count: Any = None) -> cs.Construct:
    """A count-prefixed list of new entries of a target list, each naming its index first;
    the indices must increase. ``min_bytes``: the fewest bytes one entry takes (the count is
    bounded by the bytes left before any entry is decoded)."""
    return Counted(Record("index" / VarUInt, *fields), min_bytes, increasing="index",
                   count=count)


#: Section payloads, by type. Parse parameters: ``budget`` (``decoding_budget``; the format's
#: limits without it); PARAMS and ROWS take ``global_ranges`` and ``array_ranges``, the target's
#: declared ranges by index, and ROWS ``array_lengths``, known once the lists are merged;
#: REMOVALS takes ``base_lengths``, the base's list lengths by ``ListKind``. Every count is
#: bounded before the list is built: by the bytes left (``Counted``'s second argument is the
#: fewest bytes one entry takes), by those parameters, or by the budget.
BODIES: dict[SectionType, cs.Construct] = {
    SectionType.IDENTITY: cs.Struct("name" / Name),
    SectionType.USES: _entries(
        # empty hash: that of the VMlet of that name and version carried or held on board
        4, *VMLET_REF_NAME, "hash" / cs.Prefixed(VarUInt, cs.GreedyBytes)),
    SectionType.VMLET: cs.GreedyBytes,  # a VMlet image's canonical encoding
    SectionType.REMOVALS: Counted(Record(
        "list" / cs.Int8ub,
        "indices" / Counted(VarUInt, 1, limit=lambda c: _base_length(c), increasing=".")),
        2, limit=lambda c: len(ListKind), increasing="list"),
    SectionType.GLOBALS: cs.Struct(
        "entries" / _entries(5, *DECLARATION, count=_Drawn(VarUInt, "values", "new globals")),
        "packed" / RangedSeq(lambda c: [(field_of(e, "lo"), field_of(e, "hi"))
                                        for e in c.entries]),
    ),
    SectionType.PARAMS: cs.Struct(
        "indices" / Counted(VarUInt, 1, limit=_declared_count("global_ranges"),
                            increasing="."),
        "packed" / RangedSeq(lambda c: [_declared(c, "global_ranges", i) for i in c.indices]),
    ),
    SectionType.ARRAYS: _entries(
        7, *DECLARATION, "length" / _Drawn(VarUInt, "values", "the array"),
        "chunks" / Chunks(cs.this.lo, cs.this.hi, cs.this.length),
    ),
    SectionType.ROWS: Counted(Record(
        "index" / VarUInt,
        "runs" / Chunks(lambda c: _declared(c, "array_ranges", c.index)[0],
                        lambda c: _declared(c, "array_ranges", c.index)[1],
                        _row_length, skips=True),
    ), 2, limit=_declared_count("array_ranges"), increasing="index"),
    SectionType.IMPORTS: cs.Struct(
        "natives" / _entries(2, "name" / Name),
        "env" / _entries(2, "name" / Name),
        "ext" / _entries(3, *EXT_FIELDS),
    ),
    SectionType.CODE: _entries(
        7, *CODE_UNIT_SHAPE,
        "code" / cs.Prefixed(_Drawn(VarUInt, "code", "the code unit"), cs.GreedyBytes)),
    SectionType.TASKS: _entries(4, *TASK_FIELDS),
    SectionType.RULES: _entries(3, *RULE_FIELDS),
    SectionType.ENTRIES: cs.Struct("on_apply" / VarUInt),  # 0: none, else code unit + 1
    SectionType.SCATTERED: ScatteredRows(),
    SectionType.BUNDLE: cs.GreedyBytes,  # inner frames (``unbundle``)
}


def format_budget() -> Budget:
    """The format's own limits, for decoding without a header's claims (``ccl inspect``):
    ``MAX_IMAGE_ELEMENTS`` values, ``MAX_EXPANDED_BYTES`` of code, and 16 payloads' worth of
    decompressed bytes."""
    return Budget(values=MAX_IMAGE_ELEMENTS, code=MAX_EXPANDED_BYTES,
                  expanded=16 * MAX_EXPANDED_BYTES)


def decoding_budget(claims: Claims, section_bytes: int) -> Budget:
    """What decoding a patch's sections (``section_bytes`` of frames) may take, fixed from
    its header's claims (checked against the spacecraft's limits first) before any section
    is decoded:

    * ``values``: new globals and array elements (ARRAYS lengths, counted as soon as they are
      read, before any chunk; a carried VMlet's elements), ``claims.data_bytes``: every value
      takes at least one byte (``onboard.vm.machine.slot_bytes``), so this is at least what
      the target holds and a patch within its claim never runs out;
    * ``code``: bytes of new code units and of carried VMlets' code, ``claims.code_bytes``;
    * ``expanded``: decompressed payload bytes of all sections together, ``EXPANSION_RATIO``
      x the sections' bytes + the code claim + the data claim (bit-packed values take at
      most their data bytes; names and framing compress less than EXPANSION_RATIO).

    Running out is CLAIM_MISMATCH (values, code) or BAD_SECTION (expanded)."""
    return Budget(values=claims.data_bytes, code=claims.code_bytes,
                  expanded=EXPANSION_RATIO * section_bytes + claims.code_bytes
                  + claims.data_bytes)


def build_body(section: SectionType, value: Any, **params: Any) -> bytes:
    """Encode a section payload (uncompressed)."""
    return bytes(BODIES[section].build(value, **params))


#: Budget resources whose exhaustion is a claim the patch does not keep.
_CLAIMED = {"values": "data", "code": "code"}


def _reason(exc: cs.ConstructError) -> Reason:
    """The rejection reason of a construct error raised while decoding a section body."""
    if isinstance(exc, SectionRefused):
        return exc.reason
    if isinstance(exc, OrderError | LimitError):
        return Reason.BAD_DELTA  # indices out of order, or more than the target can hold
    if isinstance(exc, BudgetError) and exc.resource in _CLAIMED:
        return Reason.CLAIM_MISMATCH
    return Reason.BAD_SECTION


def parse_body(section: SectionType, payload: bytes, frame: Frame, **params: Any) -> Any:
    """Decode a section payload. Raises ``FormatError`` with the field and offset:
    BAD_SECTION on malformed input, BAD_DELTA for indices out of order or beyond what the
    target holds, CLAIM_MISMATCH when the ``budget`` parameter (the header's claims) runs
    out.

    Offsets are in the patch for uncompressed payloads, else in the decompressed payload
    (the message says which).
    """
    stream = io.BytesIO(payload)
    params.setdefault("budget", format_budget())
    try:
        value = BODIES[section].parse_stream(stream, **params)
        if stream.read(1):
            raise FormatError(Reason.BAD_SECTION, f"trailing bytes after the {section.name} "
                              f"payload", section.name.lower(),
                              _payload_offset(frame, stream.tell() - 1))
    except cs.ConstructError as exc:
        claim = _CLAIMED.get(getattr(exc, "resource", ""))
        raise FormatError(_reason(exc), f"{section.name}: {_detail(exc)}"
                          + (f" (the header's {claim} claim)" if claim else "")
                          + ("" if frame.codec_code == Codec.NONE and not frame.bundled
                             else f" (at byte {stream.tell()} of the decompressed payload)"),
                          _field(section, exc), _payload_offset(frame, stream.tell())) \
            from None
    return value


def _payload_offset(frame: Frame, inner: int) -> int:
    return frame.payload_offset + inner if frame.codec_code == Codec.NONE \
        and not frame.bundled else frame.payload_offset


def _field(section: SectionType, exc: cs.ConstructError) -> str:
    parts = [p.strip() for p in str(getattr(exc, "path", "") or "").split("->")]
    names = [p for p in parts[1:] if p and p != "items" and not p.startswith("(")]
    return ".".join([section.name.lower(), *names])


def _detail(exc: cs.ConstructError) -> str:
    text = str(exc).strip()
    if text.startswith("Error in path"):  # "Error in path PATH\nmessage": the field is reported
        text = text.partition("\n")[2] or text.split(")", 1)[-1]
    detail = text.strip().replace("\n", " ")
    if "stream read less than specified amount" in detail:
        return "ends too early (truncated)"
    return detail or type(exc).__name__


# --------------------------------------------------------------------------- whole patches


def compute_tag(key: bytes, body: bytes) -> bytes:
    """The authentication tag of ``body`` (header and sections): HMAC-SHA256, 128 bits."""
    return hmac.new(key, body, hashlib.sha256).digest()[:TAG_BYTES]


def tag_ok(key: bytes, data: bytes) -> bool:
    """Whether the last TAG_BYTES of ``data`` authenticate the rest (constant-time compare)."""
    return hmac.compare_digest(compute_tag(key, data[:-TAG_BYTES]), data[-TAG_BYTES:])


def assemble(header: Header, frames: Iterable[bytes], key: bytes) -> bytes:
    """Header, frames and the tag over both."""
    body = build_header(header) + b"".join(frames)
    return body + compute_tag(key, body)


def retag(data: bytes, key: bytes) -> bytes:
    """``data`` with its header CRC, every section CRC and the tag recomputed (tests and
    fuzzing: a mutated patch re-signed reaches the decoders). Returns ``data`` unchanged if
    it is not even framed."""
    try:
        parsed = parse_header(data)
    except FormatError:
        return data
    size = parsed.size
    out = bytearray(data)
    out[size - CRC_BYTES:size] = crc16(bytes(out[:size - CRC_BYTES])).to_bytes(2, "big")
    pos, end = size, len(out) - TAG_BYTES
    while pos < end:
        stream = io.BytesIO(bytes(out[:end]))
        stream.seek(pos + 1)
        try:
            length = VarUInt.parse_stream(stream)
        except cs.ConstructError:
            break
        crc_at = stream.tell() + length
        if crc_at + CRC_BYTES > end:
            break
        out[crc_at:crc_at + CRC_BYTES] = crc16(bytes(out[pos:crc_at])).to_bytes(2, "big")
        pos = crc_at + CRC_BYTES
    if len(out) < TAG_BYTES:
        return bytes(out)
    body = bytes(out[:-TAG_BYTES])
    return body + compute_tag(key, body)


def hash_prefix(image: Image | None) -> bytes:
    """What a header carries for ``image``: its content hash's first HASH_BYTES (the empty
    configuration has NO_HASH)."""
    return NO_HASH if image is None else image.content_hash[:HASH_BYTES]


def memory_bytes(config: Image, vmlets: Sequence[Image]) -> tuple[int, int]:
    """(code bytes, data bytes) a configuration takes on board, as claimed in headers: the
    bytecode of the configuration and its VMlets, and its globals and arrays at their ranged
    widths (the machine model's ``slot_bytes``; the verifier adds the call frames)."""
    code = config.code_bytes() + sum(v.code_bytes() for v in vmlets)
    data = globals_bytes([(g.lo, g.hi) for g in config.globals]) + globals_bytes(
        [(a.lo, a.hi) for a in config.arrays], [a.length for a in config.arrays])
    return code, data


DEVELOPMENT_KEY_LABEL = b"CCL-VVM development patch key, never for flight: "


def key_from_text(text: str) -> bytes:
    """A patch key from its file's text: hex, lines starting with ``#`` ignored (the file
    ``ccl keygen`` writes). Raises ``ValueError`` saying what is wrong."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    try:
        key = bytes.fromhex("".join(lines))
    except ValueError:
        raise ValueError("not a hex key") from None
    if len(key) < 16:
        raise ValueError(f"a key needs at least 16 bytes, this one has {len(key)}")
    return key


def development_key(mission: str) -> bytes:
    """The demo key of ``mission``: SHA-256 of a public label and the mission name. Anyone can
    compute it, so a mission profile with ``flight = true`` refuses it."""
    return hashlib.sha256(DEVELOPMENT_KEY_LABEL + mission.encode()).digest()


# --------------------------------------------------------------------------- profile patches

#: The flag of a profile patch (new values of the mission profile's soft figures). It is not
#: in ``Flag.known()``: a configuration patcher refuses a profile patch (BAD_HEADER), and
#: ``parse_profile_patch`` refuses a configuration patch.
PROFILE_FLAG = 0x80
#: The figure of application n's part of the share is ``part_percent.n``, code 0x10 + n.
PART_FIGURE = "part_percent"
PART_CODE = 0x10
#: The soft figures a profile patch may carry, by their one-byte code on the wire. Codes are
#: never reused; a board refuses a code it does not know.
PROFILE_FIGURES: dict[int, str] = {
    1: "patch_reserve_cycles_per_frame",
    2: "probation_frames",
    3: "max_pending",
    # application n's part of the share, in percent of every frame (``share N %``)
    **{PART_CODE + n: f"{PART_FIGURE}.{n}" for n in range(MAX_APPLICATION + 1)},
}
PROFILE_CODES: dict[str, int] = {name: code for code, name in PROFILE_FIGURES.items()}
MAX_PROFILE_ENTRIES = len(PROFILE_FIGURES)

PROFILE_PATCH = cs.Struct(
    *PATCH_ADDRESS,
    "count" / cs.Int8ub,
    "entries" / cs.Array(cs.this.count, cs.Struct("figure" / cs.Int8ub, "value" / VarUInt)),
    "crc" / cs.Int16ub,  # CRC-16 of all the bytes before it
)


@dataclass(frozen=True)
class ProfilePatch:
    """A decoded profile patch: who it is for, its sequence number, the new figures."""

    mission_id: int
    spacecraft_id: int
    seq: int
    values: dict[str, int]


def build_profile_patch(p: ProfilePatch, key: bytes) -> bytes:
    """The bytes of a profile patch, CRC and tag included. Raises ``ValueError`` for a figure
    that has no code (the ground checks the limits before, see ``onboard.patching.conditions``)."""
    for name in p.values:
        if name not in PROFILE_CODES:
            raise ValueError(f"{name!r} is not a soft figure (known: {', '.join(PROFILE_CODES)})")
    entries = [{"figure": PROFILE_CODES[n], "value": v} for n, v in sorted(
        p.values.items(), key=lambda item: PROFILE_CODES[item[0]])]
    raw = {"magic": MAGIC, "format": FORMAT_VERSION, "flags": PROFILE_FLAG,
           "mission": p.mission_id, "spacecraft": p.spacecraft_id, "seq": p.seq,
           "count": len(entries), "entries": entries, "crc": 0}
    body = PROFILE_PATCH.build(raw)[:-CRC_BYTES]
    body += crc16(body).to_bytes(CRC_BYTES, "big")
    return body + compute_tag(key, body)


def parse_profile_patch(data: bytes, key: bytes) -> ProfilePatch:
    """Decode and authenticate a profile patch. Raises ``FormatError`` (TRUNCATED, BAD_MAGIC,
    BAD_VERSION, BAD_HEADER, HEADER_CRC, BAD_TAG, BAD_SECTION) naming the field and its offset.
    The tag is checked before anything is decoded beyond the fixed fields, so a forged patch
    never reaches the figure table."""
    if len(data) < 4 + CRC_BYTES + TAG_BYTES:
        raise FormatError(Reason.TRUNCATED, "the profile patch is shorter than its fixed fields",
                          "magic", 0)
    if data[:2] != MAGIC:
        raise FormatError(Reason.BAD_MAGIC, f"magic {data[:2]!r} is not {MAGIC!r}", "magic", 0)
    if data[2] != FORMAT_VERSION:
        raise FormatError(Reason.BAD_VERSION, f"a profile patch is format {FORMAT_VERSION}, "
                          f"this one says {data[2]}", "format", 2)
    if data[3] != PROFILE_FLAG:
        raise FormatError(Reason.BAD_HEADER, f"flags {data[3]:#04x}: not a profile patch "
                          f"({PROFILE_FLAG:#04x})", "flags", 3)
    if not tag_ok(key, data):
        raise FormatError(Reason.BAD_TAG, "the tag does not authenticate the profile patch "
                          "with this mission's key", "tag", len(data) - TAG_BYTES)
    body = data[:-TAG_BYTES]
    try:
        raw = PROFILE_PATCH.parse(body)
    except cs.ConstructError as exc:
        raise FormatError(Reason.TRUNCATED, f"the profile patch {_detail(exc)}", "entries",
                          4) from None
    size = len(PROFILE_PATCH.build(raw))
    if size != len(body):
        raise FormatError(Reason.BAD_HEADER, f"{len(body) - size} bytes after the figures",
                          "crc", size)
    if crc16(body[:-CRC_BYTES]) != raw.crc:
        raise FormatError(Reason.HEADER_CRC, "the profile patch's CRC does not match", "crc",
                          size - CRC_BYTES)
    values: dict[str, int] = {}
    for i, entry in enumerate(raw.entries):
        name = PROFILE_FIGURES.get(entry.figure)
        if name is None or name in values:
            what = "unknown" if name is None else "repeated"
            raise FormatError(Reason.BAD_SECTION, f"{what} figure code {entry.figure}",
                              f"entries[{i}].figure")
        values[name] = int(entry.value)
    return ProfilePatch(int(raw.mission), int(raw.spacecraft), int(raw.seq), values)


def retag_profile_patch(data: bytes, key: bytes) -> bytes:
    """``data`` with its CRC and tag recomputed (tests: a mutated profile patch re-signed
    reaches the decoder)."""
    body = data[:-TAG_BYTES - CRC_BYTES]
    body += crc16(body).to_bytes(CRC_BYTES, "big")
    return body + compute_tag(key, body)
