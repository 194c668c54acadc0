"""Bounded decoding: the construct primitives both onboard formats (images and patches)
decode untrusted bytes with.

Signed input is still hostile input (a leaked key, a ground bug), so nothing here allocates
on a length or count it has not bounded first:

* ``VarUInt``: unsigned LEB128, at most 10 bytes, below 2^64 and minimal (no trailing zero
  group), so every value has exactly one encoding and none costs more than 10 bytes to read;
* ``VarSInt``: signed, zigzag over ``VarUInt`` (64-bit);
* ``StrictFlag``: a byte that is 0 or 1;
* ``Counted``: a count-prefixed list whose count is checked before any element is decoded:
  against the bytes left in the stream (each element takes at least ``min_bytes``) and
  against a limit the context gives; optionally the elements' indices must strictly increase;
* ``Record``: a struct decoded into a named tuple, a quarter of a ``Container``'s memory;
* ``Budget``: what one decoding may still take of each resource (table values, code bytes,
  decompressed bytes...), fixed before decoding starts and drawn down as it goes;
* ``crc16``: the one CRC-16 of the onboard formats (patch headers and sections, TC frames).

``VarUInt`` is the one varint of the data formats (images, patches, the store's slots); the
bytecode's operands have their own 32-bit varints (``onboard.vm.isa``), part of the
instruction set.

The errors are construct errors, so that construct reports the path of the field:
``BudgetError`` (a budget is exhausted), ``OrderError`` (indices not strictly increasing),
``LimitError`` (a count above the context's limit) and plain ``ValidationError`` for the rest.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import binascii
import collections
from collections.abc import Callable, Mapping
from typing import Any

import construct as cs

MAX_VARINT_BYTES = 10  # 64 bits


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, no reflection, no final XOR; the
    CCSDS TC frame error control field, and the CRC of a patch's header and sections."""
    return binascii.crc_hqx(data, 0xFFFF)


class BudgetError(cs.ValidationError):  # type: ignore[misc]
    """A decoding asked for more of a resource than its ``Budget`` has left."""

    def __init__(self, resource: str, message: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.resource = resource


class OrderError(cs.ValidationError):  # type: ignore[misc]
    """Indices that must strictly increase do not."""


class LimitError(cs.ValidationError):  # type: ignore[misc]
    """A count above the limit its context allows."""


def remaining(stream: Any) -> int:
    """Bytes left in a seekable stream after its position."""
    here = stream.tell()
    end = stream.seek(0, 2)
    stream.seek(here)
    return int(end - here)


class _VarUInt(cs.Construct):  # type: ignore[misc]
    """Unsigned LEB128: at most 10 bytes, below 2^64, minimal."""

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = cs.stream_read(stream, 1, path)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and not byte:
                    raise cs.ValidationError("overlong varint (a trailing zero group)",
                                             path=path)
                if value >> 64:
                    raise cs.ValidationError("varint exceeds 64 bits", path=path)
                return value
        raise cs.ValidationError(f"varint longer than {MAX_VARINT_BYTES} bytes", path=path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> int:
        if not isinstance(obj, int) or not 0 <= obj < 1 << 64:
            raise cs.IntegerError(f"{obj!r} is not an unsigned 64-bit integer", path=path)
        out = bytearray()
        value = obj
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
        cs.stream_write(stream, bytes(out), len(out), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError(path=path)


VarUInt = _VarUInt()


def _zigzag_build(obj: Any, ctx: Any) -> int:
    if not isinstance(obj, int) or not -(1 << 63) <= obj < 1 << 63:
        raise cs.IntegerError(f"{obj!r} is not a signed 64-bit integer")
    return (obj << 1) ^ (obj >> 63)


#: Signed 64-bit integers: zigzag (0, -1, 1, -2 ... map to 0, 1, 2, 3 ...) over VarUInt.
VarSInt = cs.ExprAdapter(VarUInt, lambda obj, ctx: (obj >> 1) ^ -(obj & 1), _zigzag_build)


class _StrictFlag(cs.Construct):  # type: ignore[misc]
    """A boolean byte: 0 or 1, nothing else (one encoding per value)."""

    def _parse(self, stream: Any, context: Any, path: str) -> bool:
        byte = cs.stream_read(stream, 1, path)[0]
        if byte > 1:
            raise cs.ValidationError(f"flag byte {byte:#04x} is neither 0 nor 1", path=path)
        return bool(byte)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        cs.stream_write(stream, b"\x01" if obj else b"\x00", 1, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        return 1


StrictFlag = _StrictFlag()


class Counted(cs.Construct):  # type: ignore[misc]
    """A ``VarUInt`` count, then that many ``subcon`` elements.

    Before decoding any element the count is checked against the bytes left in the stream
    (every element takes at least ``min_bytes``) and, if ``limit`` is given, against
    ``limit(context)`` (``LimitError``). With ``increasing``, each element's key (``"."``: the
    element itself, else the field of that name) must be above the previous one's
    (``OrderError``), checked as each element is decoded. ``count`` is the construct of the
    count (``VarUInt`` unless given, e.g. one that draws the count from a budget).
    """

    def __init__(self, subcon: Any, min_bytes: int,
                 limit: Callable[[Any], int] | None = None,
                 increasing: str | None = None, count: Any = None) -> None:
        super().__init__()
        self.subcon = subcon
        self.min_bytes = min_bytes
        self.limit = limit
        self.increasing = increasing
        self.count = VarUInt if count is None else count

    def _parse(self, stream: Any, context: Any, path: str) -> cs.ListContainer:
        count = self.count._parsereport(stream, context, path)
        left = remaining(stream)
        if count * self.min_bytes > left:
            raise cs.ValidationError(f"{count} entries need at least "
                                     f"{count * self.min_bytes} bytes, {left} remain",
                                     path=path)
        if self.limit is not None:
            limit = self.limit(context)
            if count > limit:
                raise LimitError(f"{count} entries, at most {limit} fit", path=path)
        out = cs.ListContainer()
        last = -1
        for i in range(count):
            context._index = i
            element = self.subcon._parsereport(stream, context, path)
            if self.increasing is not None:
                key = element if self.increasing == "." else field_of(element, self.increasing)
                if key <= last:
                    raise OrderError(f"index {key} after {last}: indices must increase",
                                     path=path)
                last = key
            out.append(element)
        return out

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        self.count._build(len(obj), stream, context, path)
        for i, element in enumerate(obj):
            context._index = i
            self.subcon._build(element, stream, context, path)
        return obj  # not what the elements built: a long list is not kept twice

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError(path=path)


class Record(cs.Struct):  # type: ignore[misc]
    """A ``cs.Struct`` that parses into a named tuple instead of a ``Container``: about a
    quarter of the memory, for the long lists of entries untrusted input may hold. Fields
    are read by attribute (``entry.index``). Building takes a mapping or any object with
    those attributes (a dataclass), so nothing is copied into dictionaries first."""

    def __init__(self, *subcons: Any) -> None:
        super().__init__(*subcons)
        self.record: Any = collections.namedtuple(  # type: ignore[misc]
            "Record", [sc.name for sc in self.subcons if sc.name])

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        # The context is Struct's, so that fields may refer to earlier ones (cs.this.lo).
        context = cs.Container(_=context, _params=context._params, _root=None,
                               _parsing=context._parsing, _building=context._building,
                               _sizing=context._sizing, _subcons=self._subcons, _io=stream,
                               _index=context.get("_index", None))
        context._root = context._.get("_root", context)
        for sc in self.subcons:
            value = sc._parsereport(stream, context, path)
            if sc.name:
                context[sc.name] = value
        return self.record._make(context[sc.name] for sc in self.subcons if sc.name)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        context = cs.Container(_=context, _params=context._params, _root=None,
                               _parsing=context._parsing, _building=context._building,
                               _sizing=context._sizing, _subcons=self._subcons, _io=stream,
                               _index=context.get("_index", None))
        context._root = context._.get("_root", context)
        for sc in self.subcons:
            value = field_of(obj, sc.name) if sc.name else None
            if sc.name:
                context[sc.name] = value
            built = sc._build(value, stream, context, path)
            if sc.name:
                context[sc.name] = built
        return obj


class Budget:
    """What one decoding may still take of each named resource; ``take`` draws it down.

    Mutable on purpose: one budget follows one decoding (one patch, one image) from its first
    section to its last, so that limits hold for the sum over sections and entries."""

    def __init__(self, **limits: int) -> None:
        self._left = dict(limits)

    def left(self, resource: str) -> int:
        """What is left of ``resource``."""
        return self._left[resource]

    def take(self, resource: str, amount: int, what: str) -> None:
        """Draw ``amount`` of ``resource`` for ``what``; ``BudgetError`` if not that much is
        left (and nothing is drawn)."""
        left = self._left[resource]
        if amount > left:
            raise BudgetError(resource, f"{what}: {amount} {resource} exceed the {left} "
                                        f"left")
        self._left[resource] = left - amount


def field_of(entry: Any, name: str) -> Any:
    """Field ``name`` of an entry: a mapping when building, a ``Record`` tuple or a
    ``Container`` when parsed."""
    return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)


def param(context: Any, name: str, default: Any = None) -> Any:
    """A parse parameter (``parse(..., name=value)``) seen from any nesting depth, or
    ``default``."""
    params = getattr(context, "_params", None)
    if params is None:
        return default
    return params.get(name, default)
